/**
 * The server API: HTTP endpoints for the application's own services, authorised by
 * `Authorization: Bearer <API_KEY>` (compared in constant time). Without API_KEY configured the
 * server API is off and answers 403. Errors use the protocol's `{"error":{"code","message"}}`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { TypeCompiler } from '@sinclair/typebox/compiler';
import type * as UWS from 'uWebSockets.js';
import type { Config } from '../shared/config.ts';
import { RtError } from '../shared/errors.ts';
import { isUserId } from '../shared/protocol/constants.ts';
import { frames } from '../shared/protocol/internal.ts';
import { NotificationCreate, RoomMessageCreate } from '../shared/protocol/http-api.ts';
import { MAX_HISTORY_LIMIT, ROOM_PATTERN } from '../shared/protocol/schemas.ts';
import { Exchange, type Routes } from './http.ts';
import { bearer, decodeComponent } from './values.ts';

const roomPattern = new RegExp(ROOM_PATTERN);
const checkMessage = TypeCompiler.Compile(RoomMessageCreate);
const checkNotification = TypeCompiler.Compile(NotificationCreate);
/** A bulk send to 10,000 users stores and publishes 10,000 notifications: more than a request's usual time. */
const NOTIFY_TIMEOUT_MS = 60_000;
const SERVER_USER = { id: 'server', name: 'server' };
const decoder = new TextDecoder();

export interface ApiDeps {
  cfg: Config;
  /** Sends a request frame to a worker as `user` and resolves with the worker's answer frame. */
  ask(user: { id: string; name: string }, frame: string, timeoutMs?: number): Promise<Uint8Array>;
  /** Logs and counts an unexpected exception (it is answered 500 `internal`). */
  failed(where: string, err: unknown): void;
}

function digest(s: string): Buffer {
  return createHash('sha256').update(s).digest();
}

/** Compares the presented key with API_KEY without leaking, through timing, how much matched. */
export function apiKeyMatches(authorization: string, apiKey: string): boolean {
  const presented = bearer(authorization);
  return presented !== undefined && timingSafeEqual(digest(presented), digest(apiKey));
}

export function registerServerApi(app: Routes, deps: ApiDeps): void {
  const { cfg } = deps;
  /** Checks the key (and the room of a room route), then runs `handle`; answers whatever it throws. */
  const route =
    (handle: (ex: Exchange, room: string) => Promise<void>, roomRoute = true) =>
    (res: UWS.HttpResponse, req: UWS.HttpRequest) => {
      const ex = new Exchange(res);
      const authorization = req.getHeader('authorization');
      const room = roomRoute ? (decodeComponent(req.getParameter(0) ?? '') ?? '') : '';
      if (!cfg.apiKey) return ex.error('forbidden', 'the server API is off: set API_KEY to enable it');
      if (!apiKeyMatches(authorization, cfg.apiKey)) return ex.error('unauthorized', 'Authorization: Bearer <API_KEY> is required');
      if (roomRoute && !roomPattern.test(room)) return ex.error('bad_request', 'invalid room name: [A-Za-z0-9_.:-]{1,128}');
      handle(ex, room).catch((err: unknown) => {
        if (!(err instanceof RtError)) deps.failed('api', err);
        ex.fail(err);
      });
    };

  app.post(
    '/api/notifications',
    route(async (ex) => {
      const body = await ex.jsonBody(cfg.maxBodyBytes);
      if (!checkNotification.Check(body)) {
        const first = checkNotification.Errors(body).First();
        throw new RtError('bad_request', `${first?.path || '/'}: ${first?.message ?? 'invalid'}`);
      }
      if ((body.userId === undefined) === (body.userIds === undefined)) throw new RtError('bad_request', 'give exactly one of userId and userIds');
      const userIds = body.userIds ?? [body.userId!];
      const frame = frames.notify({ userIds, kind: body.kind, title: body.title, body: body.body, url: body.url });
      const answer = parse(await deps.ask(SERVER_USER, frame, Math.max(cfg.requestTimeoutMs, NOTIFY_TIMEOUT_MS)));
      ex.json(202, { ids: answer.ids });
    }, false),
  );

  app.post(
    '/api/rooms/:room/messages',
    route(async (ex, room) => {
      const body = await ex.jsonBody(cfg.maxBodyBytes);
      if (!checkMessage.Check(body)) {
        const first = checkMessage.Errors(body).First();
        throw new RtError('bad_request', `${first?.path || '/'}: ${first?.message ?? 'invalid'}`);
      }
      if (cfg.maxContentChars > 0 && body.content.length > cfg.maxContentChars) {
        throw new RtError('too_large', `content is longer than ${cfg.maxContentChars} characters`);
      }
      const user = body.user ? { id: body.user.id, name: body.user.name } : SERVER_USER;
      const answer = parse(await deps.ask(user, JSON.stringify({ type: 'publish', id: 1, room, content: body.content })));
      ex.json(201, { seq: answer.seq });
    }),
  );

  app.get('/api/users/:user/conversations', (res, req) => {
    // Everything from the request is read now: it is gone after the handler's first await.
    const user = decodeComponent(req.getParameter(0) ?? '');
    const query = new URLSearchParams(req.getQuery() ?? '');
    route(async (ex) => {
      if (user === undefined || !isUserId(user)) throw new RtError('bad_request', 'invalid user id');
      const frame: Record<string, unknown> = { type: 'conversations', id: 1 };
      for (const [name, max] of [['limit', MAX_HISTORY_LIMIT], ['before', Number.MAX_SAFE_INTEGER]] as const) {
        const v = query.get(name);
        if (v === null) continue;
        if (!/^\d{1,16}$/.test(v) || Number(v) > max) throw new RtError('bad_request', `${name}: a whole number from 0 to ${max}`);
        frame[name] = Number(v);
      }
      const answer = parse(await deps.ask({ id: user, name: user }, JSON.stringify(frame)));
      ex.json(200, { conversations: answer.conversations });
    }, false)(res, req);
  });

  app.get(
    '/api/rooms/:room/presence',
    route(async (ex, room) => {
      const answer = parse(await deps.ask(SERVER_USER, JSON.stringify({ type: 'presence', id: 1, room })));
      ex.json(200, { members: answer.members });
    }),
  );
}

/** A worker's answer: the reply's fields, or its error thrown as an RtError. */
function parse(answer: Uint8Array): Record<string, unknown> {
  const frame = JSON.parse(decoder.decode(answer)) as { type: string; code?: string; message?: string } & Record<string, unknown>;
  if (frame.type === 'error') throw new RtError((frame.code as RtError['code']) ?? 'internal', frame.message ?? 'failed');
  return frame;
}
