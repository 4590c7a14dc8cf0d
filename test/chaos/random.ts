/**
 * Seeded randomness for the chaos scenario: the same seed makes the same choices (who joins which
 * room, when each client publishes, the SDK's reconnect jitter), so a failing run can be replayed
 * with `--seed`. Timing still differs between runs; the seed fixes the choices, not the clock.
 */

/** mulberry32: 32 bits of state, good enough for test choices, and every seed is valid. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A whole number in [min, max]. */
export function between(random: () => number, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}

/** A new seed derived from a generator, for a sub-generator of its own (one per client). */
export function fork(random: () => number): () => number {
  return seeded(Math.floor(random() * 2 ** 32));
}

/** A seed for a run that was given none. */
export function freshSeed(): number {
  return Math.floor(Math.random() * 2 ** 31);
}

/**
 * The seed of a chaos run: `raw` (from `--seed` or `CHAOS_SEED`) when given, a fresh one otherwise.
 * Anything but a whole number is refused, so that a typo never runs with a seed nobody asked for.
 */
export function chaosSeed(raw: string | undefined, from = 'CHAOS_SEED'): number {
  if (raw === undefined || raw === '') return freshSeed();
  if (!/^\d+$/.test(raw) || !Number.isSafeInteger(Number(raw))) throw new Error(`${from}=${JSON.stringify(raw)}: expected a whole number`);
  return Number(raw);
}

/** The value at quantile `q` (0..1) of `values` (nearest rank); undefined when there are none. */
export function quantile(values: readonly number[], q: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}
