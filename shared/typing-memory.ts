import { ExpiringMap, type MemoryContext } from './expiring-map.ts';
import type { User } from './protocol/schemas.ts';
import { byCodeUnit } from './stores.ts';
import { TYPING_SLACK_MS, type Typing } from './typing.ts';

/**
 * Typing in this process (the embedded mode). A room's typing state disappears `TYPING_SLACK_MS`
 * after its latest expiry, swept or not, as the Redis keys do.
 */
export class TypingMemory implements Typing {
  private readonly rooms = new ExpiringMap<string, RoomTyping>();

  constructor(private readonly ctx: MemoryContext) {}

  async typingSet(room: string, user: User, typing: boolean, ttlMs: number): Promise<{ changed: boolean; users: User[] }> {
    this.ctx.assertOpen();
    const now = this.ctx.clock.now();
    let t = this.rooms.get(room, now);
    // Expired entries go first, and count as a change: whoever removes an entry reports it.
    let changed = t ? dropExpired(t, now) : false;
    if (typing) {
      const ttl = Math.max(1, Math.floor(ttlMs));
      t ??= this.rooms.set(room, { users: new Map(), expiresAt: 0 });
      if (!t.users.has(user.id)) changed = true;
      t.users.set(user.id, { name: user.name, expiresAt: now + ttl });
      t.expiresAt = Math.max(t.expiresAt, now + ttl + TYPING_SLACK_MS);
    } else if (t?.users.delete(user.id)) {
      changed = true;
    }
    if (t && t.users.size === 0) this.rooms.delete(room);
    return { changed, users: t ? typersOf(t) : [] };
  }

  async sweepTyping(limit: number): Promise<{ room: string; users: User[] }[]> {
    this.ctx.assertOpen();
    const now = this.ctx.clock.now();
    const out: { room: string; users: User[] }[] = [];
    for (const room of this.rooms.keys()) {
      if (out.length >= limit) break;
      const t = this.rooms.get(room, now);
      if (!t || !dropExpired(t, now)) continue;
      if (t.users.size === 0) this.rooms.delete(room);
      out.push({ room, users: typersOf(t) });
    }
    return out;
  }

  sweep(now: number): void {
    this.rooms.sweep(now);
  }

  clear(): void {
    this.rooms.clear();
  }

  /** What is held, for tests. */
  get size(): { typing: number } {
    return { typing: this.rooms.size };
  }
}

interface RoomTyping {
  users: Map<string, { name: string; expiresAt: number }>;
  expiresAt: number;
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
