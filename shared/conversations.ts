import { createHash } from 'node:crypto';
import type { User } from './protocol/schemas.ts';

/**
 * Conversations (durable direct messages) and read cursors, per user. Implementations:
 * `conversations-memory.ts`, `conversations-redis.ts`; contract: `test/contract/conversations.test.ts`.
 *
 * A conversation is a room (`conversationRoom(a, b)`, a `dm:` name) whose messages live in the
 * `History` port like any room's. This port keeps what is per user, in the user's slot:
 * - the user's index of conversations: room → the other participant, the conversation's latest
 *   `seq` and `epoch`, its last message, and an `order` that rises with every newer message in any
 *   of the user's conversations (most recent first; `before` pages by it, so ties cannot skip an
 *   entry). At most `CONVERSATIONS_MAX` per user (the least recent are dropped); the index expires
 *   `historyTtlMs` after the user's last new message, as a room's history does.
 * - the user's read cursors, in any room: (seq, epoch); a cursor only moves forward within an
 *   epoch, and a cursor of another epoch counts as 0 (the history it counted in is gone). At most
 *   `CURSORS_MAX` per user (the least recently moved are dropped); they expire `historyTtlMs`
 *   after the user's last move.
 * The index is also who may enter a conversation: a user may join room R iff R is in their index.
 *
 * Each call touches one user only (one slot on Redis Cluster) and is atomic. A direct message
 * touches the conversation's slot (the history append) and each participant's: the caller runs
 * those as separate calls, append first, so a crash in between is repaired by a retry with the
 * same `cid` (the append answers the first seq, and `conversationTouch` is idempotent).
 */
export interface Conversations {
  /**
   * Records message (`seq`, `epoch`, `last`) of `room` in `userId`'s index, with `with` as the other
   * participant. Only a newer message changes the entry (a higher seq in the same epoch, or another
   * epoch): a late or repeated call changes nothing but may learn the partner's name. `withName`
   * false means `with.name` is a guess (the recipient's id): a name already stored is kept.
   * Returns whether the entry changed.
   */
  conversationTouch(userId: string, entry: ConversationTouch): Promise<boolean>;

  /** The other participant of `room` if it is in `userId`'s index (undefined: not theirs). */
  conversationWith(userId: string, room: string): Promise<User | undefined>;

  /**
   * The user's conversations, most recent first, at most `limit`, those with an `order` below
   * `before` when given; each with the user's read cursor in it (0 when none, or of another epoch).
   */
  conversationsList(userId: string, query: { limit: number; before?: number }): Promise<ConversationEntry[]>;

  /**
   * Moves the user's read cursor in `room` to `seq` of `epoch` unless it is already there or
   * further in the same epoch. Returns the cursor after the call and whether it moved.
   */
  readSet(userId: string, room: string, seq: number, epoch: string): Promise<{ seq: number; moved: boolean }>;

  /** The user's read cursor in `room` if it counts in `epoch`, else 0. */
  readGet(userId: string, room: string, epoch: string): Promise<number>;
}

export interface ConversationTouch {
  room: string;
  with: User;
  /** Whether `with.name` is the participant's real name (false: a guess; a stored name wins). */
  withName: boolean;
  seq: number;
  epoch: string;
  /** The message frame (JSON) of `seq`, shown as the conversation's last message. */
  last: string;
}

export interface ConversationEntry {
  room: string;
  with: User;
  seq: number;
  epoch: string;
  /** JSON of the last message. */
  last: string;
  order: number;
  /** The user's read cursor (0: none, or of another epoch). */
  read: number;
}

/** Conversations kept per user. */
export const CONVERSATIONS_MAX = 1000;
/** Read cursors kept per user. */
export const CURSORS_MAX = 1000;

export const CONVERSATION_PREFIX = 'dm:';

/**
 * The room of the conversation between users `a` and `b` (the same either way round): user ids
 * are up to 256 characters of any text and room names are not, so the name is a hash of the
 * ordered pair (`dm:` + 43 characters). Each id is length-prefixed so no two pairs meet.
 */
export function conversationRoom(a: string, b: string): string {
  const [x, y] = a < b ? [a, b] : [b, a];
  return CONVERSATION_PREFIX + createHash('sha256').update(`${x.length}:${x}\n${y.length}:${y}`).digest('base64url');
}

export function isConversationRoom(room: string): boolean {
  return room.startsWith(CONVERSATION_PREFIX);
}
