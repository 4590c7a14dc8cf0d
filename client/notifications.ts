/**
 * The user's notifications as the SDK keeps them: the unread count (from `welcome`, every listing,
 * every `notifications.read` answer and event) and the `notification`/`notifications.read`/`unread`
 * events. RtClient owns one; `client.notifications` is its public face.
 */
import type { Frame } from './queue.ts';
import type { ClientEvents, Notification, NotificationEvent, NotificationsReadEvent } from './types.ts';

/** What the notifications need from their client. Not part of the public API. */
export interface NotificationHost {
  request(frame: Frame, opts: { retry: boolean; timeoutMs?: number }): Promise<Frame>;
  emit<K extends 'notification' | 'notifications.read' | 'unread'>(event: K, value: ClientEvents[K]): void;
}

export class Notifications {
  #unread = 0;

  constructor(private readonly host: NotificationHost) {}

  /** Unread notifications, as last learned. */
  get unread(): number {
    return this.#unread;
  }

  /** See `client.notifications.list`. */
  async list(opts: { limit?: number; unreadOnly?: boolean; timeoutMs?: number }): Promise<{ items: Notification[]; unread: number }> {
    const { timeoutMs, ...fields } = opts;
    const reply = await this.host.request({ type: 'notifications.list', ...fields }, { retry: true, ...(timeoutMs === undefined ? {} : { timeoutMs }) });
    const unread = Number(reply.unread ?? 0);
    this.setUnread(unread);
    return { items: (reply.items as Notification[]) ?? [], unread };
  }

  /** See `client.notifications.read`. */
  async read(which: readonly string[] | 'all', opts: { timeoutMs?: number }): Promise<number> {
    const reply = await this.host.request({ type: 'notifications.read', ...(which === 'all' ? { all: true } : { ids: [...which] }) }, { retry: true, ...opts });
    const unread = Number(reply.unread ?? 0);
    this.setUnread(unread);
    return unread;
  }

  /** The server's `notification` event. */
  onNotification(e: NotificationEvent): void {
    if (typeof e.unread === 'number') this.setUnread(e.unread);
    this.host.emit('notification', { notification: e.notification, unread: this.#unread });
  }

  /** The server's `notifications.read` event (read on another connection of this user). */
  onRead(e: NotificationsReadEvent): void {
    if (typeof e.unread === 'number') this.setUnread(e.unread);
    this.host.emit('notifications.read', { ...(e.ids ? { ids: e.ids } : {}), ...(e.all ? { all: true } : {}), unread: this.#unread });
  }

  setUnread(n: number): void {
    if (n === this.#unread) return;
    this.#unread = n;
    this.host.emit('unread', n);
  }
}
