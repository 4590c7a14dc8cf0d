/**
 * The internal protocol: what gateways and workers say to each other over the bus. Clients never
 * see it; room and user events (what workers publish for the gateways to fan out) are in
 * `shared/envelope.ts`.
 *
 * Request (gateway → worker, on `subjects.requests`; liveness on `subjects.alive`): a frame behind
 * a per-connection header the gateway builds once at connect,
 *   {"c":"<connectionId>","n":"<node>","s":"<sessionId>","u":{"id":..,"name":..},"f":<frame>}
 * so forwarding a client frame, validated by the gateway and embedded as it came, costs one string
 * concatenation. Internal frames have types starting with `$`, which clients cannot send (the
 * gateway forwards only validated protocol types); each has a builder and a reader below.
 *
 * Answer (worker → gateway): the exact frame for the client (a `reply` or an `error`), zero bytes
 * when there is nothing to send, or an internal answer (`$open`, `$ticket.take`, `$notify`: JSON).
 * Two answers carry a room position in front of the frame, in the style of room events, so the
 * gateway reads it without parsing the frame:
 *   join reply      "#<seq> <epoch>\n<reply frame as the client gets it>"
 *   $history reply  "#<seq> <epoch> <seq1>:<bytes1> <seq2>:<bytes2> ...\n<message1><message2>..."
 * (the messages are the stored frames, exact bytes, concatenated: a gap fill hands them to the
 * room stream as they are). An error answer is a plain `{"type":"error",...}` frame.
 */
import { checkRequest, type ParseResult } from './validate.ts';
import type { AnyRequest, RequestType, User } from './schemas.ts';

const j = JSON.stringify;
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const latin1 = new TextDecoder('latin1');
const utf8 = new TextDecoder();
const HASH = 35;
const NL = 10;

export type NotificationKind = 'info' | 'success' | 'warning' | 'error';
const KINDS: ReadonlySet<unknown> = new Set<NotificationKind>(['info', 'success', 'warning', 'error']);
const isKind = (v: unknown): v is NotificationKind => KINDS.has(v);

/** The internal requests, as a worker reads them. */
export type InternalRequest =
  | { type: '$open'; session?: string }
  | { type: '$detach'; typing: string[] }
  | { type: '$alive' }
  | { type: '$ticket.put'; ticket: string; data: string; ttlMs: number }
  | { type: '$ticket.take'; ticket: string }
  | { type: '$history'; room: string; after: number; limit: number }
  | { type: '$notify'; userIds: string[]; kind: NotificationKind; title: string; body: string; url?: string };

export type WorkerFrame = AnyRequest | InternalRequest;
export type FrameType = WorkerFrame['type'];
export type FrameOf<T extends FrameType> = Extract<WorkerFrame, { type: T }>;

export interface RequestEnvelope<F = WorkerFrame> {
  c: string;
  n: string;
  /** Session id; empty before the session is open, and in the gateway's own requests. */
  s: string;
  u: User;
  f: F;
}

export function envelopeHeader(connId: string, node: string, user: User, sessionId = ''): string {
  // Kept per connection: made flat (one string, not a tree of the concatenated parts).
  return flat(`{"c":${j(connId)},"n":${j(node)},"s":${j(sessionId)},"u":${j({ id: user.id, name: user.name })},"f":`);
}

/** `s` as one sequential string: V8 keeps a concatenation as a tree of its parts until it is read. */
function flat(s: string): string {
  return decoder.decode(encoder.encode(s));
}

/** A request's bytes: a header from `envelopeHeader` and a frame (a client's text or a builder's). */
export function envelope(header: string, frame: string): Uint8Array {
  return encoder.encode(header + frame + '}');
}

/** Builders of the internal frames (and of the client frames the gateway sends on its own). */
export const frames = {
  open: (session: string | undefined): string => j({ type: '$open', session }),
  detach: (typing: string[]): string => j({ type: '$detach', typing }),
  alive: (): string => '{"type":"$alive"}',
  ticketPut: (ticket: string, data: string, ttlMs: number): string => j({ type: '$ticket.put', ticket, data, ttlMs }),
  ticketTake: (ticket: string): string => j({ type: '$ticket.take', ticket }),
  history: (room: string, after: number, limit: number): string => j({ type: '$history', room, after, limit }),
  notify: (n: { userIds: string[]; kind: NotificationKind; title: string; body: string; url?: string }): string =>
    j({ type: '$notify', userIds: n.userIds, kind: n.kind, title: n.title, body: n.body, url: n.url }),
  leave: (room: string): string => j({ type: 'leave', room }),
  typingOff: (room: string): string => j({ type: 'typing', room, typing: false }),
};

// ── Reading a request (worker) ─────────────────────────────────────────────────────────────────

export type EnvelopeResult = { ok: true; env: RequestEnvelope } | Extract<ParseResult, { ok: false }>;

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
const isString = (v: unknown): v is string => typeof v === 'string';
const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isStrings = (v: unknown): v is string[] => Array.isArray(v) && v.every(isString);

/** Reads a request envelope. Never throws: anything malformed is a `bad_request` result. */
export function readEnvelope(data: Uint8Array): EnvelopeResult {
  let v: unknown;
  try {
    v = JSON.parse(utf8.decode(data));
  } catch {
    return { ok: false, code: 'bad_request', message: 'malformed request' };
  }
  if (!isRecord(v) || !isString(v.c) || !isString(v.n) || !isString(v.s) || !isRecord(v.u) || !isRecord(v.f)) {
    return { ok: false, code: 'bad_request', message: 'malformed request' };
  }
  const { c, n, s, u, f } = v;
  if (!isString(u.id) || !isString(u.name)) return { ok: false, code: 'bad_request', message: 'malformed request' };
  const user: User = { id: u.id, name: u.name };
  if (isString(f.type) && f.type.startsWith('$')) {
    const frame = readInternal(f);
    if (!frame) {
      const known = isInternalType(f.type);
      return { ok: false, code: known ? 'bad_request' : 'unknown_type', message: known ? `malformed ${f.type}` : `unknown type "${f.type.slice(0, 64)}"` };
    }
    return { ok: true, env: { c, n, s, u: user, f: frame } };
  }
  const checked = checkRequest(f);
  return checked.ok ? { ok: true, env: { c, n, s, u: user, f: checked.request } } : checked;
}

const INTERNAL: Record<InternalRequest['type'], (f: Record<string, unknown>) => InternalRequest | undefined> = {
  $open: (f) => (f.session === undefined || isString(f.session) ? { type: '$open', session: f.session } : undefined),
  $detach: (f) => (f.typing === undefined ? { type: '$detach', typing: [] } : isStrings(f.typing) ? { type: '$detach', typing: f.typing } : undefined),
  $alive: () => ({ type: '$alive' }),
  '$ticket.put': (f) => (isString(f.ticket) && isString(f.data) && isCount(f.ttlMs) ? { type: '$ticket.put', ticket: f.ticket, data: f.data, ttlMs: f.ttlMs } : undefined),
  '$ticket.take': (f) => (isString(f.ticket) ? { type: '$ticket.take', ticket: f.ticket } : undefined),
  $history: (f) => (isString(f.room) && isCount(f.after) && isCount(f.limit) ? { type: '$history', room: f.room, after: f.after, limit: f.limit } : undefined),
  $notify: (f) => {
    const { userIds, kind, title, body, url } = f;
    if (!isStrings(userIds) || !isKind(kind) || !isString(title) || !isString(body)) return undefined;
    if (url !== undefined && !isString(url)) return undefined;
    return { type: '$notify', userIds, kind, title, body, url };
  },
};

const isInternalType = (v: unknown): v is InternalRequest['type'] => isString(v) && Object.hasOwn(INTERNAL, v);

function readInternal(f: Record<string, unknown>): InternalRequest | undefined {
  return isInternalType(f.type) ? INTERNAL[f.type](f) : undefined;
}

/** Narrows an envelope read by `readEnvelope` to one frame type. */
export function frameIs<T extends FrameType>(env: RequestEnvelope, type: T): env is RequestEnvelope<FrameOf<T>> {
  return env.f.type === type;
}

/** Client request types and internal ones: every type a worker serves. */
export type ServedType = RequestType | InternalRequest['type'];

// ── Answers ────────────────────────────────────────────────────────────────────────────────────

export interface OpenAnswer {
  sessionId: string;
  resumed: boolean;
  rooms: { room: string; seq: number; epoch: string }[];
  unread: number;
}

export function openAnswer(a: OpenAnswer): string {
  return j(a);
}

/** The `$open` answer; undefined for an error answer or anything malformed. */
export function readOpenAnswer(data: Uint8Array): OpenAnswer | undefined {
  const v = parseObject(data);
  if (!v || !isString(v.sessionId) || typeof v.resumed !== 'boolean' || !isCount(v.unread) || !Array.isArray(v.rooms)) return undefined;
  const rooms: OpenAnswer['rooms'] = [];
  for (const r of v.rooms) {
    if (!isRecord(r) || !isString(r.room) || !isCount(r.seq) || !isString(r.epoch)) return undefined;
    rooms.push({ room: r.room, seq: r.seq, epoch: r.epoch });
  }
  return { sessionId: v.sessionId, resumed: v.resumed, rooms, unread: v.unread };
}

export function ticketAnswer(data: string | undefined): string {
  return data === undefined ? '{}' : j({ data });
}

/** The `$ticket.take` answer: the ticket's data, or undefined when it was unknown, used or expired. */
export function readTicketAnswer(data: Uint8Array): string | undefined {
  const v = parseObject(data);
  if (!v) throw new Error('malformed $ticket.take answer');
  return isString(v.data) ? v.data : undefined;
}

function parseObject(data: Uint8Array): Record<string, unknown> | undefined {
  try {
    const v: unknown = JSON.parse(utf8.decode(data));
    return isRecord(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

/** A join reply with the room position in front (see the header). */
export function positioned(seq: number, epoch: string, frame: string): string {
  return `#${seq} ${epoch}\n${frame}`;
}

/** Where a positioned answer's parts are. */
export interface Position {
  seq: number;
  epoch: string;
  /** Offset of what follows the header. */
  offset: number;
}

/** Reads the position in front of an answer; undefined when the answer has none (an error frame). */
export function readPosition(data: Uint8Array): Position | undefined {
  if (data[0] !== HASH) return undefined;
  const end = data.indexOf(NL);
  if (end < 0) return undefined;
  const head = latin1.decode(data.subarray(1, end));
  const space = head.indexOf(' ');
  const seq = Number(head.slice(0, space));
  if (space <= 0 || !isCount(seq)) return undefined;
  const next = head.indexOf(' ', space + 1);
  return { seq, epoch: head.slice(space + 1, next < 0 ? undefined : next), offset: end + 1 };
}

/** A `$history` answer: the room position and the stored messages, exact, each with its seq. */
export function historyAnswer(seq: number, epoch: string, messages: { seq: number; frame: string }[]): string {
  let head = `#${seq} ${epoch}`;
  let body = '';
  for (const m of messages) {
    head += ` ${m.seq}:${Buffer.byteLength(m.frame)}`;
    body += m.frame;
  }
  return `${head}\n${body}`;
}

export interface HistoryAnswer {
  seq: number;
  epoch: string;
  /** Views into the answer's bytes (not copies). */
  frames: { seq: number; frame: Uint8Array }[];
}

export function readHistoryAnswer(data: Uint8Array): HistoryAnswer | undefined {
  const pos = readPosition(data);
  if (!pos) return undefined;
  const head = latin1.decode(data.subarray(1, pos.offset - 1)).split(' ');
  const frames: HistoryAnswer['frames'] = [];
  let at = pos.offset;
  for (let i = 2; i < head.length; i++) {
    const part = head[i]!;
    const colon = part.indexOf(':');
    const seq = Number(part.slice(0, colon));
    const bytes = Number(part.slice(colon + 1));
    if (colon <= 0 || !isCount(seq) || !isCount(bytes) || at + bytes > data.length) return undefined;
    frames.push({ seq, frame: data.subarray(at, at + bytes) });
    at += bytes;
  }
  return { seq: pos.seq, epoch: pos.epoch, frames };
}

/** The seq of a stored message frame (`{"type":"message","room":...,"seq":N,...}`), read without parsing it. */
export function seqOfMessage(frame: string): number {
  const at = frame.indexOf('"seq":');
  return at < 0 ? 0 : Number.parseInt(frame.slice(at + 6, at + 6 + 17), 10) || 0;
}
