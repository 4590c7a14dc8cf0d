import type { User } from './protocol/schemas.ts';

/**
 * Durable state: room history with sequence numbers, and presence. Implementations: Redis
 * (`store-redis.ts`, one Lua script per atomic step) and in-memory (`store-memory.ts`); both pass
 * `test/contract/store.test.ts`, so the embedded mode behaves as the cluster does.
 *
 * History. Each room has one sequence starting at 1 and an `epoch`, a string fixed when the room's
 * history is created. When the history is lost (its keys expired, or Redis restarted empty), the
 * next append creates it again: `seq` starts at 1 again under a new epoch, so a client holding an
 * old (seq, epoch) can tell its position means nothing now.
 * History entries are opaque strings made of `head + seq + tail`: the caller builds the JSON
 * frame around the sequence number it cannot know in advance, and history is returned as the exact
 * strings that were delivered live.
 */
export interface Store {
  /**
   * Atomically: assigns the next seq, appends `head + seq + tail` to the history (trimmed to
   * `historyMax`, expiring `historyTtlMs` after the last append) and, with a `dedupeKey`, records it
   * for `dedupeTtlMs`. If the `dedupeKey` was already recorded, nothing is stored and the first
   * append's seq and ts are returned with `duplicate: true`.
   */
  append(room: string, entry: AppendEntry): Promise<AppendResult>;

  /**
   * Messages of a room, oldest first, at most `limit`:
   * - `after`: the first `limit` with seq > after;
   * - `before`: the last `limit` with seq < before;
   * - neither: the latest `limit`.
   * `seq` is the room's latest seq (0 for a room without history), `epoch` its current epoch.
   * `oldest` is the lowest seq still kept (seq + 1 when the history is empty), for deciding whether
   * a replay is complete.
   *
   * A room without history but with members (presence) gets its epoch here, kept until the first
   * append uses it, so members hold the epoch of the first message. A room with neither members
   * nor history holds nothing (so joining and leaving any number of room names costs no memory):
   * each read gives a fresh epoch, and once its last member leaves (`presenceRemove`) its epoch is
   * forgotten. That is safe for recovery: a client holding a forgotten epoch is told
   * `recovered: false`, never given a partial replay.
   */
  history(room: string, query: HistoryQuery): Promise<HistoryPage>;

  /**
   * Adds a connection to a room's presence. `firstForUser` is true when this is the user's only
   * connection in the room (so a presence `join` is due). Adding the same connection twice is a no-op
   * with `firstForUser: false`. `members` is the room's users after the add.
   */
  presenceAdd(room: string, member: PresenceMember): Promise<{ firstForUser: boolean; members: User[] }>;

  /**
   * Removes a connection. `lastForUser` is true when it was the user's last connection in the room
   * (so a presence `leave` is due); `user` is the removed connection's user, undefined when the
   * connection was not present (then nothing changes). The last connection of a room without
   * history takes the room's epoch with it (see `history`).
   */
  presenceRemove(room: string, connId: string): Promise<{ user?: User; lastForUser: boolean }>;

  /** The room's users, each once, however many connections they have. */
  presenceMembers(room: string): Promise<User[]>;

  // ── Sessions ──────────────────────────────────────────────────────────────────────────────
  // A session (id, user, rooms) outlives its connection for a grace period so that a client that
  // reconnects, to any gateway, gets its rooms back without presence leave/join for the others.
  // Presence members are sessions, not connections: a session has at most one connection at a
  // time. Failure behaviour: a session whose connection closed is *detached* with a deadline; a
  // session whose gateway stopped calling `nodeAlive` (killed, partitioned) is detached as of the
  // gateway's last sign of life. Any worker's `sweepSessions` then hands each expired session to
  // exactly one caller, which removes its presence (emitting the leaves) and calls
  // `sessionReaped`. A sweeper that dies before that leaves the session leased; after `leaseMs`
  // another sweep hands it out again (presence removal is idempotent).
  //
  // Resume vs sweep: once a session's deadline has passed it belongs to the sweepers. It cannot be
  // resumed any more, even if no sweep has run yet, and a sweep hands out only such sessions; so a
  // sweeper's presence removal never hits a session whose client came back. Every session call is
  // atomic, and all deadlines are measured on one clock (the backend's: Redis server time), so the
  // callers' clocks do not matter.
  //
  // Each step is atomic. Sessions nobody sweeps do not live forever: a session the store has not
  // heard of (created, resumed, given a room, detached, leased, or renewed through its gateway's
  // `nodeAlive`) for a day disappears. If the backend loses its data (Redis restarted empty), the
  // sessions are gone: resumes fail, and the presence of the connections still open is no longer
  // swept when their gateway dies (the presence TTL is then the only safety net).

  /**
   * Creates a session attached to `connId` on `node`. An existing session with this id is replaced,
   * its rooms forgotten: ids are random and unguessable (128 bits), so this happens only by mistake.
   * A node first seen here counts as alive from now on (its sessions are swept if it never calls
   * `nodeAlive`).
   */
  sessionCreate(sessionId: string, user: User, node: string, connId: string): Promise<void>;

  /**
   * Re-attaches an existing session of the same user (same id; the stored name becomes `user.name`)
   * to `connId` on `node` and returns its rooms, ordered. Undefined when there is no such session
   * (never existed, reaped, lost), it belongs to another user, or its deadline has passed, swept
   * or not (see "Resume vs sweep"); then nothing changes. A session still attached to another
   * connection moves to this one: that connection's later `sessionDetach` is a no-op (closing it is
   * the caller's business).
   */
  sessionResume(sessionId: string, user: User, node: string, connId: string): Promise<string[] | undefined>;

  /**
   * Records that the session is in `room` (call before `presenceAdd`, so a sweep finds it). A no-op
   * for a session that does not exist. Meant for a session attached to the caller's connection: a
   * room added to a session already handed to a sweeper is not in what that sweeper got.
   */
  sessionAddRoom(sessionId: string, room: string): Promise<void>;
  /** Forgets the room (call after `presenceRemove`). */
  sessionRemoveRoom(sessionId: string, room: string): Promise<void>;

  /**
   * The session's connection `connId` closed: the session expires `graceMs` from now unless resumed;
   * true. A no-op (false) when the session is not attached to `connId` (any more): it was resumed on
   * another connection, detached already, or its gateway was found dead by a sweep.
   */
  sessionDetach(sessionId: string, connId: string, graceMs: number): Promise<boolean>;

  /**
   * Gateway `node` is alive; called every few seconds by (a worker on behalf of) each gateway, well
   * within the `nodeTimeoutMs` the sweepers use: a gateway found silent has its sessions detached
   * even if its sockets are still open. Also keeps its sessions from the one-day expiry above.
   */
  nodeAlive(node: string): Promise<void>;

  /**
   * Detaches the sessions of gateways silent for `nodeTimeoutMs` (deadline: their last sign of
   * life + `graceMs`; at most 1000 sessions per call, the rest on the next calls), then leases at
   * most `limit` sessions whose deadline passed (or whose earlier lease ran out), earliest first, to
   * this caller for `leaseMs`, with their user and rooms (ordered). Concurrent callers never get the
   * same session while its lease runs.
   * After a gap in sweeping longer than `nodeTimeoutMs` (the store, or every worker, was down, so
   * the gateways could not report either), a sweep first counts every known gateway as alive now,
   * giving each one timeout to report again: an outage must not end the sessions of connected users.
   */
  sweepSessions(opts: { nodeTimeoutMs: number; graceMs: number; leaseMs: number; limit: number }): Promise<ExpiredSession[]>;

  /** Deletes a session handed out by `sweepSessions` once its presence is removed. Idempotent. */
  sessionReaped(sessionId: string): Promise<void>;

  // ── Typing ────────────────────────────────────────────────────────────────────────────────

  /**
   * Marks `user` typing in `room` for `ttlMs` from now (`typing: true`: added, or its expiry and
   * name renewed) or not typing (removed). Expired entries of the room are dropped first, in the
   * same step. `changed` is true when the set of typing users changed in this call: the user was
   * added (was not typing, or their entry had expired) or removed, or expired entries were dropped.
   * `users` is the set after the call, ordered by id, never with an expired entry.
   */
  typingSet(room: string, user: User, typing: boolean, ttlMs: number): Promise<{ changed: boolean; users: User[] }>;

  /**
   * Removes expired typing entries, for at most `limit` rooms, and returns each room whose set
   * changed with its set now (ordered by id). Each removal is reported by exactly one caller: one
   * sweeper even when several sweep at once, or the `typingSet` that dropped it first. On Redis, a
   * sweeper that dies mid-sweep delays its rooms' reports by a few seconds (its lease).
   */
  sweepTyping(limit: number): Promise<{ room: string; users: User[] }[]>;

  // ── Notifications ─────────────────────────────────────────────────────────────────────────
  // Per user, newest first, at most `notificationsMax` (the oldest are dropped past it), expiring
  // `notificationsTtlMs` after the user's last new notification. The unread count is exact and
  // read in O(1).
  //
  // Order: by `ts` (to the millisecond), newest first; equal `ts` by id, the higher (by code point)
  // first. "Oldest" for the cap is the other end of the same order, so a notification older than
  // all of a full user's is dropped as it is added. Expiry: an add that stores something restarts
  // the user's TTL; duplicates, lists and reads never do, and reads never bring an expired user
  // back. Each single-user step (one user's add, a list, a read) is atomic.

  /**
   * Stores notifications for many users at once (a bulk send to 10,000 users is a handful of
   * round trips, not 10,000) and returns each user's unread count after the add, in input order.
   * Adding a notification whose id the user already has changes nothing (content, read state and
   * expiry stay): so a retry is harmless. A new notification is unread whatever its `read` says.
   * A user may appear several times; the items are applied in order ([a, b, a] with new ids
   * gives [1, 1, 2] for empty users). An item whose `ts` is not a date rejects the call before
   * anything is stored. Failure: a rejected call (`unavailable`) may have stored the notifications
   * of some users and not of others; retry the whole call with the same ids.
   */
  notificationsAdd(items: { userId: string; notification: StoredNotification }[]): Promise<number[]>;

  /**
   * The user's latest `limit` notifications, newest first (`unreadOnly`: the latest `limit` unread
   * ones, however many read ones are newer), each with `read`, and the unread count. A user with
   * none (never had any, or expired) gets `{ items: [], unread: 0 }`.
   */
  notificationsList(userId: string, query: { limit: number; unreadOnly?: boolean }): Promise<{ items: StoredNotification[]; unread: number }>;

  /**
   * Marks notifications read: the given ids (unknown ones are ignored) or all of them. `changed`
   * lists the ids that were unread before this call; `unread` is the count after it.
   * `changed` holds each id once, in the order given (with `all`: in no particular order); an
   * empty `changed` means nothing changed, so there is nothing to tell the user's other connections.
   */
  notificationsRead(userId: string, which: { ids: string[] } | { all: true }): Promise<{ changed: string[]; unread: number }>;

  /** The user's unread count (0 for a user without notifications), in O(1). */
  notificationsUnread(userId: string): Promise<number>;

  // ── Tickets ───────────────────────────────────────────────────────────────────────────────

  /** Stores a one-time ticket with its data for `ttlMs`. */
  ticketPut(ticket: string, data: string, ttlMs: number): Promise<void>;

  /**
   * Takes a ticket atomically: its data the first time, undefined when it is unknown, expired or
   * already taken — also when two gateways take it at the same moment (exactly one gets it).
   */
  ticketTake(ticket: string): Promise<string | undefined>;

  /** Resolves when the backend answers. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface StoreOptions {
  /** Messages kept per room (default 1000). */
  historyMax: number;
  /** Notifications kept per user (default 500). */
  notificationsMax: number;
  /** How long a user's notifications live after the last new one (default 30 days). */
  notificationsTtlMs: number;
  /** How long a room's history lives after its last message (default 24 h). */
  historyTtlMs: number;
  /** How long a publish's client message id is remembered (default 10 min). */
  dedupeTtlMs: number;
}

export const defaultStoreOptions: StoreOptions = {
  historyMax: 1000,
  notificationsMax: 500,
  notificationsTtlMs: 30 * 24 * 3600_000,
  historyTtlMs: 24 * 3600_000,
  dedupeTtlMs: 10 * 60_000,
};

export interface AppendEntry {
  head: string;
  tail: string;
  /** ISO timestamp of this message; returned as is, or the first one's for a duplicate. */
  ts: string;
  /** Identifies a publish for idempotent retries, e.g. `${userId}\n${cid}`. */
  dedupeKey?: string;
}

export interface AppendResult {
  seq: number;
  epoch: string;
  ts: string;
  duplicate: boolean;
}

export interface HistoryQuery {
  after?: number;
  before?: number;
  limit: number;
}

export interface HistoryPage {
  seq: number;
  epoch: string;
  oldest: number;
  /** Entries as appended (`head + seq + tail`), oldest first. */
  entries: string[];
}

export type NotificationKind = 'info' | 'success' | 'warning' | 'error';

/** A notification as stored and as sent to clients (`notification.notification`). */
export interface StoredNotification {
  id: string;
  kind: NotificationKind;
  title: string;
  body: string;
  url?: string;
  /** ISO 8601. */
  ts: string;
  read: boolean;
}

export interface ExpiredSession {
  sessionId: string;
  user: User;
  rooms: string[];
}

export interface PresenceMember {
  /** The member's session (a user has one per connection, so one user may be here many times). */
  connId: string;
  user: User;
  /** Gateway holding the connection. */
  node: string;
}
