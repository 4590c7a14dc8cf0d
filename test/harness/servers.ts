/**
 * Starts real NATS and Redis servers for tests, each on its own free port, and stops them.
 *
 * Where a server comes from, in order:
 * 1. `NATS_URL` / `REDIS_URL` when set: used as they are, never stopped (test files then run one
 *    at a time, see vitest.config.ts, because they share the server);
 * 2. Testcontainers, when a Docker engine answers;
 * 3. `nats-server` / `redis-server` from PATH;
 * 4. otherwise the test fails with a message naming the Debian packages to install.
 */
import { existsSync } from 'node:fs';
import { externalService, freePort, startLocalNats, startLocalRedis, waitForPort, type Service } from '../../tools/processes.ts';
import { startLocalRedisCluster, type LocalRedisCluster } from '../../tools/redis-cluster.ts';
import { startLocalNatsCluster, type NatsCluster } from '../../tools/nats-cluster.ts';

export { freePort, waitForPort, type Service, type LocalRedisCluster, type NatsCluster };

/**
 * A Redis Cluster of six local redis-server processes (3 primaries, 3 replicas) on free ports, in a
 * temporary directory removed by `stop()`. Always local: tests kill its primaries.
 */
export async function startRedisCluster(): Promise<LocalRedisCluster> {
  return startLocalRedisCluster();
}

async function dockerAvailable(): Promise<boolean> {
  if (!process.env.DOCKER_HOST && !existsSync('/var/run/docker.sock')) return false;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

async function startContainer(image: string, port: number, scheme: string, cmd: string[] = []): Promise<Service> {
  const { GenericContainer, Wait } = await import('testcontainers');
  let c = new GenericContainer(image).withExposedPorts(port).withWaitStrategy(Wait.forListeningPorts());
  if (cmd.length) c = c.withCommand(cmd);
  const started = await c.start();
  const host = started.getHost();
  const mapped = started.getMappedPort(port);
  return {
    url: `${scheme}://${host}:${mapped}`,
    host,
    port: mapped,
    signal() {
      throw new Error('signals are not supported for containers');
    },
    async stop() {
      await started.stop();
    },
    async restart() {
      await started.restart();
    },
  };
}

export interface RedisOptions {
  /** Extra redis-server arguments, e.g. ['--appendonly', 'yes', '--dir', dir]. */
  args?: string[];
  /** Always start a local process (ignores REDIS_URL), for tests that kill or restart it. */
  local?: boolean;
}

export async function startRedis(opts: RedisOptions = {}): Promise<Service> {
  if (process.env.REDIS_URL && !opts.local) return externalService(process.env.REDIS_URL);
  if (!opts.local && (await dockerAvailable())) return startContainer('redis:7-alpine', 6379, 'redis');
  return startLocalRedis({ args: opts.args ?? [] });
}

export interface NatsOptions {
  /** Always start a local process (ignores NATS_URL), for tests that kill or restart it. */
  local?: boolean;
}

export async function startNats(opts: NatsOptions = {}): Promise<Service> {
  if (process.env.NATS_URL && !opts.local) return externalService(process.env.NATS_URL);
  if (!opts.local && (await dockerAvailable())) return startContainer('nats:2-alpine', 4222, 'nats');
  return startLocalNats();
}

/**
 * A 3-server NATS cluster (routes) of local nats-server processes, always local: the tests that
 * use it kill its servers. `url` lists all three, as NATS_URL would.
 */
export async function startNatsCluster(size = 3): Promise<NatsCluster> {
  return startLocalNatsCluster({ size });
}
