/**
 * One-time tickets (`POST /api/tickets`): a short-lived secret that stands for credentials once.
 * Implementations: `tickets-memory.ts`, `tickets-redis.ts`; contract: `test/contract/tickets.test.ts`.
 */
export interface Tickets {
  /** Stores a one-time ticket with its data for `ttlMs`. */
  ticketPut(ticket: string, data: string, ttlMs: number): Promise<void>;

  /**
   * Takes a ticket atomically: its data the first time, undefined when it is unknown, expired or
   * already taken — also when two gateways take it at the same moment (exactly one gets it).
   */
  ticketTake(ticket: string): Promise<string | undefined>;
}
