/**
 * The worker: stateless request handling for rooms and direct messages. Any worker can serve any
 * request (NATS queue group); all state is in the Store, so a worker can die at any moment.
 *
 * Failure behaviour: a worker killed mid-request leaves the gateway to time the request out and
 * answer `unavailable`; a publish that was stored before the crash is not stored again when the
 * client retries with the same `cid` (the store's dedupe key), and its live delivery, if lost, is
 * recovered by the gateways' gap filling from history.
 */
import { subjects, type Bus, type BusSubscription } from '../shared/bus.ts';
import { encodeRoomEvent, type RequestEnvelope } from '../shared/envelope.ts';
import { RtError, errorFrame, toClientError } from '../shared/errors.ts';
import type { Logger } from '../shared/log.ts';
import { DEFAULT_HISTORY_LIMIT, type RequestOf, type User } from '../shared/protocol/schemas.ts';
import type { Store } from '../shared/store.ts';
import { randomId } from '../shared/ids.ts';

export interface WorkerOptions {
  /** Most messages a `join` with `since` replays (default 500). */
  replayMax: number;
}

type Frame = { type: string; id?: string | number } & Record<string, unknown>;
type Handler = (env: RequestEnvelope<Frame>) => Promise<string>;

const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);
const j = JSON.stringify;

export class Worker {
  private sub?: BusSubscription;
  private readonly handlers: Record<string, Handler>;
  readonly id = randomId(6);

  constructor(
    private readonly bus: Bus,
    private readonly store: Store,
    private readonly log: Logger,
    private readonly opts: WorkerOptions = { replayMax: 500 },
  ) {
    this.handlers = {
      join: (e) => this.join(e as RequestEnvelope<RequestOf<'join'>>),
      leave: (e) => this.leave(e as RequestEnvelope<RequestOf<'leave'>>),
      publish: (e) => this.publish(e as RequestEnvelope<RequestOf<'publish'>>),
      history: (e) => this.history(e as RequestEnvelope<RequestOf<'history'>>),
      presence: (e) => this.presence(e as RequestEnvelope<RequestOf<'presence'>>),
      direct: (e) => this.direct(e as RequestEnvelope<RequestOf<'direct'>>),
      $disconnect: (e) => this.disconnect(e as RequestEnvelope<{ type: '$disconnect'; rooms: string[] }>),
    };
  }

  start(): void {
    this.sub = this.bus.serve(subjects.requests, subjects.workersQueue, (data) => this.handle(data));
  }

  /** Stops taking requests; those in flight finish (the bus drain waits for them). */
  stop(): void {
    this.sub?.unsubscribe();
    this.sub = undefined;
  }

  async handle(data: Uint8Array): Promise<Uint8Array> {
    let env: RequestEnvelope<Frame>;
    try {
      env = JSON.parse(Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('utf8')) as RequestEnvelope<Frame>;
    } catch {
      this.log.warn('malformed request envelope');
      return encoder.encode(j({ type: 'error', code: 'bad_request', message: 'malformed request' }));
    }
    const frame = env.f;
    const handler = this.handlers[frame?.type];
    try {
      if (!handler) throw new RtError('unknown_type', `unknown type "${String(frame?.type).slice(0, 64)}"`);
      const out = await handler(env);
      return out ? encoder.encode(out) : EMPTY;
    } catch (err) {
      if (isBackendDown(err)) {
        this.log.warn({ err: (err as Error).message, type: frame?.type }, 'storage unavailable');
        return encoder.encode(errorFrame(frame?.id, 'unavailable', 'storage unavailable, retry'));
      }
      const { code, message } = toClientError(err);
      if (code === 'internal') this.log.error({ err, type: frame?.type, conn: env.c }, 'request failed');
      return encoder.encode(errorFrame(frame?.id, code, message));
    }
  }

  private async join({ c, n, u, f }: RequestEnvelope<RequestOf<'join'>>): Promise<string> {
    const limit = f.limit ?? DEFAULT_HISTORY_LIMIT;
    const { firstForUser, members } = await this.store.presenceAdd(f.room, { connId: c, user: u, node: n });
    if (firstForUser) this.publishPresence(f.room, 'join', u);

    let recovered: boolean | undefined;
    let page = await this.store.history(f.room, f.since === undefined ? { limit } : { after: f.since, limit: this.opts.replayMax + 1 });
    if (f.since !== undefined) {
      const since = f.since;
      recovered =
        (f.epoch === undefined || f.epoch === page.epoch) &&
        since <= page.seq &&
        page.seq - since <= this.opts.replayMax &&
        page.oldest <= since + 1;
      if (recovered) page = { ...page, entries: page.entries.slice(0, page.seq - since) };
      else page = await this.store.history(f.room, { limit });
    }
    return (
      `{"type":"reply"${idPart(f.id)},"room":${j(f.room)},"seq":${page.seq},"epoch":${j(page.epoch)},` +
      `"members":${j(members)}${recovered === undefined ? '' : `,"recovered":${recovered}`},"history":[${page.entries.join(',')}]}`
    );
  }

  private async leave({ c, f }: RequestEnvelope<RequestOf<'leave'>>): Promise<string> {
    const { user, lastForUser } = await this.store.presenceRemove(f.room, c);
    if (user && lastForUser) this.publishPresence(f.room, 'leave', user);
    return `{"type":"reply"${idPart(f.id)},"room":${j(f.room)}}`;
  }

  private async publish({ u, f }: RequestEnvelope<RequestOf<'publish'>>): Promise<string> {
    const ts = new Date().toISOString();
    const head = `{"type":"message","room":${j(f.room)},"seq":`;
    const tail = `,"user":${j(u)},"content":${j(f.content)},"ts":"${ts}"${f.cid === undefined ? '' : `,"cid":${j(f.cid)}`}}`;
    const res = await this.store.append(f.room, {
      head,
      tail,
      ts,
      dedupeKey: f.cid === undefined ? undefined : `${u.id}\n${f.cid}`,
    });
    if (!res.duplicate) this.bus.publish(subjects.room(f.room), encodeRoomEvent(res.seq, res.epoch, head + res.seq + tail));
    if (f.id === undefined) return '';
    return `{"type":"reply"${idPart(f.id)},"room":${j(f.room)},"seq":${res.seq},"ts":"${res.ts}"}`;
  }

  private async history({ f }: RequestEnvelope<RequestOf<'history'>>): Promise<string> {
    if (f.before !== undefined && f.after !== undefined) throw new RtError('bad_request', 'use either before or after, not both');
    const limit = f.limit ?? DEFAULT_HISTORY_LIMIT;
    const page = await this.store.history(f.room, { before: f.before, after: f.after, limit });
    return `{"type":"reply"${idPart(f.id)},"room":${j(f.room)},"seq":${page.seq},"epoch":${j(page.epoch)},"messages":[${page.entries.join(',')}]}`;
  }

  private async presence({ f }: RequestEnvelope<RequestOf<'presence'>>): Promise<string> {
    const members = await this.store.presenceMembers(f.room);
    return `{"type":"reply"${idPart(f.id)},"room":${j(f.room)},"members":${j(members)}}`;
  }

  private async direct({ u, f }: RequestEnvelope<RequestOf<'direct'>>): Promise<string> {
    const ts = new Date().toISOString();
    this.bus.publish(subjects.user(f.to), encoder.encode(`{"type":"direct","from":${j(u)},"content":${j(f.content)},"ts":"${ts}"}`));
    if (f.id === undefined) return '';
    return `{"type":"reply"${idPart(f.id)},"ts":"${ts}"}`;
  }

  /** A connection closed: it leaves every room it was in. */
  private async disconnect({ c, f }: RequestEnvelope<{ type: '$disconnect'; rooms: string[] }>): Promise<string> {
    await Promise.all(
      f.rooms.map(async (room) => {
        const { user, lastForUser } = await this.store.presenceRemove(room, c);
        if (user && lastForUser) this.publishPresence(room, 'leave', user);
      }),
    );
    return '';
  }

  private publishPresence(room: string, event: 'join' | 'leave', user: User): void {
    this.bus.publish(subjects.room(room), encodeRoomEvent(0, '-', `{"type":"presence","room":${j(room)},"event":"${event}","user":${j(user)}}`));
  }
}

function idPart(id: string | number | undefined): string {
  return id === undefined ? '' : `,"id":${j(id)}`;
}

/** Errors from a storage backend that is down or unreachable, as opposed to bugs. */
function isBackendDown(err: unknown): boolean {
  const e = err as { name?: string; code?: string; message?: string };
  return (
    e?.name === 'MaxRetriesPerRequestError' ||
    e?.code === 'ECONNREFUSED' ||
    e?.code === 'ECONNRESET' ||
    /Connection is closed|Stream isn't writeable|enableOfflineQueue|ETIMEDOUT|Command timed out/i.test(e?.message ?? '')
  );
}
