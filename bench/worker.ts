/**
 * The worker's request path in one process, without the bus: `Worker.handle` called directly with
 * batches of requests (`$open`, `publish`), on the memory stores and on a local redis-server. It
 * prints the worker's CPU-µs per request (and Redis's), median of the measured rounds with min–max.
 * Far steadier than a cluster run, where six processes share a core: for changes to the worker's
 * handlers and the Redis stores. The worker runs on core 0 and Redis on core 1 when `taskset` is
 * there.
 *
 *   npm run bench:worker
 *   npm run bench:worker -- --batch 2 --requests 10000 --rounds 8 --kinds open --stores redis
 */
import { parseArgs } from 'node:util';
import { MemoryBus } from '../shared/bus-memory.ts';
import { createLogger } from '../shared/log.ts';
import { envelope, envelopeHeader, frames } from '../shared/protocol/internal.ts';
import type { Stores } from '../shared/stores.ts';
import { memoryStores } from '../shared/stores-memory.ts';
import { redisStores } from '../shared/stores-redis.ts';
import { startLocalRedis, type Service } from '../tools/processes.ts';
import { Worker } from '../worker/worker.ts';
import { cpuSeconds } from './loadgen/measure.ts';
import { pinTo, tasksetAvailable } from './targets.ts';

const { values: args } = parseArgs({
  options: {
    batch: { type: 'string', default: '16' },
    requests: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '6' },
    warmup: { type: 'string', default: '2' },
    kinds: { type: 'string', default: 'open,publish' },
    stores: { type: 'string', default: 'memory,redis' },
    help: { type: 'boolean', default: false },
  },
});
if (args.help) {
  console.log('npm run bench:worker -- [--batch 16] [--requests 20000] [--rounds 6] [--warmup 2] [--kinds open,publish] [--stores memory,redis]');
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
}

async function measure(kind: 'open' | 'publish', storeKind: 'memory' | 'redis', redis: Service | undefined): Promise<Row> {
  const stores: Stores = storeKind === 'redis' ? redisStores(redis!.url, { keyPrefix: `wb${Date.now()}:` }) : memoryStores();
  const worker = new Worker(new MemoryBus(), stores, createLogger('bench-worker', 'warn'), { processMetrics: false, sweepIntervalMs: 0 });
  const row: Row = { kind, stores: storeKind, worker: [], redis: [] };
  try {
    for (let r = 0; r < rounds; r++) {
      const reqs = requests(kind, `${storeKind}${r}`);
      const redis0 = redis?.pid ? cpuSeconds(redis.pid) : 0;
      const cpu0 = process.cpuUsage();
      for (let i = 0; i < reqs.length; i += batch) await Promise.all(reqs.slice(i, i + batch).map((d) => worker.handle(d)));
      const cpu = process.cpuUsage(cpu0);
      if (r < warmup) continue;
      row.worker.push((cpu.user + cpu.system) / reqs.length);
      if (storeKind === 'redis' && redis?.pid) row.redis.push(((cpuSeconds(redis.pid) - redis0) * 1e6) / reqs.length);
    }
  } finally {
    worker.stop();
    await stores.close();
  }
  return row;
}

function summary(xs: number[]): string {
  if (xs.length === 0) return '—';
  const s = [...xs].sort((a, b) => a - b);
  return `${s[s.length >> 1]!.toFixed(1)} (${s[0]!.toFixed(1)}–${s[s.length - 1]!.toFixed(1)})`;
}

const pin = tasksetAvailable();
if (pin) pinTo(0, process.pid);
const redis = storeKinds.includes('redis') ? await startLocalRedis() : undefined;
if (pin && redis?.pid) pinTo(1, redis.pid);
try {
  const rows: Row[] = [];
  for (const kind of kinds) for (const s of storeKinds) rows.push(await measure(kind, s, redis));
  console.log(`Worker.handle, ${batch} requests at a time, ${perRound} per round, ${rounds - warmup} measured rounds after ${warmup} (median, min–max)`);
  console.log(`worker on core 0, Redis on core 1: ${pin ? 'yes (taskset)' : 'no (no taskset)'}\n`);
  console.log('| request | stores | worker CPU-µs per request | Redis CPU-µs per request |');
  console.log('| --- | --- | --- | --- |');
  for (const r of rows) console.log(`| ${r.kind} | ${r.stores} | ${summary(r.worker)} | ${summary(r.redis)} |`);
} finally {
  await redis?.stop();
}
