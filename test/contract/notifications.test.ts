/** The Notifications contract (shared/notifications.ts) on every backend. */
import { describe, it, expect } from 'vitest';
import type { StoredNotification, Notifications } from '../../shared/notifications.ts';
import type { StoreOptions } from '../../shared/stores.ts';
import { randomId } from '../../shared/ids.ts';
import { contract, range, ts, withRedisStores } from './harness.ts';

contract('Notifications', (t) => {
  const bundle = (opts?: Partial<StoreOptions>) => t.stores(opts);
  const store = (opts?: Partial<StoreOptions>) => bundle(opts).notifications;
  const twin = (opts?: Partial<StoreOptions>) => t.twin(opts).map((s) => s.notifications) as [Notifications, Notifications];

  describe('notifications', () => {
    const user = () => `user-${randomId(6)}`;
    /** Notification `id` at `ts(at)` (ms after the epoch of `ts`), unread as it is sent. */
    const note = (id: string, at = 0, extra: Partial<StoredNotification> = {}): StoredNotification => ({
      id,
      kind: 'info',
      title: `title ${id}`,
      body: `body of ${id}`,
      ts: ts(at),
      read: false,
      ...extra,
    });
    const ids = (items: { id: string }[]) => items.map((n) => n.id);
    const list = (s: Notifications, u: string, limit = 1000, unreadOnly = false) => s.notificationsList(u, { limit, unreadOnly });

    it('add returns each user’s unread count after its add, in input order; users are apart', async () => {
      const s = store();
      const [a, b, c] = [user(), user(), user()];
      const res = await s.notificationsAdd([
        { userId: a, notification: note('n1', 1) },
        { userId: b, notification: note('n1', 1) },
        { userId: a, notification: note('n2', 2) },
        { userId: c, notification: note('n9', 3) },
        { userId: a, notification: note('n3', 3) },
      ]);
      expect(res).toEqual([1, 1, 2, 1, 3]);
      expect(await s.notificationsAdd([])).toEqual([]);
      expect([await s.notificationsUnread(a), await s.notificationsUnread(b), await s.notificationsUnread(c)]).toEqual([3, 1, 1]);
      expect(await s.notificationsUnread(user())).toBe(0);
      expect(await list(s, user())).toEqual({ items: [], unread: 0 });
      // Reading one user's notification leaves the other's with the same id unread.
      expect(await s.notificationsRead(b, { ids: ['n1'] })).toEqual({ changed: ['n1'], unread: 0 });
      expect(await s.notificationsUnread(a)).toBe(3);
      expect((await list(s, a)).items.every((n) => !n.read)).toBe(true);
    });

    it('unread counts asked for in one turn, for many users, are each that user’s', async () => {
      const s = store();
      const users = range(0, 39).map(() => user());
      await s.notificationsAdd(users.flatMap((u, i) => range(1, i % 5).map((n) => ({ userId: u, notification: note(`n${n}`, n) }))));
      await s.notificationsRead(users[3]!, { ids: ['n1'] });
      const counts = await Promise.all([...users, users[3]!, user()].map((u) => s.notificationsUnread(u)));
      expect(counts).toEqual([...users.map((_, i) => (i === 3 ? 2 : i % 5)), 2, 0]);
    });

    it('user ids with any characters are kept apart', async () => {
      const s = store();
      const base = user();
      const users = [base, `${base}}`, `{${base}}`, `${base}%7D`, `${base}}:nunread`, `${base}:x`, `${base} ü 😀`, ''];
      const res = await s.notificationsAdd(users.flatMap((u, i) => range(0, i).map((k) => ({ userId: u, notification: note(`n${k}`, k) }))));
      expect(res).toEqual(users.flatMap((_, i) => range(1, i + 1)));
      for (const [i, u] of users.entries()) {
        const got = await list(s, u);
        expect(got.unread, JSON.stringify(u)).toBe(i + 1);
        expect(ids(got.items), JSON.stringify(u)).toEqual(range(0, i).reverse().map((k) => `n${k}`));
      }
    });

    it('adding an id the user already has changes nothing: not its content, not its read state', async () => {
      const s = store();
      const u = user();
      expect(await s.notificationsAdd([{ userId: u, notification: note('n1', 1) }, { userId: u, notification: note('n2', 2) }])).toEqual([1, 2]);
      expect(await s.notificationsRead(u, { ids: ['n1'] })).toEqual({ changed: ['n1'], unread: 1 });
      const before = await list(s, u);
      // Again (a retry), with other content, a later ts, twice in one call.
      const again = note('n1', 50, { title: 'changed', kind: 'error', url: 'https://example.com/x' });
      expect(await s.notificationsAdd([{ userId: u, notification: again }, { userId: u, notification: again }])).toEqual([1, 1]);
      expect(await s.notificationsAdd([{ userId: u, notification: note('n2', 2) }])).toEqual([1]);
      expect(await list(s, u)).toEqual(before);
      expect(before.items).toEqual([
        { ...note('n2', 2), read: false },
        { ...note('n1', 1), read: true },
      ]);
    });

    it('a new notification is unread; only the notification’s own fields are stored', async () => {
      const s = store();
      const u = user();
      const extra = { ...note('n1', 1, { read: true, url: 'https://example.com/a' }), secret: 'not stored' } as StoredNotification;
      expect(await s.notificationsAdd([{ userId: u, notification: extra }])).toEqual([1]);
      const [got] = (await list(s, u)).items;
      expect(got).toEqual({ id: 'n1', kind: 'info', title: 'title n1', body: 'body of n1', url: 'https://example.com/a', ts: ts(1), read: false });
      expect(Object.keys(got!)).not.toContain('secret');
    });

    it('an item whose ts is not a date rejects the call and stores nothing', async () => {
      const s = store();
      const [a, b] = [user(), user()];
      await expect(
        s.notificationsAdd([{ userId: a, notification: note('ok', 1) }, { userId: b, notification: { ...note('bad'), ts: 'yesterday' } }]),
      ).rejects.toThrow(/ts/);
      expect(await list(s, a)).toEqual({ items: [], unread: 0 });
      expect(await list(s, b)).toEqual({ items: [], unread: 0 });
    });

    it('list: newest first by ts, whatever the order of the adds, at most limit', async () => {
      const s = store();
      const u = user();
      const order = [3, 1, 5, 2, 4];
      for (const i of order) await s.notificationsAdd([{ userId: u, notification: note(`n${i}`, i * 1000, i % 2 ? { url: `https://x/${i}` } : {}) }]);
      const all = await list(s, u, 10);
      expect(all.unread).toBe(5);
      expect(all.items).toEqual([5, 4, 3, 2, 1].map((i) => ({ ...note(`n${i}`, i * 1000, i % 2 ? { url: `https://x/${i}` } : {}), read: false })));
      expect(ids((await list(s, u, 2)).items)).toEqual(['n5', 'n4']);
      expect(await list(s, u, 0)).toEqual({ items: [], unread: 5 });
      // Equal ts: by id, the higher first (the order of a Redis zset, bytewise on UTF-8).
      const v = user();
      const tied = ['b', 'a', 'ab', 'B', '\uffff', '😀', 'é'];
      await s.notificationsAdd(tied.map((id) => ({ userId: v, notification: note(id, 7) })));
      expect(ids((await list(s, v)).items)).toEqual(['😀', '\uffff', 'é', 'b', 'ab', 'a', 'B']);
    });

    it('unreadOnly: the newest unread ones, even behind many newer read ones', async () => {
      const s = store();
      const u = user();
      // 400 notifications; the unread ones are the 40 oldest and every 50th of the rest.
      await s.notificationsAdd(range(1, 400).map((i) => ({ userId: u, notification: note(`n${i}`, i) })));
      const unread = range(1, 400).filter((i) => i <= 40 || i % 50 === 0);
      const read = range(1, 400).filter((i) => !unread.includes(i));
      expect(await s.notificationsRead(u, { ids: read.map((i) => `n${i}`) })).toEqual({ changed: read.map((i) => `n${i}`), unread: unread.length });
      const newest = [...unread].reverse().map((i) => `n${i}`);
      for (const limit of [0, 1, 3, 8, 9, 10, 47, 48, 100, 1000]) {
        const got = await list(s, u, limit, true);
        expect(got.unread).toBe(unread.length);
        expect(ids(got.items), `limit ${limit}`).toEqual(newest.slice(0, limit));
        expect(got.items.every((n) => !n.read)).toBe(true);
      }
      // Without unreadOnly: everything, with its read state.
      const all = await list(s, u);
      expect(ids(all.items)).toEqual(range(1, 400).reverse().map((i) => `n${i}`));
      expect(all.items.filter((n) => !n.read).map((n) => n.id)).toEqual(newest);
      // Nothing unread: nothing listed.
      await s.notificationsRead(u, { all: true });
      expect(await list(s, u, 10, true)).toEqual({ items: [], unread: 0 });
    });

    it('read by ids: changed lists only the ids that were unread; unknown and already read ones are ignored', async () => {
      const s = store();
      const [u, other] = [user(), user()];
      await s.notificationsAdd(range(1, 4).map((i) => ({ userId: u, notification: note(`n${i}`, i) })));
      await s.notificationsAdd([{ userId: other, notification: note('n3', 3) }]);
      expect(await s.notificationsRead(u, { ids: ['n2', 'n1'] })).toEqual({ changed: ['n2', 'n1'], unread: 2 });
      expect(await s.notificationsRead(u, { ids: ['n2', 'unknown', 'n3', 'n3'] })).toEqual({ changed: ['n3'], unread: 1 });
      expect(await s.notificationsRead(u, { ids: [] })).toEqual({ changed: [], unread: 1 });
      expect(await s.notificationsRead(u, { ids: ['n1', 'n2', 'n3'] })).toEqual({ changed: [], unread: 1 });
      expect((await list(s, u)).items.map((n) => [n.id, n.read])).toEqual([
        ['n4', false],
        ['n3', true],
        ['n2', true],
        ['n1', true],
      ]);
      expect(await s.notificationsUnread(u)).toBe(1);
      expect(await s.notificationsUnread(other)).toBe(1);
      // A user without notifications: nothing to change, and nothing comes into being.
      const nobody = user();
      expect(await s.notificationsRead(nobody, { ids: ['n1'] })).toEqual({ changed: [], unread: 0 });
      expect(await s.notificationsRead(nobody, { all: true })).toEqual({ changed: [], unread: 0 });
      expect(await list(s, nobody)).toEqual({ items: [], unread: 0 });
    });

    it('read all: every unread id changes, once', async () => {
      const s = store();
      const u = user();
      await s.notificationsAdd(range(1, 5).map((i) => ({ userId: u, notification: note(`n${i}`, i) })));
      await s.notificationsRead(u, { ids: ['n2'] });
      const res = await s.notificationsRead(u, { all: true });
      expect(res.unread).toBe(0);
      expect([...res.changed].sort()).toEqual(['n1', 'n3', 'n4', 'n5']);
      expect(await s.notificationsRead(u, { all: true })).toEqual({ changed: [], unread: 0 });
      expect((await list(s, u)).items.every((n) => n.read)).toBe(true);
      expect(await s.notificationsUnread(u)).toBe(0);
      // New ones after that are unread again.
      expect(await s.notificationsAdd([{ userId: u, notification: note('n6', 6) }])).toEqual([1]);
      expect(await list(s, u, 10, true)).toEqual({ items: [{ ...note('n6', 6), read: false }], unread: 1 });
    });

    it('concurrent reads of one notification: exactly one caller sees it change', async () => {
      const [a, b] = twin();
      const u = user();
      await a.notificationsAdd(range(1, 20).map((i) => ({ userId: u, notification: note(`n${i}`, i) })));
      const results = await Promise.all(range(1, 20).flatMap((i) => [a.notificationsRead(u, { ids: [`n${i}`] }), b.notificationsRead(u, { ids: [`n${i}`] })]));
      expect(results.flatMap((r) => r.changed).sort()).toEqual(range(1, 20).map((i) => `n${i}`).sort());
      expect(await b.notificationsUnread(u)).toBe(0);
    });

    it('the cap drops the oldest, and the unread count follows when a dropped one was unread', async () => {
      const s = store({ notificationsMax: 3 });
      const u = user();
      expect(await s.notificationsAdd(range(1, 3).map((i) => ({ userId: u, notification: note(`n${i}`, i) })))).toEqual([1, 2, 3]);
      await s.notificationsRead(u, { ids: ['n2'] });
      // n1 (unread) goes: unread n3, n4.
      expect(await s.notificationsAdd([{ userId: u, notification: note('n4', 4) }])).toEqual([2]);
      expect((await list(s, u)).items.map((n) => [n.id, n.read])).toEqual([
        ['n4', false],
        ['n3', false],
        ['n2', true],
      ]);
      // n2 (read) goes: unread n3, n4, n5.
      expect(await s.notificationsAdd([{ userId: u, notification: note('n5', 5) }])).toEqual([3]);
      expect(ids((await list(s, u)).items)).toEqual(['n5', 'n4', 'n3']);
      // Older than every kept one: dropped as it is added; so is a dropped id sent again.
      expect(await s.notificationsAdd([{ userId: u, notification: note('n0', 0) }, { userId: u, notification: note('n1', 1) }])).toEqual([3, 3]);
      expect(await list(s, u)).toMatchObject({ unread: 3 });
      expect(ids((await list(s, u)).items)).toEqual(['n5', 'n4', 'n3']);
      expect(await s.notificationsRead(u, { ids: ['n1', 'n2', 'n0'] })).toEqual({ changed: [], unread: 3 });
      // One call adding past the cap by several.
      expect(await s.notificationsAdd(range(6, 9).map((i) => ({ userId: u, notification: note(`n${i}`, i) })))).toEqual([3, 3, 3, 3]);
      expect(await list(s, u)).toMatchObject({ unread: 3 });
      expect(ids((await list(s, u)).items)).toEqual(['n9', 'n8', 'n7']);
    });

    it('expire notificationsTtlMs after the last new one; duplicates, lists and reads do not push it back', async () => {
      const s = store({ notificationsTtlMs: 300 });
      const u = user();
      const t0 = t.now();
      await s.notificationsAdd([{ userId: u, notification: note('n1', 1) }, { userId: u, notification: note('n2', 2) }]);
      await s.notificationsRead(u, { ids: ['n1'] });
      // While n1 is kept (read), sending it again changes nothing: 1 unread (n2). Once everything
      // expired it is new again: 1 unread, n1 alone. Were the duplicate to push the expiry back,
      // this would never end. What the add that found everything expired answered is checked on
      // that same round's list: a later one could come after n1 expired in its turn.
      let renewed: { unread: number[]; got: Awaited<ReturnType<typeof list>> } | undefined;
      await t.until('the notifications to expire', async () => {
        const unread = await s.notificationsAdd([{ userId: u, notification: note('n1', 1) }]);
        const got = await list(s, u);
        if (got.items.length === 2) {
          expect(unread).toEqual([1]);
          expect(got.items.map((n) => [n.id, n.read])).toEqual([
            ['n2', false],
            ['n1', true],
          ]);
          await s.notificationsRead(u, { ids: ['n1'] });
          return undefined;
        }
        // Both expired between this round's add and its list: the next add finds nothing.
        if (got.items.length === 0) return undefined;
        renewed = { unread, got };
        return true;
      });
      expect(t.now() - t0).toBeGreaterThanOrEqual(290);
      expect(renewed).toEqual({ unread: [1], got: { items: [{ ...note('n1', 1), read: false }], unread: 1 } });
      // And that one expires too, with nobody touching it but readers.
      const v = user();
      await s.notificationsAdd([{ userId: v, notification: note('n1', 1) }]);
      await t.until('v’s notifications to expire', async () => {
        const [got, unread] = [await list(s, v), await s.notificationsUnread(v)];
        await s.notificationsRead(v, { ids: ['unknown'] });
        return got.items.length === 0 && unread === 0 ? true : undefined;
      });
      expect(await s.notificationsRead(v, { all: true })).toEqual({ changed: [], unread: 0 });
    });

    it('each new notification pushes the expiry back', async () => {
      const s = store({ notificationsTtlMs: 1000 });
      const u = user();
      await s.notificationsAdd([{ userId: u, notification: note('n1', 1) }]);
      // Nothing to poll that would not be the thing tested: time has to pass.
      await t.pass(600);
      await s.notificationsAdd([{ userId: u, notification: note('n2', 2) }]);
      await t.pass(600);
      // 1200 ms after the first add, 600 ms after the last: both kept.
      expect(ids((await list(s, u)).items)).toEqual(['n2', 'n1']);
    });

    it('a bulk add for 10,000 users: every user has it, unread 1, in a handful of round trips', async () => {
      const all = bundle();
      const s = all.notifications;
      const base = user();
      const users = range(1, 10_000).map((i) => `${base}-${i}`);
      const before = t.pipelines?.(all);
      const res = await s.notificationsAdd(users.map((u) => ({ userId: u, notification: note('bulk', 1) })));
      if (t.pipelines) expect(t.pipelines(all) - before!).toBeLessThanOrEqual(10_000 / 500 + 1);
      expect(res).toHaveLength(users.length);
      expect(res.every((n) => n === 1)).toBe(true);
      for (let i = 0; i < users.length; i += 1000) {
        const counts = await Promise.all(users.slice(i, i + 1000).map((u) => s.notificationsUnread(u)));
        expect(counts.every((n) => n === 1)).toBe(true);
      }
      for (const u of [users[0]!, users[4999]!, users[9999]!]) expect(await list(s, u)).toEqual({ items: [{ ...note('bulk', 1), read: false }], unread: 1 });
    });

    it('results stay in input order across many round trips', async () => {
      const s = store();
      const us = [user(), user(), user()];
      // 1,200 items round-robin over 3 users: item i is user i % 3's (floor(i / 3) + 1)-th.
      const res = await s.notificationsAdd(range(0, 1199).map((i) => ({ userId: us[i % 3]!, notification: note(`n${i}`, i) })));
      expect(res).toEqual(range(0, 1199).map((i) => Math.floor(i / 3) + 1));
      for (const u of us) expect(await s.notificationsUnread(u)).toBe(400);
    });
  });
});

describe('Notifications on Redis', () => {
  const redis = withRedisStores();

  it('an error inside a bulk add’s pipeline rejects the call; the other users are stored', async () => {
    const prefix = `perr${randomId(6)}:`;
    const s = redis.stores(prefix).notifications;
    // User "bad" has a key of the wrong type where its notifications go: its script fails.
    await redis.raw().set(`${prefix}{u:bad}:nitems`, 'x');
    const note = { id: 'n1', kind: 'info' as const, title: 't', body: 'b', ts: ts(), read: false };
    const users = range(1, 1000).map((i) => (i === 700 ? 'bad' : `u${i}`));
    const err = await s.notificationsAdd(users.map((userId) => ({ userId, notification: note }))).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/WRONGTYPE/);
    expect(err).not.toMatchObject({ code: 'unavailable' });
    // Earlier users were stored (a retry with the same ids is harmless), in the same pipeline too.
    expect(await s.notificationsUnread('u1')).toBe(1);
    expect(await s.notificationsUnread('u699')).toBe(1);
    expect(await s.notificationsAdd([{ userId: 'u699', notification: note }])).toEqual([1]);
  });
});
