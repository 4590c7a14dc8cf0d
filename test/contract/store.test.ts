/**
 * The Store contract (shared/store.ts), one suite run against every implementation: MemoryStore,
 * and RedisStore against a real redis-server. Each test uses fresh room names (and, on Redis, a
 * fresh key prefix), so tests never see each other's data.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { Redis } from 'ioredis';
import { randomId } from '../../shared/ids.ts';
import type { User } from '../../shared/protocol/schemas.ts';
import type { Store, StoreOptions } from '../../shared/store.ts';
import { MemoryStore } from '../../shared/store-memory.ts';
import { RedisStore } from '../../shared/store-redis.ts';
import { startRedis, type Service } from '../harness/servers.ts';

interface Implementation {
  name: string;
  /** Starts what the implementation needs; returns a factory of stores and a teardown. */
  setup(): Promise<{ make(opts?: Partial<StoreOptions>): Store; teardown(): Promise<void> }>;
}

const implementations: Implementation[] = [
  {
    name: 'MemoryStore',
    async setup() {
      return { make: (opts) => new MemoryStore(opts), teardown: async () => {} };
    },
  },
  {
    name: 'RedisStore',
    async setup() {
      const redis = await startRedis();
      return {
        make: (opts) => new RedisStore(redis.url, { ...opts, keyPrefix: `t${randomId(6)}:` }),
        teardown: () => redis.stop(),
      };
    },
  },
];

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
    let teardown: () => Promise<void> = async () => {};
    const stores: Store[] = [];
    const store = (opts?: Partial<StoreOptions>) => {
      const s = make(opts);
      stores.push(s);
      return s;
    };
    /** Appends `n` messages one after the other; message i (from 1) has tail `tail(i)`. */
    const fill = async (s: Store, r: string, n: number) => {
      for (let i = 1; i <= n; i++) await s.append(r, { head, tail: tail(i), ts: ts(i) });
    };

    beforeAll(async () => {
      ({ make, teardown } = await impl.setup());
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
      it('an empty room has seq 0, oldest 1 and an epoch that stays and is the first append’s', async () => {
        const s = store();
        const r = room();
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
        // The epoch handed out by history() is the one the next append uses.
        const b = await s.append(r, { head, tail: tail(3), ts: ts() });
        expect(b).toMatchObject({ seq: 1, epoch: gone.epoch, duplicate: false });
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
      const keys = await raw.keys(`${prefix}*`);
      const expected = ['dd:k', 'hist', 'meta', 'pconn', 'pcount', 'pname'].map((k) => `${prefix}{r:${r}}:${k}`);
      expect(keys.sort()).toEqual([...expected, `${prefix}{r:${empty}}:meta`].sort());
      for (const k of keys) expect(await raw.pttl(k), k).toBeGreaterThan(0);
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

  it('rejects with unavailable within a bounded time while Redis is down, then reconnects', async () => {
    const s = new RedisStore(redis.url, { keyPrefix: `down${randomId(6)}:` });
    clients.push(s);
    const r = room();
    const before = await s.append(r, { head, tail: tail(1), ts: ts() });
    await redis.stop();

    for (const call of [() => s.append(r, { head, tail: tail(2), ts: ts() }), () => s.history(r, { limit: 1 }), () => s.ping()]) {
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
