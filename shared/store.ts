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
   * `seq` is the room's latest seq (0 for a room without history), `epoch` its current epoch (a new
   * room gets one here, so a client can hold it before the first message). `oldest` is the lowest
   * seq still kept (seq + 1 when the history is empty), for deciding whether a replay is complete.
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
   * connection was not present (then nothing changes).
   */
  presenceRemove(room: string, connId: string): Promise<{ user?: User; lastForUser: boolean }>;

  /** The room's users, each once, however many connections they have. */
  presenceMembers(room: string): Promise<User[]>;

  /** Resolves when the backend answers. */
  ping(): Promise<void>;
  close(): Promise<void>;
}

export interface StoreOptions {
  /** Messages kept per room (default 1000). */
  historyMax: number;
  /** How long a room's history lives after its last message (default 24 h). */
  historyTtlMs: number;
  /** How long a publish's client message id is remembered (default 10 min). */
  dedupeTtlMs: number;
}

export const defaultStoreOptions: StoreOptions = {
  historyMax: 1000,
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

export interface PresenceMember {
  connId: string;
  user: User;
  /** Gateway holding the connection. */
  node: string;
}
