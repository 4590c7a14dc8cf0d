/**
 * The Store contract (shared/store.ts), one suite run against every implementation: MemoryStore,
 * and RedisStore against a real redis-server. Each test uses fresh room names (and, on Redis, a
 * fresh key prefix), so tests never see each other's data.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Redis } from 'ioredis';
import { randomId } from '../../shared/ids.ts';
import type { User } from '../../shared/protocol/schemas.ts';
import type { ExpiredSession, Store, StoreOptions, StoredNotification } from '../../shared/store.ts';
import { MemoryStore } from '../../shared/store-memory.ts';
import { RedisStore, scriptSource } from '../../shared/store-redis.ts';
import { startRedis, type Service } from '../harness/servers.ts';

interface Implementation {
  name: string;
  /**
   * Starts what the implementation needs; returns a factory of stores, a factory of two stores on
   * the same data (two processes on one Redis; one MemoryStore used twice, as the embedded mode's
   * concurrent callers do) and a teardown.
   */
  setup(): Promise<{ make(opts?: Partial<StoreOptions>): Store; twin(opts?: Partial<StoreOptions>): [Store, Store]; teardown(): Promise<void> }>;
  /** Round trips that carry many commands so far, where the implementation has any (RedisStore). */
  pipelines?(s: Store): number;
  /** What a store made by `make` holds: non-empty collections (memory), keys (Redis). */
  residue(s: Store): Promise<string[]>;
}

const prefixes = new WeakMap<Store, string>();

const implementations: Implementation[] = [
  {
    name: 'MemoryStore',
    async setup() {
      return {
        make: (opts) => new MemoryStore(opts),
        twin: (opts) => {
          const s = new MemoryStore(opts);
          return [s, s];
        },
        teardown: async () => {},
      };
    },
    residue: async (s) =>
      Object.entries((s as MemoryStore).size)
        .filter(([, n]) => n > 0)
        .map(([k, n]) => `${k}: ${n}`),
  },
  {
    name: 'RedisStore',
    async setup() {
      const redis = await startRedis();
      raw = new Redis(redis.url);
      return {
        make: (opts) => {
          const keyPrefix = `t${randomId(6)}:`;
          const s = new RedisStore(redis.url, { ...opts, keyPrefix });
          prefixes.set(s, keyPrefix);
          return s;
        },
        twin: (opts) => {
          const keyPrefix = `t${randomId(6)}:`;
          return [new RedisStore(redis.url, { ...opts, keyPrefix }), new RedisStore(redis.url, { ...opts, keyPrefix })];
        },
        teardown: async () => {
          raw?.disconnect();
          await redis.stop();
        },
      };
    },
    pipelines: (s) => (s as RedisStore).stats.pipelines,
    residue: async (s) => (await raw!.keys(`${prefixes.get(s)!}*`)).sort(),
  },
];
/** A plain client of the contract suite's Redis, to look at keys. */
let raw: Redis | undefined;

const room = () => `room-${randomId(6)}`;
const head = '{"seq":';
const tail = (i: number | string) => `,"i":${JSON.stringify(i)}}`;
const ts = (i = 0) => new Date(Date.UTC(2024, 0, 1, 0, 0, 0, i)).toISOString();
/** The seq of each history entry built with `head` and `tail`. */
const seqs = (entries: string[]) => entries.map((e) => (JSON.parse(e) as { seq: number }).seq);
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, k) => from + k);
const byId = (users: User[]) => [...users].sort((a, b) => a.id.localeCompare(b.id));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` until it returns a value other than undefined; fails after `timeoutMs`. */
async function until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

function storeContract(impl: Implementation) {
  describe(impl.name, () => {
    let make: (opts?: Partial<StoreOptions>) => Store;
    let makeTwin: (opts?: Partial<StoreOptions>) => [Store, Store];
    let teardown: () => Promise<void> = async () => {};
    const stores: Store[] = [];
    const store = (opts?: Partial<StoreOptions>) => {
      const s = make(opts);
      stores.push(s);
      return s;
    };
    const twin = (opts?: Partial<StoreOptions>) => {
      const pair = makeTwin(opts);
      stores.push(...pair);
      return pair;
    };
    /** Appends `n` messages one after the other; message i (from 1) has tail `tail(i)`. */
    const fill = async (s: Store, r: string, n: number) => {
      for (let i = 1; i <= n; i++) await s.append(r, { head, tail: tail(i), ts: ts(i) });
    };

    beforeAll(async () => {
      ({ make, twin: makeTwin, teardown } = await impl.setup());
    });
    afterAll(async () => {
      await Promise.all(stores.map((s) => s.close()));
      await teardown();
    });

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
        const stored = await until('the dedupe key to expire', async () => {
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
        const s = store();
        const r = room();
        await s.presenceAdd(r, { connId: 'c1', user: { id: 'u', name: 'U' }, node: 'n1' });
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
        const s = store({ historyTtlMs: 300 });
        const r = room();
        const a = await s.append(r, { head, tail: tail(1), ts: ts() });
        await s.append(r, { head, tail: tail(2), ts: ts() });
        const gone = await until('the history to expire', async () => {
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
        await s.presenceAdd(r, { connId: 'c1', user: { id: 'u', name: 'U' }, node: 'n1' });
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
        await sleep(350);
        const b = await s.append(r, { head, tail: tail(3), ts: ts() });
        expect(b.seq).toBe(1);
        expect(b.epoch).not.toBe(a.epoch);
        expect(await s.history(r, { limit: 10 })).toEqual({ seq: 1, epoch: b.epoch, oldest: 1, entries: [head + 1 + tail(3)] });
      });

      it('each append pushes the expiry back', async () => {
        const s = store({ historyTtlMs: 1000 });
        const r = room();
        const a = await s.append(r, { head, tail: tail(1), ts: ts() });
        await sleep(600);
        await s.append(r, { head, tail: tail(2), ts: ts() });
        await sleep(600);
        // 1200 ms after the first append, 600 ms after the last.
        expect(await s.history(r, { limit: 10 })).toMatchObject({ seq: 2, epoch: a.epoch, oldest: 1 });
      });
    });

    describe('empty rooms', () => {
      const alice = { id: 'u-alice', name: 'Alice' };
      const bob = { id: 'u-bob', name: 'Bob' };

      it('a room without history and members holds nothing: join, reads, typing off, leave leave no trace', async () => {
        const s = store();
        const r = room();
        expect(await impl.residue(s)).toEqual([]);
        await s.presenceAdd(r, { connId: 'c1', user: alice, node: 'n1' });
        await s.presenceAdd(r, { connId: 'c2', user: bob, node: 'n1' });
        const joined = await s.history(r, { limit: 50 });
        expect((await s.history(r, { after: 0, limit: 50 })).epoch).toBe(joined.epoch);
        await s.presenceRemove(r, 'c1');
        // One member left: the epoch stays.
        expect((await s.history(r, { limit: 0 })).epoch).toBe(joined.epoch);
        await s.presenceMembers(r);
        await s.presenceRemove(r, 'c2');
        await s.typingSet(r, bob, false, 5000);
        // Reads by non-members, of this room and of rooms nobody ever joined.
        const after = await s.history(r, { limit: 50 });
        await s.history(room(), { limit: 50 });
        await s.presenceMembers(room());
        await s.presenceRemove(room(), 'c3');
        expect(await impl.residue(s)).toEqual([]);
        expect(after).toMatchObject({ seq: 0, oldest: 1, entries: [] });
        // Its epoch was forgotten with it.
        expect(after.epoch).not.toBe(joined.epoch);
      });

      it('a room with history keeps its epoch and seq when its last member leaves', async () => {
        const s = store();
        const r = room();
        await s.presenceAdd(r, { connId: 'c1', user: alice, node: 'n1' });
        const joined = await s.history(r, { limit: 50 });
        const a = await s.append(r, { head, tail: tail(1), ts: ts() });
        expect(a).toMatchObject({ seq: 1, epoch: joined.epoch });
        await s.presenceRemove(r, 'c1');
        expect(await s.history(r, { limit: 50 })).toEqual({ seq: 1, epoch: joined.epoch, oldest: 1, entries: [head + 1 + tail(1)] });
        expect(await s.append(r, { head, tail: tail(2), ts: ts() })).toMatchObject({ seq: 2, epoch: joined.epoch });
      });
    });

    describe('presence', () => {
      const alice = { id: 'u-alice', name: 'Alice' };
      const bob = { id: 'u-bob', name: 'Bob' };

      it('join and leave: firstForUser and lastForUser with two connections of one user', async () => {
        const s = store();
        const r = room();
        expect(await s.presenceMembers(r)).toEqual([]);

        const a1 = await s.presenceAdd(r, { connId: 'c1', user: alice, node: 'n1' });
        expect(a1.firstForUser).toBe(true);
        expect(a1.members).toEqual([alice]);
        const a2 = await s.presenceAdd(r, { connId: 'c2', user: alice, node: 'n2' });
        expect(a2.firstForUser).toBe(false);
        expect(a2.members).toEqual([alice]);
        const b1 = await s.presenceAdd(r, { connId: 'c3', user: bob, node: 'n1' });
        expect(b1.firstForUser).toBe(true);
        expect(byId(b1.members)).toEqual([alice, bob]);
        expect(byId(await s.presenceMembers(r))).toEqual([alice, bob]);

        expect(await s.presenceRemove(r, 'c1')).toEqual({ user: alice, lastForUser: false });
        expect(byId(await s.presenceMembers(r))).toEqual([alice, bob]);
        expect(await s.presenceRemove(r, 'c2')).toEqual({ user: alice, lastForUser: true });
        expect(await s.presenceMembers(r)).toEqual([bob]);
        expect(await s.presenceRemove(r, 'c3')).toEqual({ user: bob, lastForUser: true });
        expect(await s.presenceMembers(r)).toEqual([]);

        // A user who left entirely joins again: first again.
        expect((await s.presenceAdd(r, { connId: 'c4', user: alice, node: 'n1' })).firstForUser).toBe(true);
      });

      it('adding the same connection twice is a no-op', async () => {
        const s = store();
        const r = room();
        expect((await s.presenceAdd(r, { connId: 'c1', user: alice, node: 'n1' })).firstForUser).toBe(true);
        const again = await s.presenceAdd(r, { connId: 'c1', user: alice, node: 'n1' });
        expect(again).toEqual({ firstForUser: false, members: [alice] });
        // Counted once: one remove is the last.
        expect(await s.presenceRemove(r, 'c1')).toEqual({ user: alice, lastForUser: true });
        expect(await s.presenceMembers(r)).toEqual([]);
      });

      it('removing an unknown connection changes nothing', async () => {
        const s = store();
        const r = room();
        expect(await s.presenceRemove(r, 'nope')).toEqual({ lastForUser: false });
        await s.presenceAdd(r, { connId: 'c1', user: alice, node: 'n1' });
        const res = await s.presenceRemove(r, 'nope');
        expect(res.user).toBeUndefined();
        expect(res.lastForUser).toBe(false);
        expect(await s.presenceMembers(r)).toEqual([alice]);
        expect(await s.presenceRemove(r, 'c1')).toEqual({ user: alice, lastForUser: true });
        expect(await s.presenceRemove(r, 'c1')).toEqual({ lastForUser: false });
      });

      it('lists each user once and keeps rooms apart', async () => {
        const s = store();
        const [r1, r2] = [room(), room()];
        for (let i = 0; i < 5; i++) await s.presenceAdd(r1, { connId: `a${i}`, user: alice, node: `n${i % 2}` });
        await s.presenceAdd(r1, { connId: 'b0', user: bob, node: 'n0' });
        await s.presenceAdd(r2, { connId: 'b1', user: bob, node: 'n1' });
        expect(byId(await s.presenceMembers(r1))).toEqual([alice, bob]);
        expect(await s.presenceMembers(r2)).toEqual([bob]);
        // Bob's connection in r2 is not his last in r1 and vice versa.
        expect(await s.presenceRemove(r1, 'b0')).toEqual({ user: bob, lastForUser: true });
        expect(await s.presenceMembers(r2)).toEqual([bob]);
      });

      it('firstForUser and lastForUser are exact under concurrency', async () => {
        const s = store();
        const r = room();
        const conns = range(1, 30).map((i) => `c${i}`);
        const adds = await Promise.all(conns.map((connId, i) => s.presenceAdd(r, { connId, user: i % 3 ? alice : bob, node: 'n' })));
        expect(adds.filter((a) => a.firstForUser)).toHaveLength(2);
        expect(byId(await s.presenceMembers(r))).toEqual([alice, bob]);
        const removes = await Promise.all(conns.map((c) => s.presenceRemove(r, c)));
        expect(removes.filter((x) => x.lastForUser).map((x) => x.user).sort((a, b) => a!.id.localeCompare(b!.id))).toEqual([alice, bob]);
        expect(removes.every((x) => x.user !== undefined)).toBe(true);
        expect(await s.presenceMembers(r)).toEqual([]);
      });
    });

    describe('sessions', () => {
      const alice = { id: 'u-alice', name: 'Alice' };
      const bob = { id: 'u-bob', name: 'Bob' };
      const sid = () => `s-${randomId(8)}`;
      const node = () => `n-${randomId(4)}`;
      /** Sweep options under which nothing in these tests is ever due by accident. */
      const calm = { nodeTimeoutMs: 3600_000, graceMs: 3600_000, leaseMs: 3600_000, limit: 100 };
      const ids = (xs: { sessionId: string }[]) => xs.map((x) => x.sessionId).sort();

      /** Sweeps with every store until `want` sessions were handed out; fails on a second hand-out. */
      async function sweepUntil(sweepers: Store[], opts: Parameters<Store['sweepSessions']>[0], want: number, between?: () => Promise<void>) {
        const got = new Map<string, ExpiredSession>();
        await until(`${want} sessions to be handed out`, async () => {
          await between?.();
          const rounds = await Promise.all(sweepers.map((s) => s.sweepSessions(opts)));
          for (const round of rounds) {
            expect(round.length).toBeLessThanOrEqual(opts.limit);
            for (const x of round) {
              expect(got.has(x.sessionId), `${x.sessionId} handed out twice`).toBe(false);
              got.set(x.sessionId, x);
            }
          }
          return got.size >= want ? got : undefined;
        });
        return got;
      }

      it('resume by the same user returns the rooms, on any node; rooms can be added and removed', async () => {
        const s = store();
        const id = sid();
        const [n1, n2] = [node(), node()];
        await s.sessionCreate(id, alice, n1, 'c1');
        expect(await s.sessionResume(id, alice, n1, 'c2')).toEqual([]);
        for (const r of ['r-b', 'r-a', 'r-c']) await s.sessionAddRoom(id, r);
        await s.sessionAddRoom(id, 'r-a');
        expect(await s.sessionResume(id, alice, n2, 'c3')).toEqual(['r-a', 'r-b', 'r-c']);
        await s.sessionRemoveRoom(id, 'r-b');
        await s.sessionRemoveRoom(id, 'r-unknown');
        expect(await s.sessionResume(id, alice, n1, 'c4')).toEqual(['r-a', 'r-c']);
        // The session follows its latest connection only.
        expect(await s.sessionDetach(id, 'c3', 60_000)).toBe(false);
        expect(await s.sessionDetach(id, 'c4', 60_000)).toBe(true);
        // Detached, within its grace period: it comes back.
        expect(await s.sessionResume(id, alice, n2, 'c5')).toEqual(['r-a', 'r-c']);
        expect(await s.sweepSessions(calm)).toEqual([]);
      });

      it('resume refuses an unknown id and another user’s session, and changes nothing', async () => {
        const s = store();
        const id = sid();
        await s.sessionCreate(id, alice, node(), 'c1');
        await s.sessionAddRoom(id, 'r1');
        expect(await s.sessionResume(sid(), alice, node(), 'c2')).toBeUndefined();
        expect(await s.sessionResume(id, bob, node(), 'c2')).toBeUndefined();
        // Still attached to c1 (bob's attempt did not take it over), rooms intact.
        expect(await s.sessionDetach(id, 'c2', 60_000)).toBe(false);
        expect(await s.sessionDetach(id, 'c1', 60_000)).toBe(true);
        expect(await s.sessionResume(id, bob, node(), 'c3')).toBeUndefined();
        expect(await s.sessionResume(id, alice, node(), 'c4')).toEqual(['r1']);
        // Rooms of an unknown session are not recorded: it does not come into being.
        const ghost = sid();
        await s.sessionAddRoom(ghost, 'r1');
        expect(await s.sessionResume(ghost, alice, node(), 'c5')).toBeUndefined();
      });

      it('create with an existing id replaces the session', async () => {
        const s = store();
        const id = sid();
        await s.sessionCreate(id, alice, node(), 'c1');
        await s.sessionAddRoom(id, 'r1');
        await s.sessionCreate(id, bob, node(), 'c2');
        expect(await s.sessionResume(id, alice, node(), 'c3')).toBeUndefined();
        expect(await s.sessionResume(id, bob, node(), 'c3')).toEqual([]);
      });

      it('detach: only by the attached connection, and once', async () => {
        const s = store();
        const id = sid();
        await s.sessionCreate(id, alice, node(), 'c1');
        expect(await s.sessionDetach(id, 'c-other', 60_000)).toBe(false);
        expect(await s.sessionDetach(sid(), 'c1', 60_000)).toBe(false);
        expect(await s.sessionDetach(id, 'c1', 60_000)).toBe(true);
        expect(await s.sessionDetach(id, 'c1', 60_000)).toBe(false);
        // Before its deadline a detached session is nobody's to sweep.
        expect(await s.sweepSessions({ ...calm, nodeTimeoutMs: 0 })).toEqual([]);
      });

      it('an expired session is handed out exactly once among concurrent sweepers, with its user and rooms', async () => {
        const [a, b] = twin();
        const sessions = range(1, 10).map((i) => ({ id: sid(), user: i % 2 ? alice : bob, rooms: [`r${i}`, `r${i + 1}`] }));
        const n = node();
        for (const [i, x] of sessions.entries()) {
          const s = i % 2 ? a : b;
          await s.sessionCreate(x.id, x.user, n, `c${i}`);
          for (const r of x.rooms) await s.sessionAddRoom(x.id, r);
        }
        const kept = sid();
        await a.sessionCreate(kept, alice, n, 'c-kept');
        await a.sessionAddRoom(kept, 'r-kept');
        await a.sessionDetach(kept, 'c-kept', 60_000);
        for (const [i, x] of sessions.entries()) expect(await (i % 2 ? b : a).sessionDetach(x.id, `c${i}`, 300)).toBe(true);
        const opts = { nodeTimeoutMs: 3600_000, graceMs: 60_000, leaseMs: 60_000, limit: 3 };
        // Not before the deadline (300 ms is far more than these calls take).
        expect(await a.sweepSessions(opts)).toEqual([]);

        const got = await sweepUntil([a, b], opts, sessions.length);
        expect([...got.keys()].sort()).toEqual(sessions.map((x) => x.id).sort());
        for (const x of sessions) expect(got.get(x.id)).toEqual({ sessionId: x.id, user: x.user, rooms: [...x.rooms].sort() });
        // Leased: not handed out again, and gone for good for its client.
        expect([...(await a.sweepSessions(opts)), ...(await b.sweepSessions(opts))]).toEqual([]);
        for (const x of sessions) expect(await b.sessionResume(x.id, x.user, n, 'c-late')).toBeUndefined();
        // The session with a longer grace period is still there.
        expect(await b.sessionResume(kept, alice, n, 'c-back')).toEqual(['r-kept']);
      });

      it('resume after the deadline is refused even before any sweep', async () => {
        const s = store();
        const id = sid();
        await s.sessionCreate(id, alice, node(), 'c1');
        await s.sessionAddRoom(id, 'r1');
        await s.sessionDetach(id, 'c1', 100);
        // Nothing to poll that would not resume or sweep it: wait out the grace period.
        await sleep(250);
        expect(await s.sessionResume(id, alice, node(), 'c2')).toBeUndefined();
        // The refused resume changed nothing: the sweep gets it.
        expect(await s.sweepSessions({ ...calm, leaseMs: 60_000 })).toEqual([{ sessionId: id, user: alice, rooms: ['r1'] }]);
      });

      it('a lease that runs out hands the session out again; a reaped session never again', async () => {
        const s = store();
        const [reaped, dropped] = [sid(), sid()];
        for (const id of [reaped, dropped]) {
          await s.sessionCreate(id, bob, node(), 'c');
          await s.sessionAddRoom(id, 'r1');
          expect(await s.sessionDetach(id, 'c', 0)).toBe(true);
        }
        const opts = { nodeTimeoutMs: 3600_000, graceMs: 60_000, leaseMs: 300, limit: 10 };
        const first = await sweepUntil([s], opts, 2);
        expect(ids([...first.values()])).toEqual([reaped, dropped].sort());
        await s.sessionReaped(reaped);
        await s.sessionReaped(reaped);
        // The sweeper of `dropped` "died": after its lease, another sweep gets it, and only it.
        const again = await sweepUntil([s], opts, 1);
        expect([...again.values()]).toEqual([{ sessionId: dropped, user: bob, rooms: ['r1'] }]);
        await s.sessionReaped(dropped);
        expect(await s.sessionResume(dropped, bob, node(), 'c2')).toBeUndefined();
        expect(await s.sessionResume(reaped, bob, node(), 'c2')).toBeUndefined();
      });

      it('sessions of a gateway that stopped calling nodeAlive are handed out; a live gateway’s are not touched', async () => {
        const [a, b] = twin();
        const [dead, live] = [node(), node()];
        await a.nodeAlive(dead);
        await a.nodeAlive(live);
        const onDead = [sid(), sid(), sid()];
        for (const [i, id] of onDead.entries()) {
          await a.sessionCreate(id, alice, dead, `c${i}`);
          await a.sessionAddRoom(id, `r${i}`);
        }
        const [onLive, moved] = [sid(), sid()];
        await b.sessionCreate(onLive, bob, live, 'c-live');
        await b.sessionAddRoom(onLive, 'r-live');
        await b.sessionCreate(moved, bob, dead, 'c-moved');
        expect(await b.sessionResume(moved, bob, live, 'c-moved2')).toEqual([]);

        const opts = { nodeTimeoutMs: 300, graceMs: 100, leaseMs: 60_000, limit: 10 };
        expect(await a.sweepSessions(opts)).toEqual([]);
        const got = await sweepUntil([a, b], opts, onDead.length, () => b.nodeAlive(live));
        expect([...got.keys()].sort()).toEqual([...onDead].sort());
        for (const [i, id] of onDead.entries()) expect(got.get(id)).toEqual({ sessionId: id, user: alice, rooms: [`r${i}`] });
        // Still attached: the live gateway's session and the one that moved to it.
        expect(await a.sessionDetach(onLive, 'c-live', 60_000)).toBe(true);
        expect(await a.sessionDetach(moved, 'c-moved2', 60_000)).toBe(true);
      });

      it('a dead gateway’s sessions expire as of its last sign of life, not as of the sweep', async () => {
        const s = store();
        const dead = node();
        await s.nodeAlive(dead);
        const id = sid();
        await s.sessionCreate(id, alice, dead, 'c1');
        const lastSign = Date.now();
        // Sweeping all along, as workers do: the gateway is judged dead 100 ms after its last sign,
        // and its session handed out 200 ms after it (not 200 ms after the sweep that found it).
        const opts = { nodeTimeoutMs: 100, graceMs: 200, leaseMs: 60_000, limit: 10 };
        const got = await sweepUntil([s], opts, 1);
        expect([...got.values()]).toEqual([{ sessionId: id, user: alice, rooms: [] }]);
        expect(Date.now() - lastSign).toBeLessThan(100 + 200 + 1500);
      });

      it('a session of a dead gateway can be resumed within the grace period', async () => {
        const s = store();
        const [dead, other] = [node(), node()];
        await s.nodeAlive(dead);
        const id = sid();
        await s.sessionCreate(id, alice, dead, 'c1');
        await s.sessionAddRoom(id, 'r1');
        const opts = { nodeTimeoutMs: 50, graceMs: 60_000, leaseMs: 60_000, limit: 10 };
        // Sweeping every 20 ms, as workers do (no gap), for three timeouts: the gateway is judged
        // dead (time has to pass; probing would change the session).
        for (let i = 0; i < 8; i++) {
          expect(await s.sweepSessions(opts)).toEqual([]);
          await sleep(20);
        }
        // Detached by a sweep: its connection can no longer detach it...
        expect(await s.sessionDetach(id, 'c1', 60_000)).toBe(false);
        // ...and its client comes back through another gateway.
        expect(await s.sessionResume(id, alice, other, 'c2')).toEqual(['r1']);
        expect(await s.sessionDetach(id, 'c2', 60_000)).toBe(true);
      });

      it('after a gap in sweeping longer than the node timeout (an outage), gateways get one timeout to report again', async () => {
        const s = store();
        const n = node();
        await s.nodeAlive(n);
        const id = sid();
        await s.sessionCreate(id, alice, n, 'c1');
        const opts = { nodeTimeoutMs: 150, graceMs: 100, leaseMs: 60_000, limit: 10 };
        await s.sweepSessions(opts);
        // Nobody sweeps and the gateway cannot report for longer than the timeout (time has to pass).
        await sleep(400);
        // The first sweep after the gap does not judge; the gateway reports again and lives on.
        expect(await s.sweepSessions(opts)).toEqual([]);
        await s.nodeAlive(n);
        for (let i = 0; i < 5; i++) {
          await sleep(60);
          await s.nodeAlive(n);
          expect(await s.sweepSessions(opts)).toEqual([]);
        }
        expect(await s.sessionDetach(id, 'c1', 60_000)).toBe(true);
      });
    });

    describe('typing', () => {
      const alice = { id: 'u-alice', name: 'Alice' };
      const bob = { id: 'u-bob', name: 'Bob' };
      const carol = { id: 'u-0carol', name: 'Carol' };
      const long = 60_000;

      it('set, refresh and unset report whether the set changed; users are ordered by id', async () => {
        const s = store();
        const r = room();
        expect(await s.typingSet(r, alice, false, long)).toEqual({ changed: false, users: [] });
        expect(await s.typingSet(r, alice, true, long)).toEqual({ changed: true, users: [alice] });
        expect(await s.typingSet(r, alice, true, long)).toEqual({ changed: false, users: [alice] });
        expect(await s.typingSet(r, bob, true, long)).toEqual({ changed: true, users: [alice, bob] });
        expect(await s.typingSet(r, carol, true, long)).toEqual({ changed: true, users: [carol, alice, bob] });
        expect(await s.typingSet(r, alice, false, long)).toEqual({ changed: true, users: [carol, bob] });
        expect(await s.typingSet(r, alice, false, long)).toEqual({ changed: false, users: [carol, bob] });
        const bobby = { id: bob.id, name: 'Bobby' };
        expect(await s.typingSet(r, bobby, true, long)).toEqual({ changed: false, users: [carol, bobby] });
        // Rooms are apart.
        expect(await s.typingSet(room(), alice, true, long)).toEqual({ changed: true, users: [alice] });
        expect(await s.sweepTyping(100)).toEqual([]);
      });

      it('an expired entry is never in users, even before a sweep; the call that drops it reports it', async () => {
        const s = store();
        const r = room();
        await s.typingSet(r, alice, true, 150);
        await s.typingSet(r, bob, true, long);
        const res = await until('alice’s entry to expire', async () => {
          const x = await s.typingSet(r, bob, true, long);
          if (x.users.some((u) => u.id === alice.id)) {
            expect(x).toEqual({ changed: false, users: [alice, bob] });
            return undefined;
          }
          return x;
        });
        expect(res).toEqual({ changed: true, users: [bob] });
        // Reported once: the sweep has nothing left to say about this room.
        expect(await s.sweepTyping(100)).toEqual([]);
        expect(await s.typingSet(r, bob, true, long)).toEqual({ changed: false, users: [bob] });
      });

      it('sweepTyping reports each expiry once, with who is still typing, and later the rest', async () => {
        const s = store();
        const [mixed, quiet, busy] = [room(), room(), room()];
        await s.typingSet(mixed, alice, true, 150);
        await s.typingSet(mixed, bob, true, 1500);
        await s.typingSet(quiet, carol, true, 150);
        await s.typingSet(busy, carol, true, long);
        const reports: { room: string; users: User[] }[] = [];
        await until('three reports', async () => {
          reports.push(...(await s.sweepTyping(100)));
          return reports.length >= 3 ? true : undefined;
        });
        // Alice's expiry in `mixed` (Bob still typing) and Carol's in `quiet`, in either order, then Bob's.
        expect(reports.slice(0, 2).sort((x, y) => x.users.length - y.users.length)).toEqual([
          { room: quiet, users: [] },
          { room: mixed, users: [bob] },
        ]);
        expect(reports[2]).toEqual({ room: mixed, users: [] });
        expect(await s.sweepTyping(100)).toEqual([]);
        expect(await s.typingSet(mixed, bob, true, long)).toEqual({ changed: true, users: [bob] });
        expect(await s.typingSet(quiet, carol, false, long)).toEqual({ changed: false, users: [] });
        expect(await s.typingSet(busy, carol, true, long)).toEqual({ changed: false, users: [carol] });
      });

      it('with concurrent sweepers each room’s expiry is reported by one of them, at most limit rooms per sweep', async () => {
        const [a, b] = twin();
        const rooms = range(1, 12).map(() => room());
        for (const [i, r] of rooms.entries()) await (i % 2 ? a : b).typingSet(r, i % 3 ? alice : bob, true, 150);
        const seen = new Map<string, User[]>();
        await until('every room to be reported', async () => {
          const rounds = await Promise.all([a.sweepTyping(5), b.sweepTyping(5), a.sweepTyping(5)]);
          for (const round of rounds) {
            expect(round.length).toBeLessThanOrEqual(5);
            for (const x of round) {
              expect(seen.has(x.room), `${x.room} reported twice`).toBe(false);
              seen.set(x.room, x.users);
            }
          }
          return seen.size >= rooms.length ? true : undefined;
        });
        expect([...seen.keys()].sort()).toEqual([...rooms].sort());
        expect([...seen.values()].every((users) => users.length === 0)).toBe(true);
        expect([...(await a.sweepTyping(100)), ...(await b.sweepTyping(100))]).toEqual([]);
      });
    });

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
      const list = (s: Store, u: string, limit = 1000, unreadOnly = false) => s.notificationsList(u, { limit, unreadOnly });

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
        const t0 = Date.now();
        await s.notificationsAdd([{ userId: u, notification: note('n1', 1) }, { userId: u, notification: note('n2', 2) }]);
        await s.notificationsRead(u, { ids: ['n1'] });
        // While n1 is kept (read), sending it again changes nothing: 1 unread (n2). Once everything
        // expired it is new again: 1 unread, n1 alone. Were the duplicate to push the expiry back,
        // this would never end.
        await until('the notifications to expire', async () => {
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
          return true;
        });
        expect(Date.now() - t0).toBeGreaterThanOrEqual(290);
        expect(await list(s, u)).toEqual({ items: [{ ...note('n1', 1), read: false }], unread: 1 });
        // And that one expires too, with nobody touching it but readers.
        const v = user();
        await s.notificationsAdd([{ userId: v, notification: note('n1', 1) }]);
        await until('v’s notifications to expire', async () => {
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
        await sleep(600);
        await s.notificationsAdd([{ userId: u, notification: note('n2', 2) }]);
        await sleep(600);
        // 1200 ms after the first add, 600 ms after the last: both kept.
        expect(ids((await list(s, u)).items)).toEqual(['n2', 'n1']);
      });

      it('a bulk add for 10,000 users: every user has it, unread 1, in a handful of round trips', async () => {
        const s = store();
        const base = user();
        const users = range(1, 10_000).map((i) => `${base}-${i}`);
        const before = impl.pipelines?.(s);
        const res = await s.notificationsAdd(users.map((u) => ({ userId: u, notification: note('bulk', 1) })));
        if (impl.pipelines) expect(impl.pipelines(s) - before!).toBeLessThanOrEqual(10_000 / 500 + 1);
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

    describe('tickets', () => {
      it('a ticket is taken once, with its data', async () => {
        const s = store();
        const t = `t-${room()}`;
        await s.ticketPut(t, '{"sub":"ann"}', 10_000);
        expect(await s.ticketTake(t)).toBe('{"sub":"ann"}');
        expect(await s.ticketTake(t)).toBeUndefined();
        expect(await s.ticketTake(`unknown-${room()}`)).toBeUndefined();
      });

      it('two takers at once: exactly one gets it', async () => {
        const [a, b] = twin();
        const tickets = Array.from({ length: 20 }, (_, i) => `race-${i}-${room()}`);
        await Promise.all(tickets.map((t) => a.ticketPut(t, t, 10_000)));
        const got = await Promise.all(tickets.flatMap((t) => [a.ticketTake(t), b.ticketTake(t)]));
        expect(got.filter((x) => x !== undefined).sort()).toEqual([...tickets].sort());
      });

      it('an expired ticket is gone', async () => {
        const s = store();
        const t = `exp-${room()}`;
        await s.ticketPut(t, 'x', 50);
        // The condition here is time itself: wait past the TTL.
        await new Promise((r) => setTimeout(r, 150));
        expect(await s.ticketTake(t)).toBeUndefined();
      });
    });

    describe('lifecycle', () => {
      it('ping resolves; calls after close reject', async () => {
        const s = make();
        await expect(s.ping()).resolves.toBeUndefined();
        await s.close();
        await expect(s.ping()).rejects.toThrow();
        await expect(s.append(room(), { head, tail: tail(1), ts: ts() })).rejects.toThrow();
      });
    });
  });
}

describe('Store contract', () => {
  for (const impl of implementations) storeContract(impl);
});

/** Runs the typing sweep's lease step alone, as a sweeper that dies right after it would. */
async function leaseTypingRooms(raw: Redis, prefix: string): Promise<string[]> {
  const [, ...rooms] = (await raw.eval(scriptSource('typing_due'), 2, `${prefix}{t}:due`, `${prefix}{t}:tlease`, 100, 3000, 10_000)) as string[];
  return rooms;
}

describe('RedisStore specifics', () => {
  let redis: Service;
  const clients: { close(): Promise<void> }[] = [];
  beforeAll(async () => {
    // A local process, so that it can be stopped and started again.
    redis = await startRedis({ local: true });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await redis.stop();
  });

  it('every key it writes has a TTL', async () => {
    const prefix = `ttl${randomId(6)}:`;
    const s = new RedisStore(redis.url, { keyPrefix: prefix });
    const raw = new Redis(redis.url);
    clients.push(s);
    try {
      const [r, empty] = [room(), room()];
      await s.history(empty, { limit: 1 });
      await s.append(r, { head, tail: tail(1), ts: ts(), dedupeKey: 'k' });
      await s.presenceAdd(r, { connId: 'c1', user: { id: 'u', name: 'U' }, node: 'n' });
      // Sessions in every state: attached (n1), detached (s3), leased to a sweeper (s2).
      const u = { id: 'u', name: 'U' };
      await s.nodeAlive('n1');
      await s.sessionCreate('s1', u, 'n1', 'c1');
      await s.sessionAddRoom('s1', r);
      await s.sessionCreate('s2', u, 'n1', 'c2');
      await s.sessionAddRoom('s2', r);
      await s.sessionDetach('s2', 'c2', 0);
      await s.sessionCreate('s3', u, 'n2', 'c3');
      await s.sessionDetach('s3', 'c3', 60_000);
      expect((await s.sweepSessions({ nodeTimeoutMs: 60_000, graceMs: 60_000, leaseMs: 60_000, limit: 10 })).map((x) => x.sessionId)).toEqual(['s2']);
      // Typing, and a typing sweeper that died holding a lease on a room.
      await s.typingSet(r, u, true, 60_000);
      const typed = room();
      await s.typingSet(typed, u, true, 1);
      await until('the typing sweep lease', () => leaseTypingRooms(raw, prefix).then((rooms) => (rooms.includes(typed) ? true : undefined)));
      // Notifications: a user with read and unread ones (all three keys), one whose are all read.
      const note = (id: string) => ({ id, kind: 'info' as const, title: 't', body: 'b', ts: ts(), read: false });
      await s.notificationsAdd([{ userId: 'u{1}', notification: note('n1') }, { userId: 'u{1}', notification: note('n2') }, { userId: 'v', notification: note('n1') }]);
      await s.notificationsRead('u{1}', { ids: ['n1'] });
      await s.notificationsRead('v', { all: true });
      await s.notificationsList('u{1}', { limit: 10 });

      const keys = await raw.keys(`${prefix}*`);
      const expected = ['dd:k', 'hist', 'meta', 'pconn', 'pcount', 'pname', 'typing', 'tname'].map((k) => `${prefix}{r:${r}}:${k}`);
      const sessionKeys = ['sess:s1', 'rooms:s1', 'sess:s2', 'rooms:s2', 'sess:s3', 'detached', 'nodes', 'node:n1', 'swept'].map((k) => `${prefix}{s}:${k}`);
      const typingKeys = [`${prefix}{t}:due`, `${prefix}{t}:tlease`, `${prefix}{r:${typed}}:typing`, `${prefix}{r:${typed}}:tname`];
      const notificationKeys = [
        ...['nitems', 'norder', 'nunread'].map((k) => `${prefix}{u:u%7B1%7D}:${k}`),
        ...['nitems', 'norder'].map((k) => `${prefix}{u:v}:${k}`),
      ];
      // The room read but never joined left no key.
      expect(keys.sort()).toEqual([...expected, ...sessionKeys, ...typingKeys, ...notificationKeys].sort());
      for (const k of keys) expect(await raw.pttl(k), k).toBeGreaterThan(0);
      // The three keys of a user share one TTL: notificationsTtlMs (30 days by default).
      for (const k of notificationKeys) {
        const left = await raw.pttl(k);
        expect(left, k).toBeLessThanOrEqual(30 * 24 * 3600_000);
        expect(left, k).toBeGreaterThan(30 * 24 * 3600_000 - 60_000);
      }
    } finally {
      raw.disconnect();
    }
  });

  it('an error inside a bulk add’s pipeline rejects the call; the other users are stored', async () => {
    const prefix = `perr${randomId(6)}:`;
    const s = new RedisStore(redis.url, { keyPrefix: prefix });
    const raw = new Redis(redis.url);
    clients.push(s);
    try {
      // User "bad" has a key of the wrong type where its notifications go: its script fails.
      await raw.set(`${prefix}{u:bad}:nitems`, 'x');
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
    } finally {
      raw.disconnect();
    }
  });

  it('room names cannot break out of the hash tag', async () => {
    const s = new RedisStore(redis.url, { keyPrefix: `esc${randomId(6)}:` });
    clients.push(s);
    // Without escaping, room "a" with dedupe key "x}:meta" and room "a}:dd:x" would share keys.
    const plain = `a${randomId(4)}`;
    await s.append(`${plain}}:dd:x`, { head, tail: tail(1), ts: ts() });
    await s.append(plain, { head, tail: tail(2), ts: ts(), dedupeKey: 'x}:meta' });
    expect((await s.history(plain, { limit: 5 })).entries).toEqual([head + 1 + tail(2)]);
    expect((await s.history(`${plain}}:dd:x`, { limit: 5 })).entries).toEqual([head + 1 + tail(1)]);
  });

  it('a typing sweeper that dies holding rooms: they are swept again after its lease', async () => {
    const prefix = `tl${randomId(6)}:`;
    const s = new RedisStore(redis.url, { keyPrefix: prefix });
    const raw = new Redis(redis.url);
    clients.push(s);
    try {
      const r = room();
      const u = { id: 'u', name: 'U' };
      await s.typingSet(r, u, true, 50);
      await s.typingSet(r, { id: 'v', name: 'V' }, true, 60_000);
      // The dead sweeper: leased the room, never expired it.
      await until('the room to be leased', () => leaseTypingRooms(raw, prefix).then((rooms) => (rooms.includes(r) ? true : undefined)));
      expect(await s.sweepTyping(10)).toEqual([]);
      const t0 = Date.now();
      const swept = await until('the lease to run out', () => s.sweepTyping(10).then((x) => (x.length ? x : undefined)), 10_000);
      expect(Date.now() - t0).toBeGreaterThan(1000);
      expect(swept).toEqual([{ room: r, users: [{ id: 'v', name: 'V' }] }]);
    } finally {
      raw.disconnect();
    }
  });

  it('session ids are opaque: an id naming another session’s key is just another id', async () => {
    const s = new RedisStore(redis.url, { keyPrefix: `sid${randomId(6)}:` });
    clients.push(s);
    const u = { id: 'u', name: 'U' };
    await s.sessionCreate('x', u, 'n', 'c1');
    await s.sessionAddRoom('x', 'r1');
    for (const id of ['x:rooms', 'x}', '{x}', 'x:', '']) expect(await s.sessionResume(id, u, 'n', 'c2'), id).toBeUndefined();
    await s.sessionCreate('x:rooms', u, 'n', 'c3');
    await s.sessionCreate('{x}', u, 'n', 'c4');
    expect(await s.sessionResume('x', u, 'n', 'c5')).toEqual(['r1']);
    expect(await s.sessionResume('x:rooms', u, 'n', 'c6')).toEqual([]);
    expect(await s.sessionResume('{x}', u, 'n', 'c7')).toEqual([]);
  });

  it('rejects with unavailable within a bounded time while Redis is down, then reconnects', async () => {
    const s = new RedisStore(redis.url, { keyPrefix: `down${randomId(6)}:` });
    clients.push(s);
    const r = room();
    const before = await s.append(r, { head, tail: tail(1), ts: ts() });
    await redis.stop();

    const calls = [
      () => s.append(r, { head, tail: tail(2), ts: ts() }),
      () => s.history(r, { limit: 1 }),
      () => s.ping(),
      () => s.notificationsAdd(range(1, 600).map((i) => ({ userId: `u${i}`, notification: { id: 'n', kind: 'info', title: 't', body: 'b', ts: ts(), read: false } }))),
      () => s.notificationsList('u1', { limit: 10 }),
      () => s.notificationsRead('u1', { all: true }),
      () => s.notificationsUnread('u1'),
    ];
    for (const call of calls) {
      const t0 = Date.now();
      const err = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(err).toMatchObject({ name: 'RtError', code: 'unavailable' });
    }

    await redis.restart();
    await until('the store to reconnect', () => s.ping().then(() => true, () => undefined), 10_000);
    // This Redis keeps nothing across restarts: the history is gone, the epoch tells.
    const after = await s.append(r, { head, tail: tail(3), ts: ts() });
    expect(after.seq).toBe(1);
    expect(after.epoch).not.toBe(before.epoch);
  });
});
