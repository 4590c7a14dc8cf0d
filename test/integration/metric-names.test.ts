/**
 * shared/metric-names.ts is what dashboards and `npm run check:deploy` trust: it must name exactly
 * the `rt_*` families a real gateway and worker export, with their types. Embedded mode serves both
 * on one /metrics.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GATEWAY_METRICS, METRICS, WORKER_METRICS } from '../../shared/metric-names.ts';
import { embeddedTarget, type Target } from '../harness/targets.ts';

let target: Target;
let exported: Map<string, string>;

beforeAll(async () => {
  target = await embeddedTarget();
  const text = await (await fetch(`${target.gateways[0]!.replace(/^ws/, 'http')}/metrics`)).text();
  // `# TYPE <family> <type>` is written for every family, even one with no samples yet.
  exported = new Map([...text.matchAll(/^# TYPE (rt_\w+) (\w+)$/gm)].map((m) => [m[1]!, m[2]!]));
});

afterAll(async () => {
  await target?.stop();
});

describe('metric names', () => {
  it('every listed family is exported by the gateway or the worker', () => {
    const missing = Object.keys(METRICS).filter((name) => !exported.has(name));
    expect(missing, `listed in shared/metric-names.ts but not on /metrics: ${missing.join(', ')}`).toEqual([]);
  });

  it('every exported rt_* family is listed', () => {
    const unlisted = [...exported.keys()].filter((name) => !(name in METRICS));
    expect(unlisted, `on /metrics but not listed in shared/metric-names.ts: ${unlisted.join(', ')}`).toEqual([]);
  });

  it('each family has the listed type', () => {
    const wrong = Object.entries(METRICS)
      .filter(([name, type]) => exported.has(name) && exported.get(name) !== type)
      .map(([name, type]) => `${name}: listed ${type}, exported ${exported.get(name)}`);
    expect(wrong).toEqual([]);
  });

  it('gateway families are named rt_gateway_*, worker families rt_worker_* or rt_store_*', () => {
    expect(Object.keys(GATEWAY_METRICS).filter((n) => !n.startsWith('rt_gateway_'))).toEqual([]);
    expect(Object.keys(WORKER_METRICS).filter((n) => !/^rt_(worker|store)_/.test(n))).toEqual([]);
  });
});
