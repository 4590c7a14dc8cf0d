/**
 * Prometheus metrics with prom-client. Every gateway and worker has its own Registry (tests run
 * several in one process). Names follow `rt_<subsystem>_<name>_<unit>`; labels take a small fixed
 * set of values, never a room, user or connection id.
 *
 * Hot-path counts (frames, bytes) are plain numbers incremented where they happen and read by
 * prom-client only when Prometheus scrapes (`collect`), so a frame costs an addition, not a
 * label lookup in a metrics library.
 */
import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric, type MetricValueWithName } from 'prom-client';

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
 * `histogram` under `op` = the method name (a fixed set: the port's methods). The wrappers are
 * made once, here, not on every call.
 */
export function timed<T extends object>(target: T, histogram: HotHistogram): T {
  const wrapped = Object.create(target) as Record<string, unknown>;
  for (let proto: object | null = target; proto && proto !== Object.prototype; proto = Object.getPrototypeOf(proto) as object | null) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      // Accessors (a store's `size`) are left to the prototype chain, and not called here.
      const value = Object.getOwnPropertyDescriptor(proto, name)?.value as unknown;
      if (name === 'constructor' || typeof value !== 'function' || Object.hasOwn(wrapped, name)) continue;
      const series = histogram.series(name);
      wrapped[name] = (...args: unknown[]) => {
        const started = performance.now();
        const out = (value as (...a: unknown[]) => unknown).apply(target, args);
        if (out instanceof Promise) return out.finally(() => series.observe((performance.now() - started) / 1000));
        series.observe((performance.now() - started) / 1000);
        return out;
      };
    }
  }
  return wrapped as T;
}

/** One label value's counts in a HotHistogram. */
export class HistogramSeries {
  /** Observations per bucket (not cumulative); the last one is +Inf. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;
  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }
  observe(seconds: number): void {
    const b = this.bounds;
    let i = 0;
    while (i < b.length && seconds > b[i]!) i++;
    this.counts[i]!++;
    this.sum += seconds;
    this.count++;
  }
}

/**
 * A Prometheus histogram for hot paths, with one label. Observing is a bucket search and three
 * additions on a series the caller may keep; prom-client reads the series when Prometheus scrapes.
 * (prom-client's own Histogram hashes the labels object on every observation, which was a visible
 * share of a worker's CPU per publish.)
 */
export class HotHistogram {
  private readonly all = new Map<string, HistogramSeries>();
  readonly type = 'histogram';
  readonly aggregator = 'sum';

  constructor(
    registry: Registry,
    readonly name: string,
    readonly help: string,
    private readonly label: string,
    private readonly bounds: readonly number[] = LATENCY_BUCKETS,
  ) {
    registry.registerMetric(this as unknown as Metric);
  }

  /** The series of one label value (made on first use). */
  series(value: string): HistogramSeries {
    let s = this.all.get(value);
    if (!s) this.all.set(value, (s = new HistogramSeries(this.bounds)));
    return s;
  }

  observe(value: string, seconds: number): void {
    this.series(value).observe(seconds);
  }

  /** For prom-client's `Registry.resetMetrics()`: every series back to zero (kept by their holders). */
  reset(): void {
    for (const s of this.all.values()) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }

  /** Read by prom-client's Registry when it renders the metrics. */
  get(): Promise<{ name: string; help: string; type: string; aggregator: string; values: MetricValueWithName<string>[] }> {
    const values: MetricValueWithName<string>[] = [];
    for (const [value, s] of this.all) {
      let cumulative = 0;
      for (let i = 0; i <= this.bounds.length; i++) {
        cumulative += s.counts[i]!;
        values.push({ metricName: `${this.name}_bucket`, labels: { le: i < this.bounds.length ? this.bounds[i]! : '+Inf', [this.label]: value }, value: cumulative });
      }
      values.push({ metricName: `${this.name}_sum`, labels: { [this.label]: value }, value: s.sum });
      values.push({ metricName: `${this.name}_count`, labels: { [this.label]: value }, value: s.count });
    }
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values });
  }
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

/** The Tally key of several label values (scrapedCounter with several labels splits it again). */
export function tallyKey(...values: string[]): string {
  return values.join('\u0000');
}

/**
 * A counter whose value is read at scrape time from `read()`: a number, or a Tally by `label`
 * (several labels: the Tally's keys are made with `tallyKey`, in the labels' order).
 */
export function scrapedCounter(registry: Registry, name: string, help: string, read: () => number | Tally, label?: string | string[]): void {
  const labels = label === undefined ? [] : typeof label === 'string' ? [label] : label;
  new Counter({
    name,
    help,
    labelNames: labels,
    registers: [registry],
    collect() {
      const value = read();
      this.reset();
      if (typeof value === 'number') this.inc(value);
      else {
        for (const [k, v] of value.counts) {
          const parts = labels.length === 1 ? [k] : k.split('\u0000');
          this.inc(Object.fromEntries(labels.map((l, i) => [l, parts[i] ?? ''])), v);
        }
      }
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
