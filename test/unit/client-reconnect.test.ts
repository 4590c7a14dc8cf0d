/**
 * SDK reconnection with fake timers and a fake WebSocket: which close codes reconnect and how
 * soon, credentials on 4001, session resume, URL lists, giving up.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RtClient, RtError, type RtClientOptions, type StateChange } from '../../client/index.ts';
import { FakeWebSocket } from '../harness/fake-websocket.ts';

const tick = () => vi.advanceTimersByTimeAsync(0);

function makeClient(opts: Partial<RtClientOptions> = {}) {
  const client = new RtClient({ url: 'ws://gw.test/ws', username: 'ann', WebSocket: FakeWebSocket, ...opts });
  const states: StateChange[] = [];
  client.on('state', (s) => states.push(s));
  return { client, states };
}

async function online(client: RtClient, fields: Record<string, unknown> = {}) {
  const welcome = client.connect();
  await tick();
  FakeWebSocket.last.welcome(fields);
  await welcome;
  return FakeWebSocket.last;
}

beforeEach(() => {
  vi.useFakeTimers();
  FakeWebSocket.reset();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('connect', () => {
  it('offers rt.v1, sends the username, and is online after welcome', async () => {
    const { client, states } = makeClient();
    const ws = await online(client);
    expect(ws.protocols).toEqual(['rt.v1']);
    expect(ws.param('username')).toBe('ann');
    expect(ws.param('session')).toBeNull();
    expect(client.state).toBe('online');
    expect(states.map((s) => s.state)).toEqual(['connecting', 'online']);
    expect(client.user).toEqual({ id: 'ann', name: 'ann' });
  });

  it('without a welcome within connectTimeoutMs the attempt is abandoned and retried', async () => {
    const { client, states } = makeClient({ connectTimeoutMs: 3000, random: () => 0.5 });
    void client.connect();
    await tick();
    const first = FakeWebSocket.last;
    first.open();
    await vi.advanceTimersByTimeAsync(2999);
    expect(FakeWebSocket.instances).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(first.closedByClient?.code).toBe(4000);
    expect(states.at(-1)).toMatchObject({ state: 'reconnecting', code: 1006, attempt: 1, delayMs: 250 });
    await vi.advanceTimersByTimeAsync(250);
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it('without a WebSocket implementation the constructor says what to pass', () => {
    expect(() => new RtClient({ url: 'ws://x/ws', WebSocket: undefined })).toThrow(/WebSocket option/);
  });
});

describe('reconnect by close code', () => {
  it.each([1000, 1003, 1008, 1009, 4003])('never after %i: offline, requests fail with a clear error', async (code) => {
    const { client, states } = makeClient();
    const ws = await online(client);
    const room = client.room('lobby');
    ws.serverClose(code, 'bye');
    const publish = room.publish('after the close');
    await expect(publish).rejects.toMatchObject({ code: code === 4003 ? 'forbidden' : 'closed' });
    await vi.advanceTimersByTimeAsync(120_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(client.state).toBe('offline');
    expect(states.at(-1)).toMatchObject({ state: 'offline', code, reason: 'bye' });
    expect(states.at(-1)!.error).toBeInstanceOf(RtError);
  });

  it.each([1006, 1011, 1013, 1005])('after %i with backoff, resuming the session', async (code) => {
    const { client, states } = makeClient({ random: () => 0.999 });
    const ws = await online(client, { sessionId: 'sess-A' });
    ws.serverClose(code);
    expect(states.at(-1)).toMatchObject({ state: 'reconnecting', attempt: 1, delayMs: 499, code });
    await vi.advanceTimersByTimeAsync(498);
    expect(FakeWebSocket.instances).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(FakeWebSocket.instances).toHaveLength(2);
    expect(FakeWebSocket.last.param('session')).toBe('sess-A');
    expect(FakeWebSocket.last.param('username')).toBe('ann');
  });

  it('after 1001 at once with a small jitter, not the backoff', async () => {
    const { client, states } = makeClient({ random: () => 0.999, reconnect: { baseMs: 10_000, goingAwayJitterMs: 200 } });
    const ws = await online(client);
    ws.serverClose(1001, 'server shutting down');
    expect(states.at(-1)).toMatchObject({ state: 'reconnecting', delayMs: 199 });
    await vi.advanceTimersByTimeAsync(199);
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it('failed attempts back off exponentially up to the cap, and a welcome resets the count', async () => {
    const { client, states } = makeClient({ random: () => 0.999 });
    void client.connect();
    await tick();
    const delays: number[] = [];
    for (let i = 0; i < 9; i++) {
      FakeWebSocket.last.serverClose(1006);
      const s = states.at(-1)!;
      delays.push(s.delayMs!);
      await vi.advanceTimersByTimeAsync(s.delayMs!);
    }
    expect(delays).toEqual([499, 999, 1998, 3996, 7992, 15984, 29970, 29970, 29970]);
    FakeWebSocket.last.welcome();
    FakeWebSocket.last.serverClose(1006);
    expect(states.at(-1)).toMatchObject({ state: 'reconnecting', attempt: 1, delayMs: 499 });
  });

  it('gives up after maxAttempts consecutive failures', async () => {
    const { client, states } = makeClient({ random: () => 0, reconnect: { maxAttempts: 3 } });
    const connected = client.connect().catch((e: unknown) => e);
    await tick();
    for (let i = 0; i < 4; i++) {
      FakeWebSocket.last.serverClose(1006);
      await tick();
    }
    expect(await connected).toMatchObject({ code: 'closed', message: expect.stringMatching(/gave up after 3/) });
    expect(FakeWebSocket.instances).toHaveLength(4);
    expect(states.at(-1)).toMatchObject({ state: 'offline' });
  });

  it('reconnect: false stops at the first close', async () => {
    const { client } = makeClient({ reconnect: false });
    const ws = await online(client);
    ws.serverClose(1006);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(client.state).toBe('offline');
    expect(FakeWebSocket.instances).toHaveLength(1);
  });

  it('a list of URLs is tried in turn', async () => {
    const { client } = makeClient({ url: ['ws://a.test/ws', 'ws://b.test/ws'], random: () => 0 });
    const ws = await online(client);
    expect(new URL(ws.url).host).toBe('a.test');
    ws.serverClose(1006);
    await tick();
    expect(new URL(FakeWebSocket.last.url).host).toBe('b.test');
    FakeWebSocket.last.serverClose(1006);
    await tick();
    expect(new URL(FakeWebSocket.last.url).host).toBe('a.test');
  });

  it('a URL function is asked for every attempt with the failure count', async () => {
    const url = vi.fn((attempt: number) => `ws://gw${attempt}.test/ws`);
    const { client } = makeClient({ url, random: () => 0 });
    void client.connect();
    await tick();
    FakeWebSocket.last.serverClose(1006);
    await tick();
    expect(url.mock.calls.map((c) => c[0])).toEqual([0, 1]);
    expect(new URL(FakeWebSocket.last.url).host).toBe('gw1.test');
  });

  it('close() closes with 1000, does not reconnect, and fails what waits', async () => {
    const { client } = makeClient();
    const ws = await online(client);
    ws.serverClose(1006);
    const queued = client.room('lobby').publish('x');
    client.close();
    await expect(queued).rejects.toMatchObject({ code: 'closed' });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(client.state).toBe('offline');
    await expect(client.room('lobby').join()).rejects.toMatchObject({ code: 'closed' });
  });

  it("in a browser, the network coming back ('online' event) skips the wait", async () => {
    const listeners = new Map<string, () => void>();
    vi.stubGlobal('addEventListener', (type: string, fn: () => void) => listeners.set(type, fn));
    vi.stubGlobal('removeEventListener', (type: string, fn: () => void) => listeners.get(type) === fn && listeners.delete(type));
    try {
      const { client } = makeClient({ random: () => 0.999, reconnect: { baseMs: 20_000 } });
      const ws = await online(client);
      ws.serverClose(1006);
      await tick();
      expect(FakeWebSocket.instances).toHaveLength(1);
      listeners.get('online')!();
      await tick();
      expect(FakeWebSocket.instances).toHaveLength(2);
      client.close();
      expect(listeners.has('online')).toBe(false);
    } finally {
      vi.unstubAllGlobals();
    }
  });

  it('reconnectNow skips the wait', async () => {
    const { client } = makeClient({ random: () => 0.999 });
    const ws = await online(client);
    ws.serverClose(1006);
    client.reconnectNow();
    await tick();
    expect(FakeWebSocket.instances).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1000);
    expect(FakeWebSocket.instances).toHaveLength(2);
  });
});

describe('credentials', () => {
  const jwt = (exp: number, sub = 'ann') =>
    `h.${Buffer.from(JSON.stringify({ sub, exp })).toString('base64url')}.sig`;

  it('4001 with a fixed username stops: there is nothing new to try', async () => {
    const { client, states } = makeClient();
    const ws = await online(client);
    ws.serverClose(4001, 'unauthorized: invalid username');
    await vi.advanceTimersByTimeAsync(60_000);
    expect(FakeWebSocket.instances).toHaveLength(1);
    expect(states.at(-1)).toMatchObject({ state: 'offline', code: 4001, error: { code: 'unauthorized' } });
  });

  it('4001 with a fixed token stops too', async () => {
    const { client } = makeClient({ username: undefined, token: 'static' });
    const ws = await online(client);
    expect(ws.param('token')).toBe('static');
    ws.serverClose(4001);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(client.state).toBe('offline');
  });

  it('4001 with a token function asks it for a new token before reconnecting', async () => {
    let n = 0;
    const token = vi.fn(async () => jwt(Math.floor(Date.now() / 1000) + 3600, `t${++n}`));
    const { client } = makeClient({ username: undefined, token, random: () => 0 });
    const ws = await online(client);
    const first = ws.param('token');
    ws.serverClose(1006);
    await tick();
    expect(token).toHaveBeenCalledTimes(1); // a valid token is used again
    expect(FakeWebSocket.last.param('token')).toBe(first);
    FakeWebSocket.last.serverClose(4001, 'unauthorized: token expired');
    await tick();
    expect(token).toHaveBeenCalledTimes(2);
    expect(FakeWebSocket.last.param('token')).not.toBe(first);
  });

  it('a token function is called again before the token expires, and the new token is sent as refresh', async () => {
    let n = 0;
    const token = vi.fn(async () => jwt(Math.floor(Date.now() / 1000) + 120, `t${++n}`));
    const { client } = makeClient({ username: undefined, token, tokenRefreshMarginMs: 30_000 });
    const ws = await online(client, { heartbeat: 0 });
    await vi.advanceTimersByTimeAsync(89_000);
    expect(ws.requests('refresh')).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1_000);
    const refresh = ws.lastRequest('refresh');
    expect(token).toHaveBeenCalledTimes(2);
    expect(refresh.token).not.toBe(ws.param('token'));
    ws.reply(refresh, { expiresAt: Date.now() + 120_000 });
    await vi.advanceTimersByTimeAsync(90_000);
    expect(ws.requests('refresh')).toHaveLength(2);
  });

  it('a failed refresh is reported as an error event; the 4001 that follows gets a new token', async () => {
    const token = vi.fn(async () => jwt(Math.floor(Date.now() / 1000) + 60));
    const { client } = makeClient({ username: undefined, token, random: () => 0 });
    const errors: RtError[] = [];
    client.on('error', (e) => errors.push(e));
    const ws = await online(client, { heartbeat: 0 });
    await vi.advanceTimersByTimeAsync(30_000);
    ws.error(ws.lastRequest('refresh'), 'unauthorized', 'token for another user');
    await tick();
    expect(errors.map((e) => e.code)).toEqual(['unauthorized']);
    ws.serverClose(4001);
    await tick();
    expect(token).toHaveBeenCalledTimes(3);
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it('a ticket function is called for every attempt (tickets are single use)', async () => {
    let n = 0;
    const ticket = vi.fn(async () => `ticket-${++n}`);
    const { client } = makeClient({ username: undefined, ticket, random: () => 0 });
    const ws = await online(client);
    expect(ws.param('ticket')).toBe('ticket-1');
    ws.serverClose(4001);
    await tick();
    expect(FakeWebSocket.last.param('ticket')).toBe('ticket-2');
  });

  it('a credential function that throws counts as a failed attempt', async () => {
    const ticket = vi.fn().mockRejectedValueOnce(new Error('HTTP 503')).mockResolvedValue('t');
    const { client, states } = makeClient({ username: undefined, ticket, random: () => 0.5 });
    const errors: RtError[] = [];
    client.on('error', (e) => errors.push(e));
    void client.connect();
    await tick();
    expect(FakeWebSocket.instances).toHaveLength(0);
    expect(errors[0]?.message).toMatch(/HTTP 503/);
    expect(states.at(-1)).toMatchObject({ state: 'reconnecting', attempt: 1, delayMs: 250 });
    await vi.advanceTimersByTimeAsync(250);
    expect(FakeWebSocket.last.param('ticket')).toBe('t');
  });
});
