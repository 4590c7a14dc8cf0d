/**
 * The worker's request path in one process, without the bus: `Worker.handle` called directly with
 * batches of requests (`$open`, `publish`), on the memory stores and on a local redis-server. It
 * prints the worker's CPU-µs per request (and Redis's), median of the measured rounds with min–max.
 * Far steadier than a cluster run, where six processes share a core: for changes to the worker's
 * handlers and the Redis stores. The worker runs on core 0 and Redis on core 1 when `taskset` is
 * there. With `--bus nats` the worker is a process of its own (`bin/worker.ts`, as in the cluster)
 * serving requests that this process sends over a local nats-server as a gateway does (batched per
 * turn); it alone is on core 0, and its CPU, NATS's and Redis's are counted.
 *
 *   npm run bench:worker
 *   npm run bench:worker -- --batch 2 --requests 10000 --rounds 8 --kinds open --stores redis
 *   npm run bench:worker -- --bus nats
 */
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { subjects } from '../shared/bus.ts';
import { MemoryBus } from '../shared/bus-memory.ts';
import { NatsBus } from '../shared/bus-nats.ts';
import { createLogger } from '../shared/log.ts';
import { envelope, envelopeHeader, frames } from '../shared/protocol/internal.ts';
import type { Stores } from '../shared/stores.ts';
import { memoryStores } from '../shared/stores-memory.ts';
import { redisStores } from '../shared/stores-redis.ts';
import { allocatorEnv } from '../tools/allocator.ts';
import { LocalProcess, freePort, httpStatus, startLocalNats, startLocalRedis, waitFor, type Service } from '../tools/processes.ts';
import { Worker } from '../worker/worker.ts';
import { cpuSeconds } from './loadgen/measure.ts';
import { stat } from './report.ts';
import { pinTo, tasksetAvailable } from './targets.ts';

const { values: args } = parseArgs({
  options: {
    batch: { type: 'string', default: '16' },
    requests: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '6' },
    warmup: { type: 'string', default: '2' },
    kinds: { type: 'string', default: 'open,publish' },
    stores: { type: 'string', default: 'memory,redis' },
    bus: { type: 'string', default: 'none' },
    'one-core': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log('npm run bench:worker -- [--batch 16] [--requests 20000] [--rounds 6] [--warmup 2] [--kinds open,publish] [--stores memory,redis] [--bus none|nats] [--one-core]');
  process.exit(0);
}
const positive = (name: string, v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(v)}`);
  return n;
};
const batch = positive('batch', args.batch);
const perRound = positive('requests', args.requests);
const rounds = positive('rounds', args.rounds);
const warmup = Math.min(rounds - 1, Number(args.warmup) || 0);
const kinds = args.kinds.split(',') as ('open' | 'publish')[];
const storeKinds = args.stores.split(',') as ('memory' | 'redis')[];
for (const k of kinds) if (k !== 'open' && k !== 'publish') throw new Error(`--kinds: open or publish, got ${k}`);
for (const s of storeKinds) if (s !== 'memory' && s !== 'redis') throw new Error(`--stores: memory or redis, got ${s}`);
if (args.bus !== 'none' && args.bus !== 'nats') throw new Error(`--bus: none or nats, got ${args.bus}`);
const overNats = args.bus === 'nats';

/** Round r's requests of a kind: fresh users (opens) or 1000 rooms (publishes), none repeated. */
function requests(kind: 'open' | 'publish', tag: string): Uint8Array[] {
  const publisher = envelopeHeader(`c-${tag}`, 'gw-bench', { id: `alice-${tag}`, name: 'Alice' });
  return Array.from({ length: perRound }, (_, i) =>
    kind === 'open'
      ? envelope(envelopeHeader(`c-${tag}-${i}`, 'gw-bench', { id: `u-${tag}-${i}`, name: `u${i}` }), frames.open(undefined))
      : envelope(publisher, `{"type":"publish","id":${i + 1},"room":"r-${i % 1000}","content":"message ${i} of round ${tag}"}`),
  );
}

interface Row {
  kind: string;
  stores: string;
  worker: number[];
  redis: number[];
  nats: number[];
}

/**
 * Sends the rounds' requests, `batch` at a time (each batch answered before the next), and counts
 * CPU per request: the worker's is this process's own unless `pids.worker` says it is another.
 */
async function runRounds(kind: 'open' | 'publish', storeKind: string, ask: (request: Uint8Array) => Promise<unknown>, pids: { worker?: number; redis?: number; nats?: number }): Promise<Row> {
  const row: Row = { kind, stores: storeKind, worker: [], redis: [], nats: [] };
  const cpu = (pid: number | undefined) => (pid ? cpuSeconds(pid) * 1e6 : 0);
  const ownCpu = () => {
    const u = process.cpuUsage();
    return u.user + u.system;
  };
  const workerCpu = () => (pids.worker ? cpu(pids.worker) : ownCpu());
  for (let r = 0; r < rounds; r++) {
    const reqs = requests(kind, `${storeKind}${r}`);
    const redis0 = cpu(pids.redis);
    const nats0 = cpu(pids.nats);
    const worker0 = workerCpu();
    for (let i = 0; i < reqs.length; i += batch) await Promise.all(reqs.slice(i, i + batch).map(ask));
    if (r < warmup) continue;
    row.worker.push((workerCpu() - worker0) / reqs.length);
    if (pids.redis) row.redis.push((cpu(pids.redis) - redis0) / reqs.length);
    if (pids.nats) row.nats.push((cpu(pids.nats) - nats0) / reqs.length);
  }
  return row;
}

async function measure(kind: 'open' | 'publish', storeKind: 'memory' | 'redis', redis: Service | undefined): Promise<Row> {
  const stores: Stores = storeKind === 'redis' ? redisStores(redis!.url, { keyPrefix: `wb${Date.now()}:` }) : memoryStores();
  const worker = new Worker(new MemoryBus(), stores, createLogger('bench-worker', 'warn'), { processMetrics: false, sweepIntervalMs: 0 });
  try {
    return await runRounds(kind, storeKind, (d) => worker.handle(d), { redis: storeKind === 'redis' ? redis?.pid : undefined });
  } finally {
    worker.stop();
    await stores.close();
  }
}

/** The same over NATS: `bin/worker.ts` as a process of its own, asked as a gateway asks. */
async function measureOverNats(kind: 'open' | 'publish', redis: Service, nats: Service): Promise<Row> {
  const metricsPort = await freePort();
  const proc = new LocalProcess({
    name: 'worker',
    command: process.execPath,
    args: ['--import', 'tsx', 'bin/worker.ts'],
    cwd: join(import.meta.dirname, '..'),
    env: { ...process.env, ...allocatorEnv(), NATS_URL: nats.url, REDIS_URL: redis.url, METRICS_PORT: String(metricsPort), LOG_LEVEL: 'warn', NODE_ID: 'bench-worker' },
  });
  const bus = await NatsBus.connect(nats.url, { name: 'bench-requester' });
  try {
    await proc.start();
    await waitFor(async () => (await httpStatus(`http://127.0.0.1:${metricsPort}/readyz`)) === 200 || undefined, { timeoutMs: 20_000, what: 'the worker to be ready', proc });
    if (pin) pinTo(0, proc.pid!);
    return await runRounds(kind, 'redis', (d) => bus.request(subjects.requests, d, 10_000), { worker: proc.pid, redis: redis.pid, nats: nats.pid });
  } catch (err) {
    throw new Error(`${(err as Error).message}\n--- the worker's last lines:\n${proc.tail(30)}`);
  } finally {
    await bus.close();
    await proc.stop();
  }
}

function summary(xs: number[]): string {
  const s = stat(xs);
  return s ? `${s.median.toFixed(1)} (${s.min.toFixed(1)}–${s.max.toFixed(1)})` : '—';
}

const pin = tasksetAvailable();
// Over NATS this process is the requester and shares core 1 with NATS and Redis; the worker is alone on core 0.
// --one-core puts everything on core 0, as the bench's cluster target does.
const oneCore = args['one-core'];
const otherCore = oneCore ? 0 : 1;
if (pin) pinTo(overNats ? otherCore : 0, process.pid);
const redis = storeKinds.includes('redis') || overNats ? await startLocalRedis() : undefined;
const nats = overNats ? await startLocalNats() : undefined;
for (const svc of [redis, nats]) if (pin && svc?.pid) pinTo(otherCore, svc.pid);
try {
  const rows: Row[] = [];
  for (const kind of kinds) {
    if (overNats) rows.push(await measureOverNats(kind, redis!, nats!));
    else for (const s of storeKinds) rows.push(await measure(kind, s, redis));
  }
  const how = overNats ? 'bin/worker.ts over NATS (requests batched per turn, as a gateway sends them)' : 'Worker.handle in this process';
  console.log(`${how}, ${batch} requests at a time, ${perRound} per round, ${rounds - warmup} measured rounds after ${warmup} (median, min–max)`);
  console.log(`${oneCore ? 'every process on core 0' : 'worker alone on core 0, the rest on core 1'}: ${pin ? 'yes (taskset)' : 'no (no taskset)'}\n`);
  console.log('| request | stores | worker CPU-µs per request | Redis CPU-µs per request | NATS CPU-µs per request |');
  console.log('| --- | --- | --- | --- | --- |');
  for (const r of rows) console.log(`| ${r.kind} | ${r.stores} | ${summary(r.worker)} | ${summary(r.redis)} | ${summary(r.nats)} |`);
} finally {
  await nats?.stop();
  await redis?.stop();
}
