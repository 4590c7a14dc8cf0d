/**
 * The Socket.IO 4.8 comparison: the same room server as raw-uws.ts, written the way a Socket.IO
 * application would be, websocket transport only (no long-polling, no upgrade dance). With
 * REDIS_URL it uses @socket.io/redis-adapter (ioredis clients), so several of these processes form
 * one cluster in which `io.to(room).emit` reaches the room's members on every node.
 *
 *   connect `/socket.io/?EIO=4&transport=websocket&username=u` → joins `u:<username>`
 *   emit `join`(room, ack)               → socket.join(room), ack {type:"reply",room,seq}
 *   emit `publish`(room, content, ack)   → io.to(room).emit("message", {type:"message",room,seq,user,content,ts}),
 *                                         ack {type:"reply",room,seq,ts}
 *   `POST /api/notifications` {"userIds":[…],"kind","title","body"} → io.to("u:<id>").emit("notification", …)
 *                                         for each user (nothing stored), 202 {"ids":[…]}
 *
 * PORT (required), HOST (127.0.0.1), REDIS_URL (optional).
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createAdapter } from '@socket.io/redis-adapter';
import { Redis } from 'ioredis';
import { Server } from 'socket.io';

const port = Number(process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('socketio: set PORT\n');
  process.exit(2);
}

const seqs = new Map<string, number>();

const http = createServer((req: IncomingMessage, res: ServerResponse) => {
  if (req.method !== 'POST' || req.url !== '/api/notifications') {
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":{"code":"not_found","message":"no such route"}}');
    return;
  }
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    let body: { userIds?: unknown; userId?: unknown; kind?: unknown; title?: unknown; body?: unknown };
    try {
      body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as typeof body;
    } catch {
      res.writeHead(400).end('{"error":{"code":"bad_request","message":"malformed JSON"}}');
      return;
    }
    const userIds = Array.isArray(body.userIds) ? (body.userIds as string[]) : typeof body.userId === 'string' ? [body.userId] : [];
    const ts = new Date().toISOString();
    const ids: string[] = [];
    for (const userId of userIds) {
      const id = randomUUID();
      ids.push(id);
      io.to(`u:${userId}`).emit('notification', { type: 'notification', notification: { id, kind: body.kind, title: body.title, body: body.body, ts, read: false }, unread: 1 });
    }
    res.writeHead(202, { 'content-type': 'application/json' }).end(JSON.stringify({ ids }));
  });
});

const io = new Server(http, { transports: ['websocket'], serveClient: false, maxHttpBufferSize: 64 * 1024 });

if (process.env.REDIS_URL) {
  const pub = new Redis(process.env.REDIS_URL);
  const sub = pub.duplicate();
  io.adapter(createAdapter(pub, sub));
}

type Ack = (answer: unknown) => void;

io.on('connection', (socket) => {
  const raw = socket.handshake.query.username;
  const name = typeof raw === 'string' && raw ? raw : socket.id;
  const user = { id: name, name };
  void socket.join(`u:${name}`);
  socket.on('join', (room: unknown, ack?: Ack) => {
    if (typeof room !== 'string') return ack?.({ type: 'error', code: 'bad_request' });
    void socket.join(room);
    ack?.({ type: 'reply', room, seq: seqs.get(room) ?? 0 });
  });
  socket.on('leave', (room: unknown, ack?: Ack) => {
    if (typeof room !== 'string') return ack?.({ type: 'error', code: 'bad_request' });
    void socket.leave(room);
    ack?.({ type: 'reply', room });
  });
  socket.on('publish', (room: unknown, content: unknown, ack?: Ack) => {
    if (typeof room !== 'string' || typeof content !== 'string') return ack?.({ type: 'error', code: 'bad_request' });
    if (!socket.rooms.has(room)) return ack?.({ type: 'error', code: 'not_member' });
    const seq = (seqs.get(room) ?? 0) + 1;
    seqs.set(room, seq);
    const ts = new Date().toISOString();
    io.to(room).emit('message', { type: 'message', room, seq, user, content, ts });
    ack?.({ type: 'reply', room, seq, ts });
  });
});

http.listen(port, process.env.HOST ?? '127.0.0.1');
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
