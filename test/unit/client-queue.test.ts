/**
 * SDK requests across disconnections, with fake timers and a fake WebSocket: the offline queue
 * (order, limit, timeouts), publish retries with the same cid, requests that must not be sent twice.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RtClient, RtError, type RtClientOptions } from '../../client/index.ts';
import { RequestQueue } from '../../client/queue.ts';
import { FakeWebSocket, type Frame } from '../harness/fake-websocket.ts';

const tick = () => vi.advanceTimersByTimeAsync(0);

function makeClient(opts: Partial<RtClientOptions> = {}) {
  return new RtClient({ url: 'ws://gw.test/ws', username: 'ann', WebSocket: FakeWebSocket, random: () => 0, ...opts });
}

async function online(client: RtClient, fields: Record<string, unknown> = {}) {
  const welcome = client.connect();
  await tick();
  FakeWebSocket.last.welcome({ heartbeat: 0, ...fields });
  await welcome;
  return FakeWebSocket.last;
}

/** Joins `room` on the current fake connection. */
async function joined(client: RtClient, name: string, ws = FakeWebSocket.last) {
  const room = client.room(name);
  const join = room.join();
  await tick();
  ws.reply(ws.lastRequest('join'), { room: name, seq: 0, epoch: 'e1', members: [], history: [] });
  await join;
  return room;
}

beforeEach(() => {
  vi.useFakeTimers();
  FakeWebSocket.reset();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('offline queue', () => {
  it('requests made before connecting wait, then go out in order once the room is joined', async () => {
    const client = makeClient();
    const room = client.room('lobby');
    const join = room.join();
    const p1 = room.publish('one');
    const p2 = room.publish('two');
    const dm = client.direct('bob', 'hi');
    expect(client.queued).toBe(3);
    void client.connect();
    await tick();
    const ws = FakeWebSocket.last;
    ws.welcome({ heartbeat: 0 });
    await tick();
    // The direct message needs no room; the publishes wait for the join reply.
    expect(ws.sent.map((f) => f.type)).toEqual(['join', 'direct']);
    ws.reply(ws.lastRequest('join'), { room: 'lobby', seq: 4, epoch: 'e1', members: [], history: [] });
    await tick();
    expect(ws.sent.map((f) => f.type)).toEqual(['join', 'direct', 'publish', 'publish']);
    const [a, b] = ws.requests('publish');
    expect([a!.content, b!.content]).toEqual(['one', 'two']);
    ws.reply(a!, { room: 'lobby', seq: 5, ts: 't5' });
    ws.reply(b!, { room: 'lobby', seq: 6, ts: 't6' });
    ws.reply(ws.lastRequest('direct'), { room: 'dm:ann-bob', seq: 1, ts: 'td' });
    await expect(join).resolves.toMatchObject({ seq: 4, epoch: 'e1' });
    await expect(p1).resolves.toMatchObject({ seq: 5, cid: a!.cid });
    await expect(p2).resolves.toMatchObject({ seq: 6 });
    await expect(dm).resolves.toMatchObject({ room: 'dm:ann-bob', seq: 1, ts: 'td', cid: ws.lastRequest('direct').cid });
  });

  it('is bounded: past maxQueue a request fails at once with queue_full', async () => {
    const client = makeClient({ maxQueue: 3 });
    const room = client.room('lobby');
    const waiting = [room.publish('1'), room.publish('2'), room.publish('3')];
    for (const p of waiting) p.catch(() => {});
    await expect(room.publish('4')).rejects.toMatchObject({ code: 'queue_full' });
    expect(client.queued).toBe(3);
    client.close();
  });

  it('each request times out on its own, counted from when it was made; it is then never sent', async () => {
    const client = makeClient({ requestTimeoutMs: 5000 });
    const room = client.room('lobby');
    const early = room.publish('early').catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(3000);
    const late = room.publish('late', { timeoutMs: 10_000 }).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(2000);
    const err = await early;
    expect(err).toBeInstanceOf(RtError);
    expect(err).toMatchObject({ code: 'timeout', message: expect.stringMatching(/publish within 5000 ms/) });
    expect(client.queued).toBe(1);
    const ws = await online(client);
    await tick();
    // Not joined: the publish goes out (the server will say not_member); the timed out one does not.
    expect(ws.requests('publish').map((f) => f.content)).toEqual(['late']);
    ws.error(ws.lastRequest('publish'), 'not_member', 'join room "lobby" first');
    expect(await late).toMatchObject({ code: 'not_member' });
  });

  it('a request in flight times out too, and its late answer is ignored', async () => {
    const client = makeClient({ requestTimeoutMs: 1000 });
    const ws = await online(client);
    const room = await joined(client, 'lobby');
    const p = room.history({ after: 0 }).catch((e: unknown) => e);
    await tick();
    const req = ws.lastRequest('history');
    await vi.advanceTimersByTimeAsync(1000);
    expect(await p).toMatchObject({ code: 'timeout' });
    ws.reply(req, { room: 'lobby', seq: 0, messages: [] });
  });
});

describe('pacing under the server rate limit', () => {
  it('a long offline queue goes out at the paced rate, in order, none dropped', async () => {
    const client = makeClient({ pace: { perSecond: 10, burst: 20 } });
    const sent = Array.from({ length: 60 }, (_, i) => client.direct('bob', `m${i}`));
    const ws = await online(client);
    expect(ws.requests('direct')).toHaveLength(20);
    await vi.advanceTimersByTimeAsync(1000);
    expect(ws.requests('direct')).toHaveLength(30);
    await vi.advanceTimersByTimeAsync(3000);
    expect(ws.requests('direct').map((f) => f.content)).toEqual(Array.from({ length: 60 }, (_, i) => `m${i}`));
    for (const [i, f] of ws.requests('direct').entries()) ws.reply(f, { room: 'dm:ann-bob', seq: i + 1, ts: 't' });
    await expect(Promise.all(sent)).resolves.toHaveLength(60);
  });

  it('frames still waiting when the connection drops are sent on the next one (requests put back)', async () => {
    const client = makeClient({ pace: { perSecond: 1, burst: 1 } });
    const ws = await online(client);
    const room = await joined(client, 'lobby', ws); // uses the one token
    const p = room.publish('paced');
    await tick();
    expect(ws.requests('publish')).toHaveLength(0);
    ws.serverClose(1006);
    await tick();
    FakeWebSocket.last.welcome({ heartbeat: 0, sessionId: 'sess-1', resumed: true, rooms: [{ room: 'lobby', seq: 0, epoch: 'e1' }] });
    await tick();
    expect(FakeWebSocket.last.sent.map((f) => f.type)).toEqual(['presence']); // the room's own request came first
    await vi.advanceTimersByTimeAsync(1000);
    const pub = FakeWebSocket.last.lastRequest('publish');
    FakeWebSocket.last.reply(pub, { room: 'lobby', seq: 1, ts: 't' });
    await expect(p).resolves.toMatchObject({ seq: 1 });
    expect(ws.requests('publish')).toHaveLength(0);
  });

  it('pace: false sends everything at once', async () => {
    const client = makeClient({ pace: false });
    for (let i = 0; i < 60; i++) client.direct('bob', `m${i}`).catch(() => {});
    const ws = await online(client);
    expect(ws.requests('direct')).toHaveLength(60);
    client.close();
  });
});

describe('publish retries', () => {
  it('a publish in flight when the connection drops is sent again with the same cid after the rejoin', async () => {
    const client = makeClient();
    const ws = await online(client, { sessionId: 's1' });
    const room = await joined(client, 'lobby');
    const p = room.publish('hello');
    await tick();
    const first = ws.lastRequest('publish');
    ws.serverClose(1006);
    await tick();
    const ws2 = FakeWebSocket.last;
    expect(ws2).not.toBe(ws);
    ws2.welcome({ heartbeat: 0, sessionId: 's1', resumed: true, rooms: [{ room: 'lobby', seq: 1, epoch: 'e1' }] });
    await tick();
    const again = ws2.lastRequest('publish');
    expect(again.cid).toBe(first.cid);
    expect(again.content).toBe('hello');
    expect(again.id).not.toBe(first.id);
    ws2.reply(again, { room: 'lobby', seq: 1, ts: 't' });
    await expect(p).resolves.toMatchObject({ seq: 1, cid: first.cid });
  });

  it('a publish answered unavailable is retried with the same cid after a backoff delay', async () => {
    const client = makeClient({ random: () => 0.999 });
    const ws = await online(client);
    const room = await joined(client, 'lobby');
    const p = room.publish('hello', { cid: 'my-cid' });
    await tick();
    ws.error(ws.lastRequest('publish'), 'unavailable', 'no worker answered in time; retry');
    await vi.advanceTimersByTimeAsync(498);
    expect(ws.requests('publish')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(ws.requests('publish').map((f) => f.cid)).toEqual(['my-cid', 'my-cid']);
    ws.reply(ws.lastRequest('publish'), { room: 'lobby', seq: 7, ts: 't' });
    await expect(p).resolves.toEqual({ room: 'lobby', seq: 7, ts: 't', cid: 'my-cid' });
  });

  it('a publish or a direct message refused with rate_limited is sent again later, same cid', async () => {
    const client = makeClient({ random: () => 0.999 });
    const ws = await online(client);
    const room = await joined(client, 'lobby');
    const p = room.publish('hello');
    const dm = client.direct('bob', 'hi');
    await tick();
    ws.error(ws.lastRequest('publish'), 'rate_limited', 'too many requests; slow down');
    ws.error(ws.lastRequest('direct'), 'rate_limited', 'too many requests; slow down');
    await vi.advanceTimersByTimeAsync(499);
    const [first, again] = ws.requests('publish');
    expect(again?.cid).toBe(first!.cid);
    ws.reply(again!, { room: 'lobby', seq: 1, ts: 't' });
    await expect(p).resolves.toMatchObject({ seq: 1 });
    const [dm1, dm2] = ws.requests('direct');
    expect(dm2?.cid).toBe(dm1!.cid);
    ws.reply(dm2!, { room: 'dm:ann-bob', seq: 3, ts: 't' });
    await expect(dm).resolves.toMatchObject({ room: 'dm:ann-bob', seq: 3, cid: dm1!.cid });
  });

  it('other errors reject with the server code and message', async () => {
    const client = makeClient();
    const ws = await online(client);
    const room = await joined(client, 'lobby');
    const p = room.publish('x'.repeat(10));
    await tick();
    ws.error(ws.lastRequest('publish'), 'too_large', 'content is longer than 4 characters');
    await expect(p).rejects.toMatchObject({ name: 'RtError', code: 'too_large', message: 'content is longer than 4 characters' });
  });

  it('a direct message in flight when the connection drops is sent again on the next one, same cid (stored once)', async () => {
    const client = makeClient();
    const ws = await online(client);
    const p = client.direct('bob', 'hi');
    await tick();
    const [first] = ws.requests('direct');
    ws.serverClose(1006);
    await tick();
    const ws2 = FakeWebSocket.last;
    ws2.welcome({ heartbeat: 0 });
    await tick();
    const [again] = ws2.requests('direct');
    expect(again).toMatchObject({ to: 'bob', content: 'hi', cid: first!.cid });
    ws2.reply(again!, { room: 'dm:ann-bob', seq: 2, ts: 't' });
    await expect(p).resolves.toMatchObject({ seq: 2, cid: first!.cid });
  });

  it('requests in flight go back in their place, before the ones made later', async () => {
    const client = makeClient();
    const ws = await online(client, { sessionId: 's1' });
    const room = await joined(client, 'lobby');
    const a = room.publish('a');
    await tick();
    ws.serverClose(1006);
    const b = room.publish('b');
    await tick();
    const ws2 = FakeWebSocket.last;
    ws2.welcome({ heartbeat: 0, sessionId: 's1', resumed: true, rooms: [{ room: 'lobby', seq: 0, epoch: 'e1' }] });
    await tick();
    expect(ws2.requests('publish').map((f) => f.content)).toEqual(['a', 'b']);
    for (const [i, f] of ws2.requests('publish').entries()) ws2.reply(f, { room: 'lobby', seq: i + 1, ts: 't' });
    await expect(Promise.all([a, b])).resolves.toHaveLength(2);
  });
});

describe('RequestQueue', () => {
  const make = (maxQueue = 10) => new RequestQueue({ maxQueue, retryDelay: () => 100, wake: () => {} });

  it('settles every request once: answer, rejectAll, or timeout', async () => {
    vi.useFakeTimers();
    const q = make();
    const a = q.add({ type: 'history' }, { retry: true, timeoutMs: 1000 });
    const b = q.add({ type: 'direct' }, { retry: false, timeoutMs: 1000 });
    const sent = q.takeReady(() => true);
    expect(sent.map((f) => f.id)).toEqual([1, 2]);
    expect(q.answer({ type: 'reply', id: 1 })).toBe(true);
    expect(q.answer({ type: 'reply', id: 1 })).toBe(false);
    await expect(a).resolves.toEqual({ type: 'reply', id: 1 });
    q.rejectAll(new RtError('closed', 'bye'));
    await expect(b).rejects.toMatchObject({ code: 'closed' });
    expect(q.answer({ type: 'reply', id: 2 } as Frame)).toBe(false);
  });

  it('takeReady leaves what is not ready, in order', () => {
    const q = make();
    for (const room of ['a', 'b', 'a', undefined]) q.add({ type: 'x', room }, { retry: true, timeoutMs: 1000, ...(room ? { room } : {}) }).catch(() => {});
    expect(q.takeReady((room) => room !== 'a').map((f) => f.room)).toEqual(['b', undefined]);
    expect(q.waiting).toBe(2);
    expect(q.takeReady(() => true).map((f) => f.room)).toEqual(['a', 'a']);
    q.rejectAll(new RtError('closed', 'done'));
  });
});
