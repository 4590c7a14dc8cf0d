import type { Conversations } from './conversations.ts';
import type { History } from './history.ts';
import type { Notifications } from './notifications.ts';
import type { Presence } from './presence.ts';
import type { Sessions } from './sessions.ts';
import type { Tickets } from './tickets.ts';
import type { Typing } from './typing.ts';

/**
 * Durable state, one port per concern, each in its own file with its contract:
 * `history.ts` (room history with sequence numbers and epochs), `conversations.ts` (each user's
 * conversations and read cursors), `presence.ts`, `sessions.ts`
 * (sessions and gateway liveness), `typing.ts`, `notifications.ts`, `tickets.ts`. Every port has an
 * in-memory implementation (`<port>-memory.ts`, the embedded mode) and a Redis one
 * (`<port>-redis.ts`, one Lua script per atomic step); both pass the same contract suite
 * (`test/contract/<port>.test.ts`), so the embedded mode behaves as the cluster does.
 *
 * The ports are made together, as one `Stores` bundle (`memoryStores()` in `stores-memory.ts`,
 * `redisStores()` in `stores-redis.ts`): they share a backend (one Redis connection and its
 * scripts; one clock), and history and presence share one notion of a room: a room without
 * messages keeps its epoch only while it has members.
 */
export interface Stores {
  history: History;
  conversations: Conversations;
  presence: Presence;
  sessions: Sessions;
  typing: Typing;
  notifications: Notifications;
  tickets: Tickets;
  /** Resolves when the backend answers. */
  ping(): Promise<void>;
  /** Closes the backend; every call after it rejects. */
  close(): Promise<void>;
}

export interface StoreOptions {
  /** Messages kept per room (default 1000). */
  historyMax: number;
  /** Notifications kept per user (default 500). */
  notificationsMax: number;
  /** How long a user's notifications live after the last new one (default 30 days). */
  notificationsTtlMs: number;
  /**
   * How long a room's history lives after its last message (default 24 h); also the safety-net
   * lifetime of a room's presence after its last add, for connections nobody removed.
   */
  historyTtlMs: number;
  /** How long a publish's client message id is remembered (default 10 min). */
  dedupeTtlMs: number;
}

export const defaultStoreOptions: StoreOptions = {
  historyMax: 1000,
  notificationsMax: 500,
  notificationsTtlMs: 30 * 24 * 3600_000,
  historyTtlMs: 24 * 3600_000,
  dedupeTtlMs: 10 * 60_000,
};

/** The defaults with `opts` over them; rejects values that make the limits meaningless (a cap of 0, a negative TTL). */
export function storeOptions(opts: Partial<StoreOptions> = {}): StoreOptions {
  const o = { ...defaultStoreOptions, ...opts };
  for (const k of ['historyMax', 'historyTtlMs', 'dedupeTtlMs', 'notificationsMax', 'notificationsTtlMs'] as const) {
    if (!Number.isSafeInteger(o[k]) || o[k] < 1) throw new RangeError(`store option ${k} must be a whole number ≥ 1, got ${o[k]}`);
  }
  return o;
}

/** The order every store returns ids and rooms in: by UTF-16 code unit, not locale-dependent. */
export function byCodeUnit(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
