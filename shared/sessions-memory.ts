import { ExpiringMap, type MemoryContext } from './expiring-map.ts';
import type { User } from './protocol/schemas.ts';
import { NODE_SWEEP_BATCH, SESSION_TTL_MS, type ExpiredSession, type Sessions } from './sessions.ts';
import { byCodeUnit } from './stores.ts';

/**
 * Sessions in this process (the embedded mode), with the states and deadlines of `SessionsRedis`.
 * A session disappears `SESSION_TTL_MS` after it was last created, resumed, given a room, detached
 * or leased, or its gateway renewed it (`nodeAlive`, every `SESSION_TTL_MS / 2`): the same safety
 * net as the Redis keys' TTL, for sessions nobody sweeps.
 */
export class SessionsMemory implements Sessions {
  private readonly sessions = new ExpiringMap<string, Session>((sid, s) => this.unindex(sid, s));
  /** Sessions not attached, by id: deadline (detached) or lease end (expired). Redis: `{s}:detached`. */
  private readonly due = new Map<string, number>();
  private readonly nodes = new Map<string, GatewayNode>();
  /** When sweepSessions last ran (0: never). */
  private lastSweepAt = 0;

  constructor(private readonly ctx: MemoryContext) {}

  async sessionCreate(sessionId: string, user: User, node: string, connId: string): Promise<void> {
    this.ctx.assertOpen();
    const now = this.ctx.clock.now();
    this.sessions.delete(sessionId);
    const s: Session = { user: { id: user.id, name: user.name }, node, conn: connId, state: 'attached', due: 0, rooms: new Set(), expiresAt: now + SESSION_TTL_MS };
    this.sessions.set(sessionId, s);
    this.attach(sessionId, node, now);
  }

  async sessionResume(sessionId: string, user: User, node: string, connId: string): Promise<string[] | undefined> {
    this.ctx.assertOpen();
    const now = this.ctx.clock.now();
    const s = this.sessions.get(sessionId, now);
    if (!s || s.user.id !== user.id) return undefined;
    // Once its deadline has passed a session is the sweeper's: it never comes back.
    if (s.state === 'expired' || (s.state === 'detached' && s.due <= now)) return undefined;
    if (s.state === 'attached') {
      if (s.node !== node) this.nodes.get(s.node)?.sessions.delete(sessionId);
    } else {
      this.due.delete(sessionId);
    }
    Object.assign(s, { user: { id: user.id, name: user.name }, node, conn: connId, state: 'attached', due: 0 });
    extend(s, now + SESSION_TTL_MS);
    this.attach(sessionId, node, now);
    return [...s.rooms].sort(byCodeUnit);
  }

  async sessionAddRoom(sessionId: string, room: string): Promise<void> {
    this.ctx.assertOpen();
    const now = this.ctx.clock.now();
    const s = this.sessions.get(sessionId, now);
    if (!s) return;
    s.rooms.add(room);
    extend(s, now + SESSION_TTL_MS);
  }

  async sessionRemoveRoom(sessionId: string, room: string): Promise<void> {
    this.ctx.assertOpen();
    this.sessions.get(sessionId, this.ctx.clock.now())?.rooms.delete(room);
  }

  async sessionDetach(sessionId: string, connId: string, graceMs: number): Promise<boolean> {
    this.ctx.assertOpen();
    const now = this.ctx.clock.now();
    const s = this.sessions.get(sessionId, now);
    if (!s || s.state !== 'attached' || s.conn !== connId) return false;
    this.nodes.get(s.node)?.sessions.delete(sessionId);
    s.state = 'detached';
    s.due = now + graceMs;
    this.due.set(sessionId, s.due);
    extend(s, now + graceMs + SESSION_TTL_MS);
    return true;
  }

  async nodeAlive(node: string): Promise<void> {
    this.ctx.assertOpen();
    const now = this.ctx.clock.now();
    const n = this.nodes.get(node);
    if (!n) {
      this.nodes.set(node, { lastAlive: now, sessions: new Set(), renewedAt: now });
      return;
    }
    n.lastAlive = now;
    if (now - n.renewedAt > SESSION_TTL_MS / 2) {
      for (const sid of n.sessions) {
        const s = this.sessions.peek(sid);
        if (s) extend(s, now + SESSION_TTL_MS);
      }
      n.renewedAt = now;
    }
  }

  async sweepSessions(opts: { nodeTimeoutMs: number; graceMs: number; leaseMs: number; limit: number }): Promise<ExpiredSession[]> {
    this.ctx.assertOpen();
    const now = this.ctx.clock.now();
    // 0. After a gap in sweeping longer than the node timeout, gateways could not report either:
    //    every known one counts as alive now (as sweep_sessions.lua does).
    if (this.lastSweepAt === 0 || now - this.lastSweepAt > opts.nodeTimeoutMs) {
      for (const n of this.nodes.values()) n.lastAlive = now;
    }
    this.lastSweepAt = now;
    // 1. Dead gateways: their sessions are detached as of their last sign of life.
    let budget = NODE_SWEEP_BATCH;
    for (const [node, n] of this.nodes) {
      if (budget <= 0) break;
      if (n.lastAlive >= now - opts.nodeTimeoutMs) continue;
      const deadline = n.lastAlive + opts.graceMs;
      for (const sid of n.sessions) {
        if (budget <= 0) break;
        budget -= 1;
        n.sessions.delete(sid);
        const s = this.sessions.get(sid, now);
        if (s && s.state === 'attached' && s.node === node) {
          s.state = 'detached';
          s.due = deadline;
          this.due.set(sid, deadline);
          extend(s, now + opts.graceMs + SESSION_TTL_MS);
        }
      }
      if (n.sessions.size === 0) this.nodes.delete(node);
    }
    // 2. Lease the sessions whose deadline (or earlier lease) has passed, earliest first.
    const limit = Math.max(0, Math.floor(opts.limit));
    const due = [...this.due].filter(([, at]) => at <= now).sort((a, b) => a[1] - b[1]).slice(0, limit);
    const out: ExpiredSession[] = [];
    for (const [sid] of due) {
      const s = this.sessions.get(sid, now);
      if (!s || s.state === 'attached') {
        this.due.delete(sid);
        continue;
      }
      s.state = 'expired';
      s.due = now + opts.leaseMs;
      this.due.set(sid, s.due);
      extend(s, now + opts.leaseMs + SESSION_TTL_MS);
      out.push({ sessionId: sid, user: { ...s.user }, rooms: [...s.rooms].sort(byCodeUnit) });
    }
    return out;
  }

  async sessionReaped(sessionId: string): Promise<void> {
    this.ctx.assertOpen();
    this.sessions.delete(sessionId);
  }

  sweep(now: number): void {
    this.sessions.sweep(now);
  }

  clear(): void {
    this.sessions.clear();
    this.due.clear();
    this.nodes.clear();
  }

  /** What is held, for tests. */
  get size(): { sessions: number } {
    return { sessions: this.sessions.size };
  }

  /** A session that is gone leaves no trace (Redis: its keys, its `detached` entry, its node-set entry). */
  private unindex(sessionId: string, s: Session): void {
    this.due.delete(sessionId);
    if (s.state === 'attached') this.nodes.get(s.node)?.sessions.delete(sessionId);
  }

  /** Lists an attached session under its node; a node first seen here counts as alive from now. */
  private attach(sessionId: string, node: string, now: number): void {
    let n = this.nodes.get(node);
    if (!n) {
      n = { lastAlive: now, sessions: new Set(), renewedAt: now };
      this.nodes.set(node, n);
    }
    // Redis: an empty node set is gone, and a new one gets a full TTL.
    if (n.sessions.size === 0) n.renewedAt = now;
    n.sessions.add(sessionId);
  }
}

interface Session {
  user: User;
  node: string;
  conn: string;
  /** attached to `conn` on `node`; detached until `due`; expired: leased to a sweeper until `due`. */
  state: 'attached' | 'detached' | 'expired';
  due: number;
  rooms: Set<string>;
  expiresAt: number;
}

interface GatewayNode {
  lastAlive: number;
  /** Sessions attached on this node. */
  sessions: Set<string>;
  /** When its sessions' expiry was last renewed (Redis: the node set's TTL). */
  renewedAt: number;
}

/** Never shortens: an expiry only moves later. */
function extend(s: Session, at: number): void {
  if (s.expiresAt < at) s.expiresAt = at;
}
