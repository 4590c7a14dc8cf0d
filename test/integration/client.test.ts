/**
 * The SDK against real servers, with a conversation going on while the connection breaks: what the
 * application receives has no message lost or duplicated, or says `recovered: false` where the
 * server itself lost history.
 *
 * - gateway stopped (distributed: 2 gateways, 2 workers, NATS, Redis): the client moves to the
 *   other gateway, resumes its session and fills the gap — zero lost, zero duplicated;
 * - connection dropped (embedded, in-process): resume and gap filling on the same server;
 * - embedded server killed with SIGKILL and started again on the same port: history was in its
 *   memory, so the room's epoch changes; the SDK reports `recovered: false` once, and from then on
 *   delivers the new history without holes; the publisher's publishes all complete (the one in
 *   flight is sent again with its cid).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import WebSocket from 'ws';
import { RtClient, jwtExpiry, type Message, type Recovery, type Room, type RtClientOptions, type StateChange } from '../../client/index.ts';
import { TEST_SECRET, hs256 } from '../harness/jwt.ts';
import { freePort, waitForPort } from '../harness/servers.ts';
import { distributedTarget, embeddedTarget, type Target } from '../harness/targets.ts';
import { until } from '../harness/wait.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
let n = 0;
const uniq = (p: string) => `${p}-${process.pid}-${++n}`;

/** Waits for a condition of the conversation (these take seconds: failovers, reconnects). */
const waitUntil = (cond: () => boolean, what: string, timeoutMs = 20_000) => until(what, cond, { timeoutMs, intervalMs: 20 });

const clients: RtClient[] = [];
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

function sdk(url: RtClientOptions['url'], username: string, extra: Partial<RtClientOptions> = {}): RtClient {
  const client = new RtClient({
    url,
    username,
    WebSocket,
    reconnect: { baseMs: 100, capMs: 1000 },
    requestTimeoutMs: 30_000,
    ...extra,
  });
  clients.push(client);
  return client;
}

/** What the application sees of a room: each message with the epoch it belongs to, and recoveries. */
interface Observed {
  messages: { epoch: string; seq: number; content: string }[];
  recoveries: Recovery[];
}

function observe(room: Room): Observed {
  const seen: Observed = { messages: [], recoveries: [] };
  room.on('message', (m: Message) => seen.messages.push({ epoch: room.epoch!, seq: m.seq, content: m.content }));
  room.on('recovery', (r) => seen.recoveries.push(r));
  return seen;
}

interface Ack {
  epoch: string;
  seq: number;
  content: string;
}

/** Publishes one message after another until stopped; every publish must succeed. */
function publisher(room: Room) {
  const acks: Ack[] = [];
  let stopped = false;
  const done = (async () => {
    for (let i = 0; !stopped; i++) {
      const content = `p${i}`;
      const r = await room.publish(content);
      acks.push({ epoch: room.epoch!, seq: r.seq, content });
    }
  })();
  return {
    acks,
    async stop() {
      stopped = true;
      await done;
    },
  };
}

function assertExactlyOnceInOrder(seen: Observed['messages'], acks: Ack[], epoch: string): void {
  const got = seen.filter((m) => m.epoch === epoch);
  const mine = acks.filter((a) => a.epoch === epoch);
  const last = Math.max(...mine.map((a) => a.seq));
  // Every seq from 1 to the last acknowledged one, each once, in order.
  expect(got.map((m) => m.seq)).toEqual(Array.from({ length: last }, (_, i) => i + 1));
  const bySeq = new Map(got.map((m) => [m.seq, m.content]));
  for (const a of mine) expect(bySeq.get(a.seq), `seq ${a.seq}`).toBe(a.content);
}

describe('SDK against a real gateway', () => {
  it('a gateway stops mid-conversation: the client resumes on the other one; zero lost, zero duplicated', async () => {
    const t: Target = await distributedTarget({ SESSION_GRACE_MS: '30000' });
    cleanups.push(() => t.stop());
    const [gw1, gw2] = t.gateways.map((g) => `${g}/ws`) as [string, string];
    const name = uniq('failover');

    const sub = sdk([gw1, gw2], 'ann');
    const pub = sdk(gw2, 'bob');
    const states: StateChange[] = [];
    sub.on('state', (s) => states.push(s));
    expect((await sub.connect()).node).toBe('gw1');
    await pub.connect();
    const subRoom = sub.room(name);
    const seen = observe(subRoom);
    await subRoom.join();
    const pubRoom = pub.room(name);
    await pubRoom.join();

    const p = publisher(pubRoom);
    await waitUntil(() => p.acks.length >= 20 && seen.messages.length >= 10, 'the conversation to get going');
    const sessionId = sub.sessionId;
    await t.gatewayNodes[0]!.stop();
    await waitUntil(() => sub.state === 'online' && sub.welcome?.node === 'gw2', 'the client to come back on gw2');
    const resumedAt = p.acks.length;
    await waitUntil(() => p.acks.length >= resumedAt + 30, 'more messages after the failover');
    await p.stop();
    const lastSeq = p.acks.at(-1)!.seq;
    await waitUntil(() => seen.messages.at(-1)?.seq === lastSeq, `message ${lastSeq} to reach the client`);

    expect(sub.welcome).toMatchObject({ resumed: true, sessionId });
    expect(states.find((s) => s.state === 'reconnecting')).toMatchObject({ code: 1001 });
    assertExactlyOnceInOrder(seen.messages, p.acks, subRoom.epoch!);
    expect(seen.messages).toHaveLength(lastSeq);
    expect(seen.recoveries).toEqual([{ room: name, recovered: true, epoch: subRoom.epoch, seq: expect.any(Number) }]);
  });

  it('a dropped connection resumes the session and fills the gap from history (embedded)', async () => {
    const t = await embeddedTarget({ SESSION_GRACE_MS: '30000' });
    cleanups.push(() => t.stop());
    const url = `${t.gateways[0]}/ws`;
    const sockets: WebSocket[] = [];
    class Tracked extends WebSocket {
      constructor(address: string, protocols?: string | string[]) {
        super(address, protocols);
        sockets.push(this);
      }
    }
    const name = uniq('drop');
    // A long first backoff so that messages pile up while the client is away.
    const sub = sdk(url, 'ann', { WebSocket: Tracked, reconnect: { baseMs: 800, capMs: 800 }, random: () => 0.999 });
    const pub = sdk(url, 'bob');
    await Promise.all([sub.connect(), pub.connect()]);
    const subRoom = sub.room(name);
    const seen = observe(subRoom);
    await subRoom.join();
    const pubRoom = pub.room(name);
    await pubRoom.join();

    const p = publisher(pubRoom);
    await waitUntil(() => seen.messages.length >= 10, 'the conversation to get going');
    const before = p.acks.length;
    sockets.at(-1)!.terminate();
    await waitUntil(() => sub.state === 'reconnecting', 'the client to notice the drop');
    await waitUntil(() => p.acks.length >= before + 20, 'messages published while the client is away');
    await waitUntil(() => sub.state === 'online', 'the client to come back');
    await waitUntil(() => p.acks.length >= before + 60, 'messages after the return');
    await p.stop();
    const lastSeq = p.acks.at(-1)!.seq;
    await waitUntil(() => seen.messages.at(-1)?.seq === lastSeq, `message ${lastSeq} to reach the client`);

    expect(sockets).toHaveLength(2);
    expect(sub.welcome?.resumed).toBe(true);
    assertExactlyOnceInOrder(seen.messages, p.acks, subRoom.epoch!);
    expect(seen.recoveries).toMatchObject([{ recovered: true }]);
  });

  it('the embedded server is killed and restarted: recovered: false once, then the new history without holes or repeats', async () => {
    const port = await freePort();
    let server = await startEmbedded(port);
    cleanups.push(() => stopProcess(server));
    const url = `ws://127.0.0.1:${port}/ws`;
    const name = uniq('restart');

    const sub = sdk(url, 'ann');
    const pub = sdk(url, 'bob');
    await Promise.all([sub.connect(), pub.connect()]);
    const subRoom = sub.room(name);
    const seen = observe(subRoom);
    await subRoom.join();
    const pubRoom = pub.room(name);
    await pubRoom.join();
    const firstEpoch = subRoom.epoch!;

    const p = publisher(pubRoom);
    await waitUntil(() => p.acks.length >= 20 && seen.messages.length >= 10, 'the conversation to get going');
    server.kill('SIGKILL');
    await exited(server);
    const ackedBeforeKill = p.acks.length;
    await waitUntil(() => sub.state === 'reconnecting' && pub.state === 'reconnecting', 'both clients to notice');
    server = await startEmbedded(port);
    await waitUntil(() => p.acks.some((a) => a.epoch !== firstEpoch), 'publishing to resume on the new server');
    const resumedAt = p.acks.length;
    await waitUntil(() => p.acks.length >= resumedAt + 20, 'more messages on the new server');
    await p.stop();
    const last = p.acks.at(-1)!;
    await waitUntil(() => seen.messages.at(-1)?.seq === last.seq && seen.messages.at(-1)?.epoch === last.epoch, 'the last message to reach the client');

    const secondEpoch = last.epoch;
    expect(secondEpoch).not.toBe(firstEpoch);
    expect(ackedBeforeKill).toBeGreaterThanOrEqual(20);
    // The hole is reported once, with the new epoch, before anything of the new history.
    expect(seen.recoveries).toEqual([{ room: name, recovered: false, epoch: secondEpoch, seq: 0 }]);
    // Before the crash: a gapless prefix of what was acknowledged, nothing twice.
    const before = seen.messages.filter((m) => m.epoch === firstEpoch);
    expect(before.map((m) => m.seq)).toEqual(Array.from({ length: before.length }, (_, i) => i + 1));
    for (const m of before) {
      const ack = p.acks.find((a) => a.epoch === firstEpoch && a.seq === m.seq);
      if (ack) expect(m.content).toBe(ack.content);
    }
    // After: everything of the new history, once, in order.
    assertExactlyOnceInOrder(seen.messages, p.acks, secondEpoch);
    expect(seen.messages.findIndex((m) => m.epoch === secondEpoch)).toBe(before.length);
    // The publisher lost nothing: every publish was acknowledged (the test's loop would have thrown).
    expect(new Set(p.acks.map((a) => a.content)).size).toBe(p.acks.length);
  });

  it('credentials the server refuses (4001) stop a client that cannot get new ones', async () => {
    const t = await embeddedTarget();
    cleanups.push(() => t.stop());
    const client = sdk(`${t.gateways[0]}/ws`, '\u0001bad');
    const states: StateChange[] = [];
    client.on('state', (s) => states.push(s));
    await expect(client.connect()).rejects.toMatchObject({ code: 'unauthorized' });
    expect(states.at(-1)).toMatchObject({ state: 'offline', code: 4001 });
    expect(states.filter((s) => s.state === 'connecting')).toHaveLength(1);
  });
});

describe('SDK notifications against a real gateway', () => {
  it('notification events, the unread count, list and read, and the read event on the other connection', async () => {
    const key = 'client-test-api-key-0123456789abcdef';
    const t = await embeddedTarget({ API_KEY: key });
    cleanups.push(() => t.stop());
    const url = `${t.gateways[0]}/ws`;
    const user = uniq('nina');
    const phone = sdk(url, user);
    const laptop = sdk(url, user);
    await Promise.all([phone.connect(), laptop.connect()]);
    const got: string[] = [];
    phone.on('notification', (e) => got.push(`${e.notification.title}:${e.unread}`));
    const readEvents: unknown[] = [];
    laptop.on('notifications.read', (e) => readEvents.push(e));
    const res = await fetch(`${t.gateways[0]!.replace(/^ws/, 'http')}/api/notifications`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${key}` },
      body: JSON.stringify({ userId: user, kind: 'info', title: 'Hello', body: 'A first one' }),
    });
    expect(res.status).toBe(202);
    await waitUntil(() => phone.unread === 1 && laptop.unread === 1, 'the notification on both connections');
    expect(got).toEqual(['Hello:1']);
    const { items, unread } = await phone.notifications.list();
    expect(unread).toBe(1);
    expect(items).toMatchObject([{ kind: 'info', title: 'Hello', body: 'A first one', read: false }]);
    expect(await phone.notifications.read([items[0]!.id])).toBe(0);
    expect(phone.unread).toBe(0);
    await waitUntil(() => laptop.unread === 0, 'the read event on the other connection');
    expect(readEvents).toEqual([{ ids: [items[0]!.id], unread: 0 }]);
  });
});

describe('SDK credentials against a real gateway (JWT)', () => {
  const jwtEnv = { JWT_SECRET: TEST_SECRET, ALLOW_ANONYMOUS: 'false', JWT_CLOCK_SKEW_S: '0', SESSION_GRACE_MS: '30000' };

  it('a token function renews the token before it expires (refresh): the connection stays up', async () => {
    const t = await embeddedTarget(jwtEnv);
    cleanups.push(() => t.stop());
    const issued: string[] = [];
    const token = vi.fn(async () => {
      const jwt = await hs256({ sub: 'ann', name: 'Ann', expiresIn: 3 });
      issued.push(jwt);
      return jwt;
    });
    const client = sdk(`${t.gateways[0]}/ws`, 'unused', { username: undefined, token, tokenRefreshMarginMs: 1500 });
    const states: StateChange[] = [];
    const errors: Error[] = [];
    client.on('state', (s) => states.push(s));
    client.on('error', (e) => errors.push(e));
    const welcome = await client.connect();
    expect(welcome.user).toEqual({ id: 'ann', name: 'Ann' });
    // Tokens live 3 s: a second past the first one's expiry, on the same connection, took refreshes.
    const firstExpiry = jwtExpiry(issued[0]!)!;
    await waitUntil(() => Date.now() > firstExpiry + 1000 && issued.length >= 3, 'a second past the first token\'s expiry', 15_000);
    expect(errors).toEqual([]);
    expect(states.map((s) => s.state)).toEqual(['connecting', 'online']);
    expect(client.welcome?.connectionId).toBe(welcome.connectionId);
  });

  it('expiry without a refresh closes with 4001; a new token reconnects and resumes the session', async () => {
    const t = await embeddedTarget(jwtEnv);
    cleanups.push(() => t.stop());
    const token = vi
      .fn<() => Promise<string>>()
      .mockImplementationOnce(() => hs256({ sub: 'ann', expiresIn: 2 }))
      .mockImplementationOnce(() => Promise.reject(new Error('auth server down')))
      .mockImplementation(() => hs256({ sub: 'ann', expiresIn: 600 }));
    const client = sdk(`${t.gateways[0]}/ws`, 'unused', { username: undefined, token });
    const states: StateChange[] = [];
    const errors: Error[] = [];
    client.on('state', (s) => states.push(s));
    client.on('error', (e) => errors.push(e));
    const first = await client.connect();
    const room = client.room(uniq('auth'));
    await room.join();
    await waitUntil(() => states.some((s) => s.state === 'reconnecting'), 'the token to expire', 10_000);
    expect(states.find((s) => s.state === 'reconnecting')).toMatchObject({ code: 4001 });
    expect(errors.map((e) => e.message)).toEqual([expect.stringMatching(/auth server down/)]);
    await waitUntil(() => client.state === 'online', 'the reconnect with a new token');
    expect(token).toHaveBeenCalledTimes(3);
    expect(client.welcome).toMatchObject({ resumed: true, sessionId: first.sessionId });
    expect(room.joined).toBe(true);
  });

  it('a ticket function is asked for a fresh one-time ticket on every connection', async () => {
    const t = await embeddedTarget(jwtEnv);
    cleanups.push(() => t.stop());
    const http = t.gateways[0]!.replace(/^ws/, 'http');
    const jwt = await hs256({ sub: 'bob', expiresIn: 600 });
    const tickets: string[] = [];
    const ticket = async () => {
      const res = await fetch(`${http}/api/tickets`, { method: 'POST', headers: { authorization: `Bearer ${jwt}` } });
      expect(res.status).toBe(201);
      const body = (await res.json()) as { ticket: string };
      tickets.push(body.ticket);
      return body.ticket;
    };
    const sockets: WebSocket[] = [];
    class Tracked extends WebSocket {
      constructor(address: string, protocols?: string | string[]) {
        super(address, protocols);
        sockets.push(this);
      }
    }
    const client = sdk(`${t.gateways[0]}/ws`, 'unused', { username: undefined, ticket, WebSocket: Tracked });
    expect((await client.connect()).user.id).toBe('bob');
    sockets.at(-1)!.terminate();
    await waitUntil(() => client.state === 'online' && sockets.length === 2, 'the reconnect');
    expect(tickets).toHaveLength(2);
    expect(new Set(tickets).size).toBe(2);
    expect(client.welcome?.resumed).toBe(true);
  });
});

// ---- a real embedded server process ----

async function startEmbedded(port: number): Promise<ChildProcess> {
  // Embedded: in-process bus and in-memory store, whatever the test run's environment says.
  const { NATS_URL: _nats, REDIS_URL: _redis, ...env } = process.env;
  const child = spawn(process.execPath, ['--import', 'tsx', 'bin/embedded.ts'], {
    cwd: ROOT,
    env: { ...env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  try {
    await waitForPort('127.0.0.1', port, 20_000, child);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`embedded server did not start: ${(err as Error).message}\n${stderr}`);
  }
  return child;
}

function exited(child: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolve();
    child.once('exit', () => resolve());
  });
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGKILL');
  await exited(child);
}
