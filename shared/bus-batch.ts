/**
 * The frames `bus-nats.ts` uses to carry many requests in one NATS message, and many answers in
 * another. A publish in the cluster is a request to a worker and its answer; sent one NATS message
 * each, the per-message costs (nats.js' request bookkeeping, a socket write, the server's routing,
 * the receiver's parse and dispatch) dominate the gateway's and the worker's CPU. Requests made in
 * one event-loop turn to one subject travel together (at most `MAX_BATCH_ENTRIES`), and the answers
 * finished in one turn for one batch travel together.
 *
 * Request batch: entries `[u32 id][u32 length][payload]`, big-endian, back to back.
 * Answer batch:  entries `[u32 id][u8 status][u32 length][payload]`; status 0: the handler's
 *                answer; 1: the handler failed (payload: its message); 2: the server was at its
 *                in-flight limit and did not start the request (payload empty).
 * Payloads are views into the received message, not copies.
 */

export const REQUEST_HEAD = 8;
export const ANSWER_HEAD = 9;

/** Most requests in one batch: keeps a batch's work spread over the queue group's members. */
export const MAX_BATCH_ENTRIES = 16;
/** A batch is sent once it holds this many bytes, well below NATS' default max_payload (1 MiB). */
export const MAX_BATCH_BYTES = 256 * 1024;

export const enum AnswerStatus {
  Ok = 0,
  HandlerFailed = 1,
  Overloaded = 2,
}

/** Bytes being gathered into one batch, growing by doubling. */
export class BatchWriter {
  #buf: Uint8Array;
  #view: DataView;
  #len = 0;
  entries = 0;

  constructor(initial = 4096) {
    this.#buf = new Uint8Array(initial);
    this.#view = new DataView(this.#buf.buffer);
  }

  get size(): number {
    return this.#len;
  }

  request(id: number, payload: Uint8Array): void {
    this.#reserve(REQUEST_HEAD + payload.length);
    this.#view.setUint32(this.#len, id);
    this.#view.setUint32(this.#len + 4, payload.length);
    this.#buf.set(payload, this.#len + REQUEST_HEAD);
    this.#len += REQUEST_HEAD + payload.length;
    this.entries++;
  }

  answer(id: number, status: AnswerStatus, payload: Uint8Array): void {
    this.#reserve(ANSWER_HEAD + payload.length);
    this.#view.setUint32(this.#len, id);
    this.#view.setUint8(this.#len + 4, status);
    this.#view.setUint32(this.#len + 5, payload.length);
    this.#buf.set(payload, this.#len + ANSWER_HEAD);
    this.#len += ANSWER_HEAD + payload.length;
    this.entries++;
  }

  /** The bytes written (a copy: the message outlives this writer's reuse). */
  take(): Uint8Array {
    const out = this.#buf.slice(0, this.#len);
    this.#len = 0;
    this.entries = 0;
    return out;
  }

  #reserve(n: number): void {
    if (this.#len + n <= this.#buf.length) return;
    let cap = this.#buf.length * 2;
    while (cap < this.#len + n) cap *= 2;
    const next = new Uint8Array(cap);
    next.set(this.#buf.subarray(0, this.#len));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
  }
}

/** Calls `each` for every request of a batch; false when the batch is malformed (the rest is skipped). */
export function readRequests(data: Uint8Array, each: (id: number, payload: Uint8Array) => void): boolean {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let at = 0;
  while (at < data.length) {
    if (at + REQUEST_HEAD > data.length) return false;
    const id = view.getUint32(at);
    const len = view.getUint32(at + 4);
    const start = at + REQUEST_HEAD;
    if (start + len > data.length) return false;
    each(id, data.subarray(start, start + len));
    at = start + len;
  }
  return true;
}

/** Calls `each` for every answer of a batch; false when the batch is malformed (the rest is skipped). */
export function readAnswers(data: Uint8Array, each: (id: number, status: AnswerStatus, payload: Uint8Array) => void): boolean {
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  let at = 0;
  while (at < data.length) {
    if (at + ANSWER_HEAD > data.length) return false;
    const id = view.getUint32(at);
    const status = view.getUint8(at + 4) as AnswerStatus;
    const len = view.getUint32(at + 5);
    const start = at + ANSWER_HEAD;
    if (start + len > data.length) return false;
    each(id, status, data.subarray(start, start + len));
    at = start + len;
  }
  return true;
}
