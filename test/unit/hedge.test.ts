/**
 * Hedged requests (gateway/hedge.ts) over the in-process bus: a handler that swallows a request
 * plays the worker that died with it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { BusError } from '../../shared/bus.ts';
import { MemoryBus } from '../../shared/bus-memory.ts';
import { Hedger } from '../../gateway/hedge.ts';

const te = new TextEncoder();
const td = new TextDecoder();
const SUBJECT = 'rt.req';

const open: (() => void)[] = [];
afterEach(() => {
  for (const o of open.splice(0)) o();
});

/** A worker that never answers the first `swallow` requests it gets (until the test ends), and answers the rest. */
function worker(bus: MemoryBus, swallow: number): { seen: string[] } {
  const seen: string[] = [];
  bus.serve(SUBJECT, 'workers', async (d) => {
    const text = td.decode(d);
    seen.push(text);
    if (seen.length <= swallow) await new Promise<void>((r) => open.push(r));
    return te.encode(`answer ${seen.length} to ${text}`);
  });
  return { seen };
}

describe('Hedger', () => {
  it('sends a request again after hedgeMs without an answer, and resolves with the first answer', async () => {
    const bus = new MemoryBus();
    const w = worker(bus, 1);
    const h = new Hedger(bus, SUBJECT, 200, 5000);
    const t0 = performance.now();
    const answer = td.decode(await h.request(te.encode('publish c1')));
    const ms = performance.now() - t0;
    expect(answer).toBe('answer 2 to publish c1');
    expect(w.seen).toEqual(['publish c1', 'publish c1']);
    expect(ms).toBeGreaterThanOrEqual(190);
    expect(ms).toBeLessThan(1500);
    expect(h.hedges.get('delay')).toBe(1);
    expect(h.wonByHedge).toBe(1);
    h.close();
    await bus.close();
  });

  it('an answer before hedgeMs sends nothing more', async () => {
    const bus = new MemoryBus();
    const w = worker(bus, 0);
    const h = new Hedger(bus, SUBJECT, 200, 5000);
    expect(td.decode(await h.request(te.encode('x')))).toBe('answer 1 to x');
    // The hedge would be due by now; the worker must still have seen one request.
    await new Promise((r) => setTimeout(r, 400));
    expect(w.seen).toEqual(['x']);
    expect(h.hedges.get('delay')).toBe(0);
    h.close();
    await bus.close();
  });

  it('both attempts share the first deadline: a request nobody answers fails with timeout after timeoutMs, not later', async () => {
    const bus = new MemoryBus();
    const w = worker(bus, 2);
    const h = new Hedger(bus, SUBJECT, 100, 600);
    const t0 = performance.now();
    const err = await h.request(te.encode('y')).then(
      () => undefined,
      (e: unknown) => e,
    );
    const ms = performance.now() - t0;
    expect(err).toBeInstanceOf(BusError);
    expect((err as BusError).kind).toBe('timeout');
    expect(w.seen).toHaveLength(2);
    expect(ms).toBeGreaterThanOrEqual(590);
    expect(ms).toBeLessThan(1500);
    h.close();
    await bus.close();
  });

  it('no responders: sent again at once, and fails with no_responders when there is still nobody', async () => {
    const bus = new MemoryBus();
    const h = new Hedger(bus, SUBJECT, 2000, 5000);
    const t0 = performance.now();
    const err = await h.request(te.encode('z')).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as BusError).kind).toBe('no_responders');
    expect(performance.now() - t0).toBeLessThan(500);
    expect(h.hedges.get('no_responders')).toBe(1);
    h.close();
    await bus.close();
  });

  it('hedgeMs 0: a plain request, never sent twice', async () => {
    const bus = new MemoryBus();
    const w = worker(bus, 1);
    const h = new Hedger(bus, SUBJECT, 0, 300);
    const err = await h.request(te.encode('once')).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as BusError).kind).toBe('timeout');
    expect(w.seen).toEqual(['once']);
    await bus.close();
  });
});
