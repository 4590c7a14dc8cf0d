/**
 * Server-sent events (`GET /sse?rooms=a,b`): the same events as the WebSocket, for clients that
 * only listen. Each event is `event: <type>` and `data: <the WebSocket frame>`; room messages carry
 * an `id:` with the stream's position in each of its rooms (`room:seq`, or `a:5,b:7` for several
 * rooms — commas cannot occur in room names), so a reconnecting EventSource, which sends back the
 * last id as `Last-Event-ID`, resumes every room from history.
 *
 * Backpressure: a reader that does not keep up has its unsent bytes counted; past the limit the
 * stream is cut, and the client reconnects and resumes from history instead of the gateway
 * buffering for it without bound.
 */
import type * as UWS from 'uWebSockets.js';
import type { Config } from '../shared/config.ts';
import { isConversationRoom } from '../shared/conversations.ts';
import { errorFrame } from '../shared/errors.ts';
import { randomId } from '../shared/ids.ts';
import type { Logger } from '../shared/log.ts';
import { ROOM_PATTERN, type User } from '../shared/protocol/schemas.ts';
import { asAuthError, type Admission } from './admission.ts';
import { mayJoin, type Identity } from './auth.ts';
import type { Boundary } from './boundary.ts';
import { Deadlines } from './deadlines.ts';
import type { Fanout } from './fanout.ts';
import { Exchange } from './http.ts';
import type { RoomStream, StreamMember } from './room-stream.ts';

const encoder = new TextEncoder();
const ROOM_NAME = new RegExp(ROOM_PATTERN);
const TYPE_AT = '{"type":"'.length;
const QUOTE = 34;

/** The `type` of a frame made by the worker or gateway, which always starts with `{"type":"`. */
export function frameType(frame: Uint8Array): string {
  let end = TYPE_AT;
  while (end < frame.length && end < TYPE_AT + 40 && frame[end] !== QUOTE) end++;
  let type = '';
  for (let i = TYPE_AT; i < end; i++) type += String.fromCharCode(frame[i]!);
  return type;
}

/** Parses `Last-Event-ID`: `room:seq` or `a:5,b:7`. Rooms may contain `:`, so the last one splits. */
export function parseLastEventId(value: string | null | undefined): Map<string, number> {
  const out = new Map<string, number>();
  if (!value) return out;
  for (const part of value.split(',')) {
    const at = part.lastIndexOf(':');
    const seq = Number(part.slice(at + 1));
    if (at > 0 && Number.isSafeInteger(seq) && seq >= 0) out.set(part.slice(0, at), seq);
  }
  return out;
}

export class SseConn {
  closed = false;
  /** Last seq sent per room, for the `id:` of the next event. */
  readonly positions = new Map<string, number>();
  private congested = false;
  private backlog = 0;
  /** Its entry in the streams' expiry `Deadlines`: it ends when its credentials expire (there is no `refresh` on a one-way stream). */
  expiryKey: number | undefined;

  constructor(
    readonly res: UWS.HttpResponse,
    readonly id: string,
    readonly user: User,
    readonly rooms: string[],
    private readonly maxBacklog: number,
  ) {}

  /** Writes the response head and the reconnect hint. Call inside a cork. */
  start(headers: Record<string, string>, retryMs: number): void {
    this.res.writeStatus('200 OK');
    for (const [k, v] of Object.entries(headers)) this.res.writeHeader(k, v);
    this.write(`retry: ${retryMs}\n: connected\n\n`);
  }

  /** One event; `room` and `seq` for room messages. */
  event(frame: Uint8Array, room?: string, seq?: number): void {
    if (this.closed) return;
    let head = '';
    if (room !== undefined && seq !== undefined) {
      this.positions.set(room, seq);
      head = `id: ${this.lastEventId()}\n`;
    }
    head += `event: ${frameType(frame)}\ndata: `;
    this.res.cork(() => {
      this.write(head);
      this.write(frame);
      this.write('\n\n');
    });
  }

  /** A comment line, which keeps proxies from closing a quiet stream. */
  comment(text: string): void {
    if (!this.closed) this.res.cork(() => this.write(`: ${text}\n\n`));
  }

  lastEventId(): string {
    let id = '';
    for (const [room, seq] of this.positions) id += `${id ? ',' : ''}${room}:${seq}`;
    return id;
  }

  private write(chunk: string | Uint8Array): void {
    if (this.closed) return;
    if (this.res.write(chunk)) return;
    this.backlog += typeof chunk === 'string' ? encoder.encode(chunk).length : chunk.length;
    if (!this.congested) {
      this.congested = true;
      this.res.onWritable(() => {
        this.congested = false;
        this.backlog = 0;
        return true;
      });
    }
    if (this.backlog > this.maxBacklog) this.cut();
  }

  /**
   * Ends the stream with a last `error` event (its credentials expired). The EventSource then
   * reconnects with the same URL and is refused 401 unless the application gives it fresh
   * credentials: a new token or ticket.
   */
  end(errorFrame: string): void {
    if (this.closed) return;
    this.res.cork(() => {
      this.write(`event: error\ndata: ${errorFrame}\n\n`);
      this.closed = true;
      this.res.end();
    });
  }

  /** Ends a stream whose reader fell too far behind; its EventSource reconnects and resumes. */
  cut(): void {
    if (this.closed) return;
    this.closed = true;
    this.res.close();
  }
}

/** The member a RoomStream attaches for one room of an SSE stream. */
export class SseRoomMember implements StreamMember {
  constructor(
    readonly conn: SseConn,
    readonly room: string,
    private readonly onSubscribe: (member: SseRoomMember) => void,
  ) {}
  get closed(): boolean {
    return this.conn.closed;
  }
  subscribe(): void {
    if (!this.conn.closed) this.onSubscribe(this);
  }
  send(frame: Uint8Array, seq?: number): void {
    this.conn.event(frame, seq === undefined ? undefined : this.room, seq);
  }
}

/**
 * The `/sse` endpoint and its open streams. A stream holds a reference on the RoomStream of each
 * of its rooms and follows its user's events, like a WebSocket connection; it is admitted by the
 * same checks (`Admission`) and ends when its credentials expire (a one-way stream cannot
 * `refresh`).
 */
export class SseStreams {
  /** Open streams and, for each, the room streams it holds. */
  private readonly open = new Map<SseConn, { member: SseRoomMember; stream: RoomStream }[]>();
  private heartbeat: NodeJS.Timeout | undefined;
  private readonly expiries: Deadlines<SseConn>;

  constructor(
    private readonly cfg: Config,
    private readonly admission: Admission,
    private readonly fanout: Fanout,
    private readonly boundary: Boundary,
    private readonly log: Logger,
    /** WebSocket connections open on this gateway, which count against MAX_CONNECTIONS too. */
    private readonly sockets: () => number,
  ) {
    this.expiries = new Deadlines(
      (sse) => {
        sse.end(errorFrame(undefined, 'unauthorized', 'unauthorized: token expired'));
        this.close(sse);
      },
      (err) => this.boundary.failed('sse_expiry', err),
    );
  }

  get size(): number {
    return this.open.size;
  }

  /**
   * `GET /sse?rooms=a,b`: authenticates as `/ws` does, replays what a `Last-Event-ID` says was
   * missed (up to REPLAY_MAX per room), then follows the rooms and the user's own events.
   */
  serve(res: UWS.HttpResponse, req: UWS.HttpRequest): void {
    const asking = this.admission.asking(res, req);
    const lastEventId = req.getHeader('last-event-id') || asking.query.get('lastEventId');
    const ex = new Exchange(res);
    let conn: SseConn | undefined;
    res.onAborted(() => {
      ex.aborted = true;
      if (conn) this.close(conn);
    });
    const refused = this.admission.refusal(asking, this.sockets() + this.open.size);
    if (refused) return ex.error(refused.code, refused.message);
    const rooms = [...new Set((asking.query.get('rooms') ?? '').split(',').filter(Boolean))];
    const bad = rooms.find((r) => !ROOM_NAME.test(r));
    if (bad !== undefined) return ex.error('bad_request', `invalid room name "${bad.slice(0, 130)}"`);
    if (this.cfg.maxRoomsPerConnection > 0 && rooms.length > this.cfg.maxRoomsPerConnection) {
      return ex.error('forbidden', `a stream may follow at most ${this.cfg.maxRoomsPerConnection} rooms`);
    }
    const positions = parseLastEventId(lastEventId);
    void (async () => {
      let identity: Identity;
      try {
        identity = await this.admission.identify(asking);
      } catch (err) {
        return ex.error('unauthorized', asAuthError(err).reason);
      }
      // A conversation (`dm:`) is joined through a worker, which checks its participants; a stream is not.
      const denied = rooms.find((r) => !mayJoin(identity, r) || isConversationRoom(r));
      if (denied !== undefined) return ex.error('forbidden', `not allowed to follow "${denied}"`);
      if (ex.aborted) return;
      const sse = new SseConn(res, randomId(12), identity.user, rooms, this.cfg.sseMaxBufferBytes);
      conn = sse;
      this.open.set(sse, []);
      const headers: Record<string, string> = {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        'x-accel-buffering': 'no',
      };
      this.admission.corsHeaders(asking.origin, headers);
      res.cork(() => sse.start(headers, 2000));
      if (identity.expiresAt !== undefined) sse.expiryKey = this.expiries.add(sse, identity.expiresAt);
      this.ensureHeartbeat();
      this.fanout.addSse(sse);
      await Promise.all(rooms.map((room) => this.follow(sse, room, positions.get(room))));
    })().catch((err: unknown) => {
      this.log.warn({ err: (err as Error).message }, 'sse stream failed');
      if (conn) conn.cut();
      else ex.error('unavailable', 'backend unavailable; retry');
    });
  }

  /** Replays a room from `after` (when the client said where it was), then attaches it live. */
  private async follow(sse: SseConn, room: string, after: number | undefined): Promise<void> {
    // Subscribed before the position is read, as for a join: nothing published after it is missed.
    const stream = this.fanout.acquire(room);
    const member = new SseRoomMember(sse, room, (m) => this.fanout.sseSubscribe(stream.topic, m));
    const held = this.open.get(sse);
    if (!held) return this.fanout.release(stream);
    held.push({ member, stream });
    let pos = after ?? 0;
    let page = await this.fanout.fetchAfter(room, pos, after === undefined ? 0 : Math.min(500, this.cfg.replayMax));
    if (!page) throw new Error('history unavailable');
    if (after !== undefined && page.seq - after <= this.cfg.replayMax) {
      for (let sent = 0; ; ) {
        for (const { seq, frame } of page.frames) if (seq > pos) sse.event(frame, room, (pos = seq));
        sent += page.frames.length;
        if (pos >= page.seq || page.frames.length === 0 || sent >= this.cfg.replayMax || sse.closed) break;
        const next = await this.fanout.fetchAfter(room, pos, Math.min(500, this.cfg.replayMax - sent));
        if (!next) throw new Error('history unavailable');
        page = next;
      }
    } else {
      // Nothing to resume from, or too much missed: the stream starts at the room's present.
      pos = page.seq;
    }
    if (sse.closed) return;
    sse.positions.set(room, pos);
    stream.attach(member, pos, page.epoch);
  }

  close(sse: SseConn): void {
    const held = this.open.get(sse);
    if (!held) return;
    this.open.delete(sse);
    sse.closed = true;
    if (sse.expiryKey !== undefined) this.expiries.cancel(sse, sse.expiryKey);
    this.fanout.removeSse(sse);
    for (const { member, stream } of held) {
      this.fanout.sseUnsubscribe(stream.topic, member);
      stream.detach(member);
      this.fanout.release(stream);
    }
  }

  private ensureHeartbeat(): void {
    if (this.heartbeat) return;
    this.heartbeat = setInterval(
      this.boundary.guarded('sse_heartbeat', () => {
        for (const sse of this.open.keys()) sse.comment('keepalive');
      }),
      this.cfg.sseHeartbeatMs,
    );
    this.heartbeat.unref();
  }

  /** Cuts every stream (the gateway is stopping); their EventSources reconnect elsewhere. */
  cutAll(): void {
    for (const sse of [...this.open.keys()]) sse.cut();
    clearInterval(this.heartbeat);
  }
}
