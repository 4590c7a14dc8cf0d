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
    expect(w.retryAfterMs).toBe(5);
    for (let i = 0; i < 1000; i++) {
      w.admit(i);
      w.answered(120);
    }
    expect(w.retryAfterMs).toBeGreaterThan(100);
    expect(w.retryAfterMs).toBeLessThanOrEqual(120);
    for (let i = 0; i < 1000; i++) {
      w.admit(i);
      w.answered(60_000);
    }
    expect(w.retryAfterMs).toBe(2000);
  });

  it('max 0: no window', () => {
    const w = new InFlightWindow(0);
    for (let i = 0; i < 10_000; i++) expect(w.admit(i)).toBe(true);
  });
});
