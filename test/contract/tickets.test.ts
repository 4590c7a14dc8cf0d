/** The Tickets contract (shared/tickets.ts) on every backend. */
import { describe, it, expect } from 'vitest';
import type { Tickets } from '../../shared/tickets.ts';
import { contract, room } from './harness.ts';

contract('Tickets', (c) => {
  const store = () => c.stores().tickets;
  const twin = () => c.twin().map((s) => s.tickets) as [Tickets, Tickets];

  describe('tickets', () => {
    it('a ticket is taken once, with its data', async () => {
      const s = store();
      const t = `t-${room()}`;
      await s.ticketPut(t, '{"sub":"ann"}', 10_000);
      expect(await s.ticketTake(t)).toBe('{"sub":"ann"}');
      expect(await s.ticketTake(t)).toBeUndefined();
      expect(await s.ticketTake(`unknown-${room()}`)).toBeUndefined();
    });

    it('two takers at once: exactly one gets it', async () => {
      const [a, b] = twin();
      const tickets = Array.from({ length: 20 }, (_, i) => `race-${i}-${room()}`);
      await Promise.all(tickets.map((t) => a.ticketPut(t, t, 10_000)));
      const got = await Promise.all(tickets.flatMap((t) => [a.ticketTake(t), b.ticketTake(t)]));
      expect(got.filter((x) => x !== undefined).sort()).toEqual([...tickets].sort());
    });

    it('an expired ticket is gone', async () => {
      const s = store();
      const t = `exp-${room()}`;
      await s.ticketPut(t, 'x', 50);
      // The condition here is time itself: let the TTL pass.
      await c.pass(150);
      expect(await s.ticketTake(t)).toBeUndefined();
    });
  });
});
