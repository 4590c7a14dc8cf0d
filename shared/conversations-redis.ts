import { CONVERSATIONS_MAX, CURSORS_MAX, type ConversationEntry, type ConversationTouch, type Conversations } from './conversations.ts';
import type { User } from './protocol/schemas.ts';
import type { RedisConnection } from './redis-connection.ts';
import type { StoreOptions } from './stores.ts';

/**
 * Conversations and read cursors on Redis: one script per step (`conversation_touch.lua`,
 * `conversations_list.lua`, `read_set.lua`), each on one user's keys only.
 *
 * Keys of user U (U escaped as in `RedisConnection.userTag`):
 *   <p>{u:U}:conv    hash  room → JSON {with, seq, epoch, last}   ≤ CONVERSATIONS_MAX, TTL historyTtlMs
 *   <p>{u:U}:corder  zset  room → order (higher: more recent)   refreshed by every change (both keys)
 *   <p>{u:U}:read    hash  room → "<seq>|<epoch>"               ≤ CURSORS_MAX, TTL historyTtlMs
 *   <p>{u:U}:readat  zset  room → ms of the last move            refreshed by every move (both keys)
 */
export class ConversationsRedis implements Conversations {
  constructor(
    private readonly conn: RedisConnection,
    private readonly opts: Pick<StoreOptions, 'historyTtlMs'>,
  ) {}

  async conversationTouch(userId: string, c: ConversationTouch): Promise<boolean> {
    const k = this.keys(userId);
    const changed = await this.conn.run<number>('conversation_touch', [k.conv, k.corder], [
      c.room, c.with.id, c.with.name, c.withName ? '1' : '0', c.seq, c.epoch, c.last, CONVERSATIONS_MAX, this.opts.historyTtlMs,
    ]);
    return changed === 1;
  }

  async conversationWith(userId: string, room: string): Promise<User | undefined> {
    const entry = await this.conn.call(this.conn.redis.hget(this.keys(userId).conv, room));
    if (entry === null) return undefined;
    const { with: w } = JSON.parse(entry) as StoredEntry;
    return { id: w.id, name: w.name };
  }

  async conversationsList(userId: string, query: { limit: number; before?: number }): Promise<ConversationEntry[]> {
    const k = this.keys(userId);
    const limit = Math.max(0, Math.floor(query.limit));
    if (limit === 0) return [];
    const flat = await this.conn.run<string[]>('conversations_list', [k.conv, k.corder, k.read], [limit, query.before === undefined ? '' : query.before]);
    const out: ConversationEntry[] = [];
    for (let i = 0; i + 3 < flat.length; i += 4) {
      const e = JSON.parse(flat[i + 1]!) as StoredEntry;
      out.push({ room: flat[i]!, with: { id: e.with.id, name: e.with.name }, seq: e.seq, epoch: e.epoch, last: e.last, order: Number(flat[i + 2]), read: cursorIn(flat[i + 3]!, e.epoch) });
    }
    return out;
  }

  async readSet(userId: string, room: string, seq: number, epoch: string): Promise<{ seq: number; moved: boolean }> {
    const k = this.keys(userId);
    const [at, moved] = await this.conn.run<[number, number]>('read_set', [k.read, k.readat], [room, seq, epoch, CURSORS_MAX, this.opts.historyTtlMs]);
    return { seq: at, moved: moved === 1 };
  }

  async readGet(userId: string, room: string, epoch: string): Promise<number> {
    const cur = await this.conn.call(this.conn.redis.hget(this.keys(userId).read, room));
    return cur === null ? 0 : cursorIn(cur, epoch);
  }

  private keys(userId: string) {
    const tag = this.conn.userTag(userId);
    return { conv: `${tag}:conv`, corder: `${tag}:corder`, read: `${tag}:read`, readat: `${tag}:readat` };
  }
}

interface StoredEntry {
  with: User;
  seq: number;
  epoch: string;
  last: string;
}

/** A stored cursor "<seq>|<epoch>" as a seq in `epoch` (0: none, or of another epoch). */
function cursorIn(stored: string, epoch: string): number {
  const bar = stored.indexOf('|');
  return bar > 0 && stored.slice(bar + 1) === epoch ? Number(stored.slice(0, bar)) : 0;
}
