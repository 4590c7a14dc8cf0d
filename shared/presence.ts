import type { User } from './protocol/schemas.ts';

/**
 * Who is in a room. Implementations: `presence-memory.ts`, `presence-redis.ts`; contract:
 * `test/contract/presence.test.ts`.
 *
 * Members are sessions (a session has at most one connection at a time), counted per user so that
 * a user with several sessions in a room joins it once and leaves it once. Each call is atomic.
 * Failure behaviour: presence is not removed by a disconnect callback but by whoever ends the
 * session (`leave`, or the session sweep of `Sessions` when the session's grace ran out or its
 * gateway died). As a last safety net for members nobody removed, a room's presence disappears
 * `historyTtlMs` after its last add.
 */
export interface Presence {
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
   * messages takes the room's epoch with it (see `History`).
   */
  presenceRemove(room: string, connId: string): Promise<{ user?: User; lastForUser: boolean }>;

  /** The room's users, each once, however many connections they have. */
  presenceMembers(room: string): Promise<User[]>;
}

export interface PresenceMember {
  /** The member's session (a user has one per connection, so one user may be here many times). */
  connId: string;
  user: User;
  /** Gateway holding the connection. */
  node: string;
}
