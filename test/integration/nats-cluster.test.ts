/**
 * The system on a 3-server NATS cluster (routes): two gateways (in this process) and two workers
 * (separate processes, so that they can be SIGKILLed), each on a different server. Each is given
 * one server's URL, so that the test knows where it is; it learns the others from the cluster and
 * fails over to them.
 *
 * - delivery canary: a gateway whose server stops forwarding (SIGSTOP) reports not ready with the
 *   reason, and ready again once it forwards (SIGCONT);
 * - hedging: a worker SIGKILLed with publishes in flight; each is answered well before
 *   REQUEST_TIMEOUT_MS, and stored once;
 * - failover: SIGKILL of the server a gateway is on while clients publish; every acknowledged
 *   message reaches every member, in order.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../shared/config.ts';
import { startGateway, type Running } from '../../bin/server.ts';
import { LocalProcess } from '../../tools/processes.ts';
import { startNatsCluster, startRedis, type NatsCluster, type Service } from '../harness/servers.ts';
import { TestClient, type Frame } from '../harness/client.ts';
import { until } from '../harness/wait.ts';

const REQUEST_TIMEOUT_MS = 5000;
const env = {
  HOST: '127.0.0.1',
  PORT: '0',
  LOG_LEVEL: 'silent',
  ALLOW_ANONYMOUS: 'true',
  RATE_LIMIT_RPS: '0',
  CONNECT_RATE_PER_IP: '0',
  DRAIN_MS: '0',
  REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
  HEDGE_MS: '750',
  CANARY_MS: '250',
  CANARY_STALE_MS: '2000',
};

let nats: NatsCluster;
let redis: Service;
const gateways: Running[] = [];
const workers: LocalProcess[] = [];

function workerProcess(i: number, natsUrl: string): LocalProcess {
  return new LocalProcess({
    name: `worker-${i + 1}`,
    command: process.execPath,
    args: ['--import', 'tsx', 'bin/worker.ts'],
    env: { ...process.env, ...env, LOG_LEVEL: 'warn', NATS_URL: natsUrl, REDIS_URL: redis.url },
  });
}

/** Worker connections the cluster holds (bin/server.ts names them `rt-worker`). */
async function workerConnections(): Promise<number> {
  let n = 0;
  for (const s of nats.servers) {
    try {
      const res = await fetch(`${s.monitorUrl}/connz?limit=1024`);
      const { connections } = (await res.json()) as { connections: { name?: string }[] };
      n += connections.filter((c) => c.name === 'rt-worker').length;
    } catch {
      // A server that is down holds nothing.
    }
  }
  return n;
}

const http = (g: Running) => `http://127.0.0.1:${g.port}`;
const ws = (g: Running) => `ws://127.0.0.1:${g.port}`;

async function readyz(g: Running): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`${http(g)}/readyz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

beforeAll(async () => {
  [nats, redis] = await Promise.all([startNatsCluster(), startRedis({ local: true })]);
  const [s1, s2, s3] = nats.servers.map((s) => s.url);
  workers.push(workerProcess(0, s2!), workerProcess(1, s3!));
  await Promise.all(workers.map((w) => w.start()));
  await until('both workers on the cluster', async () => (await workerConnections()) === 2, 20_000);
  for (const [i, url] of [s1!, s2!].entries()) {
    gateways.push(await startGateway(loadConfig('gateway', { ...env, NATS_URL: url, NODE_ID: `gw${i + 1}` })));
  }
  for (const g of gateways) await until(`${g.gateway!.nodeId} ready`, async () => (await readyz(g)).status === 200, 10_000);
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(gateways.map((g) => g.stop()));
  await Promise.allSettled(workers.map((w) => w.stop(5000)));
  await Promise.allSettled([nats?.stop(), redis?.stop()]);
});

describe('on a 3-server NATS cluster', () => {
  it('delivery canary: a gateway whose NATS server stops forwarding reports not ready with the reason, then ready again', async () => {
    const gw = gateways[0]!;
    const server = nats.servers[0]!;
    const age = async () => Number(/^rt_gateway_canary_age_seconds\S* (\S+)$/m.exec(await (await fetch(`${http(gw)}/metrics`)).text())?.[1]);
    expect(await age()).toBeLessThan(1);
    server.signal('SIGSTOP');
    try {
      // The TCP connection stays up: the bus still says connected, but nothing comes back.
      const stale = await until('/readyz 503 with the canary reason', async () => {
        const r = await readyz(gw);
        return r.status === 503 && typeof r.body.canary === 'string' ? r.body : undefined;
      }, 10_000);
      expect(stale.canary).toMatch(/^no round trip for \d+ s$/);
      expect(stale.bus).toBe(true);
      expect(await age()).toBeGreaterThan(2);
      // The other gateway's server is fine: it stays ready.
      expect((await readyz(gateways[1]!)).status).toBe(200);
    } finally {
      server.signal('SIGCONT');
    }
    await until('/readyz 200 again', async () => (await readyz(gw)).status === 200, 10_000);
    expect(await age()).toBeLessThan(2);
  }, 30_000);

  it('hedging: publishes in flight to a worker that is SIGKILLed are answered in about a second, and stored once', async () => {
    const room = 'hedge';
    const c = await TestClient.connect(ws(gateways[1]!), { query: { username: 'hedger' } });
    await c.ok({ type: 'join', room });
    await c.ok({ type: 'publish', room, content: 'warm-up', cid: 'warm' });
    const victim = workers[0]!;
    // Stopped first, so that the requests the queue group gives it stay in flight until the kill.
    victim.kill('SIGSTOP');
    // The requests of one event-loop turn travel to one worker together (the queue group picks
    // it), so each publish goes out in a turn of its own: each then reaches the stopped victim
    // with probability 1/2, and all 24 missing it has a chance of 2^-24.
    const n = 24;
    const started = performance.now();
    const answers: Promise<{ f: Frame; ms: number }>[] = [];
    for (let i = 0; i < n; i++) {
      answers.push(c.request({ type: 'publish', room, content: `m${i}`, cid: `c${i}` }, 10_000).then((f) => ({ f, ms: performance.now() - started })));
      await new Promise((r) => setImmediate(r));
    }
    victim.kill('SIGKILL');
    const got = await Promise.all(answers);
    for (const { f } of got) expect(f.type, JSON.stringify(f)).toBe('reply');
    const slowest = Math.max(...got.map((g) => g.ms));
    console.log(`publishes during a worker SIGKILL: slowest answer ${slowest.toFixed(0)} ms (REQUEST_TIMEOUT_MS ${REQUEST_TIMEOUT_MS})`);
    expect(slowest).toBeLessThan(2500);
    const metrics = await (await fetch(`${http(gateways[1]!)}/metrics`)).text();
    expect(Number(/^rt_gateway_request_hedges_total\{[^}]*reason="delay"[^}]*\} (\d+)$/m.exec(metrics)?.[1] ?? 0)).toBeGreaterThan(0);
    // Each stored once: history has every cid once, and the seqs the answers gave are distinct.
    const page = await c.ok({ type: 'history', room, limit: 100 });
    const cids = (page.messages as { cid?: string }[]).map((m) => m.cid).filter((x) => x?.startsWith('c'));
    expect(cids.sort()).toEqual(Array.from({ length: n }, (_, i) => `c${i}`).sort());
    expect(new Set(got.map((g) => g.f.seq)).size).toBe(n);
    c.close();
    // Restart it for the next test.
    await victim.start();
    await until('the worker back on the cluster', async () => (await workerConnections()) === 2, 20_000);
  }, 60_000);

  it('failover: SIGKILL of the NATS server a gateway is on while clients publish; every acknowledged message reaches every member, in order', async () => {
    const room = 'failover';
    const [g1, g2] = gateways as [Running, Running];
    const members = await Promise.all([
      TestClient.connect(ws(g1), { query: { username: 'p1' } }),
      TestClient.connect(ws(g2), { query: { username: 'p2' } }),
      TestClient.connect(ws(g1), { query: { username: 'l1' } }),
      TestClient.connect(ws(g2), { query: { username: 'l2' } }),
    ]);
    const joinedAt: number[] = [];
    for (const m of members) joinedAt.push((await m.ok({ type: 'join', room })).seq as number);
    const acked: number[] = [];
    const unanswered: string[] = [];
    let stop = false;
    // Each publisher sends one message at a time; an `unavailable` is retried with the same cid,
    // as the SDK does.
    const publisher = async (c: TestClient, who: string) => {
      for (let i = 0; !stop; i++) {
        for (let attempt = 0; ; attempt++) {
          const f: Frame = await c.request({ type: 'publish', room, content: `${who}-${i}`, cid: `${who}-${i}` }, 10_000);
          if (f.type === 'reply') {
            acked.push(f.seq as number);
            break;
          }
          if (attempt >= 20) {
            unanswered.push(`${who}-${i}: ${JSON.stringify(f)}`);
            break;
          }
          await new Promise((r) => setTimeout(r, 100));
        }
      }
    };
    const running = [publisher(members[0]!, 'p1'), publisher(members[1]!, 'p2')];
    await until('traffic before the kill', () => acked.length >= 40, 20_000);
    const victim = nats.servers[0]!; // gw1's server
    victim.signal('SIGKILL');
    const atKill = acked.length;
    await until('traffic after the failover', () => acked.length >= atKill + 60, 30_000);
    stop = true;
    await Promise.all(running);
    expect(unanswered).toEqual([]);
    const last = Math.max(...acked);
    for (const [k, m] of members.entries()) {
      const seqs = () => m.events.filter((e) => e.type === 'message').map((e) => e.seq as number);
      await until(`member ${k} to have every acknowledged message`, () => seqs().includes(last), 15_000);
      const got = seqs();
      // In order, once each, nothing skipped: exactly the seqs after its join.
      expect(got).toEqual(Array.from({ length: got.length }, (_, i) => joinedAt[k]! + 1 + i));
      for (const s of acked) expect(got).toContain(s);
    }
    expect((await readyz(g1)).status).toBe(200);
    for (const m of members) m.close();
    await victim.restart();
  }, 90_000);
});
