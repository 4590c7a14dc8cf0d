/**
 * Hedged requests to the workers, for requests that are safe to repeat (a publish with a `cid`,
 * join, history, presence, typing, the gateway's own gap fills).
 *
 * Why: a worker that dies (SIGKILL, OOM, a lost host) takes the requests it was handling with it,
 * and core NATS tells nobody: without a hedge the client waits the whole REQUEST_TIMEOUT_MS for an
 * `unavailable`. With one, the request is sent again, to whichever worker the queue group picks,
 * after `hedgeMs` without an answer, or at once when NATS answers that nobody serves the subject
 * (a cluster failover: the workers' subscriptions are not on this server yet). The first answer
 * wins; the other is ignored. Both attempts share the first one's deadline, so a request still
 * settles within `timeoutMs` and never hangs.
 *
 * Repeating is harmless only because the workers make it so: a publish is stored once per
 * (user, cid) and a duplicate answers with the stored seq (gateways drop a room event whose seq
 * they already delivered); presence is keyed by session, so a second join of the same session
 * changes nothing; history and presence only read.
 *
 * Cost: one entry per hedgeable request in flight, and one interval timer for all of them that
 * runs only while some are waiting. Entries are kept in send order, so a tick looks at the due
 * ones and stops at the first that is not.
 */
import { BusError, type Bus } from '../shared/bus.ts';
import { Tally } from '../shared/metrics.ts';

interface Attempted {
  readonly data: Uint8Array;
  readonly at: number;
  resolve: (answer: Uint8Array) => void;
  reject: (err: unknown) => void;
  /** Attempts sent and not failed yet. */
  outstanding: number;
  hedged: boolean;
  settled: boolean;
}

export type HedgeReason = 'delay' | 'no_responders';

export class Hedger {
  /** Hedges sent, by reason; only grows (read by the metrics scrape). */
  readonly hedges = new Tally();
  /** Requests whose answer came from the hedge rather than the first attempt. */
  wonByHedge = 0;
  readonly #waiting = new Set<Attempted>();
  #timer: NodeJS.Timeout | undefined;
  readonly #tickMs: number;

  constructor(
    private readonly bus: Bus,
    private readonly subject: string,
    private readonly hedgeMs: number,
    private readonly timeoutMs: number,
  ) {
    // A hedge goes out between hedgeMs and hedgeMs + tick after its request.
    this.#tickMs = Math.max(20, Math.min(100, Math.floor(hedgeMs / 5)));
  }

  /** A request that may be sent twice; hedging off (hedgeMs 0): a plain request. */
  request(data: Uint8Array): Promise<Uint8Array> {
    if (this.hedgeMs <= 0) return this.bus.request(this.subject, data, this.timeoutMs);
    return new Promise<Uint8Array>((resolve, reject) => {
      const a: Attempted = { data, at: performance.now(), resolve, reject, outstanding: 0, hedged: false, settled: false };
      this.#waiting.add(a);
      this.#send(a, this.timeoutMs, false);
      this.#timer ??= setInterval(this.#tick, this.#tickMs);
      this.#timer.unref();
    });
  }

  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  readonly #tick = (): void => {
    const now = performance.now();
    for (const a of this.#waiting) {
      if (now - a.at < this.hedgeMs) break;
      this.#hedge(a, 'delay');
    }
    if (this.#waiting.size === 0) this.close();
  };

  #hedge(a: Attempted, reason: HedgeReason): void {
    this.#waiting.delete(a);
    if (a.settled || a.hedged) return;
    a.hedged = true;
    const left = this.timeoutMs - (performance.now() - a.at);
    if (left < 1) return this.#fail(a, new BusError('timeout', `no answer on ${this.subject} within ${this.timeoutMs} ms`));
    this.hedges.add(reason);
    this.#send(a, left, true);
  }

  #send(a: Attempted, timeoutMs: number, isHedge: boolean): void {
    a.outstanding++;
    this.bus.request(this.subject, a.data, timeoutMs).then(
      (answer) => {
        a.outstanding--;
        if (a.settled) return;
        a.settled = true;
        this.#waiting.delete(a);
        if (isHedge) this.wonByHedge++;
        a.resolve(answer);
      },
      (err: unknown) => {
        a.outstanding--;
        if (a.settled) return;
        if (!a.hedged && err instanceof BusError) {
          // Nobody serves the subject on this server right now: try again at once.
          if (err.kind === 'no_responders') return this.#hedge(a, 'no_responders');
          // Our NATS server went away; in a cluster we are back on another within the hedge
          // delay, and the hedge goes out then (or fails at once if we are not).
          if (err.kind === 'disconnected') return;
        }
        if (a.outstanding === 0) this.#fail(a, err);
      },
    );
  }

  #fail(a: Attempted, err: unknown): void {
    if (a.settled) return;
    a.settled = true;
    this.#waiting.delete(a);
    a.reject(err);
  }
}
