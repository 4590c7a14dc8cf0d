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
 *   `maxInFlight` bounds the handlers running at once per connection (default 4096); a request
 *   arriving beyond it is refused at once, unstarted, and counted (`stats.droppedRequests`): the
 *   requester gets BusError('overloaded') in a round trip instead of waiting out its timeout.
 *   (A request that came alone, not in a batch, is dropped unanswered as before: it has no way to
 *   say "overloaded", and the requester sees a 'timeout'.)
 *
 * Batching (the requesting side in `bus-nats-requests.ts`). `request` does not send one NATS
 * message per request: the requests made in one event-loop turn to one subject go out together
 * (`bus-batch.ts`, at most MAX_BATCH_ENTRIES each) on `<subject>.batch`, with a reply subject
 * `<this connection's inbox>.<batch number>`; the serving side answers each batch with the
 * answers finished in one turn, together. The queue group hands each batch to one member.
 * Timeouts stay per request (one timer per batch, re-armed for the earliest deadline left); a
 * batch nobody serves gets one no-responders status (503) on its reply subject, which fails every
 * request of that batch with 'no_responders'.
 */
import {
  connect,
  createInbox,
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
import { AnswerStatus, BatchWriter, readRequests } from './bus-batch.ts';
import { BATCH_SUFFIX, BatchedRequests, toBusError } from './bus-nats-requests.ts';

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
const EMPTY = new Uint8Array(0);

export class NatsBus implements Bus {
  readonly stats: NatsBusStats = { droppedPublishes: 0, droppedRequests: 0, handlerErrors: 0, listenerErrors: 0, disconnects: 0, reconnects: 0 };
  readonly #nc: NatsConnection;
  readonly #log: Logger | undefined;
  readonly #maxInFlight: number;
  readonly #drainTimeoutMs: number;
  #connected = true;
  #closed = false;
  #draining: Promise<void> | undefined;
  readonly #serving = new Set<Subscription>();
  /** Handlers running (requests taken and not answered yet). */
  #inFlight = 0;
  /** The drain's wait for the running handlers, called when the last one ends. */
  #idle: (() => void) | undefined;
  /** This connection's requests, batched (bus-nats-requests.ts). */
  readonly #requests: BatchedRequests;
  /** Answers of batched requests finished this turn, by reply subject. */
  readonly #answers = new Map<string, BatchWriter>();
  #answersScheduled = false;
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
    // Above the sum of the gateways' own windows (MAX_IN_FLIGHT_PER_GATEWAY, 1024 each) for a few
    // gateways per worker: the gateways bound the load, this only guards the heap. Refusing here
    // instead costs the refused requests their time in the queue to this worker.
    this.#maxInFlight = opts.maxInFlight ?? 4096;
    this.#drainTimeoutMs = opts.drainTimeoutMs ?? 10_000;
    const inbox = createInbox();
    this.#requests = new BatchedRequests(
      inbox,
      (subject) => (this.#closed || !this.#connected ? this.#unavailable(subject) : undefined),
      (subject, data, reply) => nc.publish(subject, data, { reply }),
      this.#log,
    );
    nc.subscribe(`${inbox}.*`, { callback: (err, msg) => (err ? this.#log?.error({ err }, 'nats inbox error') : this.#requests.onAnswers(msg)) });
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
        if (this.#inFlight >= this.#maxInFlight) {
          // Log the first drop of a burst and then every 1000th, not every one.
          if (this.stats.droppedRequests++ % 1000 === 0) {
            this.#log?.warn({ subject, inFlight: this.#inFlight, dropped: this.stats.droppedRequests }, 'bus overloaded: request dropped');
          }
          return;
        }
        void this.#run(handler, msg);
      },
    });
    const batchSub = this.#nc.subscribe(subject + BATCH_SUFFIX, {
      queue,
      callback: (err, msg) => {
        if (err) {
          this.#log?.error({ err, subject }, 'nats subscription error');
          return;
        }
        this.#serveBatch(handler, msg);
      },
    });
    this.#serving.add(sub);
    this.#serving.add(batchSub);
    return {
      unsubscribe: () => {
        this.#serving.delete(sub);
        this.#serving.delete(batchSub);
        sub.unsubscribe();
        batchSub.unsubscribe();
      },
    };
  }

  request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    if (this.#closed || !this.#connected) return Promise.reject(this.#unavailable(subject));
    return this.#requests.request(subject, data, timeoutMs);
  }

  /** Runs each request of a batch (or refuses it past `maxInFlight`); answers go out per turn. */
  #serveBatch(handler: RequestHandler, msg: Msg): void {
    const reply = msg.reply;
    if (!reply) return;
    const ok = readRequests(msg.data, (id, payload) => {
      if (this.#inFlight >= this.#maxInFlight) {
        if (this.stats.droppedRequests++ % 1000 === 0) {
          this.#log?.warn({ subject: msg.subject, inFlight: this.#inFlight, refused: this.stats.droppedRequests }, 'bus overloaded: request refused');
        }
        this.#answer(reply, id, AnswerStatus.Overloaded, EMPTY);
        return;
      }
      this.#inFlight++;
      void this.#serveOne(handler, msg.subject, reply, id, payload);
    });
    if (!ok) this.#log?.warn({ subject: msg.subject }, 'malformed request batch');
  }

  /** One request of a batch: its answer (or its handler's failure) joins the turn's answers. */
  async #serveOne(handler: RequestHandler, subject: string, reply: string, id: number, payload: Uint8Array): Promise<void> {
    try {
      let status = AnswerStatus.Ok;
      let answer: Uint8Array;
      try {
        answer = await handler(payload);
      } catch (err) {
        this.stats.handlerErrors++;
        this.#log?.error({ err, subject }, 'bus handler failed');
        status = AnswerStatus.HandlerFailed;
        answer = failureBody(err);
      }
      this.#answer(reply, id, status, answer);
    } finally {
      this.#handled();
    }
  }

  #handled(): void {
    if (--this.#inFlight === 0 && this.#idle) {
      const idle = this.#idle;
      this.#idle = undefined;
      idle();
    }
  }

  #answer(reply: string, id: number, status: AnswerStatus, payload: Uint8Array): void {
    let w = this.#answers.get(reply);
    if (!w) {
      w = new BatchWriter(1024);
      this.#answers.set(reply, w);
    }
    w.answer(id, status, payload);
    if (!this.#answersScheduled) {
      this.#answersScheduled = true;
      setImmediate(this.#flushAnswers);
    }
  }

  readonly #flushAnswers = (): void => {
    this.#answersScheduled = false;
    for (const [reply, w] of this.#answers) {
      try {
        this.#nc.publish(reply, w.take());
      } catch (err) {
        // Closed or disconnected meanwhile: the requesters time out, as if this worker had died.
        this.#log?.warn({ err, reply }, 'bus answers lost');
      }
    }
    // One writer per requesting batch: forget them, or the map grows with every batch served.
    this.#answers.clear();
  };

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
      if (this.#inFlight > 0) await new Promise<void>((resolve) => (this.#idle = resolve));
      // Answers of the last handlers are waiting for the end of the turn: send them before the drain.
      this.#flushAnswers();
      if (!this.#nc.isClosed()) await this.#nc.drain();
      return 'drained' as const;
    })().catch((err: unknown) => {
      this.#log?.warn({ err }, 'nats drain failed; closing');
      return 'failed' as const;
    });
    const outcome = await Promise.race([graceful, deadline]);
    clearTimeout(timer);
    if (outcome === 'timeout') this.#log?.warn({ inFlight: this.#inFlight }, 'nats drain timed out; closing');
    // nats.js' drain skips the close when its final flush fails (e.g. disconnected meanwhile).
    await this.close();
  }

  async close(): Promise<void> {
    this.#markClosed();
    if (!this.#nc.isClosed()) await this.#nc.close();
  }

  /** A request sent alone (not in a batch): answered with a reply of its own. */
  async #run(handler: RequestHandler, msg: Msg): Promise<void> {
    this.#inFlight++;
    try {
      let answer: Uint8Array;
      try {
        answer = await handler(msg.data);
      } catch (err) {
        this.stats.handlerErrors++;
        this.#log?.error({ err, subject: msg.subject }, 'bus handler failed');
        const h = headers();
        h.set(ERROR_HEADER, 'handler');
        this.#respond(msg, failureBody(err), h);
        return;
      }
      this.#respond(msg, answer);
    } finally {
      this.#handled();
    }
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
          this.#requests.failAll(new BusError('disconnected', 'NATS connection lost while the request was in flight'));
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
    this.#requests.failAll(new BusError('closed', 'bus closed while the request was in flight'));
  }

  #unavailable(subject: string): BusError {
    return this.#closed ? new BusError('closed', 'bus is closed') : new BusError('disconnected', `not connected to NATS (request on ${subject})`);
  }

  #assertOpen(): void {
    if (this.#closed) throw new BusError('closed', 'bus is closed');
    if (this.#draining) throw new BusError('closed', 'bus is draining');
  }
}

/** What a failed handler's requester is told: its error's message, truncated. */
function failureBody(err: unknown): Uint8Array {
  return encoder.encode((err instanceof Error ? err.message : String(err)).slice(0, MAX_ERROR_BODY));
}
