/**
 * The Bus over NATS core (nats.js v2), used when gateways and workers run as separate processes.
 *
 * Connection: reconnects forever (`maxReconnectAttempts: -1`), so a NATS restart heals by itself;
 * subscriptions and queue memberships are re-sent by nats.js on reconnect. `connected` follows
 * `nc.status()` (Disconnect / Reconnect) and `nc.closed()`. The first connection is not retried:
 * `NatsBus.connect()` rejects when no server answers, and the process supervisor decides.
 *
 * Failures, as the Bus contract promises (a request never hangs):
 * - request while disconnected → BusError('disconnected') at once, without touching the socket;
 * - requests in flight when the connection drops → BusError('disconnected') at the Disconnect
 *   event: their answers cannot come back, core NATS keeps nothing for a dropped connection. In the
 *   short window before nats.js reports the drop a request is buffered, and nats.js throws that
 *   buffer away when it dials again, so the request ends as a 'timeout' at the latest;
 * - nats.js TIMEOUT → 'timeout'; a 503 status reply (ErrorCode.NoResponders) → 'no_responders';
 *   CONNECTION_CLOSED / CONNECTION_DRAINING → 'closed'; DISCONNECT, CONNECTION_REFUSED → 'disconnected';
 * - a handler that throws answers with an empty-looking reply carrying the header `rt-error: handler`
 *   (body: the error message, truncated) → BusError('handler') at the requester. A header, not a
 *   payload convention, so no answer a handler can produce is mistaken for an error.
 * Other nats.js errors (a bad subject, a payload above the server's max_payload) are programming
 * errors, not bus states, and are passed through unchanged.
 *
 * Publishing while disconnected drops the message and counts it (`stats.droppedPublishes`): publish
 * is at most once, and nats.js would discard its outbound buffer at the next dial anyway, after
 * letting it grow for as long as the outage lasts.
 *
 * Slow consumers. Unlike nats.go (`SetPendingLimits`, 512K messages / 64 MB per subscription),
 * nats.js v2 has no per-subscription pending limits: a callback subscription is called straight
 * from the socket parser, with no client-side queue to bound (nats-io/nats.ts#73). What protects us:
 * - the server: when we read too slowly its per-connection buffer (`max_pending`, 64 MB default)
 *   fills and it closes us as a slow consumer; we reconnect and what was in between is lost
 *   (at most once; room gaps are then filled from history). Subscriber callbacks must therefore
 *   stay short and synchronous (the gateway's is one uWS topic publish);
 * - here: request handlers are asynchronous, so the backlog would move into our heap as promises.
 *   `maxInFlight` bounds the handlers running at once per connection (default 1024); a request
 *   arriving beyond it is dropped unanswered and counted (`stats.droppedRequests`), which the
 *   requester sees as a 'timeout' — the same as a worker that died — while the other members of
 *   the queue group keep serving.
 */
import {
  connect,
  headers,
  Events,
  ErrorCode,
  type Msg,
  type NatsConnection,
  type NatsError,
  type Subscription,
} from 'nats';
import type { Logger } from './log.ts';
import { BusError, type Bus, type BusSubscription, type RequestHandler } from './bus.ts';

/** Header on a reply whose handler threw; its value names the failure kind. */
export const ERROR_HEADER = 'rt-error';
const MAX_ERROR_BODY = 512;

export interface NatsBusOptions {
  /** Connection name shown by the NATS server (`/connz`), e.g. `gateway-<nodeId>`. */
  name?: string;
  /** Logs subscriber and handler failures and connection events; nothing is logged without it. */
  logger?: Logger;
  /** Request handlers running at once on this connection before new requests are dropped. */
  maxInFlight?: number;
  /** How long `drain()` waits for handlers in flight before it closes anyway. */
  drainTimeoutMs?: number;
}

/** Counters for metrics; they only grow. */
export interface NatsBusStats {
  /** Published while disconnected or closed, dropped. */
  droppedPublishes: number;
  /** Requests dropped unanswered because `maxInFlight` handlers were running. */
  droppedRequests: number;
  /** Handlers that threw or rejected. */
  handlerErrors: number;
  /** Subscriber callbacks that threw (logged; the connection carries on). */
  listenerErrors: number;
  /** Times the connection dropped. */
  disconnects: number;
  /** Times the connection came back (to the same server or another of the cluster). */
  reconnects: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class NatsBus implements Bus {
  readonly stats: NatsBusStats = { droppedPublishes: 0, droppedRequests: 0, handlerErrors: 0, listenerErrors: 0, disconnects: 0, reconnects: 0 };
  readonly #nc: NatsConnection;
  readonly #log: Logger | undefined;
  readonly #maxInFlight: number;
  readonly #drainTimeoutMs: number;
  #connected = true;
  #closed = false;
  #draining: Promise<void> | undefined;
  /** Rejecters of this connection's requests in flight, to fail them on disconnect or close. */
  readonly #pending = new Set<(err: BusError) => void>();
  readonly #serving = new Set<Subscription>();
  readonly #inFlight = new Set<Promise<void>>();
  readonly #reconnectListeners: (() => void)[] = [];

  static async connect(servers: string, opts: NatsBusOptions = {}): Promise<NatsBus> {
    const nc = await connect({
      servers: servers.split(',').map((s) => s.trim()).filter(Boolean),
      name: opts.name,
      maxReconnectAttempts: -1,
      // nats.js otherwise creates an Error per request to keep async stack traces, a cost paid on
      // every request of the hot path. Our request errors carry their own context.
      noAsyncTraces: true,
      // With nats.js' default jitter (100 ms) a restarted server is found again within ~1 s.
      reconnectTimeWait: 1000,
      // A half-open TCP connection (peer gone without FIN) is detected within ~15-20 s instead of
      // the default 2 × 2 min.
      pingInterval: 5000,
      maxPingOut: 3,
      timeout: 5000,
    });
    return new NatsBus(nc, opts);
  }

  private constructor(nc: NatsConnection, opts: NatsBusOptions) {
    this.#nc = nc;
    this.#log = opts.logger;
    this.#maxInFlight = opts.maxInFlight ?? 1024;
    this.#drainTimeoutMs = opts.drainTimeoutMs ?? 10_000;
    void this.#watchStatus();
    void nc.closed().then((err) => {
      this.#markClosed();
      if (err) this.#log?.error({ err }, 'nats connection closed with an error');
    });
  }

  get connected(): boolean {
    return this.#connected && !this.#closed;
  }

  onReconnect(listener: () => void): void {
    this.#reconnectListeners.push(listener);
  }

  /** The server this connection is on now (`127.0.0.1:4222`), for logs and tests. */
  get server(): string {
    return this.#nc.getServer();
  }

  publish(subject: string, data: Uint8Array): void {
    if (this.#closed || !this.#connected) {
      this.stats.droppedPublishes++;
      return;
    }
    try {
      this.#nc.publish(subject, data);
    } catch (err) {
      const code = (err as Partial<NatsError>).code;
      if (code !== ErrorCode.ConnectionClosed && code !== ErrorCode.ConnectionDraining) throw err;
      this.stats.droppedPublishes++;
    }
  }

  subscribe(subject: string, onMessage: (data: Uint8Array, subject: string) => void): BusSubscription {
    this.#assertOpen();
    const sub = this.#nc.subscribe(subject, {
      callback: (err, msg) => {
        if (err) {
          this.#log?.error({ err, subject }, 'nats subscription error');
          return;
        }
        // An exception must not reach nats.js: it would unwind through the socket parser.
        try {
          onMessage(msg.data, msg.subject);
        } catch (e) {
          this.stats.listenerErrors++;
          this.#log?.error({ err: e, subject }, 'bus subscriber threw');
        }
      },
    });
    return { unsubscribe: () => sub.unsubscribe() };
  }

  serve(subject: string, queue: string, handler: RequestHandler): BusSubscription {
    this.#assertOpen();
    const sub = this.#nc.subscribe(subject, {
      queue,
      callback: (err, msg) => {
        if (err) {
          this.#log?.error({ err, subject }, 'nats subscription error');
          return;
        }
        if (this.#inFlight.size >= this.#maxInFlight) {
          // Log the first drop of a burst and then every 1000th, not every one.
          if (this.stats.droppedRequests++ % 1000 === 0) {
            this.#log?.warn({ subject, inFlight: this.#inFlight.size, dropped: this.stats.droppedRequests }, 'bus overloaded: request dropped');
          }
          return;
        }
        this.#run(handler, msg);
      },
    });
    this.#serving.add(sub);
    return {
      unsubscribe: () => {
        this.#serving.delete(sub);
        sub.unsubscribe();
      },
    };
  }

  request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    if (this.#closed) return Promise.reject(new BusError('closed', 'bus is closed'));
    if (!this.#connected) return Promise.reject(new BusError('disconnected', `not connected to NATS (request on ${subject})`));
    return new Promise<Uint8Array>((resolve, reject) => {
      this.#pending.add(reject);
      const done = () => this.#pending.delete(reject);
      // nats.js treats a timeout of 0 as its 1 s default and rejects fractions below 1.
      this.#nc.request(subject, data, { timeout: Math.max(1, Math.ceil(timeoutMs)) }).then(
        (msg) => {
          done();
          if (msg.headers?.has(ERROR_HEADER)) {
            reject(new BusError('handler', `handler failed on ${subject}: ${decoder.decode(msg.data)}`));
          } else {
            resolve(msg.data);
          }
        },
        (err: unknown) => {
          done();
          reject(toBusError(err, subject, timeoutMs));
        },
      );
    });
  }

  async flush(): Promise<void> {
    if (this.#closed) throw new BusError('closed', 'bus is closed');
    if (!this.#connected) throw new BusError('disconnected', 'not connected to NATS');
    try {
      await this.#nc.flush();
    } catch (err) {
      throw toBusError(err, 'flush', 0);
    }
  }

  /**
   * 1. drains the queue subscriptions: the server stops routing requests here, and those already
   *    received are dispatched; 2. waits for the handlers in flight to answer (at most
   *    `drainTimeoutMs`); 3. `nc.drain()` drains the other subscriptions, flushes the answers and
   *    closes. Done in this order because `nc.drain()` alone closes the connection as soon as the
   *    subscriptions are drained, and answers of asynchronous handlers still running would be lost.
   */
  drain(): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#draining ??= this.#drain();
    return this.#draining;
  }

  async #drain(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const deadline = new Promise<'timeout'>((r) => {
      timer = setTimeout(() => r('timeout'), this.#drainTimeoutMs);
    });
    const graceful = (async () => {
      await Promise.allSettled([...this.#serving].map((s) => s.drain()));
      while (this.#inFlight.size > 0) await Promise.allSettled([...this.#inFlight]);
      if (!this.#nc.isClosed()) await this.#nc.drain();
      return 'drained' as const;
    })().catch((err: unknown) => {
      this.#log?.warn({ err }, 'nats drain failed; closing');
      return 'failed' as const;
    });
    const outcome = await Promise.race([graceful, deadline]);
    clearTimeout(timer);
    if (outcome === 'timeout') this.#log?.warn({ inFlight: this.#inFlight.size }, 'nats drain timed out; closing');
    // nats.js' drain skips the close when its final flush fails (e.g. disconnected meanwhile).
    await this.close();
  }

  async close(): Promise<void> {
    this.#markClosed();
    if (!this.#nc.isClosed()) await this.#nc.close();
  }

  #run(handler: RequestHandler, msg: Msg): void {
    const p: Promise<void> = (async () => handler(msg.data))()
      .then(
        (answer) => this.#respond(msg, answer),
        (err: unknown) => {
          this.stats.handlerErrors++;
          this.#log?.error({ err, subject: msg.subject }, 'bus handler failed');
          const h = headers();
          h.set(ERROR_HEADER, 'handler');
          const text = err instanceof Error ? err.message : String(err);
          this.#respond(msg, encoder.encode(text.slice(0, MAX_ERROR_BODY)), h);
        },
      )
      .finally(() => this.#inFlight.delete(p));
    this.#inFlight.add(p);
  }

  #respond(msg: Msg, data: Uint8Array, h?: ReturnType<typeof headers>): void {
    if (!msg.reply) return; // published, not requested: nobody to answer
    try {
      msg.respond(data, h ? { headers: h } : undefined);
    } catch (err) {
      // Closed or disconnected meanwhile: the requester times out, as if this worker had died.
      this.#log?.warn({ err, subject: msg.subject }, 'bus answer lost');
    }
  }

  async #watchStatus(): Promise<void> {
    for await (const s of this.#nc.status()) {
      switch (s.type) {
        case Events.Disconnect:
          if (this.#connected) this.stats.disconnects++;
          this.#connected = false;
          this.#failPending(new BusError('disconnected', 'NATS connection lost while the request was in flight'));
          this.#log?.warn({ server: s.data }, 'nats disconnected');
          break;
        case Events.Reconnect:
          this.#connected = true;
          this.stats.reconnects++;
          this.#log?.info({ server: s.data }, 'nats reconnected');
          for (const l of this.#reconnectListeners) {
            try {
              l();
            } catch (err) {
              this.stats.listenerErrors++;
              this.#log?.error({ err }, 'reconnect listener threw');
            }
          }
          break;
        case Events.Error:
          this.#log?.error({ code: s.data }, 'nats async error');
          break;
        case Events.LDM:
          this.#log?.warn({ server: s.data }, 'nats server entering lame duck mode');
          break;
        default:
          break;
      }
    }
  }

  #markClosed(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#connected = false;
    this.#failPending(new BusError('closed', 'bus closed while the request was in flight'));
  }

  #failPending(err: BusError): void {
    const pending = [...this.#pending];
    this.#pending.clear();
    for (const reject of pending) reject(err);
  }

  #assertOpen(): void {
    if (this.#closed) throw new BusError('closed', 'bus is closed');
    if (this.#draining) throw new BusError('closed', 'bus is draining');
  }
}

function toBusError(err: unknown, subject: string, timeoutMs: number): unknown {
  switch ((err as Partial<NatsError> | undefined)?.code) {
    case ErrorCode.Timeout:
      return new BusError('timeout', `no answer on ${subject} within ${timeoutMs} ms`);
    case ErrorCode.NoResponders:
      return new BusError('no_responders', `no responders on ${subject}`);
    case ErrorCode.ConnectionClosed:
    case ErrorCode.ConnectionDraining:
      return new BusError('closed', `bus is closed (${subject})`);
    case ErrorCode.Disconnect:
    case ErrorCode.ConnectionRefused:
    case ErrorCode.ConnectionTimeout:
      return new BusError('disconnected', `not connected to NATS (${subject})`);
    default:
      return err;
  }
}
