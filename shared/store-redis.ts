import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import type { User } from './protocol/schemas.ts';
import { RtError } from './errors.ts';
import { randomId } from './ids.ts';
import { checkedOptions } from './store-memory.ts';
import {
  defaultStoreOptions,
  type AppendEntry,
  type AppendResult,
  type HistoryPage,
  type HistoryQuery,
  type PresenceMember,
  type Store,
  type StoreOptions,
} from './store.ts';

export interface RedisStoreOptions extends Partial<StoreOptions> {
  /** Put before every key (default `rt:`), e.g. to share a Redis. Must not contain `{` or `}`. */
  keyPrefix?: string;
  /** Longest a command may take, queued while reconnecting or sent, before it rejects (default 3000). */
  commandTimeoutMs?: number;
}

/**
 * The Store on Redis (standalone, or Cluster-ready: all keys of a room share a hash tag). One Lua
 * script per atomic step, in `shared/redis/*.lua`, one Redis round trip per call.
 *
 * Keys of room R (`<p>` is the key prefix; R is escaped so that `{`, `}` and `%` cannot end the tag):
 *   <p>{r:R}:meta      hash   seq, epoch                     TTL historyTtlMs, refreshed by append
 *   <p>{r:R}:hist      zset   score seq, member "seq:entry"  TTL historyTtlMs, refreshed by append; ≤ historyMax
 *   <p>{r:R}:dd:<key>  string "seq|epoch|ts"                 TTL dedupeTtlMs
 *   <p>{r:R}:pconn     hash   connId → JSON {user, node}     TTL historyTtlMs, refreshed by presence adds
 *   <p>{r:R}:pcount    hash   userId → connections           (same)
 *   <p>{r:R}:pname     hash   userId → name                  (same)
 * The meta hash and the history expire together; if the meta is gone, the history is gone too as
 * far as readers can tell (a lone history left by eviction is deleted when the meta is recreated).
 * The presence TTL is a safety net against connections nobody removed, not the liveness mechanism.
 *
 * Failure: while Redis is unreachable every call rejects with `RtError('unavailable')` within about
 * `commandTimeoutMs` (usually much sooner), never hangs, and the client reconnects by itself. A call
 * that rejected that way may still have been applied (the command may have reached Redis before the
 * connection broke, or been sent from the offline queue after its timeout): a retried publish must
 * carry its dedupe key. Script errors and other Redis replies are rethrown as they are (internal).
 */
export class RedisStore implements Store {
  private readonly redis: Redis;
  private readonly scripts: Scripts;
  private readonly opts: StoreOptions;
  private readonly prefix: string;

  constructor(redisUrl: string, opts: RedisStoreOptions = {}) {
    const { keyPrefix = 'rt:', commandTimeoutMs = 3000, ...storeOpts } = opts;
    if (/[{}]/.test(keyPrefix)) throw new RangeError(`keyPrefix must not contain { or }: ${keyPrefix}`);
    this.opts = checkedOptions({ ...defaultStoreOptions, ...storeOpts });
    this.prefix = keyPrefix;
    this.redis = new Redis(redisUrl, {
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
      maxRetriesPerRequest: 1,
      commandTimeout: commandTimeoutMs,
      connectTimeout: Math.max(1000, commandTimeoutMs),
      retryStrategy: (times) => Math.min(50 * times, 1000),
    });
    // Failures reach callers as rejected commands; without a listener ioredis prints every
    // connection error of the reconnect loop to the console.
    this.redis.on('error', () => {});
    for (const name of ['append', 'history', 'presence_add', 'presence_remove'] as const) {
      this.redis.defineCommand(`rt_${name}`, { lua: readFileSync(new URL(`./redis/${name}.lua`, import.meta.url), 'utf8') });
    }
    this.scripts = this.redis as unknown as Scripts;
  }

  async append(room: string, entry: AppendEntry): Promise<AppendResult> {
    const k = this.keys(room);
    const keys = entry.dedupeKey === undefined ? [k.meta, k.hist] : [k.meta, k.hist, `${k.tag}:dd:${entry.dedupeKey}`];
    const o = this.opts;
    const [seq, epoch, ts, duplicate] = await this.call(
      this.scripts.rt_append(keys.length, ...keys, entry.head, entry.tail, entry.ts, o.historyMax, o.historyTtlMs, o.dedupeTtlMs, randomId(8)),
    );
    return { seq, epoch, ts, duplicate: duplicate === 1 };
  }

  async history(room: string, query: HistoryQuery): Promise<HistoryPage> {
    const k = this.keys(room);
    const limit = Math.max(0, Math.floor(query.limit));
    const res = await this.call(
      this.scripts.rt_history(2, k.meta, k.hist, randomId(8), this.opts.historyTtlMs, bound(query.after), bound(query.before), limit),
    );
    const [seq, epoch, oldest, ...members] = res;
    return {
      seq: seq as number,
      epoch: epoch as string,
      oldest: oldest as number,
      entries: (members as string[]).map((m) => m.slice(m.indexOf(':') + 1)),
    };
  }

  async presenceAdd(room: string, member: PresenceMember): Promise<{ firstForUser: boolean; members: User[] }> {
    const k = this.keys(room);
    const { connId, user, node } = member;
    const value = JSON.stringify({ user: { id: user.id, name: user.name }, node });
    const [first, ...flat] = await this.call(
      this.scripts.rt_presence_add(3, k.pconn, k.pcount, k.pname, connId, value, user.id, user.name, this.opts.historyTtlMs),
    );
    return { firstForUser: first === 1, members: usersOf(flat as string[]) };
  }

  async presenceRemove(room: string, connId: string): Promise<{ user?: User; lastForUser: boolean }> {
    const k = this.keys(room);
    const res = await this.call(this.scripts.rt_presence_remove(3, k.pconn, k.pcount, k.pname, connId));
    if (!res) return { lastForUser: false };
    const { user } = JSON.parse(res[0]) as { user: User };
    return { user: { id: user.id, name: user.name }, lastForUser: res[1] === 1 };
  }

  async presenceMembers(room: string): Promise<User[]> {
    const flat = await this.call(this.redis.hgetall(this.keys(room).pname));
    return Object.entries(flat).map(([id, name]) => ({ id, name }));
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

  private keys(room: string) {
    const tag = `${this.prefix}{r:${escapeTag(room)}}`;
    return { tag, meta: `${tag}:meta`, hist: `${tag}:hist`, pconn: `${tag}:pconn`, pcount: `${tag}:pcount`, pname: `${tag}:pname` };
  }

  /** Maps a failure to reach Redis to `unavailable`; anything else is rethrown unchanged. */
  private async call<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (err) {
      if (isUnavailable(err)) throw new RtError('unavailable', `redis: ${(err as Error).message}`);
      throw err;
    }
  }
}

interface Scripts {
  rt_append(numKeys: number, ...args: (string | number)[]): Promise<[number, string, string, number]>;
  rt_history(numKeys: number, ...args: (string | number)[]): Promise<(string | number)[]>;
  rt_presence_add(numKeys: number, ...args: (string | number)[]): Promise<(string | number)[]>;
  rt_presence_remove(numKeys: number, ...args: (string | number)[]): Promise<[string, number] | null>;
}

/** Replies that mean "this Redis cannot serve now", as opposed to a bug in a script or a call. */
const UNAVAILABLE_REPLIES = /^(LOADING|BUSY|READONLY|MASTERDOWN|CLUSTERDOWN|TRYAGAIN|OOM|NOREPLICAS|MISCONF)\b/;

function isUnavailable(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  // Replies from the server are ReplyErrors; everything else ioredis throws is about the connection
  // (closed, timed out, MaxRetriesPerRequestError, not writeable).
  if (err.name !== 'ReplyError') return true;
  return UNAVAILABLE_REPLIES.test(err.message);
}

/**
 * Room names go inside the hash tag `{r:…}`; a `}` in a name would end the tag early and could make
 * two rooms' keys meet, so `%`, `{` and `}` are percent-escaped (an injective mapping).
 */
function escapeTag(room: string): string {
  return room.replace(/[%{}]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

function bound(n: number | undefined): string {
  return n === undefined ? '' : String(n);
}

function usersOf(flat: string[]): User[] {
  const users: User[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) users.push({ id: flat[i]!, name: flat[i + 1]! });
  return users;
}
