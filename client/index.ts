/**
 * The rt SDK: one WebSocket to the gateway, kept alive and made whole again after every break.
 *
 *   const client = new RtClient({ url: 'wss://chat.example.com/ws', token: getToken });
 *   const room = client.room('lobby');
 *   room.on('message', (m) => render(m));
 *   await client.connect();
 *   await room.join();
 *   await room.publish('hi');
 *
 * What it does for the application (docs/protocol.md is the contract it relies on):
 * - reconnects with exponential backoff and full jitter, at once (with a small jitter) after a
 *   1001, never after 1000, 1003, 1008, 1009, 4003, and after 4001 only with new credentials;
 * - resumes the session (`?session=`) and its rooms, or joins them again from their position, and
 *   delivers every room message exactly once and in `seq` order (see room.ts);
 * - keeps requests made while disconnected in a bounded queue, each with a timeout; publishes are
 *   sent again with the same `cid` after a connection loss, so they are stored once;
 * - pings every `welcome.heartbeat` ms and reconnects when a `pong` does not come in time.
 */
import { CLOSE_CODES } from '../shared/protocol/codes.ts';
import { SUBPROTOCOL } from '../shared/protocol/constants.ts';
import type { User, WelcomeEvent } from '../shared/protocol/schemas.ts';
import { backoffDelay, DEFAULT_BACKOFF } from './backoff.ts';
import { Conversations } from './conversations.ts';
import { Emitter } from './emitter.ts';
import { RtError } from './errors.ts';
import { Notifications } from './notifications.ts';
import { resolveOptions, type Resolved } from './options.ts';
import { Pacer } from './pacer.ts';
import { RequestQueue, type Frame } from './queue.ts';
import { Room, type RoomHost } from './room.ts';
import { closeQuietly, jwtExpiry, messageOf, newCid } from './util.ts';
import type { ClientEvents, ConnectionState, CredentialSource, Conversation, DirectMessage, DirectResult, Notification, NotificationEvent, NotificationsReadEvent, RtClientOptions, StateChange, WebSocketConstructor, WebSocketLike } from './types.ts';

export { Room, TYPING_REFRESH_MS, MAX_HISTORY_LIMIT } from './room.ts';
export { RtError, type ClientErrorCode } from './errors.ts';
export { backoffDelay, backoffCeiling, DEFAULT_BACKOFF, type BackoffPolicy } from './backoff.ts';
export { Emitter, type Listener } from './emitter.ts';
export { DEFAULT_PACE, type PaceOptions } from './pacer.ts';
export type { Frame } from './queue.ts';
export { jwtExpiry, newCid } from './util.ts';
export type * from './types.ts';

/** The subprotocol offered on every connection. */
export { SUBPROTOCOL } from '../shared/protocol/constants.ts';

const { NORMAL, GOING_AWAY, UNSUPPORTED_DATA, POLICY_VIOLATION, TOO_LARGE, UNAUTHORIZED, FORBIDDEN } = CLOSE_CODES;

/** Close codes after which the client stops for good (docs/protocol.md, "Close codes": "stop" / "fix the client"). */
export const STOP_CODES: ReadonlySet<number> = new Set([NORMAL.code, UNSUPPORTED_DATA.code, POLICY_VIOLATION.code, TOO_LARGE.code, FORBIDDEN.code]);

/** Reported as the close code when the client itself gives up on a connection (no welcome, no pong). */
export const ABNORMAL_CLOSE = 1006;

interface Timers {
  reconnect?: ReturnType<typeof setTimeout>;
  connect?: ReturnType<typeof setTimeout>;
  ping?: ReturnType<typeof setInterval>;
  pong?: ReturnType<typeof setTimeout>;
  refresh?: ReturnType<typeof setTimeout>;
}

export class RtClient extends Emitter<ClientEvents> {
  readonly #options: RtClientOptions;
  readonly #cfg: Resolved;
  readonly #WebSocket: WebSocketConstructor;
  readonly #queue: RequestQueue;
  readonly #rooms = new Map<string, Room>();
  readonly #conversations: Conversations;
  readonly #notifications: Notifications;
  readonly #host: RoomHost;
  #state: ConnectionState = 'offline';
  #ws: WebSocketLike | undefined;
  #pacer: Pacer | undefined;
  /** Changes with every connection attempt and every close: callbacks of an older socket are ignored. */
  #gen = 0;
  /** connect() was called and neither close() nor a stop followed. */
  #started = false;
  /** Why requests fail at once: set by close() and by a stop, cleared by connect(). */
  #closedError: RtError | undefined;
  /** Consecutive failed attempts since the last welcome. */
  #attempt = 0;
  #urlIndex = 0;
  #sessionId: string | undefined;
  #welcome: WelcomeEvent | undefined;
  #token: string | undefined;
  /** A 4001 was received: the next attempt asks the token function for a new token. */
  #renewToken = false;
  #timers: Timers = {};
  #connectWaiters: { resolve(w: WelcomeEvent): void; reject(e: RtError): void }[] = [];

  constructor(options: RtClientOptions) {
    super();
    this.#options = options;
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new TypeError('no WebSocket implementation: pass one as the WebSocket option (in Node: `import WebSocket from "ws"`)');
    this.#WebSocket = WS;
    this.#cfg = resolveOptions(options);
    this.#queue = new RequestQueue({
      maxQueue: this.#cfg.maxQueue,
      retryDelay: (attempt) => this.#retryDelay(attempt),
      wake: () => this.#flush(),
      random: this.#cfg.random,
    });
    // The rooms' view of the client, so that none of this is public API.
    // eslint-disable-next-line @typescript-eslint/no-this-alias
    const client = this;
    this.#host = {
      get online() {
        return client.#state === 'online';
      },
      get generation() {
        return client.#gen;
      },
      joinLimit: this.#cfg.joinLimit,
      recoveryLimit: this.#cfg.recoveryLimit,
      requestTimeoutMs: this.#cfg.requestTimeoutMs,
      request: (frame, opts) => this.#request(frame, opts),
      internal: (frame) => this.#internal(frame),
      fire: (frame) => this.#fire(frame),
      roomReady: () => this.#flush(),
      // A markRead on this connection moves the conversation's count too (others learn it from `read`).
      readMoved: (room, seq) => this.#conversations.onRead(room, seq),
      closedError: () => this.#closedError,
      newCid: () => newCid(),
      retryDelay: (attempt) => this.#retryDelay(attempt),
    };
    this.#conversations = new Conversations({
      request: (frame, opts) => this.#request(frame, opts),
      room: (name) => this.room(name),
      existingRoom: (name) => this.#rooms.get(name),
      userId: () => this.#welcome?.user.id,
      newCid: () => newCid(),
      changed: (counts) => this.emit('conversation', counts),
      direct: (message) => this.emit('direct', message),
    });
    this.#notifications = new Notifications({ request: (frame, opts) => this.#request(frame, opts), emit: (event, value) => this.emit(event, value) });
  }

  /** `connecting`, `online`, `reconnecting` or `offline` (see the `state` event). */
  get state(): ConnectionState {
    return this.#state;
  }

  /** The user this connection is authenticated as (after the first welcome). */
  get user(): User | undefined {
    return this.#welcome?.user;
  }

  get sessionId(): string | undefined {
    return this.#sessionId;
  }

  /** The latest welcome (its `node`, `connectionId`, `resumed`, …). */
  get welcome(): WelcomeEvent | undefined {
    return this.#welcome;
  }

  /** Unread notifications. */
  get unread(): number {
    return this.#notifications.unread;
  }

  /** Requests waiting to be sent. */
  get queued(): number {
    return this.#queue.waiting;
  }

  /**
   * Connects (and keeps reconnecting); resolves with the first `welcome`. Rejects only when the
   * client stops: a close code that means stop, `maxAttempts` used up, or `close()`.
   */
  connect(): Promise<WelcomeEvent> {
    if (this.#state === 'online' && this.#welcome) return Promise.resolve(this.#welcome);
    const welcome = new Promise<WelcomeEvent>((resolve, reject) => this.#connectWaiters.push({ resolve, reject }));
    if (!this.#started) {
      this.#started = true;
      this.#closedError = undefined;
      this.#attempt = 0;
      this.#watchNetwork(true);
      void this.#open();
    }
    return welcome;
  }

  /** Closes the connection (1000) and stops; pending requests fail with `closed`. `connect()` starts again. */
  close(): void {
    this.#watchNetwork(false);
    const ws = this.#ws;
    const wasStarted = this.#started;
    this.#started = false;
    this.#detach();
    if (ws) closeQuietly(ws, NORMAL.code, 'client closed');
    this.#lost();
    const err = new RtError('closed', 'the client was closed');
    this.#closedError = err;
    this.#halt(err);
    if (wasStarted || this.#state !== 'offline') this.#setState('offline', {});
  }

  /** While waiting to reconnect: try now. */
  reconnectNow(): void {
    if (this.#state !== 'reconnecting') return;
    void this.#open();
  }

  /** The room called `name` (one object per name). */
  room(name: string): Room {
    let room = this.#rooms.get(name);
    if (!room) {
      room = new Room(name, this.#host);
      this.#rooms.set(name, room);
    }
    return room;
  }

  /** Rooms this client has handed out. */
  get rooms(): Room[] {
    return [...this.#rooms.values()];
  }

  /**
   * A direct message to user `to` (yourself: a note to self), stored in the two users'
   * conversation; resolves with it once stored. Safe to retry: it carries a `cid` (generated unless
   * given), so it is sent again after a connection loss and stored once.
   */
  direct(to: string, content: string, opts: { cid?: string; timeoutMs?: number } = {}): Promise<DirectResult> {
    return this.#conversations.send(to, content, opts);
  }

  /** This user's conversations, most recent first (`before`: the `order` of the last one you have). */
  conversations(opts: { limit?: number; before?: number; timeoutMs?: number } = {}): Promise<Conversation[]> {
    return this.#conversations.list(opts);
  }

  /** The unread count of a conversation as last learned (0 when unknown). */
  unreadIn(room: string): number {
    return this.#conversations.unreadIn(room);
  }

  readonly notifications = {
    /** The latest notifications (newest first as the server sends them) and the unread count. */
    list: (opts: { limit?: number; unreadOnly?: boolean; timeoutMs?: number } = {}): Promise<{ items: Notification[]; unread: number }> => this.#notifications.list(opts),
    /** Marks notifications read (`'all'` or a list of ids); resolves with the unread count. */
    read: (which: readonly string[] | 'all', opts: { timeoutMs?: number } = {}): Promise<number> => this.#notifications.read(which, opts),
  };

  /**
   * Any request by `type`, for frames this SDK has no method for. `retry: true` only for requests
   * that are safe to carry out twice.
   */
  request(frame: Frame, opts: { room?: string; retry?: boolean; timeoutMs?: number } = {}): Promise<Frame> {
    return this.#request(frame, { retry: opts.retry ?? false, ...(opts.room === undefined ? {} : { room: opts.room }), ...(opts.timeoutMs === undefined ? {} : { timeoutMs: opts.timeoutMs }) });
  }

  // ---- connection ----

  /** In a browser, the network coming back (the `online` event) ends the wait before a reconnect. */
  readonly #onNetwork = () => this.reconnectNow();

  #watchNetwork(on: boolean): void {
    const target = globalThis as { addEventListener?: (t: string, f: () => void) => void; removeEventListener?: (t: string, f: () => void) => void };
    if (on) target.addEventListener?.('online', this.#onNetwork);
    else target.removeEventListener?.('online', this.#onNetwork);
  }

  async #open(): Promise<void> {
    if (this.#timers.reconnect !== undefined) clearTimeout(this.#timers.reconnect);
    this.#timers.reconnect = undefined;
    const gen = ++this.#gen;
    this.#setState('connecting', { attempt: this.#attempt });
    this.#timers.connect = setTimeout(() => this.#abandon(`no welcome within ${this.#cfg.connectTimeoutMs} ms`), this.#cfg.connectTimeoutMs);
    let credential: [string, string] | undefined;
    try {
      credential = await this.#credential();
    } catch (err) {
      if (gen !== this.#gen) return;
      this.emit('error', new RtError('unauthorized', `could not get credentials: ${messageOf(err)}`));
      this.#closed(ABNORMAL_CLOSE, 'no credentials');
      return;
    }
    if (gen !== this.#gen) return;
    let ws: WebSocketLike;
    try {
      ws = new this.#WebSocket(this.#url(credential), [SUBPROTOCOL]);
    } catch (err) {
      this.#closed(ABNORMAL_CLOSE, messageOf(err));
      return;
    }
    this.#ws = ws;
    const pace = this.#cfg.pace;
    this.#pacer = pace ? new Pacer(pace, (data) => this.#write(ws, data)) : undefined;
    ws.onmessage = (ev) => {
      if (gen === this.#gen) this.#onData(ev.data);
    };
    ws.onclose = (ev) => {
      if (gen === this.#gen) this.#closed(ev.code, ev.reason ?? '');
    };
    ws.onerror = () => {
      // A close event follows with the code.
    };
  }

  /** Gives up on the current socket without waiting for its close (a dead TCP connection may never send one). */
  #abandon(reason: string): void {
    const ws = this.#ws;
    this.#ws = undefined;
    if (ws) closeQuietly(ws, 4000, reason);
    this.#closed(ABNORMAL_CLOSE, reason);
  }

  #closed(code: number, reason: string): void {
    const wasOnline = this.#state === 'online';
    this.#detach();
    this.#lost();
    if (!this.#started) return;
    const r = this.#cfg.reconnect;
    const why = `${code}${reason ? ` ${reason}` : ''}`;
    if (r === false) return this.#stop(code, reason, new RtError('closed', `connection closed (${why}); reconnecting is off`));
    if (STOP_CODES.has(code)) {
      return this.#stop(code, reason, new RtError(code === FORBIDDEN.code ? 'forbidden' : 'closed', `the server closed the connection (${why})`));
    }
    if (code === UNAUTHORIZED.code) {
      if (typeof this.#options.token !== 'function' && !this.#options.ticket) {
        return this.#stop(code, reason, new RtError('unauthorized', `credentials refused (${why}) and there is no way to get new ones`));
      }
      this.#renewToken = true;
    }
    const delay =
      code === GOING_AWAY.code && wasOnline ? Math.floor(this.#cfg.random() * r.goingAwayJitterMs) : backoffDelay(this.#attempt, r, this.#cfg.random);
    this.#attempt++;
    if (r.maxAttempts !== undefined && this.#attempt > r.maxAttempts) {
      return this.#stop(code, reason, new RtError('closed', `gave up after ${r.maxAttempts} reconnect attempts (last close ${why})`));
    }
    this.#urlIndex++;
    this.#setState('reconnecting', { attempt: this.#attempt, delayMs: delay, retryAt: Date.now() + delay, code, reason });
    this.#timers.reconnect = setTimeout(() => void this.#open(), delay);
  }

  /** Stops for good (until connect()): requests fail with `error`. */
  #stop(code: number, reason: string, error: RtError): void {
    this.#started = false;
    this.#watchNetwork(false);
    this.#closedError = error;
    this.#halt(error);
    this.#setState('offline', { code, reason, error });
  }

  #halt(error: RtError): void {
    if (this.#timers.reconnect !== undefined) clearTimeout(this.#timers.reconnect);
    this.#timers.reconnect = undefined;
    this.#queue.rejectAll(error);
    for (const room of this.#rooms.values()) room._stop(error);
    const waiters = this.#connectWaiters;
    this.#connectWaiters = [];
    for (const w of waiters) w.reject(error);
  }

  /** Forgets the socket and its timers. */
  #detach(): void {
    this.#gen++;
    const ws = this.#ws;
    this.#ws = undefined;
    this.#pacer?.stop();
    this.#pacer = undefined;
    if (ws) ws.onmessage = ws.onclose = ws.onerror = ws.onopen = null;
    const t = this.#timers;
    if (t.connect !== undefined) clearTimeout(t.connect);
    if (t.ping !== undefined) clearInterval(t.ping);
    if (t.pong !== undefined) clearTimeout(t.pong);
    if (t.refresh !== undefined) clearTimeout(t.refresh);
    this.#timers = { ...(t.reconnect === undefined ? {} : { reconnect: t.reconnect }) };
  }

  /** Requests in flight and rooms learn that the connection is gone. */
  #lost(): void {
    this.#queue.connectionLost();
    for (const room of this.#rooms.values()) room._disconnected();
  }

  #url(credential: [string, string] | undefined): string {
    const u = this.#options.url;
    const base = typeof u === 'string' ? u : typeof u === 'function' ? u(this.#attempt) : u[this.#urlIndex % u.length]!;
    const url = new URL(base, (globalThis as { location?: { href: string } }).location?.href);
    if (url.protocol === 'http:') url.protocol = 'ws:';
    else if (url.protocol === 'https:') url.protocol = 'wss:';
    if (credential) url.searchParams.set(credential[0], credential[1]);
    if (this.#sessionId) url.searchParams.set('session', this.#sessionId);
    return url.toString();
  }

  async #credential(): Promise<[string, string] | undefined> {
    const { ticket, token, username } = this.#options;
    if (ticket) return ['ticket', await ticket()];
    if (typeof token === 'string') return ['token', token];
    if (token) {
      const exp = this.#token === undefined ? undefined : jwtExpiry(this.#token);
      if (this.#token === undefined || this.#renewToken || (exp !== undefined && exp - Date.now() < 5_000)) {
        this.#token = await (token as CredentialSource)();
        this.#renewToken = false;
      }
      return ['token', this.#token];
    }
    if (username !== undefined) return ['username', username];
    return undefined;
  }

  // ---- frames ----

  #onData(data: unknown): void {
    if (typeof data !== 'string') return;
    let f: Frame;
    try {
      f = JSON.parse(data) as Frame;
    } catch {
      return;
    }
    if (!f || typeof f !== 'object' || typeof f.type !== 'string') return;
    switch (f.type) {
      case 'welcome':
        this.#onWelcome(f as unknown as WelcomeEvent);
        return;
      case 'reply':
      case 'pong':
        this.#queue.answer(f);
        return;
      case 'error': {
        if (this.#queue.answer(f)) return;
        const err = new RtError(String(f.code ?? 'internal') as RtError['code'], String(f.message ?? ''));
        // An unsolicited `forbidden` naming a room: the credentials no longer allow that room.
        if (err.code === 'forbidden' && typeof f.room === 'string') this.#rooms.get(f.room)?._revoked(err);
        this.emit('error', err);
        return;
      }
      case 'message':
      case 'presence':
      case 'typing':
      case 'stats':
        this.#rooms.get(f.room as string)?._event(f);
        return;
      case 'direct':
        this.#conversations.onDirect(f as unknown as DirectMessage);
        return;
      case 'read': {
        const room = f.room as string;
        const seq = f.seq as number;
        this.#rooms.get(room)?._read(seq);
        this.#conversations.onRead(room, seq);
        return;
      }
      case 'notification':
        this.#notifications.onNotification(f as unknown as NotificationEvent);
        return;
      case 'notifications.read':
        this.#notifications.onRead(f as unknown as NotificationsReadEvent);
        return;
    }
  }

  #onWelcome(w: WelcomeEvent): void {
    if (this.#state === 'online') return;
    if (this.#timers.connect !== undefined) clearTimeout(this.#timers.connect);
    this.#timers.connect = undefined;
    this.#welcome = w;
    this.#sessionId = w.sessionId;
    this.#attempt = 0;
    const previous = this.#state;
    this.#state = 'online';
    this.#startHeartbeat(w.heartbeat);
    this.#scheduleRefresh();
    const positions = new Map(w.resumed ? w.rooms.map((r) => [r.room, r] as const) : []);
    for (const room of this.#rooms.values()) room._connected(w.resumed, positions.get(room.name));
    // A room the session has and this client never handed out (cannot normally happen): leave it.
    for (const name of positions.keys()) if (!this.#rooms.has(name)) this.#fire({ type: 'leave', room: name });
    this.#notifications.setUnread(w.unread ?? 0);
    this.emit('state', { state: 'online', previous, attempt: 0 });
    this.emit('welcome', w);
    this.#flush();
    const waiters = this.#connectWaiters;
    this.#connectWaiters = [];
    for (const c of waiters) c.resolve(w);
  }

  // ---- heartbeat and token refresh ----

  #startHeartbeat(intervalMs: number): void {
    if (!(intervalMs > 0)) return;
    this.#timers.ping = setInterval(() => this.#ping(), intervalMs);
  }

  #ping(): void {
    if (this.#timers.pong !== undefined || this.#state !== 'online') return;
    const gen = this.#gen;
    const timeoutMs = this.#cfg.pongTimeoutMs;
    this.#timers.pong = setTimeout(() => this.#abandon(`no pong within ${timeoutMs} ms`), timeoutMs);
    this.#internal({ type: 'ping' }).then(
      () => {
        if (gen !== this.#gen) return;
        clearTimeout(this.#timers.pong);
        this.#timers.pong = undefined;
      },
      () => {
        // The connection closed; the reconnect starts its own heartbeat.
      },
    );
  }

  #scheduleRefresh(): void {
    if (this.#timers.refresh !== undefined) clearTimeout(this.#timers.refresh);
    this.#timers.refresh = undefined;
    if (typeof this.#options.token !== 'function' || this.#token === undefined) return;
    const exp = jwtExpiry(this.#token);
    if (exp === undefined) return;
    const remaining = exp - Date.now();
    const delay = Math.max(0, remaining - Math.min(this.#cfg.tokenRefreshMarginMs, remaining / 2));
    this.#timers.refresh = setTimeout(() => void this.#refresh(), delay);
  }

  /** A new token from the token function, sent as `refresh` before the current one expires. */
  async #refresh(): Promise<void> {
    const gen = this.#gen;
    try {
      const token = await (this.#options.token as CredentialSource)();
      this.#token = token;
      if (gen !== this.#gen) return; // the next connection uses it
      await this.#internal({ type: 'refresh', token });
      if (gen === this.#gen) this.#scheduleRefresh();
    } catch (err) {
      if (gen !== this.#gen) return;
      // Nothing else to do: when the old token expires the server closes with 4001, and the
      // reconnect asks the token function again.
      this.emit('error', err instanceof RtError ? err : new RtError('unauthorized', `token refresh failed: ${messageOf(err)}`));
    }
  }

  // ---- requests ----

  #request(frame: Frame, opts: { room?: string; retry: boolean; timeoutMs?: number }): Promise<Frame> {
    if (this.#closedError) return Promise.reject(this.#closedError);
    const answer = this.#queue.add(frame, {
      retry: opts.retry,
      timeoutMs: opts.timeoutMs ?? this.#cfg.requestTimeoutMs,
      ...(opts.room === undefined ? {} : { room: opts.room }),
    });
    this.#flush();
    return answer;
  }

  #internal(frame: Frame): Promise<Frame> {
    if (this.#state !== 'online' || !this.#ws) return Promise.reject(new RtError('disconnected', 'not connected'));
    const { frame: withId, answer } = this.#queue.sendNow(frame);
    this.#send(withId);
    return answer;
  }

  /** Sends without waiting for an answer (an error answer is reported as an `error` event). */
  #fire(frame: Frame): void {
    if (this.#state === 'online') this.#send(frame);
  }

  #flush(): void {
    if (this.#state !== 'online' || !this.#ws) return;
    for (const frame of this.#queue.takeReady((room) => room === undefined || (this.#rooms.get(room)?._acceptsRequests ?? true))) {
      this.#send(frame);
    }
  }

  #send(frame: Frame): void {
    const ws = this.#ws;
    if (!ws) return;
    const data = JSON.stringify(frame);
    if (this.#pacer) this.#pacer.send(data);
    else this.#write(ws, data);
  }

  #write(ws: WebSocketLike, data: string): void {
    try {
      ws.send(data);
    } catch {
      // The socket is closing; its close event puts the request back or fails it.
    }
  }

  #retryDelay(attempt: number): number {
    const r = this.#cfg.reconnect;
    return backoffDelay(attempt, r === false ? DEFAULT_BACKOFF : r, this.#cfg.random);
  }

  #setState(state: ConnectionState, extra: Partial<StateChange>): void {
    const previous = this.#state;
    this.#state = state;
    this.emit('state', { attempt: this.#attempt, ...extra, state, previous });
  }
}
