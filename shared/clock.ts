/**
 * Time as the in-memory stores see it. Production uses the system clock; tests use a manual clock
 * and move it forward, so expiry is tested without sleeping and without timing slop.
 * (The Redis stores measure time on the Redis server, in their scripts.)
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/** A clock that moves only when told to. */
export class ManualClock implements Clock {
  constructor(private at = Date.now()) {}

  now(): number {
    return this.at;
  }

  /** Moves the clock forward by `ms` (never back: expiries only pass). */
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`a clock only moves forward, got ${ms}`);
    this.at += ms;
  }
}
