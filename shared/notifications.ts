/**
 * Notifications per user. Implementations: `notifications-memory.ts`, `notifications-redis.ts`;
 * contract: `test/contract/notifications.test.ts`.
 *
 * Per user, newest first, at most `notificationsMax` (the oldest are dropped past it), expiring
 * `notificationsTtlMs` after the user's last new notification. The unread count is exact and
 * read in O(1).
 *
 * Order: by `ts` (to the millisecond), newest first; equal `ts` by id, the higher (by code point)
 * first. "Oldest" for the cap is the other end of the same order, so a notification older than
 * all of a full user's is dropped as it is added. Expiry: an add that stores something restarts
 * the user's TTL; duplicates, lists and reads never do, and reads never bring an expired user
 * back. Each single-user step (one user's add, a list, a read) is atomic.
 */
export interface Notifications {
  /**
   * Stores notifications for many users at once (a bulk send to 10,000 users is a handful of
   * round trips, not 10,000) and returns each user's unread count after the add, in input order.
   * Adding a notification whose id the user already has changes nothing (content, read state and
   * expiry stay): so a retry is harmless. A new notification is unread whatever its `read` says.
   * A user may appear several times; the items are applied in order ([a, b, a] with new ids
   * gives [1, 1, 2] for empty users). An item whose `ts` is not a date rejects the call before
   * anything is stored. Failure: a rejected call (`unavailable`) may have stored the notifications
   * of some users and not of others; retry the whole call with the same ids.
   */
  notificationsAdd(items: { userId: string; notification: StoredNotification }[]): Promise<number[]>;

  /**
   * The user's latest `limit` notifications, newest first (`unreadOnly`: the latest `limit` unread
   * ones, however many read ones are newer), each with `read`, and the unread count. A user with
   * none (never had any, or expired) gets `{ items: [], unread: 0 }`.
   */
  notificationsList(userId: string, query: { limit: number; unreadOnly?: boolean }): Promise<{ items: StoredNotification[]; unread: number }>;

  /**
   * Marks notifications read: the given ids (unknown ones are ignored) or all of them. `changed`
   * lists the ids that were unread before this call; `unread` is the count after it.
   * `changed` holds each id once, in the order given (with `all`: in no particular order); an
   * empty `changed` means nothing changed, so there is nothing to tell the user's other connections.
   */
  notificationsRead(userId: string, which: { ids: string[] } | { all: true }): Promise<{ changed: string[]; unread: number }>;

  /** The user's unread count (0 for a user without notifications), in O(1). */
  notificationsUnread(userId: string): Promise<number>;
}

export type NotificationKind = 'info' | 'success' | 'warning' | 'error';

/** A notification as stored and as sent to clients (`notification.notification`). */
export interface StoredNotification {
  id: string;
  kind: NotificationKind;
  title: string;
  body: string;
  url?: string;
  /** ISO 8601. */
  ts: string;
  read: boolean;
}

/** A notification as stored: everything but `read`, which is membership of the unread set. */
export type NotificationBody = Omit<StoredNotification, 'read'>;

/**
 * The stored fields of a notification, always built the same way (same keys, same order) so both
 * stores return equal objects; anything else the caller's object carries is not stored.
 */
export function notificationBody(n: StoredNotification): NotificationBody {
  return { id: n.id, kind: n.kind, title: n.title, body: n.body, ...(n.url !== undefined ? { url: n.url } : {}), ts: n.ts };
}

/** The time a notification is ordered by: `ts` in ms. A `ts` that is not a date is a caller's bug. */
export function notificationTime(n: StoredNotification): number {
  const at = Date.parse(n.ts);
  if (!Number.isFinite(at)) throw new RangeError(`notification ${JSON.stringify(n.id)}: ts is not a date: ${JSON.stringify(n.ts)}`);
  return at;
}

/** A list `limit` as a whole number ≥ 0 (NaN: 0; Infinity: everything). */
export function listLimit(limit: number): number {
  return Math.max(0, Math.min(Math.floor(limit) || 0, 2 ** 31 - 1));
}
