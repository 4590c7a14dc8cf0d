/** Server-sent events at /sse, in both modes, with a Node reader (the browser test uses Chromium's EventSource). */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TARGETS, embeddedTarget, type Target } from '../harness/targets.ts';
import { TestClient } from '../harness/client.ts';
import { SseClient } from '../harness/sse.ts';
import { TEST_SECRET, hs256 } from '../harness/jwt.ts';

let n = 0;
const uniq = (p: string) => `${p}-${process.pid}-${++n}`;

describe.each(TARGETS)('SSE (%s)', (_name, start) => {
  let t: Target;
  let http: string;
  const closers: { close(): void }[] = [];
  const sse = async (path: string, headers: Record<string, string> = {}) => {
    const s = await SseClient.open(`${http}${path}`, headers);
    closers.push(s);
    return s;
  };
  const ws = async (user: string) => {
    const c = await TestClient.connect(t.gateways.at(-1)!, { query: { username: user } });
    closers.push(c);
    return c;
  };

  beforeAll(async () => {
    t = await start({ API_KEY: 'k', SSE_HEARTBEAT_MS: '300', JWT_SECRET: TEST_SECRET });
    http = t.gateways[0]!.replace(/^ws/, 'http');
  });
  afterAll(async () => {
    for (const c of closers) c.close();
    await t?.stop();
  });

  it('streams room messages with id room:seq, presence and typing, with a retry hint and comment heartbeats', async () => {
    const room = uniq('feed');
    const s = await sse(`/sse?rooms=${room}&username=reader`);
    expect(s.status).toBe(200);
    expect(s.headers.get('content-type')).toContain('text/event-stream');
    const writer = await ws('writer');
    await writer.ok({ type: 'join', room });
    expect(await s.next((e) => e.event === 'presence')).toMatchObject({ json: { type: 'presence', event: 'join', user: { id: 'writer' } } });
    for (let i = 1; i <= 3; i++) await writer.ok({ type: 'publish', room, content: `m${i}` });
    const msgs = await s.take('message', 3);
    expect(msgs.map((m) => m.id)).toEqual([`${room}:1`, `${room}:2`, `${room}:3`]);
    expect(msgs.map((m) => m.json.content)).toEqual(['m1', 'm2', 'm3']);
    writer.send({ type: 'typing', room, typing: true });
    expect((await s.next((e) => e.event === 'typing')).json.users).toEqual([{ id: 'writer', name: 'writer' }]);
    expect(s.retry).toBe(2000);
    await expect.poll(() => s.comments, { timeout: 3000 }).toBeGreaterThanOrEqual(2);
  });

  it('resumes from Last-Event-ID without losing or repeating a message, in every room of the stream', async () => {
    const a = uniq('ra');
    const b = `${uniq('rb')}:with:colons`;
    const writer = await ws('w2');
    await writer.ok({ type: 'join', room: a });
    await writer.ok({ type: 'join', room: b });
    const s1 = await sse(`/sse?rooms=${a},${b}&username=follower`);
    await s1.next((e) => e.event === 'presence' || e.event === 'message', 200).catch(() => undefined);
    await writer.ok({ type: 'publish', room: a, content: 'a1' });
    await writer.ok({ type: 'publish', room: b, content: 'b1' });
    const seen = await s1.take('message', 2);
    const lastId = seen.at(-1)!.id!;
    expect(lastId).toContain(`${a}:1`);
    expect(lastId).toContain(`${b}:1`);
    s1.close();
    // While away: two more in each room.
    for (const room of [a, b]) for (const c of ['x', 'y']) await writer.ok({ type: 'publish', room, content: `${room}-${c}` });
    const s2 = await sse(`/sse?rooms=${a},${b}&username=follower`, { 'last-event-id': lastId });
    await writer.ok({ type: 'publish', room: a, content: 'live' });
    const got = await s2.take('message', 5);
    const byRoom = (room: string) => got.filter((m) => m.json.room === room).map((m) => m.json.seq);
    expect(byRoom(a)).toEqual([2, 3, 4]);
    expect(byRoom(b)).toEqual([2, 3]);
    // Order is per room (replays of different rooms interleave): the live one is last in its room.
    expect(got.filter((m) => m.json.room === a).at(-1)!.json.content).toBe('live');
  });

  it("carries the user's own events: direct messages and notifications", async () => {
    const user = uniq('inbox');
    const s = await sse(`/sse?username=${user}`);
    const sender = await ws('sender');
    await sender.ok({ type: 'direct', to: user, content: 'psst' });
    expect(await s.next((e) => e.event === 'direct')).toMatchObject({ json: { content: 'psst', from: { id: 'sender' } } });
    const res = await fetch(`${http}/api/notifications`, {
      method: 'POST',
      headers: { authorization: 'Bearer k', 'content-type': 'application/json' },
      body: JSON.stringify({ userId: user, kind: 'info', title: 'Hi', body: 'there' }),
    });
    expect(res.status).toBe(202);
    expect(await s.next((e) => e.event === 'notification')).toMatchObject({ json: { notification: { title: 'Hi' }, unread: 1 } });
  });

  it('authenticates like /ws: 401 without credentials, JWT accepted, 403 for a private room, 400 for a bad room', async () => {
    const none = await sse('/sse?rooms=a');
    expect(none.status).toBe(401);
    expect(JSON.parse(none.errorBody)).toMatchObject({ error: { code: 'unauthorized' } });
    const token = await hs256({ sub: 'jwt-reader', rooms: ['private:ok'] });
    expect((await sse(`/sse?rooms=private:ok&token=${token}`)).status).toBe(200);
    expect((await sse('/sse?rooms=private:ok', { authorization: `Bearer ${token}` })).status).toBe(200);
    expect((await sse(`/sse?rooms=private:nope&token=${token}`)).status).toBe(403);
    expect((await sse('/sse?rooms=a%20b&username=x')).status).toBe(400);
  });
});

describe('SSE backpressure', () => {
  it('a reader that falls behind is cut, and resumes from history without loss', async () => {
    const t = await embeddedTarget({ SSE_MAX_BUFFER_BYTES: '65536', RATE_LIMIT_RPS: '0' });
    try {
      const http = t.gateways[0]!.replace(/^ws/, 'http');
      const room = 'firehose';
      const writer = await TestClient.connect(t.gateways[0]!, { query: { username: 'w' } });
      await writer.ok({ type: 'join', room });
      // A reader that never reads: the kernel buffers fill, then the gateway's backlog, then it is cut.
      const abort = new AbortController();
      const stalled = await fetch(`${http}/sse?rooms=${room}&username=slow`, { signal: abort.signal });
      expect(stalled.status).toBe(200);
      const content = 'x'.repeat(3000);
      let published = 0;
      const metrics = async () => Number(/rt_gateway_sse_connections\S* (\d+)/.exec(await (await fetch(`${http}/metrics`)).text())?.[1]);
      expect(await metrics()).toBe(1);
      while ((await metrics()) > 0) {
        await Promise.all(Array.from({ length: 100 }, () => writer.ok({ type: 'publish', room, content })));
        published += 100;
        expect(published).toBeLessThan(20_000);
      }
      abort.abort();
      // It comes back from a position within REPLAY_MAX and gets everything after it, in order, then live.
      const from = published - 300;
      const again = await SseClient.open(`${http}/sse?rooms=${room}&username=slow`, { 'last-event-id': `${room}:${from}` });
      await writer.ok({ type: 'publish', room, content: 'live' });
      const all = await again.take('message', 301, 30_000);
      expect(all.map((m) => m.json.seq)).toEqual(Array.from({ length: 301 }, (_, i) => from + 1 + i));
      expect(all.at(-1)!.json.content).toBe('live');
      again.close();
      writer.close();
    } finally {
      await t.stop();
    }
  }, 60_000);
});
