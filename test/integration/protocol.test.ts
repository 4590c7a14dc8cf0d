/**
 * Protocol v1 core as a client sees it, in both ways the server runs (embedded and
 * NATS + Redis with two gateways and two workers).
 */
import { randomBytes } from 'node:crypto';
import { connect as tcpConnect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { uwsPayloadLimit } from '../../gateway/limits.ts';
import { TARGETS, embeddedTarget, type Target } from '../harness/targets.ts';
import { TestClient, expectClosed, type Frame } from '../harness/client.ts';

let seq = 0;
const uniq = (p: string) => `${p}-${process.pid}-${++seq}`;

describe.each(TARGETS)('protocol v1 core (%s)', (_name, start) => {
  let t: Target;
  let gwA: string;
  let gwB: string;
  const clients: TestClient[] = [];
  const connect = async (username: string, gw = gwA) => {
    const c = await TestClient.connect(gw, { query: { username } });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    t = await start({ MAX_FRAME_BYTES: '2048', MAX_CONTENT_CHARS: '100' });
    gwA = t.gateways[0]!;
    gwB = t.gateways[t.gateways.length - 1]!;
  });
  afterAll(async () => {
    for (const c of clients) c.terminate();
    await t?.stop();
  });

  it('welcome describes the connection', async () => {
    const c = await connect('ann');
    expect(c.welcome).toMatchObject({
      type: 'welcome',
      user: { id: 'ann', name: 'ann' },
      resumed: false,
      rooms: [],
      unread: 0,
    });
    expect(typeof c.welcome.connectionId).toBe('string');
    expect(typeof c.welcome.sessionId).toBe('string');
    expect(typeof c.welcome.node).toBe('string');
    expect(c.welcome.heartbeat).toBeGreaterThan(0);
  });

  it('join, publish and message: seq from 1, to every member including the sender, on every gateway', async () => {
    const room = uniq('room');
    const ann = await connect('ann', gwA);
    const bob = await connect('bob', gwB);
    const j1 = await ann.ok({ type: 'join', room });
    expect(j1).toMatchObject({ room, seq: 0, history: [], members: [{ id: 'ann', name: 'ann' }] });
    expect(typeof j1.epoch).toBe('string');
    const j2 = await bob.ok({ type: 'join', room });
    expect((j2.members as { id: string }[]).map((m) => m.id).sort()).toEqual(['ann', 'bob']);
    expect(j2.epoch).toBe(j1.epoch);
    expect(await ann.next((f) => f.type === 'presence')).toMatchObject({ room, event: 'join', user: { id: 'bob' } });

    const r1 = await ann.ok({ type: 'publish', room, content: 'hello' });
    const r2 = await bob.ok({ type: 'publish', room, content: 'hi ann', cid: 'c-1' });
    expect(r1).toMatchObject({ room, seq: 1 });
    expect(r2).toMatchObject({ room, seq: 2 });
    expect(Date.parse(r1.ts as string)).not.toBeNaN();
    for (const c of [ann, bob]) {
      const msgs = await c.take('message', 2);
      expect(msgs.map((m) => [m.seq, m.content, (m.user as { id: string }).id])).toEqual([
        [1, 'hello', 'ann'],
        [2, 'hi ann', 'bob'],
      ]);
      expect(msgs[1]!.cid).toBe('c-1');
    }

    // A later joiner gets the history, oldest first.
    const cy = await connect('cy', gwB);
    const j3 = await cy.ok({ type: 'join', room, limit: 10 });
    expect(j3.seq).toBe(2);
    expect((j3.history as Frame[]).map((m) => m.content)).toEqual(['hello', 'hi ann']);
  });

  it('messages from concurrent publishers on both gateways arrive everywhere in seq order, once', async () => {
    const room = uniq('busy');
    const listeners = [await connect('l1', gwA), await connect('l2', gwB)];
    const pubs = [await connect('p1', gwA), await connect('p2', gwB)];
    for (const c of [...listeners, ...pubs]) await c.ok({ type: 'join', room });
    const perPublisher = 60;
    await Promise.all(
      pubs.map((p, i) => Promise.all(Array.from({ length: perPublisher }, (_, k) => p.ok({ type: 'publish', room, content: `${i}:${k}` })))),
    );
    for (const l of listeners) {
      const msgs = await l.take('message', perPublisher * 2);
      expect(msgs.map((m) => m.seq)).toEqual(Array.from({ length: perPublisher * 2 }, (_, k) => k + 1));
    }
    // Nothing more arrives: no duplicates.
    const probe = await listeners[0]!.request({ type: 'ping' });
    expect(probe.type).toBe('pong');
    expect(listeners.flatMap((l) => l.events.filter((e) => e.type === 'message'))).toEqual([]);
  });

  it('leave stops delivery; publish, history and presence then answer not_member', async () => {
    const room = uniq('leave');
    const ann = await connect('ann');
    await ann.ok({ type: 'join', room });
    expect(await ann.ok({ type: 'leave', room })).toMatchObject({ type: 'reply', room });
    for (const type of ['publish', 'history', 'presence']) {
      const e = await ann.request({ type, room, content: 'x' });
      expect(e).toMatchObject({ type: 'error', code: 'not_member' });
    }
    expect(await ann.request({ type: 'leave', room })).toMatchObject({ type: 'error', code: 'not_member' });
  });

  it('history pages with before, after and limit; presence lists users once', async () => {
    const room = uniq('hist');
    const ann = await connect('ann');
    const ann2 = await connect('ann', gwB);
    await ann.ok({ type: 'join', room });
    await ann2.ok({ type: 'join', room });
    for (let i = 1; i <= 7; i++) await ann.ok({ type: 'publish', room, content: `m${i}` });
    const contents = (r: Frame) => (r.messages as Frame[]).map((m) => m.seq);
    expect(contents(await ann.ok({ type: 'history', room, after: 2, limit: 3 }))).toEqual([3, 4, 5]);
    expect(contents(await ann.ok({ type: 'history', room, before: 7, limit: 2 }))).toEqual([5, 6]);
    expect(contents(await ann.ok({ type: 'history', room, limit: 2 }))).toEqual([6, 7]);
    expect((await ann.ok({ type: 'history', room })).seq).toBe(7);
    expect(await ann.request({ type: 'history', room, limit: -1 })).toMatchObject({ code: 'bad_request' });
    expect(await ann.request({ type: 'history', room, limit: 501 })).toMatchObject({ code: 'bad_request' });
    expect((await ann.ok({ type: 'presence', room })).members).toEqual([{ id: 'ann', name: 'ann' }]);
  });

  it('a direct message reaches every connection of the recipient, on every gateway', async () => {
    const to = uniq('dana');
    const d1 = await connect(to, gwA);
    const d2 = await connect(to, gwB);
    const eve = await connect('eve', gwA);
    const r = await eve.ok({ type: 'direct', to, content: 'psst' });
    expect(Date.parse(r.ts as string)).not.toBeNaN();
    for (const d of [d1, d2]) {
      expect(await d.next((f) => f.type === 'direct')).toMatchObject({ from: { id: 'eve', name: 'eve' }, content: 'psst', ts: r.ts });
    }
  });

  it('ping is answered with pong, with and without id; a request without id gets no answer on success', async () => {
    const c = await connect('pinger');
    c.send({ type: 'ping' });
    expect(await c.next()).toEqual({ type: 'pong' });
    expect(await c.request({ type: 'ping' })).toMatchObject({ type: 'pong', id: expect.any(Number) });
    const room = uniq('noid');
    await c.ok({ type: 'join', room });
    c.send({ type: 'publish', room, content: 'quiet' });
    expect(await c.next((f) => f.type === 'message')).toMatchObject({ seq: 1, content: 'quiet' });
    await c.request({ type: 'ping' });
    expect(c.events).toEqual([]);
  });

  describe('bad input gets the documented answer and the connection stays usable', () => {
    const cases: [string, string, Record<string, unknown>][] = [
      ['malformed JSON', '{"type": "join", ', { code: 'bad_request', message: 'malformed JSON' }],
      ['not an object', '[1,2]', { code: 'bad_request' }],
      ['no type', '{"id": 5}', { code: 'bad_request', id: 5 }],
      ['unknown type', '{"type":"explode","id":"x"}', { code: 'unknown_type', id: 'x' }],
      ['missing field', '{"type":"join","id":1}', { code: 'bad_request', id: 1, message: expect.stringContaining('/room') }],
      ['mistyped field', '{"type":"publish","id":2,"room":"r","content":5}', { code: 'bad_request', id: 2, message: expect.stringContaining('/content') }],
      ['room with a space', '{"type":"join","id":3,"room":"a b"}', { code: 'bad_request', id: 3, message: expect.stringContaining('/room') }],
      ['empty room', '{"type":"join","id":4,"room":""}', { code: 'bad_request', id: 4 }],
      ['room of 129 characters', JSON.stringify({ type: 'join', id: 5, room: 'x'.repeat(129) }), { code: 'bad_request', id: 5 }],
      ['room with a slash', '{"type":"join","id":6,"room":"a/b"}', { code: 'bad_request', id: 6 }],
      ['negative since', '{"type":"join","id":7,"room":"r","since":-1}', { code: 'bad_request', id: 7 }],
      ['bad id type', '{"type":"ping","id":{"a":1}}', { code: 'bad_request' }],
    ];
    it.each(cases)('%s', async (_label, raw, expected) => {
      const c = await connect('fuzzy');
      c.send(raw);
      expect(await c.next()).toMatchObject({ type: 'error', ...expected });
      expect(await c.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
    });

    it('room names with every allowed character work', async () => {
      const c = await connect('chars');
      const room = `A-z_0.9:${uniq('x')}`;
      await c.ok({ type: 'join', room });
      expect(await c.ok({ type: 'publish', room, content: 'ok' })).toMatchObject({ seq: 1 });
      expect(await c.next((f) => f.type === 'message')).toMatchObject({ room, content: 'ok' });
    });

    it('content over MAX_CONTENT_CHARS is too_large and nothing is stored', async () => {
      const c = await connect('long');
      const room = uniq('long');
      await c.ok({ type: 'join', room });
      expect(await c.request({ type: 'publish', room, content: 'x'.repeat(101) })).toMatchObject({ type: 'error', code: 'too_large' });
      expect(await c.request({ type: 'direct', to: 'ann', content: 'x'.repeat(101) })).toMatchObject({ type: 'error', code: 'too_large' });
      expect((await c.ok({ type: 'history', room })).seq).toBe(0);
    });

    it('a binary frame closes the connection with 1003', async () => {
      const c = await connect('binary');
      c.ws.send(Buffer.from([1, 2, 3]), { binary: true });
      expect((await c.waitClosed()).code).toBe(1003);
    });

    it('a frame over MAX_FRAME_BYTES closes the connection with 1009', async () => {
      const c = await connect('big');
      c.send(JSON.stringify({ type: 'ping', pad: 'x'.repeat(4096) }));
      expect((await c.waitClosed()).code).toBe(1009);
    });
  });

  describe('upgrade', () => {
    it('selects rt.v1 when offered', async () => {
      const c = await TestClient.connect(gwA, { query: { username: 'proto' }, protocols: ['other', 'rt.v1'] });
      clients.push(c);
      expect(c.ws.protocol).toBe('rt.v1');
    });

    it('rejects a client offering only unknown subprotocols with HTTP 400', async () => {
      await expect(TestClient.connect(gwA, { query: { username: 'x' }, protocols: ['mqtt'] })).rejects.toThrow('HTTP 400');
    });

    it('closes with 4001 without credentials', async () => {
      expect(await expectClosed(gwA, {})).toMatchObject({ code: 4001, reason: expect.stringContaining('missing credentials') });
    });

    it('closes with 4001 for an invalid username', async () => {
      expect((await expectClosed(gwA, { query: { username: '\u0001' } })).code).toBe(4001);
    });

    it('answers 404 JSON for unknown paths and 200 on /healthz and /readyz', async () => {
      const http = gwA.replace(/^ws/, 'http');
      const nf = await fetch(`${http}/nope`);
      expect(nf.status).toBe(404);
      expect(await nf.json()).toMatchObject({ error: { code: 'not_found' } });
      expect((await fetch(`${http}/healthz`)).status).toBe(200);
      const doc = (await (await fetch(`${http}/asyncapi.json`)).json()) as { asyncapi: string; servers: Record<string, { host: string }> };
      expect(doc.asyncapi).toBe('3.0.0');
      expect(JSON.stringify(doc.servers)).toContain(new URL(http).host);
      expect((await fetch(`${http}/readyz`)).status).toBe(200);
    });
  });
});

describe('anonymous mode off', () => {
  it('refuses ?username= with 4001', async () => {
    const t = await TARGETS[0]![1]({ ALLOW_ANONYMOUS: 'false' });
    try {
      expect(await expectClosed(t.gateways[0]!, { query: { username: 'ann' } })).toMatchObject({
        code: 4001,
        reason: expect.stringContaining('anonymous access is disabled'),
      });
    } finally {
      await t.stop();
    }
  });
});

// Keep the ws import used for typing the raw socket in cases above.
export type { WebSocket };

describe('the demo app', () => {
  it('is served at / with the SDK bundle next to it', async () => {
    const t = await TARGETS[0]![1]();
    try {
      const http = t.gateways[0]!.replace(/^ws/, 'http');
      const page = await fetch(`${http}/`);
      expect(page.status).toBe(200);
      expect(page.headers.get('content-type')).toContain('text/html');
      const html = await page.text();
      expect(html.toLowerCase()).toContain('<!doctype html>');
      const etag = page.headers.get('etag')!;
      expect((await fetch(`${http}/`, { headers: { 'if-none-match': etag } })).status).toBe(304);
      // `npm test` builds the demo first (pretest).
      expect(html).toContain('app.js');
      for (const file of ['/app.js', '/app.css', '/rt-client.js']) {
        const res = await fetch(`${http}${file}`);
        expect(res.status).toBe(200);
        expect((await res.text()).length).toBeGreaterThan(100);
      }
    } finally {
      await t.stop();
    }
  });
});

/**
 * Upgrades over a raw TCP socket, then writes a text frame header announcing `length` bytes and
 * `payload` (all of it, or only its start). Resolves when the server ends the connection, or once
 * it answers with a `pong`, with what it sent after the upgrade (a close frame, or nothing).
 */
function announceFrame(base: string, length: number, payload: Buffer): Promise<{ afterUpgrade: Buffer; closed: boolean }> {
  const url = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(Number(url.port), url.hostname);
    let head = Buffer.alloc(0);
    let upgraded = false;
    let afterUpgrade = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`still open 10 s after announcing ${length} bytes`));
    }, 10_000);
    socket.on('connect', () => {
      socket.write(
        `GET /ws?username=raw HTTP/1.1\r\nHost: ${url.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    socket.on('data', (chunk: Buffer) => {
      if (upgraded) {
        afterUpgrade = Buffer.concat([afterUpgrade, chunk]);
        if (afterUpgrade.includes('"type":"pong"')) {
          clearTimeout(timer);
          socket.destroy();
          resolve({ afterUpgrade, closed: false });
        }
        return;
      }
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end < 0) return;
      expect(head.subarray(0, 12).toString()).toBe('HTTP/1.1 101');
      upgraded = true;
      afterUpgrade = head.subarray(end + 4);
      // A text frame with a 64-bit length, masked with a zero key so the payload goes as it is.
      const header = Buffer.alloc(14);
      header[0] = 0x81;
      header[1] = 0x80 | 127;
      header.writeBigUInt64BE(BigInt(length), 2);
      socket.write(Buffer.concat([header, payload]));
    });
    socket.on('error', () => {}); // a reset is one way the server may end it
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ afterUpgrade, closed: true });
    });
  });
}

/** The close code of the first frame in `bytes` if it is a close frame (server frames are unmasked). */
function closeCode(bytes: Buffer): number | undefined {
  // Skip the welcome and any other text frames the server sent first.
  let at = 0;
  while (at + 2 <= bytes.length) {
    const opcode = bytes[at]! & 0x0f;
    let len = bytes[at + 1]! & 0x7f;
    let off = at + 2;
    if (len === 126) {
      len = bytes.readUInt16BE(off);
      off += 2;
    } else if (len === 127) {
      len = Number(bytes.readBigUInt64BE(off));
      off += 8;
    }
    if (opcode === 0x8) return bytes.readUInt16BE(off);
    at = off + len;
  }
  return undefined;
}

describe('frames over MAX_FRAME_BYTES (default 64 KiB)', () => {
  let t: Target;
  let gw: string;
  const clients: TestClient[] = [];
  const limit = uwsPayloadLimit(65_536);
  beforeAll(async () => {
    t = await embeddedTarget({ MAX_FRAME_BYTES: '65536' });
    gw = t.gateways[0]!;
  });
  afterAll(async () => {
    for (const c of clients) c.terminate();
    await t?.stop();
  });

  it.each([
    ['65,537 bytes', 65_537],
    ['300 KiB', 300 * 1024],
    ['1 MiB', 1024 * 1024],
    ['MAX_FRAME_BYTES + 1 MiB, the most uWS holds', limit],
  ])('%s: close 1009 with the reason', async (_label, size) => {
    const c = await TestClient.connect(gw, { query: { username: 'big' } });
    clients.push(c);
    c.send('x'.repeat(size));
    expect(await c.waitClosed(10_000)).toEqual({ code: 1009, reason: 'frame larger than 65536 bytes' });
    // The gateway is fine: the next connection works.
    const after = await TestClient.connect(gw, { query: { username: 'after' } });
    clients.push(after);
    expect((await after.request({ type: 'ping' })).type).toBe('pong');
  });

  it.each([
    ['one byte over what uWS holds', limit + 1],
    ['16 MiB', 16 * 1024 * 1024],
    ['100 MiB', 100 * 1024 * 1024],
    ['2^53 bytes', 2 ** 53],
  ])('announcing %s: the connection is dropped at the frame header, without buffering the payload', async (_label, length) => {
    // Only 64 KiB of the payload is ever sent: the server must not wait for the rest.
    const { afterUpgrade, closed } = await announceFrame(gw, length, Buffer.alloc(64 * 1024, 'x'));
    expect(closed).toBe(true);
    // uWebSockets.js closes the TCP connection without a close frame (the client sees 1006):
    // what README's Security section and docs/protocol.md say happens past this size.
    expect(closeCode(afterUpgrade)).toBeUndefined();
    const after = await TestClient.connect(gw, { query: { username: 'after' } });
    clients.push(after);
    expect((await after.request({ type: 'ping' })).type).toBe('pong');
  });

  it('the raw frame writer is right: a frame within MAX_FRAME_BYTES sent the same way is answered, one over it gets 1009', async () => {
    const ping = Buffer.from(JSON.stringify({ type: 'ping', id: 1, pad: 'x'.repeat(1000) }));
    expect(await announceFrame(gw, ping.length, ping)).toMatchObject({ closed: false });
    const { afterUpgrade, closed } = await announceFrame(gw, 70_000, Buffer.alloc(70_000, 'x'));
    expect(closed).toBe(true);
    expect(closeCode(afterUpgrade)).toBe(1009);
  });
});
