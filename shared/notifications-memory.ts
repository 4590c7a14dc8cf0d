import { ExpiringMap, type MemoryContext } from './expiring-map.ts';
import { listLimit, notificationBody, notificationTime, type NotificationBody, type Notifications, type StoredNotification } from './notifications.ts';
import type { StoreOptions } from './stores.ts';

/**
 * Notifications in this process (the embedded mode): a user keeps at most `notificationsMax` (the
 * oldest by `ts` are dropped), all of them gone `notificationsTtlMs` after the last add that stored
 * one, in the order Redis keeps them (see `byAge`).
 */
export class NotificationsMemory implements Notifications {
  private readonly users = new ExpiringMap<string, UserNotifications>();

  constructor(
    private readonly ctx: MemoryContext,
    private readonly opts: Pick<StoreOptions, 'notificationsMax' | 'notificationsTtlMs'>,
  ) {}

  async notificationsAdd(items: { userId: string; notification: StoredNotification }[]): Promise<number[]> {
    this.ctx.assertOpen();
    // Checked first: a bad item rejects the call before anything is stored.
    const bodies = items.map(({ notification }) => ({ body: notificationBody(notification), at: notificationTime(notification) }));
    const now = this.ctx.clock.now();
    return items.map(({ userId }, i) => {
      const { body, at } = bodies[i]!;
      let u = this.users.get(userId, now);
      if (u?.byId.has(body.id)) return u.unread.size;
      u ??= this.users.set(userId, { byId: new Map(), order: [], unread: new Set(), expiresAt: 0 });
      u.byId.set(body.id, body);
      insertOrdered(u.order, { id: body.id, at });
      u.unread.add(body.id);
      const over = u.order.length - this.opts.notificationsMax;
      if (over > 0) {
        for (const { id } of u.order.splice(0, over)) {
          u.byId.delete(id);
          u.unread.delete(id);
        }
      }
      u.expiresAt = now + this.opts.notificationsTtlMs;
      return u.unread.size;
    });
  }

  async notificationsList(userId: string, query: { limit: number; unreadOnly?: boolean }): Promise<{ items: StoredNotification[]; unread: number }> {
    this.ctx.assertOpen();
    const u = this.users.get(userId, this.ctx.clock.now());
    if (!u) return { items: [], unread: 0 };
    const limit = listLimit(query.limit);
    const items: StoredNotification[] = [];
    for (let i = u.order.length - 1; i >= 0 && items.length < limit; i--) {
      const { id } = u.order[i]!;
      const read = !u.unread.has(id);
      if (read && query.unreadOnly) continue;
      items.push({ ...u.byId.get(id)!, read });
      // Every unread one found: what is left is read.
      if (query.unreadOnly && items.length === u.unread.size) break;
    }
    return { items, unread: u.unread.size };
  }

  async notificationsRead(userId: string, which: { ids: string[] } | { all: true }): Promise<{ changed: string[]; unread: number }> {
    this.ctx.assertOpen();
    const u = this.users.get(userId, this.ctx.clock.now());
    if (!u) return { changed: [], unread: 0 };
    let changed: string[];
    if ('all' in which) {
      changed = [...u.unread];
      u.unread.clear();
    } else {
      changed = which.ids.filter((id) => u.unread.delete(id));
    }
    return { changed, unread: u.unread.size };
  }

  async notificationsUnread(userId: string): Promise<number> {
    this.ctx.assertOpen();
    return this.users.get(userId, this.ctx.clock.now())?.unread.size ?? 0;
  }

  sweep(now: number): void {
    this.users.sweep(now);
  }

  clear(): void {
    this.users.clear();
  }

  /** What is held, for tests. */
  get size(): { notifications: number } {
    return { notifications: this.users.size };
  }
}

interface UserNotifications {
  /** The notifications without `read`, by id (Redis: `nitems`). */
  byId: Map<string, NotificationBody>;
  /** Oldest first, in the order of the Redis zset `norder`: see `byAge`. */
  order: { id: string; at: number }[];
  /** Ids not read yet (Redis: `nunread`): its size is the unread count. */
  unread: Set<string>;
  expiresAt: number;
}

/**
 * The order of a user's notifications, oldest first: by time, then by id as Redis orders equal
 * scores in a zset (bytewise on UTF-8, which is code point order, not UTF-16 code unit order).
 */
function byAge(a: { id: string; at: number }, b: { id: string; at: number }): number {
  return a.at - b.at || Buffer.compare(Buffer.from(a.id), Buffer.from(b.id));
}

/** Inserts into an array kept in `byAge` order; a new notification usually goes last, in O(1). */
function insertOrdered(order: { id: string; at: number }[], e: { id: string; at: number }): void {
  const last = order[order.length - 1];
  if (!last || byAge(last, e) < 0) {
    order.push(e);
    return;
  }
  let lo = 0;
  let hi = order.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (byAge(order[mid]!, e) < 0) lo = mid + 1;
    else hi = mid;
  }
  order.splice(lo, 0, e);
}
