import type { User } from './protocol/schemas.ts';
import { randomId } from './ids.ts';
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

/**
 * The Store of the embedded mode: everything in this process, lost when it exits. It keeps the
 * same promises as `RedisStore` (the contract suite runs against both), including the limits:
 * - a room's history holds at most `historyMax` entries and disappears `historyTtlMs` after its
 *   last append (or after `history()` created it); the next append starts at seq 1 under a new
 *   epoch, as when Redis keys expire;
 * - a dedupe record lives `dedupeTtlMs`;
 * - a room's presence disappears `historyTtlMs` after its last add (the Redis keys' TTL), a
 *   safety net for connections nobody removed.
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
  private readonly sweeper: NodeJS.Timeout;
  private closed = false;

  constructor(opts: Partial<StoreOptions> = {}) {
    this.opts = checkedOptions({ ...defaultStoreOptions, ...opts });
    // Often enough that expired rooms do not pile up, rarely enough to cost nothing when idle.
    const every = Math.min(60_000, Math.max(1000, Math.min(this.opts.historyTtlMs, this.opts.dedupeTtlMs)));
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
    const h = this.liveRoom(room, Date.now()) ?? this.createRoom(room);
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
    if (p.conns.size === 0) this.presence.delete(room);
    return { user: { ...conn.user }, lastForUser };
  }

  async presenceMembers(room: string): Promise<User[]> {
    this.open();
    const p = this.livePresence(room, Date.now());
    return p ? membersOf(p) : [];
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
  }

  /** Frees everything expired. Lazy checks already hide it; this bounds memory. */
  private sweep(): void {
    const now = Date.now();
    for (const [room, h] of this.rooms) if (h.expiresAt <= now) this.rooms.delete(room);
    for (const [room, p] of this.presence) if (p.expiresAt <= now) this.presence.delete(room);
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

  private livePresence(room: string, now: number): RoomPresence | undefined {
    const p = this.presence.get(room);
    if (p && p.expiresAt <= now) {
      this.presence.delete(room);
      return undefined;
    }
    return p;
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

function membersOf(p: RoomPresence): User[] {
  return [...p.users].map(([id, u]) => ({ id, name: u.name }));
}

/** One string per (room, key), unambiguous whatever characters either holds. */
function dedupeId(room: string, key: string): string {
  return `${room.length}:${room}${key}`;
}

/** Rejects options that would make the limits meaningless (a cap of 0, a negative TTL). */
export function checkedOptions(o: StoreOptions): StoreOptions {
  for (const k of ['historyMax', 'historyTtlMs', 'dedupeTtlMs'] as const) {
    if (!Number.isSafeInteger(o[k]) || o[k] < 1) throw new RangeError(`store option ${k} must be a whole number ≥ 1, got ${o[k]}`);
  }
  return o;
}
