/**
 * `npm run cluster`: a real local cluster without Docker. nats-server and redis-server from PATH on
 * free ports (or the servers named by NATS_URL / REDIS_URL), GATEWAYS gateways (2), WORKERS workers
 * (2), and nginx in front on PORT (8080) with the project's own `nginx/nginx.conf.template`.
 * REDIS_CLUSTER=1 starts a 6-node Redis Cluster (3 primaries, 3 replicas) instead of one
 * redis-server (tools/redis-cluster.ts), and REDIS_CLUSTER_NODES uses a running one.
 * NATS_CLUSTER=3 starts a NATS cluster of that many servers joined by routes instead of one
 * nats-server (tools/nats-cluster.ts); gateways and workers get all of them in NATS_URL.
 *
 * Gateways and workers run on jemalloc where Debian's libjemalloc2 is installed, as in the image
 * (tools/allocator.ts; RT_ALLOCATOR=system keeps glibc's malloc).
 *
 * Also a library: `startCluster()` is what the end-to-end tests run (test/harness/cluster.ts).
 *
 * Run files live in one directory (default `.cluster/<port>/`): the rendered nginx config, its pid
 * and temporary files, and `logs/<process>.log` for every process. Everything started here is
 * stopped by `stop()`: gateways first (they close their sockets with 1001 through nginx), then nginx
 * and the workers, then NATS and Redis, each with SIGTERM and SIGKILL after a timeout.
 */
import { chmodSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { allocatorEnv } from './allocator.ts';
import { checkNginxConfig, findNginx, nginxErrorLog, renderNginxConfig } from './nginx.ts';
import { randomId } from '../shared/ids.ts';
import {
  LocalProcess,
  alive,
  descendants,
  externalService,
  freePort,
  freePortNotIn,
  httpStatus,
  portAvailable,
  startLocalNats,
  startLocalRedis,
  waitFor,
  type ExitStatus,
  type Service,
} from './processes.ts';
import { startLocalNatsCluster, type NatsCluster } from './nats-cluster.ts';

import { startLocalRedisCluster, type LocalRedisCluster } from './redis-cluster.ts';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));

export interface ClusterOptions {
  /** nginx's port. 0 or unset: a free port. */
  port?: number;
  /** nginx's listen address; 127.0.0.1 unless given. */
  host?: string;
  /** Number of gateways, 2 unless given. */
  gateways?: number;
  /** Number of workers, 2 unless given. */
  workers?: number;
  /** Use this NATS instead of starting nats-server. */
  natsUrl?: string;
  /** Servers of the NATS cluster to start (routes between them); 1 unless given: one plain nats-server. */
  natsServers?: number;
  /** Use this Redis instead of starting redis-server. */
  redisUrl?: string;
  /** Start a local 6-node Redis Cluster instead of one redis-server; the stores run on it. */
  redisCluster?: boolean;
  /** Use this Redis Cluster (`host:port,…`) instead of starting Redis. */
  redisClusterNodes?: string;
  /**
   * More redis-server arguments when the cluster starts Redis itself (it starts without persistence),
   * e.g. `['--appendonly', 'yes', '--appendfsync', 'always', '--dir', dir]`.
   */
  redisArgs?: string[];
  /**
   * Environment of the gateways and workers on top of ours (LOG_LEVEL, REQUEST_TIMEOUT_MS, ...).
   * ALLOW_ANONYMOUS defaults to true and TRUSTED_PROXIES to 127.0.0.1 (nginx) unless set here or in
   * ours; PORT, HOST, NODE_ID, METRICS_PORT, NATS_URL and REDIS_URL are the cluster's.
   */
  env?: NodeJS.ProcessEnv;
  /** Directory for the run files; `.cluster/<port>/` of the repository unless given. */
  runDir?: string;
  /** Bound on waiting for every process to be ready; 30 s unless given. */
  readyTimeoutMs?: number;
  /** How long a process may take to exit after SIGTERM before SIGKILL; 10 s unless given. */
  stopTimeoutMs?: number;
  /** Children in their own process groups, so a terminal's Ctrl-C reaches only us (the CLI). */
  detached?: boolean;
  /** Aborts a start in progress: what was started is stopped and `startCluster` rejects. */
  signal?: AbortSignal;
  /** Called when a gateway, worker or nginx exits without being asked to. */
  onUnexpectedExit?: (name: string, status: ExitStatus, tail: string) => void;
}

/** A gateway or a worker of the cluster. */
export interface ClusterNode {
  /** `gateway-1`, `worker-2`; also its log file's name. */
  readonly name: string;
  /** Its NODE_ID; for a gateway, the `welcome.node` its clients see. */
  readonly nodeId: string;
  /** Gateway: its HTTP and WebSocket port. Worker: its METRICS_PORT. Both serve /readyz there. */
  readonly port: number;
  /** PID of the current (or last) run. */
  readonly pid: number | undefined;
  readonly running: boolean;
  readonly logFile: string;
  /** Sends a signal (SIGKILL for a crash, SIGTERM for a drain); does not wait. */
  kill(sig?: NodeJS.Signals): void;
  /** SIGTERM, SIGKILL after the stop timeout; resolves once it has exited. */
  stop(): Promise<void>;
  /** Stops it if it runs, starts it again with the same port and id, resolves once it is ready. */
  restart(): Promise<void>;
  /** The last lines of its log. */
  tail(lines?: number): string;
}

export interface Cluster {
  /** `http://127.0.0.1:<port>`, through nginx. */
  url: string;
  /** `ws://127.0.0.1:<port>/ws`, through nginx. */
  wsUrl: string;
  nginxPort: number;
  gateways: ClusterNode[];
  workers: ClusterNode[];
  nginx: {
    readonly pid: number | undefined;
    readonly running: boolean;
    readonly configFile: string;
    /** Its error log (the access log is next to it). */
    readonly logFile: string;
    tail(lines?: number): string;
  };
  nats: Service;
  /** nats-server's monitoring endpoint (`/connz`, `/subsz`) when the cluster started one NATS itself. */
  natsMonitorUrl: string | undefined;
  /** The NATS cluster, when it started one (`natsServers` > 1); `nats` then stands for all of it. */
  natsCluster: NatsCluster | undefined;
  /**
   * The Redis: one server, or with a Redis Cluster its first node (the cluster itself is in
   * `redisCluster` when it was started here).
   */
  redis: Service;
  /** The local Redis Cluster, when `redisCluster` started one (to kill its primaries). */
  redisCluster: LocalRedisCluster | undefined;
  runDir: string;
  logDir: string;
  /** Every process started for this cluster that runs now, nginx's workers included. */
  pids(): number[];
  /** Stops everything it started; resolves once all of it has exited. Safe to call twice. */
  stop(): Promise<void>;
}

// ---------------------------------------------------------------------------------------------
// gateways and workers

class Node implements ClusterNode {
  readonly proc: LocalProcess;
  /** Exits are reported only once it was ready (a failed start throws instead) and not asked to exit. */
  #watching = false;

  constructor(
    readonly name: string,
    readonly nodeId: string,
    readonly port: number,
    readonly logFile: string,
    spec: { args: string[]; env: NodeJS.ProcessEnv; detached: boolean },
    private readonly timing: { readyTimeoutMs: number; stopTimeoutMs: number; signal?: AbortSignal },
    private readonly onUnexpectedExit?: ClusterOptions['onUnexpectedExit'],
  ) {
    this.proc = new LocalProcess({
      name,
      command: process.execPath,
      args: spec.args,
      cwd: ROOT,
      env: spec.env,
      logFile,
      detached: spec.detached,
    });
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  get running(): boolean {
    return this.proc.running;
  }

  /** Spawns it and resolves once its /readyz answers 200; fails with its last log lines if it exits first. */
  async start(): Promise<void> {
    const proc = this.proc;
    await proc.start();
    void proc.exited().then((status) => {
      if (this.#watching) this.onUnexpectedExit?.(this.name, status, proc.tail());
      this.#watching = false;
    });
    const url = `http://127.0.0.1:${this.port}/readyz`;
    let last: number | undefined;
    try {
      await waitFor(async () => (last = await httpStatus(url, 1000)) === 200 || undefined, {
        timeoutMs: this.timing.readyTimeoutMs,
        intervalMs: 100,
        what: `${url} to answer 200`,
        proc,
        ...(this.timing.signal ? { signal: this.timing.signal } : {}),
      });
    } catch (err) {
      const state = !proc.running ? proc.describeExit() : last === undefined ? `still running, nothing answers on port ${this.port}` : `still running, /readyz answers ${last}`;
      await proc.stop(0, 'SIGKILL');
      throw new Error(`${this.name} did not become ready (${state}): ${(err as Error).message}\n--- last lines of ${this.logFile}:\n${proc.tail(30)}`);
    }
    this.#watching = true;
  }

  kill(sig: NodeJS.Signals = 'SIGTERM'): void {
    // A kill asked for by the test or the user is not a surprise worth a warning.
    this.#watching = false;
    this.proc.kill(sig);
  }

  async stop(): Promise<void> {
    this.#watching = false;
    await this.proc.stop(this.timing.stopTimeoutMs);
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.start();
  }

  tail(lines = 20): string {
    return this.proc.tail(lines);
  }
}

// ---------------------------------------------------------------------------------------------

/** Variables that name the cluster's own settings; children get theirs from us, not inherited. */
const OWN_VARIABLES = ['PORT', 'HOST', 'NODE_ID', 'METRICS_PORT', 'NATS_URL', 'REDIS_URL', 'REDIS_CLUSTER', 'REDIS_CLUSTER_NODES', 'GATEWAYS', 'WORKERS', 'NATS_CLUSTER'];

function baseEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ALLOW_ANONYMOUS: 'true', TRUSTED_PROXIES: '127.0.0.1' };
  for (const [k, v] of Object.entries({ ...process.env, ...extra })) {
    if (v !== undefined && v !== '' && !OWN_VARIABLES.includes(k)) env[k] = v;
  }
  return env;
}

async function allOrStop<T extends { stop(): Promise<void> }>(starts: Promise<T>[]): Promise<T[]> {
  const results = await Promise.allSettled(starts);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (!failed) return results.map((r) => (r as PromiseFulfilledResult<T>).value);
  await Promise.allSettled(results.map((r) => (r.status === 'fulfilled' ? r.value.stop() : undefined)));
  throw failed.reason;
}

export async function startCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const host = opts.host ?? '127.0.0.1';
  const readyTimeoutMs = opts.readyTimeoutMs ?? 30_000;
  const stopTimeoutMs = opts.stopTimeoutMs ?? 10_000;
  const detached = opts.detached ?? false;
  const signal = opts.signal;
  const nGateways = opts.gateways ?? 2;
  const nWorkers = opts.workers ?? 2;
  if (!Number.isInteger(nGateways) || nGateways < 1) throw new Error(`GATEWAYS must be a whole number ≥ 1, not ${nGateways}`);
  if (!Number.isInteger(nWorkers) || nWorkers < 1) throw new Error(`WORKERS must be a whole number ≥ 1, not ${nWorkers}`);
  const nginxBin = findNginx();

  let nginxPort = opts.port ?? 0;
  if (nginxPort === 0) nginxPort = await freePort(host);
  else if (!(await portAvailable(nginxPort, host))) throw new Error(`port ${nginxPort} on ${host} is in use: stop what runs there or choose another PORT`);

  const runDir = resolve(opts.runDir ?? join(ROOT, '.cluster', String(nginxPort)));
  const logDir = join(runDir, 'logs');
  const prefix = join(runDir, 'nginx');
  // Only what a previous run of this directory left; never the directory itself (it may be given).
  rmSync(logDir, { recursive: true, force: true });
  rmSync(prefix, { recursive: true, force: true });
  mkdirSync(logDir, { recursive: true });
  mkdirSync(join(prefix, 'tmp'), { recursive: true });
  // nginx started by root runs its workers as `nobody`: they must reach their temporary directory.
  for (const dir of [runDir, prefix, join(prefix, 'tmp')]) chmodSync(dir, 0o755);

  const configFile = join(prefix, 'nginx.conf');
  const log = (name: string) => join(logDir, `${name}.log`);
  const local = { detached };
  // Where we (and the printed URL) reach nginx: a wildcard address is reached on loopback.
  const reach = host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : host;
  const display = reach.includes(':') ? `[${reach}]` : reach;
  const url = `http://${display}:${nginxPort}`;

  let nats: Service | undefined;
  let natsCluster: NatsCluster | undefined;
  let redis: Service | undefined;
  let redisCluster: LocalRedisCluster | undefined;
  const gateways: Node[] = [];
  const workers: Node[] = [];
  let nginxWatching = false;
  const nginx = new LocalProcess({
    name: 'nginx',
    command: nginxBin,
    args: ['-p', `${prefix}/`, '-c', configFile, '-e', nginxErrorLog(logDir), '-g', 'daemon off;'],
    // nginx writes its own error log; what it prints on stderr (startup errors) goes there too.
    logFile: nginxErrorLog(logDir),
    detached,
  });

  let stopping: Promise<void> | undefined;
  const stop = () =>
    (stopping ??= (async () => {
      nginxWatching = false;
      // Gateways first: they close their clients with 1001 while nginx still carries the frames.
      await Promise.allSettled(gateways.map((g) => g.stop()));
      await Promise.allSettled([nginx.stop(stopTimeoutMs), ...workers.map((w) => w.stop())]);
      await Promise.allSettled([nats?.stop(), redis?.stop(), redisCluster?.stop()]);
    })());

  try {
    const startRedis = async (): Promise<Service> => {
      if (opts.redisClusterNodes) return externalService(`redis://${opts.redisClusterNodes.split(',')[0]!.trim()}`);
      if (opts.redisCluster) {
        redisCluster = await startLocalRedisCluster({ dir: logDir, logs: true, detached });
        return externalService(`redis://${redisCluster.nodes.split(',')[0]!}`);
      }
      return opts.redisUrl ? externalService(opts.redisUrl) : startLocalRedis({ ...local, logFile: log('redis'), args: opts.redisArgs ?? [] });
    };
    [nats, redis] = await allOrStop<Service>([
      opts.natsUrl
        ? Promise.resolve(externalService(opts.natsUrl))
        : (opts.natsServers ?? 1) > 1
          ? startLocalNatsCluster({ size: opts.natsServers!, detached, logFile: (i) => log(`nats-${i + 1}`) }).then((c) => {
              natsCluster = c;
              return natsClusterService(c);
            })
          : startLocalNats({ ...local, logFile: log('nats'), monitor: true }),
      startRedis(),
    ]);
    const clusterNodes = opts.redisClusterNodes ?? redisCluster?.nodes;
    const redisEnv = clusterNodes ? { REDIS_CLUSTER_NODES: clusterNodes } : { REDIS_URL: redis!.url };
    signal?.throwIfAborted();

    const env = baseEnv(opts.env);
    const timing = { readyTimeoutMs, stopTimeoutMs, ...(signal ? { signal } : {}) };
    const taken = new Set([nginxPort]);
    const node = async (role: 'gateway' | 'worker', i: number): Promise<Node> => {
      const name = `${role}-${i}`;
      const nodeId = `${role === 'gateway' ? 'gw' : 'wk'}${i}-${randomId(3)}`;
      const port = await freePortNotIn(taken);
      const own =
        role === 'gateway'
          ? { PORT: String(port), HOST: '127.0.0.1' }
          : { METRICS_PORT: String(port) };
      return new Node(
        name,
        nodeId,
        port,
        log(name),
        {
          args: ['--import', 'tsx', `bin/${role}.ts`],
          env: { ...env, ...allocatorEnv(env), ...own, NODE_ID: nodeId, NATS_URL: nats!.url, ...redisEnv },
          detached,
        },
        timing,
        opts.onUnexpectedExit,
      );
    };
    for (let i = 1; i <= nWorkers; i++) workers.push(await node('worker', i));
    for (let i = 1; i <= nGateways; i++) gateways.push(await node('gateway', i));
    await Promise.all([...workers, ...gateways].map((n) => n.start()));
    signal?.throwIfAborted();

    writeFileSync(
      configFile,
      renderNginxConfig({ listen: `${host.includes(':') ? `[${host}]` : host}:${nginxPort}`, upstreams: gateways.map((g) => `127.0.0.1:${g.port}`), prefix, logDir }),
    );
    checkNginxConfig(nginxBin, prefix, configFile, nginxErrorLog(logDir));
    await nginx.start();
    void nginx.exited().then((status) => {
      if (nginxWatching) opts.onUnexpectedExit?.('nginx', status, nginx.tail());
    });
    const readyz = `${url}/readyz`;
    try {
      await waitFor(async () => (await httpStatus(readyz, 1000)) === 200 || undefined, {
        timeoutMs: readyTimeoutMs,
        intervalMs: 100,
        what: `${readyz} to answer 200`,
        proc: nginx,
        ...(signal ? { signal } : {}),
      });
    } catch (err) {
      throw new Error(`nginx did not become ready: ${(err as Error).message}\n--- last lines of ${nginxErrorLog(logDir)}:\n${nginx.tail(30)}`);
    }
    nginxWatching = true;
  } catch (err) {
    await stop();
    throw err;
  }

  const running = (pid: number | undefined, isRunning: boolean) => (pid !== undefined && isRunning ? [pid, ...descendants(pid)] : []);
  return {
    url,
    wsUrl: `${url.replace(/^http/, 'ws')}/ws`,
    nginxPort,
    gateways,
    workers,
    nginx: {
      get pid() {
        return nginx.pid;
      },
      get running() {
        return nginx.running;
      },
      configFile,
      logFile: nginxErrorLog(logDir),
      tail: (lines = 20) => nginx.tail(lines),
    },
    nats: nats!,
    natsMonitorUrl: natsCluster ? undefined : (nats as { monitorUrl?: string }).monitorUrl,
    natsCluster,
    redis: redis!,
    redisCluster,
    runDir,
    logDir,
    pids() {
      return [
        ...running(nginx.pid, nginx.running),
        ...[...gateways, ...workers].flatMap((n) => running(n.pid, n.running)),
        ...[...(natsCluster?.servers ?? [nats!]), redis!, ...(redisCluster?.services ?? [])].flatMap((s) => running(s.pid, s.pid !== undefined && alive(s.pid))),
      ];
    },
    stop,
  };
}

/**
 * A NATS cluster as the one `nats` service: its URL lists every server (NATS_URL), and stopping or
 * restarting it does so to all of them. Faults to one server go through `natsCluster.servers`.
 */
function natsClusterService(c: NatsCluster): Service {
  const first = c.servers[0]!;
  return {
    url: c.url,
    host: first.host,
    port: first.port,
    get pid() {
      return first.pid;
    },
    signal: (sig) => c.servers.forEach((s) => s.signal(sig)),
    stop: () => c.stop(),
    async restart() {
      await c.stop();
      await Promise.all(c.servers.map((s) => s.restart()));
      await c.waitForRoutes();
    },
  };
}

// ---------------------------------------------------------------------------------------------
// CLI

function intFromEnv(name: string, fallback: number, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const n = Number(raw.trim());
  if (!/^\d+$/.test(raw.trim()) || n < min || n > max) {
    process.stderr.write(`rt cluster: ${name}=${JSON.stringify(raw)} is invalid: expected a whole number from ${min} to ${max}\n`);
    process.exit(2);
  }
  return n;
}

function describe(c: Cluster): string {
  const rel = (p: string) => {
    const r = relative(process.cwd(), p);
    return r && !r.startsWith('..') ? r : p;
  };
  const service = (s: Service) => `${s.url}${s.pid !== undefined ? `  pid ${s.pid}` : '  (external)'}`;
  const rows = [
    `rt cluster ready: ${c.url}  (${c.wsUrl})`,
    `  nginx      :${c.nginxPort}  pid ${c.nginx.pid}  config ${rel(c.nginx.configFile)}`,
    ...c.gateways.map((g) => `  ${g.name.padEnd(10)} ${g.nodeId}  127.0.0.1:${g.port}  pid ${g.pid}`),
    ...c.workers.map((w) => `  ${w.name.padEnd(10)} ${w.nodeId}  metrics 127.0.0.1:${w.port}  pid ${w.pid}`),
    ...(c.natsCluster
      ? c.natsCluster.servers.map((s, i) => `  ${`nats-${i + 1}`.padEnd(10)} ${service(s)}  monitoring ${s.monitorUrl}`)
      : [`  nats       ${service(c.nats)}${c.natsMonitorUrl ? `  monitoring ${c.natsMonitorUrl}` : ''}`]),
    c.redisCluster ? `  redis      Redis Cluster ${c.redisCluster.nodes}` : `  redis      ${service(c.redis)}`,
    `  logs       ${rel(c.logDir)}/  (tail -f ${rel(c.logDir)}/*.log)`,
    'Ctrl-C stops everything.',
  ];
  return rows.join('\n') + '\n';
}

/** A signal this soon after the first is the same stop (as in bin/run.ts): npm relays the terminal's. */
const REPEAT_WINDOW_MS = 1000;

async function main(): Promise<void> {
  const say = (line: string) => process.stdout.write(`${line}\n`);
  const abort = new AbortController();
  let cluster: Cluster | undefined;
  let firstSignalAt: number | undefined;
  const onSignal = (sig: NodeJS.Signals) => {
    if (firstSignalAt !== undefined) {
      if (Date.now() - firstSignalAt < REPEAT_WINDOW_MS) return;
      // The exit hook of processes.ts sends SIGKILL to every child still running.
      say(`rt cluster: ${sig} again, killing everything now`);
      process.exit(1);
    }
    firstSignalAt = Date.now();
    say(`rt cluster: ${sig}, stopping every process (Ctrl-C again after a second kills them at once)`);
    if (!cluster) return abort.abort(new Error(`interrupted by ${sig}`));
    cluster.stop().then(
      () => {
        say('rt cluster: stopped');
        process.exit(0);
      },
      (err: unknown) => {
        process.stderr.write(`rt cluster: stop failed: ${String(err)}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    cluster = await startCluster({
      port: intFromEnv('PORT', 8080, 0, 65535),
      host: process.env.HOST?.trim() || '127.0.0.1',
      gateways: intFromEnv('GATEWAYS', 2, 1, 64),
      workers: intFromEnv('WORKERS', 2, 1, 64),
      natsServers: intFromEnv('NATS_CLUSTER', 1, 1, 9),
      ...(process.env.NATS_URL ? { natsUrl: process.env.NATS_URL } : {}),
      ...(process.env.REDIS_URL ? { redisUrl: process.env.REDIS_URL } : {}),
      ...(process.env.REDIS_CLUSTER_NODES ? { redisClusterNodes: process.env.REDIS_CLUSTER_NODES } : {}),
      ...(/^(1|true|yes|on)$/i.test(process.env.REDIS_CLUSTER ?? '') ? { redisCluster: true } : {}),
      detached: true,
      signal: abort.signal,
      onUnexpectedExit: (name, status, tail) => {
        const how = status.signal ? `was killed by ${status.signal}` : `exited with code ${status.code}`;
        process.stderr.write(`rt cluster: ${name} ${how}; its last lines:\n${tail}\n`);
      },
    });
  } catch (err) {
    if (abort.signal.aborted) {
      say('rt cluster: stopped before it was ready');
      process.exit(130);
    }
    process.stderr.write(`rt cluster: failed to start: ${(err as Error).message}\n`);
    process.exit(1);
  }
  process.stdout.write(describe(cluster));
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) await main();
