/**
 * The worker: stateless request handling for rooms, sessions, typing and direct messages. Any
 * worker can serve any request (NATS queue group); all state is in the stores, so a worker can die
 * at any moment.
 *
 * Failure behaviour:
 * - A worker killed mid-request leaves the gateway to time the request out and answer
 *   `unavailable`; a publish that was stored before the crash is not stored again when the client
 *   retries with the same `cid` (the store's dedupe key), and its live delivery, if lost, is
 *   recovered by the gateways' gap filling from history.
 * - Every worker sweeps once a second: sessions whose grace ran out (their connection closed, or
 *   their gateway stopped saying it is alive) leave their rooms, and typing entries expire. The
 *   store hands each expired item to one sweeper, so leaves are sent once however many workers run.
 */
import { subjects, type Bus, type BusSubscription } from '../shared/bus.ts';
import { RoomEventBatcher } from '../shared/envelope.ts';
import {
  frameIs,
  historyAnswer,
  openAnswer,
  positioned,
  readEnvelope,
  seqOfMessage,
  ticketAnswer,
  type FrameOf,
  type FrameType,
  type RequestEnvelope,
} from '../shared/protocol/internal.ts';
import { RtError, errorFrame, toClientError } from '../shared/errors.ts';
import { randomId } from '../shared/ids.ts';
import type { Logger } from '../shared/log.ts';
import { DEFAULT_HISTORY_LIMIT, TYPING_TTL_MS } from '../shared/protocol/constants.ts';
import type { RequestOf, User } from '../shared/protocol/schemas.ts';
import type { StoredNotification } from '../shared/notifications.ts';
import type { Stores } from '../shared/stores.ts';
import { conversationRoom, isConversationRoom } from '../shared/conversations.ts';
import { Counter, type Registry } from 'prom-client';
import { HotHistogram, Tally, createRegistry, scrapedCounter, tallyKey, timed } from '../shared/metrics.ts';
import { encodeUserEvent } from '../shared/envelope.ts';

export interface WorkerOptions {
  /** Most messages a `join` with `since` replays (default 500). */
  replayMax: number;
  /** How long a session outlives its connection (default 30 s). */
  sessionGraceMs: number;
  /** A gateway silent this long is dead; its sessions' grace counts from its last sign of life. */
  nodeTimeoutMs: number;
  /** A typing entry lasts this long after the last `typing: true`. */
  typingTtlMs: number;
  /** How often this worker sweeps expired sessions and typing entries (0: never). */
  sweepIntervalMs: number;
}

export const defaultWorkerOptions: WorkerOptions = {
  replayMax: 500,
  sessionGraceMs: 30_000,
  nodeTimeoutMs: 6_000,
  typingTtlMs: TYPING_TTL_MS,
  sweepIntervalMs: 1_000,
};

type Handler = (env: RequestEnvelope) => Promise<string>;
type OpenFrame = FrameOf<'$open'>;
type DetachFrame = FrameOf<'$detach'>;
type NotifyFrame = FrameOf<'$notify'>;

/** The handler of one frame type, given only envelopes of that type (read by `readEnvelope`). */
function on<T extends FrameType>(type: T, handle: (env: RequestEnvelope<FrameOf<T>>) => Promise<string>): Handler {
  return (env) => (frameIs(env, type) ? handle(env) : Promise.reject(new RtError('bad_request', `not a ${type} request`)));
}

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);
const j = JSON.stringify;
/** A swept session whose presence removal failed is handed out again after this long. */
const SWEEP_LEASE_MS = 30_000;

export class Worker {
  readonly id = randomId(6);
  private sub?: BusSubscription;
  private aliveSub?: BusSubscription;
  private sweepTimer?: NodeJS.Timeout;
  private sweeping = false;
  private lastSweepError = 0;
  private readonly handlers: Record<string, Handler>;
  private readonly opts: WorkerOptions;
  private readonly stores: Omit<Stores, 'ping' | 'close'>;
  readonly registry: Registry;
  /** Requests by type and result (`tallyKey(type, result)`), read when Prometheus scrapes. */
  private readonly requests = new Tally();
  private readonly duration: HotHistogram;
  private readonly sessionsExpired: Counter;
  private readonly recoveries: Counter<'outcome'>;
  private readonly errors: Counter<'type'>;
  /** Events of one room made in one turn go out as one bus message. */
  private readonly roomEvents = new RoomEventBatcher((room, data) => this.bus.publish(subjects.room(room), data));

  constructor(
    private readonly bus: Bus,
    stores: Stores,
    private readonly log: Logger,
    opts: Partial<WorkerOptions> & { processMetrics?: boolean } = {},
  ) {
    this.opts = { ...defaultWorkerOptions, ...opts };
    this.registry = createRegistry({ worker: this.id }, opts.processMetrics ?? true);
    const registers = [this.registry];
    scrapedCounter(this.registry, 'rt_worker_requests_total', 'Requests handled, by type and result (ok or an error code).', () => this.requests, ['type', 'result']);
    this.duration = new HotHistogram(this.registry, 'rt_worker_request_duration_seconds', 'Time to handle a request.', 'type');
    this.sessionsExpired = new Counter({ name: 'rt_worker_sessions_expired_total', help: 'Sessions whose grace period ended (presence left) in this worker\'s sweeps.', registers });
    this.recoveries = new Counter({ name: 'rt_worker_recoveries_total', help: 'Joins with since, by outcome (recovered or not).', labelNames: ['outcome'], registers });
    this.errors = new Counter({ name: 'rt_worker_errors_total', help: 'Unexpected exceptions in request handlers and sweeps (answered `internal`), by request type.', labelNames: ['type'], registers });
    const storeOps = new HotHistogram(this.registry, 'rt_store_operation_duration_seconds', 'Store (Redis or memory) operations, by operation.', 'op');
    this.stores = {
      history: timed(stores.history, storeOps),
      conversations: timed(stores.conversations, storeOps),
      presence: timed(stores.presence, storeOps),
      sessions: timed(stores.sessions, storeOps),
      typing: timed(stores.typing, storeOps),
      notifications: timed(stores.notifications, storeOps),
      tickets: timed(stores.tickets, storeOps),
    };
    this.handlers = {
      join: on('join', (e) => this.join(e)),
      leave: on('leave', (e) => this.leave(e)),
      publish: on('publish', (e) => this.publish(e)),
      typing: on('typing', (e) => this.typing(e)),
      history: on('history', (e) => this.history(e)),
      presence: on('presence', (e) => this.presence(e)),
      direct: on('direct', (e) => this.direct(e)),
      read: on('read', (e) => this.read(e)),
      conversations: on('conversations', (e) => this.conversations(e)),
      $open: on('$open', (e) => this.open(e)),
      $detach: on('$detach', (e) => this.detach(e)),
      $alive: on('$alive', (e) => this.alive(e)),
      $history: on('$history', (e) => this.gapFill(e)),
      'notifications.list': on('notifications.list', (e) => this.notificationsList(e)),
      'notifications.read': on('notifications.read', (e) => this.notificationsRead(e)),
      $notify: on('$notify', (e) => this.notify(e)),
      '$ticket.put': on('$ticket.put', (e) => this.ticketPut(e)),
      '$ticket.take': on('$ticket.take', (e) => this.ticketTake(e)),
    };
  }

  start(): void {
    this.sub = this.bus.serve(subjects.requests, subjects.workersQueue, (data) => this.handle(data));
    this.aliveSub = this.bus.serve(subjects.alive, subjects.workersQueue, (data) => this.handle(data));
    if (this.opts.sweepIntervalMs > 0) {
      this.sweepTimer = setInterval(() => void this.sweep(), this.opts.sweepIntervalMs);
      this.sweepTimer.unref();
    }
  }

  /** Stops taking requests and sweeping; requests in flight finish (the bus drain waits for them). */
  stop(): void {
    clearInterval(this.sweepTimer);
    this.sweepTimer = undefined;
    this.sub?.unsubscribe();
    this.sub = undefined;
    this.aliveSub?.unsubscribe();
    this.aliveSub = undefined;
  }

  async handle(data: Uint8Array): Promise<Uint8Array> {
    const read = readEnvelope(data);
    if (!read.ok) {
      this.log.warn({ code: read.code, reason: read.message }, 'malformed request envelope');
      this.requests.add(tallyKey('invalid', read.code));
      return encoder.encode(errorFrame(read.id, read.code, read.message));
    }
    const env = read.env;
    const frame = env.f;
    const handler = Object.hasOwn(this.handlers, frame.type) ? this.handlers[frame.type] : undefined;
    const type = handler ? frame.type : 'unknown';
    const started = performance.now();
    try {
      if (!handler) throw new RtError('unknown_type', `unknown type "${frame.type.slice(0, 64)}"`);
      const out = await handler(env);
      this.requests.add(tallyKey(type, 'ok'));
      return out ? encoder.encode(out) : EMPTY;
    } catch (err) {
      const { code, message } = toClientError(err);
      this.requests.add(tallyKey(type, code));
      if (code === 'internal') {
        this.errors.inc({ type });
        this.log.error({ err, type, conn: env.c }, 'request failed');
      } else if (code === 'unavailable') this.log.warn({ type, err: err instanceof Error ? err.message : String(err) }, 'storage unavailable');
      return encoder.encode(errorFrame('id' in frame ? frame.id : undefined, code, message));
    } finally {
      this.duration.observe(type, (performance.now() - started) / 1000);
    }
  }

  /** Opens the connection's session: resumes the one asked for if it is still there, else a new one. */
  private async open({ c, n, u, f }: RequestEnvelope<OpenFrame>): Promise<string> {
    if (f.session) {
      const rooms = await this.stores.sessions.sessionResume(f.session, u, n, c);
      if (rooms) {
        const positions = await Promise.all(
          rooms.map(async (room) => {
            const page = await this.stores.history.history(room, { limit: 0 });
            return { room, seq: page.seq, epoch: page.epoch };
          }),
        );
        return openAnswer({ sessionId: f.session, resumed: true, rooms: positions, unread: await this.stores.notifications.notificationsUnread(u.id) });
      }
    }
    const sessionId = randomId(16);
    const [, unread] = await Promise.all([this.stores.sessions.sessionCreate(sessionId, u, n, c), this.stores.notifications.notificationsUnread(u.id)]);
    return openAnswer({ sessionId, resumed: false, rooms: [], unread });
  }

  /** The connection closed: its session waits out the grace period; its typing ends now. */
  private async detach({ c, s, u, f }: RequestEnvelope<DetachFrame>): Promise<string> {
    await Promise.all([
      s ? this.stores.sessions.sessionDetach(s, c, this.opts.sessionGraceMs) : undefined,
      ...f.typing.map((room) => this.setTyping(room, u, false)),
    ]);
    return '';
  }

  private async alive({ n }: RequestEnvelope<FrameOf<'$alive'>>): Promise<string> {
    await this.stores.sessions.nodeAlive(n);
    return '';
  }

  private async ticketPut({ f }: RequestEnvelope<FrameOf<'$ticket.put'>>): Promise<string> {
    await this.stores.tickets.ticketPut(f.ticket, f.data, f.ttlMs);
    return '{}';
  }

  private async ticketTake({ f }: RequestEnvelope<FrameOf<'$ticket.take'>>): Promise<string> {
    return ticketAnswer(await this.stores.tickets.ticketTake(f.ticket));
  }

  private async join({ s, n, u, f }: RequestEnvelope<RequestOf<'join'>>): Promise<string> {
    const limit = f.limit ?? DEFAULT_HISTORY_LIMIT;
    await this.mustBeParticipant(u, f.room);
    // The session learns the room first, so that a sweep finds every presence entry it must remove.
    await this.stores.sessions.sessionAddRoom(s, f.room);
    const { firstForUser, members } = await this.stores.presence.presenceAdd(f.room, { connId: s, user: u, node: n });
    if (firstForUser) this.publishPresence(f.room, 'join', u);

    let recovered: boolean | undefined;
    let page = await this.stores.history.history(f.room, f.since === undefined ? { limit } : { after: f.since, limit: this.opts.replayMax + 1 });
    if (f.since !== undefined) {
      const since = f.since;
      // Without the epoch the client had, `since` may count in a history that was lost since:
      // recovering from it would hand over another epoch's messages as the missed ones.
      recovered =
        f.epoch === page.epoch &&
        since <= page.seq &&
        page.seq - since <= this.opts.replayMax &&
        page.oldest <= since + 1;
      this.recoveries.inc({ outcome: recovered ? 'recovered' : 'not_recovered' });
      if (recovered) page = { ...page, entries: page.entries.slice(0, page.seq - since) };
      else page = await this.stores.history.history(f.room, { limit });
    }
    const read = Math.min(page.seq, await this.stores.conversations.readGet(u.id, f.room, page.epoch));
    return positioned(
      page.seq,
      page.epoch,
      `{"type":"reply"${idPart(f.id)},"room":${j(f.room)},"seq":${page.seq},"epoch":${j(page.epoch)},` +
        `"members":${j(members)}${recovered === undefined ? '' : `,"recovered":${recovered}`},"read":${read},"unread":${page.seq - read},` +
        `"history":[${page.entries.join(',')}]}`,
    );
  }

  private async leave({ s, f }: RequestEnvelope<RequestOf<'leave'>>): Promise<string> {
    await this.leaveRoom(f.room, s);
    await this.stores.sessions.sessionRemoveRoom(s, f.room);
    return `{"type":"reply"${idPart(f.id)},"room":${j(f.room)}}`;
  }

  private async leaveRoom(room: string, sessionId: string): Promise<void> {
    const { user, lastForUser } = await this.stores.presence.presenceRemove(room, sessionId);
    if (user && lastForUser) {
      this.publishPresence(room, 'leave', user);
      await this.setTyping(room, user, false);
    }
  }

  private async publish({ c, u, f }: RequestEnvelope<RequestOf<'publish'>>): Promise<string> {
    if (isConversationRoom(f.room)) {
      const partner = await this.mustBeParticipant(u, f.room);
      return this.conversationMessage(c, u, partner, f.room, f.content, f.cid, f.id);
    }
    const ts = new Date().toISOString();
    const head = `{"type":"message","room":${j(f.room)},"seq":`;
    const tail = `,"user":${j(u)},"content":${j(f.content)},"ts":"${ts}"${f.cid === undefined ? '' : `,"cid":${j(f.cid)}`}}`;
    const res = await this.stores.history.append(f.room, {
      head,
      tail,
      ts,
      dedupeKey: f.cid === undefined ? undefined : `${u.id}\n${f.cid}`,
    });
    // A duplicate is announced again: its first attempt may have been stored without being
    // published (its worker died, or its Redis command timed out here but ran when Redis
    // recovered). Gateways drop a seq they already delivered, so members see it once either way.
    const storedTail = res.duplicate ? tail.replace(`"ts":"${ts}"`, `"ts":"${res.ts}"`) : tail;
    this.roomEvents.add(f.room, res.seq, res.epoch, head + res.seq + storedTail);
    if (f.id === undefined) return '';
    return `{"type":"reply"${idPart(f.id)},"room":${j(f.room)},"seq":${res.seq},"ts":"${res.ts}"}`;
  }

  private async typing({ u, f }: RequestEnvelope<RequestOf<'typing'>>): Promise<string> {
    await this.setTyping(f.room, u, f.typing);
    return f.id === undefined ? '' : `{"type":"reply"${idPart(f.id)},"room":${j(f.room)}}`;
  }

  private async setTyping(room: string, user: User, typing: boolean): Promise<void> {
    const { changed, users } = await this.stores.typing.typingSet(room, user, typing, this.opts.typingTtlMs);
    if (changed) this.publishTyping(room, users);
  }

  private async history({ f }: RequestEnvelope<RequestOf<'history'>>): Promise<string> {
    if (f.before !== undefined && f.after !== undefined) throw new RtError('bad_request', 'use either before or after, not both');
    const limit = f.limit ?? DEFAULT_HISTORY_LIMIT;
    const page = await this.stores.history.history(f.room, { before: f.before, after: f.after, limit });
    return `{"type":"reply"${idPart(f.id)},"room":${j(f.room)},"seq":${page.seq},"epoch":${j(page.epoch)},"messages":[${page.entries.join(',')}]}`;
  }

  /** A gateway's gap fill: the stored messages after `after`, exact, with their seqs. */
  private async gapFill({ f }: RequestEnvelope<FrameOf<'$history'>>): Promise<string> {
    const page = await this.stores.history.history(f.room, { after: f.after, limit: f.limit });
    return historyAnswer(page.seq, page.epoch, page.entries.map((frame) => ({ seq: seqOfMessage(frame), frame })));
  }

  private async presence({ u, f }: RequestEnvelope<RequestOf<'presence'>>): Promise<string> {
    await this.mustBeParticipant(u, f.room);
    const members = await this.stores.presence.presenceMembers(f.room);
    return `{"type":"reply"${idPart(f.id)},"room":${j(f.room)},"members":${j(members)}}`;
  }

  private async direct({ c, u, f }: RequestEnvelope<RequestOf<'direct'>>): Promise<string> {
    const self = f.to === u.id;
    // The recipient's name is not known here: their id stands for it until they write back.
    const partner = self ? u : { id: f.to, name: f.to };
    return this.conversationMessage(c, u, partner, conversationRoom(u.id, f.to), f.content, f.cid, f.id, !self);
  }

  /**
   * A message in a conversation, from `direct` or a `publish` to its room. Three single-slot steps,
   * in this order: the append (the conversation's slot: seq, history, dedupe), then each
   * participant's index (their own slots), then the events. A crash after the append leaves the
   * indexes and the events undone; the client's retry with the same `cid` gets the stored seq back
   * (`duplicate`) and redoes the rest, which is idempotent (an index entry only moves forward;
   * gateways drop a room seq they delivered, the SDK a `direct` it showed). Without a `cid` the
   * message is in the history and the next message of the conversation brings the indexes up.
   */
  private async conversationMessage(
    c: string,
    u: User,
    partner: User,
    room: string,
    content: string,
    cid: string | undefined,
    id: string | number | undefined,
    guessedName = false,
  ): Promise<string> {
    const ts = new Date().toISOString();
    const head = `{"type":"message","room":${j(room)},"seq":`;
    const tail = `,"user":${j(u)},"content":${j(content)},"ts":"${ts}"${cid === undefined ? '' : `,"cid":${j(cid)}`}}`;
    const res = await this.stores.history.append(room, { head, tail, ts, dedupeKey: cid === undefined ? undefined : `${u.id}\n${cid}` });
    const storedTail = res.duplicate ? tail.replace(`"ts":"${ts}"`, `"ts":"${res.ts}"`) : tail;
    const message = head + res.seq + storedTail;
    const self = partner.id === u.id;
    // The sender has read what they wrote: their cursor moves with it (their other connections are told).
    const [cursor] = await Promise.all([
      this.stores.conversations.readSet(u.id, room, res.seq, res.epoch),
      this.stores.conversations.conversationTouch(u.id, { room, with: partner, withName: !guessedName, seq: res.seq, epoch: res.epoch, last: message }),
      self ? undefined : this.stores.conversations.conversationTouch(partner.id, { room, with: u, withName: true, seq: res.seq, epoch: res.epoch, last: message }),
    ]);
    this.roomEvents.add(room, res.seq, res.epoch, message);
    if (cursor.moved) this.bus.publish(subjects.user(u.id), encodeUserEvent(`{"type":"read","room":${j(room)},"seq":${cursor.seq}}`, c));
    const event =
      `{"type":"direct","room":${j(room)},"seq":${res.seq},"from":${j(u)},"to":${j(partner.id)},"content":${j(content)},"ts":"${res.ts}"` +
      `${cid === undefined ? '' : `,"cid":${j(cid)}`}}`;
    // The sending connection has the reply; the sender's other connections and the recipient's all get the event.
    this.bus.publish(subjects.user(u.id), encodeUserEvent(event, c));
    if (!self) this.bus.publish(subjects.user(partner.id), encodeUserEvent(event));
    if (id === undefined) return '';
    return `{"type":"reply"${idPart(id)},"room":${j(room)},"seq":${res.seq},"ts":"${res.ts}"}`;
  }

  /** In a conversation room, the other participant, and `forbidden` for anyone else; in other rooms, no check (the user). */
  private async mustBeParticipant(u: User, room: string): Promise<User> {
    if (!isConversationRoom(room)) return u;
    const partner = await this.stores.conversations.conversationWith(u.id, room);
    if (!partner) throw new RtError('forbidden', `"${room}" is a conversation of two other users`);
    return partner;
  }

  /** Moves the read cursor (clamped to the room's seq) and tells the user's other connections. */
  private async read({ c, u, f }: RequestEnvelope<RequestOf<'read'>>): Promise<string> {
    await this.mustBeParticipant(u, f.room);
    const page = await this.stores.history.history(f.room, { limit: 0 });
    const cursor = await this.stores.conversations.readSet(u.id, f.room, Math.min(f.seq, page.seq), page.epoch);
    if (cursor.moved) this.bus.publish(subjects.user(u.id), encodeUserEvent(`{"type":"read","room":${j(f.room)},"seq":${cursor.seq}}`, c));
    return `{"type":"reply"${idPart(f.id)},"room":${j(f.room)},"seq":${cursor.seq},"unread":${Math.max(0, page.seq - cursor.seq)}}`;
  }

  private async conversations({ u, f }: RequestEnvelope<RequestOf<'conversations'>>): Promise<string> {
    const list = await this.stores.conversations.conversationsList(u.id, { limit: f.limit ?? DEFAULT_HISTORY_LIMIT, before: f.before });
    const items = list.map((e) => {
      const read = Math.min(e.read, e.seq);
      return `{"room":${j(e.room)},"with":${j(e.with)},"seq":${e.seq},"read":${read},"unread":${e.seq - read},"order":${e.order},"last":${e.last}}`;
    });
    return `{"type":"reply"${idPart(f.id)},"conversations":[${items.join(',')}]}`;
  }

  private async notificationsList({ u, f }: RequestEnvelope<RequestOf<'notifications.list'>>): Promise<string> {
    const { items, unread } = await this.stores.notifications.notificationsList(u.id, { limit: f.limit ?? DEFAULT_HISTORY_LIMIT, unreadOnly: f.unreadOnly });
    return `{"type":"reply"${idPart(f.id)},"items":${j(items)},"unread":${unread}}`;
  }

  /** Marks read, and tells the user's other connections (not this one: it gets the reply). */
  private async notificationsRead({ c, u, f }: RequestEnvelope<RequestOf<'notifications.read'>>): Promise<string> {
    if (f.all !== true && f.ids === undefined) throw new RtError('bad_request', 'give ids or all: true');
    const { changed, unread } = await this.stores.notifications.notificationsRead(u.id, f.all === true ? { all: true } : { ids: f.ids ?? [] });
    if (changed.length > 0) {
      const event = f.all === true ? { type: 'notifications.read', all: true, unread } : { type: 'notifications.read', ids: changed, unread };
      this.bus.publish(subjects.user(u.id), encodeUserEvent(j(event), c));
    }
    return `{"type":"reply"${idPart(f.id)},"unread":${unread}}`;
  }

  /**
   * A notification for many users: stored in bulk (the store pipelines it), then published to each
   * user's subject. Every gateway receives it (one `rt.user.>` subscription each) and delivers it
   * only where the user has a connection.
   */
  private async notify({ f }: RequestEnvelope<NotifyFrame>): Promise<string> {
    const ts = new Date().toISOString();
    const items = f.userIds.map((userId) => {
      const notification: StoredNotification = { id: randomId(12), kind: f.kind, title: f.title, body: f.body, ts, read: false };
      if (f.url !== undefined) notification.url = f.url;
      return { userId, notification };
    });
    const unread = await this.stores.notifications.notificationsAdd(items);
    items.forEach(({ userId, notification }, i) => {
      this.bus.publish(subjects.user(userId), encodeUserEvent(`{"type":"notification","notification":${j(notification)},"unread":${unread[i]}}`));
    });
    return j({ ids: items.map((it) => it.notification.id) });
  }

  /** One sweep: expired sessions leave their rooms, expired typing entries are announced. */
  async sweep(): Promise<void> {
    if (this.sweeping) return;
    this.sweeping = true;
    try {
      const expired = await this.stores.sessions.sweepSessions({
        nodeTimeoutMs: this.opts.nodeTimeoutMs,
        graceMs: this.opts.sessionGraceMs,
        leaseMs: SWEEP_LEASE_MS,
        limit: 200,
      });
      await Promise.all(
        expired.map(async (session) => {
          await Promise.all(session.rooms.map((room) => this.leaveRoom(room, session.sessionId)));
          await this.stores.sessions.sessionReaped(session.sessionId);
          this.sessionsExpired.inc();
        }),
      );
      for (const { room, users } of await this.stores.typing.sweepTyping(200)) this.publishTyping(room, users);
    } catch (err) {
      // Once per 10 s at most: a store outage would otherwise log every second from every worker.
      if (Date.now() - this.lastSweepError > 10_000) {
        this.lastSweepError = Date.now();
        this.log.warn({ err: (err as Error).message }, 'sweep failed; retrying');
      }
    } finally {
      this.sweeping = false;
    }
  }

  private publishPresence(room: string, event: 'join' | 'leave', user: User): void {
    this.roomEvents.now(room, 0, '-', `{"type":"presence","room":${j(room)},"event":"${event}","user":${j(user)}}`);
  }

  private publishTyping(room: string, users: User[]): void {
    this.roomEvents.now(room, 0, '-', `{"type":"typing","room":${j(room)},"users":${j(users)}}`);
  }
}

function idPart(id: string | number | undefined): string {
  return id === undefined ? '' : `,"id":${j(id)}`;
}
