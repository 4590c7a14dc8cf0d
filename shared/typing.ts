import type { User } from './protocol/schemas.ts';

/**
 * Who is typing in a room, with entries that expire by themselves. Implementations:
 * `typing-memory.ts`, `typing-redis.ts`; contract: `test/contract/typing.test.ts`.
 */
export interface Typing {
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
}

/** Typing state lives this long past its latest expiry, so a sweep that is late still finds it. */
export const TYPING_SLACK_MS = 10_000;
