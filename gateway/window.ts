/**
 * The gateway's in-flight window towards the workers (MAX_IN_FLIGHT_PER_GATEWAY): how many of the
 * clients' requests may wait for an answer at once, and the retry hint of an `overloaded` answer.
 *
 * The window follows the answers: at most what the workers answered in TARGET_ANSWER_MS, smoothed
 * over periods of WINDOW_PERIOD_MS, never below MIN_WINDOW nor above the configured maximum. By
 * Little's law, requests admitted beyond that would only wait in a queue (in NATS, in a worker)
 * and be answered that much later; refused at once, they are sent again after the hint instead.
 * Example: workers answering 4000 requests a second → a window of 1000.
 */
const TARGET_ANSWER_MS = 250;
const MIN_WINDOW = 64;
const WINDOW_PERIOD_MS = 250;
/** Bounds of the retry hint of an `overloaded` answer (ms). */
const MIN_RETRY_AFTER_MS = 5;
const MAX_RETRY_AFTER_MS = 2000;

export class InFlightWindow {
  /** Requests admitted and not answered yet. */
  inFlight = 0;
  private window: number;
  private answeredInPeriod = 0;
  private periodStart = 0;
  private answerRate = 0;
  /**
   * Moving average of the time workers take to answer (ms): about how long a full window takes to
   * turn over, so it is the retry hint (sooner and the retry would be refused again, later and the
   * window would sit idle).
   */
  private answerMs = MIN_RETRY_AFTER_MS;
  /** When the last retry hinted so far is due (the `now` clock of `admit`). */
  private retriesDue = 0;

  /** `max` 0: no window (every request admitted). */
  constructor(private readonly max: number) {
    this.window = max;
  }

  /** Admits a request (counted until `answered`), or says no: the window is full. */
  admit(now: number): boolean {
    if (this.max > 0) {
      if (now - this.periodStart >= WINDOW_PERIOD_MS) this.resize(now);
      if (this.inFlight >= this.window) return false;
    }
    this.inFlight++;
    return true;
  }

  /** A request admitted `ms` ago was answered (or failed). */
  answered(ms: number): void {
    this.inFlight--;
    this.answeredInPeriod++;
    this.answerMs += (ms - this.answerMs) / 64;
  }

  /**
   * The retry hint of a request refused at `now`: about the answer time (the window turns over in
   * that), and after the retries already hinted, one answer apart at the rate workers answer. So
   * the refused come back about as fast as the window frees room, instead of all at once to be
   * refused again: under a steady overload a request is refused about once, not once per answer
   * time it waits.
   */
  retryAfter(now: number): number {
    const perMs = this.answerRate > 0 ? this.answerRate : this.window / Math.max(1, this.answerMs);
    const earliest = now + Math.min(MAX_RETRY_AFTER_MS, Math.max(MIN_RETRY_AFTER_MS, this.answerMs));
    this.retriesDue = Math.min(now + MAX_RETRY_AFTER_MS, Math.max(earliest, this.retriesDue + 1 / perMs));
    return Math.round(this.retriesDue - now);
  }

  private resize(now: number): void {
    const rate = this.periodStart === 0 ? 0 : this.answeredInPeriod / (now - this.periodStart);
    this.answerRate = this.periodStart === 0 ? rate : this.answerRate * 0.5 + rate * 0.5;
    this.answeredInPeriod = 0;
    this.periodStart = now;
    // Idle (or just started): the configured window holds. Stalled (requests out, no answers): the minimum.
    this.window =
      this.answerRate === 0 && this.inFlight === 0 ? this.max : Math.min(this.max, Math.max(MIN_WINDOW, Math.round(this.answerRate * TARGET_ANSWER_MS)));
  }
}
