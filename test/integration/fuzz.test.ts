/**
 * Thousands of random and mutated frames and HTTP bodies against a gateway: it never crashes, never
 * shows a stack trace, answers the next good request, keeps its memory flat, and never logs a
 * token or a ticket. fast-check prints the seed of a failing run so it can be replayed.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embeddedTarget, type Target } from '../harness/targets.ts';
import { TestClient, type Frame } from '../harness/client.ts';
import { TEST_SECRET, hs256 } from '../harness/jwt.ts';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const ROOM = 'fuzz';
const TYPES = ['join', 'leave', 'publish', 'typing', 'history', 'presence', 'direct', 'ping', 'refresh', 'notifications.list', 'nope', ''];
/** Values of every JSON kind, including the awkward ones. */
const anyValue = fc.oneof(
  fc.constantFrom(null, true, false, 0, -1, 1e308, -0, 2 ** 53, '', ' ', '\u0000', 'a'.repeat(4500), ROOM, 'a b', '../x'),
  fc.string(),
  fc.integer(),
  fc.double(),
  fc.array(fc.string(), { maxLength: 5 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 3 }),
);
/** A frame of a known type with fields of random kinds (at most 13 × 4500 characters: under MAX_FRAME_BYTES). */
const mutatedFrame = fc
  .record(
    {
      type: fc.constantFrom(...TYPES),
      id: anyValue,
      room: anyValue,
      content: anyValue,
      since: anyValue,
      epoch: anyValue,
      limit: anyValue,
      before: anyValue,
      after: anyValue,
      to: anyValue,
      typing: anyValue,
      cid: anyValue,
      token: anyValue,
    },
    { requiredKeys: ['type'] },
  )
  .map((f) => JSON.stringify(f));
const rawText = fc.oneof(fc.string({ maxLength: 200 }), fc.json(), fc.constantFrom('{', '}', '[]', 'null', '"x"', '{"type":', '{"type":"join","room":'));
const frame = fc.oneof({ weight: 3, arbitrary: mutatedFrame }, { weight: 1, arbitrary: rawText });

function leaksInternals(text: string): boolean {
  return /\n\s+at |\.ts:\d+|node_modules|\/work\/|TypeError|ReferenceError|SyntaxError/.test(text);
}

describe('fuzzing the gateway', () => {
  let t: Target;
  let gw: string;
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      logs.push(chunk.toString());
      done();
    },
  });

  beforeAll(async () => {
    t = await embeddedTarget({ LOG_LEVEL: 'trace', JWT_SECRET: TEST_SECRET, ALLOW_ANONYMOUS: 'true' }, { logDestination: sink });
    gw = t.gateways[0]!;
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('random and mutated frames: every answer is a protocol frame, no internals leak, the next good request is answered', async () => {
    const c = await TestClient.connect(gw, { query: { username: 'fuzzer' } });
    await c.ok({ type: 'join', room: ROOM });
    let sent = 0;
    let pings = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(frame, { minLength: 5, maxLength: 25 }), async (batch) => {
        for (const text of batch) c.send(text);
        sent += batch.length;
        // An id no fuzzed frame carries (theirs are short strings and numbers): the client's own
        // counter would meet a fuzzed `"id":27`, whose error would pass for the ping's answer.
        const id = `fuzz-ping-${++pings}-${'#'.repeat(32)}`;
        c.send({ type: 'ping', id });
        const pong = await c.next((f) => f.id === id);
        expect(pong.type).toBe('pong');
        for (const f of c.events.splice(0)) {
          expect(['reply', 'error', 'message', 'presence', 'typing', 'direct', 'pong']).toContain(f.type);
          expect(leaksInternals(JSON.stringify(f))).toBe(false);
          if (f.type === 'error') expect(['bad_request', 'unknown_type', 'not_member', 'forbidden', 'too_large', 'unauthorized']).toContain(f.code);
        }
      }),
      { numRuns: 400 },
    );
    expect(sent).toBeGreaterThan(3000);
    expect(c.closed).toBeUndefined();
    c.close();
  }, 120_000);

  it('random HTTP bodies and headers get JSON errors, never a stack trace, and the gateway keeps serving', async () => {
    const http = gw.replace(/^ws/, 'http');
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('/api/tickets', '/api/notifications', '/api/rooms/x/messages', '/nope', '/ws'),
        fc.oneof(fc.string({ maxLength: 300 }), fc.json()),
        fc.constantFrom('', 'Bearer ', 'Bearer x.y.z', 'Basic abc', `Bearer ${'a'.repeat(9000)}`),
        async (path, body, authorization) => {
          const res = await fetch(`${http}${path}`, { method: 'POST', body, headers: authorization ? { authorization } : {} });
          const text = await res.text();
          expect(res.status).toBeGreaterThanOrEqual(400);
          expect(res.status).toBeLessThan(500);
          expect(() => JSON.parse(text)).not.toThrow();
          expect(JSON.parse(text)).toMatchObject({ error: { code: expect.any(String), message: expect.any(String) } });
          expect(leaksInternals(text)).toBe(false);
        },
      ),
      { numRuns: 300 },
    );
    expect((await fetch(`${http}/healthz`)).status).toBe(200);
  }, 120_000);

  it('memory stays flat under thousands of bad frames and short-lived connections', async () => {
    const round = async () => {
      const conns = await Promise.all(Array.from({ length: 20 }, (_, i) => TestClient.connect(gw, { query: { username: `m${i}` } })));
      for (const c of conns) {
        for (let i = 0; i < 50; i++) c.send(i % 2 ? '{"type":"join","room":"a b"}' : '{bad');
        await c.request({ type: 'ping' });
        c.terminate();
      }
    };
    await round();
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < 10; i++) await round();
    gc();
    const growth = process.memoryUsage().heapUsed - before;
    // 10 rounds × 20 connections × 50 frames = 10,000 frames. A leak of even 1 KiB per frame or
    // 50 KiB per connection would exceed this.
    expect(growth).toBeLessThan(8 * 1024 * 1024);
  }, 60_000);

  it('tokens and tickets never appear in the logs', async () => {
    const http = gw.replace(/^ws/, 'http');
    const good = await hs256({ sub: 'logged', expiresIn: 600 });
    const bad = `${good.slice(0, -4)}AAAA`;
    const secrets = [good, bad];
    const c = await TestClient.connect(gw, { query: { token: good } });
    await expect(TestClient.connect(gw, { query: { token: bad } })).rejects.toThrow();
    const res = await fetch(`${http}/api/tickets`, { method: 'POST', headers: { authorization: `Bearer ${good}` } });
    const { ticket } = (await res.json()) as { ticket: string };
    secrets.push(ticket);
    const viaTicket = await TestClient.connect(gw, { query: { ticket } });
    await expect(TestClient.connect(gw, { query: { ticket } })).rejects.toThrow();
    c.send({ type: 'refresh', token: good });
    await c.request({ type: 'ping' });
    c.close();
    viaTicket.close();
    await viaTicket.waitClosed();
    const all = logs.join('');
    expect(all.length).toBeGreaterThan(0);
    for (const s of secrets) expect(all).not.toContain(s);
    const answers: Frame[] = c.events;
    for (const f of answers) expect(JSON.stringify(f)).not.toContain(good);
  });
});
