/** The Sessions contract (shared/sessions.ts) on every backend: resume, detach, sweeps, dead gateways. */
import { describe, it, expect } from 'vitest';
import { randomId } from '../../shared/ids.ts';
import type { ExpiredSession, Sessions } from '../../shared/sessions.ts';
import type { StoreOptions } from '../../shared/stores.ts';
import { contract, range, withRedisStores } from './harness.ts';

contract('Sessions', (t) => {
  const store = (opts?: Partial<StoreOptions>) => t.stores(opts).sessions;
  const twin = (opts?: Partial<StoreOptions>) => t.twin(opts).map((s) => s.sessions) as [Sessions, Sessions];

  describe('sessions', () => {
    const alice = { id: 'u-alice', name: 'Alice' };
    const bob = { id: 'u-bob', name: 'Bob' };
    const sid = () => `s-${randomId(8)}`;
    const node = () => `n-${randomId(4)}`;
    /** Sweep options under which nothing in these tests is ever due by accident. */
    const calm = { nodeTimeoutMs: 3600_000, graceMs: 3600_000, leaseMs: 3600_000, limit: 100 };
    const ids = (xs: { sessionId: string }[]) => xs.map((x) => x.sessionId).sort();

    /** Sweeps with every store until `want` sessions were handed out; fails on a second hand-out. */
    async function sweepUntil(sweepers: Sessions[], opts: Parameters<Sessions['sweepSessions']>[0], want: number, between?: () => Promise<void>) {
      const got = new Map<string, ExpiredSession>();
      await t.until(`${want} sessions to be handed out`, async () => {
        await between?.();
        const rounds = await Promise.all(sweepers.map((s) => s.sweepSessions(opts)));
        for (const round of rounds) {
          expect(round.length).toBeLessThanOrEqual(opts.limit);
          for (const x of round) {
            expect(got.has(x.sessionId), `${x.sessionId} handed out twice`).toBe(false);
            got.set(x.sessionId, x);
          }
        }
        return got.size >= want ? got : undefined;
      });
      return got;
    }

    it('resume by the same user returns the rooms, on any node; rooms can be added and removed', async () => {
      const s = store();
      const id = sid();
      const [n1, n2] = [node(), node()];
      await s.sessionCreate(id, alice, n1, 'c1');
      expect(await s.sessionResume(id, alice, n1, 'c2')).toEqual([]);
      for (const r of ['r-b', 'r-a', 'r-c']) await s.sessionAddRoom(id, r);
      await s.sessionAddRoom(id, 'r-a');
      expect(await s.sessionResume(id, alice, n2, 'c3')).toEqual(['r-a', 'r-b', 'r-c']);
      await s.sessionRemoveRoom(id, 'r-b');
      await s.sessionRemoveRoom(id, 'r-unknown');
      expect(await s.sessionResume(id, alice, n1, 'c4')).toEqual(['r-a', 'r-c']);
      // The session follows its latest connection only.
      expect(await s.sessionDetach(id, 'c3', 60_000)).toBe(false);
      expect(await s.sessionDetach(id, 'c4', 60_000)).toBe(true);
      // Detached, within its grace period: it comes back.
      expect(await s.sessionResume(id, alice, n2, 'c5')).toEqual(['r-a', 'r-c']);
      expect(await s.sweepSessions(calm)).toEqual([]);
    });

    it('resume refuses an unknown id and another user’s session, and changes nothing', async () => {
      const s = store();
      const id = sid();
      await s.sessionCreate(id, alice, node(), 'c1');
      await s.sessionAddRoom(id, 'r1');
      expect(await s.sessionResume(sid(), alice, node(), 'c2')).toBeUndefined();
      expect(await s.sessionResume(id, bob, node(), 'c2')).toBeUndefined();
      // Still attached to c1 (bob's attempt did not take it over), rooms intact.
      expect(await s.sessionDetach(id, 'c2', 60_000)).toBe(false);
      expect(await s.sessionDetach(id, 'c1', 60_000)).toBe(true);
      expect(await s.sessionResume(id, bob, node(), 'c3')).toBeUndefined();
      expect(await s.sessionResume(id, alice, node(), 'c4')).toEqual(['r1']);
      // Rooms of an unknown session are not recorded: it does not come into being.
      const ghost = sid();
      await s.sessionAddRoom(ghost, 'r1');
      expect(await s.sessionResume(ghost, alice, node(), 'c5')).toBeUndefined();
    });

    it('create with an existing id replaces the session', async () => {
      const s = store();
      const id = sid();
      await s.sessionCreate(id, alice, node(), 'c1');
      await s.sessionAddRoom(id, 'r1');
      await s.sessionCreate(id, bob, node(), 'c2');
      expect(await s.sessionResume(id, alice, node(), 'c3')).toBeUndefined();
      expect(await s.sessionResume(id, bob, node(), 'c3')).toEqual([]);
    });

    it('sessions created in one turn, over many buckets and nodes, are each as if created alone', async () => {
      const [a, b] = twin();
      const [dead, live] = [node(), node()];
      await a.nodeAlive(dead);
      await a.nodeAlive(live);
      // One session already attached on the dead node is created again, on the live node, in the turn.
      const moved = sid();
      await a.sessionCreate(moved, alice, dead, 'c-old');
      await a.sessionAddRoom(moved, 'r-old');
      const onDead = range(0, 19).map(() => sid());
      const onLive = range(0, 19).map(() => sid());
      const twice = sid();
      await Promise.all([
        ...onDead.map((id, i) => a.sessionCreate(id, i % 2 ? alice : bob, dead, `c-${id}`)),
        ...onLive.map((id) => a.sessionCreate(id, bob, live, `c-${id}`)),
        a.sessionCreate(moved, bob, live, 'c-new'),
        // The same id twice in one turn: the later create is the session.
        a.sessionCreate(twice, alice, dead, 'c-first'),
        a.sessionCreate(twice, bob, live, 'c-second'),
      ]);
      for (const [i, id] of onDead.entries()) {
        expect(await b.sessionResume(id, i % 2 ? bob : alice, dead, 'c-x')).toBeUndefined();
        expect(await b.sessionDetach(id, 'c-x', 60_000)).toBe(false);
      }
      expect(await b.sessionResume(moved, alice, live, 'c-x')).toBeUndefined();
      expect(await b.sessionResume(twice, alice, live, 'c-x')).toBeUndefined();
      expect(await b.sessionDetach(twice, 'c-first', 60_000)).toBe(false);
      // The dead node's sessions are handed out by the sweep; the moved one and the twice-created
      // one (both on the live node now) and the live node's are not.
      const opts = { nodeTimeoutMs: 300, graceMs: 100, leaseMs: 60_000, limit: 100 };
      const got = await sweepUntil([a, b], opts, onDead.length, () => b.nodeAlive(live));
      expect([...got.keys()].sort()).toEqual([...onDead].sort());
      for (const [i, id] of onDead.entries()) expect(got.get(id)).toEqual({ sessionId: id, user: i % 2 ? alice : bob, rooms: [] });
      for (const id of onLive) expect(await b.sessionResume(id, bob, live, `c2-${id}`)).toEqual([]);
      expect(await b.sessionResume(moved, bob, live, 'c-new2')).toEqual([]);
      expect(await b.sessionDetach(twice, 'c-second', 60_000)).toBe(true);
    });

    it('detach: only by the attached connection, and once', async () => {
      const s = store();
      const id = sid();
      await s.sessionCreate(id, alice, node(), 'c1');
      expect(await s.sessionDetach(id, 'c-other', 60_000)).toBe(false);
      expect(await s.sessionDetach(sid(), 'c1', 60_000)).toBe(false);
      expect(await s.sessionDetach(id, 'c1', 60_000)).toBe(true);
      expect(await s.sessionDetach(id, 'c1', 60_000)).toBe(false);
      // Before its deadline a detached session is nobody's to sweep.
      expect(await s.sweepSessions({ ...calm, nodeTimeoutMs: 0 })).toEqual([]);
    });

    it('an expired session is handed out exactly once among concurrent sweepers, with its user and rooms', async () => {
      const [a, b] = twin();
      const sessions = range(1, 10).map((i) => ({ id: sid(), user: i % 2 ? alice : bob, rooms: [`r${i}`, `r${i + 1}`] }));
      const n = node();
      for (const [i, x] of sessions.entries()) {
        const s = i % 2 ? a : b;
        await s.sessionCreate(x.id, x.user, n, `c${i}`);
        for (const r of x.rooms) await s.sessionAddRoom(x.id, r);
      }
      const kept = sid();
      await a.sessionCreate(kept, alice, n, 'c-kept');
      await a.sessionAddRoom(kept, 'r-kept');
      await a.sessionDetach(kept, 'c-kept', 60_000);
      for (const [i, x] of sessions.entries()) expect(await (i % 2 ? b : a).sessionDetach(x.id, `c${i}`, 300)).toBe(true);
      const opts = { nodeTimeoutMs: 3600_000, graceMs: 60_000, leaseMs: 60_000, limit: 3 };
      // Not before the deadline (300 ms is far more than these calls take).
      expect(await a.sweepSessions(opts)).toEqual([]);

      const got = await sweepUntil([a, b], opts, sessions.length);
      expect([...got.keys()].sort()).toEqual(sessions.map((x) => x.id).sort());
      for (const x of sessions) expect(got.get(x.id)).toEqual({ sessionId: x.id, user: x.user, rooms: [...x.rooms].sort() });
      // Leased: not handed out again, and gone for good for its client.
      expect([...(await a.sweepSessions(opts)), ...(await b.sweepSessions(opts))]).toEqual([]);
      for (const x of sessions) expect(await b.sessionResume(x.id, x.user, n, 'c-late')).toBeUndefined();
      // The session with a longer grace period is still there.
      expect(await b.sessionResume(kept, alice, n, 'c-back')).toEqual(['r-kept']);
    });

    it('resume after the deadline is refused even before any sweep', async () => {
      const s = store();
      const id = sid();
      await s.sessionCreate(id, alice, node(), 'c1');
      await s.sessionAddRoom(id, 'r1');
      await s.sessionDetach(id, 'c1', 100);
      // Nothing to poll that would not resume or sweep it: wait out the grace period.
      await t.pass(250);
      expect(await s.sessionResume(id, alice, node(), 'c2')).toBeUndefined();
      // The refused resume changed nothing: the sweep gets it.
      expect(await s.sweepSessions({ ...calm, leaseMs: 60_000 })).toEqual([{ sessionId: id, user: alice, rooms: ['r1'] }]);
    });

    it('a lease that runs out hands the session out again; a reaped session never again', async () => {
      const s = store();
      const [reaped, dropped] = [sid(), sid()];
      for (const id of [reaped, dropped]) {
        await s.sessionCreate(id, bob, node(), 'c');
        await s.sessionAddRoom(id, 'r1');
        expect(await s.sessionDetach(id, 'c', 0)).toBe(true);
      }
      const opts = { nodeTimeoutMs: 3600_000, graceMs: 60_000, leaseMs: 300, limit: 10 };
      const first = await sweepUntil([s], opts, 2);
      expect(ids([...first.values()])).toEqual([reaped, dropped].sort());
      await s.sessionReaped(reaped);
      await s.sessionReaped(reaped);
      // The sweeper of `dropped` "died": after its lease, another sweep gets it, and only it.
      const again = await sweepUntil([s], opts, 1);
      expect([...again.values()]).toEqual([{ sessionId: dropped, user: bob, rooms: ['r1'] }]);
      await s.sessionReaped(dropped);
      expect(await s.sessionResume(dropped, bob, node(), 'c2')).toBeUndefined();
      expect(await s.sessionResume(reaped, bob, node(), 'c2')).toBeUndefined();
    });

    it('sessions of a gateway that stopped calling nodeAlive are handed out; a live gateway’s are not touched', async () => {
      const [a, b] = twin();
      const [dead, live] = [node(), node()];
      await a.nodeAlive(dead);
      await a.nodeAlive(live);
      const onDead = [sid(), sid(), sid()];
      for (const [i, id] of onDead.entries()) {
        await a.sessionCreate(id, alice, dead, `c${i}`);
        await a.sessionAddRoom(id, `r${i}`);
      }
      const [onLive, moved] = [sid(), sid()];
      await b.sessionCreate(onLive, bob, live, 'c-live');
      await b.sessionAddRoom(onLive, 'r-live');
      await b.sessionCreate(moved, bob, dead, 'c-moved');
      expect(await b.sessionResume(moved, bob, live, 'c-moved2')).toEqual([]);

      const opts = { nodeTimeoutMs: 300, graceMs: 100, leaseMs: 60_000, limit: 10 };
      expect(await a.sweepSessions(opts)).toEqual([]);
      const got = await sweepUntil([a, b], opts, onDead.length, () => b.nodeAlive(live));
      expect([...got.keys()].sort()).toEqual([...onDead].sort());
      for (const [i, id] of onDead.entries()) expect(got.get(id)).toEqual({ sessionId: id, user: alice, rooms: [`r${i}`] });
      // Still attached: the live gateway's session and the one that moved to it.
      expect(await a.sessionDetach(onLive, 'c-live', 60_000)).toBe(true);
      expect(await a.sessionDetach(moved, 'c-moved2', 60_000)).toBe(true);
    });

    it('a dead gateway’s sessions expire as of its last sign of life, not as of the sweep', async () => {
      const s = store();
      const dead = node();
      await s.nodeAlive(dead);
      const id = sid();
      await s.sessionCreate(id, alice, dead, 'c1');
      const lastSign = t.now();
      // Sweeping all along, as workers do: the gateway is judged dead 100 ms after its last sign,
      // and its session handed out 200 ms after it (not 200 ms after the sweep that found it).
      const opts = { nodeTimeoutMs: 100, graceMs: 200, leaseMs: 60_000, limit: 10 };
      const got = await sweepUntil([s], opts, 1);
      expect([...got.values()]).toEqual([{ sessionId: id, user: alice, rooms: [] }]);
      expect(t.now() - lastSign).toBeLessThan(100 + 200 + 1500);
    });

    it('a session of a dead gateway can be resumed within the grace period', async () => {
      const s = store();
      const [dead, other] = [node(), node()];
      await s.nodeAlive(dead);
      const id = sid();
      await s.sessionCreate(id, alice, dead, 'c1');
      await s.sessionAddRoom(id, 'r1');
      const opts = { nodeTimeoutMs: 50, graceMs: 60_000, leaseMs: 60_000, limit: 10 };
      // Sweeping every 20 ms, as workers do (no gap), for three timeouts: the gateway is judged
      // dead (time has to pass; probing would change the session).
      for (let i = 0; i < 8; i++) {
        expect(await s.sweepSessions(opts)).toEqual([]);
        await t.pass(20);
      }
      // Detached by a sweep: its connection can no longer detach it...
      expect(await s.sessionDetach(id, 'c1', 60_000)).toBe(false);
      // ...and its client comes back through another gateway.
      expect(await s.sessionResume(id, alice, other, 'c2')).toEqual(['r1']);
      expect(await s.sessionDetach(id, 'c2', 60_000)).toBe(true);
    });

    it('after a gap in sweeping longer than the node timeout (an outage), gateways get one timeout to report again', async () => {
      const s = store();
      const n = node();
      await s.nodeAlive(n);
      const id = sid();
      await s.sessionCreate(id, alice, n, 'c1');
      const opts = { nodeTimeoutMs: 150, graceMs: 100, leaseMs: 60_000, limit: 10 };
      await s.sweepSessions(opts);
      // Nobody sweeps and the gateway cannot report for longer than the timeout (time has to pass).
      await t.pass(400);
      // The first sweep after the gap does not judge; the gateway reports again and lives on.
      expect(await s.sweepSessions(opts)).toEqual([]);
      await s.nodeAlive(n);
      for (let i = 0; i < 5; i++) {
        await t.pass(60);
        await s.nodeAlive(n);
        expect(await s.sweepSessions(opts)).toEqual([]);
      }
      expect(await s.sessionDetach(id, 'c1', 60_000)).toBe(true);
    });
  });
});

describe('Sessions on Redis', () => {
  const redis = withRedisStores();

  it('session ids are opaque: an id naming another session’s key is just another id', async () => {
    const s = redis.stores().sessions;
    const u = { id: 'u', name: 'U' };
    await s.sessionCreate('x', u, 'n', 'c1');
    await s.sessionAddRoom('x', 'r1');
    for (const id of ['x:rooms', 'x}', '{x}', 'x:', '']) expect(await s.sessionResume(id, u, 'n', 'c2'), id).toBeUndefined();
    await s.sessionCreate('x:rooms', u, 'n', 'c3');
    await s.sessionCreate('{x}', u, 'n', 'c4');
    expect(await s.sessionResume('x', u, 'n', 'c5')).toEqual(['r1']);
    expect(await s.sessionResume('x:rooms', u, 'n', 'c6')).toEqual([]);
    expect(await s.sessionResume('{x}', u, 'n', 'c7')).toEqual([]);
  });
});
