/** The Conversations contract (shared/conversations.ts) on every backend: index, order, paging, cursors, caps, expiry. */
import { describe, it, expect } from 'vitest';
import { CONVERSATIONS_MAX, conversationRoom, type ConversationTouch } from '../../shared/conversations.ts';
import { randomId } from '../../shared/ids.ts';
import { ROOM_PATTERN } from '../../shared/protocol/constants.ts';
import { contract, range } from './harness.ts';

const user = () => `user-${randomId(6)}`;
const touch = (room: string, seq: number, extra: Partial<ConversationTouch> = {}): ConversationTouch => ({
  room,
  with: { id: 'bob', name: 'Bob' },
  withName: true,
  seq,
  epoch: 'e1',
  last: JSON.stringify({ seq, room }),
  ...extra,
});

describe('conversationRoom', () => {
  it('is a valid room name, the same both ways, and apart for every other pair', () => {
    const a = conversationRoom('alice', 'bob');
    expect(a).toMatch(new RegExp(ROOM_PATTERN));
    expect(a.startsWith('dm:')).toBe(true);
    expect(conversationRoom('bob', 'alice')).toBe(a);
    // Pairs that would meet if the ids were only joined: "a\nb" + "c" and "a" + "b\nc".
    expect(conversationRoom('a\nb', 'c')).not.toBe(conversationRoom('a', 'b\nc'));
    expect(conversationRoom('x'.repeat(256), 'ü 😀')).toMatch(new RegExp(ROOM_PATTERN));
    expect(conversationRoom('alice', 'alice')).not.toBe(a);
  });
});

contract('Conversations', (t) => {
  const store = () => t.stores({ historyTtlMs: 60_000 }).conversations;

  it('lists the most recent first with partner, seq, last, order and the read cursor', async () => {
    const s = store();
    const u = user();
    await s.conversationTouch(u, touch('dm:a', 1, { with: { id: 'a', name: 'A' } }));
    await s.conversationTouch(u, touch('dm:b', 1, { with: { id: 'b', name: 'B' } }));
    await s.conversationTouch(u, touch('dm:a', 2, { with: { id: 'a', name: 'A' } }));
    await s.readSet(u, 'dm:a', 1, 'e1');
    const list = await s.conversationsList(u, { limit: 10 });
    expect(list.map((c) => [c.room, c.with.id, c.seq, c.read])).toEqual([
      ['dm:a', 'a', 2, 1],
      ['dm:b', 'b', 1, 0],
    ]);
    expect(JSON.parse(list[0]!.last)).toEqual({ seq: 2, room: 'dm:a' });
    expect(list[0]!.order).toBeGreaterThan(list[1]!.order);
    expect(await s.conversationsList(user(), { limit: 10 })).toEqual([]);
  });

  it('only a newer message changes an entry; a late one may only teach the name', async () => {
    const s = store();
    const u = user();
    expect(await s.conversationTouch(u, touch('dm:a', 3, { with: { id: 'a', name: 'a' }, withName: false }))).toBe(true);
    expect(await s.conversationTouch(u, touch('dm:b', 1))).toBe(true);
    expect(await s.conversationTouch(u, touch('dm:a', 2, { with: { id: 'a', name: 'Ann' } }))).toBe(false);
    expect(await s.conversationTouch(u, touch('dm:a', 3, { with: { id: 'a', name: 'a' }, withName: false }))).toBe(false);
    const list = await s.conversationsList(u, { limit: 10 });
    // dm:b stays the most recent, dm:a keeps seq 3 and learned the real name.
    expect(list.map((c) => [c.room, c.seq, c.with.name])).toEqual([
      ['dm:b', 1, 'Bob'],
      ['dm:a', 3, 'Ann'],
    ]);
    // A guessed name never replaces a stored one.
    await s.conversationTouch(u, touch('dm:a', 4, { with: { id: 'a', name: 'a' }, withName: false }));
    expect(await s.conversationWith(u, 'dm:a')).toEqual({ id: 'a', name: 'Ann' });
    // Another epoch (the history was lost) replaces the entry, even with a lower seq.
    expect(await s.conversationTouch(u, touch('dm:a', 1, { epoch: 'e2' }))).toBe(true);
    expect((await s.conversationsList(u, { limit: 1 }))[0]).toMatchObject({ room: 'dm:a', seq: 1, epoch: 'e2' });
  });

  it('conversationWith is membership: only rooms in the user’s own index', async () => {
    const s = store();
    const [u, v] = [user(), user()];
    await s.conversationTouch(u, touch('dm:a', 1));
    expect(await s.conversationWith(u, 'dm:a')).toEqual({ id: 'bob', name: 'Bob' });
    expect(await s.conversationWith(v, 'dm:a')).toBeUndefined();
    expect(await s.conversationWith(u, 'dm:b')).toBeUndefined();
  });

  it('pages with before, without skipping or repeating', async () => {
    const s = store();
    const u = user();
    for (const i of range(1, 7)) await s.conversationTouch(u, touch(`dm:${i}`, 1));
    const seen: string[] = [];
    let before: number | undefined;
    for (;;) {
      const page = await s.conversationsList(u, { limit: 3, before });
      if (page.length === 0) break;
      seen.push(...page.map((c) => c.room));
      before = page[page.length - 1]!.order;
    }
    expect(seen).toEqual(range(1, 7).reverse().map((i) => `dm:${i}`));
    expect(await s.conversationsList(u, { limit: 0 })).toEqual([]);
  });

  it(`keeps at most ${CONVERSATIONS_MAX}, dropping the least recent`, async () => {
    const s = store();
    const u = user();
    await s.conversationTouch(u, touch('dm:first', 1));
    await Promise.all(range(1, CONVERSATIONS_MAX).map((i) => s.conversationTouch(u, touch(`dm:${i}`, 1))));
    expect(await s.conversationWith(u, 'dm:first')).toBeUndefined();
    const all = await s.conversationsList(u, { limit: 2 * CONVERSATIONS_MAX });
    expect(all).toHaveLength(CONVERSATIONS_MAX);
  });

  it('read cursors move forward only, per epoch, in any room', async () => {
    const s = store();
    const u = user();
    expect(await s.readGet(u, 'lobby', 'e1')).toBe(0);
    expect(await s.readSet(u, 'lobby', 0, 'e1')).toEqual({ seq: 0, moved: false });
    expect(await s.readSet(u, 'lobby', 5, 'e1')).toEqual({ seq: 5, moved: true });
    expect(await s.readSet(u, 'lobby', 3, 'e1')).toEqual({ seq: 5, moved: false });
    expect(await s.readSet(u, 'lobby', 5, 'e1')).toEqual({ seq: 5, moved: false });
    expect(await s.readGet(u, 'lobby', 'e1')).toBe(5);
    expect(await s.readGet(u, 'lobby', 'e2')).toBe(0);
    expect(await s.readGet(user(), 'lobby', 'e1')).toBe(0);
    // A new epoch: the old cursor counts for nothing, a lower seq moves it.
    expect(await s.readSet(u, 'lobby', 2, 'e2')).toEqual({ seq: 2, moved: true });
    expect(await s.readGet(u, 'lobby', 'e1')).toBe(0);
  });

  it('concurrent cursor moves end at the highest', async () => {
    const s = store();
    const u = user();
    const res = await Promise.all(range(1, 50).map((i) => s.readSet(u, 'r', i, 'e')));
    expect(res.filter((r) => r.moved).length).toBeGreaterThanOrEqual(1);
    expect(await s.readGet(u, 'r', 'e')).toBe(50);
  });

  it('index and cursors expire historyTtlMs after their last change, leaving nothing', async () => {
    const bundle = t.stores({ historyTtlMs: 300 });
    const s = bundle.conversations;
    const u = user();
    await s.conversationTouch(u, touch('dm:a', 1));
    await s.readSet(u, 'dm:a', 1, 'e1');
    await t.pass(200);
    await s.conversationTouch(u, touch('dm:a', 2));
    await t.pass(200);
    expect(await s.conversationWith(u, 'dm:a')).toBeDefined();
    await t.until('expiry', async () => ((await s.conversationsList(u, { limit: 10 })).length === 0 ? true : undefined));
    expect(await s.readGet(u, 'dm:a', 'e1')).toBe(0);
    await t.until('no residue', async () => ((await t.residue(bundle)).length === 0 ? true : undefined));
  });

  it('user ids with any characters are kept apart', async () => {
    const s = store();
    const base = user();
    const users = [base, `${base}}`, `{${base}}`, `${base}%7D`, `${base}}:conv`, `${base} ü 😀`];
    for (const [i, u] of users.entries()) await s.conversationTouch(u, touch(`dm:${i}`, i + 1));
    for (const [i, u] of users.entries()) {
      expect((await s.conversationsList(u, { limit: 10 })).map((c) => c.room)).toEqual([`dm:${i}`]);
    }
  });
});
