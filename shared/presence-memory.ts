import { ExpiringMap, type MemoryContext } from './expiring-map.ts';
import type { Presence, PresenceMember } from './presence.ts';
import type { User } from './protocol/schemas.ts';

/**
 * Presence in this process (the embedded mode). A room's presence disappears `ttlMs` after its
 * last add (the Redis keys' TTL), a safety net for connections nobody removed. When a room's
 * presence goes, by the last remove or by that expiry, `onEmpty` tells the history of the same
 * bundle (a room without messages then forgets its epoch).
 */
export class PresenceMemory implements Presence {
  private readonly rooms: ExpiringMap<string, RoomPresence>;

  constructor(
    private readonly ctx: MemoryContext,
    private readonly opts: { ttlMs: number },
    onEmpty: (room: string) => void = () => {},
  ) {
    this.rooms = new ExpiringMap((room) => onEmpty(room));
  }

  async presenceAdd(room: string, member: PresenceMember): Promise<{ firstForUser: boolean; members: User[] }> {
    this.ctx.assertOpen();
    const now = this.ctx.clock.now();
    const p = this.rooms.get(room, now) ?? this.rooms.set(room, { conns: new Map(), users: new Map(), expiresAt: 0 });
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
      p.expiresAt = now + this.opts.ttlMs;
    }
    return { firstForUser, members: membersOf(p) };
  }

  async presenceRemove(room: string, connId: string): Promise<{ user?: User; lastForUser: boolean }> {
    this.ctx.assertOpen();
    const p = this.rooms.get(room, this.ctx.clock.now());
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
    if (p.conns.size === 0) this.rooms.delete(room);
    return { user: { ...conn.user }, lastForUser };
  }

  async presenceMembers(room: string): Promise<User[]> {
    this.ctx.assertOpen();
    const p = this.rooms.get(room, this.ctx.clock.now());
    return p ? membersOf(p) : [];
  }

  /** Whether the room has members now. */
  has(room: string): boolean {
    return this.rooms.get(room, this.ctx.clock.now()) !== undefined;
  }

  sweep(now: number): void {
    this.rooms.sweep(now);
  }

  clear(): void {
    this.rooms.clear();
  }

  /** What is held, for tests. */
  get size(): { presence: number } {
    return { presence: this.rooms.size };
  }
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
