import { listLimit, notificationBody, notificationTime, type NotificationBody, type Notifications, type StoredNotification } from './notifications.ts';
import type { RedisConnection } from './redis-connection.ts';
import type { StoreOptions } from './stores.ts';
import { TurnBatch } from './turn-batch.ts';

/**
 * Notifications on Redis.
 *
 * Keys of user U (U escaped like room names; all three share one TTL, notificationsTtlMs, set by
 * every add that stores a notification, never by reads):
 *   <p>{u:U}:nitems    hash   id → JSON of the notification without `read`     ≤ notificationsMax
 *   <p>{u:U}:norder    zset   id → ts ms (newest = highest; equal ts by id)     ≤ notificationsMax
 *   <p>{u:U}:nunread   set    ids not read yet (⊆ nitems): SCARD is the unread count, `read` in a
 *                             listed notification is "not a member"
 * Each user is in its own slot, so a bulk add cannot be one script: it is one `notifications_add`
 * call per (user, notification), sent in batches of NOTIFICATIONS_PIPELINE commands, one after
 * the other (on one Redis, one pipeline each: 20 round trips for 10,000 users; the connection's
 * `stats.pipelines` counts them; on a Cluster each batch goes to the users' nodes at once). Adds are
 * durable writes: with REDIS_WAIT_REPLICAS each is on the replicas before the call resolves.
 */
export class NotificationsRedis implements Notifications {
  constructor(
    private readonly conn: RedisConnection,
    private readonly opts: Pick<StoreOptions, 'notificationsMax' | 'notificationsTtlMs'>,
  ) {}

  async notificationsAdd(items: { userId: string; notification: StoredNotification }[]): Promise<number[]> {
    const o = this.opts;
    // Everything is checked and encoded before the first pipeline: a bad item stores nothing.
    const calls = items.map(({ userId, notification }) => {
      const k = this.keys(userId);
      const at = notificationTime(notification);
      return { keys: [k.items, k.order, k.unread], args: [notification.id, JSON.stringify(notificationBody(notification)), at, o.notificationsMax, o.notificationsTtlMs] };
    });
    const out: number[] = [];
    for (let i = 0; i < calls.length; i += NOTIFICATIONS_PIPELINE) {
      // Each command succeeds or fails on its own inside a pipeline: the first failure rejects the
      // call (the earlier users have their notification; a retry with the same ids is harmless).
      for (const [err, unread] of await this.conn.pipeline('notifications_add', calls.slice(i, i + NOTIFICATIONS_PIPELINE))) {
        if (err) throw err;
        out.push(unread as number);
      }
    }
    return out;
  }

  async notificationsList(userId: string, query: { limit: number; unreadOnly?: boolean }): Promise<{ items: StoredNotification[]; unread: number }> {
    const k = this.keys(userId);
    const [unread, ...flat] = await this.conn.run<[number, ...(string | number)[]]>('notifications_list', [k.items, k.order, k.unread], [
      listLimit(query.limit), query.unreadOnly ? '1' : '0',
    ]);
    const items: StoredNotification[] = [];
    for (let i = 0; i + 1 < flat.length; i += 2) {
      items.push({ ...(JSON.parse(flat[i] as string) as NotificationBody), read: flat[i + 1] === 1 });
    }
    return { items, unread };
  }

  async notificationsRead(userId: string, which: { ids: string[] } | { all: true }): Promise<{ changed: string[]; unread: number }> {
    const k = this.keys(userId);
    const args = 'all' in which ? ['1'] : ['0', ...which.ids];
    const [unread, ...changed] = await this.conn.run<[number, ...string[]]>('notifications_read', [k.unread], args);
    return { changed, unread };
  }

  /** On one Redis the counts asked for in one turn (a burst of connects) go out as one `unread_many` call. */
  async notificationsUnread(userId: string): Promise<number> {
    if (this.conn.batchable) return this.unreadCounts.add(userId);
    return this.conn.call(this.conn.redis.scard(this.keys(userId).unread));
  }

  private readonly unreadCounts = new TurnBatch<string, number>((userIds) =>
    this.conn.runVariadic<number[]>(
      'unread_many',
      userIds.map((u) => this.keys(u).unread),
      [],
    ),
  );

  private keys(userId: string) {
    const tag = this.conn.userTag(userId);
    return { items: `${tag}:nitems`, order: `${tag}:norder`, unread: `${tag}:nunread` };
  }
}

/** Commands per pipeline of a bulk `notificationsAdd`: few round trips, bounded buffers. */
const NOTIFICATIONS_PIPELINE = 500;
