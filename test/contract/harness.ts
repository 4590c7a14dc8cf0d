/**
 * The contract suite's runner: each port's file (history.test.ts, presence.test.ts, …) states its
 * contract once, with `contract()`, and it runs against every backend: the in-memory stores on a
 * manual clock (time passes when a test says so, never by sleeping), the Redis stores against a
 * real redis-server, and the same stores against a real 6-node Redis Cluster (time passes by
 * waiting; on the cluster every script must stay in one slot, or Redis refuses it with CROSSSLOT). Each test gets fresh stores (on Redis, a fresh key
 * prefix), so tests never see each other's data.
 */
import { afterAll, beforeAll, describe } from 'vitest';
import { Cluster, Redis } from 'ioredis';
import { ManualClock } from '../../shared/clock.ts';
import { randomId } from '../../shared/ids.ts';
import { INDEX_BUCKETS, scriptSource } from '../../shared/redis-connection.ts';
import type { StoreOptions, Stores } from '../../shared/stores.ts';
import { memoryStores, type MemoryStores } from '../../shared/stores-memory.ts';
import { redisStores, type RedisStores } from '../../shared/stores-redis.ts';
import { startRedis, startRedisCluster, type Service } from '../harness/servers.ts';
import { elapse } from '../harness/wait.ts';

export interface Contract {
  /** Fresh stores. */
  stores(opts?: Partial<StoreOptions>): Stores;
  /**
   * Two bundles on the same data: two processes on one Redis; one memory bundle used twice, as the
   * embedded mode's concurrent callers do.
   */
  twin(opts?: Partial<StoreOptions>): [Stores, Stores];
  /** Lets `ms` of the stores' time pass: moves the manual clock, or waits (Redis). */
  pass(ms: number): Promise<void>;
  /** The stores' time now (ms). */
  now(): number;
  /** Polls `check` until it returns a value other than undefined, letting 25 ms pass between tries. */
  until<T>(what: string, check: () => Promise<T | undefined>, timeoutMs?: number): Promise<T>;
  /** What stores made by `stores()` hold: non-empty collections (memory), keys (Redis). */
  residue(s: Stores): Promise<string[]>;
  /** Round trips that carried many commands so far, where the backend has any (Redis). */
  pipelines?(s: Stores): number;
}

interface Backend {
  name: string;
  setup(): Promise<Omit<Contract, 'until'> & { teardown(): Promise<void> }>;
}

/**
 * The Redis backends' side of the contract, on one server or a cluster: every bundle with a key
 * prefix of its own (a twin shares one), time passing by waiting, and the residue read with `keys`.
 */
function onRedis(target: Parameters<typeof redisStores>[0], keys: (pattern: string) => Promise<string[]>): Omit<Contract, 'until'> {
  const prefixes = new WeakMap<Stores, string>();
  const make = (opts: Partial<StoreOptions> | undefined, keyPrefix = `t${randomId(6)}:`) => {
    const s = redisStores(target, { ...opts, keyPrefix });
    prefixes.set(s, keyPrefix);
    return s;
  };
  return {
    stores: (opts) => make(opts),
    twin: (opts) => {
      const keyPrefix = `t${randomId(6)}:`;
      return [make(opts, keyPrefix), make(opts, keyPrefix)];
    },
    pass: elapse,
    now: () => Date.now(),
    residue: async (s) => (await keys(`${prefixes.get(s)!}*`)).sort(),
    pipelines: (s) => (s as RedisStores).connection.stats.pipelines,
  };
}

const backends: Backend[] = [
  {
    name: 'memory',
    async setup() {
      const clock = new ManualClock();
      return {
        stores: (opts) => memoryStores({ ...opts, clock }),
        twin: (opts) => {
          const s = memoryStores({ ...opts, clock });
          return [s, s];
        },
        pass: async (ms) => {
          clock.advance(ms);
          // Callers' continuations run as if time had passed for them too.
          await new Promise((r) => setImmediate(r));
        },
        now: () => clock.now(),
        residue: async (s) =>
          Object.entries((s as MemoryStores).size)
            .filter(([, n]) => n > 0)
            .map(([k, n]) => `${k}: ${n}`),
        teardown: async () => {},
      };
    },
  },
  {
    name: 'redis',
    async setup() {
      const redis = await startRedis();
      const raw = new Redis(redis.url);
      return {
        ...onRedis(redis.url, async (pattern) => raw.keys(pattern)),
        teardown: async () => {
          raw.disconnect();
          await redis.stop();
        },
      };
    },
  },
  {
    name: 'redis-cluster',
    async setup() {
      const cluster = await startRedisCluster();
      const clusterNodes = cluster.nodes.split(',');
      const raw = new Cluster(clusterNodes.map((a) => ({ host: a.split(':')[0]!, port: Number(a.split(':')[1]) })), { scaleReads: 'master' });
      return {
        // Each primary holds its own slots' keys: KEYS on every one of them.
        ...onRedis({ clusterNodes }, async (pattern) => (await Promise.all(raw.nodes('master').map((n) => n.keys(pattern)))).flat()),
        teardown: async () => {
          raw.disconnect();
          await cluster.stop();
        },
      };
    },
  },
];

/** Runs `body` (the contract of one port) against every backend. */
export function contract(port: string, body: (t: Contract) => void): void {
  for (const backend of backends) {
    describe(`${port} contract (${backend.name})`, () => {
      let impl: Awaited<ReturnType<Backend['setup']>> | undefined;
      const made: Stores[] = [];
      const get = () => {
        if (!impl) throw new Error('backend not set up');
        return impl;
      };
      const t: Contract = {
        stores: (opts) => {
          const s = get().stores(opts);
          made.push(s);
          return s;
        },
        twin: (opts) => {
          const pair = get().twin(opts);
          made.push(...pair);
          return pair;
        },
        pass: (ms) => get().pass(ms),
        now: () => get().now(),
        residue: (s) => get().residue(s),
        async until(what, check, timeoutMs = 5000) {
          for (let waited = 0; ; waited += 25) {
            const v = await check();
            if (v !== undefined) return v;
            if (waited > timeoutMs) throw new Error(`timed out waiting for ${what}`);
            await get().pass(25);
          }
        },
      };
      if (backend.name === 'redis') t.pipelines = (s) => get().pipelines!(s);
      beforeAll(async () => {
        impl = await backend.setup();
      });
      afterAll(async () => {
        await Promise.all(made.map((s) => s.close()));
        await impl?.teardown();
      });
      body(t);
    });
  }
}

/** A redis-server for tests of the Redis stores alone, started for the enclosing `describe`. */
export function withRedis(opts: { local?: boolean } = {}): { service(): Service; raw(): Redis } {
  let service: Service | undefined;
  let raw: Redis | undefined;
  beforeAll(async () => {
    service = await startRedis(opts);
    raw = new Redis(service.url);
    // Tests may stop the server: this client's reconnect errors are expected, not news.
    raw.on('error', () => {});
  });
  afterAll(async () => {
    raw?.disconnect();
    await service?.stop();
  });
  return { service: () => service!, raw: () => raw! };
}

/**
 * Redis stores for tests of the Redis stores alone, on a redis-server started for the enclosing
 * `describe`; each `stores()` gets its own key prefix unless given one, and is closed at the end.
 */
export function withRedisStores(opts: { local?: boolean } = {}): { stores(keyPrefix?: string): RedisStores; service(): Service; raw(): Redis } {
  const redis = withRedis(opts);
  const made: RedisStores[] = [];
  // Registered after withRedis's: runs before the server stops.
  afterAll(async () => {
    await Promise.all(made.map((s) => s.close()));
  });
  return {
    ...redis,
    stores(keyPrefix = `t${randomId(6)}:`) {
      const s = redisStores(redis.service().url, { keyPrefix });
      made.push(s);
      return s;
    },
  };
}

export const head = '{"seq":';
export const tail = (i: number | string) => `,"i":${JSON.stringify(i)}}`;
export const ts = (i = 0) => new Date(Date.UTC(2024, 0, 1, 0, 0, 0, i)).toISOString();
export const room = () => `room-${randomId(6)}`;
export const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, k) => from + k);

/** Runs the typing sweep's lease step alone (on every bucket), as a sweeper that dies right after it would. */
export async function leaseTypingRooms(raw: Redis, prefix: string): Promise<string[]> {
  const out: string[] = [];
  for (let b = 0; b < INDEX_BUCKETS; b++) {
    const tag = `${prefix}{t:${b}}`;
    const [, ...rooms] = (await raw.eval(scriptSource('typing_due'), 2, `${tag}:due`, `${tag}:tlease`, 100, 3000, 10_000)) as string[];
    out.push(...rooms);
  }
  return out;
}
