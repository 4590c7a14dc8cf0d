/** The Presence contract (shared/presence.ts) on every backend. */
import { describe, it, expect } from 'vitest';
import type { User } from '../../shared/protocol/schemas.ts';
import type { StoreOptions } from '../../shared/stores.ts';
import { contract, range, room } from './harness.ts';

contract('Presence', (t) => {
  const store = (opts?: Partial<StoreOptions>) => t.stores(opts).presence;
  const byId = (users: User[]) => [...users].sort((a, b) => a.id.localeCompare(b.id));

  describe('presence', () => {
    const alice = { id: 'u-alice', name: 'Alice' };
    const bob = { id: 'u-bob', name: 'Bob' };

    it('join and leave: firstForUser and lastForUser with two connections of one user', async () => {
      const s = store();
      const r = room();
      expect(await s.presenceMembers(r)).toEqual([]);

      const a1 = await s.presenceAdd(r, { connId: 'c1', user: alice, node: 'n1' });
      expect(a1.firstForUser).toBe(true);
      expect(a1.members).toEqual([alice]);
      const a2 = await s.presenceAdd(r, { connId: 'c2', user: alice, node: 'n2' });
      expect(a2.firstForUser).toBe(false);
      expect(a2.members).toEqual([alice]);
      const b1 = await s.presenceAdd(r, { connId: 'c3', user: bob, node: 'n1' });
      expect(b1.firstForUser).toBe(true);
      expect(byId(b1.members)).toEqual([alice, bob]);
      expect(byId(await s.presenceMembers(r))).toEqual([alice, bob]);

      expect(await s.presenceRemove(r, 'c1')).toEqual({ user: alice, lastForUser: false });
      expect(byId(await s.presenceMembers(r))).toEqual([alice, bob]);
      expect(await s.presenceRemove(r, 'c2')).toEqual({ user: alice, lastForUser: true });
      expect(await s.presenceMembers(r)).toEqual([bob]);
      expect(await s.presenceRemove(r, 'c3')).toEqual({ user: bob, lastForUser: true });
      expect(await s.presenceMembers(r)).toEqual([]);

      // A user who left entirely joins again: first again.
      expect((await s.presenceAdd(r, { connId: 'c4', user: alice, node: 'n1' })).firstForUser).toBe(true);
    });

    it('adding the same connection twice is a no-op', async () => {
      const s = store();
      const r = room();
      expect((await s.presenceAdd(r, { connId: 'c1', user: alice, node: 'n1' })).firstForUser).toBe(true);
      const again = await s.presenceAdd(r, { connId: 'c1', user: alice, node: 'n1' });
      expect(again).toEqual({ firstForUser: false, members: [alice] });
      // Counted once: one remove is the last.
      expect(await s.presenceRemove(r, 'c1')).toEqual({ user: alice, lastForUser: true });
      expect(await s.presenceMembers(r)).toEqual([]);
    });

    it('removing an unknown connection changes nothing', async () => {
      const s = store();
      const r = room();
      expect(await s.presenceRemove(r, 'nope')).toEqual({ lastForUser: false });
      await s.presenceAdd(r, { connId: 'c1', user: alice, node: 'n1' });
      const res = await s.presenceRemove(r, 'nope');
      expect(res.user).toBeUndefined();
      expect(res.lastForUser).toBe(false);
      expect(await s.presenceMembers(r)).toEqual([alice]);
      expect(await s.presenceRemove(r, 'c1')).toEqual({ user: alice, lastForUser: true });
      expect(await s.presenceRemove(r, 'c1')).toEqual({ lastForUser: false });
    });

    it('lists each user once and keeps rooms apart', async () => {
      const s = store();
      const [r1, r2] = [room(), room()];
      for (let i = 0; i < 5; i++) await s.presenceAdd(r1, { connId: `a${i}`, user: alice, node: `n${i % 2}` });
      await s.presenceAdd(r1, { connId: 'b0', user: bob, node: 'n0' });
      await s.presenceAdd(r2, { connId: 'b1', user: bob, node: 'n1' });
      expect(byId(await s.presenceMembers(r1))).toEqual([alice, bob]);
      expect(await s.presenceMembers(r2)).toEqual([bob]);
      // Bob's connection in r2 is not his last in r1 and vice versa.
      expect(await s.presenceRemove(r1, 'b0')).toEqual({ user: bob, lastForUser: true });
      expect(await s.presenceMembers(r2)).toEqual([bob]);
    });

    it('firstForUser and lastForUser are exact under concurrency', async () => {
      const s = store();
      const r = room();
      const conns = range(1, 30).map((i) => `c${i}`);
      const adds = await Promise.all(conns.map((connId, i) => s.presenceAdd(r, { connId, user: i % 3 ? alice : bob, node: 'n' })));
      expect(adds.filter((a) => a.firstForUser)).toHaveLength(2);
      expect(byId(await s.presenceMembers(r))).toEqual([alice, bob]);
      const removes = await Promise.all(conns.map((c) => s.presenceRemove(r, c)));
      expect(removes.filter((x) => x.lastForUser).map((x) => x.user).sort((a, b) => a!.id.localeCompare(b!.id))).toEqual([alice, bob]);
      expect(removes.every((x) => x.user !== undefined)).toBe(true);
      expect(await s.presenceMembers(r)).toEqual([]);
    });
  });
});
