/**
 * The chaos scenario: the real local cluster (tools/cluster.ts: nats-server, redis-server with an
 * append-only file, gateways and workers as processes, nginx in front) with SDK clients chatting in
 * rooms and in direct conversations (client 2k with client 2k + 1), while faults hit it one after
 * the other (faults.ts). At the end, after publishing stopped
 * and every client had time to catch up, the rooms' history is read back and report.ts checks that
 * no acknowledged message was lost, none was delivered twice or stored twice, and no request hung.
 *
 *   const report = await runChaos({ seed: 42, clients: 40, rooms: 4 });
 *
 * Every wait is a condition with a bound (every client online, N more publishes acknowledged, a
 * process gone, /readyz answering): nothing sleeps in place of a condition. The only timers are the
 * workload's own (the pause between a client's publishes).
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '../../tools/processes.ts';
import { startCluster, type Cluster } from '../../tools/cluster.ts';
import { RtClient, type Message } from '../../client/index.ts';
import { ChatClient, RequestWatch, boundWebSocket, clientAddress, type Ack, type RunContext } from './clients.ts';
import { CLUSTER_FAULTS, FAULTS, NATS_CLUSTER_FAULTS, runFault, type FaultEnv, type FaultName, type FaultRecord } from './faults.ts';
import { between, fork, seeded } from './random.ts';
import { analyse, type AuditedRoom, type ChaosReport, type ChaosSetup, type QuietMessage } from './report.ts';

export interface ChaosOptions {
  /** Seed of every random choice; printed in the report, replayed with `--seed`. */
  seed: number;
  clients: number;
  rooms: number;
  /** 3 unless given. */
  gateways?: number;
  /** 3 unless given. */
  workers?: number;
  /** Pause between a client's publishes, uniformly in this range; [2000, 6000] unless given. */
  publishIntervalMs?: [number, number];
  /** Gateways' DRAIN_MS for the drains (SIGTERM); 3000 unless given. */
  drainMs?: number;
  /**
   * Run on a local 6-node Redis Cluster with REDIS_WAIT_REPLICAS=1 instead of one redis-server
   * with an append-only file; the default faults are then CLUSTER_FAULTS.
   */
  redisCluster?: boolean;
  /** NATS servers: 1 (one nats-server) unless given; more start a NATS cluster with routes. */
  natsServers?: number;
  /**
   * Faults in order; every one of FAULTS (CLUSTER_FAULTS on a Redis Cluster) unless given, without
   * those needing a NATS cluster on one server.
   */
  faults?: readonly FaultName[];
  /** Publishes acknowledged after each fault (and during a worker's absence) before the next step; `clients` unless given. */
  settleAcks?: number;
  /**
   * How long the chat goes on after the last fault, with no fault, before publishing stops: the
   * session grace period (SESSION_GRACE_MS) plus 10 s unless given, so that every session the
   * sweepers were made to believe dead would have ended (and been announced) by then.
   */
  soakMs?: number;
  /** More environment for the gateways and workers. */
  env?: NodeJS.ProcessEnv;
  /** Progress lines (the CLI prints them); silent unless given. */
  log?: (line: string) => void;
  /** Keep the run directory (cluster logs, Redis's append-only file) even when the run passed. */
  keepRunDir?: boolean;
}

/** The SDK's request timeout here (its default); a request open twice as long has hung. */
const SDK_REQUEST_TIMEOUT_MS = 10_000;
/** The SDK's defaults: reconnect backoff with full jitter from 500 ms up to 30 s. */
const SDK_RECONNECT = { baseMs: 500, capMs: 30_000 };
const PUBLISH_ATTEMPTS = 6;
/** Bounds on the scenario's conditions. */
const ONLINE_BOUND_MS = 90_000;
const ACKS_BOUND_MS = 90_000;
const CATCH_UP_BOUND_MS = 60_000;
/** How long after its acknowledgement the quiet room's message may take to reach the other member. */
export const QUIET_DELIVERY_MS = 10_000;

export async function runChaos(opts: ChaosOptions): Promise<ChaosReport> {
  const log = opts.log ?? (() => {});
  const random = seeded(opts.seed);
  const gateways = opts.gateways ?? 3;
  const workers = opts.workers ?? 3;
  const drainMs = opts.drainMs ?? 3000;
  const publishIntervalMs = opts.publishIntervalMs ?? [2000, 6000];
  const settleAcks = opts.settleAcks ?? opts.clients;
  const natsServers = opts.natsServers ?? 1;
  const faults = opts.faults ?? (opts.redisCluster ? CLUSTER_FAULTS : FAULTS).filter((f) => natsServers > 1 || !NATS_CLUSTER_FAULTS.includes(f));
  const sessionGraceMs = Number(opts.env?.SESSION_GRACE_MS ?? process.env.SESSION_GRACE_MS ?? 30_000);
  const soakMs = opts.soakMs ?? sessionGraceMs + 10_000;
  if (opts.rooms < 1 || opts.clients < 2 * opts.rooms) throw new Error('need at least two clients per room');

  const server = { LOG_LEVEL: 'info', DRAIN_MS: String(drainMs), ...(opts.redisCluster ? { REDIS_WAIT_REPLICAS: '1' } : {}), ...opts.env } as Record<string, string>;
  const setup: ChaosSetup = {
    clients: opts.clients,
    rooms: opts.rooms,
    gateways,
    workers,
    publishIntervalMs,
    publishAttempts: PUBLISH_ATTEMPTS,
    drainMs,
    soakMs,
    sdkRequestTimeoutMs: SDK_REQUEST_TIMEOUT_MS,
    sdkReconnect: `backoff ${SDK_RECONNECT.baseMs} ms–${SDK_RECONNECT.capMs / 1000} s with full jitter (the SDK's defaults)`,
    server: Object.fromEntries(Object.entries(server).filter(([k]) => k !== 'LOG_LEVEL')),
    redis: opts.redisCluster ? 'Redis Cluster: 3 primaries, 3 replicas, no persistence, REDIS_WAIT_REPLICAS=1' : 'appendonly yes, appendfsync always',
    nats: natsServers > 1 ? `a NATS cluster of ${natsServers} servers (routes)` : 'NATS',
  };

  const startedAt = new Date();
  const t0 = Date.now();
  const ctx: RunContext = { now: () => Date.now() - t0, phase: 'start', requests: new RequestWatch(2 * SDK_REQUEST_TIMEOUT_MS, () => Date.now() - t0) };
  const runDir = mkdtempSync(join(tmpdir(), 'rt-chaos-'));
  const redisDir = join(runDir, 'redis');
  mkdirSync(redisDir);
  const unexpectedExits: string[] = [];
  const notes: string[] = [];
  const clients: ChatClient[] = [];
  const quietProbes: (QuietMessage & { to: ChatClient })[] = [];
  let auditor: RtClient | undefined;
  let cluster: Cluster | undefined;
  let report: ChaosReport | undefined;
  const watchdog = setInterval(() => ctx.requests.check(), 1000);
  try {
    log(`chaos: seed ${opts.seed}, ${opts.clients} clients, ${opts.rooms} rooms, ${gateways} gateways, ${workers} workers; run files in ${runDir}`);
    cluster = await startCluster({
      port: 0,
      runDir,
      gateways,
      workers,
      natsServers,
      ...(opts.redisCluster ? { redisCluster: true } : { redisArgs: ['--appendonly', 'yes', '--appendfsync', 'always', '--dir', redisDir] }),
      env: server,
      readyTimeoutMs: 60_000,
      stopTimeoutMs: 15_000,
      onUnexpectedExit: (name, status, tail) => {
        unexpectedExits.push(`${name} exited (${status.signal ?? `code ${status.code}`}) at ${ctx.now()} ms during "${ctx.phase}":\n${tail}`);
      },
    });
    log(`chaos: cluster ready at ${cluster.wsUrl}`);

    // Rooms: client i is in room i mod R (so every room has members), and half of them in another.
    const roomNames = Array.from({ length: opts.rooms }, (_, k) => `chaos-${opts.seed}-${k + 1}`);
    for (let i = 0; i < opts.clients; i++) {
      const own = roomNames[i % opts.rooms]!;
      const rooms = [own];
      if (opts.rooms > 1 && random() < 0.5) {
        const other = roomNames[(i + between(random, 1, opts.rooms - 1)) % opts.rooms]!;
        rooms.push(other);
      }
      clients.push(
        new ChatClient({
          index: i,
          url: cluster.wsUrl,
          username: `c${i}`,
          rooms,
          ctx,
          random: fork(random),
          publishIntervalMs,
          publishAttempts: PUBLISH_ATTEMPTS,
          sdk: { requestTimeoutMs: SDK_REQUEST_TIMEOUT_MS, reconnect: SDK_RECONNECT },
        }),
      );
    }
    // The quiet room: two members and no other traffic than one message published while each
    // fault is in effect. A message stored but never sent live is noticed in a busy room when the
    // next one arrives; here nothing comes after it, so it must arrive by itself.
    const quietRoom = `chaos-${opts.seed}-quiet`;
    const chatters = [...clients];
    const quiet = [0, 1].map(
      (k) =>
        new ChatClient({
          index: opts.clients + k,
          url: cluster!.wsUrl,
          username: `quiet${k + 1}`,
          rooms: [quietRoom],
          ctx,
          random: fork(random),
          publishIntervalMs,
          publishAttempts: PUBLISH_ATTEMPTS,
          sdk: { requestTimeoutMs: SDK_REQUEST_TIMEOUT_MS, reconnect: SDK_RECONNECT },
        }),
    ) as [ChatClient, ChatClient];
    clients.push(...quiet);
    for (let i = 0; i < clients.length; i += 50) await Promise.all(clients.slice(i, i + 50).map((c) => c.start()));
    const spread = new Map<string, number>();
    for (const c of clients) spread.set(c.node!, (spread.get(c.node!) ?? 0) + 1);
    log(`chaos: ${clients.length} clients online and joined; per gateway: ${[...spread].map(([n, k]) => `${n} ${k}`).join(', ')}`);
    if (spread.size < Math.min(gateways, 2)) throw new Error(`nginx put every client on one gateway (${[...spread.keys()].join()}): the faults would not be meaningful`);

    // Conversations: chatter 2k and 2k + 1 write to each other. The first direct message names the
    // room (the server does); both join it, and from then on it is one of their rooms, counted like
    // the others. Only a participant may read it back, so the first one is its reader at the end.
    const readers = new Map<string, RtClient>();
    for (let k = 0; k + 1 < chatters.length; k += 2) {
      const [a, b] = [chatters[k]!, chatters[k + 1]!];
      const first = await ctx.requests.track(`direct hello ${a.username}`, ctx.phase, a.sdk.direct(b.username, `hello from ${a.username}`));
      await Promise.all([a.addConversation(first.room, b.username), b.addConversation(first.room, a.username)]);
      readers.set(first.room, a.sdk);
    }
    log(`chaos: ${readers.size} conversations started`);

    const totalAcks = () => chatters.reduce((n, c) => n + c.acks.length, 0);
    let probe: { fault: string; from: ChatClient; to: ChatClient; publishedAt: number; ack: Promise<Ack | undefined> } | undefined;
    const env: FaultEnv = {
      cluster,
      rooms: roomNames,
      ctx,
      clients,
      drainMs,
      settleAcks,
      log,
      allOnline: async (what) => {
        try {
          await waitFor(
            () => {
              const stopped = clients.find((c) => c.stopped);
              if (stopped) throw new Error(`${stopped.username} stopped for good: ${stopped.stopped!.error?.message ?? stopped.stopped!.code}`);
              return clients.every((c) => c.online) || undefined;
            },
            { timeoutMs: ONLINE_BOUND_MS, intervalMs: 100, what },
          );
        } catch (err) {
          const off = clients.filter((c) => !c.online);
          throw new Error(`${(err as Error).message}; ${off.length} offline: ${off.slice(0, 5).map((c) => `${c.username} ${c.sdk.state}, last close ${c.reconnects.at(-1)?.code}`).join('; ')}`);
        }
      },
      inFault: () => {
        if (probe) return;
        const [from, to] = quietProbes.length % 2 === 0 ? quiet : [quiet[1], quiet[0]];
        probe = { fault: ctx.phase, from, to, publishedAt: ctx.now(), ack: from.publish(quietRoom) };
      },
      moreAcks: async (n, what) => {
        const target = totalAcks() + n;
        await waitFor(() => totalAcks() >= target || undefined, { timeoutMs: ACKS_BOUND_MS, intervalMs: 100, what: `${what} (${n} acknowledgements)` });
      },
    };

    ctx.phase = 'warm-up';
    for (const c of chatters) c.startPublishing();
    await env.moreAcks(settleAcks, 'the conversation to get going');
    log(`chaos: warm-up done at ${ctx.now()} ms (${totalAcks()} acknowledged)`);

    const done: FaultRecord[] = [];
    for (const name of faults) {
      ctx.phase = name;
      log(`chaos: ${name} at ${ctx.now()} ms`);
      done.push(await runFault(name, env));
      await env.allOnline(`every client online after ${name}`);
      if (!probe) throw new Error(`${name} never said it was in effect (FaultEnv.inFault)`);
      quietProbes.push(await deliveredAlone(probe, quietRoom));
      probe = undefined;
      await env.moreAcks(settleAcks, `the conversation to go on after ${name}`);
      log(`chaos: ${name} over at ${ctx.now()} ms (${totalAcks()} acknowledged)`);
    }

    // Soak: the chat goes on with no fault, while sweepers act on what the faults left behind.
    ctx.phase = 'soak';
    const soakUntil = ctx.now() + soakMs;
    log(`chaos: soak for ${soakMs / 1000} s at ${ctx.now()} ms`);
    await waitFor(() => ctx.now() >= soakUntil || undefined, { timeoutMs: soakMs + 1000, intervalMs: 200, what: 'the soak to end' });

    // Quiet: publishing stops, every publish settles, every client catches up with every room.
    ctx.phase = 'quiet';
    await Promise.all(clients.map((c) => c.stopPublishing()));
    const quietAt = Date.now();
    log(`chaos: publishing stopped at ${ctx.now()} ms (${totalAcks()} acknowledged); reading the rooms back`);
    auditor = new RtClient({ url: cluster.wsUrl, username: 'chaos-auditor', WebSocket: boundWebSocket(clientAddress(opts.clients + 2)), requestTimeoutMs: SDK_REQUEST_TIMEOUT_MS });
    await auditor.connect();
    const finalSeq = new Map<string, number>();
    roomNames.push(quietRoom);
    for (const name of roomNames) finalSeq.set(name, (await auditor.room(name).join({ limit: 0 })).seq);
    for (const [name, reader] of readers) finalSeq.set(name, (await ctx.requests.track(`history ${name}`, ctx.phase, reader.room(name).history({ limit: 1 }))).seq);
    let catchUpMs: number | undefined;
    try {
      await waitFor(() => clients.every((c) => c.online && [...c.rooms.keys()].every((r) => c.lastDelivered(r) >= finalSeq.get(r)!)) || undefined, {
        timeoutMs: CATCH_UP_BOUND_MS,
        intervalMs: 100,
        what: 'every client to have every message',
      });
      catchUpMs = Date.now() - quietAt;
    } catch {
      const behind = clients.flatMap((c) => [...c.rooms.keys()].filter((r) => c.lastDelivered(r) < finalSeq.get(r)!).map((r) => `${c.username} in ${r} at ${c.lastDelivered(r)}/${finalSeq.get(r)}`));
      notes.push(`after ${CATCH_UP_BOUND_MS / 1000} s, ${behind.length} client-room pairs were behind: ${behind.slice(0, 10).join('; ')}`);
    }
    const audit = new Map<string, AuditedRoom>();
    for (const name of roomNames) audit.set(name, await readRoom(auditor, name, ctx));
    for (const [name, reader] of readers) audit.set(name, await readRoom(reader, name, ctx));

    ctx.requests.check();
    for (const q of quietProbes) if (q.cid) q.deliveredAt = q.to.deliveredAt(quietRoom, q.cid);
    report = analyse({
      seed: opts.seed,
      startedAt,
      durationMs: Date.now() - t0,
      setup,
      faults: done,
      clients,
      audit,
      requests: ctx.requests,
      catchUpMs,
      quiet: quietProbes.map(({ to: _to, ...q }) => q),
      quietBoundMs: QUIET_DELIVERY_MS,
      sessionGraceMs,
      unexpectedExits,
      notes,
    });
    return report;
  } catch (err) {
    throw new Error(`chaos run (seed ${opts.seed}) failed at ${ctx.now()} ms during "${ctx.phase}": ${(err as Error).message}\ncluster logs kept in ${join(runDir, 'logs')}`, { cause: err });
  } finally {
    clearInterval(watchdog);
    for (const c of clients) c.close();
    auditor?.close();
    await cluster?.stop();
    if (report?.passed && !opts.keepRunDir) rmSync(runDir, { recursive: true, force: true });
    else if (report) report.logDir = join(runDir, 'logs');
  }
}

/** A room's whole history, its position and its members, read through the SDK by a member (of a conversation: a participant). */
async function readRoom(auditor: RtClient, name: string, ctx: RunContext): Promise<AuditedRoom> {
  const room = auditor.room(name);
  const bySeq = new Map<number, { cid: string | undefined; content: string }>();
  let after = 0;
  let seq = 0;
  let epoch = room.epoch ?? '';
  let oldest: number | undefined;
  for (;;) {
    const page = await ctx.requests.track(`history ${name} after ${after}`, ctx.phase, room.history({ after, limit: 500 }));
    seq = page.seq;
    epoch = page.epoch ?? epoch;
    const messages: Message[] = page.messages;
    oldest ??= messages[0]?.seq ?? seq + 1;
    for (const m of messages) bySeq.set(m.seq, { cid: m.cid, content: m.content });
    if (messages.length === 0 || messages.at(-1)!.seq >= seq) break;
    after = messages.at(-1)!.seq;
  }
  let members: string[] | undefined;
  try {
    members = (await ctx.requests.track(`presence ${name}`, ctx.phase, room.presence())).map((u) => u.id).filter((id) => id !== 'chaos-auditor');
  } catch {
    members = undefined;
  }
  return { room: name, epoch, seq, oldest: oldest ?? seq + 1, bySeq, members };
}

/**
 * Waits for the quiet room's message published during a fault: its acknowledgement (the publish
 * retries by itself, same cid), then its delivery to the other member, within QUIET_DELIVERY_MS of
 * the acknowledgement. Never throws: a message that does not arrive is a finding for the report.
 */
async function deliveredAlone(
  p: { fault: string; from: ChatClient; to: ChatClient; publishedAt: number; ack: Promise<Ack | undefined> },
  room: string,
): Promise<QuietMessage & { to: ChatClient }> {
  const ack = await p.ack;
  const out = { fault: p.fault, from: p.from.username, to: p.to, toName: p.to.username, cid: ack?.cid, seq: ack?.seq, publishedAt: p.publishedAt, ackedAt: ack?.at, deliveredAt: undefined };
  if (!ack) return out;
  await waitFor(() => p.to.deliveredAt(room, ack.cid) !== undefined || undefined, { timeoutMs: QUIET_DELIVERY_MS, intervalMs: 20, what: 'the quiet message' }).catch(() => {});
  return out;
}
