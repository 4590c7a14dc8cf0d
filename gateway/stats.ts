/**
 * What the gateway counts: plain numbers bumped on the hot paths and read by Prometheus when it
 * scrapes, and the once-a-second `stats` event of the dashboard room.
 */
import type { Registry } from 'prom-client';
import { subjects, type Bus } from '../shared/bus.ts';
import { encodeRoomEvent } from '../shared/envelope.ts';
import { HotHistogram, Tally, createRegistry, scrapedCounter, scrapedGauge } from '../shared/metrics.ts';

const MAX_LATENCY_SAMPLES = 2048;

export class GatewayStats {
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
  /** Requests answered `overloaded`, by the window that was full (connection, gateway, worker). */
  readonly overloaded = new Tally();
  /** Recent request latencies (ms), for the dashboard's percentiles; emptied once a second. */
  readonly latencies: number[] = [];

  /** Accounts one send to one socket (uWS answers 2 when the frame was dropped for backpressure). */
  sentOne(frame: Uint8Array | string, result: number): void {
    this.sent++;
    this.bytesOut += frame.length;
    if (result === 2) this.drops++;
  }

  /** Accounts one frame written to `n` recipients by one publish. */
  sentTo(n: number, frame: Uint8Array): void {
    this.sent += n;
    this.bytesOut += n * frame.length;
  }

  latency(ms: number): void {
    if (this.latencies.length < MAX_LATENCY_SAMPLES) this.latencies.push(ms);
  }
}

/** What the gauges read at scrape time. */
export interface GatewayGauges {
  connections(): number;
  sse(): number;
  rooms(): number;
  users(): number;
  busConnected(): boolean;
  draining(): boolean;
}

export interface GatewayMetrics {
  registry: Registry;
  requestDuration: HotHistogram;
}

export function gatewayMetrics(nodeId: string, st: GatewayStats, g: GatewayGauges): GatewayMetrics {
  const r = createRegistry({ node: nodeId });
  const requestDuration = new HotHistogram(
    r,
    'rt_gateway_request_duration_seconds',
    'Requests forwarded to a worker, from the frame to the answer (gateway → worker → gateway).',
    'type',
  );
  scrapedGauge(r, 'rt_gateway_connections', 'Open WebSocket connections.', g.connections);
  scrapedGauge(r, 'rt_gateway_sse_connections', 'Open /sse streams.', g.sse);
  scrapedGauge(r, 'rt_gateway_rooms', 'Rooms with local members (bus subscriptions).', g.rooms);
  scrapedGauge(r, 'rt_gateway_users', 'Users with local connections.', g.users);
  scrapedGauge(r, 'rt_gateway_bus_connected', '1 while the message bus is connected.', () => (g.busConnected() ? 1 : 0));
  scrapedGauge(r, 'rt_gateway_draining', '1 while the gateway drains.', () => (g.draining() ? 1 : 0));
  scrapedCounter(r, 'rt_gateway_connects_total', 'Upgrade attempts by result.', () => st.connects, 'result');
  scrapedCounter(r, 'rt_gateway_auth_failures_total', 'Connections refused for their credentials, by reason.', () => st.authFailures, 'reason');
  scrapedCounter(r, 'rt_gateway_messages_received_total', 'Frames received from clients, by type.', () => st.received, 'type');
  scrapedCounter(r, 'rt_gateway_messages_sent_total', 'Frames sent to clients (a room message counts once per recipient).', () => st.sent);
  scrapedCounter(r, 'rt_gateway_bytes_received_total', 'Bytes of frames received from clients.', () => st.bytesIn);
  scrapedCounter(r, 'rt_gateway_bytes_sent_total', 'Bytes of frames sent to clients.', () => st.bytesOut);
  scrapedCounter(r, 'rt_gateway_slow_consumers_total', 'Connections closed with 1013 for falling more than MAX_BACKPRESSURE_BYTES behind.', () => st.slowConsumers);
  scrapedCounter(r, 'rt_gateway_errors_total', 'Unexpected exceptions caught at a callback boundary (answered 500 / internal / 1011), by where.', () => st.errors, 'where');
  scrapedCounter(r, 'rt_gateway_overloaded_total', 'Requests answered `overloaded` at once, by the in-flight window that was full: connection, gateway or worker.', () => st.overloaded, 'window');
  scrapedCounter(r, 'rt_gateway_backpressure_drops_total', 'Frames uWS dropped because a client was over its backpressure limit.', () => st.drops);
  return { registry: r, requestDuration };
}

/**
 * This gateway's numbers for the dashboard, to the dashboard room's bus subject (every gateway
 * with a dashboard viewer subscribes to it like any room). One small message a second.
 */
export class Dashboard {
  private last = { at: Date.now(), received: 0, sent: 0 };

  constructor(
    private readonly room: string,
    private readonly nodeId: string,
    private readonly bus: Bus,
    private readonly stats: GatewayStats,
    private readonly gauges: GatewayGauges,
  ) {}

  publish(): void {
    if (!this.bus.connected) return;
    const now = Date.now();
    let received = 0;
    for (const v of this.stats.received.counts.values()) received += v;
    const secs = Math.max(0.001, (now - this.last.at) / 1000);
    const lat = this.stats.latencies.splice(0).sort((a, b) => a - b);
    const pct = (p: number) => (lat.length ? Math.round(lat[Math.min(lat.length - 1, Math.floor(p * lat.length))]! * 100) / 100 : 0);
    const frame = JSON.stringify({
      type: 'stats',
      room: this.room,
      node: this.nodeId,
      ts: new Date(now).toISOString(),
      connections: this.gauges.connections(),
      sse: this.gauges.sse(),
      rooms: this.gauges.rooms(),
      messagesInPerSec: Math.round((received - this.last.received) / secs),
      messagesOutPerSec: Math.round((this.stats.sent - this.last.sent) / secs),
      latencyMs: { p50: pct(0.5), p99: pct(0.99), max: pct(1), count: lat.length },
      busConnected: this.bus.connected,
    });
    this.last = { at: now, received, sent: this.stats.sent };
    try {
      this.bus.publish(subjects.room(this.room), encodeRoomEvent(0, '-', frame));
    } catch {
      // The bus went down between the check and the publish: skip this second.
    }
  }
}
