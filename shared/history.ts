/**
 * Room history with sequence numbers. Implementations: `history-memory.ts`, `history-redis.ts`;
 * contract: `test/contract/history.test.ts`.
 *
 * Each room has one sequence starting at 1 and an `epoch`, a string fixed when the room's history
 * is created. When the history is lost (its keys expired, or Redis restarted empty), the next
 * append creates it again: `seq` starts at 1 again under a new epoch, so a client holding an old
 * (seq, epoch) can tell its position means nothing now.
 * History entries are opaque strings made of `head + seq + tail`: the caller builds the JSON frame
 * around the sequence number it cannot know in advance, and history is returned as the exact
 * strings that were delivered live.
 *
 * A room without messages but with members (the `Presence` port of the same `Stores`) gets its
 * epoch on the first read, and keeps it until the first append uses it, so members hold the epoch
 * of the first message. A room with neither members nor messages holds nothing, so that joining,
 * reading and leaving any number of room names costs no memory: each read gives a fresh epoch, and
 * when its last member leaves, its epoch is forgotten. That is safe for recovery: a client holding a
 * forgotten epoch is told `recovered: false`, never given a partial replay.
 */
export interface History {
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
   * `seq` is the room's latest seq (0 for a room without history), `epoch` its current epoch (see
   * above for a room without messages). `oldest` is the lowest seq still kept (seq + 1 when the
   * history is empty), for deciding whether a replay is complete.
   */
  history(room: string, query: HistoryQuery): Promise<HistoryPage>;
}

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
