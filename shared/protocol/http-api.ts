/**
 * The bodies of the gateway's HTTP API (`/api/...`), as the gateway validates and answers them and
 * as the AsyncAPI document (asyncapi.ts) and docs/protocol.md describe them. Kept apart from the
 * WebSocket frames (schemas.ts), whose building blocks (`User`, `Seq`, `Conversation`, ...) they reuse.
 */
import { Type } from '@sinclair/typebox';
import { Conversation, describe, ErrorCodeSchema, NOTIFICATION_URL_PATTERN, NotificationKind, Seq, User, UserId } from './schemas.ts';


export const TicketCreated = Type.Object(
  {
    ticket: Type.String({ description: 'Use once as `?ticket=` on `/ws` or `/sse`, from the same IP address.' }),
    expiresIn: Type.Integer({ minimum: 0, description: 'Seconds the ticket stays valid (default 30).' }),
  },
  { title: 'TicketCreated', description: '`POST /api/tickets` → 201.' },
);

export const MAX_NOTIFICATION_RECIPIENTS = 10_000;
export const NotificationCreate = Type.Object(
  {
    userId: Type.Optional(describe(UserId, 'The recipient (or give `userIds`).')),
    userIds: Type.Optional(
      Type.Array(UserId, {
        minItems: 1,
        maxItems: MAX_NOTIFICATION_RECIPIENTS,
        description: `The recipients, at most ${MAX_NOTIFICATION_RECIPIENTS} (or give \`userId\`).`,
      }),
    ),
    kind: NotificationKind,
    title: Type.String({ minLength: 1, maxLength: 200, description: 'Short title, at most 200 characters.' }),
    body: Type.String({ maxLength: 2000, description: 'Text, at most 2000 characters.' }),
    url: Type.Optional(
      Type.String({
        maxLength: 2048,
        pattern: NOTIFICATION_URL_PATTERN,
        description: 'A link to open: an absolute http(s) URL, or a path on the same origin starting with a single `/` (`/orders/42`). No other scheme, no `//host`, no control characters.',
      }),
    ),
  },
  { title: 'NotificationCreate', description: '`POST /api/notifications` body: exactly one of `userId` and `userIds`.' },
);

export const NotificationsCreated = Type.Object(
  { ids: Type.Array(Type.String(), { description: 'The new notifications\' ids, one per recipient.' }) },
  { title: 'NotificationsCreated', description: '`POST /api/notifications` → 202.' },
);

export const RoomMessageCreate = Type.Object(
  {
    content: Type.String({ description: 'The message text.' }),
    user: Type.Optional(describe(User, 'The author to show; default: the server itself.')),
  },
  { title: 'RoomMessageCreate', description: '`POST /api/rooms/{room}/messages` body.' },
);

export const RoomMessageCreated = Type.Object(
  { seq: describe(Seq, 'The stored message\'s `seq`.') },
  { title: 'RoomMessageCreated', description: '`POST /api/rooms/{room}/messages` → 201.' },
);

export const RoomPresence = Type.Object(
  { members: Type.Array(User, { description: 'The room\'s members now, one entry per user.' }) },
  { title: 'RoomPresence', description: '`GET /api/rooms/{room}/presence` → 200.' },
);

export const UserConversations = Type.Object(
  { conversations: Type.Array(Conversation, { description: 'Most recent first.' }) },
  { title: 'UserConversations', description: '`GET /api/users/{user}/conversations` → 200 (`?limit=`, `?before=` as in `conversations`).' },
);

export const HttpError = Type.Object(
  {
    error: Type.Object(
      {
        code: ErrorCodeSchema,
        message: Type.String({ description: 'What went wrong, for people.' }),
      },
      { description: 'What went wrong.' },
    ),
  },
  { title: 'HttpError', description: 'Every HTTP error: a JSON body with a fitting status (400, 401, 403, 404, 413, 429, 503).' },
);
