/**
 * The real cluster for end-to-end tests: `startCluster` of tools/cluster.ts (nats-server, redis-server,
 * gateways and workers as separate processes, nginx in front) with test defaults:
 * - nginx on a free port, run files in a fresh temporary directory that `stop()` removes;
 * - LOG_LEVEL=warn for the gateways and workers unless LOG_LEVEL is set; DRAIN_MS=300;
 * - NATS_URL / REDIS_URL, when set, are used instead of starting servers (as in servers.ts).
 * Children share our process group, so a Ctrl-C of vitest reaches them too.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster, type Cluster, type ClusterOptions } from '../../tools/cluster.ts';

export type { Cluster, ClusterNode, ClusterOptions } from '../../tools/cluster.ts';

export async function startTestCluster(opts: ClusterOptions = {}): Promise<Cluster> {
  const runDir = mkdtempSync(join(tmpdir(), 'rt-cluster-'));
  let cluster: Cluster;
  try {
    cluster = await startCluster({
      port: 0,
      runDir,
      readyTimeoutMs: 30_000,
      stopTimeoutMs: 10_000,
      ...(process.env.NATS_URL ? { natsUrl: process.env.NATS_URL } : {}),
      ...(process.env.REDIS_URL ? { redisUrl: process.env.REDIS_URL } : {}),
      ...opts,
      // A short drain keeps stops quick; tests of draining pass their own DRAIN_MS.
      env: { LOG_LEVEL: process.env.LOG_LEVEL || 'warn', DRAIN_MS: '300', ...opts.env },
    });
  } catch (err) {
    rmSync(runDir, { recursive: true, force: true });
    throw err;
  }
  const stop = cluster.stop;
  cluster.stop = async () => {
    await stop();
    rmSync(runDir, { recursive: true, force: true });
  };
  return cluster;
}

/** The last lines of every log of the cluster, to print when a test fails. */
export function clusterLogs(cluster: Cluster, lines = 15): string {
  const nodes = [...cluster.gateways, ...cluster.workers].map((n) => `--- ${n.name} (${n.nodeId}, ${n.logFile})\n${n.tail(lines)}`);
  return [...nodes, `--- nginx (${cluster.nginx.logFile})\n${cluster.nginx.tail(lines)}`].join('\n');
}
