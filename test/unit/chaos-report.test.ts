/**
 * The chaos suite's checker (test/chaos/report.ts) on made-up records: it must find what it is
 * there to find — an acknowledged message missing from history or from a member, a repeat, a cid
 * stored twice, a hung request, missing presence — and nothing in a clean run.
 */
import { describe, expect, it } from 'vitest';
import type { Ack, Delivery } from '../chaos/clients.ts';
import { chaosSeed } from '../chaos/random.ts';
import { analyse, renderMarkdown, type AuditedRoom, type ChaosSetup, type Recorded } from '../chaos/report.ts';

const setup: ChaosSetup = {
  clients: 2,
  rooms: 1,
  gateways: 2,
  workers: 2,
  publishIntervalMs: [1000, 2000],
  publishAttempts: 6,
  drainMs: 1000,
  soakMs: 40_000,
  sdkRequestTimeoutMs: 10_000,
  sdkReconnect: 'defaults',
  server: {},
  redis: 'appendonly yes',
};

const ack = (seq: number, cid: string): Ack => ({ room: 'r', seq, epoch: 'e', cid, content: cid, phase: 'p', at: seq * 100, attempts: 1 });
const got = (...seqs: [number, string][]): Delivery[] => seqs.map(([seq, cid]) => ({ seq, epoch: 'e', cid, content: cid }));

function client(username: string, acks: Ack[], delivered: Delivery[], more: Partial<Recorded> = {}): Recorded {
  return {
    username,
    joinedAt: new Map([['r', { seq: 0, epoch: 'e' }]]),
    delivered: new Map([['r', delivered]]),
    duplicates: [],
    outOfOrder: [],
    recoveries: [],
    leaves: [],
    attempted: acks.map((a) => ({ room: a.room, cid: a.cid, content: a.content })),
    acks,
    rejections: [],
    gaveUp: [],
    reconnects: [{ lostAt: 1000, onlineAt: 1300, code: 1006, reason: '', phase: 'kill-gateway', fromNode: 'gw1', toNode: 'gw2', resumed: true, failedAttempts: 0 }],
    stopped: undefined,
    serverErrors: {},
    ...more,
  };
}

function room(entries: [number, string][], members = ['ann', 'bob']): AuditedRoom {
  return { room: 'r', epoch: 'e', seq: Math.max(0, ...entries.map(([s]) => s)), oldest: 1, bySeq: new Map(entries.map(([seq, cid]) => [seq, { cid, content: cid }])), members };
}

function run(clients: Recorded[], audit: AuditedRoom, hung: { what: string; phase: string; startedAt: number }[] = []) {
  return analyse({
    seed: 7,
    startedAt: new Date(0),
    durationMs: 60_000,
    setup,
    faults: [],
    clients,
    audit: new Map([['r', audit]]),
    requests: { started: 10, hung },
    catchUpMs: 5,
    quiet: [],
    quietBoundMs: 10_000,
    sessionGraceMs: 30_000,
    unexpectedExits: [],
    notes: [],
  });
}

describe('chaos report', () => {
  it('a clean run passes with every count at zero', () => {
    const all = got([1, 'a.1'], [2, 'b.1'], [3, 'a.2']);
    const r = run([client('ann', [ack(1, 'a.1'), ack(3, 'a.2')], all), client('bob', [ack(2, 'b.1')], all)], room([[1, 'a.1'], [2, 'b.1'], [3, 'a.2']]));
    expect(r.violations).toEqual([]);
    expect(r.passed).toBe(true);
    expect(r.totals).toMatchObject({ acknowledged: 3, delivered: 6, expectedDeliveries: 6, lost: 0, duplicated: 0, storedTwice: 0, hung: 0 });
    expect(r.reconnects).toMatchObject({ count: 2, p50: 300, resumed: 2 });
    expect(renderMarkdown(r)).toContain('| acknowledged messages lost | **0** ✓');
    expect(r.totals.directs).toEqual({ conversations: 0, sent: 0, acknowledged: 0, delivered: 0, lost: 0, duplicated: 0, outOfOrder: 0, hung: 0 });
  });

  it('finds a message a member never got, one missing from history, a repeat, a cid stored twice, a hung request and missing presence', () => {
    const history = room(
      [
        [1, 'a.1'],
        [2, 'b.1'],
        [3, 'b.1'],
      ],
      ['ann'],
    );
    const ann = client('ann', [ack(1, 'a.1'), ack(4, 'a.2')], got([1, 'a.1'], [2, 'b.1'], [3, 'b.1']));
    const bob = client('bob', [ack(2, 'b.1')], got([2, 'b.1'], [3, 'b.1']), { duplicates: [{ room: 'r', epoch: 'e', seq: 2, phase: 'restart-nats' }] });
    const r = run([ann, bob], history, [{ what: 'publish b.2', phase: 'stall-redis', startedAt: 1 }]);
    expect(r.passed).toBe(false);
    expect(r.totals).toMatchObject({ lost: 2, lostFromHistory: 1, lostDeliveries: 3, duplicated: 1, storedTwice: 1, hung: 1, presenceMissing: 1 });
    // seq 1 never reached bob; seq 4 (acknowledged) is not in history and reached nobody.
    expect(r.lostMessages.map((l) => [l.seq, l.missedBy])).toEqual([
      [1, ['bob']],
      [4, ['ann', 'bob']],
    ]);
    expect(r.violations.join('\n')).toMatch(/stored twice: room r cid b\.1 at seqs 2, 3/);
    expect(renderMarkdown(r)).toContain('| acknowledged messages lost | **2** ✗');
  });

  it('counts direct messages like room messages, and apart: one a partner never got, a repeat, a hung direct', () => {
    const dm = 'dm:ann-bob';
    const direct = (seq: number, cid: string): Ack => ({ ...ack(seq, cid), room: dm });
    const inDm = (list: Delivery[], more: Partial<Recorded> = {}): Partial<Recorded> => ({ joinedAt: new Map([['r', { seq: 0, epoch: 'e' }], [dm, { seq: 1, epoch: 'e' }]]), delivered: new Map([['r', []], [dm, list]]), ...more });
    const ann = client('ann', [direct(2, 'a.1'), direct(3, 'a.2')], [], inDm(got([2, 'a.1'], [3, 'a.2'])));
    // Bob never got seq 3, and got seq 2 twice.
    const bob = client('bob', [], [], inDm(got([2, 'a.1']), { duplicates: [{ room: dm, epoch: 'e', seq: 2, phase: 'kill-gateway' }] }));
    const r = analyse({
      seed: 7,
      startedAt: new Date(0),
      durationMs: 60_000,
      setup,
      faults: [],
      clients: [ann, bob],
      audit: new Map([
        ['r', room([])],
        [dm, { ...room([[1, 'hello'], [2, 'a.1'], [3, 'a.2']]), room: dm }],
      ]),
      requests: { started: 10, hung: [{ what: 'direct a.3', phase: 'stall-redis', startedAt: 1 }] },
      catchUpMs: 5,
      quiet: [],
      quietBoundMs: 10_000,
      sessionGraceMs: 30_000,
      unexpectedExits: [],
      notes: [],
    });
    expect(r.passed).toBe(false);
    expect(r.totals.directs).toEqual({ conversations: 1, sent: 2, acknowledged: 2, delivered: 3, lost: 1, duplicated: 1, outOfOrder: 0, hung: 1 });
    // Counted with the room messages too.
    expect(r.totals).toMatchObject({ lost: 1, lostDeliveries: 1, duplicated: 1, hung: 1 });
    expect(r.lostMessages.map((l) => [l.room, l.seq, l.missedBy])).toEqual([[dm, 3, ['bob']]]);
    expect(renderMarkdown(r)).toContain('| direct messages lost / duplicated or out of order / hung (also counted above) | **1** ✗ / **1** ✗ / **1** ✗ |');
  });

  it('finds a user announced as leaving while connected, and a session a quick reconnect did not resume', () => {
    const all = got([1, 'a.1']);
    const away = { lostAt: 5000, onlineAt: 5400, code: 1001, reason: '', phase: 'rolling-restart', fromNode: 'gw3', toNode: 'gw1', resumed: false, failedAttempts: 1 };
    const ann = client('ann', [ack(1, 'a.1')], all, { reconnects: [away] });
    const bob = client('bob', [], all, { leaves: [{ room: 'r', user: 'ann', at: 2000, phase: 'stall-redis' }] });
    const r = run([ann, bob], room([[1, 'a.1']]));
    expect(r.totals.falseLeaves).toBe(1);
    expect(r.reconnects).toMatchObject({ notResumed: 1, byPhase: { 'rolling-restart': { count: 1, notResumed: 1 } } });
    expect(r.violations.join('\n')).toMatch(/ann announced as leaving r at 2000 ms during "stall-redis" while connected/);
    expect(r.violations.join('\n')).toMatch(/session not resumed: ann lost its connection to gw3 \(close 1001\)/);
    // Away for longer than the grace period: the leave is right.
    const gone = client('ann', [ack(1, 'a.1')], all, { reconnects: [{ ...away, lostAt: 0, onlineAt: 40_000, resumed: false }] });
    const bob2 = client('bob', [], all, { leaves: [{ room: 'r', user: 'ann', at: 31_000, phase: 'x' }] });
    expect(run([gone, bob2], room([[1, 'a.1']])).totals.falseLeaves).toBe(0);
  });

  it('excuses a miss after recovered: false only when history no longer has the message, and still reports it', () => {
    const recoveries = [{ room: 'r', recovered: false, epoch: 'e', seq: 1, at: 10, phase: 'restart-redis' }];
    // History keeps only seq 2 now (seq 1 trimmed): bob, told recovered: false, may miss seq 1.
    const trimmed = { ...room([[2, 'b.1']]), oldest: 2 };
    const ann = client('ann', [ack(1, 'a.1'), ack(2, 'b.1')], got([1, 'a.1'], [2, 'b.1']));
    const bob = client('bob', [], got([2, 'b.1']), { recoveries });
    const r = run([ann, bob], trimmed);
    expect(r.totals).toMatchObject({ lost: 0, excused: 1, recoveredFalse: 1 });
    expect(r.violations.join('\n')).toMatch(/1 deliveries missed after recovered: false/);
    expect(r.notes.join('\n')).toMatch(/older than what history keeps/);
    // The same miss with the message still in history is a loss.
    const kept = room([[1, 'a.1'], [2, 'b.1']]);
    const r2 = run([client('ann', [ack(1, 'a.1'), ack(2, 'b.1')], got([1, 'a.1'], [2, 'b.1'])), client('bob', [], got([2, 'b.1']), { recoveries })], kept);
    expect(r2.totals).toMatchObject({ lost: 1, lostDeliveries: 1 });
    expect(r2.lostMessages[0]!.why).toMatch(/after recovered: false, although history has it/);
  });
});

describe('chaos seed', () => {
  it('takes the seed it is given (CHAOS_SEED or --seed), and a fresh whole number otherwise', () => {
    expect(chaosSeed('806454471')).toBe(806454471);
    expect(chaosSeed('0')).toBe(0);
    for (const raw of [undefined, '']) {
      const seed = chaosSeed(raw);
      expect(Number.isSafeInteger(seed) && seed >= 0, String(seed)).toBe(true);
    }
  });

  it('refuses a seed that is not a whole number, naming where it came from', () => {
    expect(() => chaosSeed('12x')).toThrow('CHAOS_SEED="12x"');
    expect(() => chaosSeed('-3', '--seed')).toThrow('--seed="-3"');
    expect(() => chaosSeed('1e3')).toThrow(/whole number/);
  });
});
