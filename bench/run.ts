/**
 * `npm run bench [-- options]`: every scenario against every target, several runs, one report.
 *
 *   --runs N            runs of everything (default 3; 1 with --quick); each figure is the median
 *   --quick             one run, shorter measurement windows (about 4 minutes instead of 13)
 *   --scenarios A,B,C,D,E    --targets raw-uws,embedded,cluster,cluster-redis-cluster,socketio,socketio-redis
 *   --gateways N --workers M (cluster, default 2 and 2)   --sio-nodes K (socketio-redis, default 2)
 *   --window W --deep-window W2 --measure-ms T --warmup-ms T --latency-ms T
 *   --cpu-prof DIR      profile our servers' processes (embedded; the cluster's gateways and workers)
 *                       during each measured phase of A, B and D: DIR/<target>-<phase>-<process>.cpuprofile
 *   --no-save           print the report, write nothing to bench/results
 *   --no-latest         write bench/results/<date>.md but leave latest.json (the baseline) alone,
 *                       e.g. for a partial re-run of a few scenarios
 *
 * Servers run on core 0 (`taskset -c 0`), this process — the load generator — on core 1. Each run
 * starts every target afresh: once for A+B then D+E on the same process(es), once more for C (whose
 * RSS growth needs a fresh process). Output: the table on stdout, `bench/results/<date>.md`, and
 * `bench/results/latest.json`, compared with the previous `latest.json` (regressions > 10 %).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, writeFileSync } from 'node:fs';
import { cpus, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from '../tools/cluster.ts';
import { allocatorName } from '../tools/allocator.ts';
import { summarizeProfile } from './profile.ts';
import { checks, checksTable, cpuPerDeliveryTable, cpuTable, regressionsText, resultsTable, type Results, type SavedRun } from './report.ts';
import { until } from './loadgen/measure.ts';
import { FULL, NotImplemented, QUICK, idleScenario, roomScenarios, roomsScenarios, type Context, type Figures, type PhaseProfiler, type ScenarioParams } from './scenarios.ts';
import { TARGET_NAMES, describeTarget, pinTo, roles, startTarget, tasksetAvailable, type Target, type TargetName, type TargetOptions } from './targets.ts';

const RESULTS_DIR = join(ROOT, 'bench', 'results');
const SCENARIOS = ['A', 'B', 'C', 'D', 'E'];
/** The distributed Socket.IO is what scenario D's target compares our cluster with; A shows the adapter's cost. */
const APPLICABLE: Partial<Record<TargetName, string[]>> = { 'socketio-redis': ['A', 'D'], 'cluster-redis-cluster': ['D'] };

const { values: args } = parseArgs({
  options: {
    runs: { type: 'string' },
    quick: { type: 'boolean', default: false },
    scenarios: { type: 'string', default: SCENARIOS.join(',') },
    targets: { type: 'string', default: TARGET_NAMES.join(',') },
    gateways: { type: 'string', default: '2' },
    workers: { type: 'string', default: '2' },
    'sio-nodes': { type: 'string', default: '2' },
    window: { type: 'string' },
    'deep-window': { type: 'string' },
    'measure-ms': { type: 'string' },
    'warmup-ms': { type: 'string' },
    'latency-ms': { type: 'string' },
    'cpu-prof': { type: 'string' },
    'no-save': { type: 'boolean', default: false },
    'no-latest': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
  strict: true,
});

if (args.help) {
  process.stdout.write(readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0]!.replace(/^\/\*\*\n/, '').replace(/^ \* ?/gm, '') + '\n');
  process.exit(0);
}

function int(name: string, raw: string | undefined, fallback: number, min = 1): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min) {
    process.stderr.write(`bench: --${name} must be a whole number ≥ ${min}\n`);
    process.exit(2);
  }
  return n;
}

const base = args.quick ? QUICK : FULL;
const params: ScenarioParams = {
  ...base,
  window: int('window', args.window, base.window),
  deepWindow: int('deep-window', args['deep-window'], base.deepWindow),
  measureMs: int('measure-ms', args['measure-ms'], base.measureMs),
  warmupMs: int('warmup-ms', args['warmup-ms'], base.warmupMs, 0),
  latencyMs: int('latency-ms', args['latency-ms'], base.latencyMs),
};
const runs = int('runs', args.runs, args.quick ? 1 : 3);
const scenarios = args.scenarios.split(',').map((s) => s.trim().toUpperCase()).filter(Boolean);
const targets = args.targets.split(',').map((s) => s.trim()) as TargetName[];
for (const s of scenarios) if (!SCENARIOS.includes(s)) fail(`unknown scenario ${s}; choose from ${SCENARIOS.join(',')}`);
for (const t of targets) if (!TARGET_NAMES.includes(t)) fail(`unknown target ${t}; choose from ${TARGET_NAMES.join(',')}`);

function fail(message: string): never {
  process.stderr.write(`bench: ${message}\n`);
  process.exit(2);
}

const t0 = Date.now();
const log = (line: string) => process.stdout.write(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${line}\n`);

// ---------------------------------------------------------------------------------------------
// Machine, pinning, versions

const notes: string[] = [];
const cores = cpus().length;
const pin = tasksetAvailable() && cores >= 2;
if (pin) pinTo(1, process.pid);
else notes.push(tasksetAvailable() ? `only ${cores} core: servers and load generator share it` : 'taskset not found: servers and load generator are not pinned to separate cores');

function out(cmd: string, argv: string[]): string {
  const r = spawnSync(cmd, argv, { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0] ?? '';
}

function pkgVersion(name: string): string {
  try {
    const pkg = JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { name: string; version: string };
    return pkg.name === name ? pkg.version : `${pkg.name}@${pkg.version}`;
  } catch {
    return 'not installed';
  }
}

const versions: Record<string, string> = {
  node: process.version,
  'uWebSockets.js': pkgVersion('uWebSockets.js'),
  'socket.io': pkgVersion('socket.io'),
  '@socket.io/redis-adapter': pkgVersion('@socket.io/redis-adapter'),
  ioredis: pkgVersion('ioredis'),
  nats: pkgVersion('nats'),
  'nats-server': out('nats-server', ['--version']),
  'redis-server': out('redis-server', ['--version']).replace(/^Redis server /, ''),
  nginx: out(existsSync('/usr/sbin/nginx') ? '/usr/sbin/nginx' : 'nginx', ['-v']).replace(/^nginx version: /, ''),
  'allocator of every target Node process': allocatorName(),
};
const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${cores} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, Linux ${release()}`;

function commit(): string {
  try {
    const sha = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no', '--', 'gateway', 'worker', 'shared', 'bin', 'tools'], { cwd: ROOT, encoding: 'utf8' })
      .split('\n')
      .filter(Boolean)
      .map((l) => l.slice(3));
    return dirty.length ? `${sha} + uncommitted changes to ${dirty.join(', ')}` : sha;
  } catch {
    return 'unknown';
  }
}

// ---------------------------------------------------------------------------------------------
// Runs

const workDir = mkdtempSync(join(tmpdir(), 'rt-bench-'));
const targetOpts: TargetOptions = {
  pin,
  gateways: int('gateways', args.gateways, 2),
  workers: int('workers', args.workers, 2),
  sioNodes: int('sio-nodes', args['sio-nodes'], 2),
  workDir,
  ...(args['cpu-prof'] ? { cpuProfDir: args['cpu-prof'] } : {}),
};
if (targetOpts.cpuProfDir) mkdirSync(targetOpts.cpuProfDir, { recursive: true });

const results: Results = {};
const missing: Record<string, string> = {};

function record(target: TargetName, figures: Figures): void {
  const mine = (results[target] ??= {});
  for (const [k, v] of Object.entries(figures)) (mine[k] ??= []).push(v);
}

function miss(target: TargetName, list: string[], why: string): void {
  for (const s of list) missing[`${target}/${s}`] ??= why;
}

const applicable = (t: TargetName, s: string) => scenarios.includes(s) && (APPLICABLE[t]?.includes(s) ?? true);

async function withTarget(name: TargetName, what: string[], body: (t: Target) => Promise<void>): Promise<void> {
  let target: Target;
  try {
    target = await startTarget(name, targetOpts);
  } catch (err) {
    log(`${name}: could not start: ${(err as Error).message.split('\n')[0]}`);
    miss(name, what, `failed: ${(err as Error).message.split('\n')[0]}`);
    return;
  }
  try {
    await body(target);
  } finally {
    await target.stop().catch((err: unknown) => log(`${name}: stop failed: ${String(err)}`));
  }
}

async function phase(name: TargetName, list: string[], fn: () => Promise<Figures>): Promise<void> {
  try {
    record(name, await fn());
  } catch (err) {
    if (err instanceof NotImplemented) {
      log(`  ${list.join('+')}: n/a (${err.message})`);
      miss(name, list, 'n/a (not implemented)');
    } else {
      log(`  ${list.join('+')} failed: ${(err as Error).message}`);
      miss(name, list, `failed: ${(err as Error).message.slice(0, 120)}`);
      notes.push(`${name} ${list.join('+')}: ${(err as Error).message.slice(0, 300)}`);
    }
  }
}

/** SIGUSR2 to every profiled process starts, and again stops, a profile (bench/agent.mjs). */
function profiler(target: Target, run: number): PhaseProfiler {
  const dir = targetOpts.cpuProfDir!;
  let pids: number[] = [];
  const signal = () => {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGUSR2');
      } catch {
        // gone
      }
    }
  };
  return {
    start() {
      pids = target.profilePids();
      signal();
    },
    async stop(phase) {
      signal();
      for (const pid of pids) {
        const mine = (f: string) => f.startsWith(`prof-${pid}-`);
        await until(() => readdirSync(dir).some(mine), 10_000, 50);
        for (const f of readdirSync(dir).filter(mine)) {
          const name = `${target.name}-${phase}-${roles.get(pid) ?? pid}-run${run}.cpuprofile`;
          renameSync(join(dir, f), join(dir, name));
          profiles.push(join(dir, name));
        }
      }
    },
  };
}
const profiles: string[] = [];

log(`bench: ${runs} run${runs > 1 ? 's' : ''} × targets ${targets.join(', ')} × scenarios ${scenarios.join(', ')}${args.quick ? ' (quick)' : ''}`);
log(`servers on core 0, load generator on core 1: ${pin ? 'yes (taskset)' : 'no'}; logs in ${workDir}`);

for (let run = 1; run <= runs; run++) {
  for (const name of targets) {
    const tag = `${run}${Math.random().toString(36).slice(2, 6)}`;
    const ctx = (target: Target): Context => ({ target, params, tag, log, ...(targetOpts.cpuProfDir && target.profilePids().length ? { profiler: profiler(target, run) } : {}) });
    const ab = { A: applicable(name, 'A'), B: applicable(name, 'B') };
    const de = { D: applicable(name, 'D'), E: applicable(name, 'E') };
    if (ab.A || ab.B || de.D || de.E) {
      log(`run ${run}/${runs} ${name}: ${[...(ab.A ? ['A'] : []), ...(ab.B ? ['B'] : []), ...(de.D ? ['D'] : []), ...(de.E ? ['E'] : [])].join(', ')}`);
      const list = Object.entries({ ...ab, ...de }).filter(([, v]) => v).map(([k]) => k);
      await withTarget(name, list, async (target) => {
        if (ab.A || ab.B) await phase(name, Object.keys(ab).filter((k) => ab[k as 'A' | 'B']), () => roomScenarios(ctx(target), ab));
        if (de.D || de.E) await phase(name, Object.keys(de).filter((k) => de[k as 'D' | 'E']), () => roomsScenarios(ctx(target), de));
      });
    }
    if (applicable(name, 'C')) {
      log(`run ${run}/${runs} ${name}: C`);
      await withTarget(name, ['C'], (target) => phase(name, ['C'], () => idleScenario(ctx(target))));
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Report

for (const [t, list] of Object.entries(results)) {
  for (const [k, v] of Object.entries(list)) if (k.endsWith('.lg') && v.some((x) => x >= 90)) notes.push(`${t} ${k.slice(0, -3)}: the load generator reached ${Math.max(...v).toFixed(0)} % CPU in a run — that figure may be bounded by the client, not the server`);
}

const rawArgs = process.argv.slice(2);
const command = process.env.npm_lifecycle_event === 'bench' ? `npm run bench${rawArgs.length ? ` -- ${rawArgs.join(' ')}` : ''}` : `tsx bench/run.ts ${rawArgs.join(' ')}`.trim();
const date = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
const saved: SavedRun = {
  version: 1,
  date,
  command,
  commit: commit(),
  machine,
  versions,
  params: { ...params, runs, gateways: targetOpts.gateways, workers: targetOpts.workers, sioNodes: targetOpts.sioNodes },
  targets,
  scenarios,
  results,
  missing,
  notes,
};

const latestFile = join(RESULTS_DIR, 'latest.json');
let previous: SavedRun | undefined;
try {
  previous = JSON.parse(readFileSync(latestFile, 'utf8')) as SavedRun;
} catch {
  previous = undefined;
}

const p = params;
const doc = `# Benchmark ${date}

\`${command}\` — ${runs} run${runs > 1 ? 's' : ''}, ${((Date.now() - t0) / 60000).toFixed(1)} min. Commit ${saved.commit}.

- **Machine:** ${machine}. ${pin ? 'Servers pinned to core 0 (`taskset -c 0`, every process of a target), the load generator to core 1.' : 'Not pinned.'}
- **Versions:** ${Object.entries(versions).map(([k, v]) => `${k} ${v}`).join(', ')}.
- **Targets:**
${targets.map((t) => `  - \`${t}\`: ${describeTarget(t, targetOpts)}`).join('\n')}
- **Our settings:** every limit off (\`RATE_LIMIT_RPS=0 CONNECT_RATE_PER_IP=0 MAX_CONNECTIONS=0 MAX_CONNECTIONS_PER_USER=0 MAX_ROOMS_PER_CONNECTION=0 MAX_IN_FLIGHT_PER_CONNECTION=0\`; the gateway's in-flight window at its default), \`LOG_LEVEL=warn\`, \`ALLOW_ANONYMOUS=true\` (\`?username=\`) except in C (a JWT per connection, \`JWT_SECRET\`, HS256).
- **Load generator:** one Node process, raw sockets with a minimal RFC 6455 client (bench/loadgen/) that counts frames from their headers; source addresses 127.1.0.1–200; connects ${p.connectConcurrency} at a time.
- **Workload:** content of ${p.contentLength} characters per message; A: ${p.members} members, one of them publishing with ${p.window} (and ${p.deepWindow}) publishes outstanding, measured ${p.measureMs / 1000} s after ${p.warmupMs / 1000} s warm-up; B: ${p.rates.join(' and ')} msg/s for ${p.latencyMs / 1000} s each; C: ${p.idleConnections} connections, ${p.idleRooms} rooms; D: ${p.rooms} rooms × ${p.roomSize} members, one of each room publishes with ${p.roomWindow} outstanding; E: one \`POST /api/notifications\` to the ${p.rooms * p.roomSize} users of D (the references store nothing, they only publish to each user's topic or room).

## Results (median of ${runs}, min–max)

${resultsTable(saved)}

Deliveries are \`message\` frames received by the load generator, every member counted (the publisher's own copy too). Ratios are plain quotients of the medians (for latency and memory, above 1× means more than the reference). "SIO+R": Socket.IO with the Redis adapter, ${targetOpts.sioNodes} processes. "—": not run for that target.

## CPU during measurement (median, % of one core): load generator / server processes / other

${cpuTable(saved)}

"Other" is the machine's busy time not charged to the load generator or the target: processes that are neither (other people's test runs) and kernel network work done outside any process (a few % when the machine is otherwise idle). ⚠ on the load generator: it used ≥ 90 % of its core, so that figure may be the client's limit rather than the server's. ⚠ on other: ≥ 30 % of a core went elsewhere, so the run was disturbed.

## CPU-µs per delivered message, by role (median)

${cpuPerDeliveryTable(saved)}

CPU time of each role's processes during the measured phase divided by the messages delivered meanwhile (every member counted). In D a publish is delivered to ${p.roomSize} members, so its cost per publish is ${p.roomSize}× these figures. The C row is per connection opened in the measured ramp instead. Time spent waiting for the shared core is not CPU time: these are the work each role does, whatever the contention.

## Targets of the issue

${checksTable(checks(saved))}

## Compared with the previous run

${regressionsText(previous, saved)}
${notes.length ? `\n## Notes\n\n${notes.map((n) => `- ${n}`).join('\n')}\n` : ''}
## Caveats

- One machine with 2 cores: the servers (all processes of a target, NATS and Redis included) share core 0; the load generator has core 1. Other work on the machine (other agents' test runs) can disturb any figure; the min–max spread shows how much.
- RSS per connection is the growth of resident memory between two readings after a full garbage collection (bench/agent.mjs): before connecting, and after ${p.idleConnections} connections joined their rooms and sat idle 2 s; the row "before the GC" is the same growth without collecting.
- Latency is measured in the load generator's process from the scheduled send time to the start of the event-loop poll batch that read it: the client's own event-loop delay is included (its p99 is in the table), the time it spends reading the batch's 1000 sockets one after another is not.
`;

process.stdout.write(`\n${doc}`);
for (const f of profiles) process.stdout.write(`\nProfile ${f}:\n${summarizeProfile(f, 20)}\n`);
if (!args['no-save']) {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${date.replace(/:/g, '-')}.md`);
  writeFileSync(file, doc);
  if (args['no-latest']) {
    log(`wrote ${file} (latest.json left as it was)`);
  } else {
    writeFileSync(latestFile, JSON.stringify(saved, null, 2) + '\n');
    log(`wrote ${file} and ${latestFile}`);
  }
}
process.exit(0);
