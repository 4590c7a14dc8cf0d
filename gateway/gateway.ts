/**
 * The gateway: owns the sockets, and nothing else. It authenticates upgrades, validates frames with
 * the compiled protocol schemas, forwards requests to the workers over the bus, and fans room events
 * out to local sockets with one uWS topic publish per event (serialized once, by the worker).
 *
 * It subscribes to a room's bus subject only while it has local members in that room, and to a
 * user's subject only while that user has a local connection.
 */
import type * as UWS from 'uWebSockets.js';
import { subjects, subjectToken, BusError, type Bus, type BusSubscription } from '../shared/bus.ts';
import type { Config } from '../shared/config.ts';
import { encodeRoomEvent, envelopeHeader, readUserEventHeader } from '../shared/envelope.ts';
import { randomId } from '../shared/ids.ts';
import type { Logger } from '../shared/log.ts';
import { RtError, errorFrame } from '../shared/errors.ts';
import { CLOSE_CODES } from '../shared/protocol/codes.ts';
import { ROOM_PATTERN, type MessageEvent, type RequestOf, type User } from '../shared/protocol/schemas.ts';
import { parseRequest, requestIdOf } from '../shared/protocol/validate.ts';
import { asyncApiDocument } from '../shared/protocol/asyncapi.ts';
import { loadNativeUws } from './uws.ts';
import { Histogram, type Registry } from 'prom-client';
import { LATENCY_BUCKETS, Tally, createRegistry, metricsText, scrapedCounter, scrapedGauge } from '../shared/metrics.ts';
import { AuthError, type AuthFailure, Authenticator, mayJoin, tokenFrom, type Identity } from './auth.ts';
import { isUserId } from '../shared/protocol/constants.ts';
import { bearer, hostAuthority } from './values.ts';
import { registerServerApi } from './api.ts';
import { Exchange, answerInternal, type RouteHandler, type Routes } from './http.ts';
import { registerStatic } from './static.ts';
import { SseConn, SseRoomMember, parseLastEventId } from './sse.ts';
import { AddressLimiter, ConnectionLimiter, TrustedProxies, uwsPayloadLimit } from './limits.ts';
import { RoomStream, defaultStreamOptions, type HistoryFrames, type StreamHost, type StreamMember } from './room-stream.ts';
import { Hedger } from './hedge.ts';
import { Canary } from './canary.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const j = JSON.stringify;
const SUBPROTOCOL = 'rt.v1';
const ROOM_NAME = new RegExp(ROOM_PATTERN);
/** Anonymous usernames: user ids (well-formed, no control characters) of at most 64 characters. */
const MAX_USERNAME = 64;

interface UpgradeData {
  identity?: Identity;
  /** Why the credentials were refused; the socket is closed with 4001 and this reason. */
  authError?: string;
  /** The kind of refusal, for rt_gateway_auth_failures_total. */
  authFailure?: AuthFailure;
  /** `?session=` of the upgrade: the session to resume. */
  session?: string;
  /** The connection, once open (uWS keeps this object per socket: no side table needed). */
  conn?: Conn;
}

/** What a ticket remembers between `POST /api/tickets` and the upgrade that uses it. */
interface TicketData {
  identity: Identity;
  address: string;
}

/** Longest a connection is left open past its token's expiry without a `refresh` (setTimeout's limit). */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** Frames a connection may send before its session is open; they are handled once it is. */
const MAX_EARLY_FRAMES = 32;
/** How often the gateway tells the workers it is alive (their sweeps declare it dead after 6 s). */
const ALIVE_INTERVAL_MS = 2_000;
/**
 * How often sockets' send buffers are checked. A timer, not the message path: the fan-out stays
 * one uWS publish, and a slow socket is found within this interval (uWS holds up to its own,
 * higher limit meanwhile).
 */
const BACKPRESSURE_CHECK_MS = 200;
/** How often each gateway publishes its `stats` to the dashboard room. */
const STATS_INTERVAL_MS = 1_000;
const MAX_LATENCY_SAMPLES = 2048;

/** Counts kept on the hot paths as plain numbers; Prometheus reads them when it scrapes. */
class GatewayStats {
  readonly received = new Tally();
  readonly connects = new Tally();
  readonly authFailures = new Tally();
  /** Unexpected exceptions caught at a callback's boundary, by where. */
  readonly errors = new Tally();
  sent = 0;
  bytesIn = 0;
  bytesOut = 0;
  drops = 0;
  slowConsumers = 0;

  /** Accounts one send to one socket (uWS answers 2 when the frame was dropped for backpressure). */
  sentOne(frame: Uint8Array | string, result: number): void {
    this.sent++;
    this.bytesOut += frame.length;
    if (result === 2) this.drops++;
  }
}

/** One client connection. Also the member a RoomStream attaches. */
class Conn implements StreamMember {
  closed = false;
  readonly rooms = new Set<string>();
  /** Rooms with a join in flight, so a second join or a leave does not race it (made on first join). */
  private joiningRooms: Set<string> | undefined;
  /** Rooms where this connection said `typing: true` last (made on first use: most never type). */
  private typingRooms: Set<string> | undefined;
  /** Frames received before the session opened (undefined once it is open). */
  early: string[] | undefined = [];
  sessionId = '';
  header: string;
  readonly user: User;
  /** Closes the connection with 4001 when its credentials expire without a refresh. */
  expiryTimer: NodeJS.Timeout | undefined;
  constructor(
    readonly ws: UWS.WebSocket<UpgradeData>,
    readonly id: string,
    public identity: Identity,
    readonly node: string,
    readonly limiter: ConnectionLimiter | undefined,
    private readonly stats: GatewayStats,
  ) {
    this.user = identity.user;
    this.header = envelopeHeader(id, node, this.user);
  }
  get joining(): Set<string> {
    return (this.joiningRooms ??= new Set());
  }
  get typing(): Set<string> {
    return (this.typingRooms ??= new Set());
  }
  get isTyping(): boolean {
    return this.typingRooms !== undefined && this.typingRooms.size > 0;
  }
  openSession(sessionId: string): void {
    this.sessionId = sessionId;
    this.header = envelopeHeader(this.id, this.node, this.user, sessionId);
  }
  subscribe(topic: string): void {
    if (!this.closed) this.ws.subscribe(topic);
  }
  send(frame: Uint8Array | string): void {
    if (this.closed) return;
    this.stats.sentOne(frame, this.ws.send(frame, false));
  }
  /** Sends from outside a uWS callback (after an await): corked into one write. */
  sendLater(frame: Uint8Array | string): void {
    if (this.closed) return;
    this.ws.cork(() => this.stats.sentOne(frame, this.ws.send(frame, false)));
  }
}

export interface GatewayOptions {
  bus: Bus;
  config: Config;
  log: Logger;
  nodeId: string;
  /** More metrics for this gateway's /metrics (the embedded mode's worker). */
  extraRegistries?: Registry[];
}

export class Gateway {
  readonly nodeId: string;
  private readonly uws = loadNativeUws();
  private readonly app: UWS.TemplatedApp;
  private listenSocket: UWS.us_listen_socket | undefined;
  private readonly conns = new Set<Conn>();
  private readonly connsById = new Map<string, Conn>();
  private readonly replies = new Map<Conn, (Uint8Array | string)[]>();
  private repliesScheduled = false;
  /** Open SSE streams and, for each, the room streams it holds. */
  private readonly sseConns = new Map<SseConn, { member: SseRoomMember; stream: RoomStream }[]>();
  /** SSE members by uWS topic (`r:<room>`, `u:<user>`), which uWS publish does not reach. */
  private readonly sseByTopic = new Map<string, Set<SseRoomMember | SseConn>>();
  private sseHeartbeat: NodeJS.Timeout | undefined;
  private readonly streams = new Map<string, RoomStream>();
  private readonly streamSubs = new Map<RoomStream, BusSubscription>();
  /** Local connections per user (for MAX_CONNECTIONS_PER_USER). */
  private readonly users = new Map<string, number>();
  private readonly userEvents: BusSubscription;
  private draining = false;
  private closing: Promise<void> | undefined;
  private readonly aliveTimer: NodeJS.Timeout;
  private readonly backpressureTimer: NodeJS.Timeout;
  private readonly statsTimer: NodeJS.Timeout | undefined;
  /** Recent request latencies (ms), for the dashboard's percentiles. */
  private readonly latencies: number[] = [];
  private lastStats = { at: Date.now(), received: 0, sent: 0 };
  private readonly bus: Bus;
  private readonly cfg: Config;
  private readonly log: Logger;
  private readonly systemHeader: string;
  private readonly streamHost: StreamHost;
  private readonly auth: Authenticator;
  private readonly proxies: TrustedProxies;
  private readonly addressLimiter: AddressLimiter | undefined;
  private readonly allowedOrigins: Set<string> | undefined;
  private readonly stats = new GatewayStats();
  readonly registry: Registry;
  private readonly requestDuration: Histogram<'type'>;
  private readonly extraRegistries: Registry[];
  /** Requests safe to repeat go through it: re-sent to another worker when the first is slow or lost. */
  private readonly hedger: Hedger;
  private readonly canary: Canary;
  /** A second resync some time after a reconnect (see onBusReconnect); undefined when none is due. */
  private resyncTimer: NodeJS.Timeout | undefined;

  constructor(opts: GatewayOptions) {
    this.bus = opts.bus;
    this.cfg = opts.config;
    this.log = opts.log;
    this.nodeId = opts.nodeId;
    this.extraRegistries = opts.extraRegistries ?? [];
    this.auth = Authenticator.fromConfig(this.cfg);
    this.proxies = new TrustedProxies(this.cfg.trustedProxies);
    this.addressLimiter = this.cfg.connectRatePerIp > 0 ? new AddressLimiter(this.cfg.connectRatePerIp) : undefined;
    this.allowedOrigins = this.cfg.allowedOrigins?.length ? new Set(this.cfg.allowedOrigins.map((o) => o.toLowerCase())) : undefined;
    this.systemHeader = envelopeHeader(`$gw:${this.nodeId}`, this.nodeId, { id: '$gateway', name: this.nodeId });
    this.streamHost = {
      publish: (topic, frame, seq) => this.publish(topic, frame, seq),
      fetchAfter: (room, after, limit) => this.fetchAfter(room, after, limit),
    };
    this.app = this.uws.App();
    this.hedger = new Hedger(this.bus, subjects.requests, this.cfg.hedgeMs, this.cfg.requestTimeoutMs);
    this.canary = new Canary(this.bus, this.nodeId, this.cfg.canaryMs, this.cfg.canaryStaleMs, this.log);
    this.bus.onReconnect(this.guarded('reconnect', () => this.onBusReconnect()));
    this.userEvents = this.bus.subscribe(subjects.allUsers, this.guarded('user_event', (data: Uint8Array, subject: string) => this.onUserEvent(data, subject)));
    this.registry = createRegistry({ node: this.nodeId });
    this.requestDuration = new Histogram({
      name: 'rt_gateway_request_duration_seconds',
      help: 'Requests forwarded to a worker, from the frame to the answer (gateway → worker → gateway).',
      labelNames: ['type'],
      buckets: LATENCY_BUCKETS,
      registers: [this.registry],
    });
    this.defineMetrics();
    this.routes();
    this.canary.start();
    let busWasUp = true;
    const alive = () => {
      // Back from a bus outage: what rooms published meanwhile never arrived; fetch it.
      if (this.bus.connected && !busWasUp) {
        this.log.info({ rooms: this.streams.size }, 'bus reconnected; resyncing rooms from history');
        for (const stream of this.streams.values()) stream.resync();
      }
      busWasUp = this.bus.connected;
      this.request(this.systemHeader + '{"type":"$alive"}}').catch((err: unknown) => {
        this.log.warn({ err: unavailableMessage(err) }, 'could not report liveness');
      });
    };
    alive();
    this.aliveTimer = setInterval(this.guarded('alive', alive), ALIVE_INTERVAL_MS);
    this.aliveTimer.unref();
    this.backpressureTimer = setInterval(this.guarded('backpressure', () => this.watchBackpressure()), BACKPRESSURE_CHECK_MS);
    this.backpressureTimer.unref();
    if (this.cfg.dashboardRoom !== 'off') {
      this.statsTimer = setInterval(this.guarded('stats', () => this.publishStats(this.cfg.dashboardRoom)), STATS_INTERVAL_MS);
      this.statsTimer.unref();
    }
  }

  private defineMetrics(): void {
    const r = this.registry;
    const st = this.stats;
    scrapedGauge(r, 'rt_gateway_connections', 'Open WebSocket connections.', () => this.conns.size);
    scrapedGauge(r, 'rt_gateway_sse_connections', 'Open /sse streams.', () => this.sseConns.size);
    scrapedGauge(r, 'rt_gateway_rooms', 'Rooms with local members (bus subscriptions).', () => this.streams.size);
    scrapedGauge(r, 'rt_gateway_users', 'Users with local connections.', () => this.users.size);
    scrapedGauge(r, 'rt_gateway_bus_connected', '1 while the message bus is connected.', () => (this.bus.connected ? 1 : 0));
    scrapedGauge(r, 'rt_gateway_draining', '1 while the gateway drains.', () => (this.draining ? 1 : 0));
    scrapedCounter(r, 'rt_gateway_connects_total', 'Upgrade attempts by result.', () => st.connects, 'result');
    scrapedCounter(r, 'rt_gateway_auth_failures_total', 'Connections refused for their credentials, by reason.', () => st.authFailures, 'reason');
    scrapedCounter(r, 'rt_gateway_messages_received_total', 'Frames received from clients, by type.', () => st.received, 'type');
    scrapedCounter(r, 'rt_gateway_messages_sent_total', 'Frames sent to clients (a room message counts once per recipient).', () => st.sent);
    scrapedCounter(r, 'rt_gateway_bytes_received_total', 'Bytes of frames received from clients.', () => st.bytesIn);
    scrapedCounter(r, 'rt_gateway_bytes_sent_total', 'Bytes of frames sent to clients.', () => st.bytesOut);
    scrapedCounter(r, 'rt_gateway_slow_consumers_total', 'Connections closed with 1013 for falling more than MAX_BACKPRESSURE_BYTES behind.', () => st.slowConsumers);
    scrapedCounter(r, 'rt_gateway_errors_total', 'Unexpected exceptions caught at a callback boundary (answered 500 / internal / 1011), by where.', () => st.errors, 'where');
    scrapedCounter(r, 'rt_gateway_backpressure_drops_total', 'Frames uWS dropped because a client was over its backpressure limit.', () => st.drops);
    scrapedCounter(r, 'rt_gateway_request_hedges_total', 'Requests sent a second time to another worker, by reason (delay: no answer within HEDGE_MS; no_responders).', () => this.hedger.hedges, 'reason');
    scrapedGauge(r, 'rt_gateway_canary_age_seconds', 'Seconds since the delivery canary last made a round trip through the bus and this gateway\'s room subscriptions.', () => this.canary.ageSeconds);
  }

  /**
   * Back on the bus, possibly on another server of the NATS cluster: the room subscriptions are
   * active again, but what rooms published meanwhile never arrived, and without a later message
   * nothing would reveal the gap. Catch up from history now, and once more a second later: the
   * cluster learns of our re-sent subscriptions over its routes, and a message published through
   * another server during that moment would otherwise stay missing until the room's next one.
   */
  private onBusReconnect(): void {
    this.log.info({ rooms: this.streams.size }, 'bus reconnected; resyncing rooms from history');
    for (const stream of this.streams.values()) stream.resync();
    clearTimeout(this.resyncTimer);
    this.resyncTimer = setTimeout(
      this.guarded('resync', () => {
        this.resyncTimer = undefined;
        for (const stream of this.streams.values()) stream.resync();
      }),
      1000,
    );
    this.resyncTimer.unref();
  }

  /**
   * This gateway's numbers for the dashboard, to the dashboard room's bus subject (every gateway
   * with a dashboard viewer subscribes to it like any room). One small message a second.
   */
  private publishStats(room: string): void {
    if (!this.bus.connected) return;
    const now = Date.now();
    let received = 0;
    for (const v of this.stats.received.counts.values()) received += v;
    const secs = Math.max(0.001, (now - this.lastStats.at) / 1000);
    const lat = this.latencies.splice(0).sort((a, b) => a - b);
    const pct = (p: number) => (lat.length ? Math.round(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]! * 100) / 100 : 0);
    const frame = j({
      type: 'stats',
      room,
      node: this.nodeId,
      ts: new Date(now).toISOString(),
      connections: this.conns.size,
      sse: this.sseConns.size,
      rooms: this.streams.size,
      messagesInPerSec: Math.round((received - this.lastStats.received) / secs),
      messagesOutPerSec: Math.round((this.stats.sent - this.lastStats.sent) / secs),
      latencyMs: { p50: pct(0.5), p99: pct(0.99), max: pct(1), count: lat.length },
      busConnected: this.bus.connected,
    });
    this.lastStats = { at: now, received, sent: this.stats.sent };
    try {
      this.bus.publish(subjects.room(room), encodeRoomEvent(0, '-', frame));
    } catch {
      // The bus went down between the check and the publish: skip this second.
    }
  }

  /** Closes, with 1013, every socket more than MAX_BACKPRESSURE_BYTES behind. */
  private watchBackpressure(): void {
    const limit = this.cfg.maxBackpressureBytes;
    for (const conn of this.conns) {
      if (conn.closed || conn.ws.getBufferedAmount() <= limit) continue;
      this.stats.slowConsumers++;
      conn.ws.end(CLOSE_CODES.TRY_AGAIN_LATER.code, 'slow consumer: reconnect and resume');
    }
  }

  /** One frame to every local subscriber of a topic: one uWS publish, counted per recipient. */
  private publish(topic: string, frame: Uint8Array, seq?: number): void {
    const n = this.app.numSubscribers(topic);
    if (n > 0) {
      this.app.publish(topic, frame, false);
      this.stats.sent += n;
      this.stats.bytesOut += n * frame.length;
    }
    if (this.sseByTopic.size > 0) this.publishSse(topic, frame, seq);
  }

  private publishSse(topic: string, frame: Uint8Array, seq?: number): void {
    const members = this.sseByTopic.get(topic);
    if (!members) return;
    for (const m of members) {
      if (m instanceof SseRoomMember) m.send(frame, seq);
      else m.event(frame);
    }
    this.stats.sent += members.size;
    this.stats.bytesOut += members.size * frame.length;
  }

  private sseSubscribe(topic: string, member: SseRoomMember | SseConn): void {
    let set = this.sseByTopic.get(topic);
    if (!set) this.sseByTopic.set(topic, (set = new Set()));
    set.add(member);
  }

  private sseUnsubscribe(topic: string, member: SseRoomMember | SseConn): void {
    const set = this.sseByTopic.get(topic);
    if (!set) return;
    set.delete(member);
    if (set.size === 0) this.sseByTopic.delete(topic);
  }

  get ready(): boolean {
    return !this.draining && this.bus.connected && this.canary.stale === undefined;
  }

  get connectionCount(): number {
    return this.conns.size;
  }

  /** Listens on `port` (0: a free one) and resolves with the port. */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolve, reject) => {
      this.app.listen(host, port, (token) => {
        if (!token) return reject(new Error(`cannot listen on ${host}:${port} (in use?)`));
        this.listenSocket = token;
        resolve(this.uws.us_socket_local_port(token));
      });
    });
  }

  /**
   * Drains and stops: `/readyz` answers 503 and upgrades 503 from now on; every socket is closed
   * with 1001 (going away: reconnect elsewhere and resume), spread evenly over `windowMs` so that
   * its clients do not all reconnect at the same instant; then the listener closes and the bus
   * subscriptions are dropped. The bus itself belongs to the caller.
   */
  async close(windowMs = this.cfg.drainMs): Promise<void> {
    if (this.closing) return this.closing;
    this.draining = true;
    this.closing = (async () => {
      clearInterval(this.aliveTimer);
      clearInterval(this.backpressureTimer);
      clearInterval(this.statsTimer);
      clearTimeout(this.resyncTimer);
      this.canary.close();
      this.hedger.close();
      this.addressLimiter?.close();
      const conns = [...this.conns];
      const started = Date.now();
      let next = 0;
      const closeDue = () => {
        const due = windowMs <= 0 ? conns.length : Math.ceil((conns.length * (Date.now() - started)) / windowMs);
        for (; next < Math.min(due, conns.length); next++) {
          const conn = conns[next]!;
          if (!conn.closed) conn.ws.end(CLOSE_CODES.GOING_AWAY.code, 'server shutting down');
        }
      };
      closeDue();
      while (next < conns.length) {
        await new Promise((r) => setTimeout(r, Math.min(50, windowMs)));
        closeDue();
      }
      for (const sse of [...this.sseConns.keys()]) sse.cut();
      clearInterval(this.sseHeartbeat);
      if (this.listenSocket) this.uws.us_listen_socket_close(this.listenSocket);
      this.listenSocket = undefined;
      for (const [stream, sub] of this.streamSubs) {
        stream.close();
        sub.unsubscribe();
      }
      this.streamSubs.clear();
      this.streams.clear();
      this.userEvents.unsubscribe();
      this.users.clear();
    })();
    return this.closing;
  }

  /**
   * Logs and counts an exception that escaped a handler. Every uWS callback, HTTP route, timer and
   * bus subscription of the gateway is wrapped so that one bad request ends that request or
   * connection (HTTP 500, an `internal` frame, close 1011), never the process.
   */
  private failed(where: string, err: unknown, conn?: string): void {
    this.stats.errors.add(where);
    this.log.error({ err, where, conn }, 'unexpected error; answered and kept running');
  }

  /** Closes a connection whose handler failed with 1011 (internal error; the client reconnects). */
  private endInternal(ws: UWS.WebSocket<UpgradeData>): void {
    try {
      ws.end(CLOSE_CODES.INTERNAL.code, 'internal error');
    } catch {
      // Already closed.
    }
  }

  /** An HTTP handler that answers 500 (if it still can) instead of throwing into uWS. */
  private http(where: string, handler: RouteHandler): RouteHandler {
    return (res, req) => {
      try {
        handler(res, req);
      } catch (err) {
        this.failed(where, err);
        answerInternal(res);
      }
    };
  }

  /** A function run from a timer, the bus or a promise: exceptions are counted under `where`. */
  private guarded<A extends unknown[]>(where: string, fn: (...args: A) => void): (...args: A) => void {
    return (...args) => {
      try {
        fn(...args);
      } catch (err) {
        this.failed(where, err);
      }
    };
  }

  private routes(): void {
    const { cfg } = this;
    // Every route goes through `http()`: an exception answers 500 instead of ending the process.
    const app: Routes = {
      get: (pattern, handler) => this.app.get(pattern, this.http(`GET ${pattern}`, handler)),
      post: (pattern, handler) => this.app.post(pattern, this.http(`POST ${pattern}`, handler)),
      any: (pattern, handler) => this.app.any(pattern, this.http(pattern, handler)),
    };
    app.get('/healthz', (res) => {
      res.cork(() => res.writeHeader('content-type', 'application/json').end('{"status":"ok"}'));
    });
    app.get('/readyz', (res) => {
      const ok = this.ready;
      const canary = this.canary.stale;
      const body = j({ status: ok ? 'ready' : 'not ready', bus: this.bus.connected, draining: this.draining, ...(canary ? { canary } : {}) });
      res.cork(() => res.writeStatus(ok ? '200 OK' : '503 Service Unavailable').writeHeader('content-type', 'application/json').end(body));
    });
    this.app.ws<UpgradeData>('/ws', {
      // uWS refuses a frame over its own limit as soon as it reads the announced length, and closes
      // the TCP connection without a close frame (the client sees 1006); no callback runs first, so
      // nothing can send 1009 then. Under that limit it buffers the whole frame before `message`
      // sees it. So its limit sits MAX_FRAME_BYTES + 1 MiB above ours: every frame up to there
      // gets the documented 1009, and a client can make the gateway hold at most that much.
      maxPayloadLength: cfg.maxFrameBytes ? uwsPayloadLimit(cfg.maxFrameBytes) : 16 * 1024 * 1024,
      idleTimeout: Math.min(960, Math.max(8, Math.ceil((cfg.heartbeatMs * 2) / 1000))),
      sendPingsAutomatically: true,
      // uWS would close a slow socket without a close frame (1006) or skip it silently, and a
      // close frame queued over its limit is lost too. So its limit sits well above ours, and
      // watchBackpressure() closes slow sockets with 1013 while the close frame still fits.
      maxBackpressure: cfg.maxBackpressureBytes + Math.max(cfg.maxBackpressureBytes, 4 * 1024 * 1024),
      closeOnBackpressureLimit: 0,
      upgrade: (res, req, context) => {
        try {
          this.upgrade(res, req, context);
        } catch (err) {
          this.failed('upgrade', err);
          answerInternal(res);
        }
      },
      open: (ws) => {
        try {
          this.open(ws);
        } catch (err) {
          this.failed('open', err, ws.getUserData().conn?.id);
          this.endInternal(ws);
        }
      },
      message: (ws, message, isBinary) => {
        try {
          this.message(ws, message, isBinary);
        } catch (err) {
          this.failed('message', err, ws.getUserData().conn?.id);
          try {
            ws.send(errorFrame(requestIdOf(decoder.decode(message)), 'internal', 'internal error'), false);
          } catch {
            // The socket is gone already.
          }
        }
      },
      drain: () => {},
      close: (ws) => {
        try {
          this.onClose(ws);
        } catch (err) {
          this.failed('close', err, ws.getUserData().conn?.id);
        }
      },
    });
    app.post('/api/tickets', (res, req) => this.createTicket(res, req));
    app.get('/sse', (res, req) => this.openSse(res, req));
    app.get('/metrics', (res) => {
      const ex = new Exchange(res);
      metricsText([this.registry, ...this.extraRegistries]).then(
        (text) => {
          if (ex.aborted) return;
          ex.aborted = true;
          res.cork(() => res.writeHeader('content-type', this.registry.contentType).end(text));
        },
        (err: unknown) => ex.fail(err),
      ).catch((err: unknown) => this.failed('GET /metrics', err));
    });
    registerServerApi(app, {
      cfg,
      ask: (user, frame, timeoutMs = cfg.requestTimeoutMs) =>
        this.bus.request(subjects.requests, encoder.encode(envelopeHeader(`$api:${this.nodeId}`, this.nodeId, user) + j(frame) + '}'), timeoutMs).catch((err: unknown) => {
          throw new RtError('unavailable', unavailableMessage(err));
        }),
      failed: (where, err) => this.failed(where, err),
    });
    app.get('/asyncapi.json', (res, req) => {
      const host = req.getHeader('host');
      const body = this.asyncApiText(host);
      res.cork(() => res.writeHeader('content-type', 'application/json').writeHeader('access-control-allow-origin', '*').end(body));
    });
    registerStatic(app);
    app.any('/*', (res) => {
      res.cork(() =>
        res.writeStatus('404 Not Found').writeHeader('content-type', 'application/json').end('{"error":{"code":"not_found","message":"no such route"}}'),
      );
    });
  }

  private upgrade(res: UWS.HttpResponse, req: UWS.HttpRequest, context: UWS.us_socket_context_t): void {
    // Everything needed from the request is copied now: `req` is invalid after this callback.
    const key = req.getHeader('sec-websocket-key');
    const protocols = req.getHeader('sec-websocket-protocol');
    const extensions = req.getHeader('sec-websocket-extensions');
    const origin = req.getHeader('origin');
    const authorization = req.getHeader('authorization');
    const cookie = req.getHeader('cookie');
    const query = new URLSearchParams(req.getQuery() ?? '');
    const address = this.proxies.clientAddress(
      decoder.decode(res.getRemoteAddressAsText()),
      req.getHeader('x-forwarded-for'),
      req.getHeader('x-real-ip'),
    );
    const refuse = (status: string, code: string, message: string): void => {
      this.stats.connects.add(code === 'unavailable' ? (this.draining ? 'draining' : 'capacity') : code);
      res.cork(() => res.writeStatus(status).writeHeader('content-type', 'application/json').end(j({ error: { code, message } })));
    };

    if (this.draining) return refuse('503 Service Unavailable', 'unavailable', 'gateway is shutting down');
    if (this.cfg.maxConnections > 0 && this.conns.size >= this.cfg.maxConnections) {
      return refuse('503 Service Unavailable', 'unavailable', 'gateway at capacity; retry with backoff');
    }
    if (origin && this.allowedOrigins && !this.allowedOrigins.has(origin.toLowerCase())) {
      return refuse('403 Forbidden', 'forbidden', 'origin not allowed');
    }
    if (this.addressLimiter && !this.addressLimiter.allow(address)) {
      return refuse('429 Too Many Requests', 'rate_limited', 'too many connection attempts from this address');
    }
    let selected = '';
    if (protocols) {
      const offered = protocols.split(',').map((p) => p.trim());
      if (!offered.includes(SUBPROTOCOL)) return refuse('400 Bad Request', 'bad_request', `unsupported subprotocol; this server speaks ${SUBPROTOCOL}`);
      selected = SUBPROTOCOL;
    }
    const data: UpgradeData = {};
    const session = query.get('session');
    if (session && session.length <= 64) data.session = session;

    // Credentials problems are reported after the upgrade, as close 4001 with a reason, so a
    // browser (which sees no HTTP status of a failed upgrade) can tell them from network failures.
    const who = this.credentials(query, authorization, cookie, address);
    if (!(who instanceof Promise)) {
      if (who instanceof AuthError) {
        data.authError = who.reason;
        data.authFailure = who.kind;
      } else data.identity = who;
      res.upgrade(data, key, selected, extensions, context);
      return;
    }
    let aborted = false;
    res.onAborted(() => {
      aborted = true;
    });
    who.then(
      (identity) => {
        data.identity = identity;
      },
      (err: unknown) => {
        const refused = asAuthError(err);
        data.authError = refused.reason;
        data.authFailure = refused.kind;
      },
    ).finally(() => {
      if (aborted) return;
      res.cork(() => res.upgrade(data, key, selected, extensions, context));
    }).catch((err: unknown) => {
      this.failed('upgrade', err);
      if (!aborted) answerInternal(res);
    });
  }

  /**
   * Who is asking, for an upgrade or an SSE request: a ticket, else a JWT (query, header,
   * cookie), else an anonymous username when allowed. Synchronous where no check is needed, so an
   * anonymous connection costs no promise; an AuthError (returned or rejected) says why not.
   */
  private credentials(query: URLSearchParams, authorization: string, cookie: string, address: string): Identity | AuthError | Promise<Identity> {
    const ticket = query.get('ticket');
    if (ticket) return this.redeemTicket(ticket, address);
    const token = tokenFrom(query, authorization, cookie, this.cfg.jwtCookie);
    if (token instanceof AuthError) return token;
    if (token) return this.auth.verify(token);
    const username = query.get('username');
    if (username === null) return new AuthError('missing', 'missing credentials');
    if (!this.cfg.allowAnonymous) return new AuthError('anonymous_disabled', 'anonymous access is disabled');
    const name = username.trim();
    return name.length <= MAX_USERNAME && isUserId(name) ? { user: { id: name, name }, rooms: [] } : new AuthError('invalid_username', 'invalid username');
  }

  private readonly asyncApiCache = new Map<string, string>();

  /** The AsyncAPI document, with this server's address as its server (cached per Host header). */
  private asyncApiText(host: string): string {
    // Only a well-formed authority becomes the document's server URL; anything else gets none.
    const key = hostAuthority(host) ?? '';
    let text = this.asyncApiCache.get(key);
    if (!text) {
      text = j(asyncApiDocument(key ? { serverUrl: `ws://${key}` } : {}));
      if (this.asyncApiCache.size < 16) this.asyncApiCache.set(key, text);
    }
    return text;
  }

  /** Takes a ticket (once, atomically, in the store) and checks it is used from its address. */
  private async redeemTicket(ticket: string, address: string): Promise<Identity> {
    if (ticket.length > 128) throw new AuthError('ticket', 'invalid ticket');
    let answer: Uint8Array;
    try {
      answer = await this.request(this.systemHeader + j({ type: '$ticket.take', ticket }) + '}');
    } catch {
      throw new AuthError('unavailable', 'credentials could not be checked; retry');
    }
    const taken = JSON.parse(decoder.decode(answer)) as { data?: string };
    if (!taken.data) throw new AuthError('ticket', 'ticket unknown, used or expired');
    const { identity, address: boundTo } = JSON.parse(taken.data) as TicketData;
    if (boundTo !== address) throw new AuthError('ticket', 'ticket was issued to another address');
    if (identity.expiresAt !== undefined && identity.expiresAt <= Date.now()) throw new AuthError('expired', 'token expired');
    return identity;
  }

  /** `POST /api/tickets` with `Authorization: Bearer <JWT>`: a one-time ticket for a browser upgrade. */
  private createTicket(res: UWS.HttpResponse, req: UWS.HttpRequest): void {
    const ex = new Exchange(res);
    const token = bearer(req.getHeader('authorization'));
    const address = this.proxies.clientAddress(decoder.decode(res.getRemoteAddressAsText()), req.getHeader('x-forwarded-for'), req.getHeader('x-real-ip'));
    if (!token) return ex.error('unauthorized', 'Authorization: Bearer <JWT> is required');
    void (async () => {
      let identity: Identity;
      try {
        identity = await this.auth.verify(token);
      } catch (err) {
        return ex.error('unauthorized', asAuthError(err).reason);
      }
      const ticket = randomId(24);
      const data = j({ identity, address } satisfies TicketData);
      try {
        await this.request(this.systemHeader + j({ type: '$ticket.put', ticket, data, ttlMs: this.cfg.ticketTtlMs }) + '}');
      } catch (err) {
        return ex.error('unavailable', unavailableMessage(err));
      }
      ex.json(201, { ticket, expiresIn: Math.floor(this.cfg.ticketTtlMs / 1000) });
    })().catch((err: unknown) => {
      this.failed('POST /api/tickets', err);
      ex.fail(err);
    });
  }

  private open(ws: UWS.WebSocket<UpgradeData>): void {
    const data = ws.getUserData();
    if (!data.identity) {
      this.stats.connects.add('unauthorized');
      this.stats.authFailures.add(data.authFailure ?? 'missing');
      ws.end(CLOSE_CODES.UNAUTHORIZED.code, `unauthorized: ${data.authError ?? 'missing credentials'}`);
      return;
    }
    const perUser = this.cfg.maxConnectionsPerUser;
    if (perUser > 0 && (this.users.get(data.identity.user.id) ?? 0) >= perUser) {
      this.stats.connects.add('user_limit');
      ws.end(CLOSE_CODES.POLICY_VIOLATION.code, `too many connections for this user (${perUser})`);
      return;
    }
    const limiter = this.cfg.rateLimitRps > 0 ? new ConnectionLimiter(this.cfg.rateLimitRps, Math.max(1, this.cfg.rateLimitBurst)) : undefined;
    this.stats.connects.add('accepted');
    const conn = new Conn(ws, randomId(12), data.identity, this.nodeId, limiter, this.stats);
    data.conn = conn;
    this.conns.add(conn);
    this.connsById.set(conn.id, conn);
    this.watchUser(conn);
    this.armExpiry(conn);
    this.request(conn.header + j({ type: '$open', session: data.session }) + '}').then(
      (answer) => {
        if (conn.closed) return;
        const opened = JSON.parse(decoder.decode(answer)) as {
          type?: string;
          sessionId: string;
          resumed: boolean;
          rooms: { room: string; seq: number; epoch: string }[];
          unread: number;
        };
        if (opened.type === 'error') {
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
              node: this.nodeId,
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
            const stream = this.acquireStream(room);
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
      this.failed('open', err, conn.id);
      if (!conn.closed) this.endInternal(conn.ws);
    });
  }

  private message(ws: UWS.WebSocket<UpgradeData>, message: ArrayBuffer, isBinary: boolean): void {
    const conn = ws.getUserData().conn;
    if (!conn) return;
    if (isBinary) {
      ws.end(CLOSE_CODES.UNSUPPORTED_DATA.code, 'binary frames are not supported');
      return;
    }
    if (this.cfg.maxFrameBytes && message.byteLength > this.cfg.maxFrameBytes) {
      ws.end(CLOSE_CODES.TOO_LARGE.code, `frame larger than ${this.cfg.maxFrameBytes} bytes`);
      return;
    }
    this.stats.bytesIn += message.byteLength;
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

  private handleText(conn: Conn, text: string): void {
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

  /** Sends the frame to a worker and the worker's answer, if any, to the client. */
  private forward(conn: Conn, id: string | number | undefined, text: string, type = 'other', hedged = false): void {
    const timer = this.requestDuration.startTimer({ type });
    const started = performance.now();
    const envelope = conn.header + text + '}';
    (hedged ? this.hedgedRequest(envelope) : this.request(envelope)).then(
      (answer) => {
        timer();
        if (this.latencies.length < MAX_LATENCY_SAMPLES) this.latencies.push(performance.now() - started);
        if (answer.length > 0) this.reply(conn, answer);
      },
      (err) => {
        timer();
        this.reply(conn, errorFrame(id, 'unavailable', unavailableMessage(err)));
      },
    ).catch((err: unknown) => this.failed('reply', err, conn.id));
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
        this.failed('reply', err, conn.id);
      }
    }
    this.replies.clear();
  };

  private request(envelope: string): Promise<Uint8Array> {
    return this.bus.request(subjects.requests, encoder.encode(envelope), this.cfg.requestTimeoutMs);
  }

  /** A request that is safe to send twice (see hedge.ts for why each kind is). */
  private hedgedRequest(envelope: string): Promise<Uint8Array> {
    return this.hedger.request(encoder.encode(envelope));
  }

  private join(conn: Conn, req: RequestOf<'join'>, text: string): void {
    const { room } = req;
    if (!mayJoin(conn.identity, room)) {
      conn.send(errorFrame(req.id, 'forbidden', `not allowed to join "${room}"`));
      return;
    }
    const maxRooms = this.cfg.maxRoomsPerConnection;
    if (maxRooms > 0 && !conn.rooms.has(room) && conn.rooms.size + conn.joining.size >= maxRooms) {
      conn.send(errorFrame(req.id, 'forbidden', `a connection may be in at most ${maxRooms} rooms`));
      return;
    }
    if (conn.joining.has(room)) {
      conn.send(errorFrame(req.id, 'bad_request', `a join of "${room}" is already in progress`));
      return;
    }
    // Subscribe before asking the worker: the bus then has our subscription before the worker
    // reads the room's position, so nothing published after that position can pass us by.
    let stream: RoomStream;
    try {
      stream = this.acquireStream(room);
    } catch (err) {
      conn.send(errorFrame(req.id, 'unavailable', unavailableMessage(err)));
      return;
    }
    const rejoin = conn.rooms.has(room);
    if (rejoin) {
      conn.ws.unsubscribe(stream.topic);
      stream.detach(conn);
      conn.rooms.delete(room);
      this.releaseStream(stream);
    }
    conn.joining.add(room);
    this.hedgedRequest(conn.header + text + '}').then(
      (answer) => {
        conn.joining.delete(room);
        const reply = answer.length ? (JSON.parse(decoder.decode(answer)) as { type: string; seq?: number; epoch?: string }) : undefined;
        if (conn.closed || reply?.type !== 'reply') {
          this.releaseStream(stream);
          if (answer.length) conn.sendLater(answer);
          return;
        }
        if (!mayJoin(conn.identity, room)) {
          // A `refresh` took the right away while the join was in flight.
          this.releaseStream(stream);
          this.request(conn.header + j({ type: 'leave', room }) + '}').catch(() => undefined);
          conn.sendLater(errorFrame(req.id, 'forbidden', `not allowed to join "${room}"`, room));
          return;
        }
        conn.rooms.add(room);
        conn.ws.cork(() => {
          if (req.id !== undefined) conn.send(answer);
          stream.attach(conn, reply.seq ?? 0, reply.epoch ?? '');
        });
      },
      (err) => {
        conn.joining.delete(room);
        this.releaseStream(stream);
        conn.sendLater(errorFrame(req.id, 'unavailable', unavailableMessage(err)));
      },
    ).catch((err: unknown) => {
      this.failed('join', err, conn.id);
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
    const stream = this.streams.get(room);
    if (!conn.rooms.has(room) || !stream) return false;
    conn.rooms.delete(room);
    if (conn.isTyping) conn.typing.delete(room);
    conn.ws.unsubscribe(stream.topic);
    stream.detach(conn);
    this.releaseStream(stream);
    return true;
  }

  /**
   * Call inside a cork. The connection's credentials no longer allow `room` (a resumed session or a `refresh` to a
   * token without the claim): the session leaves it, presence included, and the client is told
   * with an unsolicited `error` naming the room. Nothing more from the room reaches it.
   */
  private revoke(conn: Conn, room: string): void {
    this.dropRoom(conn, room);
    this.request(conn.header + j({ type: 'leave', room }) + '}').catch((err: unknown) => {
      // The session keeps the room in the store until it ends; it delivers nothing meanwhile.
      this.log.warn({ conn: conn.id, room, err: unavailableMessage(err) }, 'revoked room not left in the store');
    });
    conn.send(errorFrame(undefined, 'forbidden', `no longer allowed in "${room}"`, room));
  }

  private onClose(ws: UWS.WebSocket<UpgradeData>): void {
    const conn = ws.getUserData().conn;
    if (!conn) return;
    conn.closed = true;
    clearTimeout(conn.expiryTimer);
    this.conns.delete(conn);
    this.connsById.delete(conn.id);
    const rooms = [...conn.rooms];
    for (const room of rooms) {
      const stream = this.streams.get(room);
      if (stream) {
        stream.detach(conn);
        this.releaseStream(stream);
      }
    }
    this.unwatchUser(conn);
    if (conn.sessionId) {
      // The session now waits out its grace period. If no worker hears of it, the session is
      // detached anyway when this gateway stops reporting it is alive.
      this.request(conn.header + j({ type: '$detach', typing: conn.isTyping ? [...conn.typing] : [] }) + '}').catch((err: unknown) => {
        this.log.warn({ conn: conn.id, err: unavailableMessage(err) }, 'detach not recorded');
      });
    }
  }

  /**
   * `GET /sse?rooms=a,b`: authenticates as `/ws` does, replays what a `Last-Event-ID` says was
   * missed (up to REPLAY_MAX per room), then follows the rooms and the user's own events.
   */
  private openSse(res: UWS.HttpResponse, req: UWS.HttpRequest): void {
    const query = new URLSearchParams(req.getQuery() ?? '');
    const authorization = req.getHeader('authorization');
    const cookie = req.getHeader('cookie');
    const origin = req.getHeader('origin');
    const lastEventId = req.getHeader('last-event-id') || query.get('lastEventId');
    const address = this.proxies.clientAddress(decoder.decode(res.getRemoteAddressAsText()), req.getHeader('x-forwarded-for'), req.getHeader('x-real-ip'));
    const ex = new Exchange(res);
    let conn: SseConn | undefined;
    res.onAborted(() => {
      ex.aborted = true;
      if (conn) this.closeSse(conn);
    });
    if (this.draining) return ex.error('unavailable', 'gateway is shutting down');
    if (this.cfg.maxConnections > 0 && this.conns.size + this.sseConns.size >= this.cfg.maxConnections) return ex.error('unavailable', 'gateway at capacity; retry with backoff');
    if (origin && this.allowedOrigins && !this.allowedOrigins.has(origin.toLowerCase())) return ex.error('forbidden', 'origin not allowed');
    if (this.addressLimiter && !this.addressLimiter.allow(address)) return ex.error('rate_limited', 'too many connection attempts from this address');
    const rooms = [...new Set((query.get('rooms') ?? '').split(',').filter(Boolean))];
    const bad = rooms.find((r) => !ROOM_NAME.test(r));
    if (bad !== undefined) return ex.error('bad_request', `invalid room name "${bad.slice(0, 130)}"`);
    if (this.cfg.maxRoomsPerConnection > 0 && rooms.length > this.cfg.maxRoomsPerConnection) {
      return ex.error('forbidden', `a stream may follow at most ${this.cfg.maxRoomsPerConnection} rooms`);
    }
    const positions = parseLastEventId(lastEventId);
    void (async () => {
      let identity: Identity;
      try {
        const who = this.credentials(query, authorization, cookie, address);
        if (who instanceof AuthError) throw who;
        identity = await who;
      } catch (err) {
        const refused = asAuthError(err);
        this.stats.authFailures.add(refused.kind);
        return ex.error('unauthorized', refused.reason);
      }
      const denied = rooms.find((r) => !mayJoin(identity, r));
      if (denied !== undefined) return ex.error('forbidden', `not allowed to follow "${denied}"`);
      if (ex.aborted) return;
      const sse = new SseConn(res, randomId(12), identity.user, rooms, this.cfg.sseMaxBufferBytes);
      conn = sse;
      this.sseConns.set(sse, []);
      const headers: Record<string, string> = {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        'x-accel-buffering': 'no',
      };
      if (origin && this.allowedOrigins) {
        headers['access-control-allow-origin'] = origin;
        headers['access-control-allow-credentials'] = 'true';
        headers.vary = 'Origin';
      }
      res.cork(() => sse.start(headers, 2000));
      if (identity.expiresAt !== undefined) {
        sse.expiryTimer = setTimeout(
          this.guarded('sse_expiry', () => {
            sse.end(errorFrame(undefined, 'unauthorized', 'unauthorized: token expired'));
            this.closeSse(sse);
          }),
          Math.min(MAX_TIMER_MS, Math.max(0, identity.expiresAt - Date.now())),
        );
        sse.expiryTimer.unref();
      }
      this.ensureSseHeartbeat();
      this.watchUser(sse);
      this.sseSubscribe(userTopic(sse.user.id), sse);
      await Promise.all(rooms.map((room) => this.followSse(sse, room, positions.get(room))));
    })().catch((err: unknown) => {
      this.log.warn({ err: (err as Error).message }, 'sse stream failed');
      if (conn) conn.cut();
      else ex.error('unavailable', 'backend unavailable; retry');
    });
  }

  /** Replays a room from `after` (when the client said where it was), then attaches it live. */
  private async followSse(sse: SseConn, room: string, after: number | undefined): Promise<void> {
    // Subscribed before the position is read, as for a join: nothing published after it is missed.
    const stream = this.acquireStream(room);
    const member = new SseRoomMember(sse, room, (m) => this.sseSubscribe(stream.topic, m));
    const held = this.sseConns.get(sse);
    if (!held) return this.releaseStream(stream);
    held.push({ member, stream });
    let pos = after ?? 0;
    let page = await this.fetchAfter(room, pos, after === undefined ? 0 : Math.min(500, this.cfg.replayMax));
    if (!page) throw new Error('history unavailable');
    if (after !== undefined && page.seq - after <= this.cfg.replayMax) {
      for (let sent = 0; ; ) {
        for (const { seq, frame } of page.frames) if (seq > pos) sse.event(frame, room, (pos = seq));
        sent += page.frames.length;
        if (pos >= page.seq || page.frames.length === 0 || sent >= this.cfg.replayMax || sse.closed) break;
        const next = await this.fetchAfter(room, pos, Math.min(500, this.cfg.replayMax - sent));
        if (!next) throw new Error('history unavailable');
        page = next;
      }
    } else {
      // Nothing to resume from, or too much missed: the stream starts at the room's present.
      pos = page.seq;
    }
    if (sse.closed) return;
    sse.positions.set(room, pos);
    stream.attach(member, pos, page.epoch);
  }

  private closeSse(sse: SseConn): void {
    const held = this.sseConns.get(sse);
    if (!held) return;
    this.sseConns.delete(sse);
    sse.closed = true;
    clearTimeout(sse.expiryTimer);
    this.sseUnsubscribe(userTopic(sse.user.id), sse);
    this.unwatchUser(sse);
    for (const { member, stream } of held) {
      this.sseUnsubscribe(stream.topic, member);
      stream.detach(member);
      this.releaseStream(stream);
    }
  }

  private ensureSseHeartbeat(): void {
    if (this.sseHeartbeat) return;
    this.sseHeartbeat = setInterval(
      this.guarded('sse_heartbeat', () => {
        for (const sse of this.sseConns.keys()) sse.comment('keepalive');
      }),
      this.cfg.sseHeartbeatMs,
    );
    this.sseHeartbeat.unref();
  }

  /** Closes the connection with 4001 when its credentials expire, unless refreshed before. */
  private armExpiry(conn: Conn): void {
    clearTimeout(conn.expiryTimer);
    conn.expiryTimer = undefined;
    const at = conn.identity.expiresAt;
    if (at === undefined) return;
    conn.expiryTimer = setTimeout(() => {
      if (!conn.closed) conn.ws.end(CLOSE_CODES.UNAUTHORIZED.code, 'unauthorized: token expired');
    }, Math.min(MAX_TIMER_MS, Math.max(0, at - Date.now())));
    conn.expiryTimer.unref();
  }

  /** `refresh`: a new JWT for the same user extends the connection's life. */
  private refresh(conn: Conn, id: string | number | undefined, token: string): void {
    this.auth.verify(token).then(
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
      this.failed('refresh', err, conn.id);
      conn.sendLater(errorFrame(id, 'internal', 'internal error'));
    });
  }

  private stopTyping(conn: Conn, room: string): void {
    this.request(conn.header + j({ type: 'typing', room, typing: false }) + '}').catch(() => {
      // The entry expires by itself within seconds.
    });
  }

  private acquireStream(room: string): RoomStream {
    let stream = this.streams.get(room);
    if (!stream) {
      const created = new RoomStream(room, `r:${room}`, this.streamHost, defaultStreamOptions);
      const sub = this.bus.subscribe(subjects.room(room), this.guarded('room_event', (data: Uint8Array) => created.onEvent(data)));
      this.streams.set(room, created);
      this.streamSubs.set(created, sub);
      stream = created;
    }
    stream.refs++;
    return stream;
  }

  /** Drops one reference; the last one unsubscribes the room from the bus. */
  private releaseStream(stream: RoomStream): void {
    if (--stream.refs > 0) return;
    stream.close();
    this.streamSubs.get(stream)?.unsubscribe();
    this.streamSubs.delete(stream);
    if (this.streams.get(stream.room) === stream) this.streams.delete(stream.room);
  }

  /** Subscribes the gateway to a user's bus subject while it has a connection or stream of theirs. */
  /** Counts a user's local connections and subscribes the socket to the user's topic. */
  private watchUser(conn: { user: User; ws?: UWS.WebSocket<UpgradeData> }): void {
    const id = conn.user.id;
    this.users.set(id, (this.users.get(id) ?? 0) + 1);
    conn.ws?.subscribe(userTopic(id));
  }

  private unwatchUser(conn: { user: User }): void {
    const refs = (this.users.get(conn.user.id) ?? 0) - 1;
    if (refs > 0) this.users.set(conn.user.id, refs);
    else this.users.delete(conn.user.id);
  }

  /**
   * A user event from the bus (all users' events come through one subscription): to the user's
   * local sockets and SSE streams, if any, but the connection the event names as its origin.
   */
  private onUserEvent(data: Uint8Array, subject: string): void {
    const topic = `u:${subject.slice(subjects.userPrefix.length)}`;
    const h = readUserEventHeader(data);
    if (!h) return;
    const frame = data.subarray(h.offset);
    const except = h.except === undefined ? undefined : this.connsById.get(h.except);
    if (except && !except.closed) {
      // ws.publish reaches every subscriber of the topic but that socket itself.
      const n = this.app.numSubscribers(topic) - 1;
      if (n > 0) except.ws.publish(topic, frame, false);
      this.stats.sent += n;
      this.stats.bytesOut += n * frame.length;
      if (this.sseByTopic.size > 0) this.publishSse(topic, frame);
    } else {
      this.publish(topic, frame);
    }
  }

  /** History for a stream's gap, asked of a worker as the gateway itself. */
  private async fetchAfter(room: string, after: number, limit: number): Promise<HistoryFrames | undefined> {
    try {
      const answer = await this.hedgedRequest(this.systemHeader + j({ type: 'history', room, after, limit }) + '}');
      const reply = JSON.parse(decoder.decode(answer)) as { type: string; seq: number; epoch: string; messages: MessageEvent[] };
      if (reply.type !== 'reply') return undefined;
      return {
        seq: reply.seq,
        epoch: reply.epoch,
        frames: reply.messages.map((m) => ({ seq: m.seq, frame: encoder.encode(j(m)) })),
      };
    } catch (err) {
      this.log.warn({ room, err: unavailableMessage(err) }, 'gap fill failed; will retry');
      return undefined;
    }
  }
}


/** The uWS topic of a user's sockets: named by the user's subject token, so a bus event maps to it without a lookup. */
function userTopic(userId: string): string {
  return `u:${subjectToken(userId)}`;
}

/** Any failure to check credentials as an AuthError (an unexpected one: `unavailable`, retry). */
function asAuthError(err: unknown): AuthError {
  if (err instanceof AuthError) return err;
  return new AuthError('unavailable', 'credentials could not be checked; retry');
}

function unavailableMessage(err: unknown): string {
  if (err instanceof BusError) {
    if (err.kind === 'timeout') return 'no worker answered in time; retry';
    if (err.kind === 'no_responders') return 'no worker is running; retry later';
    if (err.kind === 'disconnected' || err.kind === 'closed') return 'message bus unavailable; retry later';
    return 'the request failed in a worker; retry';
  }
  return 'backend unavailable; retry';
}
