import type { User } from './protocol/schemas.ts';
import { randomId } from './ids.ts';
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

/**
 * The Store of the embedded mode: everything in this process, lost when it exits. It keeps the
 * same promises as `RedisStore` (the contract suite runs against both), including the limits:
 * - a room's history holds at most `historyMax` entries and disappears `historyTtlMs` after its
 *   last append (or after `history()` created it for a room with members); the next append starts
 *   at seq 1 under a new epoch, as when Redis keys expire; a room without messages is forgotten
 *   when its last member leaves;
 * - a dedupe record lives `dedupeTtlMs`;
 * - a room's presence disappears `historyTtlMs` after its last add (the Redis keys' TTL), a
 *   safety net for connections nobody removed;
 * - a session disappears `SESSION_TTL_MS` after it was last created, resumed, given a room, detached
 *   or leased, or its gateway renewed it (`nodeAlive`, every `SESSION_TTL_MS / 2`): the same safety
 *   net as the Redis keys' TTL, for sessions nobody sweeps;
 * - a room's typing entries disappear `TYPING_SLACK_MS` after the latest expiry, swept or not;
 * - a user keeps at most `notificationsMax` notifications (the oldest by `ts` are dropped), all of
 *   them gone `notificationsTtlMs` after the last add that stored one.
 * Expiry is checked lazily on every access, so results are exact; an unref'd periodic sweep frees
 * what is never accessed again. Every method runs synchronously to completion inside its promise,
 * which is what makes each one atomic here.
 */
export class MemoryStore implements Store {
  private readonly opts: StoreOptions;
  private readonly rooms = new Map<string, RoomHistory>();
  /**
   * Dedupe records by `dedupeId(room, key)`. Every record lives the same `dedupeTtlMs` and is
   * (re)inserted when written, so the Map's insertion order is expiry order and the sweep stops
   * at the first live record.
   */
  private readonly dedupe = new Map<string, DedupeRecord>();
  private readonly presence = new Map<string, RoomPresence>();
  private readonly sessions = new Map<string, Session>();
  /** Sessions not attached, by id: deadline (detached) or lease end (expired). Redis: `{s}:detached`. */
  private readonly due = new Map<string, number>();
  private readonly nodes = new Map<string, GatewayNode>();
  private readonly typing = new Map<string, RoomTyping>();
  private readonly tickets = new Map<string, { data: string; expiresAt: number }>();
  private readonly notifications = new Map<string, UserNotifications>();
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;
  /** When sweepSessions last ran (0: never). */
  private lastSweepAt = 0;

  constructor(opts: Partial<StoreOptions> = {}) {
    this.opts = checkedOptions({ ...defaultStoreOptions, ...opts });
    // Often enough that expired rooms do not pile up, rarely enough to cost nothing when idle.
    const every = Math.min(60_000, Math.max(1000, Math.min(this.opts.historyTtlMs, this.opts.dedupeTtlMs, this.opts.notificationsTtlMs)));
    this.sweeper = setInterval(() => this.sweep(), every);
    this.sweeper.unref();
  }

  async append(room: string, entry: AppendEntry): Promise<AppendResult> {
    this.open();
    const now = Date.now();
    const did = entry.dedupeKey === undefined ? undefined : dedupeId(room, entry.dedupeKey);
    if (did !== undefined) {
      const seen = this.liveDedupe(did, now);
      if (seen) return { seq: seen.seq, epoch: seen.epoch, ts: seen.ts, duplicate: true };
    }
    const h = this.liveRoom(room, now) ?? this.createRoom(room);
    h.seq += 1;
    h.entries.push(entry.head + h.seq + entry.tail);
    const over = h.entries.length - h.start - this.opts.historyMax;
    if (over > 0) h.start += over;
    // Drop trimmed entries in batches: O(1) amortised per append instead of a shift every time.
    if (h.start >= 64 && h.start * 2 >= h.entries.length) {
      h.entries = h.entries.slice(h.start);
      h.start = 0;
    }
    h.expiresAt = now + this.opts.historyTtlMs;
    if (did !== undefined) {
      this.dedupe.set(did, { seq: h.seq, epoch: h.epoch, ts: entry.ts, expiresAt: now + this.opts.dedupeTtlMs });
    }
    return { seq: h.seq, epoch: h.epoch, ts: entry.ts, duplicate: false };
  }

  async history(room: string, query: HistoryQuery): Promise<HistoryPage> {
    this.open();
    const now = Date.now();
    const h = this.liveRoom(room, now) ?? (this.livePresence(room, now) ? this.createRoom(room) : undefined);
    // Nobody is in the room and it has no history: nothing to keep, so that reading (or joining and
    // leaving) any number of room names costs no memory. The epoch is fresh each time, which is
    // safe: a client holding it can only be told `recovered: false`, never given a partial replay.
    if (!h) return { seq: 0, epoch: randomId(8), oldest: 1, entries: [] };
    const kept = h.entries.length - h.start;
    const oldest = h.seq - kept + 1;
    const limit = Math.max(0, Math.floor(query.limit));
    // The seqs wanted, as a half-open range [from, to) clipped to what is kept.
    let from = oldest;
    let to = h.seq + 1;
    if (query.after !== undefined) from = Math.max(from, Math.floor(query.after) + 1);
    if (query.before !== undefined) to = Math.min(to, Math.ceil(query.before));
    if (query.after !== undefined) to = Math.min(to, from + limit);
    else from = Math.max(from, to - limit);
    const entries = from < to ? h.entries.slice(h.start + (from - oldest), h.start + (to - oldest)) : [];
    return { seq: h.seq, epoch: h.epoch, oldest, entries };
  }

  async presenceAdd(room: string, member: PresenceMember): Promise<{ firstForUser: boolean; members: User[] }> {
    this.open();
    const now = Date.now();
    let p = this.livePresence(room, now);
    if (!p) {
      p = { conns: new Map(), users: new Map(), expiresAt: 0 };
      this.presence.set(room, p);
    }
    let firstForUser = false;
    if (!p.conns.has(member.connId)) {
      p.conns.set(member.connId, { user: { id: member.user.id, name: member.user.name }, node: member.node });
      const u = p.users.get(member.user.id);
      if (u) {
        u.count += 1;
        u.name = member.user.name;
      } else {
        p.users.set(member.user.id, { count: 1, name: member.user.name });
        firstForUser = true;
      }
      p.expiresAt = now + this.opts.historyTtlMs;
    }
    return { firstForUser, members: membersOf(p) };
  }

  async presenceRemove(room: string, connId: string): Promise<{ user?: User; lastForUser: boolean }> {
    this.open();
    const p = this.livePresence(room, Date.now());
    const conn = p?.conns.get(connId);
    if (!p || !conn) return { lastForUser: false };
    p.conns.delete(connId);
    const u = p.users.get(conn.user.id);
    let lastForUser = true;
    if (u && u.count > 1) {
      u.count -= 1;
      lastForUser = false;
    } else {
      p.users.delete(conn.user.id);
    }
    if (p.conns.size === 0) this.dropPresence(room);
    return { user: { ...conn.user }, lastForUser };
  }

  async presenceMembers(room: string): Promise<User[]> {
    this.open();
    const p = this.livePresence(room, Date.now());
    return p ? membersOf(p) : [];
  }

  async sessionCreate(sessionId: string, user: User, node: string, connId: string): Promise<void> {
    this.open();
    const now = Date.now();
    if (this.sessions.has(sessionId)) this.dropSession(sessionId);
    const s: Session = { user: { id: user.id, name: user.name }, node, conn: connId, state: 'attached', due: 0, rooms: new Set(), expiresAt: now + SESSION_TTL_MS };
    this.sessions.set(sessionId, s);
    this.attach(sessionId, node, now);
  }

  async sessionResume(sessionId: string, user: User, node: string, connId: string): Promise<string[] | undefined> {
    this.open();
    const now = Date.now();
    const s = this.liveSession(sessionId, now);
    if (!s || s.user.id !== user.id) return undefined;
    // Once its deadline has passed a session is the sweeper's: it never comes back.
    if (s.state === 'expired' || (s.state === 'detached' && s.due <= now)) return undefined;
    if (s.state === 'attached') {
      if (s.node !== node) this.nodes.get(s.node)?.sessions.delete(sessionId);
    } else {
      this.due.delete(sessionId);
    }
    Object.assign(s, { user: { id: user.id, name: user.name }, node, conn: connId, state: 'attached', due: 0 });
    extend(s, now + SESSION_TTL_MS);
    this.attach(sessionId, node, now);
    return [...s.rooms].sort(byCodeUnit);
  }

  async sessionAddRoom(sessionId: string, room: string): Promise<void> {
    this.open();
    const now = Date.now();
    const s = this.liveSession(sessionId, now);
    if (!s) return;
    s.rooms.add(room);
    extend(s, now + SESSION_TTL_MS);
  }

  async sessionRemoveRoom(sessionId: string, room: string): Promise<void> {
    this.open();
    this.liveSession(sessionId, Date.now())?.rooms.delete(room);
  }

  async sessionDetach(sessionId: string, connId: string, graceMs: number): Promise<boolean> {
    this.open();
    const now = Date.now();
    const s = this.liveSession(sessionId, now);
    if (!s || s.state !== 'attached' || s.conn !== connId) return false;
    this.nodes.get(s.node)?.sessions.delete(sessionId);
    s.state = 'detached';
    s.due = now + graceMs;
    this.due.set(sessionId, s.due);
    extend(s, now + graceMs + SESSION_TTL_MS);
    return true;
  }

  async nodeAlive(node: string): Promise<void> {
    this.open();
    const now = Date.now();
    const n = this.nodes.get(node);
    if (!n) {
      this.nodes.set(node, { lastAlive: now, sessions: new Set(), renewedAt: now });
      return;
    }
    n.lastAlive = now;
    if (now - n.renewedAt > SESSION_TTL_MS / 2) {
      for (const sid of n.sessions) {
        const s = this.sessions.get(sid);
        if (s) extend(s, now + SESSION_TTL_MS);
      }
      n.renewedAt = now;
    }
  }

  async sweepSessions(opts: { nodeTimeoutMs: number; graceMs: number; leaseMs: number; limit: number }): Promise<ExpiredSession[]> {
    this.open();
    const now = Date.now();
    // 0. After a gap in sweeping longer than the node timeout, gateways could not report either:
    //    every known one counts as alive now (as sweep_sessions.lua does).
    if (this.lastSweepAt === 0 || now - this.lastSweepAt > opts.nodeTimeoutMs) {
      for (const n of this.nodes.values()) n.lastAlive = now;
    }
    this.lastSweepAt = now;
    // 1. Dead gateways: their sessions are detached as of their last sign of life.
    let budget = NODE_SWEEP_BATCH;
    for (const [node, n] of this.nodes) {
      if (budget <= 0) break;
      if (n.lastAlive >= now - opts.nodeTimeoutMs) continue;
      const deadline = n.lastAlive + opts.graceMs;
      for (const sid of n.sessions) {
        if (budget <= 0) break;
        budget -= 1;
        n.sessions.delete(sid);
        const s = this.liveSession(sid, now);
        if (s && s.state === 'attached' && s.node === node) {
          s.state = 'detached';
          s.due = deadline;
          this.due.set(sid, deadline);
          extend(s, now + opts.graceMs + SESSION_TTL_MS);
        }
      }
      if (n.sessions.size === 0) this.nodes.delete(node);
    }
    // 2. Lease the sessions whose deadline (or earlier lease) has passed, earliest first.
    const limit = Math.max(0, Math.floor(opts.limit));
    const due = [...this.due].filter(([, at]) => at <= now).sort((a, b) => a[1] - b[1]).slice(0, limit);
    const out: ExpiredSession[] = [];
    for (const [sid] of due) {
      const s = this.liveSession(sid, now);
      if (!s || s.state === 'attached') {
        this.due.delete(sid);
        continue;
      }
      s.state = 'expired';
      s.due = now + opts.leaseMs;
      this.due.set(sid, s.due);
      extend(s, now + opts.leaseMs + SESSION_TTL_MS);
      out.push({ sessionId: sid, user: { ...s.user }, rooms: [...s.rooms].sort(byCodeUnit) });
    }
    return out;
  }

  async sessionReaped(sessionId: string): Promise<void> {
    this.open();
    this.dropSession(sessionId);
  }

  async typingSet(room: string, user: User, typing: boolean, ttlMs: number): Promise<{ changed: boolean; users: User[] }> {
    this.open();
    const now = Date.now();
    let t = this.liveTyping(room, now);
    // Expired entries go first, and count as a change: whoever removes an entry reports it.
    let changed = t ? dropExpired(t, now) : false;
    if (typing) {
      const ttl = Math.max(1, Math.floor(ttlMs));
      if (!t) {
        t = { users: new Map(), expiresAt: 0 };
        this.typing.set(room, t);
      }
      if (!t.users.has(user.id)) changed = true;
      t.users.set(user.id, { name: user.name, expiresAt: now + ttl });
      t.expiresAt = Math.max(t.expiresAt, now + ttl + TYPING_SLACK_MS);
    } else if (t?.users.delete(user.id)) {
      changed = true;
    }
    if (t && t.users.size === 0) this.typing.delete(room);
    return { changed, users: t ? typersOf(t) : [] };
  }

  async sweepTyping(limit: number): Promise<{ room: string; users: User[] }[]> {
    this.open();
    const now = Date.now();
    const out: { room: string; users: User[] }[] = [];
    for (const room of [...this.typing.keys()]) {
      if (out.length >= limit) break;
      const t = this.liveTyping(room, now);
      if (!t || !dropExpired(t, now)) continue;
      if (t.users.size === 0) this.typing.delete(room);
      out.push({ room, users: typersOf(t) });
    }
    return out;
  }

  async notificationsAdd(items: { userId: string; notification: StoredNotification }[]): Promise<number[]> {
    this.open();
    // Checked first: a bad item rejects the call before anything is stored.
    const bodies = items.map(({ notification }) => ({ body: notificationBody(notification), at: notificationTime(notification) }));
    const now = Date.now();
    return items.map(({ userId }, i) => {
      const { body, at } = bodies[i]!;
      let u = this.liveNotifications(userId, now);
      if (u?.byId.has(body.id)) return u.unread.size;
      if (!u) {
        u = { byId: new Map(), order: [], unread: new Set(), expiresAt: 0 };
        this.notifications.set(userId, u);
      }
      u.byId.set(body.id, body);
      insertOrdered(u.order, { id: body.id, at });
      u.unread.add(body.id);
      const over = u.order.length - this.opts.notificationsMax;
      if (over > 0) {
        for (const { id } of u.order.splice(0, over)) {
          u.byId.delete(id);
          u.unread.delete(id);
        }
      }
      u.expiresAt = now + this.opts.notificationsTtlMs;
      return u.unread.size;
    });
  }

  async notificationsList(userId: string, query: { limit: number; unreadOnly?: boolean }): Promise<{ items: StoredNotification[]; unread: number }> {
    this.open();
    const u = this.liveNotifications(userId, Date.now());
    if (!u) return { items: [], unread: 0 };
    const limit = listLimit(query.limit);
    const items: StoredNotification[] = [];
    for (let i = u.order.length - 1; i >= 0 && items.length < limit; i--) {
      const { id } = u.order[i]!;
      const read = !u.unread.has(id);
      if (read && query.unreadOnly) continue;
      items.push({ ...u.byId.get(id)!, read });
      // Every unread one found: what is left is read.
      if (query.unreadOnly && items.length === u.unread.size) break;
    }
    return { items, unread: u.unread.size };
  }

  async notificationsRead(userId: string, which: { ids: string[] } | { all: true }): Promise<{ changed: string[]; unread: number }> {
    this.open();
    const u = this.liveNotifications(userId, Date.now());
    if (!u) return { changed: [], unread: 0 };
    let changed: string[];
    if ('all' in which) {
      changed = [...u.unread];
      u.unread.clear();
    } else {
      changed = which.ids.filter((id) => u.unread.delete(id));
    }
    return { changed, unread: u.unread.size };
  }

  async notificationsUnread(userId: string): Promise<number> {
    this.open();
    return this.liveNotifications(userId, Date.now())?.unread.size ?? 0;
  }

  async ticketPut(ticket: string, data: string, ttlMs: number): Promise<void> {
    this.open();
    this.tickets.set(ticket, { data, expiresAt: Date.now() + ttlMs });
  }

  async ticketTake(ticket: string): Promise<string | undefined> {
    this.open();
    const t = this.tickets.get(ticket);
    this.tickets.delete(ticket);
    return t && t.expiresAt > Date.now() ? t.data : undefined;
  }

  async ping(): Promise<void> {
    this.open();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.sweeper);
    this.rooms.clear();
    this.dedupe.clear();
    this.presence.clear();
    this.sessions.clear();
    this.due.clear();
    this.nodes.clear();
    this.typing.clear();
    this.tickets.clear();
    this.notifications.clear();
  }

  /** Frees everything expired. Lazy checks already hide it; this bounds memory. */
  private sweep(): void {
    const now = Date.now();
    for (const [room, h] of this.rooms) if (h.expiresAt <= now) this.rooms.delete(room);
    for (const [room, p] of this.presence) if (p.expiresAt <= now) this.dropPresence(room);
    for (const [sid, sess] of this.sessions) if (sess.expiresAt <= now) this.dropSession(sid);
    for (const [room, t] of this.typing) if (t.expiresAt <= now) this.typing.delete(room);
    for (const [ticket, t] of this.tickets) if (t.expiresAt <= now) this.tickets.delete(ticket);
    for (const [user, n] of this.notifications) if (n.expiresAt <= now) this.notifications.delete(user);
    for (const [id, d] of this.dedupe) {
      if (d.expiresAt > now) break;
      this.dedupe.delete(id);
    }
  }

  private open(): void {
    if (this.closed) throw new Error('store closed');
  }

  private liveRoom(room: string, now: number): RoomHistory | undefined {
    const h = this.rooms.get(room);
    if (h && h.expiresAt <= now) {
      this.rooms.delete(room);
      return undefined;
    }
    return h;
  }

  private createRoom(room: string): RoomHistory {
    const h: RoomHistory = { epoch: randomId(8), seq: 0, entries: [], start: 0, expiresAt: Date.now() + this.opts.historyTtlMs };
    this.rooms.set(room, h);
    return h;
  }

  private liveDedupe(id: string, now: number): DedupeRecord | undefined {
    const d = this.dedupe.get(id);
    if (d && d.expiresAt <= now) {
      this.dedupe.delete(id);
      return undefined;
    }
    return d;
  }

  private liveSession(sessionId: string, now: number): Session | undefined {
    const s = this.sessions.get(sessionId);
    if (s && s.expiresAt <= now) {
      this.dropSession(sessionId);
      return undefined;
    }
    return s;
  }

  /** Forgets a session everywhere (Redis: its keys, its `detached` entry, its node-set entry). */
  private dropSession(sessionId: string): void {
    const s = this.sessions.get(sessionId);
    if (!s) return;
    this.sessions.delete(sessionId);
    this.due.delete(sessionId);
    if (s.state === 'attached') this.nodes.get(s.node)?.sessions.delete(sessionId);
  }

  /** Lists an attached session under its node; a node first seen here counts as alive from now. */
  private attach(sessionId: string, node: string, now: number): void {
    let n = this.nodes.get(node);
    if (!n) {
      n = { lastAlive: now, sessions: new Set(), renewedAt: now };
      this.nodes.set(node, n);
    }
    // Redis: an empty node set is gone, and a new one gets a full TTL.
    if (n.sessions.size === 0) n.renewedAt = now;
    n.sessions.add(sessionId);
  }

  private liveTyping(room: string, now: number): RoomTyping | undefined {
    const t = this.typing.get(room);
    if (t && t.expiresAt <= now) {
      this.typing.delete(room);
      return undefined;
    }
    return t;
  }

  private liveNotifications(userId: string, now: number): UserNotifications | undefined {
    const n = this.notifications.get(userId);
    if (n && n.expiresAt <= now) {
      this.notifications.delete(userId);
      return undefined;
    }
    return n;
  }

  private livePresence(room: string, now: number): RoomPresence | undefined {
    const p = this.presence.get(room);
    if (p && p.expiresAt <= now) {
      this.dropPresence(room);
      return undefined;
    }
    return p;
  }

  /**
   * The room has no members any more: its presence goes, and so does its history record if it
   * holds no message (the epoch handed to members while the room was empty), as in Redis
   * (presence_remove.lua).
   */
  private dropPresence(room: string): void {
    this.presence.delete(room);
    if (this.rooms.get(room)?.seq === 0) this.rooms.delete(room);
  }

  /** What is held, for tests: entries per map. */
  get size(): { rooms: number; dedupe: number; presence: number; sessions: number; typing: number; tickets: number; notifications: number } {
    return {
      rooms: this.rooms.size,
      dedupe: this.dedupe.size,
      presence: this.presence.size,
      sessions: this.sessions.size,
      typing: this.typing.size,
      tickets: this.tickets.size,
      notifications: this.notifications.size,
    };
  }
}

interface RoomHistory {
  epoch: string;
  /** Latest seq assigned. */
  seq: number;
  /** `entries[start..]` are kept, the last one has `seq`; the ones before `start` are trimmed. */
  entries: string[];
  start: number;
  expiresAt: number;
}

interface DedupeRecord {
  seq: number;
  /** The epoch `seq` belongs to (the history may have been recreated since). */
  epoch: string;
  ts: string;
  expiresAt: number;
}

interface RoomPresence {
  conns: Map<string, { user: User; node: string }>;
  /** Connections per user in the room, and the user's latest name. */
  users: Map<string, { count: number; name: string }>;
  expiresAt: number;
}

interface Session {
  user: User;
  node: string;
  conn: string;
  /** attached to `conn` on `node`; detached until `due`; expired: leased to a sweeper until `due`. */
  state: 'attached' | 'detached' | 'expired';
  due: number;
  rooms: Set<string>;
  expiresAt: number;
}

interface GatewayNode {
  lastAlive: number;
  /** Sessions attached on this node. */
  sessions: Set<string>;
  /** When its sessions' expiry was last renewed (Redis: the node set's TTL). */
  renewedAt: number;
}

interface RoomTyping {
  users: Map<string, { name: string; expiresAt: number }>;
  expiresAt: number;
}

interface UserNotifications {
  /** The notifications without `read`, by id (Redis: `nitems`). */
  byId: Map<string, NotificationBody>;
  /** Oldest first, in the order of the Redis zset `norder`: see `byAge`. */
  order: { id: string; at: number }[];
  /** Ids not read yet (Redis: `nunread`): its size is the unread count. */
  unread: Set<string>;
  expiresAt: number;
}

/** A notification as stored: everything but `read`, which is membership of the unread set. */
export type NotificationBody = Omit<StoredNotification, 'read'>;

/** A session's safety-net lifetime: see the class comment. */
export const SESSION_TTL_MS = 24 * 3600_000;
/** At most this many sessions of dead gateways are detached per `sweepSessions` call. */
export const NODE_SWEEP_BATCH = 1000;
/** Typing state lives this long past its latest expiry, so a sweep that is late still finds it. */
export const TYPING_SLACK_MS = 10_000;

/** Never shortens: an expiry only moves later. */
function extend(s: Session, at: number): void {
  if (s.expiresAt < at) s.expiresAt = at;
}

/** Removes expired typing entries; true when there were some. */
function dropExpired(t: RoomTyping, now: number): boolean {
  let dropped = false;
  for (const [id, u] of t.users) {
    if (u.expiresAt <= now) {
      t.users.delete(id);
      dropped = true;
    }
  }
  return dropped;
}

function typersOf(t: RoomTyping): User[] {
  return [...t.users].map(([id, u]) => ({ id, name: u.name })).sort((a, b) => byCodeUnit(a.id, b.id));
}

/** The order both stores return ids and rooms in: by UTF-16 code unit, not locale-dependent. */
export function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function membersOf(p: RoomPresence): User[] {
  return [...p.users].map(([id, u]) => ({ id, name: u.name }));
}

/** One string per (room, key), unambiguous whatever characters either holds. */
function dedupeId(room: string, key: string): string {
  return `${room.length}:${room}${key}`;
}

/**
 * The stored fields of a notification, always built the same way (same keys, same order) so both
 * stores return equal objects; anything else the caller's object carries is not stored.
 */
export function notificationBody(n: StoredNotification): NotificationBody {
  return { id: n.id, kind: n.kind, title: n.title, body: n.body, ...(n.url !== undefined ? { url: n.url } : {}), ts: n.ts };
}

/** The time a notification is ordered by: `ts` in ms. A `ts` that is not a date is a caller's bug. */
export function notificationTime(n: StoredNotification): number {
  const at = Date.parse(n.ts);
  if (!Number.isFinite(at)) throw new RangeError(`notification ${JSON.stringify(n.id)}: ts is not a date: ${JSON.stringify(n.ts)}`);
  return at;
}

/** A list `limit` as a whole number ≥ 0 (NaN: 0; Infinity: everything). */
export function listLimit(limit: number): number {
  return Math.max(0, Math.min(Math.floor(limit) || 0, 2 ** 31 - 1));
}

/**
 * The order of a user's notifications, oldest first: by time, then by id as Redis orders equal
 * scores in a zset (bytewise on UTF-8, which is code point order, not UTF-16 code unit order).
 */
function byAge(a: { id: string; at: number }, b: { id: string; at: number }): number {
  return a.at - b.at || Buffer.compare(Buffer.from(a.id), Buffer.from(b.id));
}

/** Inserts into an array kept in `byAge` order; a new notification usually goes last, in O(1). */
function insertOrdered(order: { id: string; at: number }[], e: { id: string; at: number }): void {
  const last = order[order.length - 1];
  if (!last || byAge(last, e) < 0) {
    order.push(e);
    return;
  }
  let lo = 0;
  let hi = order.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (byAge(order[mid]!, e) < 0) lo = mid + 1;
    else hi = mid;
  }
  order.splice(lo, 0, e);
}

/** Rejects options that would make the limits meaningless (a cap of 0, a negative TTL). */
export function checkedOptions(o: StoreOptions): StoreOptions {
  for (const k of ['historyMax', 'historyTtlMs', 'dedupeTtlMs', 'notificationsMax', 'notificationsTtlMs'] as const) {
    if (!Number.isSafeInteger(o[k]) || o[k] < 1) throw new RangeError(`store option ${k} must be a whole number ≥ 1, got ${o[k]}`);
  }
  return o;
}
