/**
 * The system under test, in the two ways it runs, for suites that must pass in both:
 * - `embedded`: one gateway and one worker in this process, in-process bus, in-memory store;
 * - `distributed`: real nats-server and redis-server (test/harness/servers.ts), two gateways and
 *   two workers (in this process, each with its own NATS and Redis connections, as separate
 *   processes would have).
 */
import { loadConfig, type Config } from '../../shared/config.ts';
import { startAllInOne, startGateway, startWorker, type Running, type StartOptions } from '../../bin/server.ts';
import { startNats, startRedis, type Service } from './servers.ts';

export interface Target {
  name: string;
  /** Base URLs of the gateways, e.g. `ws://127.0.0.1:41234`. */
  gateways: string[];
  gatewayNodes: Running[];
  workers: Running[];
  nats?: Service;
  redis?: Service;
  stop(): Promise<void>;
}

export type TargetEnv = Record<string, string>;

function config(role: 'embedded' | 'gateway' | 'worker', env: TargetEnv): Config {
  // Rate limits are off unless a suite asks for them: suites about other rules send bursts from
  // one address. test/integration/security.test.ts turns them on.
  const limitsOff = { RATE_LIMIT_RPS: '0', CONNECT_RATE_PER_IP: '0', DRAIN_MS: '0' };
  return loadConfig(role, { PORT: '0', HOST: '127.0.0.1', LOG_LEVEL: 'silent', ALLOW_ANONYMOUS: 'true', ...limitsOff, ...env });
}

export async function embeddedTarget(env: TargetEnv = {}, opts: StartOptions = {}): Promise<Target> {
  const node = await startAllInOne(config('embedded', env), opts);
  return {
    name: 'embedded',
    gateways: [`ws://127.0.0.1:${node.port}`],
    gatewayNodes: [node],
    workers: [node],
    stop: () => node.stop(),
  };
}

export interface DistributedOptions {
  gateways?: number;
  workers?: number;
  /** Start local nats-server/redis-server processes (ignoring NATS_URL/REDIS_URL), for tests that stop or restart them. */
  local?: boolean;
}

export async function distributedTarget(env: TargetEnv = {}, opts: DistributedOptions = {}): Promise<Target> {
  const counts = { gateways: opts.gateways ?? 2, workers: opts.workers ?? 2 };
  const [nats, redis] = await Promise.all([startNats({ local: opts.local }), startRedis({ local: opts.local })]);
  const full = { ...env, NATS_URL: nats.url, REDIS_URL: redis.url };
  const workers: Running[] = [];
  const gateways: Running[] = [];
  try {
    for (let i = 0; i < counts.workers; i++) workers.push(await startWorker(config('worker', full)));
    for (let i = 0; i < counts.gateways; i++) gateways.push(await startGateway(config('gateway', { ...full, NODE_ID: `gw${i + 1}` })));
  } catch (err) {
    await Promise.allSettled([...gateways, ...workers].map((r) => r.stop()));
    await Promise.allSettled([nats.stop(), redis.stop()]);
    throw err;
  }
  return {
    name: 'distributed',
    gateways: gateways.map((g) => `ws://127.0.0.1:${g.port}`),
    gatewayNodes: gateways,
    workers,
    nats,
    redis,
    async stop() {
      await Promise.allSettled(gateways.map((g) => g.stop()));
      await Promise.allSettled(workers.map((w) => w.stop()));
      await Promise.allSettled([nats.stop(), redis.stop()]);
    },
  };
}

export const TARGETS: [string, (env?: TargetEnv) => Promise<Target>][] = [
  ['embedded', embeddedTarget],
  ['distributed', distributedTarget],
];
