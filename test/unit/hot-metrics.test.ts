/** The hot-path histogram renders exactly as prom-client's own Histogram, and `timed` observes each store call. */
import { Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { HotHistogram, LATENCY_BUCKETS, Tally, scrapedCounter, tallyKey, timed } from '../../shared/metrics.ts';

describe('HotHistogram', () => {
  it("renders the same text as prom-client's Histogram for the same observations", async () => {
    const ours = new Registry();
    const theirs = new Registry();
    ours.setDefaultLabels({ node: 'n1' });
    theirs.setDefaultLabels({ node: 'n1' });
    const hot = new HotHistogram(ours, 'rt_x_seconds', 'X.', 'type');
    const ref = new Histogram({ name: 'rt_x_seconds', help: 'X.', labelNames: ['type'], buckets: LATENCY_BUCKETS, registers: [theirs] });
    const samples: [string, number][] = [['publish', 0.0004], ['publish', 0.0005], ['publish', 0.003], ['join', 12], ['join', 0.25], ['publish', 10]];
    for (const [type, s] of samples) {
      hot.observe(type, s);
      ref.observe({ type }, s);
    }
    // Samples with their labels in one order: the order labels are written in means nothing.
    const samplesOf = (text: string) =>
      text
        .split('\n')
        .filter((l) => l && !l.startsWith('#'))
        .map((l) => {
          const [, name, labels, value] = /^(\w+)\{(.*)\} (\S+)$/.exec(l)!;
          return `${name}{${labels!.split(',').sort().join(',')}} ${Number(value).toPrecision(12)}`;
        })
        .sort();
    expect(samplesOf(await ours.metrics())).toEqual(samplesOf(await theirs.metrics()));
    expect(samplesOf(await ours.metrics())).toContain('rt_x_seconds_bucket{le="+Inf",node="n1",type="join"} 2.00000000000');
    // Registry.resetMetrics() resets it like any prom-client metric.
    ours.resetMetrics();
    theirs.resetMetrics();
    hot.observe('join', 1);
    ref.observe({ type: 'join' }, 1);
    expect(samplesOf(await ours.metrics()).filter((l) => l.includes('join'))).toEqual(samplesOf(await theirs.metrics()).filter((l) => l.includes('join')));
  });
});

describe('scrapedCounter with several labels', () => {
  it('splits the tally keys into their labels', async () => {
    const r = new Registry();
    const t = new Tally();
    scrapedCounter(r, 'rt_y_total', 'Y.', () => t, ['type', 'result']);
    t.add(tallyKey('publish', 'ok'), 3);
    t.add(tallyKey('join', 'forbidden'));
    const text = await r.metrics();
    expect(text).toContain('rt_y_total{type="publish",result="ok"} 3');
    expect(text).toContain('rt_y_total{type="join",result="forbidden"} 1');
  });
});

describe('timed', () => {
  class Store {
    calls = 0;
    async get(n: number): Promise<number> {
      this.calls++;
      return n * 2;
    }
    size(): number {
      return this.calls;
    }
    get doubled(): number {
      return this.calls * 2;
    }
  }

  it('observes every call by method name and keeps the methods working on the store', async () => {
    const r = new Registry();
    const h = new HotHistogram(r, 'rt_ops_seconds', 'Ops.', 'op');
    const store = new Store();
    const t = timed(store, h);
    expect(await t.get(21)).toBe(42);
    expect(await t.get(1)).toBe(2);
    expect(t.size()).toBe(2);
    expect(store.calls).toBe(2);
    expect(h.series('get').count).toBe(2);
    expect(h.series('size').count).toBe(1);
    expect(t.doubled).toBe(4);
    expect(h.series('doubled').count).toBe(0);
  });
});
