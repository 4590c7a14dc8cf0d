/**
 * Waiting in tests: on a condition, with a deadline, never for a fixed time.
 *
 * - `until` polls a probe until it gives a value (anything but `undefined`, `false` or `null`), and
 *   fails naming what it waited for when the deadline passes.
 * - `Inbox` queues what arrives (frames, SSE events) for tests to take in order, each `next` waiting
 *   for the first matching item that is queued or still to come.
 * - `elapse` lets time pass, for the tests whose subject is time itself (a TTL runs out, a gateway
 *   stays silent past its timeout) and where probing would change what is tested. Never use it to
 *   wait for something to happen.
 */

export interface UntilOptions {
  /** Fail after this long; 5000 ms unless given. */
  timeoutMs?: number;
  /** Poll interval; 10 ms unless given. */
  intervalMs?: number;
}

/** Polls `probe` until it returns a value; that value, or an error naming `what` after the deadline. */
export async function until<T>(
  what: string,
  probe: () => T | undefined | false | null | Promise<T | undefined | false | null>,
  opts: UntilOptions | number = {},
): Promise<T> {
  const { timeoutMs = 5000, intervalMs = 10 } = typeof opts === 'number' ? { timeoutMs: opts } : opts;
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined && v !== false && v !== null) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Lets `ms` of time pass (see above: only when time itself is the condition). */
export function elapse(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

interface Waiter<T> {
  pred: (item: T) => boolean;
  resolve: (item: T) => void;
  reject: (err: Error) => void;
  timer: NodeJS.Timeout;
}

/** Items in arrival order, taken by predicate; a waiter gets an item the moment it arrives. */
export class Inbox<T> {
  /** Received and not taken yet, oldest first. */
  readonly items: T[] = [];
  #waiters: Waiter<T>[] = [];
  #ended: (() => Error) | undefined;

  constructor(
    /** How an item is shown in a timeout's message. */
    private readonly show: (items: readonly T[]) => string = (items) => JSON.stringify(items).slice(0, 500),
  ) {}

  push(item: T): void {
    const i = this.#waiters.findIndex((w) => w.pred(item));
    if (i < 0) {
      this.items.push(item);
      return;
    }
    const [w] = this.#waiters.splice(i, 1);
    clearTimeout(w!.timer);
    w!.resolve(item);
  }

  /** No more items will come: the waiters, and every later `next` that finds nothing queued, fail with `err()`. */
  end(err: () => Error): void {
    this.#ended = err;
    for (const w of this.#waiters.splice(0)) {
      clearTimeout(w.timer);
      w.reject(err());
    }
  }

  /** The first matching item, queued or coming; it is taken off the queue. */
  next(pred: (item: T) => boolean = () => true, timeoutMs = 5000): Promise<T> {
    const i = this.items.findIndex(pred);
    if (i >= 0) return Promise.resolve(this.items.splice(i, 1)[0]!);
    if (this.#ended) return Promise.reject(this.#ended());
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w.timer !== timer);
        reject(new Error(`nothing matching within ${timeoutMs} ms; queued: ${this.show(this.items)}`));
      }, timeoutMs);
      this.#waiters.push({ pred, resolve, reject, timer });
    });
  }

  /** The next `n` matching items in arrival order, all within `timeoutMs`. */
  async take(pred: (item: T) => boolean, n: number, timeoutMs = 10_000): Promise<T[]> {
    const out: T[] = [];
    const deadline = Date.now() + timeoutMs;
    while (out.length < n) out.push(await this.next(pred, Math.max(1, deadline - Date.now())));
    return out;
  }

  /** Matching items in arrival order, up to and including the first for which `last` holds. */
  async takeUntil(pred: (item: T) => boolean, last: (item: T) => boolean, timeoutMs = 10_000): Promise<T[]> {
    const out: T[] = [];
    const deadline = Date.now() + timeoutMs;
    do out.push(await this.next(pred, Math.max(1, deadline - Date.now())));
    while (!last(out.at(-1)!));
    return out;
  }
}
