/**
 * Starts real NATS and Redis servers for tests, each on its own free port, and stops them.
 *
 * Where a server comes from, in order:
 * 1. `NATS_URL` / `REDIS_URL` when set: used as they are, never stopped (test files then run one
 *    at a time, see vitest.config.ts, because they share the server);
 * 2. Testcontainers, when a Docker engine answers;
 * 3. `nats-server` / `redis-server` from PATH;
 * 4. otherwise the test fails with a message naming the Debian packages to install.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, connect } from 'node:net';

export interface Service {
  url: string;
  host: string;
  port: number;
  /** PID of the server process when this harness started it locally. */
  pid?: number;
  /** Sends a signal to the server process (local binaries only). */
  signal(sig: NodeJS.Signals): void;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port after a stop or a kill (local binaries only). */
  restart(): Promise<void>;
}

export async function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, host, () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once `host:port` accepts TCP connections; rejects after `timeoutMs`. */
export async function waitForPort(host: string, port: number, timeoutMs = 10_000, proc?: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc && proc.exitCode !== null) throw new Error(`process exited with ${proc.exitCode} before listening on ${port}`);
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect({ host, port });
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listening on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

function onPath(bin: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${bin}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

function exited(proc: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
    proc.once('exit', () => resolve());
  });
}

/** A local server process on a fixed port that can be stopped, killed and started again. */
function localService(scheme: string, bin: string, argsFor: (port: number) => string[], port: number): Service & { start(): Promise<void> } {
  let proc: ChildProcess | undefined;
  const host = '127.0.0.1';
  let stderr = '';
  const svc = {
    url: `${scheme}://${host}:${port}`,
    host,
    port,
    pid: undefined as number | undefined,
    async start() {
      stderr = '';
      const p = spawn(bin, argsFor(port), { stdio: ['ignore', 'ignore', 'pipe'] });
      p.stderr?.on('data', (d: Buffer) => {
        if (stderr.length < 4000) stderr += d.toString();
      });
      children.add(p);
      p.once('exit', () => children.delete(p));
      proc = p;
      svc.pid = p.pid;
      try {
        await waitForPort(host, port, 10_000, p);
      } catch (err) {
        p.kill('SIGKILL');
        throw new Error(`${bin} did not start on port ${port}: ${(err as Error).message}\n${stderr}`);
      }
    },
    signal(sig: NodeJS.Signals) {
      proc?.kill(sig);
    },
    async stop() {
      const p = proc;
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      p.kill('SIGTERM');
      const timer = setTimeout(() => p.kill('SIGKILL'), 5000);
      await exited(p);
      clearTimeout(timer);
    },
    async restart() {
      await svc.stop();
      await svc.start();
    },
  };
  return svc;
}

async function startLocal(scheme: string, bin: string, argsFor: (port: number) => string[]): Promise<Service> {
  // A port found free can be taken before the server binds it: try a few.
  let last: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const svc = localService(scheme, bin, argsFor, await freePort());
    try {
      await svc.start();
      return svc;
    } catch (err) {
      last = err;
    }
  }
  throw last;
}

async function dockerAvailable(): Promise<boolean> {
  if (!process.env.DOCKER_HOST && !existsSync('/var/run/docker.sock')) return false;
  try {
    const { getContainerRuntimeClient } = await import('testcontainers');
    await getContainerRuntimeClient();
    return true;
  } catch {
    return false;
  }
}

async function startContainer(image: string, port: number, scheme: string, cmd: string[] = []): Promise<Service> {
  const { GenericContainer, Wait } = await import('testcontainers');
  let c = new GenericContainer(image).withExposedPorts(port).withWaitStrategy(Wait.forListeningPorts());
  if (cmd.length) c = c.withCommand(cmd);
  const started = await c.start();
  const host = started.getHost();
  const mapped = started.getMappedPort(port);
  return {
    url: `${scheme}://${host}:${mapped}`,
    host,
    port: mapped,
    signal() {
      throw new Error('signals are not supported for containers');
    },
    async stop() {
      await started.stop();
    },
    async restart() {
      await started.restart();
    },
  };
}

function external(url: string): Service {
  const u = new URL(url.split(',')[0]!);
  return {
    url,
    host: u.hostname,
    port: Number(u.port),
    signal() {
      throw new Error(`cannot signal the external server ${url}`);
    },
    async stop() {},
    async restart() {
      throw new Error(`cannot restart the external server ${url}`);
    },
  };
}

export interface RedisOptions {
  /** Extra redis-server arguments, e.g. ['--appendonly', 'yes', '--dir', dir]. */
  args?: string[];
  /** Always start a local process (ignores REDIS_URL), for tests that kill or restart it. */
  local?: boolean;
}

export async function startRedis(opts: RedisOptions = {}): Promise<Service> {
  if (process.env.REDIS_URL && !opts.local) return external(process.env.REDIS_URL);
  if (!opts.local && (await dockerAvailable())) return startContainer('redis:7-alpine', 6379, 'redis');
  if (!onPath('redis-server')) throw new Error('redis-server not found: install it (Debian: apt-get install redis-server) or set REDIS_URL');
  return startLocal('redis', 'redis-server', (port) => [
    '--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', ...(opts.args ?? []),
  ]);
}

export interface NatsOptions {
  /** Always start a local process (ignores NATS_URL), for tests that kill or restart it. */
  local?: boolean;
}

export async function startNats(opts: NatsOptions = {}): Promise<Service> {
  if (process.env.NATS_URL && !opts.local) return external(process.env.NATS_URL);
  if (!opts.local && (await dockerAvailable())) return startContainer('nats:2-alpine', 4222, 'nats');
  if (!onPath('nats-server')) throw new Error('nats-server not found: install it (Debian: apt-get install nats-server) or set NATS_URL');
  return startLocal('nats', 'nats-server', (port) => ['-a', '127.0.0.1', '-p', String(port)]);
}
