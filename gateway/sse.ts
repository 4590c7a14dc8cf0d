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
import type { User } from '../shared/protocol/schemas.ts';
import type { StreamMember } from './room-stream.ts';

const encoder = new TextEncoder();
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
  /** Ends the stream when its credentials expire (there is no `refresh` on a one-way stream). */
  expiryTimer: NodeJS.Timeout | undefined;

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
