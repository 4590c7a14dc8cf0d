/**
 * What a chaos run proves, computed from what the clients recorded and from the rooms' stored
 * history read at the end, and the report: JSON (everything) and a Markdown summary.
 *
 * Definitions (the README's "Under failure: the chaos test" section sums them up):
 * - lost: an acknowledged message (room, seq) that is not in the room's history with its cid, or
 *   that a member of the room never got delivered to its application. A member that the SDK told
 *   `recovered: false` in that room may miss a message only if the history no longer has it
 *   (counted as `excused`, reported apart);
 * - duplicated: a (room, epoch, seq) delivered to one client's application twice;
 * - stored twice: one cid at two seqs of a room's history;
 * - hung: a request (publish, join, history) neither resolved nor rejected within twice the SDK's
 *   request timeout;
 * - reconnect time: from the `state` change away from `online` to `online` again, per reconnect;
 * - a false leave: a presence `leave` for one of the run's users (none of them ever leaves a room)
 *   while it was connected, or away for less than the session grace period;
 * - a session not resumed: a reconnect within the grace period whose `welcome` says `resumed: false`;
 * - direct messages: a conversation (`dm:` room) is one of its two participants' rooms, and a
 *   `direct` to the partner is a publish there, so each of the above counts them too; `directs`
 *   counts them apart (lost, duplicated, hung `direct` requests) so that a run shows they were there;
 * - the quiet room: its message, published during a fault, must reach the other member within
 *   `quietBoundMs` of its acknowledgement, with no later message to reveal it.
 */
import type { Ack, ChatClient, Reconnect } from './clients.ts';
import { FAULTS, type FaultRecord } from './faults.ts';
import { quantile } from './random.ts';

export interface ChaosSetup {
  clients: number;
  rooms: number;
  gateways: number;
  workers: number;
  publishIntervalMs: [number, number];
  publishAttempts: number;
  drainMs: number;
  /** The chat went on this long after the last fault before publishing stopped. */
  soakMs: number;
  sdkRequestTimeoutMs: number;
  sdkReconnect: string;
  server: Record<string, string>;
  redis: string;
  /** The NATS the run used: one server, or a cluster of several (routes). */
  nats?: string;
}

/** The stored state of one room at the end of the run. */
export interface AuditedRoom {
  room: string;
  epoch: string;
  seq: number;
  /** Oldest seq history still has (seq + 1 when empty). */
  oldest: number;
  bySeq: Map<number, { cid: string | undefined; content: string }>;
  /** User ids the room's presence lists (the auditor left out); undefined when it could not be read. */
  members: string[] | undefined;
}

/** The quiet room's message published while one fault was in effect (see scenario.ts). */
export interface QuietMessage {
  fault: string;
  from: string;
  toName: string;
  cid: string | undefined;
  seq: number | undefined;
  /** Ms into the run: published, acknowledged, and delivered to the other member (undefined: never). */
  publishedAt: number;
  ackedAt: number | undefined;
  deliveredAt: number | undefined;
}

export interface Percentiles {
  count: number;
  p50?: number;
  p90?: number;
  p99?: number;
  max?: number;
}

export interface LostMessage {
  room: string;
  seq: number;
  cid: string;
  /** Phase and time (ms into the run) of its acknowledgement. */
  ackedIn: string;
  ackedAt: number;
  why: string;
  /** Members that never got it. */
  missedBy: string[];
}

export interface ChaosReport {
  seed: number;
  startedAt: string;
  durationMs: number;
  commit?: string;
  setup: ChaosSetup;
  faults: FaultRecord[];
  totals: {
    publishes: number;
    acknowledged: number;
    gaveUp: number;
    /** Rejected publishes, by code (each sent again with its cid). */
    rejections: Record<string, number>;
    /** `error` frames the server sent, by code, including those the SDK retried by itself. */
    serverErrors: Record<string, number>;
    storedUnacknowledged: number;
    delivered: number;
    expectedDeliveries: number;
    lost: number;
    lostDeliveries: number;
    lostFromHistory: number;
    excused: number;
    duplicated: number;
    outOfOrder: number;
    storedTwice: number;
    /** A delivery or an acknowledgement whose cid differs from what history has at that seq. */
    mismatched: number;
    requests: number;
    hung: number;
    recoveredTrue: number;
    recoveredFalse: number;
    /** Rooms whose epoch changed during the run (history lost). */
    epochChanges: number;
    presenceMissing: number;
    presenceGhosts: number;
    /** Users announced as leaving a room (presence `leave`) while connected, or away for less than the session grace. */
    falseLeaves: number;
    /** Clients the SDK stopped for good (`offline`). */
    clientsStopped: number;
    /** Direct messages (conversation rooms), also counted in the totals above. */
    directs: { conversations: number; sent: number; acknowledged: number; delivered: number; lost: number; duplicated: number; outOfOrder: number; hung: number };
  };
  reconnects: Percentiles & { resumed: number; notResumed: number; unfinished: number; byPhase: Record<string, Percentiles & { resumed: number; notResumed: number }> };
  rooms: { maxSeq: number; minSeq: number; historyTrimmed: number };
  /** Time from the end of publishing until every client had every message (undefined: never, within the bound). */
  catchUpMs: number | undefined;
  quiet: QuietMessage[];
  /**
   * How long the quiet room's publishes took to be acknowledged, over all faults: a worker killed
   * with one in flight shows here (hedged: about a second; without: the request timeout).
   */
  quietAckMs: Percentiles;
  unexpectedExits: string[];
  lostMessages: LostMessage[];
  /** Every broken invariant, one line each; empty when the run passed. */
  violations: string[];
  notes: string[];
  /** Where the cluster's logs are (kept when the run failed). */
  logDir?: string;
  passed: boolean;
}

/** What `analyse` reads of each client (a ChatClient; plain objects in the checker's own tests). */
export type Recorded = Pick<
  ChatClient,
  'username' | 'joinedAt' | 'delivered' | 'duplicates' | 'outOfOrder' | 'recoveries' | 'leaves' | 'attempted' | 'acks' | 'rejections' | 'gaveUp' | 'reconnects' | 'stopped' | 'serverErrors'
>;

/** Requests that stayed open past twice the SDK's timeout (RequestWatch). */
export interface HungRequests {
  started: number;
  hung: readonly { what: string; phase: string; startedAt: number }[];
}

export interface AnalyseInput {
  seed: number;
  startedAt: Date;
  durationMs: number;
  setup: ChaosSetup;
  faults: FaultRecord[];
  clients: readonly Recorded[];
  audit: Map<string, AuditedRoom>;
  requests: HungRequests;
  catchUpMs: number | undefined;
  quiet: QuietMessage[];
  /** Longest a quiet-room message may take from its acknowledgement to the other member. */
  quietBoundMs: number;
  /** SESSION_GRACE_MS: a user away for less than this must not be announced as leaving. */
  sessionGraceMs: number;
  unexpectedExits: string[];
  notes: string[];
}

const MAX_LISTED = 20;

export function analyse(input: AnalyseInput): ChaosReport {
  const { clients, audit } = input;
  const violations: string[] = [];
  const notes = [...input.notes];

  // What history has: seq → cid, and cid → seqs (stored twice).
  let storedTwice = 0;
  const storedCids = new Map<string, Set<string>>();
  for (const a of audit.values()) {
    const seqsOf = new Map<string, number[]>();
    for (const [seq, m] of a.bySeq) {
      if (m.cid === undefined) continue;
      const seqs = seqsOf.get(m.cid);
      if (seqs) seqs.push(seq);
      else seqsOf.set(m.cid, [seq]);
    }
    for (const [cid, seqs] of seqsOf) {
      if (seqs.length > 1) {
        storedTwice += seqs.length - 1;
        if (storedTwice <= MAX_LISTED) violations.push(`stored twice: room ${a.room} cid ${cid} at seqs ${seqs.join(', ')}`);
      }
    }
    storedCids.set(a.room, new Set(seqsOf.keys()));
  }

  // Acknowledgements, and whether history has each one at its seq.
  const acks: Ack[] = clients.flatMap((c) => c.acks);
  const lost = new Map<string, LostMessage>();
  const lostKey = (room: string, seq: number) => `${room}\n${seq}`;
  const markLost = (ack: Ack, why: string, member?: string) => {
    const key = lostKey(ack.room, ack.seq);
    let l = lost.get(key);
    if (!l) lost.set(key, (l = { room: ack.room, seq: ack.seq, cid: ack.cid, ackedIn: ack.phase, ackedAt: ack.at, why, missedBy: [] }));
    if (member) l.missedBy.push(member);
  };
  let lostFromHistory = 0;
  let mismatched = 0;
  let trimmedAcks = 0;
  const acksByRoom = new Map<string, Ack[]>();
  for (const ack of acks) {
    const inRoom = acksByRoom.get(ack.room);
    if (inRoom) inRoom.push(ack);
    else acksByRoom.set(ack.room, [ack]);
    const a = audit.get(ack.room);
    if (!a) continue;
    if (ack.epoch !== a.epoch) {
      lostFromHistory++;
      markLost(ack, `acknowledged in epoch ${ack.epoch}; the room's history is now epoch ${a.epoch}`);
      continue;
    }
    if (ack.seq < a.oldest) {
      trimmedAcks++;
      continue;
    }
    const stored = a.bySeq.get(ack.seq);
    if (!stored || stored.cid !== ack.cid) {
      lostFromHistory++;
      if (stored) mismatched++;
      markLost(ack, stored ? `history has cid ${stored.cid} at seq ${ack.seq}` : `not in history (epoch ${a.epoch}, seq ${a.oldest}..${a.seq})`);
    }
  }
  if (trimmedAcks > 0) notes.push(`${trimmedAcks} acknowledged messages were older than what history keeps (HISTORY_MAX): not checked against history`);

  // Every member must have every acknowledged message after its join.
  let delivered = 0;
  let expectedDeliveries = 0;
  let lostDeliveries = 0;
  let excused = 0;
  let recoveredTrue = 0;
  let recoveredFalse = 0;
  const epochsOf = new Map<string, Set<string>>();
  for (const c of clients) {
    for (const r of c.recoveries) {
      if (r.recovered) recoveredTrue++;
      else {
        recoveredFalse++;
        notes.push(`recovered: false for ${c.username} in ${r.room} during "${r.phase}" at ${r.at} ms (epoch ${r.epoch}, continues after seq ${r.seq})`);
      }
    }
    for (const [room, list] of c.delivered) {
      delivered += list.length;
      const a = audit.get(room);
      // epoch:seq → cid of what this client's application got.
      const got = new Map<string, string | undefined>();
      for (const d of list) {
        let epochs = epochsOf.get(room);
        if (!epochs) epochsOf.set(room, (epochs = new Set()));
        epochs.add(d.epoch);
        got.set(`${d.epoch}:${d.seq}`, d.cid);
        const stored = a && d.epoch === a.epoch ? a.bySeq.get(d.seq) : undefined;
        if (stored && stored.cid !== d.cid) {
          mismatched++;
          violations.push(`${c.username} got seq ${d.seq} of ${room} with cid ${d.cid}; history has ${stored.cid}`);
        }
      }
      const joined = c.joinedAt.get(room);
      const gaveUpHere = c.recoveries.some((r) => r.room === room && !r.recovered);
      for (const ack of acksByRoom.get(room) ?? []) {
        if (joined && ack.epoch === joined.epoch && ack.seq <= joined.seq) continue;
        expectedDeliveries++;
        if (got.get(`${ack.epoch}:${ack.seq}`) === ack.cid) continue;
        // The SDK said it could not recover, and history really has lost the message: allowed,
        // but reported (with persistence it must not happen).
        if (gaveUpHere && !(a && a.epoch === ack.epoch && a.bySeq.get(ack.seq)?.cid === ack.cid)) {
          excused++;
          continue;
        }
        lostDeliveries++;
        markLost(ack, gaveUpHere ? 'not delivered after recovered: false, although history has it' : 'never delivered to a member', c.username);
      }
    }
  }
  const epochChanges = [...epochsOf].filter(([room, e]) => e.size > 1 || (audit.get(room) && ![...e].every((x) => x === audit.get(room)!.epoch))).length;

  // Presence: every member is a client in the room, and every client in the room is listed.
  let presenceMissing = 0;
  let presenceGhosts = 0;
  const presenceWrong: string[] = [];
  for (const a of audit.values()) {
    if (!a.members) {
      presenceWrong.push(`presence of ${a.room} could not be read`);
      continue;
    }
    const expected = new Set(clients.filter((c) => c.delivered.has(a.room)).map((c) => c.username));
    const listed = new Set(a.members);
    const missing = [...expected].filter((u) => !listed.has(u));
    const ghosts = [...listed].filter((u) => !expected.has(u));
    presenceMissing += missing.length;
    presenceGhosts += ghosts.length;
    if (missing.length) presenceWrong.push(`presence of ${a.room} at the end misses ${missing.length} connected member(s): ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}`);
    if (ghosts.length) presenceWrong.push(`presence of ${a.room} at the end lists ghosts ${ghosts.slice(0, 5).join(', ')}`);
  }
  violations.push(...presenceWrong.slice(0, 10));
  if (presenceWrong.length > 10) violations.push(`… presence wrong in ${presenceWrong.length - 10} more room(s)`);

  // Presence `leave` of one of our users: right only when that user had been away for the grace.
  // Nobody here leaves a room, so every other leave announces a user who is still there.
  const byName = new Map(clients.map((c) => [c.username, c]));
  const falseLeaves = new Map<string, { room: string; user: string; at: number; phase: string; seenBy: number; state: string }>();
  for (const c of clients) {
    for (const l of c.leaves) {
      const who = byName.get(l.user);
      if (!who) continue;
      const away = who.reconnects.find((r) => r.lostAt <= l.at && (r.onlineAt === undefined || r.onlineAt >= l.at));
      if (away && l.at - away.lostAt >= input.sessionGraceMs) continue;
      const key = `${l.room}\n${l.user}\n${Math.floor(l.at / 10_000)}`;
      const seen = falseLeaves.get(key);
      if (seen) seen.seenBy++;
      else falseLeaves.set(key, { ...l, seenBy: 1, state: away ? `reconnecting for ${l.at - away.lostAt} ms` : 'connected' });
    }
  }
  for (const f of [...falseLeaves.values()].slice(0, MAX_LISTED)) {
    violations.push(`presence: ${f.user} announced as leaving ${f.room} at ${f.at} ms during "${f.phase}" while ${f.state} (seen by ${f.seenBy} member(s))`);
  }
  if (falseLeaves.size > MAX_LISTED) violations.push(`… ${falseLeaves.size - MAX_LISTED} more users announced as leaving while connected`);

  const duplicates = clients.flatMap((c) => c.duplicates.map((d) => ({ ...d, client: c.username })));
  const outOfOrder = clients.flatMap((c) => c.outOfOrder.map((d) => ({ ...d, client: c.username })));
  for (const d of duplicates.slice(0, MAX_LISTED)) violations.push(`duplicated: ${d.client} got seq ${d.seq} of ${d.room} twice (during "${d.phase}")`);
  for (const d of outOfOrder.slice(0, MAX_LISTED)) violations.push(`out of order: ${d.client} got seq ${d.seq} of ${d.room} after ${d.after} (during "${d.phase}")`);
  const lostMessages = [...lost.values()].sort((x, y) => x.ackedAt - y.ackedAt);
  for (const l of lostMessages.slice(0, MAX_LISTED)) {
    violations.push(
      `lost: ${l.room} seq ${l.seq} cid ${l.cid}, acknowledged at ${l.ackedAt} ms during "${l.ackedIn}": ${l.why}${l.missedBy.length ? ` (${l.missedBy.length} member(s): ${l.missedBy.slice(0, 5).join(', ')})` : ''}`,
    );
  }
  const hung = input.requests.hung;
  for (const h of hung.slice(0, MAX_LISTED)) violations.push(`hung: ${h.what}, started at ${h.startedAt} ms during "${h.phase}"`);
  const stopped = clients.filter((c) => c.stopped);
  for (const c of stopped) violations.push(`${c.username} stopped for good: ${c.stopped!.error?.message ?? c.stopped!.code}`);
  for (const e of input.unexpectedExits) violations.push(`unexpected exit: ${e}`);
  if (input.catchUpMs === undefined) violations.push('not every client got every message before the end of the run (see lost)');
  for (const q of input.quiet) {
    if (q.ackedAt === undefined) violations.push(`quiet room: the message published during ${q.fault} was never acknowledged`);
    else if (q.deliveredAt === undefined || q.deliveredAt - q.ackedAt > input.quietBoundMs) {
      violations.push(
        `quiet room: ${q.cid} (seq ${q.seq}), published during ${q.fault} and acknowledged at ${q.ackedAt} ms, reached ${q.toName} ` +
          (q.deliveredAt === undefined ? 'never' : `only at ${q.deliveredAt} ms (${q.deliveredAt - q.ackedAt} ms after its acknowledgement; the next message revealed the gap)`),
      );
    }
  }

  // Publishes.
  const rejections: Record<string, number> = {};
  for (const c of clients) for (const r of c.rejections) rejections[r.code] = (rejections[r.code] ?? 0) + 1;
  const serverErrors: Record<string, number> = {};
  for (const c of clients) for (const [code, n] of Object.entries(c.serverErrors)) serverErrors[code] = (serverErrors[code] ?? 0) + n;
  const gaveUp = clients.flatMap((c) => c.gaveUp);
  let storedUnacknowledged = 0;
  for (const g of gaveUp) if (storedCids.get(g.room)?.has(g.cid)) storedUnacknowledged++;
  if (gaveUp.length) notes.push(`${gaveUp.length} publishes given up after ${input.setup.publishAttempts} rejections (${storedUnacknowledged} of them stored anyway)`);

  // Reconnects.
  const all: Reconnect[] = clients.flatMap((c) => c.reconnects);
  const finished = all.filter((r) => r.onlineAt !== undefined);
  const byPhase: Record<string, Percentiles & { resumed: number; notResumed: number }> = {};
  for (const phase of new Set(finished.map((r) => r.phase))) {
    const here = finished.filter((r) => r.phase === phase);
    byPhase[phase] = { ...percentiles(here.map((r) => r.onlineAt! - r.lostAt)), resumed: here.filter((r) => r.resumed === true).length, notResumed: here.filter((r) => r.resumed === false).length };
  }
  // A reconnect within the grace period must resume the session (docs/protocol.md, "Sessions").
  const unresumed = clients.flatMap((c) => c.reconnects.filter((r) => r.resumed === false && r.onlineAt! - r.lostAt < input.sessionGraceMs).map((r) => ({ ...r, client: c.username })));
  for (const r of unresumed.slice(0, MAX_LISTED)) {
    violations.push(`session not resumed: ${r.client} lost its connection to ${r.fromNode} (close ${r.code}) at ${r.lostAt} ms during "${r.phase}", was back on ${r.toNode} after ${r.onlineAt! - r.lostAt} ms with a new session`);
  }
  if (unresumed.length > MAX_LISTED) violations.push(`… ${unresumed.length - MAX_LISTED} more sessions not resumed`);

  const seqs = [...audit.values()].map((a) => a.seq);
  const directs = {
    conversations: [...audit.keys()].filter(isConversation).length,
    sent: clients.reduce((n, c) => n + c.attempted.filter((a) => isConversation(a.room)).length, 0),
    acknowledged: acks.filter((a) => isConversation(a.room)).length,
    delivered: clients.reduce((n, c) => n + [...c.delivered].filter(([room]) => isConversation(room)).reduce((k, [, list]) => k + list.length, 0), 0),
    lost: lostMessages.filter((l) => isConversation(l.room)).length,
    duplicated: duplicates.filter((d) => isConversation(d.room)).length,
    outOfOrder: outOfOrder.filter((d) => isConversation(d.room)).length,
    hung: hung.filter((h) => h.what.startsWith('direct ')).length,
  };
  const totals = {
    publishes: clients.reduce((n, c) => n + c.attempted.length, 0),
    acknowledged: acks.length,
    gaveUp: gaveUp.length,
    rejections,
    serverErrors,
    storedUnacknowledged,
    delivered,
    expectedDeliveries,
    lost: lost.size,
    lostDeliveries,
    lostFromHistory,
    excused,
    duplicated: duplicates.length,
    outOfOrder: outOfOrder.length,
    storedTwice,
    mismatched,
    requests: input.requests.started,
    hung: hung.length,
    recoveredTrue,
    recoveredFalse,
    epochChanges,
    presenceMissing,
    presenceGhosts,
    falseLeaves: falseLeaves.size,
    clientsStopped: stopped.length,
    directs,
  };
  if (epochChanges > 0) violations.push(`${epochChanges} room(s) changed epoch: history was lost`);
  if (excused > 0) violations.push(`${excused} deliveries missed after recovered: false (history no longer had them): with persistence this must not happen`);
  return {
    seed: input.seed,
    startedAt: input.startedAt.toISOString(),
    durationMs: input.durationMs,
    setup: input.setup,
    faults: input.faults,
    totals,
    reconnects: {
      ...percentiles(finished.map((r) => r.onlineAt! - r.lostAt)),
      resumed: finished.filter((r) => r.resumed === true).length,
      notResumed: finished.filter((r) => r.resumed === false).length,
      unfinished: all.length - finished.length,
      byPhase,
    },
    rooms: { maxSeq: Math.max(0, ...seqs), minSeq: Math.min(...seqs), historyTrimmed: [...audit.values()].filter((a) => a.oldest > 1).length },
    catchUpMs: input.catchUpMs,
    quiet: input.quiet,
    quietAckMs: percentiles(input.quiet.flatMap((q) => (q.ackedAt === undefined ? [] : [q.ackedAt - q.publishedAt]))),
    unexpectedExits: input.unexpectedExits,
    lostMessages,
    violations,
    notes,
    passed: violations.length === 0,
  };
}

/** A conversation's room (direct messages): the server names them `dm:…`. */
function isConversation(room: string): boolean {
  return room.startsWith('dm:');
}

function percentiles(values: number[]): Percentiles {
  if (values.length === 0) return { count: 0 };
  return { count: values.length, p50: quantile(values, 0.5)!, p90: quantile(values, 0.9)!, p99: quantile(values, 0.99)!, max: Math.max(...values) };
}

// ---------------------------------------------------------------------------------------------

const ms = (v: number | undefined) => (v === undefined ? '–' : v >= 10_000 ? `${(v / 1000).toFixed(1)} s` : `${Math.round(v)} ms`);
const duration = (v: number) => `${Math.floor(v / 60_000)} min ${Math.round((v % 60_000) / 1000)} s`;
const cell = (s: string) => s.replace(/\|/g, '\\|').replace(/\n/g, '<br>');

/** The `npm run chaos` command line that makes the same choices as this run. */
function replay(r: ChaosReport): string {
  const s = r.setup;
  const args = [`--seed ${r.seed}`, `--clients ${s.clients}`, `--rooms ${s.rooms}`, `--gateways ${s.gateways}`, `--workers ${s.workers}`, `--drain-ms ${s.drainMs}`, `--interval-ms ${s.publishIntervalMs.join('-')}`];
  if (r.faults.length && r.faults.length !== FAULTS.length) args.push(`--faults ${r.faults.map((f) => f.name).join(',')}`);
  return `npm run chaos -- ${args.join(' ')}`;
}

export function renderMarkdown(r: ChaosReport): string {
  const t = r.totals;
  const s = r.setup;
  const mark = (v: number) => (v === 0 ? `**0** ✓` : `**${v}** ✗`);
  const lines: string[] = [];
  lines.push(`## Chaos run, seed ${r.seed}: ${r.passed ? 'passed' : 'FAILED'}`);
  lines.push('');
  lines.push(
    `${r.startedAt}${r.commit ? `, commit ${r.commit}` : ''}. ${s.clients} SDK clients in ${s.rooms} rooms (1–2 each) through nginx, ` +
      `${s.gateways} gateways, ${s.workers} workers, ${s.nats ?? 'NATS'}, Redis (${s.redis}). Each client publishes every ` +
      `${s.publishIntervalMs[0] / 1000}–${s.publishIntervalMs[1] / 1000} s, one at a time; a rejected publish is sent again with the same cid ` +
      `(${s.publishAttempts} attempts at most). After the last fault the chat goes on for ${s.soakMs / 1000} s (a session grace period and more). SDK: request timeout ${s.sdkRequestTimeoutMs / 1000} s, reconnect ${s.sdkReconnect}. ` +
      `Server: ${Object.entries(s.server).map(([k, v]) => `${k}=${v}`).join(', ')}. Took ${duration(r.durationMs)}. Replay its choices: \`${replay(r)}\`.`,
  );
  lines.push('');
  lines.push('| invariant | result |');
  lines.push('| --- | --- |');
  lines.push(`| acknowledged messages lost | ${mark(t.lost)} (${t.lostFromHistory} missing from history, ${t.lostDeliveries} member deliveries missing) |`);
  lines.push(`| messages duplicated to the application | ${mark(t.duplicated)} |`);
  lines.push(`| messages delivered out of order | ${mark(t.outOfOrder)} |`);
  lines.push(`| messages stored twice (one cid at two seqs) | ${mark(t.storedTwice)} |`);
  lines.push(`| deliveries or acks whose cid differs from history | ${mark(t.mismatched)} |`);
  lines.push(`| requests that hung (open > 2× the ${s.sdkRequestTimeoutMs / 1000} s request timeout) | ${mark(t.hung)} of ${t.requests} |`);
  lines.push(`| presence: members missing / ghosts at the end | ${mark(t.presenceMissing)} / ${mark(t.presenceGhosts)} |`);
  lines.push(`| presence: users announced as leaving while connected | ${mark(t.falseLeaves)} |`);
  lines.push(`| sessions not resumed by a reconnect within the grace period | ${mark(r.reconnects.notResumed)} |`);
  lines.push(`| direct messages lost / duplicated or out of order / hung (also counted above) | ${mark(t.directs.lost)} / ${mark(t.directs.duplicated + t.directs.outOfOrder)} / ${mark(t.directs.hung)} |`);
  lines.push(`| rooms whose history was lost (epoch changed) | ${mark(t.epochChanges)} |`);
  lines.push(`| clients stopped for good | ${mark(t.clientsStopped)} |`);
  lines.push('');
  lines.push('| counted | |');
  lines.push('| --- | --- |');
  lines.push(`| publishes / acknowledged / given up | ${t.publishes} / ${t.acknowledged} / ${t.gaveUp} |`);
  const rej = Object.entries(t.rejections).map(([code, n]) => `${code} ${n}`).join(', ') || 'none';
  lines.push(`| publish rejections seen by the application (then sent again, same cid) | ${rej} |`);
  const errs = Object.entries(t.serverErrors).map(([code, n]) => `${code} ${n}`).join(', ') || 'none';
  lines.push(`| error answers from the server (the SDK sends publishes again itself) | ${errs} |`);
  lines.push(`| stored although never acknowledged | ${t.storedUnacknowledged} |`);
  lines.push(`| direct messages in ${t.directs.conversations} conversations: sent / acknowledged / delivered | ${t.directs.sent} / ${t.directs.acknowledged} / ${t.directs.delivered} |`);
  lines.push(`| delivered to applications / expected | ${t.delivered} / ${t.expectedDeliveries} |`);
  lines.push(`| SDK recovery events: recovered true / false | ${t.recoveredTrue} / ${t.recoveredFalse} |`);
  lines.push(`| reconnects: resumed / not resumed / unfinished | ${r.reconnects.resumed} / ${r.reconnects.notResumed} / ${r.reconnects.unfinished} |`);
  lines.push(`| messages per room at the end (min–max) | ${r.rooms.minSeq}–${r.rooms.maxSeq} |`);
  lines.push(`| every client had every message, after publishing stopped | ${r.catchUpMs === undefined ? 'never (bound reached)' : `after ${ms(r.catchUpMs)}`} |`);
  lines.push('');
  lines.push('Reconnect time, from losing the connection to `online` again:');
  lines.push('');
  lines.push('| during | reconnects | resumed / not | p50 | p90 | p99 | max |');
  lines.push('| --- | --- | --- | --- | --- | --- | --- |');
  const row = (name: string, p: Percentiles & { resumed: number; notResumed: number }) =>
    lines.push(`| ${cell(name)} | ${p.count} | ${p.resumed} / ${p.notResumed} | ${ms(p.p50)} | ${ms(p.p90)} | ${ms(p.p99)} | ${ms(p.max)} |`);
  row('all', r.reconnects);
  for (const [phase, p] of Object.entries(r.reconnects.byPhase)) row(phase, p);
  lines.push('');
  if (r.quiet.length) {
    lines.push('The quiet room: two members, no traffic but one message published while each fault was in effect, which must reach the other member by itself:');
    lines.push('');
    lines.push('| during | seq | acknowledged after | delivered to the other member, after the ack |');
    lines.push('| --- | --- | --- | --- |');
    for (const q of r.quiet) {
      const delivered = q.deliveredAt === undefined || q.ackedAt === undefined ? '**never** ✗' : ms(Math.max(0, q.deliveredAt - q.ackedAt));
      lines.push(`| ${q.fault} | ${q.seq ?? '–'} | ${q.ackedAt === undefined ? '**never** ✗' : ms(q.ackedAt - q.publishedAt)} | ${delivered} |`);
    }
    lines.push('');
    const a = r.quietAckMs;
    lines.push(`Quiet room acknowledgement times over ${a.count} faults: p50 ${ms(a.p50)}, p99 ${ms(a.p99)}, max ${ms(a.max)}.`);
    lines.push('');
  }
  lines.push('Faults, in order, with what was observed:');
  lines.push('');
  lines.push('| # | fault | target | at | until whole again | evidence |');
  lines.push('| --- | --- | --- | --- | --- | --- |');
  r.faults.forEach((f, i) => lines.push(`| ${i + 1} | ${f.name} | ${f.target} | ${ms(f.at)} | ${ms(f.tookMs)} | ${cell(f.evidence.join('\n'))} |`));
  if (r.violations.length) {
    lines.push('');
    lines.push('Violations:');
    lines.push('');
    for (const v of r.violations) lines.push(`- ${v}`);
  }
  if (r.notes.length) {
    lines.push('');
    lines.push('Notes:');
    lines.push('');
    for (const n of r.notes.slice(0, 40)) lines.push(`- ${n}`);
    if (r.notes.length > 40) lines.push(`- … and ${r.notes.length - 40} more (see the JSON)`);
  }
  if (r.logDir) {
    lines.push('');
    lines.push(`Cluster logs: ${r.logDir}`);
  }
  return lines.join('\n') + '\n';
}

/** The report as JSON (lost messages with every member that missed them). */
export function reportJson(r: ChaosReport): string {
  return JSON.stringify(r, null, 2) + '\n';
}
