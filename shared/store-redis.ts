import { readFileSync } from 'node:fs';
import { Redis } from 'ioredis';
import type { User } from './protocol/schemas.ts';
import { RtError } from './errors.ts';
import { randomId } from './ids.ts';
import {
  byCodeUnit,
  checkedOptions,
  listLimit,
  notificationBody,
  notificationTime,
  NODE_SWEEP_BATCH,
  SESSION_TTL_MS,
  TYPING_SLACK_MS,
  type NotificationBody,
} from './store-memory.ts';
import {
  defaultStoreOptions,
  type AppendEntry,
  type AppendResult,
  type ExpiredSession,
  type HistoryPage,
  type HistoryQuery,
  type PresenceMember,
  type Store,
  type StoreOptions,
  type StoredNotification,
} from './store.ts';

export interface RedisStoreOptions extends Partial<StoreOptions> {
  /** Put before every key (default `rt:`), e.g. to share a Redis. Must not contain `{` or `}`. */
  keyPrefix?: string;
  /** Longest a command may take, queued while reconnecting or sent, before it rejects (default 3000). */
  commandTimeoutMs?: number;
}

/**
 * The Store on Redis (standalone, or Cluster-ready: all keys of a room share a hash tag). One Lua
 * script per atomic step, in `shared/redis/*.lua`, one Redis round trip per call (a bulk
 * `notificationsAdd`: one per NOTIFICATIONS_PIPELINE users).
 *
 * Keys of room R (`<p>` is the key prefix; R is escaped so that `{`, `}` and `%` cannot end the tag):
 *   <p>{r:R}:meta      hash   seq, epoch                     TTL historyTtlMs, refreshed by append;
 *                                                             seq 0: only while the room has members
 *   <p>{r:R}:hist      zset   score seq, member "seq:entry"  TTL historyTtlMs, refreshed by append; ≤ historyMax
 *   <p>{r:R}:dd:<key>  string "seq|epoch|ts"                 TTL dedupeTtlMs
 *   <p>{r:R}:pconn     hash   connId → JSON {user, node}     TTL historyTtlMs, refreshed by presence adds
 *   <p>{r:R}:pcount    hash   userId → connections           (same)
 *   <p>{r:R}:pname     hash   userId → name                  (same)
 *   <p>{r:R}:typing    zset   userId → expiry ms             TTL latest expiry + TYPING_SLACK_MS
 *   <p>{r:R}:tname     hash   userId → name                  (same)
 * The meta hash and the history expire together; if the meta is gone, the history is gone too as
 * far as readers can tell (a lone history left by eviction is deleted when the meta is recreated).
 * The presence TTL is a safety net against connections nobody removed, not the liveness mechanism.
 *
 * Keys of the typing sweep, one slot ({t}); members are room names as they are:
 *   <p>{t}:due         zset   room → its earliest typing expiry, or earlier   TTL latest score + slack
 *   <p>{t}:tlease      zset   room → end of a sweeper's lease on it           TTL lease + slack
 * A typingSet that adds an entry notes the room in `due` before its room script (so a worker killed
 * between the two leaves a note: an early note only costs a sweep that finds nothing) and again with
 * the room's next expiry after it (a sweep that leased the room in between may have run before the
 * entry existed; `typing_done` never removes a room from `due` for that reason). The sweep leases due
 * rooms (`typing_due`), runs `typing_set` with no change on each (which reports a room only if it
 * removed entries, so exactly one caller reports each expiry, even against a concurrent typingSet),
 * then re-notes rooms still typing and releases the lease (`typing_done`). A sweeper that dies leaves
 * its lease, which ends after TYPING_LEASE_MS; the rooms are then due again.
 *
 * Keys of sessions, one slot ({s}) so each session step is one script; scripts build the keys of
 * sessions and nodes they find (same slot) from the base `<p>{s}:`:
 *   <p>{s}:sess:<sid>   hash  uid, name, node, conn, state (attached|detached|expired), due
 *   <p>{s}:rooms:<sid>  set   the session's rooms                   TTLs of both: ≥ SESSION_TTL_MS
 *   <p>{s}:detached     zset  sid → deadline (detached) or lease end (expired)   TTL ≥ its members'
 *   <p>{s}:nodes        zset  node → last sign of life ms           TTL SESSION_TTL_MS, renewed by nodeAlive
 *   <p>{s}:node:<node>  set   sids attached on the node             TTL SESSION_TTL_MS
 * Session TTLs are set by create and renewed (never shortened) by resume, room adds, detach
 * (grace + TTL) and leases (lease + TTL). A session attached for days is kept by its gateway:
 * `nodeAlive` renews the node set's TTL, and its members' with it, whenever it has fallen below
 * half, so a member always outlives its node set. The rooms set is `rooms:<sid>`, not
 * `sess:<sid>:rooms`, because session ids come from clients (`?session=`): the id "x:rooms" must
 * not name session x's rooms set. All times are Redis's (`TIME` in the scripts), so the workers'
 * clocks do not matter.
 *
 * Keys of user U's notifications (U escaped like room names; all three share one TTL,
 * notificationsTtlMs, set by every add that stores a notification, never by reads):
 *   <p>{u:U}:nitems    hash   id → JSON of the notification without `read`     ≤ notificationsMax
 *   <p>{u:U}:norder    zset   id → ts ms (newest = highest; equal ts by id)     ≤ notificationsMax
 *   <p>{u:U}:nunread   set    ids not read yet (⊆ nitems): SCARD is the unread count, `read` in a
 *                             listed notification is "not a member"
 * Each user is in its own slot, so a bulk add cannot be one script: it is one `notifications_add`
 * call per (user, notification), sent in pipelines of NOTIFICATIONS_PIPELINE commands, one after
 * the other (20 round trips for 10,000 users; `stats.pipelines` counts them).
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
  private readonly counters = { pipelines: 0 };

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
      // Commands issued in the same event-loop tick go out as one pipeline: under load, many
      // publishes' append scripts share a round trip (they are independent; order per connection
      // is kept, so one room's appends stay in issue order).
      enableAutoPipelining: true,
      maxRetriesPerRequest: 1,
      commandTimeout: commandTimeoutMs,
      connectTimeout: Math.max(1000, commandTimeoutMs),
      retryStrategy: (times) => Math.min(50 * times, 1000),
    });
    // Failures reach callers as rejected commands; without a listener ioredis prints every
    // connection error of the reconnect loop to the console.
    this.redis.on('error', () => {});
    for (const name of SCRIPTS) this.redis.defineCommand(`rt_${name}`, { lua: scriptSource(name) });
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
      this.scripts.rt_history(3, k.meta, k.hist, k.pconn, randomId(8), this.opts.historyTtlMs, bound(query.after), bound(query.before), limit),
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
    const res = await this.call(this.scripts.rt_presence_remove(4, k.pconn, k.pcount, k.pname, k.meta, connId));
    if (!res) return { lastForUser: false };
    const { user } = JSON.parse(res[0]) as { user: User };
    return { user: { id: user.id, name: user.name }, lastForUser: res[1] === 1 };
  }

  async presenceMembers(room: string): Promise<User[]> {
    const flat = await this.call(this.redis.hgetall(this.keys(room).pname));
    return Object.entries(flat).map(([id, name]) => ({ id, name }));
  }

  async sessionCreate(sessionId: string, user: User, node: string, connId: string): Promise<void> {
    const k = this.sessionKeys(sessionId);
    await this.call(
      this.scripts.rt_session_create(5, k.sess, k.rooms, k.detached, k.nodes, k.node(node), sessionId, user.id, user.name, node, connId, SESSION_TTL_MS, k.base),
    );
  }

  async sessionResume(sessionId: string, user: User, node: string, connId: string): Promise<string[] | undefined> {
    const k = this.sessionKeys(sessionId);
    const rooms = await this.call(
      this.scripts.rt_session_resume(5, k.sess, k.rooms, k.detached, k.nodes, k.node(node), sessionId, user.id, user.name, node, connId, SESSION_TTL_MS, k.base),
    );
    return rooms ? rooms.sort(byCodeUnit) : undefined;
  }

  async sessionAddRoom(sessionId: string, room: string): Promise<void> {
    const k = this.sessionKeys(sessionId);
    await this.call(this.scripts.rt_session_room(2, k.sess, k.rooms, '1', room, SESSION_TTL_MS));
  }

  async sessionRemoveRoom(sessionId: string, room: string): Promise<void> {
    const k = this.sessionKeys(sessionId);
    await this.call(this.scripts.rt_session_room(2, k.sess, k.rooms, '0', room, SESSION_TTL_MS));
  }

  async sessionDetach(sessionId: string, connId: string, graceMs: number): Promise<boolean> {
    const k = this.sessionKeys(sessionId);
    const grace = Math.max(0, Math.floor(graceMs));
    return (await this.call(this.scripts.rt_session_detach(3, k.sess, k.rooms, k.detached, sessionId, connId, grace, SESSION_TTL_MS, k.base))) === 1;
  }

  async nodeAlive(node: string): Promise<void> {
    const k = this.sessionKeys('');
    await this.call(this.scripts.rt_node_alive(2, k.nodes, k.node(node), node, SESSION_TTL_MS, k.base));
  }

  async sweepSessions(opts: { nodeTimeoutMs: number; graceMs: number; leaseMs: number; limit: number }): Promise<ExpiredSession[]> {
    const k = this.sessionKeys('');
    const ms = (n: number) => Math.max(0, Math.floor(n));
    const res = await this.call(
      this.scripts.rt_sweep_sessions(
        2, k.nodes, k.detached,
        ms(opts.nodeTimeoutMs), ms(opts.graceMs), ms(opts.leaseMs), ms(opts.limit), SESSION_TTL_MS, k.base, NODE_SWEEP_BATCH,
      ),
    );
    return res.map(([sessionId, id, name, ...rooms]) => ({ sessionId, user: { id, name }, rooms: rooms.sort(byCodeUnit) }));
  }

  async sessionReaped(sessionId: string): Promise<void> {
    const k = this.sessionKeys(sessionId);
    await this.call(this.scripts.rt_session_reaped(3, k.sess, k.rooms, k.detached, sessionId, k.base));
  }

  async typingSet(room: string, user: User, typing: boolean, ttlMs: number): Promise<{ changed: boolean; users: User[] }> {
    const k = this.keys(room);
    const t = this.typingKeys();
    const ttl = Math.max(1, Math.floor(ttlMs));
    const set = () => this.scripts.rt_typing_set(2, k.typing, k.tname, typing ? '1' : '0', user.id, user.name, ttl, TYPING_SLACK_MS);
    if (!typing) return typersOf(await this.call(set()));
    // Noted before (so that a worker killed after the room script leaves a note) and after (see the
    // class comment); both are sent at once, in this order, on the one connection.
    const [, res] = await Promise.all([this.call(this.scripts.rt_typing_index(1, t.due, room, '', ttl, TYPING_SLACK_MS)), this.call(set())]);
    const next = res[1];
    if (next !== '') await this.call(this.scripts.rt_typing_index(1, t.due, room, next, 0, TYPING_SLACK_MS));
    return typersOf(res);
  }

  async sweepTyping(limit: number): Promise<{ room: string; users: User[] }[]> {
    const t = this.typingKeys();
    const [leaseEnd, ...rooms] = await this.call(
      this.scripts.rt_typing_due(2, t.due, t.lease, Math.max(0, Math.floor(limit)), TYPING_LEASE_MS, TYPING_SLACK_MS),
    );
    const results = await Promise.all(
      rooms.map((room) => {
        const k = this.keys(room);
        return this.call(this.scripts.rt_typing_set(2, k.typing, k.tname, '', '', '', 0, TYPING_SLACK_MS));
      }),
    );
    await Promise.all(
      rooms.map((room, i) => this.call(this.scripts.rt_typing_done(2, t.due, t.lease, room, results[i]![1], leaseEnd, TYPING_SLACK_MS))),
    );
    const out: { room: string; users: User[] }[] = [];
    for (const [i, room] of rooms.entries()) {
      const res = typersOf(results[i]!);
      if (res.changed) out.push({ room, users: res.users });
    }
    return out;
  }

  /** What this store has done, for tests and metrics: `pipelines` sent (by `notificationsAdd`). */
  get stats(): { readonly pipelines: number } {
    return { ...this.counters };
  }

  async notificationsAdd(items: { userId: string; notification: StoredNotification }[]): Promise<number[]> {
    const o = this.opts;
    // Everything is checked and encoded before the first pipeline: a bad item stores nothing.
    const calls = items.map(({ userId, notification }) => {
      const k = this.notificationKeys(userId);
      const at = notificationTime(notification);
      return [3, k.items, k.order, k.unread, notification.id, JSON.stringify(notificationBody(notification)), at, o.notificationsMax, o.notificationsTtlMs] as const;
    });
    const out: number[] = [];
    for (let i = 0; i < calls.length; i += NOTIFICATIONS_PIPELINE) {
      const pipeline = this.redis.pipeline() as unknown as ScriptPipeline;
      for (const args of calls.slice(i, i + NOTIFICATIONS_PIPELINE)) pipeline.rt_notifications_add(...args);
      this.counters.pipelines += 1;
      const replies = await this.call(pipeline.exec());
      // Each command succeeds or fails on its own inside a pipeline: the first failure rejects the
      // call (the earlier users have their notification; a retry with the same ids is harmless).
      if (!replies || replies.length !== Math.min(NOTIFICATIONS_PIPELINE, calls.length - i)) {
        throw new Error(`redis: a pipeline of notifications_add answered ${replies?.length ?? 'nothing'}`);
      }
      for (const [err, unread] of replies) {
        if (err) throw mapError(err);
        out.push(unread as number);
      }
    }
    return out;
  }

  async notificationsList(userId: string, query: { limit: number; unreadOnly?: boolean }): Promise<{ items: StoredNotification[]; unread: number }> {
    const k = this.notificationKeys(userId);
    const [unread, ...flat] = await this.call(
      this.scripts.rt_notifications_list(3, k.items, k.order, k.unread, listLimit(query.limit), query.unreadOnly ? '1' : '0'),
    );
    const items: StoredNotification[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      items.push({ ...(JSON.parse(flat[i] as string) as NotificationBody), read: flat[i + 1] === 1 });
    }
    return { items, unread: unread as number };
  }

  async notificationsRead(userId: string, which: { ids: string[] } | { all: true }): Promise<{ changed: string[]; unread: number }> {
    const k = this.notificationKeys(userId);
    const args = 'all' in which ? ['1'] : ['0', ...which.ids];
    const [unread, ...changed] = await this.call(this.scripts.rt_notifications_read(1, k.unread, ...args));
    return { changed, unread };
  }

  async notificationsUnread(userId: string): Promise<number> {
    return this.call(this.redis.scard(this.notificationKeys(userId).unread));
  }

  async ticketPut(ticket: string, data: string, ttlMs: number): Promise<void> {
    await this.call(this.redis.set(this.ticketKey(ticket), data, 'PX', Math.max(1, Math.floor(ttlMs))));
  }

  async ticketTake(ticket: string): Promise<string | undefined> {
    // GETDEL (Redis ≥ 6.2) reads and deletes in one step: a ticket is taken once.
    const data = await this.call(this.redis.getdel(this.ticketKey(ticket)));
    return data ?? undefined;
  }

  private ticketKey(ticket: string): string {
    return `${this.prefix}{k}:ticket:${ticket}`;
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
    return {
      tag,
      meta: `${tag}:meta`,
      hist: `${tag}:hist`,
      pconn: `${tag}:pconn`,
      pcount: `${tag}:pcount`,
      pname: `${tag}:pname`,
      typing: `${tag}:typing`,
      tname: `${tag}:tname`,
    };
  }

  private notificationKeys(userId: string) {
    const tag = `${this.prefix}{u:${escapeTag(userId)}}`;
    return { items: `${tag}:nitems`, order: `${tag}:norder`, unread: `${tag}:nunread` };
  }

  private sessionKeys(sessionId: string) {
    const base = `${this.prefix}{s}:`;
    return {
      base,
      sess: `${base}sess:${sessionId}`,
      rooms: `${base}rooms:${sessionId}`,
      detached: `${base}detached`,
      nodes: `${base}nodes`,
      node: (node: string) => `${base}node:${node}`,
    };
  }

  private typingKeys() {
    return { due: `${this.prefix}{t}:due`, lease: `${this.prefix}{t}:tlease` };
  }

  /** Maps a failure to reach Redis to `unavailable`; anything else is rethrown unchanged. */
  private async call<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (err) {
      throw mapError(err);
    }
  }
}

function mapError(err: unknown): unknown {
  return isUnavailable(err) ? new RtError('unavailable', `redis: ${(err as Error).message}`) : err;
}

const SCRIPTS = [
  'append', 'history', 'presence_add', 'presence_remove',
  'session_create', 'session_resume', 'session_room', 'session_detach', 'node_alive', 'sweep_sessions', 'session_reaped',
  'typing_set', 'typing_index', 'typing_due', 'typing_done',
  'notifications_add', 'notifications_list', 'notifications_read',
] as const;

/** A script of `shared/redis/` as Redis runs it: the prelude's helpers, then the script. */
export function scriptSource(name: string): string {
  const read = (file: string) => readFileSync(new URL(`./redis/${file}.lua`, import.meta.url), 'utf8');
  return `${read('prelude')}\n${read(name)}`;
}

/** Commands per pipeline of a bulk `notificationsAdd`: few round trips, bounded buffers. */
const NOTIFICATIONS_PIPELINE = 500;

/** How long a sweeper holds the rooms it is expiring; if it dies, their `typing` events are that late. */
const TYPING_LEASE_MS = 3000;

type Args = (string | number)[];

interface Scripts {
  rt_append(numKeys: number, ...args: Args): Promise<[number, string, string, number]>;
  rt_history(numKeys: number, ...args: Args): Promise<(string | number)[]>;
  rt_presence_add(numKeys: number, ...args: Args): Promise<(string | number)[]>;
  rt_presence_remove(numKeys: number, ...args: Args): Promise<[string, number] | null>;
  rt_session_create(numKeys: number, ...args: Args): Promise<number>;
  rt_session_resume(numKeys: number, ...args: Args): Promise<string[] | null>;
  rt_session_room(numKeys: number, ...args: Args): Promise<number>;
  rt_session_detach(numKeys: number, ...args: Args): Promise<number>;
  rt_node_alive(numKeys: number, ...args: Args): Promise<number>;
  rt_sweep_sessions(numKeys: number, ...args: Args): Promise<[string, string, string, ...string[]][]>;
  rt_session_reaped(numKeys: number, ...args: Args): Promise<number>;
  rt_typing_set(numKeys: number, ...args: Args): Promise<TypingReply>;
  rt_typing_index(numKeys: number, ...args: Args): Promise<number>;
  rt_typing_due(numKeys: number, ...args: Args): Promise<[string, ...string[]]>;
  rt_typing_done(numKeys: number, ...args: Args): Promise<number>;
  rt_notifications_list(numKeys: number, ...args: Args): Promise<[number, ...(string | number)[]]>;
  rt_notifications_read(numKeys: number, ...args: Args): Promise<[number, ...string[]]>;
}

/** A pipeline with the scripts defined on the client; `exec` gives each command's error or reply. */
interface ScriptPipeline {
  rt_notifications_add(numKeys: number, ...args: Args): ScriptPipeline;
  exec(): Promise<[Error | null, unknown][] | null>;
}

/** changed (0|1), next expiry ('' when nobody types), then userId, name pairs. */
type TypingReply = [number, string, ...string[]];

function typersOf([changed, , ...flat]: TypingReply): { changed: boolean; users: User[] } {
  return { changed: changed === 1, users: usersOf(flat).sort((a, b) => byCodeUnit(a.id, b.id)) };
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
 * Room names and user ids go inside a hash tag (`{r:…}`, `{u:…}`); a `}` would end the tag early,
 * which could make two rooms' keys meet and would put user "a}b" in user "a"'s slot, so `%`, `{`
 * and `}` are percent-escaped (an injective mapping).
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
