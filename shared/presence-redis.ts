import type { Presence, PresenceMember } from './presence.ts';
import type { User } from './protocol/schemas.ts';
import { usersOf, type RedisConnection } from './redis-connection.ts';

/**
 * Presence on Redis: `presence_add.lua` and `presence_remove.lua` count connections per user in
 * the same step as the change, so `firstForUser`/`lastForUser` are exact under concurrency.
 *
 * Keys of room R (in the room's slot, see `RedisConnection.roomKeys`):
 *   pconn   hash  connId → JSON {user, node}   TTL ttlMs, refreshed by adds that change something
 *   pcount  hash  userId → connections         (same)
 *   pname   hash  userId → name                (same)
 * The TTL is a safety net against connections nobody removed, not the liveness mechanism. The last
 * remove also deletes the room's history meta when it has no message (seq 0).
 */
export class PresenceRedis implements Presence {
  constructor(
    private readonly conn: RedisConnection,
    private readonly opts: { ttlMs: number },
  ) {}

  async presenceAdd(room: string, member: PresenceMember): Promise<{ firstForUser: boolean; members: User[] }> {
    const k = this.conn.roomKeys(room);
    const { connId, user, node } = member;
    const value = JSON.stringify({ user: { id: user.id, name: user.name }, node });
    const [first, ...flat] = await this.conn.run<(string | number)[]>('presence_add', [k.pconn, k.pcount, k.pname], [
      connId, value, user.id, user.name, this.opts.ttlMs,
    ]);
    return { firstForUser: first === 1, members: usersOf(flat as string[]) };
  }

  async presenceRemove(room: string, connId: string): Promise<{ user?: User; lastForUser: boolean }> {
    const k = this.conn.roomKeys(room);
    const res = await this.conn.run<[string, number] | null>('presence_remove', [k.pconn, k.pcount, k.pname, k.meta], [connId]);
    if (!res) return { lastForUser: false };
    const { user } = JSON.parse(res[0]) as { user: User };
    return { user: { id: user.id, name: user.name }, lastForUser: res[1] === 1 };
  }

  async presenceMembers(room: string): Promise<User[]> {
    const flat = await this.conn.call(this.conn.redis.hgetall(this.conn.roomKeys(room).pname));
    return Object.entries(flat).map(([id, name]) => ({ id, name }));
  }
}
