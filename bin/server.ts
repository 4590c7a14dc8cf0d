/**
 * Wiring of the three ways to run: all in one process (`npm start`), a gateway, a worker.
 * Exported so tests run the same code in-process.
 */
import { BusError, type Bus } from '../shared/bus.ts';
import { MemoryBus } from '../shared/bus-memory.ts';
import { NatsBus } from '../shared/bus-nats.ts';
import type { Config } from '../shared/config.ts';
import { createLogger, type DestinationStream, type Logger } from '../shared/log.ts';
import type { Stores } from '../shared/stores.ts';
import { memoryStores } from '../shared/stores-memory.ts';
import { redisStores } from '../shared/stores-redis.ts';
import { Gateway } from '../gateway/gateway.ts';
import { Worker } from '../worker/worker.ts';
import { startWorkerHttp, type WorkerHttp } from '../worker/http.ts';
import { defaultNodeId } from './run.ts';

export interface Running {
  port: number;
  gateway?: Gateway;
  worker?: Worker;
  bus: Bus;
  stores?: Stores;
  log: Logger;
  stop(): Promise<void>;
}

async function openBus(cfg: Config, name: string): Promise<Bus> {
  return cfg.natsUrl ? NatsBus.connect(cfg.natsUrl, { name }) : new MemoryBus();
}

function openStores(cfg: Config): Stores {
  const opts = { historyMax: cfg.historyMax, historyTtlMs: cfg.historyTtlMs };
  const durable = { waitReplicas: cfg.redisWaitReplicas, waitTimeoutMs: cfg.redisWaitTimeoutMs };
  if (cfg.redisClusterNodes) return redisStores({ clusterNodes: cfg.redisClusterNodes }, { ...opts, ...durable });
  return cfg.redisUrl ? redisStores(cfg.redisUrl, { ...opts, ...durable }) : memoryStores(opts);
}

/**
 * A gateway and a worker in one process. With no NATS_URL/REDIS_URL this is the embedded mode
 * (in-process bus, in-memory store); with them, the same process joins a cluster.
 */
/** For tests: where the logs go (default stdout). */
export interface StartOptions {
  logDestination?: DestinationStream;
}

export async function startAllInOne(cfg: Config, opts: StartOptions = {}): Promise<Running> {
  const log = createLogger('rt', cfg.logLevel, opts.logDestination);
  const nodeId = cfg.nodeId ?? defaultNodeId();
  const bus = await openBus(cfg, `rt-${nodeId}`);
  const stores = openStores(cfg);
  const worker = new Worker(bus, stores, log.child({ role: 'worker' }), {
    replayMax: cfg.replayMax,
    sessionGraceMs: cfg.sessionGraceMs,
    processMetrics: false,
  });
  worker.start();
  const gateway = new Gateway({ bus, config: cfg, log: log.child({ role: 'gateway', node: nodeId }), nodeId, extraRegistries: [worker.registry] });
  const port = await gateway.listen(cfg.host, cfg.port);
  log.info({ port, node: nodeId, mode: cfg.natsUrl ? 'cluster member' : 'embedded' }, `rt listening on http://localhost:${port} (WebSocket ws://localhost:${port}/ws)`);
  return {
    port,
    gateway,
    worker,
    bus,
    stores,
    log,
    async stop() {
      await gateway.close();
      worker.stop();
      await bus.drain().catch(() => bus.close());
      await stores.close();
    },
  };
}

export async function startGateway(cfg: Config, opts: StartOptions = {}): Promise<Running> {
  const log = createLogger('rt-gateway', cfg.logLevel, opts.logDestination);
  const nodeId = cfg.nodeId ?? defaultNodeId();
  const bus = await openBus(cfg, `rt-gateway-${nodeId}`);
  const gateway = new Gateway({ bus, config: cfg, log: log.child({ node: nodeId }), nodeId });
  const port = await gateway.listen(cfg.host, cfg.port);
  log.info({ port, node: nodeId }, 'gateway listening');
  return {
    port,
    gateway,
    bus,
    log,
    async stop() {
      await gateway.close();
      await bus.drain().catch(() => bus.close());
    },
  };
}

export async function startWorker(cfg: Config, opts: StartOptions = {}): Promise<Running> {
  const log = createLogger('rt-worker', cfg.logLevel, opts.logDestination);
  const bus = await openBus(cfg, 'rt-worker');
  const stores = openStores(cfg);
  const worker = new Worker(bus, stores, log, { replayMax: cfg.replayMax, sessionGraceMs: cfg.sessionGraceMs });
  worker.start();
  await bus.flush();
  let http: WorkerHttp | undefined;
  if (cfg.metricsPort !== undefined) http = await startWorkerHttp(cfg.host, cfg.metricsPort, bus, stores, worker.registry);
  log.info({ worker: worker.id, metricsPort: http?.port }, 'worker serving requests');
  return {
    port: http?.port ?? 0,
    worker,
    bus,
    stores,
    log,
    async stop() {
      http?.drain();
      worker.stop();
      // Drain lets requests in flight finish and answer before the connection closes.
      await bus.drain().catch((err: unknown) => {
        if (!(err instanceof BusError)) throw err;
      });
      await stores.close();
      await http?.close();
    },
  };
}
