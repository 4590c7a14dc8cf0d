/**
 * The faults of the chaos scenario, each done to the real processes of the local cluster
 * (tools/cluster.ts) and each verified to have happened: a process killed is gone (its pid no longer
 * exists), a drained gateway exited and its clients were closed with 1001, a stopped NATS or Redis
 * no longer accepts connections and the gateways or workers say so on /readyz, a stalled Redis is
 * in the stopped state (T) and does not answer PING. A fault that cannot be verified throws: a run
 * whose faults did not happen proves nothing.
 *
 * Each fault ends with the cluster whole again (the process restarted and ready); the scenario then
 * waits for the clients to come back and the conversation to go on before the next fault.
 */
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { alive, httpStatus, waitFor } from '../../tools/processes.ts';
import type { Cluster, ClusterNode } from '../../tools/cluster.ts';
import type { ChatClient, RunContext } from './clients.ts';

/**
 * In the order a run does them. The Redis faults come last: the run then goes on for a session
 * grace period (scenario.ts, the soak), long enough for the sweepers to act on anything the outage
 * made them believe, before the final checks. (A reconnect of every client, as in a rolling restart,
 * would hide such damage by resuming the sessions.)
 */
export const FAULTS = ['kill-worker', 'drain-gateway', 'kill-gateway', 'kill-another-worker', 'kill-nats-server', 'restart-nats', 'rolling-restart', 'stall-redis', 'restart-redis'] as const;
/**
 * The faults of a run on a Redis Cluster: the one-server Redis faults are replaced by the death of
 * the primary that serves a room (SIGKILL; its replica takes over, then the dead node comes back as
 * the new primary's replica).
 */
export const CLUSTER_FAULTS = ['kill-worker', 'drain-gateway', 'kill-gateway', 'kill-another-worker', 'kill-nats-server', 'restart-nats', 'rolling-restart', 'kill-redis-primary'] as const;
export type FaultName = (typeof FAULTS)[number] | (typeof CLUSTER_FAULTS)[number];
/** Faults that need a NATS cluster (the run's `natsServers` > 1); left out of a run on one nats-server. */
export const NATS_CLUSTER_FAULTS: readonly FaultName[] = ['kill-nats-server'];

export interface FaultRecord {
  name: FaultName;
  /** What was hit: `worker-1`, `gateway-2`, `nats`, `redis`, `gateway-1..3`. */
  target: string;
  /** Ms into the run when the fault was done. */
  at: number;
  /** From the fault until the process was back and ready. */
  tookMs: number;
  /** What was observed to prove the fault happened and ended, one line each. */
  evidence: string[];
}

export interface FaultEnv {
  cluster: Cluster;
  ctx: RunContext;
  clients: readonly ChatClient[];
  drainMs: number;
  /** The rooms of the run (the Redis Cluster fault kills the primary of one of them). */
  rooms: readonly string[];
  /** Resolves once every client is online again; throws after a bound. */
  allOnline(what: string): Promise<void>;
  /** Resolves once `n` more publishes have been acknowledged; throws after a bound. */
  moreAcks(n: number, what: string): Promise<void>;
  settleAcks: number;
  log(line: string): void;
  /**
   * Called once per fault while it is in effect (the worker dead, NATS or Redis down or stopped,
   * the gateway draining or dead): the scenario publishes its quiet-room message then.
   */
  inFault(): void;
}

/** Bound on a process going away after SIGKILL, or a server noticing an outage. */
const NOTICE_MS = 20_000;

export async function runFault(name: FaultName, env: FaultEnv): Promise<FaultRecord> {
  const { cluster } = env;
  const at = env.ctx.now();
  const evidence: string[] = [];
  const say = (line: string) => {
    evidence.push(line);
    env.log(`  ${line}`);
  };
  let target: string;
  switch (name) {
    case 'kill-worker':
    case 'kill-another-worker': {
      const w = cluster.workers[(name === 'kill-worker' ? 0 : 1) % cluster.workers.length]!;
      target = w.name;
      await killWorker(env, w, say);
      break;
    }
    case 'drain-gateway':
    case 'kill-gateway': {
      const g = cluster.gateways[(name === 'drain-gateway' ? 0 : 1) % cluster.gateways.length]!;
      target = g.name;
      await stopGateway(env, g, name === 'drain-gateway' ? 'SIGTERM' : 'SIGKILL', say, true);
      break;
    }
    case 'kill-nats-server':
      target = await killNatsServer(env, say);
      break;
    case 'restart-nats':
      target = 'nats';
      await restartNats(env, say);
      break;
    case 'stall-redis':
      target = 'redis';
      await stallRedis(env, say);
      break;
    case 'restart-redis':
      target = 'redis';
      await restartRedis(env, say);
      break;
    case 'kill-redis-primary':
      target = await killRedisPrimary(env, say);
      break;
    case 'rolling-restart':
      target = cluster.gateways.map((g) => g.name).join(', ');
      for (const [i, g] of cluster.gateways.entries()) await stopGateway(env, g, 'SIGTERM', say, i === 0);
      break;
  }
  return { name, target, at, tookMs: env.ctx.now() - at, evidence };
}

/** SIGKILL; the pid is gone and NATS dropped its connection; the others carry the load; restart. */
async function killWorker(env: FaultEnv, w: ClusterNode, say: (l: string) => void): Promise<void> {
  const { cluster } = env;
  const pid = w.pid!;
  const t0 = Date.now();
  w.kill('SIGKILL');
  await gone(pid, w.name);
  env.inFault();
  say(`${w.name} (pid ${pid}) SIGKILL: pid gone after ${Date.now() - t0} ms`);
  const monitor = cluster.natsMonitorUrl;
  if (monitor) {
    const left = cluster.workers.length - 1;
    await waitFor(async () => (await workerConnections(monitor)) === left || undefined, { timeoutMs: NOTICE_MS, what: `NATS to drop ${w.name}` });
    say(`NATS /connz: ${left} worker connection(s) left`);
  }
  await env.moreAcks(env.settleAcks, `publishes acknowledged without ${w.name}`);
  say(`${env.settleAcks} publishes acknowledged by the remaining worker(s)`);
  await w.restart();
  say(`${w.name} restarted (pid ${w.pid}), /readyz 200`);
}

/**
 * SIGTERM (drain: not ready at once, every socket closed with 1001 over DRAIN_MS, exit) or SIGKILL
 * (crash: sockets cut). Waits for the exit and for its clients to be back on the other gateways,
 * then starts it again.
 */
async function stopGateway(env: FaultEnv, g: ClusterNode, sig: 'SIGTERM' | 'SIGKILL', say: (l: string) => void, probe: boolean): Promise<void> {
  const pid = g.pid!;
  const t0 = env.ctx.now();
  const mine = env.clients.filter((c) => c.node === g.nodeId);
  g.kill(sig);
  if (probe) env.inFault();
  if (sig === 'SIGTERM') {
    // Not ready from the moment it drains (unless it was gone before we could ask).
    const seen = await waitFor(async () => ((await httpStatus(`http://127.0.0.1:${g.port}/readyz`, 500)) === 503 ? '503 while draining' : g.running ? undefined : 'exited before it was asked'), {
      timeoutMs: NOTICE_MS,
      intervalMs: 20,
      what: `${g.name} to answer /readyz 503 while draining`,
    });
    say(`${g.name} (pid ${pid}) SIGTERM: /readyz ${seen}`);
  }
  await waitFor(() => !g.running || undefined, { timeoutMs: env.drainMs + NOTICE_MS, what: `${g.name} to exit after ${sig}` });
  await gone(pid, g.name);
  const exitedMs = env.ctx.now() - t0;
  const closes = new Map<string, number>();
  for (const c of mine) {
    const r = c.reconnects.find((x) => x.lostAt >= t0 && x.fromNode === g.nodeId);
    const code = r ? String(r.code) : 'not yet';
    closes.set(code, (closes.get(code) ?? 0) + 1);
  }
  const codes = [...closes].map(([code, n]) => `${n}× ${code}`).join(', ') || 'none';
  say(`${g.name} (pid ${pid}) ${sig}: exited after ${exitedMs} ms (DRAIN_MS ${env.drainMs}); its ${mine.length} clients closed with: ${codes}`);
  if (sig === 'SIGTERM' && mine.some((c) => !c.reconnects.some((x) => x.lostAt >= t0 && x.fromNode === g.nodeId && x.code === 1001))) {
    say(`NOTE: not every client of ${g.name} was closed with 1001 by its drain`);
  }
  await env.allOnline(`the clients of ${g.name} to be online on the other gateways`);
  const moved = mine.filter((c) => c.node !== g.nodeId).length;
  say(`${moved}/${mine.length} of its clients online on another gateway after ${env.ctx.now() - t0} ms`);
  await g.restart();
  say(`${g.name} restarted (pid ${g.pid}), /readyz 200`);
}

/** Stops nats-server (every gateway reports not ready), starts it again; everything reconnects by itself. */
async function restartNats(env: FaultEnv, say: (l: string) => void): Promise<void> {
  const { cluster } = env;
  const nats = cluster.nats;
  const pid = nats.pid!;
  const t0 = Date.now();
  await nats.stop();
  if (alive(pid)) throw new Error(`nats-server pid ${pid} still alive after stop`);
  if (await tcpOpen(nats.host, nats.port)) throw new Error(`something still listens on NATS port ${nats.port}`);
  env.inFault();
  say(`nats-server (pid ${pid}) stopped: pid gone, port ${nats.port} refuses connections`);
  await allReadyz(cluster.gateways, 503, 'every gateway to report not ready without NATS');
  say(`every gateway /readyz 503 after ${Date.now() - t0} ms`);
  await nats.restart();
  await allReadyz([...cluster.gateways, ...cluster.workers], 200, 'gateways and workers ready after the NATS restart');
  say(`nats-server restarted (pid ${nats.pid}); every gateway and worker /readyz 200 after ${Date.now() - t0} ms`);
}

/**
 * SIGKILL of the NATS server most gateways are on (a cluster of several: routes). Its clients
 * reconnect to the other servers by themselves; every gateway and worker stays or becomes ready
 * again, publishes go on being acknowledged; then the server is started again and rejoins.
 */
async function killNatsServer(env: FaultEnv, say: (l: string) => void): Promise<string> {
  const { cluster } = env;
  const nc = cluster.natsCluster;
  if (!nc) throw new Error('kill-nats-server needs a NATS cluster (natsServers > 1)');
  const on = await Promise.all(cluster.gateways.map((g) => nc.serverOf(`rt-gateway-${g.nodeId}`)));
  const counts = nc.servers.map((_, i) => on.filter((x) => x === i).length);
  const i = counts.indexOf(Math.max(...counts));
  const server = nc.servers[i]!;
  const pid = server.pid!;
  const t0 = Date.now();
  server.signal('SIGKILL');
  await gone(pid, `nats-server ${i + 1}`);
  env.inFault();
  say(`nats-${i + 1} (pid ${pid}, holding ${counts[i]} of ${cluster.gateways.length} gateway connections) SIGKILL: pid gone`);
  await waitFor(async () => (await Promise.all(cluster.gateways.map((g) => nc.serverOf(`rt-gateway-${g.nodeId}`)))).every((x) => x >= 0 && x !== i) || undefined, {
    timeoutMs: NOTICE_MS,
    what: 'every gateway on another NATS server',
  });
  await allReadyz([...cluster.gateways, ...cluster.workers], 200, 'gateways and workers ready on the remaining NATS servers');
  say(`every gateway reconnected to another NATS server; every gateway and worker /readyz 200 after ${Date.now() - t0} ms`);
  await env.moreAcks(env.settleAcks, 'publishes acknowledged without the killed NATS server');
  say(`${env.settleAcks} publishes acknowledged on the remaining NATS servers`);
  await server.restart();
  await nc.waitForRoutes();
  say(`nats-${i + 1} restarted (pid ${server.pid}) and routed to the others after ${Date.now() - t0} ms`);
  return `nats-${i + 1}`;
}

/**
 * How long Redis stays stopped: longer than every timeout on the way (the workers' Redis command
 * timeout, 3 s; the gateways' request timeout, 5 s; the sweepers' gateway timeout, 6 s), as a
 * stall of a real Redis can be (a fork on a big dataset, a paused VM).
 */
export const REDIS_STALL_MS = 8000;

/** SIGSTOP: Redis holds every connection and answers nothing, for REDIS_STALL_MS and until every worker noticed; then SIGCONT. */
async function stallRedis(env: FaultEnv, say: (l: string) => void): Promise<void> {
  const { cluster } = env;
  const redis = cluster.redis;
  const pid = redis.pid!;
  const t0 = Date.now();
  redis.signal('SIGSTOP');
  try {
    await waitFor(() => processState(pid) === 'T' || undefined, { timeoutMs: 5000, what: `redis-server ${pid} to be stopped` });
    if ((await redisCommand(redis.port, 'PING', 1000)) !== undefined) throw new Error('redis-server answered PING while stopped');
    env.inFault();
    say(`redis-server (pid ${pid}) SIGSTOP: state T, PING unanswered for 1 s`);
    await allReadyz(cluster.workers, 503, 'every worker to report Redis unavailable');
    say(`every worker /readyz 503 after ${Date.now() - t0} ms (commands timed out)`);
    // The rest of the stall is the fault itself, not a wait for something.
    const left = REDIS_STALL_MS - (Date.now() - t0);
    if (left > 0) await new Promise((r) => setTimeout(r, left));
  } finally {
    redis.signal('SIGCONT');
  }
  await waitFor(async () => (await redisCommand(redis.port, 'PING', 1000)) === '+PONG' || undefined, { timeoutMs: 10_000, what: 'Redis to answer after SIGCONT' });
  await allReadyz(cluster.workers, 200, 'every worker ready after the stall');
  say(`SIGCONT after ${Date.now() - t0} ms: PING answered PONG; every worker /readyz 200`);
}

/** SIGKILL (nothing flushed at exit: only what appendfsync wrote), then start it on its data. */
async function restartRedis(env: FaultEnv, say: (l: string) => void): Promise<void> {
  const { cluster } = env;
  const redis = cluster.redis;
  const pid = redis.pid!;
  const t0 = Date.now();
  const keysBefore = await dbsize(redis.port);
  redis.signal('SIGKILL');
  await gone(pid, 'redis-server');
  if ((await redisCommand(redis.port, 'PING', 1000)) !== undefined) throw new Error('Redis answers PING after SIGKILL');
  env.inFault();
  say(`redis-server (pid ${pid}, DBSIZE ${keysBefore}) SIGKILL: pid gone, PING refused`);
  await allReadyz(cluster.workers, 503, 'every worker to report Redis unavailable');
  say(`every worker /readyz 503 after ${Date.now() - t0} ms`);
  await redis.restart();
  // DBSIZE answers -LOADING while the append-only file is read back.
  const keysAfter = await waitFor(() => dbsize(redis.port), { timeoutMs: 20_000, what: 'Redis to answer DBSIZE after its restart' });
  await allReadyz(cluster.workers, 200, 'every worker ready after the Redis restart');
  say(`redis-server restarted (pid ${redis.pid}) from its append-only file: DBSIZE ${keysAfter}; every worker /readyz 200 after ${Date.now() - t0} ms`);
}

/**
 * SIGKILL of the Redis Cluster primary that serves the first room's slot: its pid is gone, its
 * replica is promoted and the cluster is ok again; publishes are acknowledged meanwhile on the
 * other shards and, once the dead node is back as the new primary's replica, on this one too.
 */
async function killRedisPrimary(env: FaultEnv, say: (l: string) => void): Promise<string> {
  const rc = env.cluster.redisCluster;
  if (!rc) throw new Error('kill-redis-primary needs a run on a Redis Cluster');
  const key = `rt:{r:${env.rooms[0]!}}:meta`;
  const victim = await rc.primaryOf(key);
  const svc = rc.services.find((x) => `${x.host}:${x.port}` === victim)!;
  const pid = svc.pid!;
  const t0 = Date.now();
  const killed = rc.killPrimaryOf(key);
  await gone(pid, `redis-server ${victim}`);
  env.inFault();
  say(`redis primary ${victim} (pid ${pid}) of room ${env.rooms[0]} SIGKILL: pid gone`);
  await killed;
  say(`replica ${await rc.primaryOf(key)} promoted, cluster_state ok after ${Date.now() - t0} ms`);
  await rc.restartDead();
  say(`${victim} restarted as a replica (pid ${svc.pid})`);
  await env.moreAcks(env.settleAcks, 'publishes acknowledged after the Redis failover');
  say(`${env.settleAcks} publishes acknowledged after the failover, ${Date.now() - t0} ms after the kill`);
  return `redis ${victim}`;
}

// ---------------------------------------------------------------------------------------------

async function gone(pid: number, what: string): Promise<void> {
  await waitFor(() => !alive(pid) || undefined, { timeoutMs: NOTICE_MS, intervalMs: 20, what: `${what} (pid ${pid}) to be gone` });
}

async function allReadyz(nodes: readonly ClusterNode[], status: number, what: string): Promise<void> {
  const check = async () => (await Promise.all(nodes.map((n) => httpStatus(`http://127.0.0.1:${n.port}/readyz`, 1000)))).every((s) => s === status);
  await waitFor(async () => (await check()) || undefined, { timeoutMs: NOTICE_MS, intervalMs: 100, what });
}

/** Worker connections NATS has now (bin/server.ts names them `rt-worker`). */
async function workerConnections(monitorUrl: string): Promise<number> {
  const res = await fetch(`${monitorUrl}/connz?limit=1024`);
  const body = (await res.json()) as { connections?: { name?: string }[] };
  return (body.connections ?? []).filter((c) => c.name === 'rt-worker').length;
}

/** The state letter of /proc/<pid>/stat: R, S, T (stopped), Z, …; undefined when there is none. */
function processState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return undefined;
  }
}

function tcpOpen(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

/** Keys in Redis (DBSIZE), or undefined when it does not answer with a number. */
async function dbsize(port: number): Promise<number | undefined> {
  const reply = await redisCommand(port, 'DBSIZE', 2000);
  return reply?.startsWith(':') ? Number(reply.slice(1)) : undefined;
}

/**
 * One inline Redis command on a fresh connection; its first reply line as sent (`+PONG`, `:1234`,
 * `-LOADING …`), or undefined when Redis refuses the connection or does not answer within `timeoutMs`.
 */
export function redisCommand(port: number, command: string, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    let buf = '';
    const done = (v: string | undefined) => {
      clearTimeout(timer);
      s.destroy();
      resolve(v);
    };
    const timer = setTimeout(() => done(undefined), timeoutMs);
    s.once('connect', () => s.write(`${command}\r\n`));
    s.on('data', (d) => {
      buf += d.toString();
      const end = buf.indexOf('\r\n');
      if (end >= 0) done(buf.slice(0, end));
    });
    s.once('error', () => done(undefined));
  });
}
