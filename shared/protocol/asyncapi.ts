/**
 * The AsyncAPI 3.0.0 document of protocol v1, built from the TypeBox schemas the gateway validates
 * with (schemas.ts, http-api.ts) and the code table (codes.ts): one source of truth. The gateway serves it at
 * `/asyncapi.json`; `npm run docs:protocol` renders docs/protocol.md from it (markdown.ts); and
 * test/unit/asyncapi.test.ts checks it with @asyncapi/parser and against the routes and schemas
 * the server serves.
 *
 * Operations are written from the client's side: `send` is client → server (a request, with the
 * answers in `reply`), `receive` is server → client.

 */
import type { TSchema } from '@sinclair/typebox';
import { CLOSE_CODES, ERROR_CODES, type ErrorCode } from './codes.ts';
import { HttpError, NotificationCreate, NotificationsCreated, RoomMessageCreate, RoomMessageCreated, RoomPresence, TicketCreated, UserConversations } from './http-api.ts';
import {
  CloseCodeSchema,
  DEFAULT_HISTORY_LIMIT,
  ErrorCodeSchema,
  Events,
  MAX_HISTORY_LIMIT,
  MessageEvent,
  Notification,
  PROTOCOL_VERSION,
  Replies,
  Requests,
  SUBPROTOCOL,
  User,
} from './schemas.ts';

export type Direction = 'send' | 'receive';

/** One frame of the protocol as the document lists it. */
export interface FrameSpec {
  /** Key in `components.messages` and in the channel's `messages`. */
  key: string;
  /** The frame's `type`. */
  type: string;
  kind: 'request' | 'reply' | 'event';
  direction: Direction;
  title: string;
  schema: TSchema;
  /** A frame as it appears on the wire; the tests check it validates against `schema`. */
  example: Record<string, unknown>;
  /** For requests: the key of the reply frame. */
  reply?: string;
}

const camel = (type: string) => type.replace(/[._-](\w)/g, (_, c: string) => c.toUpperCase());
const pascal = (type: string) => camel(type).replace(/^\w/, (c) => c.toUpperCase());

const ann = { id: 'ann', name: 'Ann' };
const bob = { id: 'bob', name: 'Bob' };
const TS = '2024-05-01T12:00:00.000Z';
/** The conversation of ann and bob (`conversationRoom`). */
const DM = 'dm:Qm3x0_aEw2kXnZbA7yq1cUoRlP9tV8sJhG4fD6eW5iY';
const message = (seq: number, content: string) => ({ type: 'message', room: 'lobby', seq, user: ann, content, ts: TS });
const notification = { id: 'n1', kind: 'info', title: 'Welcome', body: 'Your account is ready.', url: 'https://example.com/start', ts: TS, read: false };

/** An example of every frame, by message key. */
const EXAMPLES: Record<string, Record<string, unknown>> = {
  joinRequest: { type: 'join', id: 1, room: 'lobby', since: 41, epoch: 'k3j9x2', limit: 50 },
  joinReply: {
    type: 'reply',
    id: 1,
    room: 'lobby',
    seq: 42,
    epoch: 'k3j9x2',
    members: [ann, bob],
    history: [{ ...message(42, 'hello'), cid: 'c-42' }],
    recovered: true,
    read: 41,
    unread: 1,
  },
  leaveRequest: { type: 'leave', id: 2, room: 'lobby' },
  leaveReply: { type: 'reply', id: 2, room: 'lobby' },
  publishRequest: { type: 'publish', id: 3, room: 'lobby', content: 'hello', cid: 'c-43' },
  publishReply: { type: 'reply', id: 3, room: 'lobby', seq: 43, ts: TS },
  typingRequest: { type: 'typing', id: 4, room: 'lobby', typing: true },
  typingReply: { type: 'reply', id: 4, room: 'lobby' },
  historyRequest: { type: 'history', id: 5, room: 'lobby', before: 43, limit: 2 },
  historyReply: { type: 'reply', id: 5, room: 'lobby', seq: 43, epoch: 'k3j9x2', messages: [message(41, 'hi'), message(42, 'hello')] },
  presenceRequest: { type: 'presence', id: 6, room: 'lobby' },
  presenceReply: { type: 'reply', id: 6, room: 'lobby', members: [ann, bob] },
  directRequest: { type: 'direct', id: 7, to: 'bob', content: 'psst', cid: 'c-7' },
  directReply: { type: 'reply', id: 7, room: DM, seq: 3, ts: TS },
  readRequest: { type: 'read', id: 12, room: DM, seq: 3 },
  readReply: { type: 'reply', id: 12, room: DM, seq: 3, unread: 0 },
  conversationsRequest: { type: 'conversations', id: 13, limit: 20 },
  conversationsReply: {
    type: 'reply',
    id: 13,
    conversations: [{ room: DM, with: bob, seq: 3, read: 2, unread: 1, order: 17, last: { type: 'message', room: DM, seq: 3, user: bob, content: 'psst', ts: TS } }],
  },
  notificationsListRequest: { type: 'notifications.list', id: 8, limit: 20, unreadOnly: true },
  notificationsListReply: { type: 'reply', id: 8, items: [notification], unread: 1 },
  notificationsReadRequest: { type: 'notifications.read', id: 9, ids: ['n1'] },
  notificationsReadReply: { type: 'reply', id: 9, unread: 0 },
  refreshRequest: { type: 'refresh', id: 10, token: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbm4ifQ.c2lnbmF0dXJl' },
  refreshReply: { type: 'reply', id: 10, expiresAt: '2024-05-01T13:00:00.000Z' },
  pingRequest: { type: 'ping', id: 11 },
  pong: { type: 'pong', id: 11 },
  welcomeEvent: {
    type: 'welcome',
    connectionId: 'c7f3a9d2e1b0',
    node: 'gw-1',
    sessionId: 's4k2m9q8w7e6r5t1',
    user: ann,
    resumed: true,
    rooms: [{ room: 'lobby', seq: 42, epoch: 'k3j9x2' }],
    unread: 1,
    heartbeat: 25000,
  },
  messageEvent: { ...message(43, 'hello'), cid: 'c-43' },
  presenceEvent: { type: 'presence', room: 'lobby', event: 'join', user: bob },
  typingEvent: { type: 'typing', room: 'lobby', users: [bob] },
  directEvent: { type: 'direct', room: DM, seq: 3, from: bob, to: 'ann', content: 'psst', ts: TS, cid: 'c-7' },
  readEvent: { type: 'read', room: DM, seq: 3 },
  notificationEvent: { type: 'notification', notification, unread: 1 },
  notificationsReadEvent: { type: 'notifications.read', all: true, unread: 0 },
  statsEvent: {
    type: 'stats', room: 'rt.dashboard', node: 'gw-1', ts: '2026-11-21T09:30:01.000Z', connections: 1200, sse: 3, rooms: 80,
    messagesInPerSec: 150, messagesOutPerSec: 12_000, latencyMs: { p50: 0.8, p99: 3.1, max: 7.5, count: 150 }, busConnected: true,
  },
  error: { type: 'error', id: 3, code: 'not_member', message: 'join room "lobby" first' },
};

function example(key: string): Record<string, unknown> {
  const e = EXAMPLES[key];
  if (!e) throw new Error(`asyncapi: no example for message ${key}`);
  return e;
}

/** Every frame of the protocol, requests first, each followed by its reply; then the events. */
export function protocolFrames(): FrameSpec[] {
  const frames: FrameSpec[] = [];
  for (const [type, schema] of Object.entries(Requests) as [keyof typeof Requests, TSchema][]) {
    const replySchema: TSchema = Replies[type];
    const key = `${camel(type)}Request`;
    const replyKey = type === 'ping' ? 'pong' : `${camel(type)}Reply`;
    frames.push({ key, type, kind: 'request', direction: 'send', title: `\`${type}\` request`, schema, example: example(key), reply: replyKey });
    frames.push({
      key: replyKey,
      type: type === 'ping' ? 'pong' : 'reply',
      kind: 'reply',
      direction: 'receive',
      title: type === 'ping' ? '`pong`' : `\`${type}\` reply`,
      schema: replySchema,
      example: example(replyKey),
    });
  }
  for (const [type, schema] of Object.entries(Events) as [string, TSchema][]) {
    const key = type === 'error' ? 'error' : `${camel(type)}Event`;
    frames.push({ key, type, kind: 'event', direction: 'receive', title: type === 'error' ? '`error`' : `\`${type}\` event`, schema, example: example(key) });
  }
  return frames;
}

/** Plain JSON Schema: no TypeBox symbols, no `$id`s that would clash when a schema is inlined twice. */
export function jsonSchema(schema: TSchema): Record<string, unknown> {
  const strip = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(strip);
    if (v && typeof v === 'object') return Object.fromEntries(Object.entries(v).filter(([k]) => k !== '$id').map(([k, x]) => [k, strip(x)]));
    return v;
  };
  return strip(JSON.parse(JSON.stringify(schema))) as Record<string, unknown>;
}

const DESCRIPTION = `Real-time messaging over one WebSocket: rooms with ordered history, presence, typing, sessions
that survive reconnects, direct messages and notifications. Protocol version ${PROTOCOL_VERSION}.

Operations in this document are written from the client's side: \`send\` is client → server,
\`receive\` is server → client.

## Transport
- WebSocket at \`GET /ws\`. Text frames, UTF-8 JSON, **one JSON object per frame**. A binary frame is
  answered with close 1003; a frame over the size limit (default 64 KiB) with close 1009, as long as it
  is at most 1 MiB over it: a larger frame is refused as soon as its header announces its length, by
  dropping the connection without a close frame (the client sees 1006). A client more than the
  backpressure limit (default 1 MiB) behind is closed with 1013; one that has stopped reading so long
  that even the close frame cannot be written sees the connection end without it (1006). Either way
  reconnect with backoff and recover with \`join\` \`since\`/\`epoch\` or the session.
- Subprotocol: offer \`${SUBPROTOCOL}\` and the server selects it. Offering only other subprotocols is
  refused at the upgrade with HTTP 400. Offering none is allowed.
- Credentials on the upgrade, one of (checked in this order): \`?ticket=<one-time ticket>\` (from
  \`POST /api/tickets\`); \`?token=<JWT>\`; \`Authorization: Bearer <JWT>\` (non-browser clients); the JWT
  in a cookie (\`rt_token\` unless configured otherwise); \`?username=<name>\` only when anonymous mode is on
  (the embedded default for local use; off in production). Missing, bad or expired credentials are
  reported after the upgrade as close 4001 with a reason, so browsers can tell them from network errors.
- Other refusals at the upgrade are HTTP responses with a JSON error body: 403 (origin not allowed),
  429 (too many upgrades from one address), 503 (gateway draining or at capacity; retry with backoff).
- Resume: \`?session=<sessionId>\` from an earlier \`welcome\` of the same user (see Sessions).
- The first frame the server sends is \`welcome\`. Send a \`ping\` every \`welcome.heartbeat\` ms; a
  connection silent for twice as long is closed.

## Requests and answers
Every request is \`{"type": ..., "id"?: string|number, ...fields}\`. A request with an \`id\` gets
exactly one answer carrying the same \`id\`: \`{"type":"reply","id":...,...result}\` (for \`ping\`:
\`{"type":"pong","id":...}\`) or \`{"type":"error","id":...,"code":...,"message":...}\`. A request without
\`id\` gets an answer only on error. Answers to different requests may arrive in any order and
interleaved with events: match them by \`id\` (the \`correlationId\` of the messages below). Fields a
frame does not define are ignored, so clients and servers can add optional fields. A bad frame gets an
\`error\` and the connection stays open. \`publish\`, \`typing\`, \`history\` and \`presence\` require
membership of the room (\`not_member\` otherwise). A connection sending requests faster than its
rate limit (default 20 a second, bursts of 40) gets \`rate_limited\`; sustained abuse closes it with 1008.
A connection with more requests in flight than its window (default 64), or a gateway with more than
its own window in flight towards the workers, gets \`overloaded\` at once, with \`retryAfterMs\`: the
request was not started (nothing stored), so sending it again after that delay (a \`publish\` with the
same \`cid\`) is safe. No request waits out the server's request timeout because a queue grew.

## Ordering and delivery guarantees
- Each room has one sequence: \`seq\` rises by exactly 1 per accepted message, starting at 1.
- A \`publish\` is acknowledged only after the message is stored in the room's history. Retrying a
  \`publish\` with the same \`cid\` (e.g. after \`unavailable\`, \`overloaded\` or a reconnect) never stores it twice.
- Every connected member receives the room's messages in \`seq\` order. A client that sees a gap (a
  \`seq\` more than one above the last it had) fills it with \`history\` \`after\` its last seq.
- History keeps at least the last N messages per room (default 1000) for a configurable time (default
  24 h). Each room's history has an \`epoch\`, a string that changes when the history was lost and
  \`seq\` started again.
- Recovery is all or nothing: \`join\` with \`since\` and the \`epoch\` the client had returns every
  message after \`since\` with \`recovered: true\`, or, when the epoch differs or is missing, some of
  them are gone, or more than the replay cap (default 500) are missing, \`recovered: false\` and the
  latest \`limit\` messages (default ${DEFAULT_HISTORY_LIMIT}, max ${MAX_HISTORY_LIMIT}). Never a silent
  partial replay. Send both: a \`since\` without \`epoch\` is always answered \`recovered: false\`, since
  the history it counted in may have been lost and its \`seq\` started again.

## Sessions
- A session (\`sessionId\`, the user, the rooms joined) outlives its connection for a grace period
  (default 30 s). Reconnecting with \`?session=\` within it, to any gateway, restores the rooms without
  \`presence\` leave/join events for the others, and \`welcome\` says \`resumed: true\` with each room's
  current \`seq\`: fetch \`history\` \`after\` the last seq you had to catch up.
- After the grace period the session ends: its rooms are left and \`presence\` \`leave\` is sent.

## Reconnecting
Close codes say what to do (see \`x-rt-close-codes\` in components): stop, fix the client, get new
credentials, or reconnect with backoff and jitter, resuming the session with \`?session=\`.

## SSE and HTTP
The same events are available read-only over Server-Sent Events at \`GET /sse\` (the \`sse\` channel).
The HTTP API of the gateway (tickets, server-to-server notifications and messages, presence, health)
is described in \`x-rt-http-api\` at the top level of this document; its errors are JSON
\`{"error":{"code","message"}}\` with the status of the error code.`;

interface Endpoint {
  method: 'GET' | 'POST';
  path: string;
  summary: string;
  auth: string;
  request?: { contentType: string; schema: { $ref: string } };
  query?: Record<string, string>;
  responses: { status: number; description: string; contentType?: string; schema?: { $ref: string } }[];
}

const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
/** Error responses of an endpoint: one row per status, naming the codes it may carry. */
const errorResponses = (...codes: ErrorCode[]) =>
  [...new Set(codes.map((c) => ERROR_CODES[c].status))].map((status) => ({
    status,
    description: codes
      .filter((c) => ERROR_CODES[c].status === status)
      .map((c) => `\`${c}\``)
      .join(', '),
    contentType: 'application/json',
    schema: ref('HttpError'),
  }));

const HTTP_API: Endpoint[] = [
  {
    method: 'POST',
    path: '/api/tickets',
    summary: 'A one-time ticket for a browser upgrade (`/ws?ticket=` or `/sse?ticket=`): single use, bound to the caller\'s IP address, short-lived (default 30 s).',
    auth: '`Authorization: Bearer <JWT>`',
    responses: [{ status: 201, description: 'Created.', contentType: 'application/json', schema: ref('TicketCreated') }, ...errorResponses('unauthorized', 'rate_limited', 'unavailable')],
  },
  {
    method: 'POST',
    path: '/api/notifications',
    summary: 'Notify one user (`userId`) or several (`userIds`): each gets a `notification` event on every connection, and it is kept for `notifications.list`.',
    auth: 'The server API key: `Authorization: Bearer <API_KEY>`',
    request: { contentType: 'application/json', schema: ref('NotificationCreate') },
    responses: [
      { status: 202, description: 'Accepted.', contentType: 'application/json', schema: ref('NotificationsCreated') },
      ...errorResponses('bad_request', 'unauthorized', 'forbidden', 'too_large', 'unavailable'),
    ],
  },
  {
    method: 'POST',
    path: '/api/rooms/{room}/messages',
    summary: 'Publish a message to a room from a server: stored and delivered like a `publish`.',
    auth: 'The server API key: `Authorization: Bearer <API_KEY>`',
    request: { contentType: 'application/json', schema: ref('RoomMessageCreate') },
    responses: [
      { status: 201, description: 'Stored.', contentType: 'application/json', schema: ref('RoomMessageCreated') },
      ...errorResponses('bad_request', 'unauthorized', 'forbidden', 'too_large', 'rate_limited', 'unavailable'),
    ],
  },
  {
    method: 'GET',
    path: '/api/rooms/{room}/presence',
    summary: 'Who is in a room now.',
    auth: 'The server API key: `Authorization: Bearer <API_KEY>`',
    responses: [{ status: 200, description: 'OK.', contentType: 'application/json', schema: ref('RoomPresence') },
      ...errorResponses('bad_request', 'unauthorized', 'forbidden', 'unavailable'),
    ],
  },
  {
    method: 'GET',
    path: '/api/users/{user}/conversations',
    summary: "A user's conversations, most recent first, with read cursors and unread counts, as `conversations` answers them (`?limit=`, `?before=`).",
    auth: 'The server API key: `Authorization: Bearer <API_KEY>`',
    responses: [{ status: 200, description: 'OK.', contentType: 'application/json', schema: ref('UserConversations') },
      ...errorResponses('bad_request', 'unauthorized', 'forbidden', 'unavailable'),
    ],
  },
  {
    method: 'GET',
    path: '/sse',
    summary:
      'Server-Sent Events (`text/event-stream`) for the rooms in `?rooms=a,b`: see the `sse` channel. Events are named like the WebSocket event types, room messages carry `id: <room>:<seq>` (with several rooms, the position in each: `a:5,b:7`), `Last-Event-ID` resumes every room from history (up to the replay cap), a `retry:` hint comes first, and a comment line comes at least every 15 s. A reader that falls too far behind is cut and resumes.',
    auth: 'As for `/ws`',
    query: { rooms: 'Comma-separated room names.' },
    responses: [{ status: 200, description: 'The event stream.', contentType: 'text/event-stream' },
      ...errorResponses('bad_request', 'unauthorized', 'forbidden', 'rate_limited', 'unavailable'),
    ],
  },
  { method: 'GET', path: '/healthz', summary: 'Alive.', auth: 'None', responses: [{ status: 200, description: 'The process is alive.', contentType: 'application/json' }] },
  {
    method: 'GET',
    path: '/readyz',
    summary: 'Ready: connected to its backends and not draining.',
    auth: 'None',
    responses: [
      { status: 200, description: 'Ready.', contentType: 'application/json' },
      { status: 503, description: 'Not ready (a backend is down, or draining).', contentType: 'application/json' },
    ],
  },
  { method: 'GET', path: '/metrics', summary: 'Prometheus metrics.', auth: 'None', responses: [{ status: 200, description: 'Prometheus text format.', contentType: 'text/plain' }] },
  {
    method: 'GET',
    path: '/asyncapi.json',
    summary: 'This document.',
    auth: 'None',
    responses: [{ status: 200, description: 'AsyncAPI 3.0.0, JSON.', contentType: 'application/json' }],
  },
];

/** The events the SSE channel carries (requests need the WebSocket). */
const SSE_EVENTS = ['message', 'presence', 'typing', 'direct', 'notification', 'notifications.read', 'error'];

function servers(serverUrl: string) {
  const url = new URL(serverUrl);
  const secure = url.protocol === 'wss:' || url.protocol === 'https:';
  const base = url.pathname.replace(/\/+$/, '');
  const server = (protocol: string, description: string, security: object[]) => ({
    host: url.host,
    protocol,
    ...(base ? { pathname: base } : {}),
    description,
    security,
  });
  const credentials = ['ticket', 'token', 'bearer', 'cookie', 'anonymous'].map((name) => ({ $ref: `#/components/securitySchemes/${name}` }));
  return {
    websocket: server(secure ? 'wss' : 'ws', 'The gateway (or nginx in front of the gateways): WebSocket.', credentials),
    http: server(secure ? 'https' : 'http', 'The same gateway: Server-Sent Events and the HTTP API.', credentials),
  };
}

const SECURITY_SCHEMES = {
  ticket: {
    type: 'httpApiKey',
    in: 'query',
    name: 'ticket',
    description: 'A one-time ticket from `POST /api/tickets`: single use, from the same IP address, within its `expiresIn` seconds. For browsers, which cannot set headers on a WebSocket.',
  },
  token: {
    type: 'httpApiKey',
    in: 'query',
    name: 'token',
    description:
      'A JWT in the query string. Claims: `sub` (the user id, required), `name` (display name, default `sub`), `exp` (refresh before it or be closed with 4001), `rooms` (patterns of the `private:*` rooms the user may join, `*` matching any run of characters; at most 256 patterns of at most 256 characters each, or the token is refused with 4001).',
  },
  bearer: {
    type: 'http',
    scheme: 'bearer',
    bearerFormat: 'JWT',
    description: '`Authorization: Bearer <JWT>` on the upgrade (non-browser clients). Same claims as `token`.',
  },
  cookie: {
    type: 'httpApiKey',
    in: 'cookie',
    name: 'rt_token',
    description: 'The JWT in a cookie (the name is configurable with `JWT_COOKIE`; `rt_token` by default).',
  },
  anonymous: {
    type: 'httpApiKey',
    in: 'query',
    name: 'username',
    description: '`?username=<name>` (1–64 characters, no control characters): user id and name are the username. Only when anonymous mode is on (the embedded default; off in production).',
  },
};

const wsBinding = {
  ws: {
    bindingVersion: '0.1.0',
    method: 'GET',
    query: {
      type: 'object',
      properties: {
        ticket: { type: 'string', maxLength: 128, description: 'One-time ticket from `POST /api/tickets`.' },
        token: { type: 'string', description: 'A JWT.' },
        username: { type: 'string', description: 'Anonymous mode only: the user id and name.' },
        session: { type: 'string', maxLength: 64, description: 'Resume this session (`welcome.sessionId`) within its grace period.' },
      },
    },
    headers: {
      type: 'object',
      properties: {
        Authorization: { type: 'string', description: '`Bearer <JWT>`.' },
        Cookie: { type: 'string', description: 'May carry the JWT (`rt_token=<JWT>`).' },
        'Sec-WebSocket-Protocol': { type: 'string', description: `Offer \`${SUBPROTOCOL}\` (or nothing).` },
        Origin: { type: 'string', description: 'Checked against the allowed origins when configured (HTTP 403 otherwise).' },
      },
    },
  },
};

const sseQueryBinding = {
  type: 'object',
  required: ['rooms'],
  properties: {
    rooms: { type: 'string', description: 'Comma-separated room names to follow.' },
    ticket: { type: 'string', description: 'One-time ticket from `POST /api/tickets`.' },
    token: { type: 'string', description: 'A JWT.' },
    username: { type: 'string', description: 'Anonymous mode only.' },
  },
};

/** The AsyncAPI 3.0.0 document of protocol v1. `serverUrl` is where clients reach the gateway. */
export function asyncApiDocument(opts: { serverUrl?: string } = {}): Record<string, unknown> {
  const frames = protocolFrames();
  const byKey = new Map(frames.map((f) => [f.key, f]));
  const msgRef = (channel: string, key: string) => ({ $ref: `#/channels/${channel}/messages/${key}` });

  const messages: Record<string, unknown> = {};
  for (const f of frames) {
    const payload = jsonSchema(f.schema);
    const correlated = 'id' in ((payload.properties as object | undefined) ?? {});
    messages[f.key] = {
      name: f.key,
      title: f.title.replace(/`/g, ''),
      summary: typeof payload.description === 'string' ? payload.description : f.title,
      contentType: 'application/json',
      payload,
      ...(correlated ? { correlationId: { $ref: '#/components/correlationIds/requestId' } } : {}),
      examples: [{ name: f.key, summary: `A ${f.title.replace(/`/g, '')} frame.`, payload: f.example }],
      'x-rt-type': f.type,
      'x-rt-direction': f.direction === 'send' ? 'client-to-server' : 'server-to-client',
    };
  }

  const channelMessages = (keys: string[]) => Object.fromEntries(keys.map((k) => [k, { $ref: `#/components/messages/${k}` }]));
  const sseKeys = frames.filter((f) => f.kind === 'event' && SSE_EVENTS.includes(f.type)).map((f) => f.key);

  const operations: Record<string, unknown> = {};
  for (const f of frames) {
    if (f.kind === 'request') {
      const replyFrame = byKey.get(f.reply!)!;
      operations[`send${pascal(f.type)}`] = {
        action: 'send',
        channel: { $ref: '#/channels/ws' },
        title: `Send ${f.title.replace(/`/g, '')}`,
        summary: (f.schema.description as string | undefined) ?? f.title,
        description: `With an \`id\`, answered by exactly one ${replyFrame.title} or \`error\` with the same \`id\`; without one, only errors are sent.`,
        messages: [msgRef('ws', f.key)],
        reply: { channel: { $ref: '#/channels/ws' }, messages: [msgRef('ws', replyFrame.key), msgRef('ws', 'error')] },
      };
    } else if (f.kind === 'event') {
      operations[`receive${pascal(f.type)}`] = {
        action: 'receive',
        channel: { $ref: '#/channels/ws' },
        title: `Receive ${f.title.replace(/`/g, '')}`,
        summary: (f.schema.description as string | undefined) ?? f.title,
        messages: [msgRef('ws', f.key)],
      };
    }
  }
  operations.receiveSse = {
    action: 'receive',
    channel: { $ref: '#/channels/sse' },
    title: 'Receive events over SSE',
    summary: 'Room and user events as Server-Sent Events, read-only.',
    messages: sseKeys.map((k) => msgRef('sse', k)),
    bindings: { http: { bindingVersion: '0.3.0', method: 'GET', query: sseQueryBinding } },
  };

  const errorCodes = Object.entries(ERROR_CODES).map(([code, e]) => ({ code, status: e.status, description: e.description, client: e.client }));
  const closeCodes = Object.entries(CLOSE_CODES).map(([name, c]) => ({ code: c.code, name, meaning: c.meaning, client: c.client }));

  return {
    asyncapi: '3.0.0',
    id: 'urn:rt:protocol:v1',
    info: {
      title: 'rt real-time messaging protocol',
      version: PROTOCOL_VERSION,
      description: DESCRIPTION,
    },
    defaultContentType: 'application/json',
    servers: servers(opts.serverUrl ?? 'ws://localhost:8080'),
    channels: {
      ws: {
        address: '/ws',
        title: 'WebSocket',
        summary: `The one WebSocket of a client: requests, answers and events, JSON text frames, subprotocol \`${SUBPROTOCOL}\`.`,
        description:
          'Connect with credentials in the query string, a header or a cookie (see the server security schemes and the `ws` binding). The server sends `welcome` first.',
        servers: [{ $ref: '#/servers/websocket' }],
        messages: channelMessages(frames.map((f) => f.key)),
        bindings: wsBinding,
      },
      sse: {
        address: '/sse',
        title: 'Server-Sent Events',
        summary: 'Read-only event stream (`text/event-stream`) for the rooms in `?rooms=a,b`.',
        description: [
          'Credentials as for `/ws` (query string, `Authorization` header or cookie).',
          'Each event is named like the WebSocket event type (`event: message`) and its `data` is the same JSON object as the WebSocket frame.',
          'Room messages carry `id: <room>:<seq>`; a stream of several rooms carries the position in each, `a:5,b:7` (room names cannot contain commas). Reconnecting with `Last-Event-ID` (or `?lastEventId=`) resumes every room after it, from history, up to the replay cap.',
          'A comment line comes at least every 15 s.',
        ].join(' '),
        servers: [{ $ref: '#/servers/http' }],
        messages: channelMessages(sseKeys),
      },
    },
    operations,
    components: {
      messages,
      schemas: {
        User: jsonSchema(User),
        Message: jsonSchema(MessageEvent),
        Notification: jsonSchema(Notification),
        ErrorCode: jsonSchema(ErrorCodeSchema),
        CloseCode: jsonSchema(CloseCodeSchema),
        TicketCreated: jsonSchema(TicketCreated),
        NotificationCreate: jsonSchema(NotificationCreate),
        NotificationsCreated: jsonSchema(NotificationsCreated),
        RoomMessageCreate: jsonSchema(RoomMessageCreate),
        RoomMessageCreated: jsonSchema(RoomMessageCreated),
        RoomPresence: jsonSchema(RoomPresence),
        UserConversations: jsonSchema(UserConversations),
        HttpError: jsonSchema(HttpError),
      },
      securitySchemes: SECURITY_SCHEMES,
      correlationIds: {
        requestId: { description: 'The request `id`, echoed in its one answer (`reply`, `pong` or `error`).', location: '$message.payload#/id' },
      },
      'x-rt-error-codes': errorCodes,
      'x-rt-close-codes': closeCodes,
    },
    'x-rt-http-api': HTTP_API,
  };
}
