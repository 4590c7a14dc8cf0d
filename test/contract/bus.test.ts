/**
 * The Bus contract (shared/bus.ts), one suite run against every implementation:
 * - MemoryBus: two handles on one MemoryHub (the embedded gateway and worker);
 * - NatsBus: two connections to one real nats-server (a gateway process and a worker process).
 * Plus, for NATS only, what happens while the server is down and after it comes back.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { BusError, type Bus, type BusErrorKind } from '../../shared/bus.ts';
import { MemoryBus, MemoryHub } from '../../shared/bus-memory.ts';
import { NatsBus } from '../../shared/bus-nats.ts';
import { createLogger } from '../../shared/log.ts';
import { until } from '../harness/wait.ts';
import { startNats, startNatsCluster, type NatsCluster, type Service } from '../harness/servers.ts';

/** Two connected buses: `a` plays the gateway, `b` the worker. */
interface Pair {
  a: Bus;
  b: Bus;
}

const quiet = createLogger('bus-test', 'silent');
const te = new TextEncoder();
const td = new TextDecoder();
const bytes = (s: string) => te.encode(s);
const text = (b: Uint8Array) => td.decode(b);

/** Awaits a promise that must reject with a BusError; returns the error and how long it took. */
async function failure(p: Promise<unknown>): Promise<{ err: BusError; ms: number }> {
  const start = performance.now();
  try {
    await p;
  } catch (err) {
    const ms = performance.now() - start;
    expect(err).toBeInstanceOf(BusError);
    return { err: err as BusError, ms };
  }
  throw new Error('expected a BusError, the promise resolved');
}

function expectKind(err: BusError, ...kinds: BusErrorKind[]): void {
  expect(kinds, `unexpected kind '${err.kind}': ${err.message}`).toContain(err.kind);
}

/** A deferred the test resolves; handlers that must not answer yet wait on it. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((r) => (open = r));
  return { wait, open };
}

let subjectSeq = 0;
/** A subject no other test uses, so that tests sharing a server cannot see each other. */
const fresh = (name: string) => `test.${name}.${process.pid}.${++subjectSeq}`;

function busContract(name: string, makePair: () => Promise<Pair>): void {
  describe(`Bus contract: ${name}`, () => {
    let a: Bus;
    let b: Bus;
    const gates: Array<() => void> = [];

    beforeEach(async () => {
      ({ a, b } = await makePair());
    });

    afterEach(async () => {
      for (const open of gates.splice(0)) open();
      await Promise.all([a.close(), b.close()]);
    });

    it('connected is true while up', () => {
      expect(a.connected).toBe(true);
      expect(b.connected).toBe(true);
    });

    it('publish reaches a subscriber on the other connection, with its subject', async () => {
      const subject = fresh('pubsub');
      const got: Array<[string, string]> = [];
      b.subscribe(subject, (data, s) => got.push([text(data), s]));
      await b.flush();
      a.publish(subject, bytes('hello'));
      await until('the message', () => got.length === 1);
      expect(got).toEqual([['hello', subject]]);
    });

    it('a subject ending in .> matches every subject with one or more further tokens, and nothing else', async () => {
      const base = fresh('wild');
      const got: string[] = [];
      const sub = b.subscribe(`${base}.>`, (data, s) => got.push(`${s}=${text(data)}`));
      await b.flush();
      a.publish(`${base}.one`, bytes('1'));
      a.publish(`${base}.two.deep`, bytes('2'));
      a.publish(base, bytes('no: the prefix itself'));
      a.publish(`${base}x.three`, bytes('no: another subject'));
      a.publish(`${base}.four`, bytes('4'));
      await until('three messages', () => got.length >= 3);
      expect(got).toEqual([`${base}.one=1`, `${base}.two.deep=2`, `${base}.four=4`]);
      sub.unsubscribe();
      await b.flush();
      const marker = fresh('marker');
      let seen = false;
      b.subscribe(marker, () => (seen = true));
      await b.flush();
      a.publish(`${base}.five`, bytes('5'));
      a.publish(marker, bytes('m'));
      await until('the marker', () => seen);
      expect(got).toHaveLength(3);
    });

    it('delivery is never synchronous inside publish', async () => {
      const subject = fresh('async');
      let calls = 0;
      a.subscribe(subject, () => calls++);
      await a.flush();
      a.publish(subject, bytes('x'));
      expect(calls).toBe(0);
      await until('the delivery', () => calls === 1);
    });

    it('keeps per-publisher order for 1000 messages', async () => {
      const subject = fresh('order');
      const got: number[] = [];
      b.subscribe(subject, (data) => got.push(new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0)));
      await b.flush();
      for (let i = 0; i < 1000; i++) {
        const d = new Uint8Array(4);
        new DataView(d.buffer).setUint32(0, i);
        a.publish(subject, d);
      }
      await until('1000 messages', () => got.length >= 1000);
      expect(got).toEqual(Array.from({ length: 1000 }, (_, i) => i));
    });

    it('unsubscribe stops delivery', async () => {
      const subject = fresh('unsub');
      const stopped: string[] = [];
      const clock: string[] = [];
      const sub = b.subscribe(subject, (d) => stopped.push(text(d)));
      // A second subscriber on the same subject and connection: once it has seen `end`, the first
      // one would have seen the messages before it too.
      b.subscribe(subject, (d) => clock.push(text(d)));
      await b.flush();
      a.publish(subject, bytes('before'));
      await until('the first message', () => stopped.length === 1 && clock.length === 1);
      sub.unsubscribe();
      for (let i = 0; i < 10; i++) a.publish(subject, bytes(`after${i}`));
      a.publish(subject, bytes('end'));
      await until('the end marker', () => clock.includes('end'));
      expect(clock).toHaveLength(12);
      expect(stopped).toEqual(['before']);
    });

    it('request gets the answer of the handler', async () => {
      const subject = fresh('echo');
      b.serve(subject, 'workers', (d) => bytes(`echo:${text(d)}`));
      await b.flush();
      expect(text(await a.request(subject, bytes('ping'), 2000))).toBe('echo:ping');
      // An async handler too.
      const subject2 = fresh('echo-async');
      b.serve(subject2, 'workers', async (d) => {
        await new Promise((r) => setImmediate(r));
        return bytes(`later:${text(d)}`);
      });
      await b.flush();
      expect(text(await a.request(subject2, bytes('ping'), 2000))).toBe('later:ping');
    });

    it('queue group: each request is handled by exactly one member, and both members get some', async () => {
      const subject = fresh('queue');
      const handled = new Map<string, number>();
      const byMember = { a: 0, b: 0 };
      const member = (who: 'a' | 'b') => (d: Uint8Array) => {
        const id = text(d);
        handled.set(id, (handled.get(id) ?? 0) + 1);
        byMember[who]++;
        return bytes(`${who}:${id}`);
      };
      // One member on each connection, as two worker processes would be.
      a.serve(subject, 'workers', member('a'));
      b.serve(subject, 'workers', member('b'));
      await Promise.all([a.flush(), b.flush()]);
      const n = 200;
      const answers = await Promise.all(Array.from({ length: n }, (_, i) => a.request(subject, bytes(`r${i}`), 5000)));
      answers.forEach((ans, i) => expect(text(ans)).toMatch(new RegExp(`^[ab]:r${i}$`)));
      expect(handled.size).toBe(n);
      expect([...handled.values()].every((c) => c === 1)).toBe(true);
      expect(byMember.a + byMember.b).toBe(n);
      expect(byMember.a).toBeGreaterThan(0);
      expect(byMember.b).toBeGreaterThan(0);
    });

    it('no_responders at once when nothing serves the subject', async () => {
      const { err, ms } = await failure(a.request(fresh('nobody'), bytes('x'), 5000));
      expectKind(err, 'no_responders');
      expect(ms).toBeLessThan(1000);
    });

    it('timeout when the handler does not answer in time', async () => {
      const subject = fresh('slow');
      const g = gate();
      gates.push(g.open);
      b.serve(subject, 'workers', async () => {
        await g.wait;
        return bytes('too late');
      });
      await b.flush();
      const { err, ms } = await failure(a.request(subject, bytes('x'), 200));
      expectKind(err, 'timeout');
      expect(ms).toBeGreaterThanOrEqual(190);
      expect(ms).toBeLessThan(1500);
    });

    it('a handler that throws answers with kind handler, and the bus serves the next request', async () => {
      const subject = fresh('boom');
      b.serve(subject, 'workers', async (d) => {
        const s = text(d);
        if (s === 'throw') throw new Error('kaboom');
        if (s === 'reject') return Promise.reject(new Error('refused'));
        return bytes(`ok:${s}`);
      });
      const sync = fresh('boom-sync');
      b.serve(sync, 'workers', () => {
        throw new Error('sync kaboom');
      });
      await b.flush();
      const thrown = await failure(a.request(subject, bytes('throw'), 2000));
      expectKind(thrown.err, 'handler');
      expect(thrown.err.message).toContain('kaboom');
      expectKind((await failure(a.request(subject, bytes('reject'), 2000))).err, 'handler');
      expectKind((await failure(a.request(sync, bytes('x'), 2000))).err, 'handler');
      expect(text(await a.request(subject, bytes('next'), 2000))).toBe('ok:next');
      expect(b.connected).toBe(true);
    });

    it('an empty answer is an answer, not an error', async () => {
      const subject = fresh('empty');
      b.serve(subject, 'workers', () => new Uint8Array(0));
      await b.flush();
      expect((await a.request(subject, bytes('x'), 2000)).length).toBe(0);
    });

    it('after close: requests reject with kind closed, connected is false', async () => {
      await a.close();
      expect(a.connected).toBe(false);
      expectKind((await failure(a.request(fresh('any'), bytes('x'), 1000))).err, 'closed');
      expect(() => a.subscribe(fresh('any'), () => {})).toThrow(BusError);
      expect(b.connected).toBe(true);
    });

    it('close rejects requests in flight with kind closed', async () => {
      const subject = fresh('inflight');
      const g = gate();
      gates.push(g.open);
      let started = false;
      b.serve(subject, 'workers', async () => {
        started = true;
        await g.wait;
        return bytes('late');
      });
      await b.flush();
      const pending = failure(a.request(subject, bytes('x'), 5000));
      await until('the handler to have the request', () => started);
      await a.close();
      const { err, ms } = await pending;
      expectKind(err, 'closed');
      expect(ms).toBeLessThan(2000);
    });

    it('drain lets a handler in flight answer, then closes', async () => {
      const subject = fresh('drain');
      const g = gate();
      gates.push(g.open);
      let started = false;
      b.serve(subject, 'workers', async (d) => {
        started = true;
        await g.wait;
        return bytes(`drained:${text(d)}`);
      });
      await b.flush();
      const answer = a.request(subject, bytes('x'), 3000);
      await until('the handler to start', () => started);
      let drained = false;
      const draining = b.drain().then(() => (drained = true));
      // The handler is still held: drain must not have finished without its answer.
      await b.flush().catch(() => {});
      expect(drained).toBe(false);
      g.open();
      await draining;
      expect(text(await answer)).toBe('drained:x');
      expect(b.connected).toBe(false);
      expectKind((await failure(a.request(subject, bytes('y'), 1000))).err, 'no_responders');
    });
  });
}

busContract('memory', async () => {
  const hub = new MemoryHub();
  return { a: new MemoryBus(hub, { logger: quiet }), b: new MemoryBus(hub, { logger: quiet }) };
});

describe('MemoryBus specifics', () => {
  it('passes payloads by reference', async () => {
    const bus = new MemoryBus();
    const sent = bytes('same');
    let got: Uint8Array | undefined;
    bus.subscribe('ref', (d) => (got = d));
    bus.publish('ref', sent);
    await bus.flush();
    expect(got).toBe(sent);
    await bus.close();
  });
});

let nats: Service;
beforeAll(async () => {
  nats = await startNats();
});
afterAll(async () => {
  await nats?.stop();
});

busContract('nats', async () => {
  const [a, b] = await Promise.all([
    NatsBus.connect(nats.url, { name: 'test-gateway', logger: quiet }),
    NatsBus.connect(nats.url, { name: 'test-worker', logger: quiet }),
  ]);
  return { a, b };
});

describe('NatsBus while the server is down', () => {
  let server: Service;
  let a: NatsBus;
  let b: NatsBus;

  beforeAll(async () => {
    server = await startNats({ local: true });
  });
  afterAll(async () => {
    await Promise.all([a?.close(), b?.close()]);
    await server?.stop();
  });

  it('reconnect: requests fail fast while the server is down, and work again by themselves after it restarts', async () => {
    a = await NatsBus.connect(server.url, { name: 'test-gateway', logger: quiet });
    b = await NatsBus.connect(server.url, { name: 'test-worker', logger: quiet });
    const subject = fresh('restart');
    b.serve(subject, 'workers', (d) => bytes(`up:${text(d)}`));
    await b.flush();
    expect(text(await a.request(subject, bytes('1'), 2000))).toBe('up:1');

    await server.stop();
    // Whether the request catches the drop before or after nats.js reports it, it settles within
    // its timeout: 'disconnected' at once, or 'timeout'.
    const down = await failure(a.request(subject, bytes('2'), 1000));
    expectKind(down.err, 'disconnected', 'timeout');
    expect(down.ms).toBeLessThan(1500);
    await until('both buses to report the drop', () => !a.connected && !b.connected);
    const fast = await failure(a.request(subject, bytes('3'), 5000));
    expectKind(fast.err, 'disconnected');
    expect(fast.ms).toBeLessThan(100);
    a.publish(subject, bytes('dropped'));
    expect(a.stats.droppedPublishes).toBe(1);

    await server.restart();
    await until(
      'a request to succeed after the restart',
      async () => {
        try {
          return text(await a.request(subject, bytes('4'), 500)) === 'up:4';
        } catch (err) {
          if (err instanceof BusError) return false;
          throw err;
        }
      },
      15_000,
    );
    expect(a.connected).toBe(true);
    expect(b.connected).toBe(true);
    expect(a.stats.disconnects).toBe(1);
  });
});

/**
 * `flush()` says the bus's own server has its subscriptions; the other servers of a cluster learn
 * of them over the routes a moment later (a request from there meanwhile gets no_responders). A
 * server forwards subscriptions over a route in order, so once a marker subscribed after them is
 * reachable from `other`'s connection, they are too: this flush waits for that.
 */
function routeSynced(bus: NatsBus, other: NatsBus): Bus {
  const flush = async () => {
    await bus.flush();
    const marker = fresh('route-sync');
    let seen = false;
    const sub = bus.subscribe(marker, () => (seen = true));
    await bus.flush();
    await until('the other server to know our subscriptions', () => {
      other.publish(marker, bytes('m'));
      return seen;
    });
    sub.unsubscribe();
  };
  return new Proxy(bus, {
    get(target, prop) {
      if (prop === 'flush') return flush;
      const v: unknown = Reflect.get(target, prop, target);
      return typeof v === 'function' ? (v as (...args: unknown[]) => unknown).bind(target) : v;
    },
  });
}

describe('NatsBus on a 3-server NATS cluster', () => {
  let cluster: NatsCluster;
  beforeAll(async () => {
    cluster = await startNatsCluster();
  });
  afterAll(async () => {
    await cluster?.stop();
  });

  // The contract holds across routes: the "gateway" on the first server, the "worker" on the last.
  // `flush()` means "the other server knows too" here (see routeSynced); each bus is the real
  // NatsBus otherwise.
  busContract('nats cluster', async () => {
    const [a, b] = await Promise.all([
      NatsBus.connect(cluster.servers[0]!.url, { name: 'test-gateway', logger: quiet }),
      NatsBus.connect(cluster.servers[2]!.url, { name: 'test-worker', logger: quiet }),
    ]);
    return { a: routeSynced(a, b), b: routeSynced(b, a) };
  });

  it('failover: SIGKILL of the server in use mid-traffic; no request hangs, the bus reconnects to another server, subscriptions and serving go on', async () => {
    // Both given the whole list (NATS_URL); each picks a server.
    const a = await NatsBus.connect(cluster.url, { name: 'failover-gateway', logger: quiet });
    const b = await NatsBus.connect(cluster.url, { name: 'failover-worker', logger: quiet });
    const reconnects: string[] = [];
    a.onReconnect(() => reconnects.push(a.server));
    let victim = -1;
    try {
      const subject = fresh('failover-req');
      const events = fresh('failover-events');
      b.serve(subject, 'workers', (d) => bytes(`ok:${text(d)}`));
      const got: string[] = [];
      a.subscribe(events, (d) => got.push(text(d)));
      await Promise.all([a.flush(), b.flush()]);
      const before = a.server;
      victim = cluster.servers.findIndex((s) => s.url.endsWith(before));
      expect(victim, `a is on ${before}`).toBeGreaterThanOrEqual(0);

      // Traffic: requests every few ms, each must settle (answer or BusError) within its timeout.
      let stop = false;
      const settled: { ok: boolean; ms: number }[] = [];
      const traffic = (async () => {
        for (let i = 0; !stop; i++) {
          const t0 = performance.now();
          const ok = await a.request(subject, bytes(String(i)), 1000).then(
            () => true,
            (err: unknown) => {
              if (!(err instanceof BusError)) throw err;
              return false;
            },
          );
          settled.push({ ok, ms: performance.now() - t0 });
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      await until('some answers before the kill', () => settled.filter((s) => s.ok).length >= 20);
      cluster.servers[victim]!.signal('SIGKILL');
      await until('a to reconnect to another server', () => reconnects.length > 0 && a.connected, 15_000);
      expect(a.server).not.toBe(before);
      const afterKill = settled.length;
      await until('answers again after the failover', () => settled.slice(afterKill).filter((s) => s.ok).length >= 20, 15_000);
      stop = true;
      await traffic;
      // No request hung: each settled within its 1 s timeout (plus scheduling slack).
      expect(Math.max(...settled.map((s) => s.ms))).toBeLessThan(1500);

      // The subscription made before the kill still delivers, from the other connection.
      const before2 = got.length;
      await until(
        'a published event to reach the old subscription',
        () => {
          b.publish(events, bytes('after'));
          return got.length > before2;
        },
        10_000,
      );
      expect(got.at(-1)).toBe('after');
    } finally {
      await Promise.all([a.close(), b.close()]);
      // The cluster whole again for whatever runs after.
      if (victim >= 0) await cluster.servers[victim]!.restart();
    }
  });
});
