/**
 * The reference limit: a minimal room server on raw uWebSockets.js, speaking the same frames as ours
 * where practical, and nothing else — no validation schema, no authentication, no bus, no store, no
 * ordering or history, no presence. What our server adds on top of uWS is measured against this.
 *
 *   upgrade `/ws?username=u` → `{"type":"welcome","user":{…}}`
 *   `{"type":"join","id":1,"room":"r"}`      → subscribe `r:<room>`, `{"type":"reply","id":1,"room":"r","seq":N}`
 *   `{"type":"publish","id":2,"room":"r","content":"…"}` → one `app.publish` of
 *       `{"type":"message","room":"r","seq":N,"user":{…},"content":"…","ts":"…"}` to the room's topic,
 *       and `{"type":"reply","id":2,"room":"r","seq":N,"ts":"…"}` to the publisher
 *   `POST /api/notifications` `{"userIds":[…],"kind","title","body"}` → `{"type":"notification",…}`
 *       published to each `u:<id>` topic (nothing is stored), `202 {"ids":[…]}`
 *
 * PORT (required), HOST (127.0.0.1). Socket settings match our gateway's (1 MiB backpressure,
 * automatic pings).
 */
import { randomUUID } from 'node:crypto';
import type * as UWS from 'uWebSockets.js';
import { loadNativeUws } from '../../gateway/uws.ts';

interface Data {
  user: { id: string; name: string };
  /** `,"user":{…}` pre-serialized once per connection. */
  userPart: string;
}

const uws = loadNativeUws();
const app = uws.App();
const decoder = new TextDecoder();
const j = JSON.stringify;
const seqs = new Map<string, number>();

function error(id: unknown, code: string, message: string): string {
  return `{"type":"error"${id === undefined ? '' : `,"id":${j(id)}`},"code":"${code}","message":${j(message)}}`;
}

app.ws<Data>('/ws', {
  maxPayloadLength: 64 * 1024,
  idleTimeout: 120,
  sendPingsAutomatically: true,
  maxBackpressure: 1024 * 1024,
  closeOnBackpressureLimit: 0,
  upgrade: (res, req, context) => {
    const name = new URLSearchParams(req.getQuery() ?? '').get('username') || randomUUID();
    const user = { id: name, name };
    res.upgrade<Data>(
      { user, userPart: `,"user":${j(user)}` },
      req.getHeader('sec-websocket-key'),
      req.getHeader('sec-websocket-protocol'),
      req.getHeader('sec-websocket-extensions'),
      context,
    );
  },
  open: (ws) => {
    const { user } = ws.getUserData();
    ws.subscribe(`u:${user.id}`);
    ws.send(`{"type":"welcome","user":${j(user)}}`, false);
  },
  message: (ws, message, isBinary) => {
    if (isBinary) return void ws.end(1003, 'binary frames are not supported');
    let f: { type?: unknown; id?: unknown; room?: unknown; content?: unknown };
    try {
      f = JSON.parse(decoder.decode(message)) as typeof f;
    } catch {
      ws.send(error(undefined, 'bad_request', 'malformed JSON'), false);
      return;
    }
    const room = typeof f.room === 'string' ? f.room : undefined;
    const idPart = f.id === undefined ? '' : `,"id":${j(f.id)}`;
    switch (f.type) {
      case 'join':
        if (!room) break;
        ws.subscribe(`r:${room}`);
        ws.send(`{"type":"reply"${idPart},"room":${j(room)},"seq":${seqs.get(room) ?? 0}}`, false);
        return;
      case 'leave':
        if (!room) break;
        ws.unsubscribe(`r:${room}`);
        ws.send(`{"type":"reply"${idPart},"room":${j(room)}}`, false);
        return;
      case 'publish': {
        if (!room || typeof f.content !== 'string') break;
        if (!ws.isSubscribed(`r:${room}`)) {
          ws.send(error(f.id, 'not_member', `join room "${room}" first`), false);
          return;
        }
        const seq = (seqs.get(room) ?? 0) + 1;
        seqs.set(room, seq);
        const ts = new Date().toISOString();
        const roomPart = j(room);
        app.publish(`r:${room}`, `{"type":"message","room":${roomPart},"seq":${seq}${ws.getUserData().userPart},"content":${j(f.content)},"ts":"${ts}"}`, false);
        ws.send(`{"type":"reply"${idPart},"room":${roomPart},"seq":${seq},"ts":"${ts}"}`, false);
        return;
      }
      case 'ping':
        ws.send(`{"type":"pong"${idPart}}`, false);
        return;
      default:
        ws.send(error(f.id, 'unknown_type', 'unknown type'), false);
        return;
    }
    ws.send(error(f.id, 'bad_request', 'invalid frame'), false);
  },
});

app.post('/api/notifications', (res) => {
  let aborted = false;
  res.onAborted(() => {
    aborted = true;
  });
  const chunks: Buffer[] = [];
  res.onData((ab, isLast) => {
    chunks.push(Buffer.from(ab.slice(0)));
    if (!isLast || aborted) return;
    let body: { userIds?: unknown; userId?: unknown; kind?: unknown; title?: unknown; body?: unknown };
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
    } catch {
      res.cork(() => res.writeStatus('400 Bad Request').end('{"error":{"code":"bad_request","message":"malformed JSON"}}'));
      return;
    }
    const userIds = Array.isArray(body.userIds) ? (body.userIds as string[]) : typeof body.userId === 'string' ? [body.userId] : [];
    const ts = new Date().toISOString();
    const ids: string[] = [];
    for (const userId of userIds) {
      const id = randomUUID();
      ids.push(id);
      const n = { id, kind: body.kind, title: body.title, body: body.body, ts, read: false };
      app.publish(`u:${userId}`, `{"type":"notification","notification":${j(n)},"unread":1}`, false);
    }
    res.cork(() => res.writeStatus('202 Accepted').writeHeader('content-type', 'application/json').end(j({ ids })));
  });
});

app.any('/*', (res) => {
  res.cork(() => res.writeStatus('404 Not Found').end('{"error":{"code":"not_found","message":"no such route"}}'));
});

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('raw-uws: set PORT\n');
  process.exit(2);
}
app.listen(process.env.HOST ?? '127.0.0.1', port, (token: UWS.us_listen_socket | false) => {
  if (!token) {
    process.stderr.write(`raw-uws: cannot listen on port ${port}\n`);
    process.exit(1);
  }
});
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
