/**
 * Public types of the SDK. Frame shapes come from the protocol schemas (type-only imports: the SDK
 * has no runtime dependency on them); the shapes the SDK hands the application (events without
 * their `type`, request results) are derived from them here.
 */
import type { Static } from '@sinclair/typebox';
import type {
  DirectEvent,
  MessageEvent,
  Notification,
  NotificationEvent as NotificationEventSchema,
  NotificationsReadEvent as NotificationsReadEventSchema,
  PresenceEvent,
  User,
  WelcomeEvent,
} from '../shared/protocol/schemas.ts';
import type { RtError } from './errors.ts';
import type { Room } from './room.ts';
import type { PaceOptions } from './pacer.ts';

export type { DirectEvent, MessageEvent, Notification, PresenceEvent, User, WelcomeEvent };

/** A room message: `room`, `seq`, `user`, `content`, `ts` (ISO 8601), `cid?`. */
export type Message = MessageEvent;

/** The part of the WebSocket API the SDK uses: the browser's `WebSocket` and the `ws` package fit it. */
export interface WebSocketLike {
  readonly readyState: number;
  onopen: Handler<unknown> | null;
  onmessage: Handler<{ data: unknown }> | null;
  onclose: Handler<{ code: number; reason: string }> | null;
  onerror: Handler<unknown> | null;
  send(data: string): void;
  close(code?: number, reason?: string): void;
}
// Method-style parameter checking, so that handlers typed with the richer event classes of a
// particular WebSocket implementation still fit.
type Handler<E> = { bivarianceHack(ev: E): void }['bivarianceHack'];

export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike;

/** A string, or a function called for each fresh credential (it may fetch one). */
export type CredentialSource = () => string | Promise<string>;

export interface ReconnectOptions {
  /** First retry waits up to this long (full jitter: uniformly 0..base); 500 ms. */
  baseMs?: number;
  /** The longest wait between attempts; 30 000 ms. */
  capMs?: number;
  /** Consecutive failed attempts after which the client goes `offline`; unlimited. */
  maxAttempts?: number;
  /** After a close 1001 (gateway going away) the first retry waits up to this long; 500 ms. */
  goingAwayJitterMs?: number;
}

export interface RtClientOptions {
  /**
   * The WebSocket endpoint, e.g. `wss://chat.example.com/ws`. A list is tried in turn, one URL per
   * connection attempt (the next URL after every close or failed attempt); a function is asked for
   * each attempt (`attempt` is 0 for the first connection, then counts consecutive failures).
   */
  url: string | readonly string[] | ((attempt: number) => string);
  /** Anonymous mode (`?username=`), when the server allows it. */
  username?: string;
  /**
   * A JWT, or a function returning one. The function is called before the first connection, again
   * before the token expires (then sent as `refresh`), and after a close 4001. A fixed string cannot
   * be renewed: a 4001 then stops the client.
   */
  token?: string | CredentialSource;
  /** A function returning a one-time ticket (`POST /api/tickets`); called for every connection attempt. */
  ticket?: CredentialSource;
  /** The WebSocket class; defaults to `globalThis.WebSocket` (Node 20 has none: pass `ws`). */
  WebSocket?: WebSocketConstructor;
  /** Reconnection policy, or `false` to never reconnect. */
  reconnect?: ReconnectOptions | false;
  /** How long a request may wait (queued plus in flight) before it rejects with `timeout`; 10 000 ms. */
  requestTimeoutMs?: number;
  /** Requests waiting while disconnected; more reject at once with `queue_full`; 100. */
  maxQueue?: number;
  /** A connection attempt without `welcome` within this time is abandoned; 10 000 ms. */
  connectTimeoutMs?: number;
  /** After a `ping`, the connection is considered dead without a `pong` within this time; 10 000 ms. */
  pongTimeoutMs?: number;
  /** Messages of the history a first `join` returns; the server's default (50) when not given. */
  joinLimit?: number;
  /** When missed messages cannot be recovered, how many of the latest ones to deliver instead; 100. */
  recoveryLimit?: number;
  /** A token from a `token` function is renewed this long before it expires; 30 000 ms. */
  tokenRefreshMarginMs?: number;
  /** Source of randomness for jitter (tests); `Math.random`. */
  random?: () => number;
  /**
   * Frames per second sent at most (sustained, and in a burst), to stay under the gateway's
   * per-connection rate limit (20/s, burst 40 by default), so a long offline queue is not refused when it flushes;
   * 16/s with bursts of 32. `false`: no pacing.
   */
  pace?: Partial<PaceOptions> | false;
}

export type ConnectionState = 'connecting' | 'online' | 'reconnecting' | 'offline';

export interface StateChange {
  state: ConnectionState;
  previous: ConnectionState;
  /** `connecting` / `reconnecting`: consecutive failed attempts so far (0 on the first connection). */
  attempt: number;
  /** `reconnecting`: how long until the next attempt, and when (epoch ms). */
  delayMs?: number;
  retryAt?: number;
  /** The close that caused this change, when there was one. */
  code?: number;
  reason?: string;
  /** `offline` after a stop the application did not ask for: why. */
  error?: RtError;
}

/** `recovery`: whether a room's stream continues without a hole after a reconnect or a gap. */
export interface Recovery {
  room: string;
  /**
   * true: every missed message was delivered (before this event), nothing lost.
   * false: some messages are gone (history expired or lost, the room's epoch changed, or too many
   * missed); the messages that follow start again from what history still has.
   */
  recovered: boolean;
  epoch: string;
  /** The last seq delivered (true) or the seq after which delivery continues (false). */
  seq: number;
}

export interface JoinResult {
  room: string;
  /** The room's latest seq when joined; `message` events continue after it. */
  seq: number;
  epoch: string;
  members: User[];
  /** The latest messages (at most `joinLimit`), oldest first; not repeated as `message` events. */
  history: Message[];
}

export interface PublishResult {
  room: string;
  seq: number;
  ts: string;
  /** The client message id sent (generated unless given): a retry with it stores nothing new. */
  cid: string;
}

export interface HistoryResult {
  room: string;
  seq: number;
  epoch?: string;
  messages: Message[];
}

/** `notification`: a new notification and the unread count. */
export type NotificationEvent = Omit<Static<typeof NotificationEventSchema>, 'type'>;

/** `notifications.read`: marked read on another connection of this user (`ids` or `all`). */
export type NotificationsReadEvent = Omit<Static<typeof NotificationsReadEventSchema>, 'type'>;

/**
 * `direct`: a message in a conversation (`room`, `seq`, `from`, `to`, `content`, `ts`, `cid?`),
 * emitted once per (`room`, `seq`), and only while the conversation's room is not joined: a joined
 * room delivers it as its `message` instead, so the application sees each message exactly once.
 */
export type DirectMessage = DirectEvent;

export interface ReadResult {
  room: string;
  /** The read cursor after the request (never lower than before). */
  seq: number;
  unread: number;
}

/** `unread` (room) and `conversation` (client): a room's read cursor or latest seq changed. */
export interface UnreadCounts {
  room: string;
  read: number;
  unread: number;
}

/** One of the user's conversations (`client.conversations()`). */
export interface Conversation {
  room: string;
  with: User;
  seq: number;
  read: number;
  unread: number;
  order: number;
  last?: Message;
}

export interface DirectResult {
  /** The conversation's room (join it for its history and live stream). */
  conversation: Room;
  room: string;
  seq: number;
  ts: string;
  cid: string;
}

export interface RoomEvents {
  /** Every room message exactly once, in `seq` order (see `recovery` for holes). */
  message: Message;
  /** A user joined or left (once per user, not per connection). */
  presence: PresenceEvent;
  /** Who is here, after every change. */
  members: User[];
  /** Who is typing now (the full set; it includes this user when typing). */
  typing: User[];
  recovery: Recovery;
  /** A gateway's numbers, once a second, in the dashboard room only. */
  stats: Record<string, unknown>;
  /**
   * The server took the room away (code `forbidden`): the credentials of a resumed session or a
   * refreshed token no longer allow it. The room is left; nothing more arrives from it.
   */
  revoked: RtError;
  /** The read cursor or the delivered messages changed: this user's unread count in the room. */
  unread: UnreadCounts;
}

export interface ClientEvents {
  state: StateChange;
  welcome: WelcomeEvent;
  direct: DirectMessage;
  /** A conversation's unread count changed (a new message, or a read cursor moved on any device). */
  conversation: UnreadCounts & { seq: number };
  notification: NotificationEvent;
  'notifications.read': NotificationsReadEvent;
  /** The unread notification count, when it changes. */
  unread: number;
  /** Errors not tied to a request: unsolicited server `error` frames, a failed token refresh. */
  error: RtError;
}
