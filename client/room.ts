/**
 * One room as the application sees it: membership that survives reconnects, and a message stream
 * delivered exactly once and in `seq` order.
 *
 * How the stream stays whole (docs/protocol.md, "Ordering and delivery guarantees" and "Sessions"):
 * - Every delivered message moves the room's position (`seq`, within `epoch`). A message at or
 *   below the position is a duplicate and is dropped; one more than one above it is held back and
 *   the hole is filled with `history` `after` the position, 500 at most per request, paging until
 *   caught up.
 * - After a reconnect that resumed the session, `welcome` gives each room's current seq: the room
 *   fetches everything between its position and that seq the same way; live messages above it are
 *   held back meanwhile. Then `recovery` says `recovered: true`.
 * - After a reconnect that did not resume it, the room joins again with `since` (its position) and
 *   `epoch`, and the server's `recovered` decides.
 * - When history no longer has what was missed (the first message it returns is above the
 *   position + 1, nothing comes back, or the epoch changed), `recovery` says `recovered: false`
 *   first, and delivery continues from what history still has (at most `recoveryLimit` of the
 *   latest messages when the epoch changed). Never a silent hole.
 */
import type { JoinReply, PresenceEvent, User } from '../shared/protocol/schemas.ts';
import { Emitter } from './emitter.ts';
import { RtError } from './errors.ts';
import { timeout, type Frame } from './queue.ts';
import type { HistoryResult, JoinResult, Message, PublishResult, ReadResult, RoomEvents } from './types.ts';

import { MAX_HISTORY_LIMIT, TYPING_TTL_MS } from '../shared/protocol/constants.ts';

/** The most a `history` request returns (from the dependency-free constants module, not schemas.ts, which would bring its schema library into the bundle). */
export { MAX_HISTORY_LIMIT };

/** `typing: true` is sent again after this long while the user keeps typing (entries expire after TYPING_TTL_MS). */
export const TYPING_REFRESH_MS = Math.round(TYPING_TTL_MS * 0.6);

/** What a room needs from its client. Not part of the public API. */
export interface RoomHost {
  /** True from `welcome` until the connection closes. */
  readonly online: boolean;
  /** Changes with every connection: answers to requests of an older one are ignored. */
  readonly generation: number;
  readonly joinLimit: number | undefined;
  readonly recoveryLimit: number;
  readonly requestTimeoutMs: number;
  /** A queued application request (with timeout; `retry` ones are sent again after a connection loss). */
  request(frame: Frame, opts: { room: string; retry: boolean; timeoutMs?: number }): Promise<Frame>;
  /** Sent now on the current connection; rejects with `disconnected` when there is none or it closes. */
  internal(frame: Frame): Promise<Frame>;
  /** Sent now without an id, or dropped when offline. */
  fire(frame: Frame): void;
  /** The room's membership changed: queued requests may go now. */
  roomReady(): void;
  /** This user's read cursor in the room moved (here or on another connection): conversation counts follow it. */
  readMoved(room: string, seq: number): void;
  /** The error requests fail with while the client is closed, if it is. */
  closedError(): RtError | undefined;
  newCid(): string;
  retryDelay(attempt: number): number;
}

type Status = 'left' | 'joining' | 'joined';

interface HistoryReply extends Frame {
  seq: number;
  epoch?: string;
  messages: Message[];
}

interface JoinWaiter {
  resolve(r: JoinResult): void;
  reject(e: RtError): void;
  timer: ReturnType<typeof setTimeout> | undefined;
}

export class Room extends Emitter<RoomEvents> {
  #wanted = false;
  #status: Status = 'left';
  #epoch: string | undefined;
  #seq = 0;
  #read = 0;
  /** The seq the room is known to have reached; messages up to it come from history. */
  #target = 0;
  /** Messages above the position + 1, held back until the hole below them is filled. */
  #pending = new Map<number, Message>();
  #filling = false;
  #fillAttempts = 0;
  #joinAttempts = 0;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  /** A `recovery` event is due once caught up (after a reconnect). */
  #recoveryOwed = false;
  /** The position a `recovered: false` was reported at, until a message is delivered after it. */
  #lossAt: number | undefined;
  #limit: number | undefined;
  #members: User[] = [];
  #typingUsers: User[] = [];
  #typingSent = false;
  #typingSentAt = 0;
  #joinWaiters: JoinWaiter[] = [];

  /** @internal */
  constructor(
    readonly name: string,
    private readonly host: RoomHost,
  ) {
    super();
  }

  /** True while the room is joined on the current connection. */
  get joined(): boolean {
    return this.#wanted && this.#status === 'joined';
  }

  /** The seq of the last message delivered (or the room's seq when joined). */
  get seq(): number {
    return this.#seq;
  }

  /** This user's read cursor in the room, as last learned (join, `markRead`, another device's `read`). */
  get read(): number {
    return this.#read;
  }

  /** Messages delivered or known to exist after the read cursor. */
  get unread(): number {
    return Math.max(0, Math.max(this.#seq, this.#target) - this.#read);
  }

  /**
   * Moves this user's read cursor to `seq` (default: the last message delivered). It only moves
   * forward; the user's other connections learn it (`unread` events there too).
   */
  async markRead(seq: number = this.#seq, opts: { timeoutMs?: number } = {}): Promise<ReadResult> {
    const reply = await this.host.request(
      { type: 'read', room: this.name, seq: Math.max(0, Math.floor(seq)) },
      { room: this.name, retry: true, ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }) },
    );
    this._read(reply.seq as number);
    return { room: this.name, seq: this.#read, unread: this.unread };
  }

  /** Marks read what this room has delivered to the application (call it when those messages were shown). */
  markShown(opts: { timeoutMs?: number } = {}): Promise<ReadResult> {
    return this.markRead(this.#seq, opts);
  }

  /** The read cursor moved (a reply, or a `read` event from another connection). Not public API. */
  _read(seq: number): void {
    if (!(seq > this.#read)) return;
    this.#read = seq;
    this.host.readMoved(this.name, seq);
    this.#emitUnread();
  }

  #emitUnread(): void {
    this.emit('unread', { room: this.name, read: this.#read, unread: this.unread });
  }

  get epoch(): string | undefined {
    return this.#epoch;
  }

  /** Who is here (kept up to date from `presence` events). */
  get members(): readonly User[] {
    return this.#members;
  }

  /** Who is typing now. */
  get typingUsers(): readonly User[] {
    return this.#typingUsers;
  }

  /**
   * Joins the room (or resolves at once when it is joined). While disconnected the join waits for
   * the connection; the room then stays joined across reconnects until `leave()`. Rejects after
   * `timeoutMs` (the client's request timeout; `Infinity`: never) and then gives the join up.
   */
  join(opts: { limit?: number; timeoutMs?: number } = {}): Promise<JoinResult> {
    const closed = this.host.closedError();
    if (closed) return Promise.reject(closed);
    if (this.joined && this.#epoch !== undefined && this.#joinWaiters.length === 0) return Promise.resolve(this.#snapshot([]));
    this.#wanted = true;
    if (opts.limit !== undefined) this.#limit = opts.limit;
    const timeoutMs = opts.timeoutMs ?? this.host.requestTimeoutMs;
    const result = new Promise<JoinResult>((resolve, reject) => {
      const waiter: JoinWaiter = {
        resolve,
        reject,
        timer: timeout(timeoutMs, () => {
          this.#joinWaiters = this.#joinWaiters.filter((w) => w !== waiter);
          if (this.#joinWaiters.length === 0 && this.#status !== 'joined') this.#giveUp();
          reject(new RtError('timeout', `join of "${this.name}" not answered within ${timeoutMs} ms`));
        }),
      };
      this.#joinWaiters.push(waiter);
    });
    if (this.host.online && this.#status === 'left') this.#sendJoin();
    return result;
  }

  /** Leaves the room; its position is forgotten (a later `join` starts afresh). */
  async leave(): Promise<void> {
    this.#giveUp();
    this.#settleJoin(undefined, new RtError('closed', `left "${this.name}" before the join completed`));
    const wasJoined = this.#status === 'joined';
    if (this.#status !== 'joining') this.#status = 'left';
    this.host.roomReady();
    // A join in flight is followed by a leave when its reply comes; offline, the session is
    // reconciled after the next welcome.
    if (!wasJoined || !this.host.online) return;
    try {
      await this.host.internal({ type: 'leave', room: this.name });
    } catch (err) {
      const code = (err as RtError).code;
      if (code !== 'disconnected' && code !== 'not_member') throw err;
    }
  }

  /**
   * Publishes a message; resolves once it is stored, with its seq. Made while disconnected, or
   * before the room is joined again after a reconnect, it waits in the offline queue. Sent again
   * after a connection loss with the same `cid`, so it is stored once (give your own `cid` to retry
   * across a rejection yourself).
   */
  async publish(content: string, opts: { cid?: string; timeoutMs?: number } = {}): Promise<PublishResult> {
    const cid = opts.cid ?? this.host.newCid();
    this.#typingSent = false; // the server ends typing on publish
    const reply = await this.host.request(
      { type: 'publish', room: this.name, content, cid },
      { room: this.name, retry: true, ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }) },
    );
    return { room: this.name, seq: reply.seq as number, ts: reply.ts as string, cid };
  }

  /**
   * Says whether this user is typing. Call it on every keystroke: `true` is sent at most every 3 s
   * (the server forgets it after about 5 s), `false` only after a `true`. Dropped while offline.
   */
  typing(typing: boolean): void {
    if (!this.host.online || !this.joined) return;
    const now = Date.now();
    if (typing && this.#typingSent && now - this.#typingSentAt < TYPING_REFRESH_MS) return;
    if (!typing && !this.#typingSent) return;
    this.#typingSent = typing;
    this.#typingSentAt = now;
    this.host.fire({ type: 'typing', room: this.name, typing });
  }

  /** A page of history, oldest first (`before` or `after` a seq, `limit` up to 500). */
  async history(opts: { before?: number; after?: number; limit?: number; timeoutMs?: number } = {}): Promise<HistoryResult> {
    const { timeoutMs, ...fields } = opts;
    const reply = (await this.host.request(
      { type: 'history', room: this.name, ...fields },
      { room: this.name, retry: true, ...(timeoutMs === undefined ? {} : { timeoutMs }) },
    )) as HistoryReply;
    return { room: this.name, seq: reply.seq, ...(reply.epoch === undefined ? {} : { epoch: reply.epoch }), messages: reply.messages };
  }

  /** Asks the server who is here (the `members` property is usually enough). */
  async presence(opts: { timeoutMs?: number } = {}): Promise<User[]> {
    const reply = await this.host.request({ type: 'presence', room: this.name }, { room: this.name, retry: true, ...opts });
    this.#setMembers(reply.members as User[]);
    return this.#members;
  }

  // ---- called by the client ----

  /** @internal Requests for this room may be sent (it is joined, or not wanted at all). */
  get _acceptsRequests(): boolean {
    return !this.#wanted || this.#status === 'joined';
  }

  /** @internal A `welcome` arrived: resume where the session left off, or join again. */
  _connected(resumed: boolean, position: { seq: number; epoch: string } | undefined): void {
    this.#status = 'left';
    if (!this.#wanted) {
      if (resumed && position) this.host.fire({ type: 'leave', room: this.name });
      return;
    }
    if (!resumed || !position || this.#epoch === undefined) {
      this.#sendJoin();
      return;
    }
    this.#status = 'joined';
    if (position.epoch !== this.#epoch) this.#lose(position.epoch, Math.max(0, position.seq - this.host.recoveryLimit));
    else this.#recoveryOwed = true;
    this.#target = position.seq;
    this.#refreshMembers();
    void this.#catchUp();
  }

  /** @internal The connection closed. */
  _disconnected(): void {
    this.#status = 'left';
    this.#pending.clear();
    this.#target = this.#seq;
    this.#typingSent = false;
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
    if (this.#typingUsers.length > 0) {
      this.#typingUsers = [];
      this.emit('typing', []);
    }
  }

  /**
   * @internal The server took this room away: the connection's credentials no longer allow it
   * (a resumed session or a refreshed token without the claim). The room is left, as if `leave()`
   * had been called, and `revoked` says why; `join()` again once new credentials allow it.
   */
  _revoked(err: RtError): void {
    if (!this.#wanted) return;
    this.#giveUp();
    this.#settleJoin(undefined, err);
    this.#status = 'left';
    this.host.roomReady();
    this.emit('revoked', err);
  }

  /** @internal The client stopped (closed, or gave up reconnecting). */
  _stop(err: RtError): void {
    this.#settleJoin(undefined, err);
  }

  /** @internal A room event from the server. */
  _event(frame: Frame): void {
    if (this.#status === 'left') return;
    switch (frame.type) {
      case 'message': {
        if (this.#status !== 'joined') return;
        this.#accept(frame as unknown as Message);
        if (this.#pending.size > 0) void this.#catchUp();
        return;
      }
      case 'presence': {
        const e = frame as unknown as PresenceEvent;
        if (e.event === 'join' && !this.#members.some((m) => m.id === e.user.id)) this.#setMembers([...this.#members, e.user]);
        else if (e.event === 'leave' && this.#members.some((m) => m.id === e.user.id)) this.#setMembers(this.#members.filter((m) => m.id !== e.user.id));
        this.emit('presence', e);
        return;
      }
      case 'typing':
        this.#typingUsers = (frame.users as User[]) ?? [];
        this.emit('typing', this.#typingUsers);
        return;
      case 'stats':
        this.emit('stats', frame);
        return;
    }
  }

  // ---- the stream ----

  #sendJoin(): void {
    const gen = this.host.generation;
    const rejoin = this.#epoch !== undefined;
    const frame: Frame = { type: 'join', room: this.name };
    if (rejoin) Object.assign(frame, { since: this.#seq, epoch: this.#epoch, limit: this.host.recoveryLimit });
    else if ((this.#limit ?? this.host.joinLimit) !== undefined) frame.limit = this.#limit ?? this.host.joinLimit;
    this.#status = 'joining';
    this.host.internal(frame).then(
      (reply) => {
        if (gen === this.host.generation) this.#joined(reply as unknown as JoinReply, rejoin);
      },
      (err: RtError) => {
        if (gen === this.host.generation) this.#joinFailed(err);
      },
    );
  }

  #joined(reply: JoinReply, sentSince: boolean): void {
    this.#joinAttempts = 0;
    // Left and joined again while this join was in flight: the position it was sent with is gone.
    const rejoin = sentSince && this.#epoch !== undefined;
    this.#status = 'joined';
    if (!this.#wanted) {
      this.#status = 'left';
      this.host.fire({ type: 'leave', room: this.name });
      return;
    }
    this.#setMembers(reply.members);
    if (typeof reply.read === 'number') this.#read = Math.max(this.#read, reply.read);
    const history = reply.history ?? [];
    if (!rejoin) {
      this.#epoch = reply.epoch;
      this.#seq = this.#target = reply.seq;
      this.#settleJoin(this.#snapshot(history));
    } else {
      if (reply.recovered === true && reply.epoch === this.#epoch) this.#recoveryOwed = true;
      else this.#lose(reply.epoch, (history[0]?.seq ?? reply.seq + 1) - 1);
      for (const m of history) this.#accept(m);
      this.#target = reply.seq;
      this.#settleJoin(this.#snapshot([]));
    }
    this.#emitUnread();
    this.host.roomReady();
    void this.#catchUp();
  }

  #joinFailed(err: RtError): void {
    if (err.code === 'disconnected') return; // joined again after the reconnect
    this.#status = 'left';
    if (!this.#wanted) return;
    if (err.code === 'unavailable' || err.code === 'internal' || err.code === 'rate_limited' || err.code === 'overloaded') {
      this.#later(() => {
        if (this.#wanted && this.#status === 'left' && this.host.online) this.#sendJoin();
      }, this.#joinAttempts++);
      return;
    }
    this.#giveUp();
    this.#settleJoin(undefined, err);
    this.host.roomReady();
  }

  /** Takes a message from the server or from history: delivers it, or holds it back, or drops it. */
  #accept(m: Message): void {
    if (m.seq <= this.#seq || this.#pending.has(m.seq)) return;
    if (m.seq !== this.#seq + 1) {
      this.#pending.set(m.seq, m);
      return;
    }
    this.#deliver(m);
    this.#drain();
  }

  /** Delivers the held-back messages that now follow the position. */
  #drain(): void {
    for (let next = this.#pending.get(this.#seq + 1); next; next = this.#pending.get(this.#seq + 1)) {
      this.#pending.delete(next.seq);
      this.#deliver(next);
    }
  }

  #deliver(m: Message): void {
    this.#seq = m.seq;
    this.#lossAt = undefined;
    this.emit('message', m);
    this.#emitUnread();
  }

  /** Reports a hole and moves the position to `from` (in `epoch`): delivery continues after it. */
  #lose(epoch: string, from: number): void {
    this.#recoveryOwed = false;
    this.#epoch = epoch;
    this.#seq = from;
    for (const seq of this.#pending.keys()) if (seq <= from) this.#pending.delete(seq);
    // Reported once per hole: a second call before anything was delivered moves the position only.
    const reported = this.#lossAt !== undefined;
    this.#lossAt = from;
    if (!reported) this.emit('recovery', { room: this.name, recovered: false, epoch, seq: from });
    this.#drain();
  }

  /** Fills the hole between the position and what the room is known to have, from history. */
  async #catchUp(): Promise<void> {
    if (this.#filling) return;
    this.#filling = true;
    const gen = this.host.generation;
    try {
      for (;;) {
        if (gen !== this.host.generation || this.#status !== 'joined') return;
        const held = this.#pending.size ? Math.min(...this.#pending.keys()) - 1 : 0;
        const upTo = Math.max(this.#target, held);
        if (this.#seq >= upTo) break;
        const reply = (await this.host.internal({
          type: 'history',
          room: this.name,
          after: this.#seq,
          limit: Math.min(MAX_HISTORY_LIMIT, upTo - this.#seq),
        })) as HistoryReply;
        if (gen !== this.host.generation || this.#status !== 'joined') return;
        const messages = reply.messages ?? [];
        if (reply.epoch !== undefined && reply.epoch !== this.#epoch) {
          // The room's history was lost and started again: what we had belongs to another history.
          this.#pending.clear();
          this.#lose(reply.epoch, Math.max(0, reply.seq - this.host.recoveryLimit));
          this.#target = reply.seq;
          continue;
        }
        const first = messages[0];
        if (first && first.seq > this.#seq + 1) this.#lose(reply.epoch ?? this.#epoch!, first.seq - 1);
        const before = this.#seq;
        for (const m of messages) this.#accept(m);
        // Nothing usable came back although the room has more: it is gone from history.
        if (this.#seq === before) this.#lose(reply.epoch ?? this.#epoch!, upTo);
      }
      this.#fillAttempts = 0;
      if (this.#recoveryOwed) {
        this.#recoveryOwed = false;
        this.emit('recovery', { room: this.name, recovered: true, epoch: this.#epoch!, seq: this.#seq });
      }
    } catch (err) {
      if (gen !== this.host.generation || this.#status !== 'joined') return;
      if ((err as RtError).code === 'not_member') {
        // The server no longer has us in the room (the session ended): join again from our position.
        this.#sendJoin();
        return;
      }
      this.#later(() => void this.#catchUp(), this.#fillAttempts++);
    } finally {
      this.#filling = false;
    }
  }

  #refreshMembers(): void {
    const gen = this.host.generation;
    this.host.internal({ type: 'presence', room: this.name }).then(
      (reply) => {
        if (gen === this.host.generation && Array.isArray(reply.members)) this.#setMembers(reply.members as User[]);
      },
      () => {
        // Presence events keep the list; the next reconnect asks again.
      },
    );
  }

  #setMembers(members: User[]): void {
    this.#members = members;
    this.emit('members', members);
  }

  #snapshot(history: Message[]): JoinResult {
    return { room: this.name, seq: this.#seq, epoch: this.#epoch ?? '', members: this.#members, history };
  }

  #settleJoin(result: JoinResult | undefined, err?: RtError): void {
    const waiters = this.#joinWaiters;
    this.#joinWaiters = [];
    for (const w of waiters) {
      clearTimeout(w.timer);
      if (result) w.resolve(result);
      else w.reject(err!);
    }
  }

  /** Not wanted any more: forget the position. */
  #giveUp(): void {
    this.#wanted = false;
    this.#epoch = undefined;
    this.#seq = this.#target = 0;
    this.#pending.clear();
    this.#recoveryOwed = false;
    this.#lossAt = undefined;
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    this.#retryTimer = undefined;
  }

  #later(fn: () => void, attempt: number): void {
    if (this.#retryTimer !== undefined) clearTimeout(this.#retryTimer);
    const gen = this.host.generation;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      if (gen === this.host.generation) fn();
    }, this.host.retryDelay(attempt));
  }
}
