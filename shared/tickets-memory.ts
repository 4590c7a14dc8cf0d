import { ExpiringMap, type MemoryContext } from './expiring-map.ts';
import type { Tickets } from './tickets.ts';

/** Tickets in this process (the embedded mode). */
export class TicketsMemory implements Tickets {
  private readonly tickets = new ExpiringMap<string, { data: string; expiresAt: number }>();

  constructor(private readonly ctx: MemoryContext) {}

  async ticketPut(ticket: string, data: string, ttlMs: number): Promise<void> {
    this.ctx.assertOpen();
    this.tickets.set(ticket, { data, expiresAt: this.ctx.clock.now() + ttlMs });
  }

  async ticketTake(ticket: string): Promise<string | undefined> {
    this.ctx.assertOpen();
    const t = this.tickets.get(ticket, this.ctx.clock.now());
    this.tickets.delete(ticket);
    return t?.data;
  }

  sweep(now: number): void {
    this.tickets.sweep(now);
  }

  clear(): void {
    this.tickets.clear();
  }

  /** What is held, for tests. */
  get size(): { tickets: number } {
    return { tickets: this.tickets.size };
  }
}
