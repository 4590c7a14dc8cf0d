/**
 * The user's conversations as the SDK keeps them: direct messages shown once, and each
 * conversation's latest seq and read cursor, from which `unreadIn` and the `conversation` event
 * come. RtClient owns one and forwards `direct`, `conversations`, `unreadIn` and the server's
 * `direct` and `read` events to it.
 *
 * Counts only move forward: a `read` from another device, a `conversations` listing and a `direct`
 * event may arrive in any order (a listing answered before a newer message was stored must not
 * bring an unread count back), so each of seq and read is the highest ever learned.
 */
import type { Frame } from './queue.ts';
import type { Room } from './room.ts';
import type { Conversation, DirectMessage, DirectResult, UnreadCounts } from './types.ts';

/** Direct messages remembered per conversation to show each once (events may repeat after a retry). */
const SHOWN_PER_CONVERSATION = 256;

/** What the conversations need from their client. Not part of the public API. */
export interface ConversationHost {
  request(frame: Frame, opts: { retry: boolean; timeoutMs?: number }): Promise<Frame>;
  /** The room object of a conversation (one per name, as `client.room()`). */
  room(name: string): Room;
  /** The room object, only if the application has one (without creating it). */
  existingRoom(name: string): Room | undefined;
  /** The id of the user this connection is authenticated as. */
  userId(): string | undefined;
  newCid(): string;
  /** A conversation's counts changed (the client's `conversation` event). */
  changed(counts: UnreadCounts & { seq: number }): void;
  /** A direct message to show (the client's `direct` event). */
  direct(message: DirectMessage): void;
}

export class Conversations {
  /** Each conversation's latest seq and read cursor as last learned (for unread counts). */
  readonly #counts = new Map<string, { seq: number; read: number }>();
  readonly #shown = new Map<string, Set<number>>();

  constructor(private readonly host: ConversationHost) {}

  /** See RtClient.direct. */
  async send(to: string, content: string, opts: { cid?: string; timeoutMs?: number }): Promise<DirectResult> {
    const cid = opts.cid ?? this.host.newCid();
    const reply = await this.host.request({ type: 'direct', to, content, cid }, { retry: true, ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }) });
    const room = reply.room as string;
    const seq = reply.seq as number;
    this.#seen(room, seq);
    // What this user wrote is read for them (the server moved the cursor too).
    this.#learn(room, seq, seq);
    return { conversation: this.host.room(room), room, seq, ts: reply.ts as string, cid };
  }

  /** See RtClient.conversations. */
  async list(opts: { limit?: number; before?: number; timeoutMs?: number }): Promise<Conversation[]> {
    const { timeoutMs, ...fields } = opts;
    const reply = await this.host.request({ type: 'conversations', ...fields }, { retry: true, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
    const list = (reply.conversations as Conversation[]) ?? [];
    for (const c of list) this.#learn(c.room, c.seq, c.read);
    return list;
  }

  /** The unread count of a conversation as last learned (0 when unknown). */
  unreadIn(room: string): number {
    const c = this.#counts.get(room);
    return c ? Math.max(0, c.seq - c.read) : 0;
  }

  /** The server's `direct` event. */
  onDirect(e: DirectMessage): void {
    if (!this.#seen(e.room, e.seq)) return;
    const mine = e.from.id === this.host.userId();
    this.#learn(e.room, e.seq, mine ? e.seq : undefined);
    // A joined conversation delivers the same message as its room's `message`: shown once, there.
    if (!this.host.existingRoom(e.room)?.joined) this.host.direct(e);
  }

  /** The server's `read` event (a cursor moved on another connection of this user). */
  onRead(room: string, seq: number): void {
    this.#learn(room, 0, seq);
  }

  /** Shown (`direct`) seqs per conversation, the latest few: a repeated event is not shown twice. */
  #seen(room: string, seq: number): boolean {
    let seen = this.#shown.get(room);
    if (!seen) this.#shown.set(room, (seen = new Set()));
    if (seen.has(seq)) return false;
    seen.add(seq);
    if (seen.size > SHOWN_PER_CONVERSATION) seen.delete(seen.values().next().value!);
    return true;
  }

  /** Learns a conversation's latest seq and read cursor (each only moves forward) and reports a change. */
  #learn(room: string, seq: number, read?: number): void {
    const c = this.#counts.get(room) ?? { seq: 0, read: 0 };
    const next = { seq: Math.max(c.seq, seq), read: Math.max(c.read, read ?? 0) };
    if (next.seq === c.seq && next.read === c.read && this.#counts.has(room)) return;
    this.#counts.set(room, next);
    if (room.startsWith('dm:')) this.host.changed({ room, seq: next.seq, read: next.read, unread: Math.max(0, next.seq - next.read) });
  }
}
