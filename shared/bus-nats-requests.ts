/**
 * The requesting side of the NATS bus (`bus-nats.ts`): this connection's requests, gathered per
 * event-loop turn and subject into one batch message (`bus-batch.ts`) on `<subject>.batch` with the
 * reply subject `<inbox>.<batch number>`, and settled from the answer batches that come back. A
 * request fails on its own deadline (one timer per batch, re-armed for the earliest deadline left),
 * with 'no_responders' when its batch got the server's 503, or all at once through `failAll` when
 * the connection drops or closes.
 */
import { ErrorCode, type Msg, type NatsError } from 'nats';
import type { Logger } from './log.ts';
import { BusError } from './bus.ts';
import { AnswerStatus, BatchWriter, MAX_BATCH_BYTES, MAX_BATCH_ENTRIES, readAnswers } from './bus-batch.ts';

/** Batches of requests to subject S travel on `S.batch`. */
export const BATCH_SUFFIX = '.batch';

/** A request sent (or about to be) and not settled yet. */
interface Waiting {
  resolve(data: Uint8Array): void;
  reject(err: BusError): void;
  /** performance.now() after which it fails with 'timeout'. */
  deadline: number;
  timeoutMs: number;
  subject: string;
  /** Number of the batch it went out in; 0 while it waits to be sent. */
  batch: number;
}

/** Requests to one subject gathered during this turn. */
interface Outgoing {
  writer: BatchWriter;
  ids: number[];
}

/** A batch sent and not fully answered. */
interface SentBatch {
  ids: number[];
  left: number;
  timer: NodeJS.Timeout | undefined;
}

const decoder = new TextDecoder();

export class BatchedRequests {
  /** This connection's requests not settled yet, by id; failed all at once on disconnect or close. */
  readonly #waiting = new Map<number, Waiting>();
  readonly #outgoing = new Map<string, Outgoing>();
  readonly #sent = new Map<number, SentBatch>();
  #nextId = 0;
  #nextBatch = 0;
  #flushScheduled = false;

  /**
   * `unavailable` says why a batch cannot go out now (closed, disconnected), or nothing: asked
   * once per batch, when it is sent (the bus checks each request itself before `request`);
   * `publish` sends a batch with its reply subject.
   */
  constructor(
    private readonly inbox: string,
    private readonly unavailable: (subject: string) => BusError | undefined,
    private readonly publish: (subject: string, data: Uint8Array, reply: string) => void,
    private readonly log: Logger | undefined,
  ) {}

  request(subject: string, data: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    return new Promise<Uint8Array>((resolve, reject) => {
      // Ids are per connection; wrapping after 2^32 requests is harmless (the old one settled long ago).
      this.#nextId = (this.#nextId + 1) >>> 0;
      const id = this.#nextId;
      this.#waiting.set(id, { resolve, reject, deadline: performance.now() + timeoutMs, timeoutMs, subject, batch: 0 });
      let out = this.#outgoing.get(subject);
      if (!out) {
        out = { writer: new BatchWriter(), ids: [] };
        this.#outgoing.set(subject, out);
      }
      out.writer.request(id, data);
      out.ids.push(id);
      if (out.ids.length >= MAX_BATCH_ENTRIES || out.writer.size >= MAX_BATCH_BYTES) this.#sendBatch(subject, out);
      else if (!this.#flushScheduled) {
        this.#flushScheduled = true;
        // The check phase, right after the poll phase that read this turn's client frames.
        setImmediate(this.#flushRequests);
      }
    });
  }

  readonly #flushRequests = (): void => {
    this.#flushScheduled = false;
    for (const [subject, out] of this.#outgoing) if (out.ids.length > 0) this.#sendBatch(subject, out);
  };

  #sendBatch(subject: string, out: Outgoing): void {
    const ids = out.ids;
    out.ids = [];
    const data = out.writer.take();
    const down = this.unavailable(subject);
    if (down) {
      for (const id of ids) this.#settle(id)?.reject(down);
      return;
    }
    this.#nextBatch = (this.#nextBatch + 1) >>> 0;
    const no = this.#nextBatch;
    const batch: SentBatch = { ids, left: ids.length, timer: undefined };
    this.#sent.set(no, batch);
    for (const id of ids) this.#waiting.get(id)!.batch = no;
    this.#armTimeout(no, batch);
    try {
      this.publish(subject + BATCH_SUFFIX, data, `${this.inbox}.${no}`);
    } catch (err) {
      const e = toBusError(err, subject, 0);
      for (const id of ids) this.#settle(id)?.reject(e instanceof BusError ? e : new BusError('disconnected', String(err)));
    }
  }

  /** One timer per batch, at the earliest deadline of its requests still waiting. */
  #armTimeout(no: number, batch: SentBatch): void {
    let first = Infinity;
    for (const id of batch.ids) {
      const w = this.#waiting.get(id);
      if (w && w.batch === no && w.deadline < first) first = w.deadline;
    }
    if (first === Infinity) {
      this.#sent.delete(no);
      return;
    }
    batch.timer = setTimeout(
      () => {
        batch.timer = undefined;
        const now = performance.now();
        for (const id of batch.ids) {
          const w = this.#waiting.get(id);
          if (w && w.batch === no && w.deadline <= now) {
            this.#settle(id);
            w.reject(new BusError('timeout', `no answer on ${w.subject} within ${w.timeoutMs} ms`));
          }
        }
        if (this.#sent.has(no)) this.#armTimeout(no, batch);
      },
      Math.max(1, Math.ceil(first - performance.now())),
    );
  }

  /** Forgets request `id` (and its batch once every request of it is settled); returns it if it was waiting. */
  #settle(id: number): Waiting | undefined {
    const w = this.#waiting.get(id);
    if (!w) return undefined;
    this.#waiting.delete(id);
    const batch = w.batch === 0 ? undefined : this.#sent.get(w.batch);
    if (batch && --batch.left === 0) {
      clearTimeout(batch.timer);
      this.#sent.delete(w.batch);
    }
    return w;
  }

  /** An answer batch (or a 503 status) on this connection's inbox. */
  onAnswers(msg: Msg): void {
    const no = Number(msg.subject.slice(this.inbox.length + 1));
    if (msg.data.length === 0 && msg.headers?.code === 503) {
      const batch = this.#sent.get(no);
      for (const id of batch?.ids ?? []) {
        const w = this.#settle(id);
        w?.reject(new BusError('no_responders', `no responders on ${w.subject}`));
      }
      return;
    }
    const ok = readAnswers(msg.data, (id, status, payload) => {
      const w = this.#settle(id);
      if (!w) return; // timed out already
      if (status === AnswerStatus.Ok) w.resolve(payload);
      else if (status === AnswerStatus.Overloaded) w.reject(new BusError('overloaded', `the server of ${w.subject} is at its in-flight limit`));
      else w.reject(new BusError('handler', `handler failed on ${w.subject}: ${decoder.decode(payload)}`));
    });
    if (!ok) this.log?.warn({ subject: msg.subject }, 'malformed answer batch');
  }

  /** Fails every request not settled yet (the connection dropped or closed). */
  failAll(err: BusError): void {
    const waiting = [...this.#waiting.values()];
    this.#waiting.clear();
    for (const batch of this.#sent.values()) clearTimeout(batch.timer);
    this.#sent.clear();
    for (const out of this.#outgoing.values()) {
      out.ids = [];
      out.writer.take();
    }
    for (const w of waiting) w.reject(err);
  }
}

/** A nats.js error as the BusError it means (timeout, no responders, closed, disconnected); any other error as it is. */
export function toBusError(err: unknown, subject: string, timeoutMs: number): unknown {
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
