import type { User } from './protocol/schemas.ts';
import type { RedisConnection } from './redis-connection.ts';
import { NODE_SWEEP_BATCH, SESSION_TTL_MS, type ExpiredSession, type Sessions } from './sessions.ts';
import { byCodeUnit } from './stores.ts';

/**
 * Sessions on Redis, one script per step (`session_*.lua`, `node_alive.lua`, `sweep_sessions.lua`).
 *
 * Keys, one slot ({s}) so each session step is one script; scripts build the keys of sessions and
 * nodes they find (same slot) from the base `<p>{s}:`:
 *   <p>{s}:sess:<sid>   hash  uid, name, node, conn, state (attached|detached|expired), due
 *   <p>{s}:rooms:<sid>  set   the session's rooms                   TTLs of both: ≥ SESSION_TTL_MS
 *   <p>{s}:detached     zset  sid → deadline (detached) or lease end (expired)   TTL ≥ its members'
 *   <p>{s}:nodes        zset  node → last sign of life ms           TTL SESSION_TTL_MS, renewed by nodeAlive
 *   <p>{s}:node:<node>  set   sids attached on the node             TTL SESSION_TTL_MS
 *   <p>{s}:swept        string when sweepSessions last ran          TTL SESSION_TTL_MS
 * Session TTLs are set by create and renewed (never shortened) by resume, room adds, detach
 * (grace + TTL) and leases (lease + TTL). A session attached for days is kept by its gateway:
 * `nodeAlive` renews the node set's TTL, and its members' with it, whenever it has fallen below
 * half, so a member always outlives its node set. The rooms set is `rooms:<sid>`, not
 * `sess:<sid>:rooms`, because session ids come from clients (`?session=`): the id "x:rooms" must
 * not name session x's rooms set. All times are Redis's (`now_ms()` in the scripts), so the
 * workers' clocks do not matter.
 */
export class SessionsRedis implements Sessions {
  constructor(private readonly conn: RedisConnection) {}

  async sessionCreate(sessionId: string, user: User, node: string, connId: string): Promise<void> {
    const k = this.keys(sessionId);
    await this.conn.run('session_create', [k.sess, k.rooms, k.detached, k.nodes, k.node(node)], [
      sessionId, user.id, user.name, node, connId, SESSION_TTL_MS, k.base,
    ]);
  }

  async sessionResume(sessionId: string, user: User, node: string, connId: string): Promise<string[] | undefined> {
    const k = this.keys(sessionId);
    const rooms = await this.conn.run<string[] | null>('session_resume', [k.sess, k.rooms, k.detached, k.nodes, k.node(node)], [
      sessionId, user.id, user.name, node, connId, SESSION_TTL_MS, k.base,
    ]);
    return rooms ? rooms.sort(byCodeUnit) : undefined;
  }

  async sessionAddRoom(sessionId: string, room: string): Promise<void> {
    const k = this.keys(sessionId);
    await this.conn.run('session_room', [k.sess, k.rooms], ['1', room, SESSION_TTL_MS]);
  }

  async sessionRemoveRoom(sessionId: string, room: string): Promise<void> {
    const k = this.keys(sessionId);
    await this.conn.run('session_room', [k.sess, k.rooms], ['0', room, SESSION_TTL_MS]);
  }

  async sessionDetach(sessionId: string, connId: string, graceMs: number): Promise<boolean> {
    const k = this.keys(sessionId);
    const grace = Math.max(0, Math.floor(graceMs));
    return (await this.conn.run<number>('session_detach', [k.sess, k.rooms, k.detached], [sessionId, connId, grace, SESSION_TTL_MS, k.base])) === 1;
  }

  async nodeAlive(node: string): Promise<void> {
    const k = this.keys('');
    await this.conn.run('node_alive', [k.nodes, k.node(node)], [node, SESSION_TTL_MS, k.base]);
  }

  async sweepSessions(opts: { nodeTimeoutMs: number; graceMs: number; leaseMs: number; limit: number }): Promise<ExpiredSession[]> {
    const k = this.keys('');
    const ms = (n: number) => Math.max(0, Math.floor(n));
    const res = await this.conn.run<[string, string, string, ...string[]][]>('sweep_sessions', [k.nodes, k.detached], [
      ms(opts.nodeTimeoutMs), ms(opts.graceMs), ms(opts.leaseMs), ms(opts.limit), SESSION_TTL_MS, k.base, NODE_SWEEP_BATCH,
    ]);
    return res.map(([sessionId, id, name, ...rooms]) => ({ sessionId, user: { id, name }, rooms: rooms.sort(byCodeUnit) }));
  }

  async sessionReaped(sessionId: string): Promise<void> {
    const k = this.keys(sessionId);
    await this.conn.run('session_reaped', [k.sess, k.rooms, k.detached], [sessionId, k.base]);
  }

  private keys(sessionId: string) {
    const base = `${this.conn.prefix}{s}:`;
    return {
      base,
      sess: `${base}sess:${sessionId}`,
      rooms: `${base}rooms:${sessionId}`,
      detached: `${base}detached`,
      nodes: `${base}nodes`,
      node: (node: string) => `${base}node:${node}`,
    };
  }
}
