import { readdirSync, readFileSync } from 'node:fs';
import { Cluster, Redis } from 'ioredis';
import { RtError } from './errors.ts';
import type { User } from './protocol/schemas.ts';

export interface RedisConnectionOptions {
  /** Put before every key (default `rt:`), e.g. to share a Redis. Must not contain `{` or `}`. */
  keyPrefix?: string;
  /** Longest a command may take, queued while reconnecting or sent, before it rejects (default 3000). */
  commandTimeoutMs?: number;
  /**
   * Replicas that must have a write before `runDurable` resolves (Redis `WAIT`; default 0: a write
   * is acknowledged once its primary has it, and a failover before it reached a replica loses it).
   */
  waitReplicas?: number;
  /** How long `WAIT` may block before the write counts as not durable: `unavailable` (default 1000). */
  waitTimeoutMs?: number;
}

/** Where the stores' Redis is: one server (`redis://…`), or a Redis Cluster (`{ clusterNodes: ['host:port', …] }`). */
export type RedisTarget = string | { clusterNodes: string[] };

type Arg = string | number;

/**
 * The one Redis connection the Redis stores share, with the scripts of `shared/redis/` loaded
 * (each with the prelude's helpers), the key names, and the mapping of failures.
 *
 * Key layout: every key of one room, one user, or one bucket of the sessions or of the typing sweep
 * shares a hash tag (`<p>{r:R}:…`, `<p>{u:U}:…`, `<p>{s:B}:…`, `<p>{t:B}:…`), and each script
 * touches the keys of one tag only, so each script is one slot on a Redis Cluster. Room names and user ids are escaped inside the
 * tag (`escapeTag`). The keys of each concern are listed in its store (`history-redis.ts`, …).
 *
 * Failure: while Redis is unreachable every call rejects with `RtError('unavailable')` within about
 * `commandTimeoutMs` (usually much sooner), never hangs, and the client reconnects by itself. A call
 * that rejected that way may still have been applied (the command may have reached Redis before the
 * connection broke, or been sent from the offline queue after its timeout): a retried publish must
 * carry its dedupe key. Script errors and other Redis replies are rethrown as they are (internal).
 */
export class RedisConnection {
  readonly redis: Redis | Cluster;
  readonly prefix: string;
  /** True on a Redis Cluster: commands of different slots may go to different nodes. */
  readonly cluster: boolean;
  private readonly counters = { pipelines: 0 };
  private readonly waitReplicas: number;
  private readonly waitTimeoutMs: number;
  private readonly commandTimeoutMs: number;

  constructor(target: RedisTarget, opts: RedisConnectionOptions = {}) {
    const { keyPrefix = 'rt:', commandTimeoutMs = 3000, waitReplicas = 0, waitTimeoutMs = 1000 } = opts;
    if (/[{}]/.test(keyPrefix)) throw new RangeError(`keyPrefix must not contain { or }: ${keyPrefix}`);
    if (!Number.isSafeInteger(waitReplicas) || waitReplicas < 0) throw new RangeError(`waitReplicas must be a whole number ≥ 0, got ${waitReplicas}`);
    this.prefix = keyPrefix;
    this.waitReplicas = waitReplicas;
    this.waitTimeoutMs = Math.max(1, Math.floor(waitTimeoutMs));
    this.commandTimeoutMs = commandTimeoutMs;
    this.cluster = typeof target !== 'string';
    const nodeOptions = {
      // Fail fast, never hang:
      // - the offline queue stays on, so calls made before the first connect (at startup) or during
      //   a short reconnect are sent once connected instead of failing at once;
      // - maxRetriesPerRequest: 1 flushes that queue with an error after every second failed
      //   reconnect attempt (a refused connection: ~100 ms), instead of never (null) or after 20;
      // - commandTimeout bounds every command, queued or sent, including when the network silently
      //   drops packets and the socket does not notice;
      // - connectTimeout bounds each connection attempt to a host that does not answer.
      // Reconnecting goes on forever with a capped backoff.
      enableOfflineQueue: true,
      // The cluster client pipelines the commands of one tick per node (below). On one Redis the
      // hot calls are batched per turn by the stores themselves (append_many, session_create_many,
      // unread_many: see TurnBatch), and ioredis' auto-pipelining would wrap each tick's few
      // commands in a Pipeline object once more: measured in bench scenario D, turning it off
      // there cut the worker's CPU per delivery by about 15 %.
      enableAutoPipelining: this.cluster,
      maxRetriesPerRequest: 1,
      commandTimeout: commandTimeoutMs,
      connectTimeout: Math.max(1000, commandTimeoutMs),
      retryStrategy: (times: number) => Math.min(50 * times, 1000),
    };
    this.redis =
      typeof target === 'string'
        ? new Redis(target, nodeOptions)
        : new Cluster(target.clusterNodes.map(hostPort), {
            // The same fail-fast rules per node; the cluster client adds its own offline queue
            // (while it learns the slots) which `call` bounds by commandTimeoutMs. A MOVED after a
            // failover or a resharding refreshes the slot map; CLUSTERDOWN and TRYAGAIN are
            // retried briefly, then answered `unavailable`.
            redisOptions: nodeOptions,
            enableOfflineQueue: true,
            // Commands of one tick go out as one pipeline per node set, grouped by the slot of
            // their first argument: a key, since each script is defined with its key count.
            enableAutoPipelining: true,
            maxRedirections: 16,
            retryDelayOnFailover: 100,
            retryDelayOnClusterDown: 100,
            retryDelayOnTryAgain: 100,
            retryDelayOnMoved: 0,
            slotsRefreshTimeout: Math.max(1000, commandTimeoutMs),
            clusterRetryStrategy: (times: number) => Math.min(100 * times, 1000),
            // Reads and writes both go to primaries: replicas lag, and the stores read their writes.
            scaleReads: 'master',
          });
    // Failures reach callers as rejected commands; without a listener ioredis prints every
    // connection error of the reconnect loop to the console.
    this.redis.on('error', () => {});
    for (const name of SCRIPTS) {
      const lua = scriptSource(name);
      const most = Math.max(0, ...[...lua.matchAll(/KEYS\[(\d+)\]/g)].map((m) => Number(m[1])));
      // A script that names no key by number takes any number of them (`runVariadic`).
      if (most === 0) {
        this.redis.defineCommand(`rt_${name}`, { lua });
        this.defined.add(`rt_${name}`);
      }
      for (let n = 1; n <= most; n++) {
        this.redis.defineCommand(`rt_${name}_${n}`, { lua, numberOfKeys: n });
        this.defined.add(`rt_${name}_${n}`);
      }
    }
  }

  /**
   * The ioredis command that runs script `name` with `numberOfKeys` keys. Each script is defined
   * once per key count it can take (1 up to the highest `KEYS[n]` it names), at construction: the
   * key count is then part of the definition rather than the first argument of each call, so the
   * cluster client's auto-pipelining groups a call by the slot of its first key (with the count
   * first it grouped by a number, and a batch could span nodes). Defining them all up front
   * matters too: an auto-pipeline already open in this tick would not have a command defined later.
   */
  private command(name: string, numberOfKeys: number): string {
    const id = `rt_${name}_${numberOfKeys}`;
    if (!this.defined.has(id)) throw new Error(`no script ${name} with ${numberOfKeys} keys in shared/redis/`);
    return id;
  }

  private readonly defined = new Set<string>();

  /** Runs script `name` (`shared/redis/<name>.lua`) on `keys` with `args`. */
  run<T>(name: string, keys: string[], args: Arg[]): Promise<T> {
    const command = (this.redis as unknown as Record<string, (...a: Arg[]) => Promise<T>>)[this.command(name, keys.length)]!;
    return this.call(command.call(this.redis, ...keys, ...args));
  }

  /**
   * Runs script `name`, which takes any number of keys (it names none by number), on `keys` with
   * `args`: one Redis only (`batchable`), since the keys may be in several slots.
   */
  runVariadic<T>(name: string, keys: string[], args: Arg[]): Promise<T> {
    const id = `rt_${name}`;
    if (!this.defined.has(id)) throw new Error(`no script ${name} taking any number of keys in shared/redis/`);
    const command = (this.redis as unknown as Record<string, (...a: Arg[]) => Promise<T>>)[id]!;
    return this.call(command.call(this.redis, keys.length, ...keys, ...args));
  }

  /** Whether calls may combine the keys of several rooms (one Redis, no replica wait): see `runVariadic`. */
  get batchable(): boolean {
    return !this.cluster && this.waitReplicas === 0;
  }

  /**
   * Runs script `name` as `run` does, and with `waitReplicas` > 0 resolves only once that many
   * replicas have the write: the script and a `WAIT` go out as one pipeline, which the cluster
   * client sends to the node owning the keys' slot, on the connection that wrote (WAIT counts the
   * replicas that have every write of its own connection). Fewer replicas within `waitTimeoutMs`
   * reject with `unavailable`; the write may still survive, or be lost by a failover, so callers
   * retry with the same dedupe key (a publish's `cid`, a notification's id, a session's id).
   */
  async runDurable<T>(name: string, keys: string[], args: Arg[]): Promise<T> {
    if (this.waitReplicas === 0) return this.run<T>(name, keys, args);
    let [[err, reply], [waitErr, acked]] = await this.scriptAndWait<T>(name, keys, args);
    // The cluster client follows MOVED for single commands but not inside a pipeline (the WAIT in
    // it did not move): after a failover the first pipeline to the old primary's slots meets
    // MOVED. The script did not run there, so it is sent again once the slot map is fresh.
    for (let attempt = 0; err && /^(MOVED|ASK) /.test(err.message) && this.redis instanceof Cluster && attempt < 3; attempt++) {
      await this.call(new Promise<void>((resolve, reject) => (this.redis as Cluster).refreshSlotsCache((e) => (e ? reject(e) : resolve()))));
      [[err, reply], [waitErr, acked]] = await this.scriptAndWait<T>(name, keys, args);
    }
    if (err) throw mapError(err);
    if (waitErr) throw mapError(waitErr);
    if (acked < this.waitReplicas) {
      throw new RtError('unavailable', `redis: ${name} reached ${acked} of ${this.waitReplicas} replicas within ${this.waitTimeoutMs} ms`);
    }
    return reply;
  }

  private async scriptAndWait<T>(name: string, keys: string[], args: Arg[]): Promise<[[Error | null, T], [Error | null, number]]> {
    const id = this.command(name, keys.length);
    const p = this.redis.pipeline() as unknown as Record<string, (...a: Arg[]) => unknown> & { exec(): Promise<[Error | null, unknown][] | null> };
    p[id]!(...keys, ...args);
    p.wait!(this.waitReplicas, this.waitTimeoutMs);
    return (await this.call(p.exec())) as [[Error | null, T], [Error | null, number]];
  }

  /**
   * Runs script `name` once per call and gives each call's error or reply. On one Redis they go
   * out in one pipeline (one round trip); on a Cluster each call goes to its slot's node (the
   * cluster client's auto-pipelining groups them per node). With `waitReplicas` > 0 each call is
   * `runDurable`. A failure to reach Redis rejects the whole call with `unavailable`.
   */
  async pipeline(name: string, calls: { keys: string[]; args: Arg[] }[]): Promise<[Error | null, unknown][]> {
    if (this.cluster || this.waitReplicas > 0) {
      this.counters.pipelines += 1;
      const settled = await Promise.allSettled(calls.map(({ keys, args }) => this.runDurable(name, keys, args)));
      const down = settled.find((r) => r.status === 'rejected' && r.reason instanceof RtError && r.reason.code === 'unavailable');
      if (down) throw (down as PromiseRejectedResult).reason;
      return settled.map((r) => (r.status === 'fulfilled' ? [null, r.value] : [r.reason as Error, null]));
    }
    const ids = calls.map(({ keys }) => this.command(name, keys.length));
    const p = this.redis.pipeline() as unknown as Record<string, (...a: Arg[]) => unknown> & { exec(): Promise<[Error | null, unknown][] | null> };
    calls.forEach(({ keys, args }, i) => p[ids[i]!]!(...keys, ...args));
    this.counters.pipelines += 1;
    const replies = await this.call(p.exec());
    if (!replies || replies.length !== calls.length) throw new Error(`redis: a pipeline of ${name} answered ${replies?.length ?? 'nothing'}`);
    return replies.map(([err, reply]) => [err ? (mapError(err) as Error) : null, reply]);
  }

  /**
   * Maps a failure to reach Redis to `unavailable`; anything else is rethrown unchanged. On a
   * Cluster the wait is bounded here too: the cluster client queues commands while it has no slot
   * map (startup, a failover) without a timeout of its own.
   */
  async call<T>(p: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    try {
      if (!this.cluster) return await p;
      const limit = this.commandTimeoutMs + this.waitTimeoutMs;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new RtError('unavailable', `redis: no answer from the cluster within ${limit} ms`)), limit);
      });
      return await Promise.race([p, late]);
    } catch (err) {
      throw mapError(err);
    } finally {
      clearTimeout(timer);
    }
  }

  /**
   * The keys of room R, in one place because three stores share the room's slot (and history and
   * presence read each other's keys: see presence_remove.lua). `<p>` is the key prefix:
   *   <p>{r:R}:meta      hash   seq, epoch                     history-redis.ts
   *   <p>{r:R}:hist      zset   score seq, member "seq:entry"  history-redis.ts
   *   <p>{r:R}:dd:<key>  string "seq|epoch|ts"                 history-redis.ts
   *   <p>{r:R}:pconn     hash   connId → JSON {user, node}     presence-redis.ts
   *   <p>{r:R}:pcount    hash   userId → connections           presence-redis.ts
   *   <p>{r:R}:pname     hash   userId → name                  presence-redis.ts
   *   <p>{r:R}:typing    zset   userId → expiry ms             typing-redis.ts
   *   <p>{r:R}:tname     hash   userId → name                  typing-redis.ts
   */
  roomKeys(room: string): RoomKeys {
    return new RoomKeys(`${this.prefix}{r:${escapeTag(room)}}`);
  }

  /**
   * The hash tag of index bucket `bucketOf(id)` of a concern (`s`: sessions, `t`: the typing
   * sweep): `<p>{s:3}`. An index that every caller shares (the detached sessions, the rooms with
   * typing entries) is split into INDEX_BUCKETS buckets so that on a Cluster it spreads over the
   * shards instead of loading one; sweeps visit every bucket.
   */
  bucketTag(concern: string, bucket: number): string {
    return `${this.prefix}{${concern}:${bucket}}`;
  }

  /** The hash tag of user U's keys: `<p>{u:U}`. */
  userTag(userId: string): string {
    return `${this.prefix}{u:${escapeTag(userId)}}`;
  }

  /** What this connection has done, for tests and metrics: `pipelines` sent. */
  get stats(): { readonly pipelines: number } {
    return { ...this.counters };
  }

  async ping(): Promise<void> {
    await this.call(this.redis.ping());
  }

  async close(): Promise<void> {
    // QUIT waits for the replies of commands in flight; when Redis is down it could wait for the
    // reconnect loop, so it is bounded and followed by a hard disconnect.
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([this.redis.quit(), new Promise((r) => (timer = setTimeout(r, 1000)))]);
    } catch {
      // Closing a store whose Redis is down is not an error.
    } finally {
      clearTimeout(timer);
      this.redis.disconnect();
    }
  }
}

const PRELUDE = 'prelude';
const SCRIPTS = readdirSync(new URL('./redis/', import.meta.url))
  .filter((f) => f.endsWith('.lua') && f !== `${PRELUDE}.lua`)
  .map((f) => f.slice(0, -'.lua'.length));

/** A script of `shared/redis/` as Redis runs it: the prelude's helpers, then the script. */
export function scriptSource(name: string): string {
  const read = (file: string) => readFileSync(new URL(`./redis/${file}.lua`, import.meta.url), 'utf8');
  return `${read(PRELUDE)}\n${read(name)}`;
}

function mapError(err: unknown): unknown {
  return isUnavailable(err) ? new RtError('unavailable', `redis: ${(err as Error).message}`) : err;
}

/** Replies that mean "this Redis cannot serve now", as opposed to a bug in a script or a call. */
const UNAVAILABLE_REPLIES = /^(LOADING|BUSY|READONLY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|OOM|NOREPLICAS|MISCONF|MOVED|ASK)\b/;

function isUnavailable(err: unknown): boolean {
  if (!(err instanceof Error) || err instanceof RtError) return false;
  // Replies from the server are ReplyErrors; everything else ioredis throws is about the connection
  // (closed, timed out, MaxRetriesPerRequestError, not writeable).
  if (err.name !== 'ReplyError') return true;
  return UNAVAILABLE_REPLIES.test(err.message);
}

/**
 * Room names and user ids go inside a hash tag (`{r:…}`, `{u:…}`); a `}` would end the tag early,
 * which could make two rooms' keys meet and would put user "a}b" in user "a"'s slot, so `%`, `{`
 * and `}` are percent-escaped (an injective mapping).
 */
function escapeTag(s: string): string {
  return s.replace(/[%{}]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * Buckets of each shared index (`bucketTag`). Fixed: the bucket of an id must never change while
 * keys exist. 16 spread over the shards of any small cluster and cost a sweep 16 short scripts.
 */
export const INDEX_BUCKETS = 16;

/** The bucket of an id (FNV-1a over its UTF-16 code units): deterministic in every process. */
export function bucketOf(id: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    h ^= id.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % INDEX_BUCKETS;
}

function hostPort(addr: string): { host: string; port: number } {
  const at = addr.lastIndexOf(':');
  return { host: addr.slice(0, at), port: Number(addr.slice(at + 1)) };
}

/** Users from a flat reply `id, name, id, name, …`. */
export function usersOf(flat: string[]): User[] {
  const users: User[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) users.push({ id: flat[i]!, name: flat[i + 1]! });
  return users;
}

/** The keys of one room (`RedisConnection.roomKeys`), each named when asked for. */
export class RoomKeys {
  constructor(private readonly tag: string) {}

  get meta(): string {
    return `${this.tag}:meta`;
  }

  get hist(): string {
    return `${this.tag}:hist`;
  }

  dedupe(key: string): string {
    return `${this.tag}:dd:${key}`;
  }

  get pconn(): string {
    return `${this.tag}:pconn`;
  }

  get pcount(): string {
    return `${this.tag}:pcount`;
  }

  get pname(): string {
    return `${this.tag}:pname`;
  }

  get typing(): string {
    return `${this.tag}:typing`;
  }

  get tname(): string {
    return `${this.tag}:tname`;
  }
}
