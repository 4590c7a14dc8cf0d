/**
 * The systems under test, each started fresh on CPU core 0 (`taskset -c 0`) and stopped by us:
 *
 * - `raw-uws`: bench/servers/raw-uws.ts, the reference limit.
 * - `embedded`: bin/embedded.ts (gateway + worker in one process, in-process bus, memory store).
 * - `cluster`: startCluster() of tools/cluster.ts — real nats-server, redis-server, G gateways,
 *   W workers and nginx as processes; every one of them is pinned to core 0 after it started. The
 *   load generator connects to the gateways' own ports (round robin), not through nginx, to measure
 *   the system rather than the proxy.
 * - `socketio`: bench/servers/socketio.ts, Socket.IO 4.8, websocket transport only.
 * - `socketio-redis`: K of those with @socket.io/redis-adapter and a redis-server (the distributed
 *   Socket.IO to compare our cluster with); clients round robin over the K processes.
 *
 * Our targets run with every limit off (RATE_LIMIT_RPS=0 CONNECT_RATE_PER_IP=0 MAX_CONNECTIONS=0
 * MAX_CONNECTIONS_PER_USER=0 MAX_ROOMS_PER_CONNECTION=0), LOG_LEVEL=warn, ALLOW_ANONYMOUS=true, a
 * JWT_SECRET (scenario C connects with tokens) and an API_KEY (scenario E).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { allocatorEnv } from '../tools/allocator.ts';
import { startCluster, ROOT, type Cluster } from '../tools/cluster.ts';
import { LocalProcess, freePort, httpStatus, onPath, startLocalRedis, waitFor, waitForPort, type Service } from '../tools/processes.ts';
import { CONFIG_SPEC } from '../shared/config.ts';
import type { Endpoint, Proto } from './loadgen/protocols.ts';

export type TargetName = 'raw-uws' | 'embedded' | 'cluster' | 'cluster-redis-cluster' | 'socketio' | 'socketio-redis';
export const TARGET_NAMES: TargetName[] = ['raw-uws', 'embedded', 'cluster', 'cluster-redis-cluster', 'socketio', 'socketio-redis'];
/** Ours: connect with JWTs in scenario C, and the ones the targets of the issue are about. */
export const OURS: TargetName[] = ['embedded', 'cluster', 'cluster-redis-cluster'];

export const JWT_SECRET = 'rt-bench-secret-0123456789abcdef0123456789';
export const API_KEY = 'rt-bench-api-key-0123456789abcdef';

export const BENCH_ENV: Record<string, string> = {
  RATE_LIMIT_RPS: '0',
  CONNECT_RATE_PER_IP: '0',
  MAX_CONNECTIONS: '0',
  MAX_CONNECTIONS_PER_USER: '0',
  MAX_ROOMS_PER_CONNECTION: '0',
  // A per-connection limit, like the rate limit: A's one publisher keeps 1000 publishes in flight.
  // The gateway's own window (MAX_IN_FLIGHT_PER_GATEWAY) stays on: it is what D's overload measures.
  MAX_IN_FLIGHT_PER_CONNECTION: '0',
  LOG_LEVEL: 'warn',
  ALLOW_ANONYMOUS: 'true',
  JWT_SECRET,
  API_KEY,
};

export interface TargetOptions {
  /** Pin servers to core 0 with taskset. */
  pin: boolean;
  gateways: number;
  workers: number;
  /** Socket.IO processes of `socketio-redis`. */
  sioNodes: number;
  /** Directory for logs and run files. */
  workDir: string;
  /**
   * Profile `embedded` and the cluster's gateways and workers: each SIGUSR2 pair (see
   * Target.profilePids and bench/agent.mjs) writes one CPU profile per process here.
   */
  cpuProfDir?: string;
}

/** Process ids with their role (`gateway-1`), for naming profiles. */
export const roles = new Map<number, string>();

export interface Target {
  name: TargetName;
  proto: Proto;
  /** Where WebSocket clients connect; client i uses endpoints[i % length]. */
  endpoints: Endpoint[];
  /** Where HTTP API calls go. */
  http: Endpoint;
  /** Processes that hold the client sockets (RSS per connection). */
  socketPids(): number[];
  /** Every server-side process (CPU). */
  pids(): number[];
  /** The server-side processes by role (`gateway`, `worker`, `nats`, `redis`, …), for CPU per role. */
  rolePids(): Record<string, number[]>;
  /** Our Node processes that can be profiled (with TargetOptions.cpuProfDir). */
  profilePids(): number[];
  /** Node processes running bench/agent.mjs (SIGWINCH: a full garbage collection). */
  nodePids(): number[];
  stop(): Promise<void>;
}

const AGENT = join(ROOT, 'bench', 'agent.mjs');

/**
 * Every Node process of a target preloads the agent; ours also get the profile directory. All of
 * them run on the allocator our image and startCluster use (tools/allocator.ts: jemalloc where it
 * is installed), ours and the others alike.
 */
function agentEnv(o: TargetOptions, profiled: boolean): Record<string, string> {
  return { NODE_OPTIONS: `--import=${AGENT}`, ...allocatorEnv(), ...(profiled && o.cpuProfDir ? { RT_BENCH_PROFILE_DIR: o.cpuProfDir } : {}) };
}

/** Sends SIGWINCH (a full GC, bench/agent.mjs) to the target's Node processes and lets it finish. */
export async function collectGarbage(t: Target): Promise<void> {
  for (const pid of t.nodePids()) {
    try {
      process.kill(pid, 'SIGWINCH');
    } catch {
      // gone
    }
  }
  await new Promise((r) => setTimeout(r, 1500));
}

export function describeTarget(name: TargetName, o: Pick<TargetOptions, 'gateways' | 'workers' | 'sioNodes'>): string {
  switch (name) {
    case 'raw-uws':
      return 'bench/servers/raw-uws.ts: one process, uWS topic publish, no auth/validation/storage';
    case 'embedded':
      return 'bin/embedded.ts: one process (gateway + worker, in-process bus, memory store)';
    case 'cluster':
      return `startCluster(): ${o.gateways} gateway${o.gateways > 1 ? 's' : ''} + ${o.workers} worker${o.workers > 1 ? 's' : ''} + nats-server + redis-server (+ nginx, idle: clients connect to the gateway ports directly, round robin)`;
    case 'cluster-redis-cluster':
      return `the cluster target on a 6-node Redis Cluster (3 primaries, 3 replicas; REDIS_WAIT_REPLICAS=0) instead of one redis-server`;
    case 'socketio':
      return 'bench/servers/socketio.ts: Socket.IO 4.8, one process, websocket transport only';
    case 'socketio-redis':
      return `${o.sioNodes} × bench/servers/socketio.ts with @socket.io/redis-adapter + redis-server (clients round robin)`;
  }
}

/** Our environment without any of our configuration variables inherited from the caller's shell. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  const ours = new Set(Object.keys(CONFIG_SPEC));
  for (const [k, v] of Object.entries(process.env)) if (!ours.has(k) && v !== undefined) env[k] = v;
  return { ...env, ...extra };
}

/** Moves every thread of `pid` (and what it starts later) to `core`. */
export function pinTo(core: number, pid: number): void {
  try {
    execFileSync('taskset', ['-a', '-p', '-c', String(core), String(pid)], { stdio: 'ignore' });
  } catch {
    // Gone already, or no taskset: reported once by the runner.
  }
}

export function tasksetAvailable(): boolean {
  return onPath('taskset');
}

let seq = 0;

function nodeProcess(o: TargetOptions, name: string, script: string, env: NodeJS.ProcessEnv, nodeArgs: string[] = []): LocalProcess {
  const node = [process.execPath, ...nodeArgs, '--import', 'tsx', script];
  return new LocalProcess({
    name,
    command: o.pin ? 'taskset' : node[0]!,
    args: o.pin ? ['-c', '0', ...node] : node.slice(1),
    cwd: ROOT,
    env,
    logFile: join(o.workDir, `${name}-${++seq}.log`),
  });
}

async function started(proc: LocalProcess, ready: () => Promise<void>): Promise<void> {
  await proc.start();
  try {
    await ready();
  } catch (err) {
    await proc.stop(1000, 'SIGKILL');
    throw new Error(`${proc.name} did not start: ${(err as Error).message}\n${proc.tail(20)}`);
  }
}

const local = (port: number): Endpoint => ({ host: '127.0.0.1', port });

export async function startTarget(name: TargetName, o: TargetOptions): Promise<Target> {
  mkdirSync(o.workDir, { recursive: true });
  switch (name) {
    case 'raw-uws':
    case 'socketio': {
      const port = await freePort();
      const script = name === 'raw-uws' ? 'bench/servers/raw-uws.ts' : 'bench/servers/socketio.ts';
      const proc = nodeProcess(o, name, script, cleanEnv({ ...agentEnv(o, false), PORT: String(port), HOST: '127.0.0.1' }));
      await started(proc, () => waitForPort('127.0.0.1', port, 20_000, proc));
      return {
        name,
        proto: name === 'raw-uws' ? 'rt' : 'sio',
        endpoints: [local(port)],
        http: local(port),
        socketPids: () => (proc.pid ? [proc.pid] : []),
        pids: () => (proc.pid ? [proc.pid] : []),
        rolePids: () => ({ server: proc.pid ? [proc.pid] : [] }),
        profilePids: () => [],
        nodePids: () => (proc.pid ? [proc.pid] : []),
        stop: async () => void (await proc.stop(5000)),
      };
    }
    case 'embedded': {
      const port = await freePort();
      const proc = nodeProcess(o, name, 'bin/embedded.ts', cleanEnv({ ...BENCH_ENV, ...agentEnv(o, true), PORT: String(port), HOST: '127.0.0.1' }));
      await started(proc, async () => {
        await waitFor(async () => (await httpStatus(`http://127.0.0.1:${port}/readyz`, 1000)) === 200 || undefined, {
          timeoutMs: 30_000,
          intervalMs: 100,
          what: 'embedded /readyz',
          proc,
        });
      });
      if (proc.pid) roles.set(proc.pid, 'embedded');
      return {
        name,
        proto: 'rt',
        endpoints: [local(port)],
        http: local(port),
        socketPids: () => (proc.pid ? [proc.pid] : []),
        pids: () => (proc.pid ? [proc.pid] : []),
        rolePids: () => ({ embedded: proc.pid ? [proc.pid] : [] }),
        profilePids: () => (o.cpuProfDir && proc.pid ? [proc.pid] : []),
        nodePids: () => (proc.pid ? [proc.pid] : []),
        // SIGTERM: a clean exit, which is also when --cpu-prof writes its profile.
        stop: async () => void (await proc.stop(15_000)),
      };
    }
    case 'cluster':
    case 'cluster-redis-cluster': {
      const runDir = join(o.workDir, `cluster-${++seq}`);
      const cluster: Cluster = await startCluster({
        ...(name === 'cluster-redis-cluster' ? { redisCluster: true } : {}),
        gateways: o.gateways,
        workers: o.workers,
        env: { ...BENCH_ENV, ...agentEnv(o, true) },
        runDir,
        readyTimeoutMs: 60_000,
      });
      if (o.pin) for (const pid of cluster.pids()) pinTo(0, pid);
      for (const n of [...cluster.gateways, ...cluster.workers]) if (n.pid) roles.set(n.pid, n.name);
      return {
        name,
        proto: 'rt',
        endpoints: cluster.gateways.map((g) => local(g.port)),
        http: local(cluster.gateways[0]!.port),
        socketPids: () => cluster.gateways.flatMap((g) => (g.pid ? [g.pid] : [])),
        pids: () => cluster.pids(),
        rolePids: () => ({
          gateway: cluster.gateways.flatMap((g) => (g.pid ? [g.pid] : [])),
          worker: cluster.workers.flatMap((w) => (w.pid ? [w.pid] : [])),
          nats: cluster.nats.pid ? [cluster.nats.pid] : [],
          redis: cluster.redis.pid ? [cluster.redis.pid] : [],
        }),
        profilePids: () => (o.cpuProfDir ? [...cluster.gateways, ...cluster.workers].flatMap((n) => (n.pid ? [n.pid] : [])) : []),
        nodePids: () => [...cluster.gateways, ...cluster.workers].flatMap((n) => (n.pid ? [n.pid] : [])),
        stop: () => cluster.stop(),
      };
    }
    case 'socketio-redis': {
      const redis: Service = await startLocalRedis({ logFile: join(o.workDir, `redis-${++seq}.log`) });
      if (o.pin && redis.pid) pinTo(0, redis.pid);
      const procs: LocalProcess[] = [];
      const ports: number[] = [];
      try {
        for (let i = 0; i < o.sioNodes; i++) {
          const port = await freePort();
          const proc = nodeProcess(o, `socketio-redis-${i + 1}`, 'bench/servers/socketio.ts', cleanEnv({ ...agentEnv(o, false), PORT: String(port), HOST: '127.0.0.1', REDIS_URL: redis.url }));
          await started(proc, () => waitForPort('127.0.0.1', port, 20_000, proc));
          procs.push(proc);
          ports.push(port);
        }
      } catch (err) {
        await Promise.allSettled(procs.map((p) => p.stop(2000)));
        await redis.stop();
        throw err;
      }
      const pids = () => procs.flatMap((p) => (p.pid ? [p.pid] : []));
      return {
        name,
        proto: 'sio',
        endpoints: ports.map(local),
        http: local(ports[0]!),
        socketPids: pids,
        pids: () => [...pids(), ...(redis.pid ? [redis.pid] : [])],
        rolePids: () => ({ node: pids(), redis: redis.pid ? [redis.pid] : [] }),
        profilePids: () => [],
        nodePids: pids,
        stop: async () => {
          await Promise.allSettled(procs.map((p) => p.stop(5000)));
          await redis.stop();
        },
      };
    }
  }
}
