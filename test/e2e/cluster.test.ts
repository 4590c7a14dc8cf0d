/**
 * End to end through nginx: the real cluster of `npm run cluster` (nats-server, redis-server, two
 * gateways, two workers, nginx with the project's config), and clients that connect the way a
 * browser behind its own address would.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { JEMALLOC_CONF, jemallocPath } from '../../tools/allocator.ts';
import { alive, descendants, httpStatus, waitFor } from '../../tools/processes.ts';
import { TestClient, type Frame } from '../harness/client.ts';
import { clusterLogs, startTestCluster, type Cluster } from '../harness/cluster.ts';

const tag = () => randomBytes(4).toString('hex');
const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Room messages of `room` in arrival order, `n` of them. */
function roomMessages(c: TestClient, room: string, n: number, timeoutMs = 10_000): Promise<Frame[]> {
  return c.takeMatching((f) => f.type === 'message' && f.room === room, n, timeoutMs);
}

/** Room messages of `room` in arrival order, up to and including the one with `content`. */
function roomMessagesUntil(c: TestClient, room: string, content: string, timeoutMs = 10_000): Promise<Frame[]> {
  return c.takeUntil((f) => f.type === 'message' && f.room === room, (f) => f.content === content, timeoutMs);
}

/** Number of NATS connections of workers (bin/server.ts names them `rt-worker`). */
async function workerConnections(monitorUrl: string): Promise<number> {
  const res = await fetch(`${monitorUrl}/connz?limit=1024`);
  const body = (await res.json()) as { connections?: { name?: string }[] };
  return (body.connections ?? []).filter((c) => c.name === 'rt-worker').length;
}

/**
 * Two clients on different gateways. nginx hashes the client address, so clients connect from
 * 127.1.0.1, 127.2.0.1, ... (all loopback on Linux) until one lands on a gateway other than the
 * first's. With two gateways, 15 addresses on one gateway happen once in 16384 runs.
 */
async function clientsOnTwoGateways(cluster: Cluster, names: [string, string]): Promise<{ a: TestClient; b: TestClient; addrA: string }> {
  const addrA = '127.1.0.1';
  const a = await TestClient.connect(cluster.url, { query: { username: names[0] }, localAddress: addrA });
  for (let i = 2; i <= 16; i++) {
    const b = await TestClient.connect(cluster.url, { query: { username: names[1] }, localAddress: `127.${i}.0.1` });
    if (b.node !== a.node) return { a, b, addrA };
    b.close();
    await b.waitClosed();
  }
  a.close();
  throw new Error(`15 source addresses all hashed to ${a.node}`);
}

describe('cluster through nginx', () => {
  let cluster: Cluster;
  let a: TestClient;
  let b: TestClient;
  const room = `e2e-${tag()}`;
  const names: [string, string] = [`ann-${tag()}`, `bob-${tag()}`];
  let lastSeq = 0;

  beforeAll(async () => {
    // A short request timeout: the request caught by the worker kill answers `unavailable` sooner.
    cluster = await startTestCluster({ env: { REQUEST_TIMEOUT_MS: '2000' } });
  }, 90_000);

  afterAll(async () => {
    a?.terminate();
    b?.terminate();
    await cluster?.stop();
  }, 60_000);

  const dumpLogsOnFailure = () => onTestFailed(() => console.error(clusterLogs(cluster)));

  it('serves /readyz and /healthz through nginx', async () => {
    expect(await httpStatus(`${cluster.url}/readyz`)).toBe(200);
    expect(await httpStatus(`${cluster.url}/healthz`)).toBe(200);
    expect(cluster.gateways).toHaveLength(2);
    expect(cluster.workers).toHaveLength(2);
  });

  it('runs its gateways and workers on jemalloc, as the image does (tools/allocator.ts)', () => {
    const lib = jemallocPath();
    expect(lib, 'libjemalloc2 is not installed (.ci/run installs it)').toBeDefined();
    for (const n of [...cluster.gateways, ...cluster.workers]) {
      const maps = readFileSync(`/proc/${n.pid!}/maps`, 'utf8');
      expect(maps.includes('libjemalloc'), `${n.name} has no jemalloc mapped`).toBe(true);
      expect(readFileSync(`/proc/${n.pid!}/environ`, 'utf8').split('\0')).toContain(`MALLOC_CONF=${JEMALLOC_CONF}`);
    }
  });

  it('keeps a client address on one gateway and spreads addresses over the gateways', async () => {
    dumpLogsOnFailure();
    let addrA: string;
    ({ a, b, addrA } = await clientsOnTwoGateways(cluster, names));
    const nodeIds = cluster.gateways.map((g) => g.nodeId);
    expect(nodeIds).toContain(a.node);
    expect(nodeIds).toContain(b.node);
    expect(a.node).not.toBe(b.node);
    // Sticky: the same address again reaches the same gateway.
    const again = await TestClient.connect(cluster.url, { query: { username: `${names[0]}-again` }, localAddress: addrA });
    expect(again.node).toBe(a.node);
    again.close();
    await again.waitClosed();
  });

  it('delivers every room message to members on both gateways in seq order, once each', async () => {
    dumpLogsOnFailure();
    const joinA = await a.ok({ type: 'join', room });
    await b.ok({ type: 'join', room });
    const first = (joinA.seq as number) + 1;
    const perClient = 10;
    // Both publish at once, interleaved: the room has one order all the same.
    const replies = await Promise.all([
      ...range(1, perClient).map((k) => a.ok({ type: 'publish', room, content: `a-${k}` })),
      ...range(1, perClient).map((k) => b.ok({ type: 'publish', room, content: `b-${k}` })),
    ]);
    const total = 2 * perClient;
    const [seenA, seenB] = await Promise.all([roomMessages(a, room, total), roomMessages(b, room, total)]);
    expect(seenA.map((m) => m.seq)).toEqual(range(first, first + total - 1));
    expect(seenB).toEqual(seenA);
    // Each acknowledged seq carries the content that was published with it.
    const bySeq = new Map(seenA.map((m) => [m.seq, m.content]));
    for (const [i, r] of replies.entries()) {
      const content = i < perClient ? `a-${i + 1}` : `b-${i - perClient + 1}`;
      expect(bySeq.get(r.seq as number), `seq ${String(r.seq)}`).toBe(content);
    }
    expect(seenA.filter((m) => String(m.content).startsWith('a-')).every((m) => (m.user as { id: string }).id === names[0])).toBe(true);
    lastSeq = first + total - 1;
  });

  it('delivers a direct message to a user on the other gateway', async () => {
    dumpLogsOnFailure();
    const content = `hello ${tag()}`;
    const reply = await a.ok({ type: 'direct', to: names[1], content });
    expect(typeof reply.ts).toBe('string');
    const got = await b.next((f) => f.type === 'direct' && f.content === content);
    expect(got).toMatchObject({ type: 'direct', from: { id: names[0], name: names[0] }, content });
    expect(Number.isNaN(Date.parse(got.ts as string))).toBe(false);
  });

  it('keeps answering when a worker is killed with SIGKILL', async () => {
    dumpLogsOnFailure();
    const victim = cluster.workers[0]!;
    // A publish on its way while the worker dies: answered, or `unavailable` if that worker had it.
    const inFlight = a.request({ type: 'publish', room, content: 'in-flight' }, 10_000);
    victim.kill('SIGKILL');
    await waitFor(() => !victim.running || undefined, { timeoutMs: 5000, what: `${victim.name} to exit` });
    const answer = await inFlight;
    if (answer.type === 'error') expect(answer.code).toBe('unavailable');
    else expect(answer.type).toBe('reply');
    // The queue group has dropped the dead worker once NATS has seen its connection close.
    if (cluster.natsMonitorUrl) {
      const monitor = cluster.natsMonitorUrl;
      await waitFor(async () => (await workerConnections(monitor)) === 1 || undefined, { timeoutMs: 5000, what: 'NATS to drop the dead worker' });
    }

    const after = range(1, 10).map((k) => `after-kill-${k}`);
    const seqs: number[] = [];
    for (const content of after) seqs.push((await a.ok({ type: 'publish', room, content })).seq as number);
    expect(seqs).toEqual(range(seqs[0]!, seqs[0]! + after.length - 1));

    for (const client of [a, b]) {
      const live = await roomMessagesUntil(client, room, after.at(-1)!);
      const liveSeqs = live.map((m) => m.seq as number);
      // In order, no duplicates; the in-flight message is the only one that may be missing live
      // (stored by the worker just before it died, never published): it is then in history.
      const expected = range(lastSeq + 1, seqs.at(-1)!);
      const missing = expected.filter((s) => !liveSeqs.includes(s));
      expect(liveSeqs).toEqual(expected.filter((s) => !missing.includes(s)));
      expect(missing.length).toBeLessThanOrEqual(1);
      if (missing.length === 1) {
        expect(answer.type).toBe('error');
        const history = await client.ok({ type: 'history', room, after: lastSeq, limit: 1 });
        expect((history.messages as Frame[]).map((m) => m.seq)).toEqual(missing);
      }
      expect(live.filter((m) => String(m.content).startsWith('after-kill-')).map((m) => m.content)).toEqual(after);
    }
    lastSeq = seqs.at(-1)!;
    expect(await httpStatus(`${cluster.url}/readyz`)).toBe(200);
  });

  it('brings a killed worker back with restart()', async () => {
    dumpLogsOnFailure();
    const worker = cluster.workers[0]!;
    await worker.restart();
    expect(worker.running).toBe(true);
    if (cluster.natsMonitorUrl) {
      const monitor = cluster.natsMonitorUrl;
      await waitFor(async () => (await workerConnections(monitor)) === 2 || undefined, { timeoutMs: 5000, what: 'the restarted worker on NATS' });
    }
    const r = await b.ok({ type: 'publish', room, content: 'after-restart' });
    expect(r.seq).toBe(lastSeq + 1);
  });

  it('keeps query strings (where tokens travel) out of the access log', async () => {
    dumpLogsOnFailure();
    const secret = `secret${tag()}`;
    const c = await TestClient.connect(cluster.url, { query: { username: secret } });
    c.close();
    await c.waitClosed();
    // nginx writes a WebSocket's line when the connection ends.
    const accessLog = join(cluster.logDir, 'nginx-access.log');
    const lines = await waitFor(
      () => {
        const text = readFileSync(accessLog, 'utf8');
        return text.includes('"status":101') ? text.trim().split('\n') : undefined;
      },
      { timeoutMs: 5000, what: `a WebSocket line in ${accessLog}` },
    );
    const ws = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.path === '/ws');
    expect(ws.length).toBeGreaterThan(0);
    expect(lines.join('\n')).not.toContain(secret);
    expect(lines.join('\n')).not.toContain('username=');
  });

  it('stops every process it started', async () => {
    a.terminate();
    b.terminate();
    const pids = cluster.pids();
    // nginx (master and workers), 2 gateways, 2 workers, and NATS and Redis when started here.
    const ours = 1 + 2 + 2 + (cluster.nats.pid ? 1 : 0) + (cluster.redis.pid ? 1 : 0);
    expect(pids.length).toBeGreaterThan(ours);
    await cluster.stop();
    // process.kill(pid, 0), not fooled by a zombie nobody reaps.
    expect(pids.filter(alive)).toEqual([]);
    expect(cluster.pids()).toEqual([]);
  }, 60_000);
});

describe('cluster start failure', () => {
  it('names the process that exited during startup, with its last log lines, and leaves nothing running', async () => {
    const before = new Set(descendants(process.pid));
    // A value every gateway and worker refuses at start (exit 2, naming the variable).
    await expect(startTestCluster({ env: { MAX_FRAME_BYTES: 'lots' } })).rejects.toThrow(/(gateway|worker)-\d did not become ready[\s\S]*MAX_FRAME_BYTES/);
    expect(descendants(process.pid).filter((p) => !before.has(p) && alive(p))).toEqual([]);
  }, 60_000);
});
