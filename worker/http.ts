/**
 * The worker's small HTTP listener on METRICS_PORT: `/healthz` (the process is alive), `/readyz`
 * (bus connected and the store answered its last ping) and `/metrics` (Prometheus).
 */
import { createServer, type Server } from 'node:http';
import type { Bus } from '../shared/bus.ts';
import type { Stores } from '../shared/stores.ts';
import type { Registry } from 'prom-client';

const PING_EVERY_MS = 2000;

export interface WorkerHttp {
  port: number;
  close(): Promise<void>;
  /** Marks the worker as draining: /readyz answers 503 from now on. */
  drain(): void;
}

export async function startWorkerHttp(host: string, port: number, bus: Bus, store: Pick<Stores, 'ping'>, registry: Registry): Promise<WorkerHttp> {
  let storeOk = false;
  let draining = false;
  const check = () =>
    store.ping().then(
      () => {
        storeOk = true;
      },
      () => {
        storeOk = false;
      },
    );
  await check();
  const timer = setInterval(check, PING_EVERY_MS);
  timer.unref();

  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
    };
    if (req.method !== 'GET') return json(405, { error: { code: 'bad_request', message: 'GET only' } });
    if (path === '/healthz') return json(200, { status: 'ok' });
    if (path === '/readyz') {
      const ready = !draining && bus.connected && storeOk;
      return json(ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', bus: bus.connected, store: storeOk, draining });
    }
    if (path === '/metrics') {
      registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
        () => json(500, { error: { code: 'internal', message: 'metrics unavailable' } }),
      );
      return;
    }
    return json(404, { error: { code: 'not_found', message: 'no such route' } });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  return {
    port: typeof address === 'object' && address ? address.port : port,
    drain() {
      draining = true;
    },
    close: () =>
      new Promise((resolve) => {
        clearInterval(timer);
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
