import { CONVERSATIONS_MAX, CURSORS_MAX, type ConversationEntry, type ConversationTouch, type Conversations } from './conversations.ts';
import { ExpiringMap, type MemoryContext } from './expiring-map.ts';
import type { User } from './protocol/schemas.ts';
import type { StoreOptions } from './stores.ts';

/**
 * Conversations in this process, with the limits of `ConversationsRedis`: per user at most
 * CONVERSATIONS_MAX entries and CURSORS_MAX cursors, each set expiring `historyTtlMs` after its
 * last change. Maps keep insertion order, and an entry that changes is re-inserted, so the first
 * key is always the least recent one to drop.
 */
export class ConversationsMemory implements Conversations {
  private readonly indexes = new ExpiringMap<string, UserIndex>();
  private readonly cursors = new ExpiringMap<string, UserCursors>();

  constructor(
    private readonly ctx: MemoryContext,
    private readonly opts: Pick<StoreOptions, 'historyTtlMs'>,
  ) {}

  async conversationTouch(userId: string, c: ConversationTouch): Promise<boolean> {
    this.ctx.assertOpen();
    const now = this.ctx.clock.now();
    const idx = this.indexes.get(userId, now) ?? this.indexes.set(userId, { entries: new Map(), top: 0, expiresAt: 0 });
    const cur = idx.entries.get(c.room);
    if (cur && cur.epoch === c.epoch && cur.seq >= c.seq) {
      if (c.withName && cur.with.name !== c.with.name) cur.with = { id: cur.with.id, name: c.with.name };
      return false;
    }
    const name = cur && !c.withName ? cur.with.name : c.with.name;
    idx.top += 1;
    idx.entries.delete(c.room);
    idx.entries.set(c.room, { with: { id: c.with.id, name }, seq: c.seq, epoch: c.epoch, last: c.last, order: idx.top });
    for (const room of idx.entries.keys()) {
      if (idx.entries.size <= CONVERSATIONS_MAX) break;
      idx.entries.delete(room);
    }
    idx.expiresAt = now + this.opts.historyTtlMs;
    return true;
  }

  async conversationWith(userId: string, room: string): Promise<User | undefined> {
    this.ctx.assertOpen();
    const e = this.indexes.get(userId, this.ctx.clock.now())?.entries.get(room);
    return e ? { ...e.with } : undefined;
  }

  async conversationsList(userId: string, query: { limit: number; before?: number }): Promise<ConversationEntry[]> {
    this.ctx.assertOpen();
    const now = this.ctx.clock.now();
    const idx = this.indexes.get(userId, now);
    if (!idx) return [];
    const reads = this.cursors.get(userId, now)?.rooms;
    const out: ConversationEntry[] = [];
    const limit = Math.max(0, Math.floor(query.limit));
    const all = [...idx.entries].reverse();
    for (const [room, e] of all) {
      if (out.length >= limit) break;
      if (query.before !== undefined && e.order >= query.before) continue;
      const r = reads?.get(room);
      out.push({ room, with: { ...e.with }, seq: e.seq, epoch: e.epoch, last: e.last, order: e.order, read: r && r.epoch === e.epoch ? r.seq : 0 });
    }
    return out;
  }

  async readSet(userId: string, room: string, seq: number, epoch: string): Promise<{ seq: number; moved: boolean }> {
    this.ctx.assertOpen();
    const now = this.ctx.clock.now();
    const held = this.cursors.get(userId, now);
    const cur = held?.rooms.get(room);
    if (cur && cur.epoch === epoch && cur.seq >= seq) return { seq: cur.seq, moved: false };
    if (!cur && seq <= 0) return { seq: 0, moved: false };
    const u = held ?? this.cursors.set(userId, { rooms: new Map(), expiresAt: 0 });
    u.rooms.delete(room);
    u.rooms.set(room, { seq, epoch });
    for (const r of u.rooms.keys()) {
      if (u.rooms.size <= CURSORS_MAX) break;
      u.rooms.delete(r);
    }
    u.expiresAt = now + this.opts.historyTtlMs;
    return { seq, moved: true };
  }

  async readGet(userId: string, room: string, epoch: string): Promise<number> {
    this.ctx.assertOpen();
    const cur = this.cursors.get(userId, this.ctx.clock.now())?.rooms.get(room);
    return cur && cur.epoch === epoch ? cur.seq : 0;
  }

  sweep(now: number): void {
    this.indexes.sweep(now);
    this.cursors.sweep(now);
  }

  clear(): void {
    this.indexes.clear();
    this.cursors.clear();
  }

  get size(): { conversationIndexes: number; readCursors: number } {
    return { conversationIndexes: this.indexes.size, readCursors: this.cursors.size };
  }
}

interface UserIndex {
  /** Least recent first. */
  entries: Map<string, { with: User; seq: number; epoch: string; last: string; order: number }>;
  /** The highest `order` given. */
  top: number;
  expiresAt: number;
}

interface UserCursors {
  /** Least recently moved first. */
  rooms: Map<string, { seq: number; epoch: string }>;
  expiresAt: number;
}
