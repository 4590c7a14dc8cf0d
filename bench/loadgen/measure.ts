/**
 * What the harness measures besides frames: CPU of the load generator itself (process.cpuUsage) and
 * of the server processes (/proc/<pid>/stat), RSS of server processes (/proc/<pid>/status), and the
 * plumbing to open many connections from many source addresses with bounded concurrency.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Counters } from './protocols.ts';

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

let clockTicks: number | undefined;
function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

/** CPU seconds (user + system) a process has used; 0 when it is gone or there is no /proc. */
export function cpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // Fields after "(comm) ": state is [0], utime is field 14 of the whole line, i.e. [11] here.
    return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond();
  } catch {
    return 0;
  }
}

/** Resident set size of a process in bytes; 0 when it is gone. */
export function rssBytes(pid: number): number {
  try {
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

export interface CpuReading {
  /** Load generator CPU, % of one core. */
  loadgen: number;
  /** Server processes together, % of one core. */
  server: number;
  /**
   * Busy time of the machine not charged to the load generator or the servers, % of one core: other
   * processes (other people's test runs), and kernel network work done outside any process. A high
   * figure means the measurement was disturbed. (Softirq work done inside our processes' system
   * calls is charged to them, so /proc/stat's softirq column cannot be subtracted separately.)
   */
  other: number;
  seconds: number;
}

/** Busy jiffies of all CPUs, from the first line of /proc/stat. */
function machineTicks(): { busy: number } {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const [user, nice, system, _idle, _iowait, irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number) as number[];
    return { busy: user! + nice! + system! + irq! + softirq! + steal! };
  } catch {
    return { busy: 0 };
  }
}

/** CPU of the load generator and of `pids` between `start()` and `read()`. */
export class CpuMeter {
  private t0 = 0;
  private lg0 = process.cpuUsage();
  private srv0 = 0;
  private machine0 = { busy: 0 };
  constructor(private readonly pids: () => number[]) {}

  start(): this {
    this.t0 = performance.now();
    this.lg0 = process.cpuUsage();
    this.srv0 = this.serverSeconds();
    this.machine0 = machineTicks();
    return this;
  }

  read(): CpuReading {
    const seconds = (performance.now() - this.t0) / 1000;
    const lg = process.cpuUsage(this.lg0);
    const srv = this.serverSeconds() - this.srv0;
    const m = machineTicks();
    const busy = (m.busy - this.machine0.busy) / ticksPerSecond();
    const lgSeconds = (lg.user + lg.system) / 1e6;
    return {
      loadgen: (lgSeconds / seconds) * 100,
      server: (srv / seconds) * 100,
      other: (Math.max(0, busy - lgSeconds - srv) / seconds) * 100,
      seconds,
    };
  }

  private serverSeconds(): number {
    return this.pids().reduce((sum, pid) => sum + cpuSeconds(pid), 0);
  }
}

/**
 * CPU seconds per role (`gateway`, `worker`, `nats`, `redis`, `embedded`, …) between `start()` and
 * `read()`, summed over the role's processes: divided by the messages delivered meanwhile it gives
 * the CPU each role spends per delivery, the figure the capacity model (docs/scaling.md) uses.
 */
export class RoleCpuMeter {
  private before = new Map<string, number>();
  constructor(private readonly roles: () => Record<string, number[]>) {}

  start(): this {
    this.before = this.sample();
    return this;
  }

  read(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [role, s] of this.sample()) out[role] = Math.max(0, s - (this.before.get(role) ?? 0));
    return out;
  }

  private sample(): Map<string, number> {
    const m = new Map<string, number>();
    for (const [role, pids] of Object.entries(this.roles())) m.set(role, pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0));
    return m;
  }
}

/**
 * Source address of connection `i`: 127.1.x.y spread over `spread` addresses, so that no address
 * needs more than a few hundred ephemeral ports and per-address accounting on the server side sees
 * many clients (as it would in production).
 */
export function sourceAddress(i: number, spread = 200): string {
  const k = i % spread;
  return `127.1.${k >> 8}.${(k & 255) + 1}`;
}

export interface OpenResult<T> {
  clients: T[];
  failures: number;
  /** The most frequent failure messages with their counts, e.g. `closed 1013 … ×3`. */
  firstError: string | undefined;
  elapsedMs: number;
}

/**
 * Runs `open(i)` for i in [0, n) with at most `concurrency` in flight; each gets `attempts` tries.
 * Failed slots are left out of `clients` (their indexes are not kept).
 */
export async function openMany<T>(n: number, concurrency: number, open: (i: number) => Promise<T>, attempts = 1): Promise<OpenResult<T>> {
  const slots: (T | undefined)[] = new Array(n);
  let next = 0;
  let failures = 0;
  const reasons = new Map<string, number>();
  const t0 = performance.now();
  const run = async () => {
    while (next < n) {
      const i = next++;
      for (let a = 1; a <= attempts; a++) {
        try {
          slots[i] = await open(i);
          break;
        } catch (err) {
          if (a === attempts) {
            failures++;
            const why = (err as Error).message.slice(0, 160);
            reasons.set(why, (reasons.get(why) ?? 0) + 1);
          }
        }
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, run));
  const elapsedMs = performance.now() - t0;
  const firstError = reasons.size
    ? [...reasons.entries()]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 3)
        .map(([why, k]) => `${why} ×${k}`)
        .join('; ')
    : undefined;
  return { clients: slots.filter((c): c is T => c !== undefined), failures, firstError, elapsedMs };
}

/** Runs `fn` over `items` with at most `concurrency` in flight; rejects with the first failure. */
export async function forEachLimit<T>(items: readonly T[], concurrency: number, fn: (item: T, i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const run = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, run));
}

/** Waits until no frame arrived for `quietMs` (setup storms such as presence events are over). */
export async function settleFrames(counters: Counters, quietMs = 300, maxMs = 15_000): Promise<void> {
  const deadline = performance.now() + maxMs;
  let last = counters.frames;
  let quietSince = performance.now();
  while (performance.now() < deadline) {
    await sleep(50);
    if (counters.frames !== last) {
      last = counters.frames;
      quietSince = performance.now();
    } else if (performance.now() - quietSince >= quietMs) return;
  }
}

/** Waits until the server processes use less than `pct` % of a core over 250 ms (or `maxMs`). */
export async function settleServer(pids: () => number[], pct = 10, maxMs = 10_000): Promise<void> {
  const deadline = performance.now() + maxMs;
  while (performance.now() < deadline) {
    const m = new CpuMeter(pids).start();
    await sleep(250);
    if (m.read().server < pct) return;
  }
}

/** Waits until `done()` or `maxMs`; true when done. */
export async function until(done: () => boolean, maxMs: number, stepMs = 20): Promise<boolean> {
  const deadline = performance.now() + maxMs;
  while (!done()) {
    if (performance.now() >= deadline) return false;
    await sleep(stepMs);
  }
  return true;
}

/**
 * Waits until `done()`, as long as `progress()` keeps changing: gives up after `stallMs` without
 * progress or `maxMs` in all. True when done. (A slow target draining a deep backlog is waited for;
 * a target that stopped delivering is not.)
 */
export async function untilStalled(done: () => boolean, progress: () => number, stallMs = 3000, maxMs = 60_000): Promise<boolean> {
  const deadline = performance.now() + maxMs;
  let last = progress();
  let since = performance.now();
  while (!done()) {
    const now = performance.now();
    if (now >= deadline) return false;
    const p = progress();
    if (p !== last) {
      last = p;
      since = now;
    } else if (now - since >= stallMs) return false;
    await sleep(20);
  }
  return true;
}

/** Latency samples in ms, kept in a preallocated array; percentiles by sorting once. */
export class Latencies {
  private values: Float64Array;
  n = 0;
  constructor(capacity: number) {
    this.values = new Float64Array(Math.max(16, capacity));
  }
  record(ms: number): void {
    if (this.n === this.values.length) {
      const bigger = new Float64Array(this.values.length * 2);
      bigger.set(this.values);
      this.values = bigger;
    }
    this.values[this.n++] = ms;
  }
  summary(): { p50: number; p99: number; max: number; n: number } {
    const v = this.values.subarray(0, this.n).sort();
    const at = (q: number) => (this.n === 0 ? NaN : v[Math.min(this.n - 1, Math.floor(q * this.n))]!);
    return { p50: at(0.5), p99: at(0.99), max: this.n === 0 ? NaN : v[this.n - 1]!, n: this.n };
  }
}
