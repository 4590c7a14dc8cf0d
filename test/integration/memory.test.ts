/**
 * Memory comes back: the embedded mode holds nothing for a room that has no members and no
 * history, so a client joining and leaving any number of distinct room names leaves the heap where
 * it was. Measured in this process (the server runs here) after forced garbage collection.
 */
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embeddedTarget, type Target } from '../harness/targets.ts';
import { TestClient, type Frame } from '../harness/client.ts';

const ROOMS = 150_000;
const WARMUP_ROOMS = 5_000;
const MB = 1024 * 1024;

/**
 * The real `gc()`: from `--expose-gc` when the process has it, else switched on here (V8 reads the
 * flag when a context is created). Fails when neither works, and proves that it collects.
 */
async function collector(): Promise<() => void> {
  let gc = (globalThis as { gc?: () => void }).gc;
  if (typeof gc !== 'function') {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as (() => void) | undefined;
  }
  if (typeof gc !== 'function') throw new Error('gc() is unavailable: run node with --expose-gc');
  const ref = new WeakRef({ big: new Array(1000).fill('x') });
  // A WeakRef's target is kept until the current job ends.
  await new Promise((r) => setImmediate(r));
  gc();
  if (ref.deref() !== undefined) throw new Error('gc() ran but did not collect an unreachable object');
  return gc;
}

/** Heap used after full collections, once it has settled. */
async function heapUsed(gc: () => void): Promise<number> {
  for (let i = 0; i < 3; i++) {
    // A turn of the event loop first, so that finished requests' closures are unreachable.
    await new Promise((r) => setImmediate(r));
    gc();
  }
  return process.memoryUsage().heapUsed;
}

/**
 * Joins and leaves `count` distinct rooms, `window` at a time, as a client would; every request
 * must be answered with a reply. Other frames (presence events) are dropped as they come.
 */
function churn(c: TestClient, prefix: string, count: number, window = 256): Promise<void> {
  return new Promise((resolve, reject) => {
    let started = 0;
    let done = 0;
    const send = (f: Record<string, unknown>) => c.ws.send(JSON.stringify(f));
    const next = () => {
      if (started >= count) return;
      const i = started++;
      send({ type: 'join', id: 2 * i, room: `${prefix}${i}`, limit: 0 });
    };
    c.ws.removeAllListeners('message');
    c.ws.on('message', (data) => {
      const f = JSON.parse(data.toString()) as Frame;
      if (typeof f.id !== 'number') return;
      if (f.type !== 'reply') {
        reject(new Error(`request ${f.id} answered ${JSON.stringify(f)}`));
        return;
      }
      const i = f.id >> 1;
      if (f.id % 2 === 0) {
        send({ type: 'leave', id: 2 * i + 1, room: `${prefix}${i}` });
      } else if (++done === count) {
        resolve();
      } else {
        next();
      }
    });
    c.ws.once('close', (code) => reject(new Error(`closed ${code} after ${done} rooms`)));
    for (let k = 0; k < window; k++) next();
  });
}

describe('memory (embedded)', () => {
  let t: Target;
  let client: TestClient;
  beforeAll(async () => {
    t = await embeddedTarget({ MAX_ROOMS_PER_CONNECTION: '0' });
    client = await TestClient.connect(t.gateways[0]!, { query: { username: 'churner' } });
  });
  afterAll(async () => {
    client?.terminate();
    await t?.stop();
  });

  it(`joining and leaving ${ROOMS} distinct rooms leaves the heap within 10 MB of where it was`, { timeout: 300_000 }, async () => {
    const gc = await collector();
    // Warm up first: code compiled, metric children and buffers allocated, as in any running server.
    await churn(client, 'warm-', WARMUP_ROOMS);
    const before = await heapUsed(gc);
    await churn(client, 'churn-', ROOMS);
    const after = await heapUsed(gc);
    const grew = (after - before) / MB;
    console.log(`heap used after GC: ${(before / MB).toFixed(1)} MB before, ${(after / MB).toFixed(1)} MB after ${ROOMS} rooms (${grew >= 0 ? '+' : ''}${grew.toFixed(1)} MB)`);
    expect(grew).toBeLessThan(10);
  });
});
