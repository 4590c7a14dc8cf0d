import type { User } from './protocol/schemas.ts';
import { bucketOf, INDEX_BUCKETS, usersOf, type RedisConnection } from './redis-connection.ts';
import { byCodeUnit } from './stores.ts';
import { TYPING_SLACK_MS, type Typing } from './typing.ts';

/**
 * Typing on Redis.
 *
 * Keys of room R (in the room's slot, see `RedisConnection.roomKeys`):
 *   typing  zset  userId → expiry ms   TTL latest expiry + TYPING_SLACK_MS
 *   tname   hash  userId → name        (same)
 * Keys of the typing sweep, in INDEX_BUCKETS buckets by room (`bucketOf(room)`), each one hash tag
 * `{t:B}` (one slot; on a Redis Cluster the buckets spread over the shards); members are room
 * names as they are:
 *   <p>{t:B}:due     zset  room → its earliest typing expiry, or earlier   TTL latest score + slack
 *   <p>{t:B}:tlease  zset  room → end of a sweeper's lease on it           TTL lease + slack
 * A sweep leases due rooms bucket after bucket (from a random one) up to its limit.
 * A typingSet that adds an entry notes the room in `due` before its room script (so a worker killed
 * between the two leaves a note: an early note only costs a sweep that finds nothing) and again with
 * the room's next expiry after it (a sweep that leased the room in between may have run before the
 * entry existed; `typing_done` never removes a room from `due` for that reason). The sweep leases due
 * rooms (`typing_due`), runs `typing_set` with no change on each (which reports a room only if it
 * removed entries, so exactly one caller reports each expiry, even against a concurrent typingSet),
 * then re-notes rooms still typing and releases the lease (`typing_done`). A sweeper that dies leaves
 * its lease, which ends after TYPING_LEASE_MS; the rooms are then due again.
 */
export class TypingRedis implements Typing {
  constructor(private readonly conn: RedisConnection) {}

  async typingSet(room: string, user: User, typing: boolean, ttlMs: number): Promise<{ changed: boolean; users: User[] }> {
    const k = this.conn.roomKeys(room);
    const t = this.sweepKeys(bucketOf(room));
    const ttl = Math.max(1, Math.floor(ttlMs));
    const set = () => this.conn.run<TypingReply>('typing_set', [k.typing, k.tname], [typing ? '1' : '0', user.id, user.name, ttl, TYPING_SLACK_MS]);
    if (!typing) return typersOf(await set());
    // Noted before (so that a worker killed after the room script leaves a note) and after (see the
    // class comment); both are sent at once, in this order, on the one connection.
    const [, res] = await Promise.all([this.conn.run('typing_index', [t.due], [room, '', ttl, TYPING_SLACK_MS]), set()]);
    const next = res[1];
    if (next !== '') await this.conn.run('typing_index', [t.due], [room, next, 0, TYPING_SLACK_MS]);
    return typersOf(res);
  }

  async sweepTyping(limit: number): Promise<{ room: string; users: User[] }[]> {
    const max = Math.max(0, Math.floor(limit));
    const rooms: string[] = [];
    const leases: { t: ReturnType<TypingRedis['sweepKeys']>; end: string }[] = [];
    const first = Math.floor(Math.random() * INDEX_BUCKETS);
    for (let i = 0; i < INDEX_BUCKETS && rooms.length < max; i++) {
      const t = this.sweepKeys((first + i) % INDEX_BUCKETS);
      const [leaseEnd, ...got] = await this.conn.run<[string, ...string[]]>('typing_due', [t.due, t.lease], [max - rooms.length, TYPING_LEASE_MS, TYPING_SLACK_MS]);
      for (const room of got) {
        rooms.push(room);
        leases.push({ t, end: leaseEnd });
      }
    }
    const results = await Promise.all(
      rooms.map((room) => {
        const k = this.conn.roomKeys(room);
        return this.conn.run<TypingReply>('typing_set', [k.typing, k.tname], ['', '', '', 0, TYPING_SLACK_MS]);
      }),
    );
    await Promise.all(
      rooms.map((room, i) => {
        const { t, end } = leases[i]!;
        return this.conn.run('typing_done', [t.due, t.lease], [room, results[i]![1], end, TYPING_SLACK_MS]);
      }),
    );
    const out: { room: string; users: User[] }[] = [];
    for (const [i, room] of rooms.entries()) {
      const res = typersOf(results[i]!);
      if (res.changed) out.push({ room, users: res.users });
    }
    return out;
  }

  private sweepKeys(bucket: number) {
    const tag = this.conn.bucketTag('t', bucket);
    return { due: `${tag}:due`, lease: `${tag}:tlease` };
  }
}

/** How long a sweeper holds the rooms it is expiring; if it dies, their `typing` events are that late. */
const TYPING_LEASE_MS = 3000;

/** changed (0|1), next expiry ('' when nobody types), then userId, name pairs. */
type TypingReply = [number, string, ...string[]];

function typersOf([changed, , ...flat]: TypingReply): { changed: boolean; users: User[] } {
  return { changed: changed === 1, users: usersOf(flat).sort((a, b) => byCodeUnit(a.id, b.id)) };
}
