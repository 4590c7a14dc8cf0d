/**
 * `npm run chaos`: the full chaos run (test/chaos/scenario.ts) against a local cluster of 3
 * gateways, 3 workers, a NATS cluster of 3 servers (routes), Redis and nginx, with 300 SDK clients in 30 rooms. Prints progress and
 * the report, writes it to test/chaos/results/ (report.md, report.json), and exits 1 when an
 * invariant broke.
 *
 *   npm run chaos                              # a fresh seed
 *   npm run chaos -- --seed 1234               # replay a run's choices (or CHAOS_SEED=1234)
 *   npm run chaos -- --clients 40 --rooms 4    # smaller (the CI size)
 *
 * Options: --seed, --clients, --rooms, --gateways, --workers, --nats-servers (3; 1: one nats-server,
 * without the kill-nats-server fault), --drain-ms, --interval-ms <min-max>
 * (pause between a client's publishes, 3000-9000), --faults <a,b,…> (a
 * subset of faults.ts's FAULTS, in the order given), --out <dir> (report directory; `-` to write
 * nothing), --keep (keep the run directory with the logs even on success), --redis-cluster (run on
 * a local 6-node Redis Cluster with REDIS_WAIT_REPLICAS=1; its faults are CLUSTER_FAULTS, with the
 * SIGKILL of a Redis primary instead of the one-server Redis faults).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CLUSTER_FAULTS, FAULTS, NATS_CLUSTER_FAULTS, type FaultName } from './faults.ts';
import { chaosSeed } from './random.ts';
import { renderMarkdown, reportJson } from './report.ts';
import { runChaos } from './scenario.ts';

const HERE = fileURLToPath(new URL('.', import.meta.url));

function whole(name: string, raw: string | undefined, fallback: number, min = 1): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!/^\d+$/.test(raw) || n < min) {
    process.stderr.write(`chaos: --${name} ${JSON.stringify(raw)}: expected a whole number ≥ ${min}\n`);
    process.exit(2);
  }
  return n;
}

function commit(): string | undefined {
  try {
    return execFileSync('git', ['describe', '--always', '--dirty'], { cwd: HERE, encoding: 'utf8' }).trim();
  } catch {
    return undefined;
  }
}

/** `--interval-ms 3000-9000`: the pause between a client's publishes. */
function interval(raw: string | undefined): [number, number] {
  if (raw === undefined) return [3000, 9000];
  const m = /^(\d+)-(\d+)$/.exec(raw);
  if (!m || Number(m[1]) > Number(m[2])) {
    process.stderr.write(`chaos: --interval-ms ${JSON.stringify(raw)}: expected <min>-<max> in ms, e.g. 3000-9000\n`);
    process.exit(2);
  }
  return [Number(m[1]), Number(m[2])];
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seed: { type: 'string' },
      clients: { type: 'string' },
      rooms: { type: 'string' },
      gateways: { type: 'string' },
      workers: { type: 'string' },
      'nats-servers': { type: 'string' },
      'drain-ms': { type: 'string' },
      'interval-ms': { type: 'string' },
      out: { type: 'string' },
      faults: { type: 'string' },
      keep: { type: 'boolean' },
      'redis-cluster': { type: 'boolean' },
    },
  });
  let seed: number;
  try {
    seed = values.seed === undefined ? chaosSeed(process.env.CHAOS_SEED) : chaosSeed(values.seed, '--seed');
  } catch (err) {
    process.stderr.write(`chaos: ${(err as Error).message}\n`);
    process.exit(2);
  }
  process.stdout.write(`chaos: seed ${seed} (replay: npm run chaos -- --seed ${seed}, or CHAOS_SEED=${seed})\n`);
  const redisCluster = values['redis-cluster'] ?? false;
  const natsServers = whole('nats-servers', values['nats-servers'], 3);
  const known: readonly string[] = redisCluster ? CLUSTER_FAULTS : FAULTS;
  const faults = values.faults?.split(',').map((f) => f.trim()) ?? known.filter((f) => natsServers > 1 || !NATS_CLUSTER_FAULTS.includes(f as FaultName));
  const unknown = faults.filter((f) => !known.includes(f));
  if (unknown.length) {
    process.stderr.write(`chaos: unknown fault(s) ${unknown.join(', ')}; known${redisCluster ? ' on a Redis Cluster' : ''}: ${known.join(', ')}\n`);
    process.exit(2);
  }
  const report = await runChaos({
    seed,
    clients: whole('clients', values.clients, 300, 2),
    rooms: whole('rooms', values.rooms, 30),
    gateways: whole('gateways', values.gateways, 3, 2),
    workers: whole('workers', values.workers, 3, 2),
    natsServers,
    drainMs: whole('drain-ms', values['drain-ms'], 3000, 0),
    publishIntervalMs: interval(values['interval-ms']),
    faults: faults as FaultName[],
    keepRunDir: values.keep ?? false,
    redisCluster,
    log: (line) => process.stdout.write(`${line}\n`),
  });
  const c = commit();
  if (c) report.commit = c;
  const md = renderMarkdown(report);
  process.stdout.write(`\n${md}`);
  const out = values.out ?? join(HERE, 'results');
  if (out !== '-') {
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'report.md'), md);
    writeFileSync(join(out, 'report.json'), reportJson(report));
    process.stdout.write(`\nreport written to ${relative(process.cwd(), out) || '.'}/report.{md,json}\n`);
  }
  process.exit(report.passed ? 0 : 1);
}

main().catch((err: unknown) => {
  process.stderr.write(`chaos: ${(err as Error)?.stack ?? String(err)}\n`);
  process.exit(1);
});
