/**
 * The gateway: owns the sockets, and nothing else. It wires the parts and owns their lifetime:
 *
 * - `Admission` (admission.ts): who may connect, by WebSocket or SSE; credentials and tickets;
 * - `Connections` (connections.ts): one `Conn` per socket and the protocol spoken with it;
 * - `SseStreams` (sse.ts): the `/sse` endpoint;
 * - `Fanout` (fanout.ts): room streams and user events to local sockets, one uWS publish each;
 * - `Upstream` (upstream.ts): the requests to the workers;
 * - `GatewayRoutes` (routes.ts): the HTTP routes and the `/ws` behaviour, behind the `Boundary`;
 *
 * - `Canary` (canary.ts): the delivery canary behind `/readyz`;
 * - `Hedger` (hedge.ts, in Upstream): requests safe to repeat, sent again when a worker is lost;
 *
 * and the gateway's timers: liveness reports, the backpressure check, the dashboard's stats.
 * It subscribes to a room's bus subject only while it has local members in that room, and to all
 * users' events through one wildcard subscription (`rt.user.>`), delivering those of users it
 * holds a connection of.
 */
import type * as UWS from 'uWebSockets.js';
import type { Registry } from 'prom-client';
import type { Bus } from '../shared/bus.ts';
import type { Config } from '../shared/config.ts';
import type { Logger } from '../shared/log.ts';
import { CLOSE_CODES } from '../shared/protocol/codes.ts';
import { Admission } from './admission.ts';
import { Boundary } from './boundary.ts';
import { Connections } from './connections.ts';
import { Fanout } from './fanout.ts';
import { GatewayRoutes } from './routes.ts';
import { SseStreams } from './sse.ts';
import { Dashboard, GatewayStats, gatewayMetrics, type GatewayGauges } from './stats.ts';
import { Upstream } from './upstream.ts';
import { Canary } from './canary.ts';
import { scrapedCounter, scrapedGauge } from '../shared/metrics.ts';
import { loadNativeUws } from './uws.ts';

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
  readonly registry: Registry;
  readonly admission: Admission;
  readonly conns: Connections;
  readonly sse: SseStreams;
  readonly fanout: Fanout;
  readonly routes: GatewayRoutes;
  private readonly uws = loadNativeUws();
  private readonly app: UWS.TemplatedApp;
  private listenSocket: UWS.us_listen_socket | undefined;
  private closing: Promise<void> | undefined;
  private readonly aliveTimer: NodeJS.Timeout;
  private readonly backpressureTimer: NodeJS.Timeout;
  private readonly statsTimer: NodeJS.Timeout | undefined;
  private readonly bus: Bus;
  private readonly cfg: Config;
  private readonly log: Logger;
  private readonly upstream: Upstream;
  private readonly canary: Canary;
  /** A second resync some time after a reconnect (see onBusReconnect); undefined when none is due. */
  private resyncTimer: NodeJS.Timeout | undefined;

  constructor(opts: GatewayOptions) {
    this.bus = opts.bus;
    this.cfg = opts.config;
    this.log = opts.log;
    this.nodeId = opts.nodeId;
    const stats = new GatewayStats();
    const boundary = new Boundary(stats.errors, this.log);
    const upstream = new Upstream(this.bus, this.cfg, this.nodeId, this.log);
    this.upstream = upstream;
    this.canary = new Canary(this.bus, this.nodeId, this.cfg.canaryMs, this.cfg.canaryStaleMs, this.log);
    this.app = this.uws.App();
    this.admission = new Admission(this.cfg, upstream, stats, boundary);
    this.fanout = new Fanout(this.app, this.bus, upstream, stats, boundary);
    const gauges: GatewayGauges = {
      connections: () => this.conns.size,
      sse: () => this.sse.size,
      rooms: () => this.fanout.streams.size,
      users: () => this.fanout.users.size,
      busConnected: () => this.bus.connected,
      draining: () => this.admission.draining,
    };
    const { registry, requestDuration } = gatewayMetrics(this.nodeId, stats, gauges);
    this.registry = registry;
    scrapedCounter(registry, 'rt_gateway_request_hedges_total', 'Requests sent a second time to another worker, by reason (delay: no answer within HEDGE_MS; no_responders).', () => upstream.hedger.hedges, 'reason');
    scrapedGauge(registry, 'rt_gateway_canary_age_seconds', "Seconds since the delivery canary last made a round trip through the bus and this gateway's room subscriptions.", () => this.canary.ageSeconds);
    this.conns = new Connections({
      cfg: this.cfg,
      nodeId: this.nodeId,
      auth: this.admission.auth,
      fanout: this.fanout,
      upstream,
      stats,
      boundary,
      log: this.log,
      requestDuration,
    });
    this.sse = new SseStreams(this.cfg, this.admission, this.fanout, boundary, this.log, () => this.conns.size);
    this.routes = new GatewayRoutes({
      cfg: this.cfg,
      admission: this.admission,
      conns: this.conns,
      sse: this.sse,
      upstream,
      boundary,
      readiness: () => ({ ready: this.ready, bus: this.bus.connected, draining: this.admission.draining, canary: this.canary.stale }),
      registries: [this.registry, ...(opts.extraRegistries ?? [])],
    });
    this.routes.register(this.app);
    this.bus.onReconnect(boundary.guarded('reconnect', () => this.onBusReconnect()));
    this.canary.start();
    upstream.alive();
    this.aliveTimer = setInterval(boundary.guarded('alive', () => upstream.alive()), ALIVE_INTERVAL_MS);
    this.aliveTimer.unref();
    this.backpressureTimer = setInterval(boundary.guarded('backpressure', () => this.conns.closeSlow(this.cfg.maxBackpressureBytes)), BACKPRESSURE_CHECK_MS);
    this.backpressureTimer.unref();
    if (this.cfg.dashboardRoom !== 'off') {
      const dashboard = new Dashboard(this.cfg.dashboardRoom, this.nodeId, this.bus, stats, gauges);
      this.statsTimer = setInterval(boundary.guarded('stats', () => dashboard.publish()), STATS_INTERVAL_MS);
      this.statsTimer.unref();
    }
  }

  /**
   * Back on the bus, possibly on another server of the NATS cluster: the room subscriptions are
   * active again, but what rooms published meanwhile never arrived, and without a later message
   * nothing would reveal the gap. Catch up from history now, and once more a second later: the
   * cluster learns of our re-sent subscriptions over its routes, and a message published through
   * another server during that moment would otherwise stay missing until the room's next one.
   */
  private onBusReconnect(): void {
    this.log.info({ rooms: this.fanout.streams.size }, 'bus reconnected; resyncing rooms from history');
    this.fanout.resync();
    clearTimeout(this.resyncTimer);
    this.resyncTimer = setTimeout(() => {
      this.resyncTimer = undefined;
      this.fanout.resync();
    }, 1000);
    this.resyncTimer.unref();
  }

  get ready(): boolean {
    return !this.admission.draining && this.bus.connected && this.canary.stale === undefined;
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
    this.admission.draining = true;
    this.closing = (async () => {
      clearInterval(this.aliveTimer);
      clearInterval(this.backpressureTimer);
      clearInterval(this.statsTimer);
      clearTimeout(this.resyncTimer);
      this.canary.close();
      this.upstream.close();
      this.admission.close();
      const conns = [...this.conns.all];
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
      this.sse.cutAll();
      if (this.listenSocket) this.uws.us_listen_socket_close(this.listenSocket);
      this.listenSocket = undefined;
      this.fanout.close();
    })();
    return this.closing;
  }
}
