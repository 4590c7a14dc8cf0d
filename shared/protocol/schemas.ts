/**
 * Protocol v1 frames, defined once. The gateway validates client frames with the compiled
 * checkers in validate.ts; the worker, the SDK, the AsyncAPI document (asyncapi.ts) and
 * docs/protocol.md use the same definitions, so a field described here is described everywhere.
 *
 * Descriptions are part of the contract: they are what a third-party client author reads.
 * The HTTP API's bodies are in http-api.ts, built from the same building blocks.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';
import { CLOSE_CODES, ERROR_CODES, type ErrorCode } from './codes.ts';
import { DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT, ROOM_PATTERN, USER_ID_MAX, USER_ID_PATTERN } from './constants.ts';

export { DEFAULT_HISTORY_LIMIT, MAX_HISTORY_LIMIT, PROTOCOL_VERSION, ROOM_PATTERN, SUBPROTOCOL, USER_ID_MAX, USER_ID_PATTERN } from './constants.ts';

/**
 * The same schema with another description: shared building blocks (`RoomName`, `User`) read
 * differently in each frame ("the room to join", "the author"). Validation is unchanged.
 */
export function describe<T extends TSchema>(schema: T, description: string): T {
  return { ...schema, description };
}

export const RoomName = Type.String({ pattern: ROOM_PATTERN, description: 'Room name: [A-Za-z0-9_.:-]{1,128}' });
export const RequestId = Type.Union([Type.String({ maxLength: 128 }), Type.Number()], {
  description: 'Chosen by the client; echoed in the one answer to this request.',
});
export const Seq = Type.Integer({ minimum: 0, description: 'Position in the room sequence; the first message is 1.' });
const Limit = Type.Integer({
  minimum: 0,
  maximum: MAX_HISTORY_LIMIT,
  description: `Most messages to return (default ${DEFAULT_HISTORY_LIMIT}, max ${MAX_HISTORY_LIMIT}).`,
});
const Epoch = Type.String({
  description: "The room history's epoch: changes when the history was lost and `seq` started again.",
});
const Timestamp = Type.String({ description: 'ISO 8601 time, UTC (`2024-05-01T12:00:00.000Z`).' });
const AnswerId = describe(RequestId, 'The `id` of the request this answers.');
const Cid = Type.String({ minLength: 1, maxLength: 128, description: 'Client message id.' });
const Unread = Type.Integer({ minimum: 0, description: 'Messages after the read cursor.' });

/** A user id as a request names one (`direct`'s `to`, a notification's recipients). */
export const UserId = Type.String({
  minLength: 1,
  maxLength: USER_ID_MAX,
  pattern: USER_ID_PATTERN,
  description: `User id: 1–${USER_ID_MAX} characters of well-formed text, no control characters.`,
});
export const User = Type.Object(
  {
    id: describe(UserId, 'Stable user id (the JWT subject, or the anonymous username).'),
    name: Type.String({ description: 'Display name.' }),
  },
  { title: 'User', description: 'A user as other clients see it.' },
);
export type User = Static<typeof User>;

/** The error codes of codes.ts as a documented enum (each value carries its description). */
export const ErrorCodeSchema = Type.Union(
  (Object.keys(ERROR_CODES) as ErrorCode[]).map((code) => Type.Literal(code, { description: ERROR_CODES[code].description })),
  { title: 'ErrorCode', description: 'Stable error code; the message is for people and may change.' },
);

/** The close codes of codes.ts as a documented enum. */
export const CloseCodeSchema = Type.Union(
  Object.values(CLOSE_CODES).map((c) => Type.Literal(c.code, { description: `${c.meaning}; the client should ${c.client}.` })),
  { title: 'CloseCode', description: 'WebSocket close codes the server uses, with what the client should do.' },
);

// ---------------------------------------------------------------------------------------------
// Client → server: requests

/** Request schemas by `type`, as the gateway validates them. Fields not listed are ignored (forward compatible). */
export const Requests = {
  join: Type.Object(
    {
      type: Type.Literal('join'),
      id: Type.Optional(RequestId),
      room: describe(RoomName, 'The room to join.'),
      since: Type.Optional(
        describe(
          Seq,
          'Recovery: the last `seq` the client has, sent with its `epoch`. The reply then holds every message after it (`recovered: true`) or, when that is impossible, the latest `limit` (`recovered: false`). Without `epoch` nothing says `since` counts in the current history: always `recovered: false`.',
        ),
      ),
      epoch: Type.Optional(
        Type.String({ maxLength: 64, description: 'With `since`: the room `epoch` the client had. A different or missing epoch means the history may have been lost since: `recovered: false`.' }),
      ),
      limit: Type.Optional(
        describe(Limit, `How many of the latest messages \`history\` holds (default ${DEFAULT_HISTORY_LIMIT}, max ${MAX_HISTORY_LIMIT}); with \`since\`, only when recovery fails.`),
      ),
    },
    {
      description:
        'Join a room: subscribe to its messages, presence and typing, and get its members and latest history. Rooms named `private:…` need credentials whose `rooms` claim allows them, conversation rooms (`dm:…`) their two participants, and a connection may be in a limited number of rooms (default 100): `forbidden` otherwise.',
    },
  ),
  leave: Type.Object(
    { type: Type.Literal('leave'), id: Type.Optional(RequestId), room: describe(RoomName, 'The room to leave.') },
    { description: 'Leave a room. Others see a `presence` `leave` when this was the user\'s last connection in it.' },
  ),
  publish: Type.Object(
    {
      type: Type.Literal('publish'),
      id: Type.Optional(RequestId),
      room: describe(RoomName, 'The room to publish to (the user must have joined it).'),
      content: Type.String({ description: 'The message text.' }),
      cid: Type.Optional(
        Type.String({
          minLength: 1,
          maxLength: 128,
          description: 'Client message id, for safe retries: a retry with the same `cid` from the same user returns the first `seq` and stores nothing new.',
        }),
      ),
    },
    {
      description:
        'Publish a message to a room. The reply comes only after the message is stored; every member, the sender too, receives it as a `message` event.',
    },
  ),
  typing: Type.Object(
    {
      type: Type.Literal('typing'),
      id: Type.Optional(RequestId),
      room: describe(RoomName, 'The room the user types in (the user must have joined it).'),
      typing: Type.Boolean({ description: '`true` while the user types (repeat it to stay typing), `false` when they stop. An entry expires about 5 s after its last `true`.' }),
    },
    { description: 'Tell the room whether the user is typing. Members get a `typing` event when the set of typing users changes.' },
  ),
  history: Type.Object(
    {
      type: Type.Literal('history'),
      id: Type.Optional(RequestId),
      room: describe(RoomName, 'The room (the user must have joined it).'),
      before: Type.Optional(describe(Seq, 'Page backwards: the last `limit` messages with a `seq` below this.')),
      after: Type.Optional(describe(Seq, 'Page forwards (and fill gaps): the first `limit` messages with a `seq` above this.')),
      limit: Type.Optional(Limit),
    },
    { description: 'Read a room\'s history, oldest first. Give at most one of `before` and `after`; without either, the latest `limit` messages.' },
  ),
  presence: Type.Object(
    { type: Type.Literal('presence'), id: Type.Optional(RequestId), room: describe(RoomName, 'The room (the user must have joined it).') },
    { description: 'Ask who is in a room now.' },
  ),
  direct: Type.Object(
    {
      type: Type.Literal('direct'),
      id: Type.Optional(RequestId),
      to: describe(UserId, "The recipient's user id (your own: notes to self). A user who never connected gets it when they first do."),
      content: Type.String({ description: 'The message text.' }),
      cid: Type.Optional(describe(Cid, 'Client message id, for safe retries: a retry with the same `cid` from the same user returns the first `seq` and stores nothing new.')),
    },
    {
      description:
        'Send a direct message: it is stored in the two users\' conversation, a room named by the server (`dm:…`, the same in both directions) with everything a room guarantees (order, `history`, `join` with `since`, idempotent `cid`, limits). The recipient\'s connections and the sender\'s other ones get a `direct` event, on every gateway; connections that joined the conversation room also get its `message` (the same `room` and `seq`: show each once). Only the two participants may join the room.',
    },
  ),
  read: Type.Object(
    {
      type: Type.Literal('read'),
      id: Type.Optional(RequestId),
      room: describe(RoomName, 'The room or conversation (a conversation: only its participants).'),
      seq: describe(Seq, 'The last `seq` the user has seen. A cursor only moves forward (a lower `seq` leaves it); past the room\'s latest `seq` it is clamped.'),
    },
    { description: "Move the user's read cursor in a room. The user's other connections get a `read` event when it moved." },
  ),
  conversations: Type.Object(
    {
      type: Type.Literal('conversations'),
      id: Type.Optional(RequestId),
      limit: Type.Optional(describe(Limit, `Most conversations to return (default ${DEFAULT_HISTORY_LIMIT}, max ${MAX_HISTORY_LIMIT}).`)),
      before: Type.Optional(Type.Integer({ minimum: 0, description: 'Paging: only conversations with an `order` below this (give the `order` of the last one you have).' })),
    },
    { description: "List the user's conversations, most recent first, with read cursors and unread counts." },
  ),
  refresh: Type.Object(
    {
      type: Type.Literal('refresh'),
      id: Type.Optional(RequestId),
      token: Type.String({ minLength: 1, description: 'A new JWT for the same user.' }),
    },
    { description: 'Replace the connection\'s credentials before they expire; without a refresh the connection is closed with 4001 when its token expires.' },
  ),
  'notifications.list': Type.Object(
    {
      type: Type.Literal('notifications.list'),
      id: Type.Optional(RequestId),
      limit: Type.Optional(Type.Integer({ minimum: 0, maximum: MAX_HISTORY_LIMIT, description: 'Most notifications to return.' })),
      unreadOnly: Type.Optional(Type.Boolean({ description: 'Only unread notifications.' })),
    },
    { description: 'List the user\'s notifications.' },
  ),
  'notifications.read': Type.Object(
    {
      type: Type.Literal('notifications.read'),
      id: Type.Optional(RequestId),
      ids: Type.Optional(Type.Array(Type.String(), { description: 'The notifications to mark read (or give `all`).' })),
      all: Type.Optional(Type.Literal(true, { description: 'Mark every notification read (instead of `ids`).' })),
    },
    { description: 'Mark notifications read: `ids`, or `all: true`. The user\'s other connections get a `notifications.read` event.' },
  ),
  ping: Type.Object(
    { type: Type.Literal('ping'), id: Type.Optional(RequestId) },
    { description: 'Keep the connection alive and measure latency; send one every `welcome.heartbeat` ms. Answered by `pong`.' },
  ),
} satisfies Record<string, TSchema>;

export type RequestType = keyof typeof Requests;
export type RequestOf<T extends RequestType> = Static<(typeof Requests)[T]>;
export type AnyRequest = { [T in RequestType]: RequestOf<T> }[RequestType];

// ---------------------------------------------------------------------------------------------
// Server → client: events

/** Room message as delivered live and as kept in history. */
export const MessageEvent = Type.Object(
  {
    type: Type.Literal('message'),
    room: describe(RoomName, 'The room.'),
    seq: describe(Seq, 'The message\'s position in the room: rises by exactly 1 per message, from 1.'),
    user: describe(User, 'The author.'),
    content: Type.String({ description: 'The message text.' }),
    ts: describe(Timestamp, 'When the message was stored (ISO 8601).'),
    cid: Type.Optional(Type.String({ description: 'The client message id the author gave, if any.' })),
  },
  {
    title: 'Message',
    description: 'A room message, sent to every member of the room (the sender too) in `seq` order. History holds the same objects.',
  },
);
export type MessageEvent = Static<typeof MessageEvent>;

export const WelcomeEvent = Type.Object(
  {
    type: Type.Literal('welcome'),
    connectionId: Type.String({ description: 'Id of this connection (for logs and support).' }),
    node: Type.String({ description: 'Id of the gateway that holds the socket.' }),
    sessionId: Type.String({ description: 'The session; reconnect with `?session=<sessionId>` within the grace period to resume it.' }),
    user: describe(User, 'Who the server authenticated.'),
    resumed: Type.Boolean({ description: '`true` when `?session=` resumed an earlier session (its rooms are joined again, without presence events).' }),
    rooms: Type.Array(
      Type.Object({
        room: describe(RoomName, 'A room restored from the session.'),
        seq: describe(Seq, 'The room\'s latest `seq` now; fetch `history` `after` the last one you had to catch up.'),
        epoch: Epoch,
      }),
      { description: 'Rooms restored from the session (empty unless `resumed`).' },
    ),
    unread: Type.Integer({ minimum: 0, description: 'Number of unread notifications.' }),
    heartbeat: Type.Integer({ minimum: 0, description: 'Interval in ms at which the client should send `ping`.' }),
  },
  { description: 'The first frame after the upgrade. Send requests once it arrived (earlier ones are queued, up to a small limit).' },
);
export type WelcomeEvent = Static<typeof WelcomeEvent>;

export const PresenceEvent = Type.Object(
  {
    type: Type.Literal('presence'),
    room: describe(RoomName, 'The room.'),
    event: Type.Union([Type.Literal('join'), Type.Literal('leave')], { description: '`join` or `leave`.' }),
    user: describe(User, 'Who joined or left.'),
  },
  {
    description:
      'A user joined or left a room. A user with several connections joins once and leaves once (when the last of them leaves or dies, or its session ends).',
  },
);
export type PresenceEvent = Static<typeof PresenceEvent>;

export const TypingEvent = Type.Object(
  {
    type: Type.Literal('typing'),
    room: describe(RoomName, 'The room.'),
    users: Type.Array(User, { description: 'Everyone typing in the room now (empty when nobody is).' }),
  },
  { description: 'The full set of users typing in a room, sent when it changes. An entry expires by itself about 5 s after its last `typing: true`.' },
);
export type TypingEvent = Static<typeof TypingEvent>;

export const DirectEvent = Type.Object(
  {
    type: Type.Literal('direct'),
    room: describe(RoomName, 'The conversation (`dm:…`): join it for its history and `message` events.'),
    seq: describe(Seq, "The message's position in the conversation, as in the room's `message`."),
    from: describe(User, 'The sender.'),
    to: describe(UserId, "The recipient's user id (the sender's other connections get the event too)."),
    content: Type.String({ description: 'The message text.' }),
    ts: describe(Timestamp, 'When it was stored (ISO 8601).'),
    cid: Type.Optional(Type.String({ description: 'The client message id the sender gave, if any.' })),
  },
  {
    description:
      "A direct message, to every connection of the recipient and the sender's other connections, on every gateway, whether or not they joined the conversation room. A connection that joined it also gets the same message as the room's `message` event: show a message once per (`room`, `seq`).",
  },
);
export type DirectEvent = Static<typeof DirectEvent>;

export const NotificationKind = Type.Union([Type.Literal('info'), Type.Literal('success'), Type.Literal('warning'), Type.Literal('error')], {
  description: '`info`, `success`, `warning` or `error`.',
});

/**
 * A notification's link, as the demo page and applications render it in `<a href>`: an absolute
 * http(s) URL (`https://example.com/releases`), or a path on the page's own origin (`/orders/42`).
 * Never another scheme (`javascript:`, `data:`), never `//host` or `/\host` (a browser reads both as
 * another host), and no control characters anywhere: a browser drops tabs and newlines from a URL,
 * so `/<tab>/host` would become `//host`.
 */
const URL_CONTROL = '\\u0000-\\u001f\\u007f';
export const NOTIFICATION_URL_PATTERN = `^(https?://|/$|/[^/\\\\${URL_CONTROL}])[^${URL_CONTROL}]*$`;

export const Notification = Type.Object(
  {
    id: Type.String({ description: 'Notification id.' }),
    kind: NotificationKind,
    title: Type.String({ description: 'Short title.' }),
    body: Type.String({ description: 'Text.' }),
    url: Type.Optional(Type.String({ description: 'A link to open: an absolute http(s) URL, or a path on the same origin (`/orders/42`).' })),
    ts: describe(Timestamp, 'When it was created (ISO 8601).'),
    read: Type.Boolean({ description: 'Whether the user marked it read.' }),
  },
  { title: 'Notification', description: 'A notification for one user, created through the HTTP API.' },
);
export type Notification = Static<typeof Notification>;

const UnreadNotifications = Type.Integer({ minimum: 0, description: 'Unread notifications left.' });

export const NotificationEvent = Type.Object(
  { type: Type.Literal('notification'), notification: describe(Notification, 'The new notification.'), unread: UnreadNotifications },
  { description: 'A new notification for this user, on every connection of theirs.' },
);

export const NotificationsReadEvent = Type.Object(
  {
    type: Type.Literal('notifications.read'),
    ids: Type.Optional(Type.Array(Type.String(), { description: 'The notifications marked read (absent with `all`).' })),
    all: Type.Optional(Type.Literal(true, { description: 'Every notification was marked read.' })),
    unread: UnreadNotifications,
  },
  { description: 'Some notifications were marked read on another connection of this user (`ids`, or `all: true`).' },
);

export const ReadEvent = Type.Object(
  {
    type: Type.Literal('read'),
    room: describe(RoomName, 'The room or conversation.'),
    seq: describe(Seq, "The user's read cursor now."),
  },
  { description: "The user's read cursor in a room moved, on another connection of theirs." },
);

export const ErrorFrame = Type.Object(
  {
    type: Type.Literal('error'),
    id: Type.Optional(describe(RequestId, 'The `id` of the request that failed; absent for unsolicited errors and for frames whose id was unreadable.')),
    code: ErrorCodeSchema,
    message: Type.String({ description: 'What went wrong, for people (e.g. `/room: Expected string to match ...`).' }),
    retryAfterMs: Type.Optional(
      Type.Integer({ minimum: 0, description: 'With `overloaded`: milliseconds to wait before sending the request again (the same `cid` for a publish).' }),
    ),
    room: Type.Optional(
      describe(
        RoomName,
        'The room the error concerns, when one does. An unsolicited `forbidden` with `room` means the connection was taken out of that room because its credentials no longer allow it (a resumed session or a `refresh` to a token without the claim): the room is left and nothing more from it arrives.',
      ),
    ),
  },
  { description: 'A request failed (with its `id`), or an unsolicited error. The connection stays open.' },
);
export type ErrorFrame = Static<typeof ErrorFrame>;

export const Pong = Type.Object(
  { type: Type.Literal('pong'), id: Type.Optional(AnswerId) },
  { description: 'The answer to `ping`.' },
);

/** Server events by `type` that this server sends today (`error` also answers failed requests). */
export const StatsEvent = Type.Object(
  {
    type: Type.Literal('stats'),
    room: describe(RoomName, 'The dashboard room (DASHBOARD_ROOM).'),
    node: Type.String({ description: 'The gateway these numbers are from.' }),
    ts: Timestamp,
    connections: Type.Integer({ minimum: 0, description: 'Open WebSocket connections.' }),
    sse: Type.Integer({ minimum: 0, description: 'Open /sse streams.' }),
    rooms: Type.Integer({ minimum: 0, description: 'Rooms with local members.' }),
    messagesInPerSec: Type.Number({ minimum: 0, description: 'Frames received from clients per second, over the last interval.' }),
    messagesOutPerSec: Type.Number({ minimum: 0, description: 'Frames sent to clients per second, over the last interval.' }),
    latencyMs: Type.Object(
      { p50: Type.Number(), p99: Type.Number(), max: Type.Number(), count: Type.Integer({ minimum: 0 }) },
      { description: 'Request latency (gateway → worker → gateway) over the last interval, in ms.' },
    ),
    busConnected: Type.Boolean(),
  },
  { description: 'Once a second from every gateway, to members of the dashboard room (DASHBOARD_ROOM, default `rt.dashboard`); the live /dashboard page shows them.' },
);

export const Events = {
  welcome: WelcomeEvent,
  message: MessageEvent,
  presence: PresenceEvent,
  typing: TypingEvent,
  direct: DirectEvent,
  read: ReadEvent,
  notification: NotificationEvent,
  'notifications.read': NotificationsReadEvent,
  stats: StatsEvent,
  error: ErrorFrame,
} satisfies Record<string, TSchema>;

// ---------------------------------------------------------------------------------------------
// Server → client: answers to requests. Every request with an `id` gets exactly one answer with
// the same `id`: the reply below or an `error` frame. Without an `id`, only errors are sent.

const reply = (fields: Parameters<typeof Type.Object>[0], description: string) =>
  Type.Object({ type: Type.Literal('reply'), id: Type.Optional(AnswerId), ...fields }, { description });

export const JoinReply = Type.Object(
  {
    type: Type.Literal('reply'),
    id: Type.Optional(AnswerId),
    room: describe(RoomName, 'The room joined.'),
    seq: describe(Seq, 'The room\'s latest `seq` (0 before its first message).'),
    epoch: Epoch,
    members: Type.Array(User, { description: 'The room\'s members now, one entry per user.' }),
    history: Type.Array(MessageEvent, {
      description: 'Messages oldest first: the latest `limit`, or with `since` and `recovered: true`, every message after `since`.',
    }),
    recovered: Type.Optional(
      Type.Boolean({ description: 'Only with `since`: `true` iff every message after `since` is in `history`; never a silent partial replay.' }),
    ),
    read: describe(Seq, "The joining user's read cursor in the room (0: none)."),
    unread: Unread,
  },
  { description: 'The answer to `join`.' },
);
export type JoinReply = Static<typeof JoinReply>;

export const LeaveReply = reply({ room: describe(RoomName, 'The room left.') }, 'The answer to `leave`.');

export const PublishReply = reply(
  {
    room: describe(RoomName, 'The room.'),
    seq: describe(Seq, 'The stored message\'s `seq` (for a retried `cid`, the first one\'s).'),
    ts: describe(Timestamp, 'When it was stored (ISO 8601).'),
  },
  'The answer to `publish`, sent once the message is stored.',
);

export const TypingReply = reply(
  { room: Type.Optional(describe(RoomName, 'The room (echoed).')) },
  'The answer to `typing` (only with an `id`); carries no result.',
);

export const HistoryReply = reply(
  {
    room: describe(RoomName, 'The room.'),
    seq: describe(Seq, 'The room\'s latest `seq`.'),
    epoch: Type.Optional(describe(Epoch, 'The room history\'s epoch (as in the `join` reply).')),
    messages: Type.Array(MessageEvent, { description: 'The messages, oldest first.' }),
  },
  'The answer to `history`.',
);

export const PresenceReply = reply(
  { room: describe(RoomName, 'The room.'), members: Type.Array(User, { description: 'The room\'s members now, one entry per user.' }) },
  'The answer to `presence`.',
);

export const DirectReply = reply(
  {
    room: describe(RoomName, "The conversation's room (`dm:…`), the same for the pair in both directions."),
    seq: describe(Seq, "The stored message's `seq` (for a retried `cid`, the first one's)."),
    ts: describe(Timestamp, 'When it was stored (ISO 8601).'),
  },
  'The answer to `direct`, sent once the message is stored.',
);

export const ReadReply = reply(
  {
    room: describe(RoomName, 'The room.'),
    seq: describe(Seq, "The user's read cursor after the request (never lower than before)."),
    unread: Unread,
  },
  'The answer to `read`.',
);

export const Conversation = Type.Object(
  {
    room: describe(RoomName, "The conversation's room (`dm:…`)."),
    with: describe(User, 'The other participant (yourself, for notes to self).'),
    seq: describe(Seq, "The conversation's latest `seq`."),
    read: describe(Seq, "The user's read cursor in it (0: none)."),
    unread: Unread,
    order: Type.Integer({ minimum: 0, description: 'Rises with every newer message in any of the user\'s conversations; page with `before`.' }),
    last: Type.Optional(describe(MessageEvent, 'The latest message.')),
  },
  { title: 'Conversation', description: "One of a user's conversations." },
);

export const ConversationsReply = reply(
  { conversations: Type.Array(Conversation, { description: 'Most recent first.' }) },
  'The answer to `conversations`.',
);

export const NotificationsListReply = reply(
  { items: Type.Array(Notification, { description: 'The notifications.' }), unread: Type.Integer({ minimum: 0, description: 'Unread notifications in all.' }) },
  'The answer to `notifications.list`.',
);

export const NotificationsReadReply = reply({ unread: UnreadNotifications }, 'The answer to `notifications.read`.');

export const RefreshReply = reply(
  {
    expiresAt: Type.Union([Timestamp, Type.Null()], {
      description: 'When the new token expires (ISO 8601), `null` if it does not; refresh again before then.',
    }),
  },
  'The answer to `refresh`. A token for another user is refused with `forbidden`, an invalid one with `unauthorized`.',
);

/** The answer to each request type. */
export const Replies = {
  join: JoinReply,
  leave: LeaveReply,
  publish: PublishReply,
  typing: TypingReply,
  history: HistoryReply,
  presence: PresenceReply,
  direct: DirectReply,
  read: ReadReply,
  conversations: ConversationsReply,
  refresh: RefreshReply,
  'notifications.list': NotificationsListReply,
  'notifications.read': NotificationsReadReply,
  ping: Pong,
} satisfies Record<RequestType, TSchema>;
