/** The Typing contract (shared/typing.ts) on every backend. */
import { describe, it, expect } from 'vitest';
import type { User } from '../../shared/protocol/schemas.ts';
import type { StoreOptions } from '../../shared/stores.ts';
import type { Typing } from '../../shared/typing.ts';
import { randomId } from '../../shared/ids.ts';
import { contract, range, room, withRedisStores, leaseTypingRooms } from './harness.ts';
import { until } from '../harness/wait.ts';

contract('Typing', (t) => {
  const store = (opts?: Partial<StoreOptions>) => t.stores(opts).typing;
  const twin = (opts?: Partial<StoreOptions>) => t.twin(opts).map((s) => s.typing) as [Typing, Typing];

  describe('typing', () => {
    const alice = { id: 'u-alice', name: 'Alice' };
    const bob = { id: 'u-bob', name: 'Bob' };
    const carol = { id: 'u-0carol', name: 'Carol' };
    const long = 60_000;

    it('set, refresh and unset report whether the set changed; users are ordered by id', async () => {
      const s = store();
      const r = room();
      expect(await s.typingSet(r, alice, false, long)).toEqual({ changed: false, users: [] });
      expect(await s.typingSet(r, alice, true, long)).toEqual({ changed: true, users: [alice] });
      expect(await s.typingSet(r, alice, true, long)).toEqual({ changed: false, users: [alice] });
      expect(await s.typingSet(r, bob, true, long)).toEqual({ changed: true, users: [alice, bob] });
      expect(await s.typingSet(r, carol, true, long)).toEqual({ changed: true, users: [carol, alice, bob] });
      expect(await s.typingSet(r, alice, false, long)).toEqual({ changed: true, users: [carol, bob] });
      expect(await s.typingSet(r, alice, false, long)).toEqual({ changed: false, users: [carol, bob] });
      const bobby = { id: bob.id, name: 'Bobby' };
      expect(await s.typingSet(r, bobby, true, long)).toEqual({ changed: false, users: [carol, bobby] });
      // Rooms are apart.
      expect(await s.typingSet(room(), alice, true, long)).toEqual({ changed: true, users: [alice] });
      expect(await s.sweepTyping(100)).toEqual([]);
    });

    it('an expired entry is never in users, even before a sweep; the call that drops it reports it', async () => {
      const s = store();
      const r = room();
      await s.typingSet(r, alice, true, 150);
      await s.typingSet(r, bob, true, long);
      const res = await t.until('alice’s entry to expire', async () => {
        const x = await s.typingSet(r, bob, true, long);
        if (x.users.some((u) => u.id === alice.id)) {
          expect(x).toEqual({ changed: false, users: [alice, bob] });
          return undefined;
        }
        return x;
      });
      expect(res).toEqual({ changed: true, users: [bob] });
      // Reported once: the sweep has nothing left to say about this room.
      expect(await s.sweepTyping(100)).toEqual([]);
      expect(await s.typingSet(r, bob, true, long)).toEqual({ changed: false, users: [bob] });
    });

    it('sweepTyping reports each expiry once, with who is still typing, and later the rest', async () => {
      const s = store();
      const [mixed, quiet, busy] = [room(), room(), room()];
      await s.typingSet(mixed, alice, true, 150);
      await s.typingSet(mixed, bob, true, 1500);
      await s.typingSet(quiet, carol, true, 150);
      await s.typingSet(busy, carol, true, long);
      const reports: { room: string; users: User[] }[] = [];
      await t.until('three reports', async () => {
        reports.push(...(await s.sweepTyping(100)));
        return reports.length >= 3 ? true : undefined;
      });
      // Alice's expiry in `mixed` (Bob still typing) and Carol's in `quiet`, in either order, then Bob's.
      expect(reports.slice(0, 2).sort((x, y) => x.users.length - y.users.length)).toEqual([
        { room: quiet, users: [] },
        { room: mixed, users: [bob] },
      ]);
      expect(reports[2]).toEqual({ room: mixed, users: [] });
      expect(await s.sweepTyping(100)).toEqual([]);
      expect(await s.typingSet(mixed, bob, true, long)).toEqual({ changed: true, users: [bob] });
      expect(await s.typingSet(quiet, carol, false, long)).toEqual({ changed: false, users: [] });
      expect(await s.typingSet(busy, carol, true, long)).toEqual({ changed: false, users: [carol] });
    });

    it('with concurrent sweepers each room’s expiry is reported by one of them, at most limit rooms per sweep', async () => {
      const [a, b] = twin();
      const rooms = range(1, 12).map(() => room());
      for (const [i, r] of rooms.entries()) await (i % 2 ? a : b).typingSet(r, i % 3 ? alice : bob, true, 150);
      const seen = new Map<string, User[]>();
      await t.until('every room to be reported', async () => {
        const rounds = await Promise.all([a.sweepTyping(5), b.sweepTyping(5), a.sweepTyping(5)]);
        for (const round of rounds) {
          expect(round.length).toBeLessThanOrEqual(5);
          for (const x of round) {
            expect(seen.has(x.room), `${x.room} reported twice`).toBe(false);
            seen.set(x.room, x.users);
          }
        }
        return seen.size >= rooms.length ? true : undefined;
      });
      expect([...seen.keys()].sort()).toEqual([...rooms].sort());
      expect([...seen.values()].every((users) => users.length === 0)).toBe(true);
      expect([...(await a.sweepTyping(100)), ...(await b.sweepTyping(100))]).toEqual([]);
    });
  });
});

describe('Typing on Redis', () => {
  const redis = withRedisStores();


  it('a typing sweeper that dies holding rooms: they are swept again after its lease', async () => {
    const prefix = `tl${randomId(6)}:`;
    const s = redis.stores(prefix).typing;
    const raw = redis.raw();
    const r = room();
    const u = { id: 'u', name: 'U' };
    await s.typingSet(r, u, true, 50);
    await s.typingSet(r, { id: 'v', name: 'V' }, true, 60_000);
    // The dead sweeper: leased the room, never expired it.
    await until('the room to be leased', () => leaseTypingRooms(raw, prefix).then((rooms) => (rooms.includes(r) ? true : undefined)));
    expect(await s.sweepTyping(10)).toEqual([]);
    const t0 = Date.now();
    const swept = await until('the lease to run out', () => s.sweepTyping(10).then((x) => (x.length ? x : undefined)), 10_000);
    expect(Date.now() - t0).toBeGreaterThan(1000);
    expect(swept).toEqual([{ room: r, users: [{ id: 'v', name: 'V' }] }]);
  });
});
