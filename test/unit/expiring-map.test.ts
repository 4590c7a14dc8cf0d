/** The expiring map every in-memory store keeps its data in, on a manual clock. */
import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../shared/clock.ts';
import { ExpiringMap } from '../../shared/expiring-map.ts';

describe('ExpiringMap', () => {
  it('get never returns an expired value: it drops it, and says so once', () => {
    const clock = new ManualClock(1000);
    const dropped: string[] = [];
    const m = new ExpiringMap<string, { v: number; expiresAt: number }>((k) => dropped.push(k));
    m.set('a', { v: 1, expiresAt: 1100 });
    expect(m.get('a', clock.now())?.v).toBe(1);
    clock.advance(99);
    expect(m.get('a', clock.now())?.v).toBe(1);
    clock.advance(1);
    // Expiry is exact: at expiresAt the value is gone.
    expect(m.peek('a')?.v).toBe(1);
    expect(m.get('a', clock.now())).toBeUndefined();
    expect(m.get('a', clock.now())).toBeUndefined();
    expect(dropped).toEqual(['a']);
    expect(m.size).toBe(0);
  });

  it('an expiry pushed back in place is honoured', () => {
    const m = new ExpiringMap<string, { expiresAt: number }>();
    const v = m.set('a', { expiresAt: 10 });
    v.expiresAt = 30;
    expect(m.get('a', 20)).toBe(v);
  });

  it('sweep and delete drop, with onDrop; clear forgets silently', () => {
    const dropped: string[] = [];
    const m = new ExpiringMap<string, { expiresAt: number }>((k) => dropped.push(k));
    m.set('old', { expiresAt: 5 });
    m.set('live', { expiresAt: 50 });
    m.set('gone', { expiresAt: 50 });
    m.sweep(10);
    expect(m.keys()).toEqual(['live', 'gone']);
    expect(m.delete('gone')).toBe(true);
    expect(m.delete('gone')).toBe(false);
    m.clear();
    expect(m.size).toBe(0);
    expect(dropped).toEqual(['old', 'gone']);
  });
});

describe('ManualClock', () => {
  it('moves only forward, and only when told', () => {
    const clock = new ManualClock(500);
    expect(clock.now()).toBe(500);
    clock.advance(250);
    expect(clock.now()).toBe(750);
    expect(() => clock.advance(-1)).toThrow(RangeError);
    expect(clock.now()).toBe(750);
  });
});
