/**
 * A local NATS cluster: N nats-server processes on 127.0.0.1 joined by routes
 * (`--cluster_name rt --cluster nats://127.0.0.1:<route port> --routes <the others>`), each with its
 * own client port, route port and monitoring port, all free ports. Used by the tests and by
 * `npm run cluster` with NATS_CLUSTER=3.
 *
 * `url` lists every server, comma-separated, as NATS_URL does: a client connects to one of them
 * and, when that one dies, reconnects to another. Each member can be killed and started again on
 * its own ports (`servers[i].signal('SIGKILL')`, `servers[i].restart()`); a restarted member
 * rejoins the cluster through its routes.
 */
import { freePortNotIn, localService, type Service } from './processes.ts';

export interface NatsCluster {
  /** Every server's client URL, comma-separated (a NATS_URL). */
  url: string;
  servers: (Service & { monitorUrl: string })[];
  /** Resolves once every running server has a route to every other running server. */
  waitForRoutes(timeoutMs?: number): Promise<void>;
  /** Index of the server holding the client connection named `name` (from /connz), or -1. */
  serverOf(name: string): Promise<number>;
  stop(): Promise<void>;
}

export interface NatsClusterOptions {
  size?: number;
  /** Log file per server, from its index. */
  logFile?: (i: number) => string;
  detached?: boolean;
}

export async function startLocalNatsCluster(opts: NatsClusterOptions = {}): Promise<NatsCluster> {
  const size = opts.size ?? 3;
  let last: unknown;
  // Ports found free can be taken before a server binds them: a few tries, as startLocalService does.
  for (let attempt = 0; attempt < 3; attempt++) {
    const ports = await distinctFreePorts(size * 3);
    const servers = Array.from({ length: size }, (_, i) => {
      const [client, route, monitor] = [ports[i * 3]!, ports[i * 3 + 1]!, ports[i * 3 + 2]!];
      const routes = Array.from({ length: size }, (_, k) => k)
        .filter((k) => k !== i)
        .map((k) => `nats://127.0.0.1:${ports[k * 3 + 1]}`)
        .join(',');
      const svc = localService(
        {
          scheme: 'nats',
          bin: 'nats-server',
          args: (port) => [
            '-a', '127.0.0.1', '-p', String(port), '-m', String(monitor), '-n', `rt-nats-${i + 1}`,
            '--cluster_name', 'rt', '--cluster', `nats://127.0.0.1:${route}`, '--routes', routes,
          ],
          ...(opts.logFile ? { logFile: opts.logFile(i) } : {}),
          ...(opts.detached ? { detached: true } : {}),
        },
        client,
      );
      return Object.assign(svc, { monitorUrl: `http://127.0.0.1:${monitor}` });
    });
    const started = await Promise.allSettled(servers.map((s) => s.start()));
    const failed = started.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    const cluster = clusterOf(servers);
    if (!failed) {
      try {
        await cluster.waitForRoutes();
        return cluster;
      } catch (err) {
        last = err;
      }
    } else {
      last = failed.reason;
    }
    await cluster.stop();
  }
  throw last;
}

function clusterOf(servers: NatsCluster['servers']): NatsCluster {
  return {
    url: servers.map((s) => s.url).join(','),
    servers,
    async waitForRoutes(timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const up = (await Promise.all(servers.map((s) => monitor<{ num_routes: number }>(s.monitorUrl, '/routez')))).filter((r) => r !== undefined);
        // A route per peer; nats-server 2.10+ may pool several connections per peer, hence `>=`.
        if (up.length > 0 && up.every((r) => r.num_routes >= up.length - 1)) return;
        if (Date.now() > deadline) throw new Error(`NATS cluster routes not formed within ${timeoutMs} ms: ${JSON.stringify(up.map((r) => r.num_routes))}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    async serverOf(name) {
      const conns = await Promise.all(servers.map((s) => monitor<{ connections: { name?: string }[] }>(s.monitorUrl, '/connz?limit=1024')));
      return conns.findIndex((c) => c?.connections.some((x) => x.name === name) ?? false);
    },
    async stop() {
      await Promise.allSettled(servers.map((s) => s.stop()));
    },
  };
}

async function monitor<T>(base: string, path: string): Promise<T | undefined> {
  try {
    const res = await fetch(base + path, { signal: AbortSignal.timeout(1000) });
    return res.ok ? ((await res.json()) as T) : undefined;
  } catch {
    return undefined;
  }
}

async function distinctFreePorts(n: number): Promise<number[]> {
  const taken = new Set<number>();
  while (taken.size < n) await freePortNotIn(taken);
  return [...taken];
}
