import { systemClock, type Clock } from './clock.ts';
import { ConversationsMemory } from './conversations-memory.ts';
import type { MemoryContext } from './expiring-map.ts';
import { HistoryMemory } from './history-memory.ts';
import { NotificationsMemory } from './notifications-memory.ts';
import { PresenceMemory } from './presence-memory.ts';
import { SessionsMemory } from './sessions-memory.ts';
import { storeOptions, type StoreOptions, type Stores } from './stores.ts';
import { TicketsMemory } from './tickets-memory.ts';
import { TypingMemory } from './typing-memory.ts';

export interface MemoryStoresOptions extends Partial<StoreOptions> {
  /** The clock every deadline is measured on (default: the system clock; tests move a manual one). */
  clock?: Clock;
}

/** The in-memory bundle, with its implementations reachable (for tests: `size`). */
export interface MemoryStores extends Stores {
  history: HistoryMemory;
  conversations: ConversationsMemory;
  presence: PresenceMemory;
  sessions: SessionsMemory;
  typing: TypingMemory;
  notifications: NotificationsMemory;
  tickets: TicketsMemory;
  /** What is held, per collection, for tests: a room nobody uses must cost nothing. */
  readonly size: Record<string, number>;
}

/**
 * The stores of the embedded mode: everything in this process, lost when it exits. They keep the
 * promises of the Redis stores (the contract suite runs against both), limits included. Expiry is
 * checked on every access, so results are exact; an unref'd periodic sweep frees what is never
 * accessed again. Every method runs synchronously to completion inside its promise, which is what
 * makes each one atomic here.
 */
export function memoryStores(opts: MemoryStoresOptions = {}): MemoryStores {
  const { clock = systemClock, ...rest } = opts;
  const o = storeOptions(rest);
  let closed = false;
  const ctx: MemoryContext = {
    clock,
    assertOpen() {
      if (closed) throw new Error('store closed');
    },
  };
  // History and presence share the notion of a room: a room without messages keeps its epoch only
  // while it has members.
  const presence: PresenceMemory = new PresenceMemory(ctx, { ttlMs: o.historyTtlMs }, (room) => history.forgetIfEmpty(room));
  const history: HistoryMemory = new HistoryMemory(ctx, o, (room) => presence.has(room));
  const conversations = new ConversationsMemory(ctx, o);
  const sessions = new SessionsMemory(ctx);
  const typing = new TypingMemory(ctx);
  const notifications = new NotificationsMemory(ctx, o);
  const tickets = new TicketsMemory(ctx);
  const all = [history, conversations, presence, sessions, typing, notifications, tickets];

  // Often enough that expired rooms do not pile up, rarely enough to cost nothing when idle.
  const every = Math.min(60_000, Math.max(1000, Math.min(o.historyTtlMs, o.dedupeTtlMs, o.notificationsTtlMs)));
  const sweeper = setInterval(() => {
    const now = clock.now();
    for (const s of all) s.sweep(now);
  }, every);
  sweeper.unref();

  return {
    history,
    conversations,
    presence,
    sessions,
    typing,
    notifications,
    tickets,
    get size() {
      return Object.assign({}, ...all.map((s) => s.size)) as Record<string, number>;
    },
    async ping() {
      ctx.assertOpen();
    },
    async close() {
      closed = true;
      clearInterval(sweeper);
      for (const s of all) s.clear();
    },
  };
}
