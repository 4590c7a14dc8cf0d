/**
 * Exponential backoff with full jitter: the wait before retry number `attempt` (0-based) is uniform
 * in [0, min(cap, base · 2^attempt)). Full jitter spreads the clients of a crashed gateway over the
 * whole window instead of bunching them at its edges, so they do not all come back at once
 * (see "Exponential Backoff And Jitter", AWS Architecture Blog, 2015).
 *
 * Example with base 500 ms and cap 30 s: attempt 0 → [0, 500), 1 → [0, 1000), 2 → [0, 2000), …,
 * 6 and later → [0, 30 000).
 */
export interface BackoffPolicy {
  baseMs: number;
  capMs: number;
}

export const DEFAULT_BACKOFF: BackoffPolicy = { baseMs: 500, capMs: 30_000 };

/** The upper bound of the wait before retry `attempt`. */
export function backoffCeiling(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF): number {
  return Math.min(policy.capMs, policy.baseMs * 2 ** Math.max(0, attempt));
}

/** The wait before retry `attempt`, in whole milliseconds. `random` returns [0, 1), like Math.random. */
export function backoffDelay(attempt: number, policy: BackoffPolicy = DEFAULT_BACKOFF, random: () => number = Math.random): number {
  return Math.floor(random() * backoffCeiling(attempt, policy));
}
