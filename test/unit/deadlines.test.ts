/** The one-timer deadlines the gateway expires connections with, on Vitest's fake clock. */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Deadlines } from '../../gateway/deadlines.ts';

describe('Deadlines', () => {
  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('fires each item at its deadline, never before, and once', () => {
    const fired: string[] = [];
    const d = new Deadlines<string>((item) => fired.push(`${item}@${Date.now()}`), () => undefined);
    d.add('b', 1_003_000);
    d.add('a', 1_001_000);
    d.add('c', 1_003_000);
    vi.advanceTimersByTime(999);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(1);
    expect(fired).toEqual(['a@1001000']);
    vi.advanceTimersByTime(5_000);
    expect(fired).toEqual(['a@1001000', 'b@1003000', 'c@1003000']);
    expect(d.size).toBe(0);
  });

  it('rounds a deadline within a second up, so an item is late by under a second, never early', () => {
    const fired: number[] = [];
    const d = new Deadlines<string>(() => fired.push(Date.now()), () => undefined);
    d.add('x', 1_000_001);
    vi.advanceTimersByTime(998);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(10);
    expect(fired).toEqual([1_001_000]);
  });

  it('a cancelled item does not fire; a moved one fires at its new deadline only', () => {
    const fired: string[] = [];
    const d = new Deadlines<string>((item) => fired.push(item), () => undefined);
    const a = d.add('a', 1_002_000);
    const b = d.add('b', 1_002_000);
    d.cancel('a', a);
    d.cancel('b', b);
    const b2 = d.add('b', 1_600_000);
    vi.advanceTimersByTime(10_000);
    expect(fired).toEqual([]);
    expect(d.size).toBe(1);
    vi.advanceTimersByTime(600_000);
    expect(fired).toEqual(['b']);
    d.cancel('b', b2);
  });

  it('an earlier deadline added later re-arms the timer for it', () => {
    const fired: string[] = [];
    const d = new Deadlines<string>((item) => fired.push(item), () => undefined);
    d.add('late', 1_900_000);
    d.add('soon', 1_002_000);
    vi.advanceTimersByTime(2_000);
    expect(fired).toEqual(['soon']);
  });

  it('a deadline beyond what one timer can wait is reached by re-arming', () => {
    const fired: string[] = [];
    const d = new Deadlines<string>((item) => fired.push(item), () => undefined);
    const far = 1_000_000 + 2 ** 31 + 5_000;
    d.add('far', far);
    vi.advanceTimersByTime(2 ** 31 - 1);
    expect(fired).toEqual([]);
    vi.advanceTimersByTime(10_000);
    expect(fired).toEqual(['far']);
  });

  it('an item whose callback throws is reported, and the others still fire', () => {
    const fired: string[] = [];
    const failures: unknown[] = [];
    const d = new Deadlines<string>(
      (item) => {
        if (item === 'bad') throw new Error('boom');
        fired.push(item);
      },
      (err) => failures.push(err),
    );
    d.add('bad', 1_001_000);
    d.add('good', 1_001_000);
    vi.advanceTimersByTime(1_000);
    expect(fired).toEqual(['good']);
    expect(failures).toHaveLength(1);
  });
});
