import type { RedisConnection } from './redis-connection.ts';
import type { Tickets } from './tickets.ts';

/**
 * Tickets on Redis: `<p>{k}:ticket:<ticket>`, a string with the ticket's TTL. GETDEL (Redis ≥ 6.2)
 * reads and deletes in one step, so a ticket is taken once.
 */
export class TicketsRedis implements Tickets {
  constructor(private readonly conn: RedisConnection) {}

  async ticketPut(ticket: string, data: string, ttlMs: number): Promise<void> {
    await this.conn.call(this.conn.redis.set(this.key(ticket), data, 'PX', Math.max(1, Math.floor(ttlMs))));
  }

  async ticketTake(ticket: string): Promise<string | undefined> {
    const data = await this.conn.call(this.conn.redis.getdel(this.key(ticket)));
    return data ?? undefined;
  }

  private key(ticket: string): string {
    return `${this.conn.prefix}{k}:ticket:${ticket}`;
  }
}
