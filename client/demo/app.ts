/**
 * The demo chat: everything the system does, through the SDK only (no second client).
 * `?username=` (or the name prompt) logs in anonymously, `?token=` with a JWT; `?room=` opens a room
 * (or a conversation: `dm:…`). Clicking someone under "Here now" opens the conversation with them
 * (it is created by the first message); conversations.ts keeps the list of conversations.
 */
import { RtClient, type Message, type Notification, type Room, type StateChange, type User } from '../index.ts';
import { formatDateTime, formatTime, paintUser } from '../ui/format.ts';
import { ROOM_PATTERN } from '../../shared/protocol/constants.ts';
import { ConversationList } from './conversations.ts';
import { $, h, initial } from './dom.ts';
const params = new URLSearchParams(location.search);
const NAME_KEY = 'rt.demo.name';
const ROOMS_KEY = 'rt.demo.rooms';
const DEFAULT_ROOMS = ['lobby', 'random'];
const ROOM_NAME = new RegExp(ROOM_PATTERN);

// ---- the chat ----

interface RoomView {
  /** Undefined for a conversation not started yet (its room is named by the server on the first message). */
  room: Room | undefined;
  /** The other user, in a conversation (`dm:…` room, or one not started yet). */
  peer?: User;
  list: HTMLOListElement;
  unseen: number;
  /** Messages this user sent, shown before the server confirms them, by cid. */
  pending: Map<string, HTMLLIElement>;
  lastSeq: number;
}

class ChatView {
  private readonly views = new Map<string, RoomView>();
  private current: RoomView | undefined;
  private countdown: ReturnType<typeof setInterval> | undefined;
  private notifications: Notification[] = [];
  private notificationsLoaded = false;
  private readonly conversations: ConversationList;

  constructor(private readonly client: RtClient) {
    this.conversations = new ConversationList(
      client,
      (room, peer) => this.showConversation(room, peer),
      (room, peer) => this.learnedPeer(room, peer),
    );
    client.on('state', (s) => this.showState(s));
    client.on('welcome', (w) => {
      $('me').textContent = w.user.name;
      this.notificationsLoaded = false;
      if (!$('notif-panel').hidden) void this.loadNotifications();
    });
    client.on('unread', (n) => this.showUnread(n));
    client.on('notification', ({ notification }) => {
      this.notifications = [notification, ...this.notifications.filter((n) => n.id !== notification.id)];
      this.renderNotifications();
    });
    client.on('notifications.read', ({ ids, all }) => {
      for (const n of this.notifications) if (all || ids?.includes(n.id)) n.read = true;
      this.renderNotifications();
    });
    this.wire();
    const saved = JSON.parse(localStorage.getItem(ROOMS_KEY) ?? 'null') as string[] | null;
    const rooms = (Array.isArray(saved) && saved.length ? saved : DEFAULT_ROOMS).filter((r) => ROOM_NAME.test(r) && !isConversation(r));
    if (rooms.length === 0) rooms.push(...DEFAULT_ROOMS);
    const wanted = params.get('room');
    const valid = wanted !== null && ROOM_NAME.test(wanted);
    if (valid && !isConversation(wanted) && !rooms.includes(wanted)) rooms.push(wanted);
    for (const r of rooms) this.open(r, false);
    this.show(valid ? wanted : rooms[0]!);
  }

  private wire(): void {
    const text = $<HTMLInputElement>('text');
    $('composer').addEventListener('submit', (e) => {
      e.preventDefault();
      const content = text.value.trim();
      if (!content || !this.current) return;
      text.value = '';
      this.send(this.current, content);
    });
    text.addEventListener('input', () => this.current?.room?.typing(text.value.trim().length > 0));
    text.addEventListener('blur', () => this.current?.room?.typing(false));

    $('join-form').addEventListener('submit', (e) => {
      e.preventDefault();
      const input = $<HTMLInputElement>('join-name');
      const name = input.value.trim();
      if (!ROOM_NAME.test(name)) return;
      input.value = '';
      this.open(name, true);
      this.show(name);
    });

    const menu = $('menu');
    menu.addEventListener('click', () => {
      const open = document.body.classList.toggle('drawer-open');
      menu.setAttribute('aria-expanded', String(open));
    });

    const bell = $('bell');
    const panel = $('notif-panel');
    bell.addEventListener('click', () => {
      panel.hidden = !panel.hidden;
      bell.setAttribute('aria-expanded', String(!panel.hidden));
      if (!panel.hidden && !this.notificationsLoaded) void this.loadNotifications();
    });
    document.addEventListener('click', (e) => {
      if (!panel.hidden && !(e.target as Element).closest('.bell-wrap')) {
        panel.hidden = true;
        bell.setAttribute('aria-expanded', 'false');
      }
    });
    $('read-all').addEventListener('click', () => {
      for (const n of this.notifications) n.read = true;
      this.renderNotifications();
      this.client.notifications.read('all').catch((err: Error) => this.notificationError(err));
    });

    $('conn-retry').addEventListener('click', () => {
      if (this.client.state === 'reconnecting') this.client.reconnectNow();
      else if (this.client.state === 'offline') this.client.connect().catch(() => {});
    });
  }

  // ---- rooms ----

  /** Joins a room (once) and wires its events into its own message list. */
  private open(name: string, remember: boolean, known?: User): RoomView {
    const existing = this.views.get(name);
    if (existing) return existing;
    const room = this.client.room(name);
    const peer = isConversation(name) ? (known ?? this.conversations.peerOf(name)) : undefined;
    const view: RoomView = { room, ...(peer ? { peer } : {}), list: h('ol', { class: 'message-list' }), unseen: 0, pending: new Map(), lastSeq: 0 };
    this.views.set(name, view);
    if (remember) this.saveRooms();

    room.on('message', (m) => {
      this.addMessage(view, m);
      if (isConversation(name)) {
        // A conversation counts unread on the server (the list's badge): what is on screen is read.
        if (view.peer) this.conversations.shown(name, view.peer, m.content);
        if (view === this.current) this.markShown(view);
      } else if (view !== this.current) {
        view.unseen++;
        this.renderRooms();
      }
    });
    room.on('recovery', (r) => {
      if (!r.recovered) this.addNote(view, 'Some messages could not be recovered; newer ones follow.');
    });
    room.on('members', () => view === this.current && this.renderMembers());
    room.on('typing', () => view === this.current && this.renderTyping());

    // No timeout: the join waits for the connection, however long the server is away.
    room.join({ timeoutMs: Infinity }).then(
      (joined) => {
        const earlier = joined.history.map((m) => this.messageItem(m.user, m.content, formatTime(m.ts), m.user.id === this.client.user?.id ? 'mine' : ''));
        if (earlier.length === 0) earlier.push(h('li', { class: 'note', text: `This is the start of ${this.label(view, name)}.` }));
        view.list.prepend(...earlier);
        if (view === this.current) {
          this.renderMembers();
          this.scrollToEnd(true);
          if (isConversation(name)) this.markShown(view);
        }
      },
      (err: Error) => this.addNote(view, `Could not join #${name}: ${err.message}`),
    );
    this.renderRooms();
    return view;
  }

  private show(name: string): void {
    const view = this.views.get(name) ?? this.open(name, !isConversation(name));
    this.current = view;
    view.unseen = 0;
    const url = new URL(location.href);
    if (view.room) url.searchParams.set('room', name);
    history.replaceState(null, '', url);
    this.showTitle(view, name);
    this.conversations.setActive(isConversation(name) ? name : undefined);
    if (view.room?.joined && isConversation(name)) this.markShown(view);
    $('messages').replaceChildren(view.list);
    document.body.classList.remove('drawer-open');
    $('menu').setAttribute('aria-expanded', 'false');
    this.renderRooms();
    this.renderMembers();
    this.renderTyping();
    this.scrollToEnd(true);
  }

  private leave(name: string): void {
    const view = this.views.get(name);
    if (!view?.room || this.roomNames().length === 1) return;
    view.room.leave().catch(() => {});
    this.views.delete(name);
    this.saveRooms();
    if (this.current === view) this.show(this.roomNames()[0]!);
    else this.renderRooms();
  }

  private saveRooms(): void {
    localStorage.setItem(ROOMS_KEY, JSON.stringify(this.roomNames()));
  }

  /** The rooms of the "Rooms" list: not conversations, which have their own. */
  private roomNames(): string[] {
    return [...this.views.entries()].filter(([, v]) => !v.peer && v.room && !isConversation(v.room.name)).map(([name]) => name);
  }

  // ---- conversations ----

  /** `#lobby`, or `@Bob` in a conversation. */
  private label(view: RoomView, name: string): string {
    return view.peer ? `@${view.peer.name}` : isConversation(name) ? '@…' : `#${name}`;
  }

  private showTitle(view: RoomView, name: string): void {
    const label = this.label(view, name);
    document.title = `${label} · rt chat`;
    $('room-title').textContent = label;
    $<HTMLInputElement>('text').placeholder = `Message ${view.peer ? view.peer.name : label}`;
  }

  /** Opens the conversation with `peer`, or one to be started by the first message. */
  private message(peer: User): void {
    const room = this.conversations.roomWith(peer.id);
    if (room) return this.showConversation(room, peer);
    const key = `draft:${peer.id}`;
    if (!this.views.has(key)) {
      const list = h('ol', { class: 'message-list' }, h('li', { class: 'note', text: `This is the start of your conversation with ${peer.name}.` }));
      this.views.set(key, { room: undefined, peer, list, unseen: 0, pending: new Map(), lastSeq: 0 });
    }
    this.show(key);
  }

  private showConversation(room: string, peer: User): void {
    this.open(room, false, peer);
    this.learnedPeer(room, peer);
    this.show(room);
  }

  /** The other user of a conversation became known (a conversation opened from `?room=` shows `@…` until then). */
  private learnedPeer(room: string, peer: User): void {
    const view = this.views.get(room);
    if (!view || view.peer) return;
    view.peer = peer;
    if (view === this.current) this.showTitle(view, room);
  }

  /** The conversation on screen is read: its badge clears here and on the user's other tabs and devices. */
  private markShown(view: RoomView): void {
    view.room?.markShown().catch(() => {
      // Offline: the badge stays until the conversation is shown again.
    });
  }

  private renderRooms(): void {
    const rooms = new Set(this.roomNames());
    const items = [...this.views.entries()].filter(([name]) => rooms.has(name)).map(([name, view]) => {
      const button = h('button', { class: 'room-link', text: `#${name}` });
      button.type = 'button';
      button.addEventListener('click', () => this.show(name));
      const li = h('li', { class: view === this.current ? 'active' : '' }, button);
      if (view.unseen > 0) li.append(h('span', { class: 'count pill', text: String(view.unseen) }));
      if (rooms.size > 1) {
        const leave = h('button', { class: 'leave', text: '×', title: `Leave #${name}` });
        leave.type = 'button';
        leave.setAttribute('aria-label', `Leave #${name}`);
        leave.addEventListener('click', () => this.leave(name));
        li.append(leave);
      }
      return li;
    });
    $('rooms').replaceChildren(...items);
  }

  private renderMembers(): void {
    const members = [...(this.current?.room?.members ?? [])].sort((a, b) => a.name.localeCompare(b.name));
    const me = this.client.user?.id;
    $('member-count').textContent = members.length ? String(members.length) : '';
    $('members').replaceChildren(
      ...members.map((u) => {
        const li = paintUser(h('li', {}, h('span', { class: 'avatar', text: initial(u) }), h('span', { text: u.id === me ? `${u.name} (you)` : u.name })), u.id);
        if (u.id !== me) {
          // The whole row is the target (a phone's finger), a button for the keyboard and screen readers.
          li.classList.add('person');
          li.title = `Message ${u.name}`;
          li.tabIndex = 0;
          li.setAttribute('role', 'button');
          li.addEventListener('click', () => this.message(u));
          li.addEventListener('keydown', (e) => (e.key === 'Enter' || e.key === ' ') && (e.preventDefault(), this.message(u)));
        }
        return li;
      }),
    );
  }

  private renderTyping(): void {
    const me = this.client.user?.id;
    const names = (this.current?.room?.typingUsers ?? []).filter((u) => u.id !== me).map((u) => u.name);
    $('typing').textContent =
      names.length === 0
        ? ''
        : names.length === 1
          ? `${names[0]} is typing…`
          : names.length === 2
            ? `${names[0]} and ${names[1]} are typing…`
            : 'Several people are typing…';
  }

  // ---- messages ----

  private send(view: RoomView, content: string): void {
    const pending = this.messageItem(this.client.user ?? { id: '', name: 'you' }, content, 'sending…', 'pending');
    view.list.append(pending);
    this.scrollToEnd(true);
    const cid = crypto.getRandomValues(new Uint32Array(2)).join('-');
    view.pending.set(cid, pending);
    const sent = view.peer ? this.client.direct(view.peer.id, content, { cid, timeoutMs: 30_000 }) : view.room!.publish(content, { cid, timeoutMs: 30_000 });
    sent.then(
      (r) => {
        // The message event (which may come before this) replaces the pending item. A conversation
        // started by this message now has its room: show it (its history has the message).
        if (!view.room && view.peer && 'conversation' in r) {
          this.views.delete(`draft:${view.peer.id}`);
          this.showConversation(r.room, view.peer);
        }
      },
      (err: Error) => {
        view.pending.delete(cid);
        pending.classList.replace('pending', 'failed');
        pending.querySelector('.time')!.textContent = `not sent: ${err.message}`;
      },
    );
  }

  private addMessage(view: RoomView, m: Message): void {
    const item = this.messageItem(m.user, m.content, formatTime(m.ts), m.user.id === this.client.user?.id ? 'mine' : '');
    item.title = formatDateTime(m.ts);
    const pending = m.cid ? view.pending.get(m.cid) : undefined;
    if (pending) {
      view.pending.delete(m.cid!);
      pending.replaceWith(item);
    } else {
      const stick = this.nearEnd();
      // Keep pending messages of this user below the confirmed ones.
      const firstPending = view.list.querySelector('li.pending');
      view.list.insertBefore(item, firstPending);
      if (view === this.current) this.scrollToEnd(stick);
    }
    view.lastSeq = m.seq;
  }

  private messageItem(user: User, content: string, time: string, cls: string): HTMLLIElement {
    const item = h(
      'li',
      { class: `message ${cls}`.trim() },
      h('span', { class: 'avatar', text: initial(user) }),
      h('div', { class: 'body' }, h('div', { class: 'meta' }, h('span', { class: 'author', text: user.name }), h('span', { class: 'time', text: time })), h('div', { class: 'content', text: content })),
    );
    return paintUser(item, user.id);
  }

  private addNote(view: RoomView, text: string): void {
    view.list.insertBefore(h('li', { class: 'note', text }), view.list.querySelector('li.pending'));
    if (view === this.current) this.scrollToEnd(this.nearEnd());
  }

  private nearEnd(): boolean {
    const box = $('messages');
    return box.scrollHeight - box.scrollTop - box.clientHeight < 80;
  }

  private scrollToEnd(really: boolean): void {
    if (!really) return;
    const box = $('messages');
    box.scrollTop = box.scrollHeight;
  }

  // ---- connection state ----

  private showState(s: StateChange): void {
    const conn = $('conn');
    conn.dataset.state = s.state;
    if (this.countdown) clearInterval(this.countdown);
    this.countdown = undefined;
    const text = $('conn-text');
    const retry = $('conn-retry');
    retry.hidden = s.state !== 'reconnecting' && s.state !== 'offline';
    switch (s.state) {
      case 'connecting':
        text.textContent = s.attempt > 0 ? 'Reconnecting…' : 'Connecting…';
        break;
      case 'online':
        text.textContent = 'Online';
        break;
      case 'reconnecting': {
        const tick = () => {
          const secs = Math.max(0, Math.ceil(((s.retryAt ?? Date.now()) - Date.now()) / 1000));
          text.textContent = secs > 0 ? `Reconnecting in ${secs} s` : 'Reconnecting…';
        };
        tick();
        this.countdown = setInterval(tick, 250);
        break;
      }
      case 'offline':
        text.textContent = 'Offline';
        conn.title = s.error?.message ?? '';
        break;
    }
    $<HTMLInputElement>('text').disabled = s.state === 'offline';
  }

  // ---- notifications ----

  private showUnread(n: number): void {
    const badge = $('unread');
    badge.hidden = n === 0;
    badge.textContent = n > 99 ? '99+' : String(n);
    $('bell').setAttribute('aria-label', n ? `Notifications (${n} unread)` : 'Notifications');
  }

  private async loadNotifications(): Promise<void> {
    try {
      const { items } = await this.client.notifications.list({ limit: 50 });
      this.notifications = items;
      this.notificationsLoaded = true;
      this.renderNotifications();
    } catch (err) {
      this.notificationError(err as Error);
    }
  }

  private notificationError(err: Error): void {
    $('notif-list').replaceChildren(h('li', { class: 'empty', text: `Notifications are not available: ${err.message}` }));
  }

  private renderNotifications(): void {
    const list = $('notif-list');
    if (this.notifications.length === 0) {
      list.replaceChildren(h('li', { class: 'empty', text: 'Nothing yet.' }));
      return;
    }
    list.replaceChildren(
      ...this.notifications.map((n) => {
        const title = n.url ? Object.assign(h('a', { text: n.title }), { href: safeUrl(n.url), target: '_blank', rel: 'noopener' }) : h('strong', { text: n.title });
        const li = h('li', { class: `notif kind-${n.kind}${n.read ? '' : ' unread'}` }, title, h('p', { text: n.body }), h('time', { text: formatTime(n.ts) }));
        li.addEventListener('click', () => {
          if (n.read) return;
          n.read = true;
          li.classList.remove('unread');
          this.client.notifications.read([n.id]).catch((err: Error) => this.notificationError(err));
        });
        return li;
      }),
    );
  }
}

/** A conversation's room: named by the server, joined by its two users only. */
function isConversation(room: string): boolean {
  return room.startsWith('dm:');
}

/** Only http(s) links from notifications (never `javascript:`). */
function safeUrl(url: string): string {
  try {
    const u = new URL(url, location.href);
    return u.protocol === 'http:' || u.protocol === 'https:' ? u.href : '#';
  } catch {
    return '#';
  }
}

// ---- start: a name, or a token (last: the classes above must be defined first) ----

const token = params.get('token') ?? undefined;
const askedName = params.get('username') ?? localStorage.getItem(NAME_KEY) ?? '';
if (token || askedName.trim()) start(askedName.trim());
else {
  $('login').hidden = false;
  const input = $<HTMLInputElement>('login-name');
  input.focus();
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const name = input.value.trim();
    if (!name) return;
    localStorage.setItem(NAME_KEY, name);
    $('login').hidden = true;
    start(name);
  });
}

function start(name: string): void {
  $('app').hidden = false;
  const client = new RtClient({
    url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/ws`,
    ...(token ? { token } : { username: name }),
  });
  new ChatView(client);
  client.connect().catch(() => {
    // The state pill shows why.
  });
}
