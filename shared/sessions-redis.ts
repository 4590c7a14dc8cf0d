import type { User } from './protocol/schemas.ts';
import { bucketOf, INDEX_BUCKETS, type RedisConnection } from './redis-connection.ts';
import { NODE_SWEEP_BATCH, SESSION_TTL_MS, type ExpiredSession, type Sessions } from './sessions.ts';
import { byCodeUnit } from './stores.ts';
import { TurnBatch } from './turn-batch.ts';

interface NewSession {
  sessionId: string;
  user: User;
  node: string;
  connId: string;
}

/**
 * Sessions on Redis, one script per step (`session_*.lua`, `node_alive.lua`, `sweep_sessions.lua`).
 *
 * Keys: the sessions are spread over INDEX_BUCKETS buckets by id (`bucketOf(sid)`), each bucket one
 * hash tag `{s:B}` and so one slot, so that on a Redis Cluster the sessions and their sweep indexes
 * spread over the shards while each session step stays one script. Scripts build the keys of
 * sessions and nodes they find (same bucket, same slot) from the bucket's base `<p>{s:B}:`:
 *   <p>{s:B}:sess:<sid>   hash  uid, name, node, conn, state (attached|detached|expired), due
 *   <p>{s:B}:rooms:<sid>  set   the session's rooms                   TTLs of both: ≥ SESSION_TTL_MS
 *   <p>{s:B}:detached     zset  sid → deadline (detached) or lease end (expired)   TTL ≥ its members'
 *   <p>{s:B}:nodes        zset  node → last sign of life ms           TTL SESSION_TTL_MS, renewed by nodeAlive
 *   <p>{s:B}:node:<node>  set   the bucket's sids attached on the node  TTL SESSION_TTL_MS
 *   <p>{s:B}:swept        string when this bucket was last swept      TTL SESSION_TTL_MS
 * Gateway liveness is kept per bucket too: `nodeAlive` reports to every bucket (16 one-slot
 * scripts, sent at once), and a sweep visits every bucket, so each bucket decides on its own that a
 * node is dead, from the reports it got. A sweep leases at most `limit` sessions over all buckets,
 * starting at a random bucket so that no bucket waits behind a busy one for ever.
 *
 * Session TTLs are set by create and renewed (never shortened) by resume, room adds, detach
 * (grace + TTL) and leases (lease + TTL). A session attached for days is kept by its gateway:
 * `nodeAlive` renews the node set's TTL, and its members' with it, whenever it has fallen below
 * half, so a member always outlives its node set. The rooms set is `rooms:<sid>`, not
 * `sess:<sid>:rooms`, because session ids come from clients (`?session=`): the id "x:rooms" must
 * not name session x's rooms set. All times are Redis's (`now_ms()` in the scripts), so the
 * workers' clocks do not matter. Create, resume, room changes and detach are durable writes
 * (`runDurable`: with REDIS_WAIT_REPLICAS they are on the replicas before they resolve). On one
 * Redis without replica waits, the creates of one turn (a burst of connects) go out as one
 * `session_create_many` call.
 */
export class SessionsRedis implements Sessions {
  constructor(private readonly conn: RedisConnection) {}

  private readonly creates = new TurnBatch<NewSession, number>((batch) => this.createMany(batch));

  async sessionCreate(sessionId: string, user: User, node: string, connId: string): Promise<void> {
    if (this.conn.batchable) {
      await this.creates.add({ sessionId, user, node, connId });
      return;
    }
    const k = this.keys(sessionId);
    await this.conn.runDurable('session_create', [k.sess, k.rooms, k.detached, k.nodes, k.node(node)], [
      sessionId, user.id, user.name, node, connId, SESSION_TTL_MS, k.base,
    ]);
  }

  private async createMany(batch: NewSession[]): Promise<number[]> {
    const keys: string[] = [];
    const args: (string | number)[] = [SESSION_TTL_MS];
    for (const { sessionId, user, node, connId } of batch) {
      const k = this.keys(sessionId);
      keys.push(k.sess, k.rooms, k.detached, k.nodes, k.node(node));
      args.push(sessionId, user.id, user.name, node, connId, k.base);
    }
    const created = await this.conn.runVariadic<number>('session_create_many', keys, args);
    if (created !== batch.length) throw new Error(`redis: session_create_many created ${created} of ${batch.length} sessions`);
    return batch.map(() => 1);
  }

  async sessionResume(sessionId: string, user: User, node: string, connId: string): Promise<string[] | undefined> {
    const k = this.keys(sessionId);
    const rooms = await this.conn.runDurable<string[] | null>('session_resume', [k.sess, k.rooms, k.detached, k.nodes, k.node(node)], [
      sessionId, user.id, user.name, node, connId, SESSION_TTL_MS, k.base,
    ]);
    return rooms ? rooms.sort(byCodeUnit) : undefined;
  }

  async sessionAddRoom(sessionId: string, room: string): Promise<void> {
    const k = this.keys(sessionId);
    await this.conn.runDurable('session_room', [k.sess, k.rooms], ['1', room, SESSION_TTL_MS]);
  }

  async sessionRemoveRoom(sessionId: string, room: string): Promise<void> {
    const k = this.keys(sessionId);
    await this.conn.runDurable('session_room', [k.sess, k.rooms], ['0', room, SESSION_TTL_MS]);
  }

  async sessionDetach(sessionId: string, connId: string, graceMs: number): Promise<boolean> {
    const k = this.keys(sessionId);
    const grace = Math.max(0, Math.floor(graceMs));
    return (await this.conn.runDurable<number>('session_detach', [k.sess, k.rooms, k.detached], [sessionId, connId, grace, SESSION_TTL_MS, k.base])) === 1;
  }

  async nodeAlive(node: string): Promise<void> {
    await Promise.all(
      buckets().map((b) => {
        const k = this.bucketKeys(b);
        return this.conn.run('node_alive', [k.nodes, k.node(node)], [node, SESSION_TTL_MS, k.base]);
      }),
    );
  }

  async sweepSessions(opts: { nodeTimeoutMs: number; graceMs: number; leaseMs: number; limit: number }): Promise<ExpiredSession[]> {
    const ms = (n: number) => Math.max(0, Math.floor(n));
    const out: ExpiredSession[] = [];
    const first = Math.floor(Math.random() * INDEX_BUCKETS);
    // One bucket after the other: each leases at most what the earlier ones left of the limit.
    // Every bucket is visited even once the limit is reached, for its dead-gateway step.
    for (let i = 0; i < INDEX_BUCKETS; i++) {
      const k = this.bucketKeys((first + i) % INDEX_BUCKETS);
      const res = await this.conn.run<[string, string, string, ...string[]][]>('sweep_sessions', [k.nodes, k.detached], [
        ms(opts.nodeTimeoutMs), ms(opts.graceMs), ms(opts.leaseMs), ms(opts.limit) - out.length, SESSION_TTL_MS, k.base, NODE_SWEEP_BATCH,
      ]);
      for (const [sessionId, id, name, ...rooms] of res) out.push({ sessionId, user: { id, name }, rooms: rooms.sort(byCodeUnit) });
    }
    return out;
  }

  async sessionReaped(sessionId: string): Promise<void> {
    const k = this.keys(sessionId);
    await this.conn.run('session_reaped', [k.sess, k.rooms, k.detached], [sessionId, k.base]);
  }

  /** Plain classes, not objects holding a closure: these are built on every connect and join. */
  private keys(sessionId: string): SessionKeys {
    return new SessionKeys(this.base(bucketOf(sessionId)), sessionId);
  }

  private bucketKeys(bucket: number): BucketKeys {
    return new BucketKeys(this.base(bucket));
  }

  private base(bucket: number): string {
    return `${this.conn.bucketTag('s', bucket)}:`;
  }
}

/** The keys of one bucket `<p>{s:B}:` (see SessionsRedis). */
class BucketKeys {
  readonly detached: string;
  readonly nodes: string;

  constructor(readonly base: string) {
    this.detached = `${base}detached`;
    this.nodes = `${base}nodes`;
  }

  node(node: string): string {
    return `${this.base}node:${node}`;
  }
}

/** A session's keys: its bucket's, and its own hash and rooms set. */
class SessionKeys extends BucketKeys {
  readonly sess: string;
  readonly rooms: string;

  constructor(base: string, sessionId: string) {
    super(base);
    this.sess = `${base}sess:${sessionId}`;
    this.rooms = `${base}rooms:${sessionId}`;
  }
}

const buckets = () => Array.from({ length: INDEX_BUCKETS }, (_, b) => b);
