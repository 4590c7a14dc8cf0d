/**
 * A local Redis Cluster for the tests, the cluster runner and the benchmark: six redis-server
 * processes on free ports of 127.0.0.1 (three primaries, each with one replica), joined by
 * `redis-cli --cluster create … --cluster-replicas 1`. `--cluster-node-timeout 2000` keeps a
 * failover after a primary's death to a few seconds. Nothing is persisted (no RDB, no AOF): the
 * replicas are the copies that survive a primary.
 *
 * `killPrimaryOf(key)` SIGKILLs the primary that serves a key's slot and waits until its replica
 * has taken over, which is what the failover test and the chaos suite's Redis fault do.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { freePortNotIn, localService, onPath, waitFor, type Service } from './processes.ts';

const run = promisify(execFile);

export interface RedisClusterOptions {
  /** Directory for the nodes' cluster config files (and logs); a fresh temporary one unless given. */
  dir?: string;
  /** Append each node's output to `<dir>/redis-<port>.log`. */
  logs?: boolean;
  detached?: boolean;
  /** Cluster node timeout (ms): how long a primary must be unreachable before its replica takes over. */
  nodeTimeoutMs?: number;
}

export interface LocalRedisCluster {
  /** `host:port,host:port,…` of every node, as REDIS_CLUSTER_NODES takes it. */
  nodes: string;
  services: Service[];
  /** The node (`host:port`) that serves `key`'s slot now, asked of a living node. */
  primaryOf(key: string): Promise<string>;
  /**
   * SIGKILLs the primary of `key`'s slot and resolves once a replica has been promoted in its
   * place and the cluster reports ok again. Returns the dead node's `host:port`.
   */
  killPrimaryOf(key: string, timeoutMs?: number): Promise<string>;
  /** Starts every node that is not running again (a killed primary rejoins as a replica). */
  restartDead(): Promise<void>;
  stop(): Promise<void>;
}

type Node = Service & { start(): Promise<void>; running: boolean };

export async function startLocalRedisCluster(opts: RedisClusterOptions = {}): Promise<LocalRedisCluster> {
  if (!onPath('redis-server') || !onPath('redis-cli')) throw new Error('redis-server and redis-cli not found: install them (Debian: apt-get install redis-server)');
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'rt-redis-cluster-'));
  const owned = opts.dir === undefined;
  const timeout = opts.nodeTimeoutMs ?? 2000;
  const nodes: Node[] = [];
  const stop = async () => {
    await Promise.all(nodes.map((n) => n.stop()));
    if (owned) rmSync(dir, { recursive: true, force: true });
  };
  try {
    // Each node listens on two ports: its client port and its cluster bus port. Redis would take
    // the bus port as client port + 10000, which may be out of range or held by another socket
    // (an ephemeral port of some connection); so both are picked free here, and a node that still
    // loses a port to someone else before it binds is started again on fresh ones.
    const taken = new Set<number>();
    for (let i = 0; i < 6; i++) {
      for (let attempt = 1; ; attempt++) {
        const port = await freePortNotIn(taken);
        const bus = await freePortNotIn(taken);
        const svc = localService(
          {
            scheme: 'redis',
            bin: 'redis-server',
            ...(opts.logs ? { logFile: join(dir, `redis-${port}.log`) } : {}),
            ...(opts.detached ? { detached: true } : {}),
            args: (p) => [
              '--port', String(p), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no',
              '--cluster-enabled', 'yes', '--cluster-port', String(bus), '--cluster-config-file', join(dir, `nodes-${p}.conf`),
              '--cluster-node-timeout', String(timeout), '--dir', dir,
            ],
          },
          port,
        );
        try {
          await svc.start();
        } catch (err) {
          rmSync(join(dir, `nodes-${port}.conf`), { force: true });
          if (attempt < 5) continue;
          throw err;
        }
        nodes.push(Object.assign(svc, { running: true }));
        break;
      }
    }
    const addrs = nodes.map((n) => `${n.host}:${n.port}`);
    await run('redis-cli', ['--cluster', 'create', ...addrs, '--cluster-replicas', '1', '--cluster-yes'], { timeout: 30_000 });
    await waitFor(() => clusterReady(addrs), { timeoutMs: 30_000, intervalMs: 100, what: 'the Redis Cluster to be ok with every replica in sync' });
  } catch (err) {
    await stop();
    throw err;
  }
  const addrs = nodes.map((n) => `${n.host}:${n.port}`);
  const living = () => nodes.filter((n) => n.running).map((n) => `${n.host}:${n.port}`);
  const primaryOf = async (key: string) => {
    const [host, port] = living()[0]!.split(':');
    const r = new Redis({ host, port: Number(port), lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      const slot = Number(await r.call('CLUSTER', 'KEYSLOT', key));
      const slots = (await r.call('CLUSTER', 'SLOTS')) as [number, number, [string, number, ...unknown[]], ...unknown[]][];
      const range = slots.find(([from, to]) => slot >= from && slot <= to);
      if (!range) throw new Error(`no node serves slot ${slot}`);
      return `${range[2][0]}:${range[2][1]}`;
    } finally {
      r.disconnect();
    }
  };
  return {
    nodes: addrs.join(','),
    services: nodes,
    primaryOf,
    async killPrimaryOf(key, timeoutMs = 20_000) {
      const victim = await primaryOf(key);
      const node = nodes.find((n) => `${n.host}:${n.port}` === victim)!;
      node.signal('SIGKILL');
      node.running = false;
      await waitFor(
        async () => {
          const now = await primaryOf(key).catch(() => victim);
          return now !== victim && (await clusterReady(living(), false));
        },
        { timeoutMs, intervalMs: 100, what: `a replica to take over from ${victim}` },
      );
      return victim;
    },
    async restartDead() {
      for (const n of nodes.filter((x) => !x.running)) {
        await n.restart();
        n.running = true;
      }
    },
    stop,
  };
}

/** Every node says cluster_state:ok; with `synced`, every replica's link to its primary is up. */
async function clusterReady(addrs: string[], synced = true): Promise<boolean> {
  for (const addr of addrs) {
    const [host, port] = addr.split(':');
    const r = new Redis({ host, port: Number(port), lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 1000 });
    r.on('error', () => {});
    try {
      const info = String(await r.call('CLUSTER', 'INFO'));
      if (!info.includes('cluster_state:ok')) return false;
      if (synced) {
        const repl = String(await r.call('INFO', 'replication'));
        if (repl.includes('role:slave') && !repl.includes('master_link_status:up')) return false;
        if (repl.includes('role:master') && !/connected_slaves:[1-9]/.test(repl)) return false;
      }
    } catch {
      return false;
    } finally {
      r.disconnect();
    }
  }
  return true;
}
