/**
 * The Stores bundle (shared/stores.ts) on every backend: one lifecycle for all the ports; and what
 * only the Redis stores promise about their keys and their connection.
 */
import { describe, it, expect } from 'vitest';
import { randomId } from '../../shared/ids.ts';
import type { StoredNotification } from '../../shared/notifications.ts';
import { bucketOf, INDEX_BUCKETS } from '../../shared/redis-connection.ts';
import { contract, head, range, room, tail, ts, withRedisStores, leaseTypingRooms } from './harness.ts';
import { until } from '../harness/wait.ts';

contract('Stores', (t) => {
  describe('lifecycle', () => {
    it('ping resolves; calls after close reject, on every port', async () => {
      const s = t.stores();
      await expect(s.ping()).resolves.toBeUndefined();
      await s.close();
      await expect(s.ping()).rejects.toThrow();
      const u = { id: 'u', name: 'U' };
      await expect(s.history.append(room(), { head, tail: tail(1), ts: ts() })).rejects.toThrow();
      await expect(s.presence.presenceMembers(room())).rejects.toThrow();
      await expect(s.sessions.sessionCreate('s1', u, 'n', 'c')).rejects.toThrow();
      await expect(s.typing.typingSet(room(), u, true, 1000)).rejects.toThrow();
      await expect(s.notifications.notificationsUnread('u')).rejects.toThrow();
      await expect(s.tickets.ticketTake('x')).rejects.toThrow();
    });
  });
});


describe('Redis stores: keys and connection', () => {
  // A local process, so that it can be stopped and started again.
  const redis = withRedisStores({ local: true });
  const stores = (keyPrefix: string) => redis.stores(keyPrefix);

  it('every key it writes has a TTL', async () => {
    const prefix = `ttl${randomId(6)}:`;
    const s = stores(prefix);
    const raw = redis.raw();
    const [r, empty] = [room(), room()];
    await s.history.history(empty, { limit: 1 });
    await s.history.append(r, { head, tail: tail(1), ts: ts(), dedupeKey: 'k' });
    await s.presence.presenceAdd(r, { connId: 'c1', user: { id: 'u', name: 'U' }, node: 'n' });
    // Sessions in every state: attached (n1), detached (s3), leased to a sweeper (s2).
    const u = { id: 'u', name: 'U' };
    const ss = s.sessions;
    await ss.nodeAlive('n1');
    await ss.sessionCreate('s1', u, 'n1', 'c1');
    await ss.sessionAddRoom('s1', r);
    await ss.sessionCreate('s2', u, 'n1', 'c2');
    await ss.sessionAddRoom('s2', r);
    await ss.sessionDetach('s2', 'c2', 0);
    await ss.sessionCreate('s3', u, 'n2', 'c3');
    await ss.sessionDetach('s3', 'c3', 60_000);
    expect((await ss.sweepSessions({ nodeTimeoutMs: 60_000, graceMs: 60_000, leaseMs: 60_000, limit: 10 })).map((x) => x.sessionId)).toEqual(['s2']);
    // Typing, and a typing sweeper that died holding a lease on a room.
    await s.typing.typingSet(r, u, true, 60_000);
    const typed = room();
    await s.typing.typingSet(typed, u, true, 1);
    await until('the typing sweep lease', () => leaseTypingRooms(raw, prefix).then((rooms) => (rooms.includes(typed) ? true : undefined)));
    // Notifications: a user with read and unread ones (all three keys), one whose are all read.
    const note = (id: string): StoredNotification => ({ id, kind: 'info', title: 't', body: 'b', ts: ts(), read: false });
    const n = s.notifications;
    await n.notificationsAdd([{ userId: 'u{1}', notification: note('n1') }, { userId: 'u{1}', notification: note('n2') }, { userId: 'v', notification: note('n1') }]);
    await n.notificationsRead('u{1}', { ids: ['n1'] });
    await n.notificationsRead('v', { all: true });
    await n.notificationsList('u{1}', { limit: 10 });
    await s.tickets.ticketPut('tk', 'data', 60_000);

    const keys = await raw.keys(`${prefix}*`);
    const expected = ['dd:k', 'hist', 'meta', 'pconn', 'pcount', 'pname', 'typing', 'tname'].map((k) => `${prefix}{r:${r}}:${k}`);
    // Sessions and the typing sweep live in index buckets: a session's keys in its id's bucket, a
    // node set in each bucket it has sessions in, and every bucket swept (and told of node n1, n2).
    const sb = (sid: string) => `${prefix}{s:${bucketOf(sid)}}:`;
    const every = (suffix: string) => range(0, INDEX_BUCKETS - 1).map((b) => `${prefix}{s:${b}}:${suffix}`);
    const sessionKeys = [
      ...['s1', 's2', 's3'].map((sid) => `${sb(sid)}sess:${sid}`),
      ...['s1', 's2'].map((sid) => `${sb(sid)}rooms:${sid}`),
      ...new Set([`${sb('s2')}detached`, `${sb('s3')}detached`]),
      ...every('nodes'),
      ...every('swept'),
      `${sb('s1')}node:n1`,
    ];
    // Room r is noted due in its bucket (its entry expires in a minute); `typed` was moved from its
    // bucket's due index to that bucket's leases.
    const tb = (room: string) => `${prefix}{t:${bucketOf(room)}}`;
    const typingKeys = [`${tb(r)}:due`, `${tb(typed)}:tlease`, `${prefix}{r:${typed}}:typing`, `${prefix}{r:${typed}}:tname`];
    const notificationKeys = [
      ...['nitems', 'norder', 'nunread'].map((k) => `${prefix}{u:u%7B1%7D}:${k}`),
      ...['nitems', 'norder'].map((k) => `${prefix}{u:v}:${k}`),
    ];
    // The room read but never joined left no key.
    expect(keys.sort()).toEqual([...expected, ...sessionKeys, ...typingKeys, ...notificationKeys, `${prefix}{k}:ticket:tk`].sort());
    for (const k of keys) expect(await raw.pttl(k), k).toBeGreaterThan(0);
    // The three keys of a user share one TTL: notificationsTtlMs (30 days by default).
    for (const k of notificationKeys) {
      const left = await raw.pttl(k);
      expect(left, k).toBeLessThanOrEqual(30 * 24 * 3600_000);
      expect(left, k).toBeGreaterThan(30 * 24 * 3600_000 - 60_000);
    }
  });

  it('all the stores share one connection', async () => {
    const raw = redis.raw();
    const clients = async () => String(await raw.call('CLIENT', 'LIST')).split('\n').filter(Boolean).length;
    const before = await clients();
    const s = stores(`one${randomId(6)}:`);
    const u = { id: 'u', name: 'U' };
    await Promise.all([
      s.history.history(room(), { limit: 1 }),
      s.presence.presenceMembers(room()),
      s.sessions.nodeAlive('n'),
      s.typing.typingSet(room(), u, false, 1000),
      s.notifications.notificationsUnread('u'),
      s.tickets.ticketTake('x'),
    ]);
    expect(await clients()).toBe(before + 1);
  });

  it('rejects with unavailable within a bounded time while Redis is down, then reconnects', async () => {
    const s = stores(`down${randomId(6)}:`);
    const r = room();
    const before = await s.history.append(r, { head, tail: tail(1), ts: ts() });
    await redis.service().stop();

    const note: StoredNotification = { id: 'n', kind: 'info', title: 't', body: 'b', ts: ts(), read: false };
    const calls = [
      () => s.history.append(r, { head, tail: tail(2), ts: ts() }),
      () => s.history.history(r, { limit: 1 }),
      () => s.ping(),
      () => s.notifications.notificationsAdd(range(1, 600).map((i) => ({ userId: `u${i}`, notification: note }))),
      () => s.notifications.notificationsList('u1', { limit: 10 }),
      () => s.notifications.notificationsRead('u1', { all: true }),
      () => s.notifications.notificationsUnread('u1'),
      () => s.presence.presenceMembers(r),
      () => s.sessions.nodeAlive('n'),
      () => s.tickets.ticketTake('x'),
    ];
    for (const call of calls) {
      const t0 = Date.now();
      const err = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(Date.now() - t0).toBeLessThan(5000);
      expect(err).toMatchObject({ name: 'RtError', code: 'unavailable' });
    }

    await redis.service().restart();
    await until('the store to reconnect', () => s.ping().then(() => true, () => undefined), 10_000);
    // This Redis keeps nothing across restarts: the history is gone, the epoch tells.
    const after = await s.history.append(r, { head, tail: tail(3), ts: ts() });
    expect(after.seq).toBe(1);
    expect(after.epoch).not.toBe(before.epoch);
  });
});
