import type { AppendEntry, AppendResult, History, HistoryPage, HistoryQuery } from './history.ts';
import { randomId } from './ids.ts';
import type { RedisConnection } from './redis-connection.ts';
import type { StoreOptions } from './stores.ts';

/**
 * History on Redis: one script per step (`append.lua`, `history.lua`), one round trip per call.
 *
 * Keys of room R (all in the room's slot, see `RedisConnection.roomKeys`):
 *   meta      hash   seq, epoch                     TTL historyTtlMs, refreshed by append;
 *                                                   seq 0: only while the room has members
 *   hist      zset   score seq, member "seq:entry"  TTL historyTtlMs, refreshed by append; ≤ historyMax
 *   dd:<key>  string "seq|epoch|ts"                 TTL dedupeTtlMs
 * The meta hash and the history expire together; if the meta is gone, the history is gone too as
 * far as readers can tell (a lone history left by eviction is deleted when the meta is recreated).
 * A read of a room without meta creates it only when the room's presence (`pconn`) exists.
 */
export class HistoryRedis implements History {
  constructor(
    private readonly conn: RedisConnection,
    private readonly opts: Pick<StoreOptions, 'historyMax' | 'historyTtlMs' | 'dedupeTtlMs'>,
  ) {}

  async append(room: string, entry: AppendEntry): Promise<AppendResult> {
    const k = this.conn.roomKeys(room);
    const keys = entry.dedupeKey === undefined ? [k.meta, k.hist] : [k.meta, k.hist, k.dedupe(entry.dedupeKey)];
    const o = this.opts;
    const [seq, epoch, ts, duplicate] = await this.conn.runDurable<[number, string, string, number]>('append', keys, [
      entry.head, entry.tail, entry.ts, o.historyMax, o.historyTtlMs, o.dedupeTtlMs, randomId(8),
    ]);
    return { seq, epoch, ts, duplicate: duplicate === 1 };
  }

  async history(room: string, query: HistoryQuery): Promise<HistoryPage> {
    const k = this.conn.roomKeys(room);
    const limit = Math.max(0, Math.floor(query.limit));
    const [seq, epoch, oldest, ...members] = await this.conn.run<(string | number)[]>('history', [k.meta, k.hist, k.pconn], [
      randomId(8), this.opts.historyTtlMs, bound(query.after), bound(query.before), limit,
    ]);
    return {
      seq: seq as number,
      epoch: epoch as string,
      oldest: oldest as number,
      entries: (members as string[]).map((m) => m.slice(m.indexOf(':') + 1)),
    };
  }
}

function bound(n: number | undefined): string {
  return n === undefined ? '' : String(n);
}
