/**
 * `Connections`: the protocol spoken with every `Conn` (conn.ts) — the session's opening, each
 * frame's validation and dispatch, joins and leaves, `refresh`, revocation, the close, and the
 * slow-consumer check.
 *
 * Hot path (every frame): one decode, one compiled validation, one string concatenation to
 * forward (the envelope header is built once per connection), replies batched per tick into one
 * corked write per connection. uWS lifetimes: the `message` ArrayBuffer is decoded (copied) before
 * anything else; every write from an async continuation is corked; a closed connection is never
 * written to (`closed` is set in the `close` callback, before anything else runs).
 */
import type * as UWS from 'uWebSockets.js';
import type { Config } from '../shared/config.ts';
import { errorFrame, overloadedFrame } from '../shared/errors.ts';
import { BusError } from '../shared/bus.ts';
import { randomId } from '../shared/ids.ts';
import type { Logger } from '../shared/log.ts';
import { CLOSE_CODES } from '../shared/protocol/codes.ts';
import type { HistogramSeries, HotHistogram } from '../shared/metrics.ts';
import { frames, readPosition } from '../shared/protocol/internal.ts';
import type { RequestOf } from '../shared/protocol/schemas.ts';
import { parseRequest, requestIdOf } from '../shared/protocol/validate.ts';
import { AuthError, mayJoin, type Authenticator } from './auth.ts';
import { endInternal, type Boundary } from './boundary.ts';
import { Conn, type UpgradeData } from './conn.ts';
import type { Fanout } from './fanout.ts';
import { Deadlines } from './deadlines.ts';
import { ConnectionLimiter } from './limits.ts';
import type { RoomStream } from './room-stream.ts';
import type { GatewayStats } from './stats.ts';
import { InFlightWindow } from './window.ts';
import { unavailableMessage, type Upstream } from './upstream.ts';

const decoder = new TextDecoder();
const j = JSON.stringify;
/** Sockets the slow-consumer check looks at per call (every 200 ms): about a millisecond's work. */
const SLOW_CHECKS_PER_SWEEP = 4096;
/** Frames a connection may send before its session is open; they are handled once it is. */
const MAX_EARLY_FRAMES = 32;

export interface ConnectionsDeps {
  cfg: Config;
  nodeId: string;
  auth: Authenticator;
  fanout: Fanout;
  upstream: Upstream;
  stats: GatewayStats;
  boundary: Boundary;
  log: Logger;
  requestDuration: HotHistogram;
}

export class Connections {
  readonly all = new Set<Conn>();
  /** Clients' requests forwarded to workers and not answered yet (MAX_IN_FLIGHT_PER_GATEWAY). */
  private readonly window: InFlightWindow;
  private readonly replies = new Map<Conn, (Uint8Array | string)[]>();
  private repliesScheduled = false;
  private readonly cfg: Config;
  private readonly fanout: Fanout;
  private readonly upstream: Upstream;
  private readonly stats: GatewayStats;
  private readonly boundary: Boundary;
  /** Connections whose credentials expire, on one timer. */
  private readonly expiries: Deadlines<Conn>;
  /** Where the slow-consumer check goes on at its next call (a Set iterator survives changes). */
  private slowSweep: Iterator<Conn> | undefined;

  constructor(private readonly d: ConnectionsDeps) {
    this.cfg = d.cfg;
    this.window = new InFlightWindow(d.cfg.maxInFlightPerGateway);
    this.fanout = d.fanout;
    this.upstream = d.upstream;
    this.stats = d.stats;
    this.boundary = d.boundary;
    this.expiries = new Deadlines(
      (conn) => {
        if (!conn.closed) conn.ws.end(CLOSE_CODES.UNAUTHORIZED.code, 'unauthorized: token expired');
      },
      (err) => this.boundary.failed('expiry', err),
    );
  }

  get size(): number {
    return this.all.size;
  }

  /** uWS `open`: refuses what admission marked, else opens (or resumes) the session. */
  open(ws: UWS.WebSocket<UpgradeData>): void {
    const data = ws.getUserData();
    if (data.credentials) {
      // Opened before its credentials were checked: continue once they are.
      data.early = [];
      void data.credentials
        .then((who) => {
          if (data.gone) return;
          data.credentials = undefined;
          if (who instanceof AuthError) {
            data.authError = who.reason;
            data.authFailure = who.kind;
          } else data.identity = who;
          ws.cork(() => this.open(ws));
        })
        .catch((err: unknown) => {
          this.boundary.failed('open', err);
          if (!data.gone) endInternal(ws);
        });
      return;
    }
    if (!data.identity) {
      this.stats.connects.add('unauthorized');
      this.stats.authFailures.add(data.authFailure ?? 'missing');
      ws.end(CLOSE_CODES.UNAUTHORIZED.code, `unauthorized: ${data.authError ?? 'missing credentials'}`);
      return;
    }
    const perUser = this.cfg.maxConnectionsPerUser;
    if (perUser > 0 && this.fanout.userCount(data.identity.user.id) >= perUser) {
      this.stats.connects.add('user_limit');
      ws.end(CLOSE_CODES.POLICY_VIOLATION.code, `too many connections for this user (${perUser})`);
      return;
    }
    const limiter = this.cfg.rateLimitRps > 0 ? new ConnectionLimiter(this.cfg.rateLimitRps, Math.max(1, this.cfg.rateLimitBurst)) : undefined;
    this.stats.connects.add('accepted');
    const conn = new Conn(ws, randomId(12), data.identity, this.d.nodeId, limiter, this.stats);
    data.conn = conn;
    if (data.early) {
      conn.early = data.early;
      data.early = undefined;
    }
    this.all.add(conn);
    this.fanout.addConn(conn);
    this.armExpiry(conn);
    this.upstream.open(conn.header, data.session).then(
      (opened) => {
        if (conn.closed) return;
        if (!opened) {
          conn.ws.end(CLOSE_CODES.TRY_AGAIN_LATER.code, 'session store unavailable; retry');
          return;
        }
        conn.openSession(opened.sessionId);
        // A resumed session's rooms are checked against the new credentials like a join.
        const revoked = opened.rooms.filter((r) => !mayJoin(conn.identity, r.room));
        if (revoked.length > 0) opened.rooms = opened.rooms.filter((r) => mayJoin(conn.identity, r.room));
        conn.ws.cork(() => {
          conn.send(
            j({
              type: 'welcome',
              connectionId: conn.id,
              node: this.d.nodeId,
              sessionId: opened.sessionId,
              user: conn.user,
              resumed: opened.resumed,
              rooms: opened.rooms,
              unread: opened.unread,
              heartbeat: this.cfg.heartbeatMs,
            }),
          );
          // The session's rooms, at the positions the welcome announced; a message published
          // between the worker reading them and these subscriptions is filled from history.
          for (const { room, seq, epoch } of opened.rooms) {
            const stream = this.fanout.acquire(room);
            conn.rooms.add(room);
            stream.attach(conn, seq, epoch);
          }
          for (const { room } of revoked) this.revoke(conn, room);
          const early = conn.early ?? [];
          conn.early = undefined;
          for (const text of early) this.handleText(conn, text);
        });
      },
      (err) => {
        if (!conn.closed) conn.ws.end(CLOSE_CODES.TRY_AGAIN_LATER.code, unavailableMessage(err).slice(0, 100));
      },
    ).catch((err: unknown) => {
      this.boundary.failed('open', err, conn.id);
      if (!conn.closed) endInternal(conn.ws);
    });
  }

  /** uWS `message`. */
  message(ws: UWS.WebSocket<UpgradeData>, message: ArrayBuffer, isBinary: boolean): void {
    const data = ws.getUserData();
    const conn = data.conn;
    // No connection yet: its credentials are being checked (`early` is set), or it was refused.
    if (!conn && !data.early) return;
    if (isBinary) {
      ws.end(CLOSE_CODES.UNSUPPORTED_DATA.code, 'binary frames are not supported');
      return;
    }
    if (this.cfg.maxFrameBytes && message.byteLength > this.cfg.maxFrameBytes) {
      ws.end(CLOSE_CODES.TOO_LARGE.code, `frame larger than ${this.cfg.maxFrameBytes} bytes`);
      return;
    }
    this.stats.bytesIn += message.byteLength;
    if (!conn) {
      // Kept, within the bound of frames before the welcome, for once the session is open.
      if (data.early!.length >= MAX_EARLY_FRAMES) ws.end(CLOSE_CODES.POLICY_VIOLATION.code, 'too many frames before welcome');
      else data.early!.push(decoder.decode(message));
      return;
    }
    if (conn.limiter) {
      const verdict = conn.limiter.check();
      if (verdict !== 'ok') {
        if (verdict === 'close') ws.end(CLOSE_CODES.POLICY_VIOLATION.code, 'request rate limit exceeded for too long');
        // Only refused frames are parsed here, to answer with their id as every request's answer must.
        else conn.send(errorFrame(requestIdOf(decoder.decode(message)), 'rate_limited', 'too many requests; slow down'));
        return;
      }
    }
    // The ArrayBuffer is only valid during this callback: decode (copy) it now.
    const text = decoder.decode(message);
    if (conn.early) {
      if (conn.early.length >= MAX_EARLY_FRAMES) ws.end(CLOSE_CODES.POLICY_VIOLATION.code, 'too many frames before welcome');
      else conn.early.push(text);
      return;
    }
    this.handleText(conn, text);
  }

  handleText(conn: Conn, text: string): void {
    const parsed = parseRequest(text);
    if (!parsed.ok) {
      this.stats.received.add('invalid');
      conn.send(errorFrame(parsed.id, parsed.code, parsed.message));
      return;
    }
    const req = parsed.request;
    this.stats.received.add(req.type);
    switch (req.type) {
      case 'ping':
        conn.send(req.id === undefined ? '{"type":"pong"}' : `{"type":"pong","id":${j(req.id)}}`);
        return;
      case 'refresh':
        this.refresh(conn, req.id, req.token);
        return;
      case 'join':
        this.join(conn, req, text);
        return;
      case 'leave':
        this.leave(conn, req, text);
        return;
      case 'publish':
      case 'typing':
      case 'history':
      case 'presence':
        if (!conn.rooms.has(req.room)) {
          conn.send(errorFrame(req.id, 'not_member', `join room "${req.room}" first`));
          return;
        }
        if ((req.type === 'publish' || req.type === 'typing') && req.room === this.cfg.dashboardRoom) {
          conn.send(errorFrame(req.id, 'forbidden', `"${req.room}" is written by the server only`));
          return;
        }
        if (req.type === 'publish') {
          if (this.tooLong(req.content)) {
            conn.send(errorFrame(req.id, 'too_large', `content is longer than ${this.cfg.maxContentChars} characters`));
            return;
          }
          // Publishing ends typing. Only connections that said they type pay the extra request.
          if (conn.isTyping && conn.typing.delete(req.room)) this.stopTyping(conn, req.room);
        } else if (req.type === 'typing') {
          if (req.typing) conn.typing.add(req.room);
          else if (conn.isTyping) conn.typing.delete(req.room);
        }
        // Safe to repeat: reads, typing (a state, not an event) and publishes the store dedupes by cid.
        this.forward(conn, req.id, text, req.type, req.type !== 'publish' || req.cid !== undefined);
        return;
      case 'notifications.list':
      case 'notifications.read':
      case 'read':
      case 'conversations':
        this.forward(conn, req.id, text, req.type);
        return;
      case 'direct':
        if (this.tooLong(req.content)) {
          conn.send(errorFrame(req.id, 'too_large', `content is longer than ${this.cfg.maxContentChars} characters`));
          return;
        }
        this.forward(conn, req.id, text, req.type);
        return;
    }
  }

  private tooLong(content: string): boolean {
    return this.cfg.maxContentChars > 0 && content.length > this.cfg.maxContentChars;
  }

  /**
   * Sends the frame to a worker and the worker's answer, if any, to the client. Past the
   * connection's or the gateway's in-flight window the request is not sent: it is answered
   * `overloaded` at once, and so is one a worker refused at its own limit. A request that was not
   * started may be sent again as it is (a publish keeps its cid).
   */
  private forward(conn: Conn, id: string | number | undefined, text: string, type = 'other', hedged = false): void {
    const perConn = this.cfg.maxInFlightPerConnection;
    if (perConn > 0 && conn.inFlight >= perConn) return this.refuse(conn, id, 'connection');
    const started = performance.now();
    if (!this.window.admit(started)) return this.refuse(conn, id, 'gateway');
    conn.inFlight++;
    const series = this.d.requestDuration.series(type);
    (hedged ? this.upstream.hedged(conn.header, text) : this.upstream.request(conn.header, text)).then(
      (answer) => {
        this.answered(conn, series, started);
        if (answer.length > 0) this.reply(conn, answer);
      },
      (err) => {
        this.answered(conn, series, started);
        if (err instanceof BusError && err.kind === 'overloaded') this.refuse(conn, id, 'worker');
        else this.reply(conn, errorFrame(id, 'unavailable', unavailableMessage(err)));
      },
    ).catch((err: unknown) => this.boundary.failed('reply', err, conn.id));
  }

  private answered(conn: Conn, series: HistogramSeries, started: number): void {
    conn.inFlight--;
    const ms = performance.now() - started;
    series.observe(ms / 1000);
    this.stats.latency(ms);
    this.window.answered(ms);
  }

  private refuse(conn: Conn, id: string | number | undefined, window: 'connection' | 'gateway' | 'worker'): void {
    this.stats.overloaded.add(window);
    const frame = overloadedFrame(id, this.window.retryAfter(performance.now()), `too many requests in flight (${window}); retry after retryAfterMs`);
    // From the message callback: a direct send; from a bus answer: with the other answers of the turn.
    if (window === 'worker') this.reply(conn, frame);
    else conn.send(frame);
  }

  /**
   * Answers arriving together (one read from the bus holds many) are sent per connection in one
   * corked write at the end of the tick, instead of one system call each. Order per connection
   * is kept.
   */
  private reply(conn: Conn, frame: Uint8Array | string): void {
    const queued = this.replies.get(conn);
    if (queued) queued.push(frame);
    else this.replies.set(conn, [frame]);
    if (!this.repliesScheduled) {
      this.repliesScheduled = true;
      setImmediate(this.flushReplies);
    }
  }

  private readonly flushReplies = (): void => {
    this.repliesScheduled = false;
    for (const [conn, frames] of this.replies) {
      if (conn.closed) continue;
      try {
        conn.ws.cork(() => {
          for (const f of frames) conn.send(f);
        });
      } catch (err) {
        this.boundary.failed('reply', err, conn.id);
      }
    }
    this.replies.clear();
  };

  private join(conn: Conn, req: RequestOf<'join'>, text: string): void {
    const { room } = req;
    if (!mayJoin(conn.identity, room)) {
      conn.send(errorFrame(req.id, 'forbidden', `not allowed to join "${room}"`));
      return;
    }
    const maxRooms = this.cfg.maxRoomsPerConnection;
    if (maxRooms > 0 && !conn.rooms.has(room) && conn.rooms.size + conn.joiningCount >= maxRooms) {
      conn.send(errorFrame(req.id, 'forbidden', `a connection may be in at most ${maxRooms} rooms`));
      return;
    }
    if (conn.isJoining(room)) {
      conn.send(errorFrame(req.id, 'bad_request', `a join of "${room}" is already in progress`));
      return;
    }
    // Subscribe before asking the worker: the bus then has our subscription before the worker
    // reads the room's position, so nothing published after that position can pass us by.
    let stream: RoomStream;
    try {
      stream = this.fanout.acquire(room);
    } catch (err) {
      conn.send(errorFrame(req.id, 'unavailable', unavailableMessage(err)));
      return;
    }
    if (conn.rooms.has(room)) {
      conn.ws.unsubscribe(stream.topic);
      stream.detach(conn);
      conn.rooms.delete(room);
      this.fanout.release(stream);
    }
    conn.joining.add(room);
    // A join is safe to repeat: presence is keyed by session, so a second one changes nothing.
    this.upstream.hedged(conn.header, text).then(
      (answer) => {
        conn.joined(room);
        // A reply carries the room position in front of the client's frame; an error does not.
        const at = readPosition(answer);
        if (conn.closed || !at) {
          this.fanout.release(stream);
          if (answer.length) conn.sendLater(answer);
          return;
        }
        if (!mayJoin(conn.identity, room)) {
          // A `refresh` took the right away while the join was in flight.
          this.fanout.release(stream);
          this.upstream.request(conn.header, frames.leave(room)).catch(() => undefined);
          conn.sendLater(errorFrame(req.id, 'forbidden', `not allowed to join "${room}"`, room));
          return;
        }
        conn.rooms.add(room);
        conn.ws.cork(() => {
          if (req.id !== undefined) conn.send(answer.subarray(at.offset));
          stream.attach(conn, at.seq, at.epoch);
        });
      },
      (err) => {
        conn.joined(room);
        this.fanout.release(stream);
        conn.sendLater(errorFrame(req.id, 'unavailable', unavailableMessage(err)));
      },
    ).catch((err: unknown) => {
      this.boundary.failed('join', err, conn.id);
      conn.sendLater(errorFrame(req.id, 'internal', 'internal error'));
    });
  }

  private leave(conn: Conn, req: RequestOf<'leave'>, text: string): void {
    if (!this.dropRoom(conn, req.room)) {
      conn.send(errorFrame(req.id, 'not_member', `not a member of "${req.room}"`));
      return;
    }
    this.forward(conn, req.id, text, req.type);
  }

  /** Takes a room off a connection locally (the worker is told by the caller); false if it had not joined it. */
  private dropRoom(conn: Conn, room: string): boolean {
    const stream = this.fanout.streams.get(room);
    if (!conn.rooms.has(room) || !stream) return false;
    conn.rooms.delete(room);
    if (conn.isTyping) conn.typing.delete(room);
    conn.ws.unsubscribe(stream.topic);
    stream.detach(conn);
    this.fanout.release(stream);
    return true;
  }

  /**
   * Call inside a cork. The connection's credentials no longer allow `room` (a resumed session or a `refresh` to a
   * token without the claim): the session leaves it, presence included, and the client is told
   * with an unsolicited `error` naming the room. Nothing more from the room reaches it.
   */
  private revoke(conn: Conn, room: string): void {
    this.dropRoom(conn, room);
    this.upstream.request(conn.header, frames.leave(room)).catch((err: unknown) => {
      // The session keeps the room in the store until it ends; it delivers nothing meanwhile.
      this.d.log.warn({ conn: conn.id, room, err: unavailableMessage(err) }, 'revoked room not left in the store');
    });
    conn.send(errorFrame(undefined, 'forbidden', `no longer allowed in "${room}"`, room));
  }

  /** uWS `close`. */
  close(ws: UWS.WebSocket<UpgradeData>): void {
    const data = ws.getUserData();
    const conn = data.conn;
    if (!conn) {
      data.gone = true;
      return;
    }
    conn.closed = true;
    if (conn.expiryKey !== undefined) this.expiries.cancel(conn, conn.expiryKey);
    this.all.delete(conn);
    for (const room of conn.rooms) {
      const stream = this.fanout.streams.get(room);
      if (stream) {
        stream.detach(conn);
        this.fanout.release(stream);
      }
    }
    this.fanout.removeConn(conn);
    if (conn.sessionId) {
      // The session now waits out its grace period. If no worker hears of it, the session is
      // detached anyway when this gateway stops reporting it is alive.
      this.upstream.request(conn.header, frames.detach(conn.isTyping ? [...conn.typing] : [])).catch((err: unknown) => {
        this.d.log.warn({ conn: conn.id, err: unavailableMessage(err) }, 'detach not recorded');
      });
    }
  }

  /** Closes the connection with 4001 when its credentials expire, unless refreshed before. */
  private armExpiry(conn: Conn): void {
    if (conn.expiryKey !== undefined) this.expiries.cancel(conn, conn.expiryKey);
    const at = conn.identity.expiresAt;
    conn.expiryKey = at === undefined ? undefined : this.expiries.add(conn, at);
  }

  /** `refresh`: a new JWT for the same user extends the connection's life. */
  private refresh(conn: Conn, id: string | number | undefined, token: string): void {
    this.d.auth.verify(token).then(
      (identity) => {
        if (conn.closed) return;
        if (identity.user.id !== conn.user.id) {
          conn.sendLater(errorFrame(id, 'forbidden', 'the new token is for another user'));
          return;
        }
        conn.identity = { ...identity, user: conn.user };
        this.armExpiry(conn);
        const revoked = [...conn.rooms].filter((room) => !mayJoin(conn.identity, room));
        if (revoked.length > 0) conn.ws.cork(() => revoked.forEach((room) => this.revoke(conn, room)));
        if (id !== undefined) {
          const expiresAt = identity.expiresAt === undefined ? null : new Date(identity.expiresAt).toISOString();
          conn.sendLater(`{"type":"reply","id":${j(id)},"expiresAt":${j(expiresAt)}}`);
        }
      },
      (err: unknown) => conn.sendLater(errorFrame(id, 'unauthorized', err instanceof AuthError ? err.reason : 'invalid token')),
    ).catch((err: unknown) => {
      this.boundary.failed('refresh', err, conn.id);
      conn.sendLater(errorFrame(id, 'internal', 'internal error'));
    });
  }

  private stopTyping(conn: Conn, room: string): void {
    this.upstream.request(conn.header, frames.typingOff(room)).catch(() => {
      // The entry expires by itself within seconds.
    });
  }

  /**
   * Closes, with 1013, sockets more than `limit` bytes behind: at most SLOW_CHECKS_PER_SWEEP of
   * them per call, resuming where the last call stopped, so that a gateway holding many sockets
   * spends a bounded time per timer tick (the whole set is covered every size / SLOW_CHECKS_PER_SWEEP
   * ticks; uWS's own, higher limit holds a slow socket's buffer meanwhile).
   */
  closeSlow(limit: number): void {
    for (let checked = 0; checked < SLOW_CHECKS_PER_SWEEP; checked++) {
      this.slowSweep ??= this.all.values();
      const next = this.slowSweep.next();
      if (next.done) {
        this.slowSweep = undefined;
        return;
      }
      const conn = next.value;
      if (conn.closed || conn.ws.getBufferedAmount() <= limit) continue;
      this.stats.slowConsumers++;
      conn.ws.end(CLOSE_CODES.TRY_AGAIN_LATER.code, 'slow consumer: reconnect and resume');
    }
  }
}
