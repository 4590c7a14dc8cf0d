/**
 * Prometheus metrics with prom-client. Every gateway and worker has its own Registry (tests run
 * several in one process). Names follow `rt_<subsystem>_<name>_<unit>`; labels take a small fixed
 * set of values, never a room, user or connection id.
 *
 * Hot-path counts (frames, bytes) are plain numbers incremented where they happen and read by
 * prom-client only when Prometheus scrapes (`collect`), so a frame costs an addition, not a
 * label lookup in a metrics library.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics, type Histogram } from 'prom-client';

/** A registry with these default labels; `processMetrics: false` for a second registry in one process. */
export function createRegistry(labels: Record<string, string> = {}, processMetrics = true): Registry {
  const registry = new Registry();
  registry.setDefaultLabels(labels);
  if (processMetrics) collectDefaultMetrics({ register: registry });
  return registry;
}

/** The text of several registries, for one /metrics (the embedded mode's gateway and worker). */
export async function metricsText(registries: Registry[]): Promise<string> {
  return (await Promise.all(registries.map((r) => r.metrics()))).join('\n');
}

/**
 * Wraps every method of `target` that returns a promise so its duration is observed in
 * `histogram` under `op` = the method name (a fixed set: the port's methods).
 */
export function timed<T extends object>(target: T, histogram: Histogram<'op'>): T {
  return new Proxy(target, {
    get(obj, prop, receiver) {
      const value = Reflect.get(obj, prop, receiver) as unknown;
      if (typeof value !== 'function' || typeof prop !== 'string') return value;
      const child = histogram.labels({ op: prop });
      return (...args: unknown[]) => {
        const end = child.startTimer();
        const out = (value as (...a: unknown[]) => unknown).apply(obj, args);
        if (out instanceof Promise) return out.finally(end);
        end();
        return out;
      };
    },
  });
}

/** Counts by a label value, e.g. frames by type. */
export class Tally {
  readonly counts = new Map<string, number>();
  add(key: string, n = 1): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + n);
  }
  get(key: string): number {
    return this.counts.get(key) ?? 0;
  }
}

/** A counter whose value is read at scrape time from `read()` (a number, or a Tally by `label`). */
export function scrapedCounter(registry: Registry, name: string, help: string, read: () => number | Tally, label?: string): void {
  new Counter({
    name,
    help,
    labelNames: label ? [label] : [],
    registers: [registry],
    collect() {
      const value = read();
      this.reset();
      if (typeof value === 'number') this.inc(value);
      else for (const [k, v] of value.counts) this.inc({ [label!]: k }, v);
    },
  });
}

/** A gauge read at scrape time. */
export function scrapedGauge(registry: Registry, name: string, help: string, read: () => number): void {
  new Gauge({
    name,
    help,
    registers: [registry],
    collect() {
      this.set(read());
    },
  });
}

/** Request latency buckets (seconds): sub-millisecond to the request timeout. */
export const LATENCY_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
