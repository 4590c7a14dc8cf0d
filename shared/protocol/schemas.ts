/**
 * Protocol v1 frames, defined once. The gateway validates client frames with the compiled
 * checkers below; the worker, the SDK and the AsyncAPI document use the same definitions.
 */
import { Type, type Static, type TSchema } from '@sinclair/typebox';

export const ROOM_PATTERN = '^[A-Za-z0-9_.:-]{1,128}$';
export const MAX_HISTORY_LIMIT = 500;
export const DEFAULT_HISTORY_LIMIT = 50;

export const RoomName = Type.String({ pattern: ROOM_PATTERN, description: 'Room name: [A-Za-z0-9_.:-]{1,128}' });
export const RequestId = Type.Union([Type.String({ maxLength: 128 }), Type.Number()], {
  description: 'Chosen by the client; echoed in the one answer to this request.',
});
export const Seq = Type.Integer({ minimum: 0, description: 'Position in the room sequence; the first message is 1.' });
const Limit = Type.Integer({ minimum: 0, maximum: MAX_HISTORY_LIMIT });

export const User = Type.Object({ id: Type.String(), name: Type.String() });
export type User = Static<typeof User>;

/** Request schemas by `type`. Fields not listed are ignored (forward compatible). */
export const Requests = {
  join: Type.Object({
    type: Type.Literal('join'),
    id: Type.Optional(RequestId),
    room: RoomName,
    since: Type.Optional(Seq),
    epoch: Type.Optional(Type.String({ maxLength: 64 })),
    limit: Type.Optional(Limit),
  }),
  leave: Type.Object({ type: Type.Literal('leave'), id: Type.Optional(RequestId), room: RoomName }),
  publish: Type.Object({
    type: Type.Literal('publish'),
    id: Type.Optional(RequestId),
    room: RoomName,
    content: Type.String(),
    cid: Type.Optional(Type.String({ minLength: 1, maxLength: 128 })),
  }),
  typing: Type.Object({ type: Type.Literal('typing'), id: Type.Optional(RequestId), room: RoomName, typing: Type.Boolean() }),
  history: Type.Object({
    type: Type.Literal('history'),
    id: Type.Optional(RequestId),
    room: RoomName,
    before: Type.Optional(Seq),
    after: Type.Optional(Seq),
    limit: Type.Optional(Limit),
  }),
  presence: Type.Object({ type: Type.Literal('presence'), id: Type.Optional(RequestId), room: RoomName }),
  direct: Type.Object({
    type: Type.Literal('direct'),
    id: Type.Optional(RequestId),
    to: Type.String({ minLength: 1, maxLength: 256 }),
    content: Type.String(),
  }),
  ping: Type.Object({ type: Type.Literal('ping'), id: Type.Optional(RequestId) }),
} satisfies Record<string, TSchema>;

export type RequestType = keyof typeof Requests;
export type RequestOf<T extends RequestType> = Static<(typeof Requests)[T]>;
export type AnyRequest = { [T in RequestType]: RequestOf<T> }[RequestType];

/** Room message as delivered live and as kept in history. */
export const MessageEvent = Type.Object({
  type: Type.Literal('message'),
  room: RoomName,
  seq: Seq,
  user: User,
  content: Type.String(),
  ts: Type.String({ description: 'ISO 8601' }),
  cid: Type.Optional(Type.String()),
});
export type MessageEvent = Static<typeof MessageEvent>;

export const WelcomeEvent = Type.Object({
  type: Type.Literal('welcome'),
  connectionId: Type.String(),
  node: Type.String(),
  sessionId: Type.String(),
  user: User,
  resumed: Type.Boolean(),
  rooms: Type.Array(Type.Object({ room: RoomName, seq: Seq, epoch: Type.String() })),
  unread: Type.Integer({ minimum: 0 }),
  heartbeat: Type.Integer({ minimum: 0 }),
});
export type WelcomeEvent = Static<typeof WelcomeEvent>;

export const PresenceEvent = Type.Object({
  type: Type.Literal('presence'),
  room: RoomName,
  event: Type.Union([Type.Literal('join'), Type.Literal('leave')]),
  user: User,
});
export type PresenceEvent = Static<typeof PresenceEvent>;

export const TypingEvent = Type.Object({ type: Type.Literal('typing'), room: RoomName, users: Type.Array(User) });
export const DirectEvent = Type.Object({ type: Type.Literal('direct'), from: User, content: Type.String(), ts: Type.String() });

export const JoinReply = Type.Object({
  type: Type.Literal('reply'),
  id: Type.Optional(RequestId),
  room: RoomName,
  seq: Seq,
  epoch: Type.String(),
  members: Type.Array(User),
  history: Type.Array(MessageEvent),
  recovered: Type.Optional(Type.Boolean()),
});
export type JoinReply = Static<typeof JoinReply>;
