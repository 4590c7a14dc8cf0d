/** The gateway's in-flight window (gateway/window.ts), driven with explicit times. */
import { describe, expect, it } from 'vitest';
import { InFlightWindow } from '../../gateway/window.ts';

/** Admits until refused at `now`; returns how many were admitted. */
function fill(w: InFlightWindow, now: number): number {
  let n = 0;
  while (w.admit(now)) n++;
  return n;
}

describe('in-flight window', () => {
  it('admits up to the configured maximum while nothing has been answered yet', () => {
    const w = new InFlightWindow(100);
    expect(fill(w, 1)).toBe(100);
    expect(w.admit(2)).toBe(false);
  });

  it('shrinks to what the workers answer in 250 ms, and to 64 while they answer nothing', () => {
    const w = new InFlightWindow(1024);
    expect(fill(w, 1)).toBe(1024);
    // 2 answers a millisecond for the next periods: a window of about 500.
    let t = 1;
    for (let period = 0; period < 6; period++) {
      for (let i = 0; i < 500; i++) w.answered(20);
      t += 250;
      while (w.inFlight < 1024 && w.admit(t));
    }
    w.admit(t + 250);
    expect(w.inFlight).toBeLessThanOrEqual(520);
    expect(w.inFlight).toBeGreaterThanOrEqual(480);
    // Stalled: requests out, no answers in a period: the minimum, for the requests admitted after.
    const stalled = new InFlightWindow(1024);
    expect(fill(stalled, 1)).toBe(1024);
    expect(stalled.admit(300)).toBe(false);
    for (let i = 0; i < 1014; i++) stalled.answered(10);
    expect(fill(stalled, 400)).toBe(54);
    expect(stalled.inFlight).toBe(64);
  });

  it('hints a retry after about the recent answer time, within 5 ms and 2 s', () => {
    const w = new InFlightWindow(10);
    expect(w.retryAfter(0)).toBe(5);
    for (let i = 0; i < 1000; i++) {
      w.admit(i);
      w.answered(120);
    }
    expect(w.retryAfter(10_000)).toBeGreaterThan(100);
    expect(w.retryAfter(20_000)).toBeLessThanOrEqual(120);
    for (let i = 0; i < 1000; i++) {
      w.admit(i);
      w.answered(60_000);
    }
    expect(w.retryAfter(30_000)).toBe(2000);
  });

  it('spreads the retries of many refusals at the rate the workers answer, up to 2 s', () => {
    const w = new InFlightWindow(1000);
    // 4 answers a millisecond, 20 ms each.
    let t = 0;
    for (let period = 0; period < 4; period++) {
      for (let i = 0; i < 1000; i++) {
        w.admit(t);
        w.answered(20);
      }
      t += 250;
    }
    w.admit(t);
    const hints = Array.from({ length: 400 }, () => w.retryAfter(t));
    expect(hints[0]).toBe(20);
    // 400 refused together come back over about 100 ms, in order, not all after 20 ms.
    expect(hints[399]).toBeGreaterThanOrEqual(110);
    expect(hints[399]).toBeLessThanOrEqual(140);
    for (let i = 1; i < hints.length; i++) expect(hints[i]).toBeGreaterThanOrEqual(hints[i - 1]!);
    // Never beyond 2 s, however many wait.
    for (let i = 0; i < 20_000; i++) w.retryAfter(t);
    expect(w.retryAfter(t)).toBe(2000);
    // Once the retries hinted are due, a new refusal is hinted the answer time again.
    expect(w.retryAfter(t + 5_000)).toBe(20);
  });

  it('max 0: no window', () => {
    const w = new InFlightWindow(0);
    for (let i = 0; i < 10_000; i++) expect(w.admit(i)).toBe(true);
  });
});
