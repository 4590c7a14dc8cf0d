import type { AppendEntry, AppendResult, History, HistoryPage, HistoryQuery } from './history.ts';
import { randomId } from './ids.ts';
import type { RedisConnection } from './redis-connection.ts';
import type { StoreOptions } from './stores.ts';
import { TurnBatch } from './turn-batch.ts';

/**
 * History on Redis: one script per step (`append.lua`, `history.lua`), one round trip per call;
 * on one Redis the appends of a turn share one call (`append_many.lua`).
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
/** Most messages one `append_many` call carries (a turn's appends beyond it go in several calls). */
const MAX_APPENDS_PER_CALL = 64;

interface PendingAppend {
  room: string;
  entry: AppendEntry;
}

export class HistoryRedis implements History {
  /**
   * Epoch candidates: a random prefix per process and a counter. Every append and read carries one
   * (the script keeps it only when it creates the history), and drawing 8 random bytes from the
   * kernel for each was a visible share of the worker's CPU. Unique across processes by the 72
   * random bits of the prefix, within one by the counter.
   */
  private readonly epochPrefix = randomId(9);
  private epochCount = 0;

  constructor(
    private readonly conn: RedisConnection,
    private readonly opts: Pick<StoreOptions, 'historyMax' | 'historyTtlMs' | 'dedupeTtlMs'>,
  ) {}

  /** Appends of this turn, to go out as one `append_many` call. */
  private readonly appends = new TurnBatch<PendingAppend, AppendResult>((batch) => this.appendMany(batch), MAX_APPENDS_PER_CALL);

  /**
   * On one Redis the appends made in one turn (the publishes of a batch of requests) go out as one
   * script call, `append_many`, in order: one command, one reply and one promise settled per
   * message instead of a command each. On a Cluster, or waiting for replicas, each goes alone.
   */
  append(room: string, entry: AppendEntry): Promise<AppendResult> {
    return this.conn.batchable ? this.appends.add({ room, entry }) : this.appendOne(room, entry);
  }

  private async appendMany(batch: PendingAppend[]): Promise<AppendResult[]> {
    const o = this.opts;
    const keys: string[] = [];
    const args: (string | number)[] = [o.historyMax, o.historyTtlMs, o.dedupeTtlMs, this.epochCandidate()];
    for (const { room, entry } of batch) {
      const k = this.conn.roomKeys(room);
      keys.push(k.meta, k.hist);
      if (entry.dedupeKey !== undefined) keys.push(k.dedupe(entry.dedupeKey));
      args.push(entry.head, entry.tail, entry.ts, entry.dedupeKey === undefined ? 0 : 1);
    }
    const out = await this.conn.runVariadic<(string | number)[]>('append_many', keys, args);
    return batch.map((_, i) => ({ seq: out[i * 4] as number, epoch: out[i * 4 + 1] as string, ts: out[i * 4 + 2] as string, duplicate: out[i * 4 + 3] === 1 }));
  }

  private async appendOne(room: string, entry: AppendEntry): Promise<AppendResult> {
    const k = this.conn.roomKeys(room);
    const keys = entry.dedupeKey === undefined ? [k.meta, k.hist] : [k.meta, k.hist, k.dedupe(entry.dedupeKey)];
    const o = this.opts;
    const [seq, epoch, ts, duplicate] = await this.conn.runDurable<[number, string, string, number]>('append', keys, [
      entry.head, entry.tail, entry.ts, o.historyMax, o.historyTtlMs, o.dedupeTtlMs, this.epochCandidate(),
    ]);
    return { seq, epoch, ts, duplicate: duplicate === 1 };
  }

  private epochCandidate(): string {
    return this.epochPrefix + (this.epochCount++).toString(36);
  }

  async history(room: string, query: HistoryQuery): Promise<HistoryPage> {
    const k = this.conn.roomKeys(room);
    const limit = Math.max(0, Math.floor(query.limit));
    const [seq, epoch, oldest, ...members] = await this.conn.run<(string | number)[]>('history', [k.meta, k.hist, k.pconn], [
      this.epochCandidate(), this.opts.historyTtlMs, bound(query.after), bound(query.before), limit,
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
