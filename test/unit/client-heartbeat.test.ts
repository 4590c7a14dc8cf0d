/**
 * SDK heartbeat with fake timers and a fake WebSocket: a `ping` every `welcome.heartbeat` ms, and a
 * reconnect (resuming the session) when no `pong` comes within `pongTimeoutMs`.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RtClient, type StateChange } from '../../client/index.ts';
import { FakeWebSocket } from '../harness/fake-websocket.ts';

const tick = () => vi.advanceTimersByTimeAsync(0);

async function setup(heartbeat: number, pongTimeoutMs?: number) {
  const client = new RtClient({
    url: 'ws://gw.test/ws',
    username: 'ann',
    WebSocket: FakeWebSocket,
    random: () => 0.5,
    ...(pongTimeoutMs === undefined ? {} : { pongTimeoutMs }),
  });
  const states: StateChange[] = [];
  client.on('state', (s) => states.push(s));
  const connected = client.connect();
  await tick();
  FakeWebSocket.last.welcome({ heartbeat, sessionId: 'hb' });
  await connected;
  return { client, states, ws: FakeWebSocket.last };
}

beforeEach(() => {
  vi.useFakeTimers();
  FakeWebSocket.reset();
});
afterEach(() => {
  vi.useRealTimers();
});

describe('heartbeat', () => {
  it('pings every welcome.heartbeat ms and stays connected while pongs come', async () => {
    const { client, ws } = await setup(5000);
    for (let i = 1; i <= 12; i++) {
      await vi.advanceTimersByTimeAsync(4999);
      expect(ws.requests('ping')).toHaveLength(i - 1);
      await vi.advanceTimersByTimeAsync(1);
      const ping = ws.lastRequest('ping');
      expect(ping.id).toBeDefined();
      ws.receive({ type: 'pong', id: ping.id });
    }
    expect(client.state).toBe('online');
    expect(FakeWebSocket.instances).toHaveLength(1);
  });

  it('heartbeat timeout: no pong within 10 s closes the socket and reconnects, resuming the session', async () => {
    const { client, states, ws } = await setup(5000);
    await vi.advanceTimersByTimeAsync(5000);
    expect(ws.requests('ping')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(9999);
    expect(client.state).toBe('online');
    // One ping outstanding at a time: the interval does not pile up more.
    expect(ws.requests('ping')).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(ws.closedByClient).toEqual({ code: 4000, reason: 'no pong within 10000 ms' });
    expect(states.at(-1)).toMatchObject({ state: 'reconnecting', code: 1006, reason: 'no pong within 10000 ms', delayMs: 250 });
    await vi.advanceTimersByTimeAsync(250);
    expect(FakeWebSocket.instances).toHaveLength(2);
    expect(FakeWebSocket.last.param('session')).toBe('hb');
  });

  it('a pong answering an earlier connection does not keep the new one alive', async () => {
    const { ws } = await setup(1000, 2000);
    await vi.advanceTimersByTimeAsync(1000);
    const oldPing = ws.lastRequest('ping');
    ws.serverClose(1006);
    await vi.advanceTimersByTimeAsync(250);
    const ws2 = FakeWebSocket.last;
    ws2.welcome({ heartbeat: 1000 });
    await vi.advanceTimersByTimeAsync(1000);
    ws2.receive({ type: 'pong', id: oldPing.id });
    await vi.advanceTimersByTimeAsync(2000);
    expect(ws2.closedByClient?.code).toBe(4000);
  });

  it('the pong timeout is configurable', async () => {
    const { ws } = await setup(1000, 500);
    await vi.advanceTimersByTimeAsync(1499);
    expect(ws.closedByClient).toBeUndefined();
    await vi.advanceTimersByTimeAsync(1);
    expect(ws.closedByClient?.code).toBe(4000);
  });

  it('heartbeat 0: no pings', async () => {
    const { ws, client } = await setup(0);
    await vi.advanceTimersByTimeAsync(600_000);
    expect(ws.requests('ping')).toHaveLength(0);
    expect(client.state).toBe('online');
  });
});
