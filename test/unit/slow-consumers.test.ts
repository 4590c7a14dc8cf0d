/**
 * The slow-consumer check (Connections.closeSlow, every 200 ms) looks at a bounded number of
 * sockets per call and goes on where it stopped, so a gateway with many sockets spends bounded
 * time per tick, and every slow socket is still found. The sockets here are stand-ins: only their
 * buffered amount and `end` matter to the check.
 */
import { describe, expect, it } from 'vitest';
import type { Conn } from '../../gateway/conn.ts';
import { Connections, type ConnectionsDeps } from '../../gateway/connections.ts';
import { GatewayStats } from '../../gateway/stats.ts';
import { loadConfig } from '../../shared/config.ts';

function socket(buffered: number) {
  const s = { buffered, checks: 0, ended: [] as number[] };
  const ws = {
    getBufferedAmount: () => {
      s.checks++;
      return s.buffered;
    },
    end: (code: number) => s.ended.push(code),
  };
  return { s, conn: { closed: false, ws } as unknown as Conn };
}

describe('slow-consumer check', () => {
  it('checks at most 4096 sockets per call, resumes where it stopped, and closes each slow one with 1013 once', () => {
    const stats = new GatewayStats();
    const conns = new Connections({ cfg: loadConfig('embedded', {}), stats } as unknown as ConnectionsDeps);
    const all = Array.from({ length: 10_000 }, (_, i) => socket(i % 1000 === 7 ? 10_000_000 : 0));
    for (const { conn } of all) conns.all.add(conn);
    const checks = () => all.reduce((n, { s }) => n + s.checks, 0);

    conns.closeSlow(1_000_000);
    expect(checks()).toBe(4096);
    conns.closeSlow(1_000_000);
    conns.closeSlow(1_000_000);
    // All 10,000 looked at once each over three calls; the ten slow ones closed.
    expect(all.every(({ s }) => s.checks === 1)).toBe(true);
    const closed = all.filter(({ s }) => s.ended.length > 0);
    expect(closed).toHaveLength(10);
    expect(closed.every(({ s }) => s.ended[0] === 1013)).toBe(true);
    expect(stats.slowConsumers).toBe(10);
    // The next sweep starts over, and finds a socket that fell behind since.
    all[3]!.s.buffered = 5_000_000;
    for (let i = 0; i < 3; i++) conns.closeSlow(1_000_000);
    expect(all[3]!.s.ended).toEqual([1013]);
  });
});
