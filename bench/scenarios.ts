/**
 * The five scenarios of the benchmark, each against one running target. Every figure is measured
 * at the load generator: frames received, counted from their headers (see loadgen/frame.ts).
 *
 * A  fan-out: 1000 members of one room, one of them publishes "as fast as it is absorbed": a window
 *    of W publishes outstanding, refilled as replies come back, and held while 16 sampled members
 *    lag more than a bound behind (so a client slower than the server shows up as a client at 100 %
 *    CPU, not as deliveries dropped by server backpressure). Deliveries/s at all 1000 members (the
 *    publisher's own copy included). Run with W = 64 and with a deep window (1000): uWS topic
 *    publish corks about 32 messages per subscriber per event-loop iteration, and a server that
 *    publishes more than that in one iteration falls off a cliff.
 * B  latency: the same room, one publish every 1/R s at R = 50 and 200 msg/s; each message carries
 *    its scheduled send time (µs) in its content, every member records receive − scheduled
 *    (so a late send counts against the system: no coordinated omission). p50, p99, max, and the
 *    fraction of (sent × members) delivered.
 * C  idle: 10,000 connections (ours with a JWT in `?token=`) opened with bounded concurrency, then
 *    joined to 100 rooms of 100. Connections/s from the first connect to the last welcome; RSS per
 *    connection = growth of the socket-holding processes' RSS / connections, after 2 s idle and
 *    a full garbage collection (bench/agent.mjs), and before that collection.
 * D  many rooms: 1000 rooms × 10 members; one member of each room publishes with a small window
 *    (held while its own echo lags); deliveries/s at all 10,000 members. Members of a room, and the
 *    publishers of consecutive rooms, alternate between the endpoints (gateways, Socket.IO nodes).
 * E  notifications: on D's 10,000 connections (10,000 distinct users), one `POST /api/notifications`
 *    with all user ids; time until 202 (stored) and until every user's `notification` arrived.
 */
import { request } from 'node:http';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { SignJWT } from 'jose';
import { BenchClient, COUNT_CAPTURE, Counters, type Endpoint } from './loadgen/protocols.ts';
import { CpuMeter, Latencies, RoleCpuMeter, forEachLimit, openMany, rssBytes as rssOf, settleFrames, settleServer, sleep, sourceAddress, until, untilStalled } from './loadgen/measure.ts';
import { API_KEY, JWT_SECRET, OURS, collectGarbage, type Target } from './targets.ts';

export interface ScenarioParams {
  /** Members of the room of A and B. */
  members: number;
  window: number;
  deepWindow: number;
  warmupMs: number;
  measureMs: number;
  /** Duration of each B rate. */
  latencyMs: number;
  rates: number[];
  idleConnections: number;
  idleRooms: number;
  rooms: number;
  roomSize: number;
  roomWindow: number;
  /** Concurrent connection attempts while ramping up. */
  connectConcurrency: number;
  /** C: connections opened and closed before the measured ramp, to warm the target's code. */
  warmConnections: number;
  /** Length of `content` of every published message. */
  contentLength: number;
}

export const FULL: ScenarioParams = {
  members: 1000,
  window: 64,
  deepWindow: 1000,
  warmupMs: 1000,
  measureMs: 4000,
  latencyMs: 4000,
  rates: [50, 200],
  idleConnections: 10_000,
  idleRooms: 100,
  rooms: 1000,
  roomSize: 10,
  roomWindow: 8,
  connectConcurrency: 256,
  warmConnections: 2000,
  contentLength: 32,
};

export const QUICK: ScenarioParams = { ...FULL, warmupMs: 500, measureMs: 2000, latencyMs: 2000 };

/** Figures of one scenario run, by metric key (see report.ts). */
export type Figures = Record<string, number>;

/** Profiles the target's processes during one measured phase (run.ts --cpu-prof). */
export interface PhaseProfiler {
  start(): void;
  stop(phase: string): Promise<void>;
}

export interface Context {
  target: Target;
  profiler?: PhaseProfiler;
  params: ScenarioParams;
  /** Unique per run, in user and room names. */
  tag: string;
  log: (line: string) => void;
}

const endpointOf = (t: Target, i: number): Endpoint => t.endpoints[i % t.endpoints.length]!;

function content(p: ScenarioParams, prefix = ''): string {
  return (prefix + '|').padEnd(p.contentLength, 'x');
}

async function connect(ctx: Context, counters: Counters, n: number, query: (i: number) => Record<string, string>, attempts: number) {
  const r = await openMany(
    n,
    ctx.params.connectConcurrency,
    (i) => BenchClient.open(ctx.target.proto, endpointOf(ctx.target, i), counters, { query: query(i), localAddress: sourceAddress(i) }),
    attempts,
  );
  return r;
}

function closeAll(clients: BenchClient[]): void {
  for (const c of clients) c.close();
}

// ---------------------------------------------------------------------------------------------
// A and B: one room of `members`

export async function roomScenarios(ctx: Context, want: { A: boolean; B: boolean }): Promise<Figures> {
  const { target, params: p, tag } = ctx;
  const counters = new Counters();
  const room = `ab-${tag}`;
  const opened = await connect(ctx, counters, p.members, (i) => ({ username: `a${i}-${tag}` }), 3);
  const clients = opened.clients;
  if (opened.failures > 0) throw new Error(`${opened.failures} of ${p.members} connections failed: ${opened.firstError}`);
  try {
    ctx.log(`  ${p.members} connected in ${(opened.elapsedMs / 1000).toFixed(1)} s; joining`);
    const t0 = performance.now();
    await forEachLimit(clients, 100, (c) => c.join(room));
    await settleFrames(counters);
    await settleServer(target.pids);
    ctx.log(`  joined in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    for (const c of clients) c.capture = COUNT_CAPTURE;
    const publisher = clients[0]!;
    // Enough for the id, code and retryAfterMs of an `overloaded` answer.
    publisher.capture = 96;
    publisher.trackPublishes(4096);
    publisher.conn.batchWrites = true;
    const figures: Figures = {};
    if (want.A) {
      Object.assign(figures, prefixed('A', await fanout(ctx, counters, clients, room, p.window)));
      await settleServer(target.pids);
      Object.assign(figures, prefixed('Adeep', await fanout(ctx, counters, clients, room, p.deepWindow)));
      await settleServer(target.pids);
    }
    if (want.B) {
      for (const rate of p.rates) {
        Object.assign(figures, prefixed(`B${rate}`, await latency(ctx, counters, clients, room, rate)));
        await settleServer(target.pids);
      }
    }
    return figures;
  } finally {
    closeAll(clients);
  }
}

function prefixed(prefix: string, f: Figures): Figures {
  return Object.fromEntries(Object.entries(f).map(([k, v]) => [`${prefix}.${k}`, v]));
}

/** One publisher with `window` outstanding publishes into a room whose members are `clients`. */
async function fanout(ctx: Context, counters: Counters, clients: BenchClient[], room: string, window: number): Promise<Figures> {
  const { params: p, target } = ctx;
  const publisher = clients[0]!;
  const members = clients.length;
  const text = content(p, 'A');
  // Members whose lag holds the publisher: spread over the join order (uWS delivers in it).
  const sample = Array.from({ length: Math.min(16, members - 1) }, (_, k) => clients[1 + Math.floor((k * (members - 1)) / 16)]!);
  const base = sample.map((c) => c.messages);
  // Bound on the backlog of any member (≈ window + 1000 frames of ~170 bytes, far below the 1 MiB
  // of server-side backpressure at which uWS would start dropping).
  const lagLimit = window + Math.max(window, 1000);
  let published = 0;
  let outstanding = 0;
  let running = true;
  let held = false;
  const minReceived = () => {
    let min = Infinity;
    for (let k = 0; k < sample.length; k++) {
      const r = sample[k]!.messages - base[k]!;
      if (r < min) min = r;
    }
    return min;
  };
  const pump = () => {
    held = false;
    while (running && outstanding < window) {
      if (published - minReceived() >= lagLimit) {
        held = true;
        return;
      }
      publisher.publish(room, text);
      outstanding++;
      published++;
    }
  };
  publisher.onReply = () => {
    outstanding--;
    pump();
  };
  for (const s of sample) {
    s.onMessage = () => {
      if (held) pump();
    };
  }
  const start = counters.messages;
  const errors0 = counters.errors;
  publisher.conn.socket.cork();
  pump();
  publisher.conn.socket.uncork();
  await sleep(p.warmupMs);
  const m0 = counters.messages;
  const refused0 = refusals(counters);
  const meter = new CpuMeter(target.pids).start();
  const roleMeter = new RoleCpuMeter(target.rolePids).start();
  ctx.profiler?.start();
  await sleep(p.measureMs);
  const m1 = counters.messages;
  const cpu = meter.read();
  const perRole = cpuPerDelivery(roleMeter.read(), m1 - m0);
  const refused = refusalsSince(counters, refused0);
  await ctx.profiler?.stop(`A-window-${window}`);
  running = false;
  await untilStalled(() => outstanding === 0 && counters.messages - start >= published * members, () => counters.messages + counters.replies);
  await settleFrames(counters, 200, 5_000);
  publisher.onReply = undefined;
  for (const s of sample) s.onMessage = undefined;
  const delivered = (counters.messages - start) / (published * members);
  const rate = (m1 - m0) / cpu.seconds;
  ctx.log(
    `  A window ${window}: ${fmtRate(rate)} deliveries/s, ${(delivered * 100).toFixed(2)} % delivered, loadgen ${cpu.loadgen.toFixed(0)} % CPU, server ${cpu.server.toFixed(0)} %, other ${cpu.other.toFixed(0)} %` +
      (counters.errors > errors0 ? `, ${counters.errors - errors0} errors (${publisher.lastError})` : '') +
      describeRefusals(refused) +
      describeRoles(perRole),
  );
  return { rate, delivered, lg: cpu.loadgen, srv: cpu.server, oth: cpu.other, errors: counters.errors - errors0, ...refused, ...perRole };
}

/** One publish every 1/rate s for `latencyMs`; every member records its latency. */
async function latency(ctx: Context, counters: Counters, clients: BenchClient[], room: string, rate: number): Promise<Figures> {
  const { params: p, target } = ctx;
  const publisher = clients[0]!;
  const total = Math.round((rate * p.latencyMs) / 1000);
  const sink = new Latencies(total * clients.length);
  for (const c of clients) {
    c.capture = Infinity;
    c.latency = sink;
  }
  const start = counters.messages;
  const meter = new CpuMeter(target.pids).start();
  // The load generator's own event-loop delay is part of every latency it measures: report it.
  const loopDelay = monitorEventLoopDelay({ resolution: 1 });
  loopDelay.enable();
  ctx.profiler?.start();
  const period = 1000 / rate;
  const t0 = performance.now() + 5;
  let k = 0;
  await new Promise<void>((resolve) => {
    const tick = () => {
      const now = performance.now();
      while (k < total && t0 + k * period <= now) {
        const due = t0 + k * period;
        publisher.publish(room, content(p, String(Math.round(due * 1000))));
        k++;
      }
      if (k >= total) return resolve();
      setTimeout(tick, Math.max(0, t0 + k * period - performance.now()));
    };
    setTimeout(tick, 5);
  });
  const expected = total * clients.length;
  await untilStalled(() => counters.messages - start >= expected, () => counters.messages);
  const cpu = meter.read();
  loopDelay.disable();
  await ctx.profiler?.stop(`B-${rate}`);
  const lgDelayP99 = loopDelay.percentile(99) / 1e6;
  await settleFrames(counters, 200, 3_000);
  for (const c of clients) {
    c.latency = undefined;
    c.capture = COUNT_CAPTURE;
  }
  const s = sink.summary();
  const delivered = (counters.messages - start) / expected;
  ctx.log(
    `  B ${rate} msg/s: p50 ${s.p50.toFixed(2)} ms, p99 ${s.p99.toFixed(2)} ms, max ${s.max.toFixed(1)} ms, ${(delivered * 100).toFixed(2)} % delivered, ` +
      `loadgen ${cpu.loadgen.toFixed(0)} % CPU (event-loop delay p99 ${lgDelayP99.toFixed(1)} ms), server ${cpu.server.toFixed(0)} %, other ${cpu.other.toFixed(0)} %`,
  );
  return { p50: s.p50, p99: s.p99, max: s.max, delivered, lgDelay: lgDelayP99, lg: cpu.loadgen, srv: cpu.server, oth: cpu.other };
}

// ---------------------------------------------------------------------------------------------
// C: idle connections

export async function idleScenario(ctx: Context): Promise<Figures> {
  const { target, params: p, tag } = ctx;
  const n = p.idleConnections;
  const counters = new Counters();
  const ours = OURS.includes(target.name);
  // The query of connection i of a round named `name`: a JWT with subject `<name><i>-<tag>` for
  // ours, signed here, before the clock starts (the load generator's signing is not the server's
  // cost); that name as `?username=` for the others.
  const queries = async (name: string, count: number): Promise<(i: number) => Record<string, string>> => {
    if (!ours) return (i) => ({ username: `${name}${i}-${tag}` });
    const key = new TextEncoder().encode(JWT_SECRET);
    const exp = Math.floor(Date.now() / 1000) + 3600;
    const tokens = await Promise.all(Array.from({ length: count }, (_, i) => new SignJWT({ name: `c${i}` }).setProtectedHeader({ alg: 'HS256' }).setSubject(`${name}${i}-${tag}`).setExpirationTime(exp).sign(key)));
    return (i) => ({ token: tokens[i]! });
  };
  const measured = await queries('c', n);
  // Warm-up: every target is started afresh, and its processes' first connections run cold code
  // (interpreted, then compiled): a cost of each process, not of each connection, that would
  // weigh four times on the cluster's four Node processes. So p.warmConnections connect and
  // leave first, through the same path, and the server settles before anything is measured.
  const warmUp = async (round: string): Promise<void> => {
    const warm = await connect(ctx, new Counters(), p.warmConnections, await queries(round, p.warmConnections), 1);
    closeAll(warm.clients);
    await settleServer(target.pids);
  };
  await warmUp('warm');
  // The baseline after a full GC too: start-up garbage (module compilation) would otherwise be
  // freed by the later collection and hide connections' memory.
  await sleep(500);
  await collectGarbage(target);
  const sum = (pids: number[]) => pids.reduce((s, pid) => s + rssOf(pid), 0);
  const socketRss0 = sum(target.socketPids());
  const allRss0 = sum(target.pids());
  // That collection undoes much of the warm-up: the warm-up's connections are gone, so the maps
  // (object shapes) their requests used die with them, and V8 throws away the optimized code that
  // relied on those maps (`--trace-deopt`: "weak objects", the worker's request path and the
  // gateway's upgrade among them). Each Node process would then compile its hot path again inside
  // the measured ramp. So warm again, after the baseline: what this round leaves behind (such as
  // the embedded store's detached sessions) is counted as the measured connections' memory,
  // which can only overstate it.
  await warmUp('rewarm');
  const meter = new CpuMeter(target.pids).start();
  const roleMeter = new RoleCpuMeter(target.rolePids).start();
  ctx.profiler?.start();
  const opened = await connect(ctx, counters, n, measured, 1);
  const cpu = meter.read();
  const perConnect = cpuPerDelivery(roleMeter.read(), opened.clients.length);
  await ctx.profiler?.stop('C-connect');
  const clients = opened.clients;
  try {
    const connRate = clients.length / (opened.elapsedMs / 1000);
    ctx.log(
      `  C ${clients.length} connected in ${(opened.elapsedMs / 1000).toFixed(2)} s = ${connRate.toFixed(0)}/s${ours ? ' (JWT)' : ''}, loadgen ${cpu.loadgen.toFixed(0)} % CPU, server ${cpu.server.toFixed(0)} %, other ${cpu.other.toFixed(0)} %` +
        (opened.failures ? `, ${opened.failures} failed: ${opened.firstError}` : '') +
        describeRoles(perConnect).replace('per delivery', 'per connection'),
    );
    await forEachLimit(clients, 500, (c, i) => c.join(`c-${tag}-${i % p.idleRooms}`));
    for (const c of clients) c.capture = 0;
    await settleFrames(counters);
    await settleServer(target.pids);
    await sleep(2000);
    const perConn = (bytes: number) => bytes / clients.length / 1024;
    const socketRssNoGc = sum(target.socketPids()) - socketRss0;
    await collectGarbage(target);
    const socketRss = sum(target.socketPids()) - socketRss0;
    const allRss = sum(target.pids()) - allRss0;
    ctx.log(
      `  C RSS +${(socketRss / 2 ** 20).toFixed(1)} MiB in socket-holding processes after a full GC = ${perConn(socketRss).toFixed(2)} KiB/connection ` +
        `(before the GC ${perConn(socketRssNoGc).toFixed(2)} KiB; all processes after GC: ${perConn(allRss).toFixed(2)} KiB)`,
    );
    return {
      'C.connRate': connRate,
      'C.rssPerConn': perConn(socketRss),
      'C.rssNoGcPerConn': perConn(socketRssNoGc),
      'C.rssAllPerConn': perConn(allRss),
      'C.failures': opened.failures,
      'C.lg': cpu.loadgen,
      'C.srv': cpu.server,
      'C.oth': cpu.other,
      ...prefixed('C', perConnect),
    };
  } finally {
    closeAll(clients);
  }
}

// ---------------------------------------------------------------------------------------------
// D and E: 1000 rooms × 10 members, then notifications to all of them

export async function roomsScenarios(ctx: Context, want: { D: boolean; E: boolean }): Promise<Figures> {
  const { target, params: p, tag } = ctx;
  const n = p.rooms * p.roomSize;
  const counters = new Counters();
  const users = Array.from({ length: n }, (_, i) => `d${i}-${tag}`);
  const opened = await connect(ctx, counters, n, (i) => ({ username: users[i]! }), 3);
  const clients = opened.clients;
  if (opened.failures > 0) throw new Error(`${opened.failures} of ${n} connections failed: ${opened.firstError}`);
  try {
    ctx.log(`  ${n} connected in ${(opened.elapsedMs / 1000).toFixed(1)} s; joining ${p.rooms} rooms`);
    // Members of a room are consecutive indexes, so they alternate between gateways (or nodes).
    const roomOf = (i: number) => `d-${tag}-${Math.floor(i / p.roomSize)}`;
    await forEachLimit(clients, 500, (c, i) => c.join(roomOf(i)));
    await settleFrames(counters);
    await settleServer(target.pids);
    for (const c of clients) c.capture = COUNT_CAPTURE;
    const figures: Figures = {};
    if (want.D) {
      Object.assign(figures, prefixed('D', await manyRooms(ctx, counters, clients, roomOf)));
      await settleServer(target.pids);
    }
    if (want.E) Object.assign(figures, prefixed('E', await notifications(ctx, counters, clients, users)));
    return figures;
  } finally {
    closeAll(clients);
  }
}

async function manyRooms(ctx: Context, counters: Counters, clients: BenchClient[], roomOf: (i: number) => string): Promise<Figures> {
  const { params: p, target } = ctx;
  const text = content(p, 'D');
  const window = p.roomWindow;
  const lagLimit = 4 * window;
  let running = true;
  let published = 0;
  const publishers: { stop(): void; idle(): boolean }[] = [];
  for (let r = 0; r * p.roomSize < clients.length; r++) {
    // Member r mod roomSize of room r: consecutive rooms' publishers alternate between gateways.
    const i = r * p.roomSize + (r % p.roomSize);
    const pub = clients[i]!;
    const room = roomOf(i);
    pub.conn.batchWrites = true;
    pub.capture = 96;
    pub.trackPublishes(64);
    const echo0 = pub.messages;
    let mine = 0;
    let outstanding = 0;
    const pump = () => {
      while (running && outstanding < window && mine - (pub.messages - echo0) < lagLimit) {
        pub.publish(room, text);
        outstanding++;
        mine++;
        published++;
      }
    };
    pub.onReply = () => {
      outstanding--;
      pump();
    };
    pub.onMessage = pump;
    publishers.push({
      stop: () => {
        pub.onReply = undefined;
        pub.onMessage = undefined;
      },
      idle: () => outstanding === 0,
    });
    pump();
  }
  const start = counters.messages;
  const errors0 = counters.errors;
  await sleep(p.warmupMs);
  const m0 = counters.messages;
  const refused0 = refusals(counters);
  const meter = new CpuMeter(target.pids).start();
  const roleMeter = new RoleCpuMeter(target.rolePids).start();
  ctx.profiler?.start();
  await sleep(p.measureMs);
  const m1 = counters.messages;
  const cpu = meter.read();
  const perRole = cpuPerDelivery(roleMeter.read(), m1 - m0);
  const refused = refusalsSince(counters, refused0);
  await ctx.profiler?.stop('D');
  running = false;
  await untilStalled(() => publishers.every((x) => x.idle()) && counters.messages - start >= published * p.roomSize, () => counters.messages + counters.replies);
  await settleFrames(counters, 200, 5_000);
  for (const x of publishers) x.stop();
  const rate = (m1 - m0) / cpu.seconds;
  const delivered = (counters.messages - start) / (published * p.roomSize);
  ctx.log(
    `  D ${p.rooms} rooms × ${p.roomSize}: ${fmtRate(rate)} deliveries/s, ${(delivered * 100).toFixed(2)} % delivered, loadgen ${cpu.loadgen.toFixed(0)} % CPU, server ${cpu.server.toFixed(0)} %, other ${cpu.other.toFixed(0)} %` +
      (counters.errors > errors0 ? `, ${counters.errors - errors0} errors (last: ${lastError(clients)})` : '') +
      describeRefusals(refused) +
      describeRoles(perRole),
  );
  return { rate, delivered, lg: cpu.loadgen, srv: cpu.server, oth: cpu.other, errors: counters.errors - errors0, ...refused, ...perRole };
}

/** The refusal counters now, to subtract at the end of a measured phase. */
function refusals(c: Counters): { n: number; ms: number } {
  return { n: c.refused, ms: c.refusedMs };
}

/**
 * Publishes refused `overloaded` during the measured phase, the mean time to the refusal and the
 * longest since the start of the scenario (ms; the maximum is not reset per phase).
 */
function refusalsSince(c: Counters, before: { n: number; ms: number }): Figures {
  const n = c.refused - before.n;
  return { refused: n, refusedMs: n > 0 ? (c.refusedMs - before.ms) / n : 0, refusedMaxMs: c.refusedMaxMs };
}

function describeRefusals(f: Figures): string {
  return f.refused ? `, ${f.refused} refused overloaded (mean ${f.refusedMs!.toFixed(1)} ms to the answer, max ${f.refusedMaxMs!.toFixed(0)} ms)` : '';
}

/** CPU-µs per delivered message of each role, as figures `us.<role>`. */
function cpuPerDelivery(seconds: Record<string, number>, delivered: number): Figures {
  const out: Figures = {};
  if (delivered <= 0) return out;
  for (const [role, s] of Object.entries(seconds)) out[`us.${role}`] = (s * 1e6) / delivered;
  return out;
}

function describeRoles(f: Figures): string {
  const parts = Object.entries(f).map(([k, v]) => `${k.slice(3)} ${v.toFixed(2)}`);
  return parts.length ? `; CPU-µs per delivery: ${parts.join(', ')}` : '';
}

function lastError(clients: BenchClient[]): string {
  for (const c of clients) if (c.lastError) return c.lastError;
  return '?';
}

interface HttpAnswer {
  status: number;
  body: string;
}

function post(at: Endpoint, path: string, body: string, headers: Record<string, string>): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: at.host, port: at.port, path, method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', reject);
      },
    );
    req.setTimeout(60_000, () => req.destroy(new Error('no answer within 60 s')));
    req.on('error', reject);
    req.end(body);
  });
}

/** Thrown when a target does not implement a scenario (reported as n/a, not as a failure). */
export class NotImplemented extends Error {
  override readonly name = 'NotImplemented';
}

async function notifications(ctx: Context, counters: Counters, clients: BenchClient[], users: string[]): Promise<Figures> {
  const { target } = ctx;
  const expected = clients.length;
  const base = counters.notifications;
  const meter = new CpuMeter(target.pids).start();
  const t0 = performance.now();
  let batch = users.length;
  let answers: HttpAnswer[] = [];
  for (;;) {
    const batches: string[][] = [];
    for (let i = 0; i < users.length; i += batch) batches.push(users.slice(i, i + batch));
    answers = await Promise.all(
      batches.map((ids) =>
        post(target.http, '/api/notifications', JSON.stringify({ userIds: ids, kind: 'info', title: 'bench', body: 'bulk notification' }), {
          authorization: `Bearer ${API_KEY}`,
        }),
      ),
    );
    const refused = answers.find((a) => a.status === 400 || a.status === 413);
    // A server that caps the ids per request: send the same in smaller requests, all at once.
    if (refused && batch > 100) {
      ctx.log(`  E: ${refused.status} for ${batch} ids per request (${refused.body.slice(0, 120)}); retrying with ${batch > 1000 ? 1000 : 100}`);
      batch = batch > 1000 ? 1000 : 100;
      continue;
    }
    break;
  }
  const stored = performance.now() - t0;
  if (answers.some((a) => a.status === 404)) throw new NotImplemented('POST /api/notifications answers 404');
  const bad = answers.find((a) => a.status !== 202 && a.status !== 201 && a.status !== 200);
  if (bad) throw new Error(`POST /api/notifications answered ${bad.status}: ${bad.body.slice(0, 200)}`);
  const all = await until(() => counters.notifications - base >= expected, 30_000, 5);
  const deliveredMs = performance.now() - t0;
  const cpu = meter.read();
  const delivered = (counters.notifications - base) / expected;
  ctx.log(
    `  E ${expected} users${batch < users.length ? ` (${Math.ceil(users.length / batch)} requests of ${batch})` : ''}: stored in ${stored.toFixed(0)} ms, ` +
      `${all ? 'all' : `${(delivered * 100).toFixed(1)} %`} delivered in ${deliveredMs.toFixed(0)} ms, loadgen ${cpu.loadgen.toFixed(0)} % CPU`,
  );
  return { store: stored, deliver: all ? deliveredMs : NaN, delivered, batch, lg: cpu.loadgen, srv: cpu.server, oth: cpu.other };
}

export function fmtRate(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (n >= 1e6) return `${(n / 1e6).toFixed(2)} M`;
  if (n >= 1e3) return `${(n / 1e3).toFixed(1)} k`;
  return n.toFixed(0);
}
