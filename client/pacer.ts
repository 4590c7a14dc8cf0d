/**
 * Paces the frames of one connection under the gateway's per-connection request rate (a token
 * bucket: RATE_LIMIT_RPS 20, RATE_LIMIT_BURST 40 by default). A frame over the server's rate is
 * refused (`rate_limited`), and flushing a long offline queue after a reconnect would do exactly
 * that. Frames wait here instead, in order, and go out as the bucket refills. (Refusals that
 * happen anyway are retried after a backoff delay for idempotent requests, see queue.ts.)
 */
export interface PaceOptions {
  /** Frames per second, sustained. */
  perSecond: number;
  /** Frames that may go out at once after a quiet period. */
  burst: number;
}

export const DEFAULT_PACE: PaceOptions = { perSecond: 16, burst: 32 };

export class Pacer {
  #tokens: number;
  #last = Date.now();
  #waiting: string[] = [];
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly opts: PaceOptions,
    private readonly write: (data: string) => void,
  ) {
    this.#tokens = opts.burst;
  }

  /** Frames waiting for their turn. */
  get waiting(): number {
    return this.#waiting.length;
  }

  send(data: string): void {
    this.#waiting.push(data);
    this.#pump();
  }

  /** Drops what waits (the connection is gone; the requests are put back or failed elsewhere). */
  stop(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#waiting = [];
  }

  #pump(): void {
    const now = Date.now();
    this.#tokens = Math.min(this.opts.burst, this.#tokens + ((now - this.#last) / 1000) * this.opts.perSecond);
    this.#last = now;
    while (this.#waiting.length > 0 && this.#tokens >= 1) {
      this.#tokens--;
      this.write(this.#waiting.shift()!);
    }
    if (this.#waiting.length > 0 && this.#timer === undefined) {
      this.#timer = setTimeout(
        () => {
          this.#timer = undefined;
          this.#pump();
        },
        Math.ceil(((1 - this.#tokens) / this.opts.perSecond) * 1000),
      );
    }
  }
}
