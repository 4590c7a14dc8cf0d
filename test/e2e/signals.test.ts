/**
 * Stopping the processes the way people and service managers do: Ctrl-C in a terminal (SIGINT to
 * the whole foreground process group), SIGTERM to the group (systemd's default), SIGTERM to the
 * `npm` process alone, and a SIGKILL of the cluster runner. Each command runs through `npm run`,
 * exactly as a user types it, in a process group of its own (spawned detached) so that a signal to
 * the group reaches npm, the shell and node, as a terminal's would.
 *
 * `--ignore-scripts` skips only the `pre` scripts (the client build, which `npm test` has just run).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { alive, descendants, freePort, httpStatus, portAvailable, waitFor } from '../../tools/processes.ts';
import { TestClient } from '../harness/client.ts';
import { startNats, startRedis, type Service } from '../harness/servers.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

interface NpmRun {
  proc: ChildProcess;
  pid: number;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const runs: NpmRun[] = [];
/** Processes a test saw (a cluster's children): killed after the test if they outlived it. */
const seen = new Set<number>();
const services: Service[] = [];
const clusterPorts: number[] = [];

afterEach(async () => {
  for (const r of runs.splice(0)) {
    if (r.proc.exitCode === null && r.proc.signalCode === null) {
      for (const p of descendants(r.pid)) seen.add(p);
      try {
        process.kill(-r.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
  }
  for (const p of seen) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      // gone
    }
  }
  seen.clear();
  // The runner's files (`.cluster/<port>/`), named by its nginx port.
  for (const port of clusterPorts.splice(0)) rmSync(join(ROOT, '.cluster', String(port)), { recursive: true, force: true });
  await Promise.allSettled(services.splice(0).map((s) => s.stop()));
});

function npmRun(script: string, env: Record<string, string>): NpmRun {
  const proc = spawn('npm', ['run', '--ignore-scripts', script], {
    cwd: ROOT,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, LOG_LEVEL: 'info', NATS_URL: '', REDIS_URL: '', ...env },
  });
  let out = '';
  proc.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => proc.once('exit', (code, signal) => resolve({ code, signal })));
  const run = { proc, pid: proc.pid!, output: () => out, exited };
  runs.push(run);
  return run;
}

async function ready(run: NpmRun, url: string): Promise<void> {
  await waitFor(async () => (await httpStatus(url, 1000)) === 200 || undefined, {
    timeoutMs: 30_000,
    intervalMs: 100,
    what: `${url} to answer 200; output so far:\n${run.output()}`,
    proc: run.proc,
  });
}

async function exitWithin(run: NpmRun, ms: number) {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still running ${ms} ms after the signal; output:\n${run.output()}`)), ms);
  });
  try {
    return await Promise.race([run.exited, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** The JSON log lines with this `msg`. */
function logged(run: NpmRun, msg: string): Record<string, unknown>[] {
  return run
    .output()
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((l) => l.msg === msg);
}

function expectOneShutdown(run: NpmRun, signal: NodeJS.Signals): void {
  const out = run.output();
  expect(logged(run, 'shutting down'), out).toHaveLength(1);
  expect(logged(run, 'shutting down')[0], out).toMatchObject({ signal });
  expect(logged(run, 'shut down'), out).toHaveLength(1);
  expect(out).not.toMatch(/again, exiting now/);
}

function ppid(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
}

describe('signals', () => {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    it(`npm start: ${signal} to the process group drains (1001), logs the start and end of the shutdown, exits 0`, async () => {
      const port = await freePort();
      const run = npmRun('start', { PORT: String(port), HOST: '127.0.0.1', DRAIN_MS: '300' });
      await ready(run, `http://127.0.0.1:${port}/readyz`);
      const client = await TestClient.connect(`http://127.0.0.1:${port}`, { query: { username: 'ann' } });
      process.kill(-run.pid, signal);
      expect((await client.waitClosed(10_000)).code).toBe(1001);
      expect(await exitWithin(run, 15_000), run.output()).toEqual({ code: 0, signal: null });
      expectOneShutdown(run, signal);
      expect(await portAvailable(port)).toBe(true);
    });
  }

  it('npm run gateway and npm run worker: Ctrl-C drains each (1001 from the gateway) and exits 0', async () => {
    const [nats, redis] = await Promise.all([startNats({ local: true }), startRedis({ local: true })]);
    services.push(nats, redis);
    const [gwPort, wkPort] = [await freePort(), await freePort()];
    const common = { NATS_URL: nats.url, REDIS_URL: redis.url, HOST: '127.0.0.1', DRAIN_MS: '300' };
    const worker = npmRun('worker', { ...common, METRICS_PORT: String(wkPort) });
    const gateway = npmRun('gateway', { ...common, PORT: String(gwPort), ALLOW_ANONYMOUS: 'true' });
    await Promise.all([ready(worker, `http://127.0.0.1:${wkPort}/readyz`), ready(gateway, `http://127.0.0.1:${gwPort}/readyz`)]);
    const client = await TestClient.connect(`http://127.0.0.1:${gwPort}`, { query: { username: 'ann' } });

    process.kill(-gateway.pid, 'SIGINT');
    expect((await client.waitClosed(10_000)).code).toBe(1001);
    expect(await exitWithin(gateway, 15_000), gateway.output()).toEqual({ code: 0, signal: null });
    expectOneShutdown(gateway, 'SIGINT');

    process.kill(-worker.pid, 'SIGINT');
    expect(await exitWithin(worker, 15_000), worker.output()).toEqual({ code: 0, signal: null });
    expectOneShutdown(worker, 'SIGINT');
    expect(await portAvailable(gwPort)).toBe(true);
    expect(await portAvailable(wkPort)).toBe(true);
  });

  it('npm start: SIGTERM to the npm process alone stops the server and frees its port', async () => {
    const port = await freePort();
    const run = npmRun('start', { PORT: String(port), HOST: '127.0.0.1', DRAIN_MS: '300' });
    await ready(run, `http://127.0.0.1:${port}/readyz`);
    const server = descendants(run.pid);
    for (const p of server) seen.add(p);
    process.kill(run.pid, 'SIGTERM');
    await exitWithin(run, 15_000);
    await waitFor(() => server.every((p) => !alive(p)) || undefined, {
      timeoutMs: 15_000,
      what: `the server's processes ${server.join(', ')} to exit; output:\n${run.output()}`,
    });
    await waitFor(() => portAvailable(port).then((free) => free || undefined), { timeoutMs: 5000, what: `port ${port} to be free` });
    expect(logged(run, 'shut down'), run.output()).toHaveLength(1);
  });

  it('a second Ctrl-C a moment into the drain forces the exit', async () => {
    const port = await freePort();
    const run = npmRun('start', { PORT: String(port), HOST: '127.0.0.1', DRAIN_MS: '60000' });
    await ready(run, `http://127.0.0.1:${port}/readyz`);
    const clients = await Promise.all(['ann', 'bob'].map((u) => TestClient.connect(`http://127.0.0.1:${port}`, { query: { username: u } })));
    process.kill(-run.pid, 'SIGINT');
    // The drain has begun (readyz 503), and a second of it has passed: a deliberate second Ctrl-C.
    await waitFor(async () => (await httpStatus(`http://127.0.0.1:${port}/readyz`)) === 503 || undefined, { timeoutMs: 10_000, what: '/readyz 503' });
    const first = Date.now();
    await waitFor(() => Date.now() - first >= 1500 || undefined, { timeoutMs: 2000, what: 'a moment to pass' });
    expect(run.proc.exitCode).toBeNull();
    process.kill(-run.pid, 'SIGINT');
    const status = await exitWithin(run, 10_000);
    expect(status.code, run.output()).not.toBe(0);
    expect(run.output()).toMatch(/SIGINT again, exiting now/);
    for (const c of clients) c.terminate();
  });

  async function startCluster(): Promise<{ run: NpmRun; children: number[]; runner: number }> {
    const run = npmRun('cluster', { PORT: '0', GATEWAYS: '1', WORKERS: '1', DRAIN_MS: '300', LOG_LEVEL: 'warn' });
    await waitFor(() => /rt cluster ready/.test(run.output()) && /Ctrl-C stops everything/.test(run.output()) || undefined, {
      timeoutMs: 60_000,
      intervalMs: 100,
      what: `the cluster to be ready; output so far:\n${run.output()}`,
      proc: run.proc,
    });
    clusterPorts.push(Number(/nginx +:(\d+)/.exec(run.output())?.[1]));
    const listed = [...run.output().matchAll(/\bpid (\d+)/g)].map((m) => Number(m[1]));
    // nats, redis, nginx, a gateway, a worker, and nginx's workers under its master.
    expect(listed.length, run.output()).toBe(5);
    const children = [...listed, ...listed.flatMap((p) => descendants(p))];
    for (const p of children) seen.add(p);
    const runner = ppid(listed[0]!);
    expect(descendants(run.pid)).toContain(runner);
    return { run, children, runner };
  }

  it('npm run cluster: Ctrl-C stops every process it started and exits 0', async () => {
    const { run, children } = await startCluster();
    process.kill(-run.pid, 'SIGINT');
    expect(await exitWithin(run, 30_000), run.output()).toEqual({ code: 0, signal: null });
    expect(children.filter(alive), run.output()).toEqual([]);
    expect(run.output().match(/rt cluster: SIGINT, stopping every process/g), run.output()).toHaveLength(1);
    expect(run.output()).toMatch(/rt cluster: stopped/);
    expect(run.output()).not.toMatch(/again, killing/);
  });

  it('npm run cluster: every process it started exits when the runner is killed with SIGKILL', async () => {
    const { run, children, runner } = await startCluster();
    process.kill(runner, 'SIGKILL');
    await waitFor(() => children.filter(alive).length === 0 || undefined, {
      timeoutMs: 20_000,
      intervalMs: 100,
      what: `the cluster's processes to exit after the runner was killed; still running: ${children.filter(alive).join(', ')}`,
    }).catch((err: Error) => {
      throw new Error(`${err.message}; still running: ${children.filter(alive).join(', ')}`);
    });
    expect(children.filter(alive)).toEqual([]);
    await exitWithin(run, 10_000);
  });
});
