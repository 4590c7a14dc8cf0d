/**
 * The History contract (shared/history.ts) on every backend: sequence numbers, dedupe, pages,
 * trimming, expiry and epochs, and the rooms that hold nothing.
 */
import { describe, it, expect } from 'vitest';
import type { StoreOptions } from '../../shared/stores.ts';
import type { History } from '../../shared/history.ts';
import { randomId } from '../../shared/ids.ts';
import { contract, head, range, room, tail, ts, withRedisStores } from './harness.ts';

contract('History', (t) => {
  const store = (opts?: Partial<StoreOptions>) => t.stores(opts).history;
  /** The seq of each history entry built with `head` and `tail`. */
  const seqs = (entries: string[]) => entries.map((e) => (JSON.parse(e) as { seq: number }).seq);
  /** Appends `n` messages one after the other; message i (from 1) has tail `tail(i)`. */
  const fill = async (s: History, r: string, n: number) => {
    for (let i = 1; i <= n; i++) await s.append(r, { head, tail: tail(i), ts: ts(i) });
  };

  describe('append', () => {
    it('seq starts at 1 and rises by exactly 1; entries are head + seq + tail', async () => {
      const s = store();
      const r = room();
      const a = await s.append(r, { head: 'H<', tail: '>T', ts: ts(1) });
      const b = await s.append(r, { head: 'H<', tail: '>T', ts: ts(2) });
      const c = await s.append(r, { head: '', tail: '', ts: ts(3) });
      expect([a.seq, b.seq, c.seq]).toEqual([1, 2, 3]);
      expect([a.ts, b.ts, c.ts]).toEqual([ts(1), ts(2), ts(3)]);
      expect([a.duplicate, b.duplicate, c.duplicate]).toEqual([false, false, false]);
      expect(b.epoch).toBe(a.epoch);
      expect(c.epoch).toBe(a.epoch);
      const page = await s.history(r, { limit: 10 });
      expect(page.entries).toEqual(['H<1>T', 'H<2>T', '3']);
      expect(page).toMatchObject({ seq: 3, epoch: a.epoch, oldest: 1 });
    });

    it('rooms have independent sequences and epochs', async () => {
      const s = store();
      const [r1, r2] = [room(), room()];
      await fill(s, r1, 3);
      const first = await s.append(r2, { head, tail: tail('x'), ts: ts() });
      expect(first.seq).toBe(1);
      expect(first.epoch).not.toBe((await s.history(r1, { limit: 0 })).epoch);
    });

    it('keeps entries whose text is identical', async () => {
      const s = store();
      const r = room();
      // seq 1 with head '1' and seq 11 with nothing around it are both the string "11".
      await s.append(r, { head: '1', tail: '', ts: ts() });
      for (let i = 2; i <= 10; i++) await s.append(r, { head: 'x', tail: '', ts: ts() });
      await s.append(r, { head: '', tail: '', ts: ts() });
      const page = await s.history(r, { limit: 100 });
      expect(page.entries).toHaveLength(11);
      expect(page.entries[0]).toBe('11');
      expect(page.entries[10]).toBe('11');
      expect(page.oldest).toBe(1);
    });

    it('appends made in one turn, to several rooms, with and without cids, each get what they would alone', async () => {
      const s = store();
      const [r1, r2, r3] = [room(), room(), room()];
      await fill(s, r3, 2);
      const d = `dd-${randomId(6)}`;
      // Made without awaiting in between: the Redis store sends these as one script call.
      const calls = [
        s.append(r1, { head, tail: tail('a'), ts: ts(1) }),
        s.append(r2, { head, tail: tail('b'), ts: ts(2), dedupeKey: d }),
        s.append(r1, { head, tail: tail('c'), ts: ts(3), dedupeKey: `${d}-1` }),
        s.append(r2, { head, tail: tail('b again'), ts: ts(4), dedupeKey: d }),
        s.append(r3, { head, tail: tail('d'), ts: ts(5) }),
      ];
      const [a, b, c, bAgain, e] = await Promise.all(calls);
      expect([a!.seq, c!.seq, b!.seq, e!.seq]).toEqual([1, 2, 1, 3]);
      expect([a!.duplicate, b!.duplicate, c!.duplicate, e!.duplicate]).toEqual([false, false, false, false]);
      // The same cid later in the same turn is the first one's append: its seq, epoch and ts.
      expect(bAgain).toEqual({ ...b!, duplicate: true });
      expect(c!.epoch).toBe(a!.epoch);
      expect((await s.history(r1, { limit: 10 })).entries).toEqual([head + 1 + tail('a'), head + 2 + tail('c')]);
      expect((await s.history(r2, { limit: 10 })).entries).toEqual([head + 1 + tail('b')]);
      expect(seqs((await s.history(r3, { limit: 10 })).entries)).toEqual([1, 2, 3]);
    });

    it('concurrent appends get distinct contiguous seqs, stored in seq order', async () => {
      const s = store();
      const r = room();
      const results = await Promise.all(range(1, 200).map((i) => s.append(r, { head, tail: tail(i), ts: ts(i) })));
      expect(results.map((x) => x.seq).sort((a, b) => a - b)).toEqual(range(1, 200));
      expect(new Set(results.map((x) => x.epoch)).size).toBe(1);
      const page = await s.history(r, { limit: 500 });
      expect(page.seq).toBe(200);
      expect(seqs(page.entries)).toEqual(range(1, 200));
      // Each entry is the one of the append that got its seq.
      for (const [k, res] of results.entries()) expect(page.entries[res.seq - 1]).toBe(head + res.seq + tail(k + 1));
    });
  });

  describe('dedupe', () => {
    it('a repeated dedupe key returns the first seq and ts with duplicate: true and stores nothing', async () => {
      const s = store();
      const r = room();
      const first = await s.append(r, { head, tail: tail('a'), ts: ts(1), dedupeKey: 'u1\ncid-1' });
      await s.append(r, { head, tail: tail('b'), ts: ts(2) });
      const again = await s.append(r, { head, tail: tail('a2'), ts: ts(3), dedupeKey: 'u1\ncid-1' });
      expect(first).toMatchObject({ seq: 1, ts: ts(1), duplicate: false });
      expect(again).toEqual({ seq: 1, epoch: first.epoch, ts: ts(1), duplicate: true });
      const page = await s.history(r, { limit: 10 });
      expect(page.seq).toBe(2);
      expect(page.entries).toEqual([head + 1 + tail('a'), head + 2 + tail('b')]);
    });

    it('a different dedupe key, or the same key in another room, stores', async () => {
      const s = store();
      const [r1, r2] = [room(), room()];
      const a = await s.append(r1, { head, tail: tail('a'), ts: ts(1), dedupeKey: 'k1' });
      const b = await s.append(r1, { head, tail: tail('b'), ts: ts(2), dedupeKey: 'k2' });
      const c = await s.append(r2, { head, tail: tail('c'), ts: ts(3), dedupeKey: 'k1' });
      expect([a.seq, b.seq, c.seq]).toEqual([1, 2, 1]);
      expect([a.duplicate, b.duplicate, c.duplicate]).toEqual([false, false, false]);
      expect((await s.history(r1, { limit: 10 })).entries).toHaveLength(2);
      expect((await s.history(r2, { limit: 10 })).entries).toHaveLength(1);
    });

    it('concurrent appends with one dedupe key store exactly once', async () => {
      const s = store();
      const r = room();
      const results = await Promise.all(range(1, 50).map((i) => s.append(r, { head, tail: tail(i), ts: ts(i), dedupeKey: 'same' })));
      const stored = results.filter((x) => !x.duplicate);
      expect(stored).toHaveLength(1);
      expect(results.every((x) => x.seq === 1 && x.ts === stored[0]!.ts)).toBe(true);
      const page = await s.history(r, { limit: 100 });
      expect(page.seq).toBe(1);
      expect(page.entries).toHaveLength(1);
    });

    it('a dedupe key is forgotten after dedupeTtlMs', async () => {
      const s = store({ dedupeTtlMs: 200 });
      const r = room();
      const first = await s.append(r, { head, tail: tail(1), ts: ts(1), dedupeKey: 'k' });
      expect((await s.append(r, { head, tail: tail(1), ts: ts(2), dedupeKey: 'k' })).duplicate).toBe(true);
      const stored = await t.until('the dedupe key to expire', async () => {
        const res = await s.append(r, { head, tail: tail(1), ts: ts(3), dedupeKey: 'k' });
        if (!res.duplicate) return res;
        expect(res).toMatchObject({ seq: 1, ts: ts(1) });
        return undefined;
      });
      expect(stored).toEqual({ seq: 2, epoch: first.epoch, ts: ts(3), duplicate: false });
      expect((await s.history(r, { limit: 10 })).entries).toHaveLength(2);
    });
  });

  describe('history', () => {
    it('an empty room with members has seq 0, oldest 1 and an epoch that stays and is the first append’s', async () => {
      const all = t.stores();
      const { history: s, presence: p } = all;
      const r = room();
      await p.presenceAdd(r, { connId: 'c1', user: { id: 'u', name: 'U' }, node: 'n1' });
      const p1 = await s.history(r, { limit: 10 });
      expect(p1).toMatchObject({ seq: 0, oldest: 1, entries: [] });
      expect(typeof p1.epoch).toBe('string');
      expect(p1.epoch.length).toBeGreaterThan(0);
      const p2 = await s.history(r, { after: 0, limit: 10 });
      expect(p2).toEqual({ seq: 0, epoch: p1.epoch, oldest: 1, entries: [] });
      const a = await s.append(r, { head, tail: tail(1), ts: ts() });
      expect(a).toMatchObject({ seq: 1, epoch: p1.epoch });
      expect(await s.history(r, { limit: 10 })).toEqual({ seq: 1, epoch: p1.epoch, oldest: 1, entries: [head + 1 + tail(1)] });
    });

    it('different empty rooms get different epochs', async () => {
      const s = store();
      const [a, b] = await Promise.all([s.history(room(), { limit: 1 }), s.history(room(), { limit: 1 })]);
      expect(a.epoch).not.toBe(b.epoch);
    });

    it('pages: latest, after, before, limit', async () => {
      const s = store();
      const r = room();
      await fill(s, r, 10);
      const q = async (query: { after?: number; before?: number; limit: number }) => {
        const page = await s.history(r, query);
        expect(page.seq).toBe(10);
        expect(page.oldest).toBe(1);
        return seqs(page.entries);
      };
      // Neither: the latest `limit`, oldest first.
      expect(await q({ limit: 3 })).toEqual([8, 9, 10]);
      expect(await q({ limit: 100 })).toEqual(range(1, 10));
      expect(await q({ limit: 0 })).toEqual([]);
      // after: the first `limit` with seq > after.
      expect(await q({ after: 2, limit: 3 })).toEqual([3, 4, 5]);
      expect(await q({ after: 0, limit: 100 })).toEqual(range(1, 10));
      expect(await q({ after: 8, limit: 5 })).toEqual([9, 10]);
      expect(await q({ after: 10, limit: 5 })).toEqual([]);
      expect(await q({ after: 50, limit: 5 })).toEqual([]);
      expect(await q({ after: 3, limit: 0 })).toEqual([]);
      // before: the last `limit` with seq < before.
      expect(await q({ before: 5, limit: 3 })).toEqual([2, 3, 4]);
      expect(await q({ before: 3, limit: 5 })).toEqual([1, 2]);
      expect(await q({ before: 1, limit: 5 })).toEqual([]);
      expect(await q({ before: 11, limit: 2 })).toEqual([9, 10]);
      expect(await q({ before: 100, limit: 100 })).toEqual(range(1, 10));
      // Both (not in the port's comment; the worker refuses it): the first `limit` in between.
      expect(await q({ after: 2, before: 6, limit: 10 })).toEqual([3, 4, 5]);
      expect(await q({ after: 2, before: 9, limit: 2 })).toEqual([3, 4]);
      // The entries are exactly what was appended.
      expect((await s.history(r, { after: 4, limit: 1 })).entries).toEqual([head + 5 + tail(5)]);
    });

    it('is trimmed to historyMax and oldest says so', async () => {
      const s = store({ historyMax: 5 });
      const r = room();
      await fill(s, r, 8);
      const page = await s.history(r, { limit: 100 });
      expect(page).toMatchObject({ seq: 8, oldest: 4 });
      expect(seqs(page.entries)).toEqual([4, 5, 6, 7, 8]);
      expect(seqs((await s.history(r, { after: 1, limit: 100 })).entries)).toEqual([4, 5, 6, 7, 8]);
      expect(seqs((await s.history(r, { after: 1, limit: 2 })).entries)).toEqual([4, 5]);
      expect(seqs((await s.history(r, { before: 6, limit: 10 })).entries)).toEqual([4, 5]);
      expect(seqs((await s.history(r, { before: 4, limit: 10 })).entries)).toEqual([]);
      // Trimming goes on as appends go on.
      await fill(s, r, 100);
      const later = await s.history(r, { limit: 100 });
      expect(later).toMatchObject({ seq: 108, oldest: 104 });
      expect(seqs(later.entries)).toEqual(range(104, 108));
    });

    it('expires historyTtlMs after the last append: new epoch, seq from 1', async () => {
      const all = t.stores({ historyTtlMs: 300 });
      const { history: s, presence: p } = all;
      const r = room();
      const a = await s.append(r, { head, tail: tail(1), ts: ts() });
      await s.append(r, { head, tail: tail(2), ts: ts() });
      const gone = await t.until('the history to expire', async () => {
        const page = await s.history(r, { limit: 10 });
        if (page.seq === 2) {
          expect(page).toMatchObject({ epoch: a.epoch, oldest: 1 });
          return undefined;
        }
        return page;
      });
      expect(gone).toMatchObject({ seq: 0, oldest: 1, entries: [] });
      expect(gone.epoch).not.toBe(a.epoch);
      // The epoch handed out by history() to a member is the one the next append uses.
      await p.presenceAdd(r, { connId: 'c1', user: { id: 'u', name: 'U' }, node: 'n1' });
      const held = await s.history(r, { limit: 10 });
      expect(held).toMatchObject({ seq: 0, oldest: 1, entries: [] });
      expect(held.epoch).not.toBe(a.epoch);
      const b = await s.append(r, { head, tail: tail(3), ts: ts() });
      expect(b).toMatchObject({ seq: 1, epoch: held.epoch, duplicate: false });
      expect((await s.history(r, { limit: 10 })).entries).toEqual([head + 1 + tail(3)]);
    });

    it('an append after expiry, with no read in between, starts a new epoch at seq 1', async () => {
      const s = store({ historyTtlMs: 200 });
      const r = room();
      const a = await s.append(r, { head, tail: tail(1), ts: ts() });
      await s.append(r, { head, tail: tail(2), ts: ts() });
      // Nothing to poll without touching the room: wait out the TTL (both stores expire exactly).
      await t.pass(350);
      const b = await s.append(r, { head, tail: tail(3), ts: ts() });
      expect(b.seq).toBe(1);
      expect(b.epoch).not.toBe(a.epoch);
      expect(await s.history(r, { limit: 10 })).toEqual({ seq: 1, epoch: b.epoch, oldest: 1, entries: [head + 1 + tail(3)] });
    });

    it('each append pushes the expiry back', async () => {
      const s = store({ historyTtlMs: 1000 });
      const r = room();
      const a = await s.append(r, { head, tail: tail(1), ts: ts() });
      await t.pass(600);
      await s.append(r, { head, tail: tail(2), ts: ts() });
      await t.pass(600);
      // 1200 ms after the first append, 600 ms after the last.
      expect(await s.history(r, { limit: 10 })).toMatchObject({ seq: 2, epoch: a.epoch, oldest: 1 });
    });
  });

  describe('empty rooms', () => {
    const alice = { id: 'u-alice', name: 'Alice' };
    const bob = { id: 'u-bob', name: 'Bob' };

    it('a room without history and members holds nothing: join, reads, typing off, leave leave no trace', async () => {
      const all = t.stores();
      const { history: s, presence: p } = all;
      const r = room();
      expect(await t.residue(all)).toEqual([]);
      await p.presenceAdd(r, { connId: 'c1', user: alice, node: 'n1' });
      await p.presenceAdd(r, { connId: 'c2', user: bob, node: 'n1' });
      const joined = await s.history(r, { limit: 50 });
      expect((await s.history(r, { after: 0, limit: 50 })).epoch).toBe(joined.epoch);
      await p.presenceRemove(r, 'c1');
      // One member left: the epoch stays.
      expect((await s.history(r, { limit: 0 })).epoch).toBe(joined.epoch);
      await p.presenceMembers(r);
      await p.presenceRemove(r, 'c2');
      await all.typing.typingSet(r, bob, false, 5000);
      // Reads by non-members, of this room and of rooms nobody ever joined.
      const after = await s.history(r, { limit: 50 });
      await s.history(room(), { limit: 50 });
      await p.presenceMembers(room());
      await p.presenceRemove(room(), 'c3');
      expect(await t.residue(all)).toEqual([]);
      expect(after).toMatchObject({ seq: 0, oldest: 1, entries: [] });
      // Its epoch was forgotten with it.
      expect(after.epoch).not.toBe(joined.epoch);
    });

    it('a room with history keeps its epoch and seq when its last member leaves', async () => {
      const all = t.stores();
      const { history: s, presence: p } = all;
      const r = room();
      await p.presenceAdd(r, { connId: 'c1', user: alice, node: 'n1' });
      const joined = await s.history(r, { limit: 50 });
      const a = await s.append(r, { head, tail: tail(1), ts: ts() });
      expect(a).toMatchObject({ seq: 1, epoch: joined.epoch });
      await p.presenceRemove(r, 'c1');
      expect(await s.history(r, { limit: 50 })).toEqual({ seq: 1, epoch: joined.epoch, oldest: 1, entries: [head + 1 + tail(1)] });
      expect(await s.append(r, { head, tail: tail(2), ts: ts() })).toMatchObject({ seq: 2, epoch: joined.epoch });
    });
  });
});

describe('History on Redis', () => {
  const redis = withRedisStores();

  it('room names cannot break out of the hash tag', async () => {
    const h = redis.stores().history;
    // Without escaping, room "a" with dedupe key "x}:meta" and room "a}:dd:x" would share keys.
    const plain = `a${randomId(4)}`;
    await h.append(`${plain}}:dd:x`, { head, tail: tail(1), ts: ts() });
    await h.append(plain, { head, tail: tail(2), ts: ts(), dedupeKey: 'x}:meta' });
    expect((await h.history(plain, { limit: 5 })).entries).toEqual([head + 1 + tail(2)]);
    expect((await h.history(`${plain}}:dd:x`, { limit: 5 })).entries).toEqual([head + 1 + tail(1)]);
  });
});
