import { ExpiringMap, type MemoryContext } from './expiring-map.ts';
import type { AppendEntry, AppendResult, History, HistoryPage, HistoryQuery } from './history.ts';
import { randomId } from './ids.ts';
import type { StoreOptions } from './stores.ts';

/**
 * History in this process (the embedded mode), with the limits of `HistoryRedis`: a room's history
 * holds at most `historyMax` entries and disappears `historyTtlMs` after its last append (or after
 * a read by a member created it); the next append starts at seq 1 under a new epoch, as when Redis
 * keys expire. A dedupe record lives `dedupeTtlMs`. A room without messages is forgotten when its
 * last member leaves (`forgetIfEmpty`, called by the presence of the same bundle).
 * Every method runs synchronously to completion inside its promise, which makes each one atomic.
 */
export class HistoryMemory implements History {
  private readonly rooms = new ExpiringMap<string, RoomHistory>();
  /** Dedupe records by `dedupeId(room, key)`. */
  private readonly dedupe = new ExpiringMap<string, DedupeRecord>();

  /** `occupied`: whether the room has members now (the Presence of the same bundle). */
  constructor(
    private readonly ctx: MemoryContext,
    private readonly opts: Pick<StoreOptions, 'historyMax' | 'historyTtlMs' | 'dedupeTtlMs'>,
    private readonly occupied: (room: string) => boolean,
  ) {}

  async append(room: string, entry: AppendEntry): Promise<AppendResult> {
    this.ctx.assertOpen();
    const now = this.ctx.clock.now();
    const did = entry.dedupeKey === undefined ? undefined : dedupeId(room, entry.dedupeKey);
    if (did !== undefined) {
      const seen = this.dedupe.get(did, now);
      if (seen) return { seq: seen.seq, epoch: seen.epoch, ts: seen.ts, duplicate: true };
    }
    const h = this.rooms.get(room, now) ?? this.create(room, now);
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
    this.ctx.assertOpen();
    const now = this.ctx.clock.now();
    const h = this.rooms.get(room, now) ?? (this.occupied(room) ? this.create(room, now) : undefined);
    // Nobody is in the room and it has no history: nothing to keep (see the History contract).
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

  /** The room's last member left: a room without messages forgets its epoch (Redis: presence_remove.lua). */
  forgetIfEmpty(room: string): void {
    if (this.rooms.peek(room)?.seq === 0) this.rooms.delete(room);
  }

  sweep(now: number): void {
    this.rooms.sweep(now);
    this.dedupe.sweep(now);
  }

  clear(): void {
    this.rooms.clear();
    this.dedupe.clear();
  }

  /** What is held, for tests. */
  get size(): { rooms: number; dedupe: number } {
    return { rooms: this.rooms.size, dedupe: this.dedupe.size };
  }

  private create(room: string, now: number): RoomHistory {
    return this.rooms.set(room, { epoch: randomId(8), seq: 0, entries: [], start: 0, expiresAt: now + this.opts.historyTtlMs });
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

/** One string per (room, key), unambiguous whatever characters either holds. */
function dedupeId(room: string, key: string): string {
  return `${room.length}:${room}${key}`;
}
