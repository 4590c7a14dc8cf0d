/**
 * The demo's list of the user's conversations (direct messages), each with the other user's name
 * and an unread badge.
 *
 * The list comes from `client.conversations()` at every welcome (what arrived while this page was
 * away, on any device), and is kept up to date by the SDK's events: `direct` (a message in a
 * conversation this page has not opened), `conversation` (a conversation's counts changed: a new
 * message, or a read cursor moved here or on another tab or device). The badge is
 * `client.unreadIn(room)`, the SDK's count, so every tab of the user shows the same number.
 */
import type { Conversation, DirectMessage, RtClient, User } from '../index.ts';
import { paintUser } from '../ui/format.ts';
import { $, h, initial } from './dom.ts';

interface Entry {
  room: string;
  with: User;
  /** Rises with newer messages: the list is shown most recent first. */
  order: number;
  last?: string;
}

export class ConversationList {
  private readonly entries = new Map<string, Entry>();
  /** The conversation shown in the chat, highlighted in the list. */
  private active: string | undefined;
  private reload: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private readonly client: RtClient,
    /** Opens a conversation in the chat. */
    private readonly open: (room: string, peer: User) => void,
    /** A conversation's other user became known (the page may show a conversation before the list). */
    private readonly learned: (room: string, peer: User) => void,
  ) {
    client.on('welcome', () => void this.load());
    client.on('direct', (e) => this.onDirect(e));
    client.on('conversation', ({ room }) => {
      // A conversation this list does not know yet (started on another device): its other user is
      // in the next listing.
      if (!this.entries.has(room)) this.scheduleLoad();
      else this.render();
    });
    this.render();
  }

  /** The conversation with user `id`, if there is one. */
  roomWith(id: string): string | undefined {
    for (const e of this.entries.values()) if (e.with.id === id) return e.room;
    return undefined;
  }

  peerOf(room: string): User | undefined {
    return this.entries.get(room)?.with;
  }

  /** The chat shows `room` (or no conversation: undefined). */
  setActive(room: string | undefined): void {
    this.active = room;
    this.render();
  }

  /** A message shown in an open conversation (delivered as the room's `message`, not as `direct`). */
  shown(room: string, peer: User, content: string): void {
    this.upsert(room, peer, content);
  }

  private async load(): Promise<void> {
    let list: Conversation[];
    try {
      list = await this.client.conversations({ limit: 50 });
    } catch {
      return; // offline again: the next welcome loads it
    }
    for (const c of list) {
      const known = this.entries.get(c.room);
      this.entries.set(c.room, { room: c.room, with: c.with, order: Math.max(c.order, known?.order ?? 0), ...(c.last || known?.last ? { last: c.last?.content ?? known?.last } : {}) });
      this.learned(c.room, c.with);
    }
    this.render();
  }

  private scheduleLoad(): void {
    if (this.reload !== undefined) return;
    this.reload = setTimeout(() => {
      this.reload = undefined;
      void this.load();
    }, 50);
  }

  private onDirect(e: DirectMessage): void {
    const me = this.client.user?.id;
    const known = this.entries.get(e.room);
    if (!known && e.from.id === me) {
      // Written on another device to someone this page has no name for: the listing has it.
      this.scheduleLoad();
      return;
    }
    this.upsert(e.room, known?.with ?? e.from, e.content);
  }

  private upsert(room: string, peer: User, last: string): void {
    const top = Math.max(0, ...[...this.entries.values()].map((e) => e.order));
    const isNew = !this.entries.has(room);
    this.entries.set(room, { room, with: peer, order: top + 1, last });
    if (isNew) this.learned(room, peer);
    this.render();
  }

  private render(): void {
    const entries = [...this.entries.values()].sort((a, b) => b.order - a.order);
    const items = entries.map((e) => {
      const unread = this.client.unreadIn(e.room);
      const button = h('button', { class: 'room-link', ...(e.last ? { title: e.last } : {}) }, h('span', { class: 'avatar', text: initial(e.with) }), h('span', { class: 'name', text: e.with.name }));
      button.type = 'button';
      button.addEventListener('click', () => this.open(e.room, e.with));
      const li = paintUser(h('li', { class: e.room === this.active ? 'active' : '' }, button), e.with.id);
      li.dataset.room = e.room;
      if (unread > 0) {
        const badge = h('span', { class: 'count pill unread-badge', text: unread > 99 ? '99+' : String(unread) });
        badge.setAttribute('aria-label', `${unread} unread`);
        li.append(badge);
      }
      return li;
    });
    if (items.length === 0) items.push(h('li', { class: 'empty', text: 'Click someone under "Here now" to message them.' }));
    $('conversations').replaceChildren(...items);
  }
}
