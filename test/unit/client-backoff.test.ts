/**
 * Backoff with full jitter: every wait lies in [0, min(cap, base · 2^attempt)), the ceiling grows
 * exponentially up to the cap, and the waits are spread over the whole window.
 */
import fc from 'fast-check';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { backoffCeiling, backoffDelay, DEFAULT_BACKOFF, RtClient, type StateChange } from '../../client/index.ts';
import { FakeWebSocket } from '../harness/fake-websocket.ts';

describe('backoffDelay', () => {
  it('the default policy: base 0.5 s, cap 30 s', () => {
    expect(DEFAULT_BACKOFF).toEqual({ baseMs: 500, capMs: 30_000 });
    expect([0, 1, 2, 3, 4, 5, 6, 7, 50, 5000].map((a) => backoffCeiling(a))).toEqual([
      500, 1000, 2000, 4000, 8000, 16_000, 30_000, 30_000, 30_000, 30_000,
    ]);
  });

  it('stays within [0, min(cap, base · 2^attempt)) for every attempt and random value', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2000 }),
        fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }),
        fc.integer({ min: 1, max: 10_000 }),
        fc.integer({ min: 1, max: 600_000 }),
        (attempt, r, baseMs, capMs) => {
          const d = backoffDelay(attempt, { baseMs, capMs }, () => r);
          const ceiling = Math.min(capMs, baseMs * 2 ** attempt);
          return Number.isInteger(d) && d >= 0 && d < ceiling;
        },
      ),
    );
  });

  it('full jitter spreads the waits over the whole window (not bunched at its edges)', () => {
    const delays = Array.from({ length: 2000 }, () => backoffDelay(10));
    const buckets = [0, 0, 0, 0];
    for (const d of delays) buckets[Math.floor(d / 7500)]!++;
    // Each quarter of [0, 30 s) gets a fair share (expected 500 each; 350 is > 7 sigma away).
    for (const b of buckets) expect(b).toBeGreaterThan(350);
  });
});

describe('reconnect delays of the client', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    FakeWebSocket.reset();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('use the configured base and cap, within the jitter bounds', async () => {
    const baseMs = 100;
    const capMs = 3000;
    const client = new RtClient({ url: 'ws://gw.test/ws', username: 'ann', WebSocket: FakeWebSocket, reconnect: { baseMs, capMs } });
    const states: StateChange[] = [];
    client.on('state', (s) => states.push(s));
    const connected = client.connect().catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(0);
    for (let i = 0; i < 40; i++) {
      FakeWebSocket.last.serverClose(1006);
      const s = states.at(-1)!;
      expect(s.state).toBe('reconnecting');
      expect(s.delayMs).toBeGreaterThanOrEqual(0);
      expect(s.delayMs).toBeLessThan(Math.min(capMs, baseMs * 2 ** i));
      expect(s.retryAt).toBe(Date.now() + s.delayMs!);
      await vi.advanceTimersByTimeAsync(s.delayMs!);
    }
    expect(FakeWebSocket.instances).toHaveLength(41);
    client.close();
    expect(await connected).toMatchObject({ code: 'closed' });
  });
});
