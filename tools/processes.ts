/**
 * Local processes, for the cluster runner (`tools/cluster.ts`) and the test harness: free ports, waiting
 * for a port or an HTTP status, spawning a child with its output in a log file, and stopping it for
 * sure. No test code in here: the cluster runner and the benchmark use it as well as the tests.
 *
 * No orphans: `stop()` sends SIGTERM, then SIGKILL to the process and every descendant it still has
 * (an nginx master killed alone would leave its workers serving). When this process exits, children
 * still running are killed with SIGKILL. A SIGKILL of this process cannot be caught, so on Linux every
 * child is started through `setpriv --pdeathsig SIGTERM` (util-linux): the kernel sends it SIGTERM
 * when we die, however we die, and each stops as on any SIGTERM (nginx takes its workers with it, a
 * gateway drains). Elsewhere (macOS), children outlive a SIGKILL of this process.
 */
import { spawn, spawnSync, execFileSync, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, readdirSync, readSync, fstatSync } from 'node:fs';
import { request } from 'node:http';
import { createServer, connect } from 'node:net';
import { isMainThread } from 'node:worker_threads';

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

/** A free port of 127.0.0.1 that is not in `taken`, added to it: ports for several servers at once. */
export async function freePortNotIn(taken: Set<number>): Promise<number> {
  let port = await freePort();
  while (taken.has(port)) port = await freePort();
  taken.add(port);
  return port;
}

/** True when nothing listens on `host:port` and we may bind it. */
export async function portAvailable(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, host, () => srv.close(() => resolve(true)));
  });
}

/** What `waitForPort` and `waitFor` watch to give up early: a child that has exited. */
interface Exitable {
  exitCode: number | null;
  signalCode?: NodeJS.Signals | null;
}

function hasExited(p: Exitable): boolean {
  return p.exitCode !== null || (p.signalCode ?? null) !== null;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Resolves once `host:port` accepts TCP connections; rejects after `timeoutMs` or when `proc` exits. */
export async function waitForPort(host: string, port: number, timeoutMs = 10_000, proc?: Exitable): Promise<void> {
  await waitFor(() => tcpConnects(host, port), {
    timeoutMs,
    what: `something listening on ${host}:${port}`,
    ...(proc ? { proc } : {}),
  });
}

function tcpConnects(host: string, port: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const s = connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

export interface WaitOptions {
  timeoutMs: number;
  /** Poll interval, 50 ms unless given. */
  intervalMs?: number;
  /** Named in the timeout error: "timed out after 5000 ms waiting for <what>". */
  what: string;
  /** Give up at once when this process exits. */
  proc?: Exitable;
  /** Give up at once when this is aborted. */
  signal?: AbortSignal;
}

/**
 * Polls `probe` until it returns something other than false/undefined, and returns that. A condition
 * with a deadline, never a sleep standing in for one.
 */
export async function waitFor<T>(probe: () => Promise<T | false | undefined> | T | false | undefined, opts: WaitOptions): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    opts.signal?.throwIfAborted();
    if (opts.proc && hasExited(opts.proc)) throw new Error(`process exited (${describeExit(opts.proc)}) while waiting for ${opts.what}`);
    const v = await probe();
    if (v !== false && v !== undefined) return v;
    if (Date.now() >= deadline) throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${opts.what}`);
    await sleep(opts.intervalMs ?? 50);
  }
}

/** Status code of `GET url`, or undefined when nothing answers within `timeoutMs`. */
export function httpStatus(url: string, timeoutMs = 2000): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = request(url, { method: 'GET', agent: false, timeout: timeoutMs }, (res) => {
      res.resume();
      resolve(res.statusCode);
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(undefined));
    req.end();
  });
}

export function onPath(bin: string): boolean {
  try {
    execFileSync('sh', ['-c', 'command -v "$1"', 'sh', bin], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

function describeExit(p: Exitable): string {
  return p.signalCode ? `killed by ${p.signalCode}` : `exit code ${p.exitCode}`;
}

/** PIDs of every living descendant of `pid` (Linux /proc; empty elsewhere). */
export function descendants(pid: number): number[] {
  const out: number[] = [];
  const visit = (p: number) => {
    let tids: string[];
    try {
      tids = readdirSync(`/proc/${p}/task`);
    } catch {
      return;
    }
    for (const tid of tids) {
      let children: string;
      try {
        children = readFileSync(`/proc/${p}/task/${tid}/children`, 'utf8');
      } catch {
        continue;
      }
      for (const c of children.split(/\s+/)) {
        const n = Number(c);
        if (c && Number.isInteger(n) && !out.includes(n)) {
          out.push(n);
          visit(n);
        }
      }
    }
  };
  visit(pid);
  return out;
}

/**
 * True while a process with this pid exists and is not a zombie (an exited process that its new
 * parent has not reaped yet; in a container without an init that can take forever).
 */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    // /proc/<pid>/stat: "pid (comm) S ...", comm may contain spaces and parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return true; // no /proc: kill(pid, 0) is all we know
  }
}

function killQuietly(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

let setpriv: string | null | undefined;

/**
 * `setpriv` when it can set a parent-death signal here. Only from a main thread: the kernel sends
 * the signal when the *thread* that started the child ends, and a worker thread may end long
 * before the process.
 */
function parentDeathWrapper(): string | undefined {
  if (setpriv === undefined) {
    setpriv = null;
    if (process.platform === 'linux' && isMainThread) {
      const r = spawnSync('setpriv', ['--pdeathsig', 'TERM', '--', 'true'], { stdio: 'ignore' });
      if (r.status === 0) setpriv = 'setpriv';
    }
  }
  return setpriv ?? undefined;
}

/** The command and arguments to spawn so that the child gets SIGTERM when this process dies. */
function diesWithUs(command: string, args: readonly string[]): [string, readonly string[]] {
  const wrapper = parentDeathWrapper();
  // A missing command is left to spawn, whose ENOENT says so better than setpriv's exit code 127.
  if (!wrapper || !(command.includes('/') ? existsSync(command) : onPath(command))) return [command, args];
  return [wrapper, ['--pdeathsig', 'TERM', '--', command, ...args]];
}

export interface ProcessSpec {
  /** Short name for messages and logs, e.g. `gateway-1`. */
  name: string;
  command: string;
  args: readonly string[];
  cwd?: string;
  /** The complete environment of the child (not merged with ours). Ours when not given. */
  env?: NodeJS.ProcessEnv;
  /** stdout and stderr are appended to this file. Without it the last output is kept in memory. */
  logFile?: string;
  /**
   * Own process group: a Ctrl-C in the terminal reaches only the owner, which then stops its
   * children in its own order. Without it the child shares the terminal's signals, which is what a
   * test run wants (a Ctrl-C of vitest must not leave servers behind).
   */
  detached?: boolean;
}

export interface ExitStatus {
  code: number | null;
  signal: NodeJS.Signals | null;
}

const living = new Set<LocalProcess>();
process.once('exit', () => {
  for (const p of living) p.killTree('SIGKILL');
});

const TAIL_BYTES = 16_384;

/**
 * One child process that can be started, signalled, stopped and started again. Its output goes to
 * `spec.logFile` (appended, so a restart keeps the earlier run's lines) or to a bounded buffer;
 * `tail()` returns the last lines for error messages.
 */
export class LocalProcess {
  #child: ChildProcess | undefined;
  #exited: Promise<ExitStatus> = Promise.resolve({ code: null, signal: null });
  #memory = '';

  constructor(readonly spec: ProcessSpec) {}

  get name(): string {
    return this.spec.name;
  }

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  get running(): boolean {
    return this.#child !== undefined && !hasExited(this.#child);
  }

  /** exitCode/signalCode of the current (or last) run, for `waitFor({ proc })`. */
  get exitCode(): number | null {
    return this.#child ? this.#child.exitCode : null;
  }

  get signalCode(): NodeJS.Signals | null {
    return this.#child ? this.#child.signalCode : null;
  }

  /** Spawns the process; rejects when it cannot be started at all (command not found, not executable). */
  async start(): Promise<void> {
    if (this.running) throw new Error(`${this.name} is already running (pid ${this.pid})`);
    const { command, args, cwd, env, logFile, detached } = this.spec;
    const fd = logFile ? openSync(logFile, 'a') : undefined;
    let child: ChildProcess;
    try {
      const [file, argv] = diesWithUs(command, args);
      child = spawn(file, argv, {
        cwd,
        env: env ?? process.env,
        detached: detached ?? false,
        stdio: ['ignore', fd ?? 'pipe', fd ?? 'pipe'],
      });
    } finally {
      // The child has its own copy of the descriptor; its output does not pass through us.
      if (fd !== undefined) closeSync(fd);
    }
    this.#memory = '';
    const keep = (d: Buffer) => {
      this.#memory = (this.#memory + d.toString()).slice(-TAIL_BYTES);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.#child = child;
    this.#exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        living.delete(this);
        resolve({ code, signal });
      });
    });
    await new Promise<void>((resolve, reject) => {
      const failed = (err: Error) => {
        this.#child = undefined;
        this.#exited = Promise.resolve({ code: null, signal: null });
        reject(new Error(`cannot start ${this.name} (${command}): ${err.message}`));
      };
      child.once('error', failed);
      child.once('spawn', () => {
        child.off('error', failed);
        // Later errors (a failed kill of a process already gone) are not worth a crash.
        child.on('error', () => {});
        living.add(this);
        resolve();
      });
    });
  }

  /** Resolves when the current run has ended (at once when nothing runs). */
  exited(): Promise<ExitStatus> {
    return this.#exited;
  }

  /** Sends `sig` to the process. False when it is not running. */
  kill(sig: NodeJS.Signals = 'SIGTERM'): boolean {
    if (!this.running) return false;
    return this.#child!.kill(sig);
  }

  /** Sends `sig` to the process and to every descendant it has now. */
  killTree(sig: NodeJS.Signals): void {
    const pid = this.pid;
    if (pid === undefined || !this.running) return;
    const tree = [pid, ...descendants(pid)];
    if (this.spec.detached) killQuietly(-pid, sig);
    for (const p of tree) killQuietly(p, sig);
  }

  /**
   * SIGTERM (or `signal`), then after `timeoutMs` SIGKILL to the process and its descendants.
   * Resolves once the process has exited and none of the descendants it had is left (a helper such
   * as esbuild's service process ends by itself shortly after its parent; it gets SIGKILL if not).
   * Returns how the process ended.
   */
  async stop(timeoutMs = 5000, signal: NodeJS.Signals = 'SIGTERM'): Promise<ExitStatus> {
    if (!this.running) return this.#exited;
    // Collected now: once the parent is gone its children are re-parented and out of sight.
    const tree = descendants(this.pid!);
    const killAll = () => {
      this.killTree('SIGKILL');
      for (const p of tree) killQuietly(p, 'SIGKILL');
    };
    this.kill(signal);
    const deadline = Date.now() + timeoutMs;
    const timer = setTimeout(killAll, timeoutMs);
    const status = await this.#exited;
    clearTimeout(timer);
    const left = () => tree.filter(alive);
    const gone = (ms: number) =>
      waitFor(() => left().length === 0 || undefined, { timeoutMs: ms, intervalMs: 20, what: `the descendants of ${this.name} to exit` }).then(
        () => true,
        () => false,
      );
    if (!(await gone(Math.max(0, deadline - Date.now())))) {
      for (const p of left()) killQuietly(p, 'SIGKILL');
      await gone(2000);
    }
    return status;
  }

  /** How the last run ended, e.g. `exit code 1` or `killed by SIGKILL`; `running` while it runs. */
  describeExit(): string {
    if (!this.#child) return 'not started';
    if (this.running) return 'running';
    return describeExit(this.#child);
  }

  /** The last `lines` lines of its output (from the log file when there is one). */
  tail(lines = 20): string {
    let text = this.#memory;
    if (this.spec.logFile) {
      try {
        const fd = openSync(this.spec.logFile, 'r');
        try {
          const size = fstatSync(fd).size;
          const len = Math.min(size, TAIL_BYTES);
          const buf = Buffer.alloc(len);
          readSync(fd, buf, 0, len, size - len);
          text = buf.toString();
        } finally {
          closeSync(fd);
        }
      } catch {
        text = '';
      }
    }
    return text.trimEnd().split('\n').slice(-lines).join('\n');
  }
}

/** A server the tests or the cluster talk to: started here, or external (given by URL). */
export interface Service {
  url: string;
  host: string;
  port: number;
  /** PID of the server process when it was started locally. */
  pid?: number;
  /** Sends a signal to the server process (local processes only). */
  signal(sig: NodeJS.Signals): void;
  /** Stops the server (SIGTERM, then SIGKILL after 5 s) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port after a stop or a kill (local processes only). */
  restart(): Promise<void>;
}

export interface LocalServiceSpec {
  /** URL scheme, e.g. `nats`. */
  scheme: string;
  /** Executable, e.g. `nats-server`. */
  bin: string;
  /** Arguments that make it listen on `port` (on 127.0.0.1). */
  args: (port: number) => string[];
  logFile?: string;
  detached?: boolean;
  /** How long to wait for the port to accept connections; 10 s unless given. */
  startTimeoutMs?: number;
}

/** A local server process on a fixed port that can be stopped, killed and started again. */
export function localService(spec: LocalServiceSpec, port: number): Service & { start(): Promise<void> } {
  const host = '127.0.0.1';
  const proc = new LocalProcess({
    name: spec.bin,
    command: spec.bin,
    args: spec.args(port),
    ...(spec.logFile ? { logFile: spec.logFile } : {}),
    ...(spec.detached ? { detached: true } : {}),
  });
  const svc = {
    url: `${spec.scheme}://${host}:${port}`,
    host,
    port,
    pid: undefined as number | undefined,
    async start() {
      await proc.start();
      svc.pid = proc.pid;
      try {
        await waitForPort(host, port, spec.startTimeoutMs ?? 10_000, proc);
      } catch (err) {
        await proc.stop(0, 'SIGKILL');
        throw new Error(`${spec.bin} did not start on port ${port}: ${(err as Error).message}\n${proc.tail()}`);
      }
    },
    signal(sig: NodeJS.Signals) {
      proc.kill(sig);
    },
    async stop() {
      await proc.stop(5000);
    },
    async restart() {
      await svc.stop();
      await svc.start();
    },
  };
  return svc;
}

/** Starts a local server on a free port. A port found free can be taken before the server binds it: a few tries. */
export async function startLocalService(spec: LocalServiceSpec, attempts = 5): Promise<Service> {
  let last: unknown;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const svc = localService(spec, await freePort());
    try {
      await svc.start();
      return svc;
    } catch (err) {
      last = err;
    }
  }
  throw last;
}

/** A server given by URL: used as it is, never stopped or signalled. */
export function externalService(url: string): Service {
  const u = new URL(url.split(',')[0]!.trim());
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

export interface LocalServerOptions {
  logFile?: string;
  detached?: boolean;
}

/**
 * nats-server from PATH on a free port of 127.0.0.1. With `monitor`, also its HTTP monitoring
 * endpoint (`/connz`, `/subsz`, ...) on another free port, at `monitorUrl`.
 */
export async function startLocalNats(opts: LocalServerOptions & { monitor?: boolean } = {}): Promise<Service & { monitorUrl?: string }> {
  if (!onPath('nats-server')) throw new Error('nats-server not found: install it (Debian: apt-get install nats-server) or set NATS_URL');
  const monitorPort = opts.monitor ? await freePort() : undefined;
  const svc = await startLocalService({
    ...opts,
    scheme: 'nats',
    bin: 'nats-server',
    args: (port) => ['-a', '127.0.0.1', '-p', String(port), ...(monitorPort ? ['-m', String(monitorPort)] : [])],
  });
  return monitorPort ? Object.assign(svc, { monitorUrl: `http://127.0.0.1:${monitorPort}` }) : svc;
}

/** redis-server from PATH on a free port of 127.0.0.1, without persistence unless `args` ask for it. */
export async function startLocalRedis(opts: LocalServerOptions & { args?: string[] } = {}): Promise<Service> {
  if (!onPath('redis-server')) throw new Error('redis-server not found: install it (Debian: apt-get install redis-server) or set REDIS_URL');
  return startLocalService({
    ...opts,
    scheme: 'redis',
    bin: 'redis-server',
    args: (port) => ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', ...(opts.args ?? [])],
  });
}
