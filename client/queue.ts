/**
 * The requests of one client: those waiting to be sent (made while disconnected, or waiting for a
 * room to be joined again) and those in flight, by id.
 *
 * What callers may rely on:
 * - Requests are sent in the order they were made; a request put back (connection lost while in
 *   flight, or answered `unavailable`) goes back to its place in that order.
 * - Every request settles exactly once: with its answer, or with an RtError — `timeout` after its
 *   own timeout (counted from when it was made, queued time included), `queue_full` at once when
 *   `maxQueue` requests already wait, `disconnected` when the connection was lost while it was in
 *   flight and it is not safe to send twice, or whatever `rejectAll` is given.
 * - A request marked `retry` is sent again, unchanged except for its id, after a connection loss
 *   or an `unavailable` or `rate_limited` answer (after a backoff delay), or an `overloaded` answer
 *   (after the server's `retryAfterMs`, with jitter, so that the refused do not all come back in
 *   the same millisecond). Only idempotent requests are marked so (a publish carries its `cid`).
 *   A request without `retry` fails with the `overloaded` error, which carries `retryAfterMs`.
 * - Internal requests (`sendNow`) are never queued, never retried and have no timeout of their
 *   own: they fail with `disconnected` when the connection goes. The SDK's own bookkeeping (join,
 *   history for gap filling) uses them and starts over after a reconnect.
 */
import { RtError } from './errors.ts';

export type Frame = { type: string; id?: string | number; [k: string]: unknown };

interface Entry {
  readonly order: number;
  readonly frame: Frame;
  readonly room: string | undefined;
  readonly retry: boolean;
  readonly internal: boolean;
  id: number | undefined;
  attempts: number;
  timer: ReturnType<typeof setTimeout> | undefined;
  retryTimer: ReturnType<typeof setTimeout> | undefined;
  resolve(frame: Frame): void;
  reject(err: RtError): void;
}

export interface QueueOptions {
  maxQueue: number;
  /** Wait before sending again after the n-th `unavailable` / `rate_limited` answer (n from 0). */
  retryDelay(attempt: number): number;
  /** Called when a request is back in the waiting list and may be sent. */
  wake(): void;
  /** A number in [0, 1) for the jitter added to an `overloaded` answer's `retryAfterMs`. */
  random?(): number;
}

export interface AddOptions {
  room?: string;
  retry: boolean;
  /** From now, queued time included; `Infinity`: none. */
  timeoutMs: number;
}

export class RequestQueue {
  #waiting: Entry[] = [];
  #inFlight = new Map<number, Entry>();
  /** Answered `unavailable`, `rate_limited` or `overloaded`, waiting out a delay before they wait to be sent again. */
  #backingOff = new Set<Entry>();
  #order = 0;
  #nextId = 0;

  constructor(private readonly opts: QueueOptions) {}

  /** Requests waiting to be sent. */
  get waiting(): number {
    return this.#waiting.length;
  }

  get inFlight(): number {
    return this.#inFlight.size;
  }

  /** A request to send when `takeReady` says so. */
  add(frame: Frame, opts: AddOptions): Promise<Frame> {
    if (this.#waiting.length >= this.opts.maxQueue) {
      return Promise.reject(new RtError('queue_full', `${this.#waiting.length} requests are already waiting to be sent`));
    }
    return new Promise<Frame>((resolve, reject) => {
      const entry: Entry = {
        order: this.#order++,
        frame,
        room: opts.room,
        retry: opts.retry,
        internal: false,
        id: undefined,
        attempts: 0,
        timer: undefined,
        retryTimer: undefined,
        resolve,
        reject,
      };
      entry.timer = timeout(opts.timeoutMs, () => {
        this.#remove(entry);
        entry.reject(new RtError('timeout', `no answer to ${frame.type} within ${opts.timeoutMs} ms`));
      });
      this.#waiting.push(entry);
    });
  }

  /**
   * Takes the waiting requests that `ready` accepts, in order, gives each a fresh id and returns the
   * frames to send. They count as in flight from now on.
   */
  takeReady(ready: (room: string | undefined) => boolean): Frame[] {
    const out: Frame[] = [];
    this.#waiting = this.#waiting.filter((entry) => {
      if (!ready(entry.room)) return true;
      out.push(this.#send(entry));
      return false;
    });
    return out;
  }

  /** An internal request, in flight at once; returns the frame to send and the answer to come. */
  sendNow(frame: Frame): { frame: Frame; answer: Promise<Frame> } {
    let entry!: Entry;
    const answer = new Promise<Frame>((resolve, reject) => {
      entry = {
        order: this.#order++,
        frame,
        room: undefined,
        retry: false,
        internal: true,
        id: undefined,
        attempts: 0,
        timer: undefined,
        retryTimer: undefined,
        resolve,
        reject,
      };
    });
    return { frame: this.#send(entry), answer };
  }

  /**
   * Settles the request an answer (`reply`, `error`, `pong`) belongs to. False when no request in
   * flight has its id (answered already, timed out, or from before a reconnect).
   */
  answer(frame: Frame): boolean {
    if (typeof frame.id !== 'number') return false;
    const entry = this.#inFlight.get(frame.id);
    if (!entry) return false;
    this.#inFlight.delete(frame.id);
    entry.id = undefined;
    if (frame.type !== 'error') {
      this.#settled(entry);
      entry.resolve(frame);
      return true;
    }
    const code = String(frame.code ?? 'internal') as RtError['code'];
    const hint = code === 'overloaded' ? retryAfter(frame) : undefined;
    if ((code === 'unavailable' || code === 'rate_limited' || code === 'overloaded') && entry.retry) {
      // The server's hint, not the exponential backoff: an overload is refused in milliseconds and
      // clears as fast; growing the delay per attempt would leave capacity idle.
      const delay = hint !== undefined ? hint * (1 + (this.opts.random ?? Math.random)() / 2) : this.opts.retryDelay(entry.attempts);
      entry.attempts++;
      this.#backingOff.add(entry);
      entry.retryTimer = setTimeout(() => {
        entry.retryTimer = undefined;
        this.#backingOff.delete(entry);
        this.#putBack(entry);
        this.opts.wake();
      }, delay);
      return true;
    }
    this.#settled(entry);
    entry.reject(new RtError(code, String(frame.message ?? code), hint));
    return true;
  }

  /**
   * The connection is gone: requests in flight marked `retry` wait again (in their place), the
   * others fail with `disconnected`.
   */
  connectionLost(): void {
    const inFlight = [...this.#inFlight.values()];
    this.#inFlight.clear();
    for (const entry of inFlight) {
      entry.id = undefined;
      if (entry.retry) this.#putBack(entry);
      else {
        this.#settled(entry);
        entry.reject(
          new RtError('disconnected', `connection lost with ${entry.frame.type} in flight; it may or may not have been carried out`),
        );
      }
    }
  }

  /** Fails every request, waiting or in flight, with `err`. */
  rejectAll(err: RtError): void {
    const all = [...this.#waiting, ...this.#inFlight.values(), ...this.#backingOff];
    this.#waiting = [];
    this.#inFlight.clear();
    this.#backingOff.clear();
    for (const entry of all) {
      this.#settled(entry);
      entry.reject(err);
    }
  }

  #send(entry: Entry): Frame {
    const id = ++this.#nextId;
    entry.id = id;
    this.#inFlight.set(id, entry);
    return { ...entry.frame, id };
  }

  #putBack(entry: Entry): void {
    let i = this.#waiting.length;
    while (i > 0 && this.#waiting[i - 1]!.order > entry.order) i--;
    this.#waiting.splice(i, 0, entry);
  }

  #remove(entry: Entry): void {
    if (entry.id !== undefined) this.#inFlight.delete(entry.id);
    this.#waiting = this.#waiting.filter((e) => e !== entry);
    this.#backingOff.delete(entry);
    this.#settled(entry);
  }

  #settled(entry: Entry): void {
    if (entry.timer !== undefined) clearTimeout(entry.timer);
    if (entry.retryTimer !== undefined) clearTimeout(entry.retryTimer);
    entry.timer = entry.retryTimer = undefined;
  }
}

/** The `retryAfterMs` of an `overloaded` answer; 100 ms if the server gave none. */
function retryAfter(frame: Frame): number {
  const ms = frame.retryAfterMs;
  return typeof ms === 'number' && Number.isFinite(ms) && ms >= 0 ? Math.min(ms, 60_000) : 100;
}

/**
 * setTimeout for a request timeout: `Infinity` (or anything past what timers can hold, about 24.8
 * days, which setTimeout would turn into 1 ms) means no timer.
 */
export function timeout(ms: number, fn: () => void): ReturnType<typeof setTimeout> | undefined {
  return ms >= 2 ** 31 ? undefined : setTimeout(fn, Math.max(0, ms));
}
