import type { User } from './protocol/schemas.ts';

/**
 * Sessions and gateway liveness. Implementations: `sessions-memory.ts`, `sessions-redis.ts`;
 * contract: `test/contract/sessions.test.ts`.
 *
 * A session (id, user, rooms) outlives its connection for a grace period so that a client that
 * reconnects, to any gateway, gets its rooms back without presence leave/join for the others.
 * Presence members are sessions, not connections: a session has at most one connection at a
 * time. Failure behaviour: a session whose connection closed is *detached* with a deadline; a
 * session whose gateway stopped calling `nodeAlive` (killed, partitioned) is detached as of the
 * gateway's last sign of life. Any worker's `sweepSessions` then hands each expired session to
 * exactly one caller, which removes its presence (emitting the leaves) and calls
 * `sessionReaped`. A sweeper that dies before that leaves the session leased; after `leaseMs`
 * another sweep hands it out again (presence removal is idempotent).
 *
 * Resume vs sweep: once a session's deadline has passed it belongs to the sweepers. It cannot be
 * resumed any more, even if no sweep has run yet, and a sweep hands out only such sessions; so a
 * sweeper's presence removal never hits a session whose client came back. Every session call is
 * atomic, and all deadlines are measured on one clock (the backend's: Redis server time, or the
 * memory stores' `Clock`), so the callers' clocks do not matter.
 *
 * Each step is atomic. Sessions nobody sweeps do not live forever: a session the store has not
 * heard of (created, resumed, given a room, detached, leased, or renewed through its gateway's
 * `nodeAlive`) for a day disappears. If the backend loses its data (Redis restarted empty), the
 * sessions are gone: resumes fail, and the presence of the connections still open is no longer
 * swept when their gateway dies (the presence TTL is then the only safety net).
 */
export interface Sessions {
  /**
   * Creates a session attached to `connId` on `node`. An existing session with this id is replaced,
   * its rooms forgotten: ids are random and unguessable (128 bits), so this happens only by mistake.
   * A node first seen here counts as alive from now on (its sessions are swept if it never calls
   * `nodeAlive`).
   */
  sessionCreate(sessionId: string, user: User, node: string, connId: string): Promise<void>;

  /**
   * Re-attaches an existing session of the same user (same id; the stored name becomes `user.name`)
   * to `connId` on `node` and returns its rooms, ordered. Undefined when there is no such session
   * (never existed, reaped, lost), it belongs to another user, or its deadline has passed, swept
   * or not (see "Resume vs sweep"); then nothing changes. A session still attached to another
   * connection moves to this one: that connection's later `sessionDetach` is a no-op (closing it is
   * the caller's business).
   */
  sessionResume(sessionId: string, user: User, node: string, connId: string): Promise<string[] | undefined>;

  /**
   * Records that the session is in `room` (call before `presenceAdd`, so a sweep finds it). A no-op
   * for a session that does not exist. Meant for a session attached to the caller's connection: a
   * room added to a session already handed to a sweeper is not in what that sweeper got.
   */
  sessionAddRoom(sessionId: string, room: string): Promise<void>;
  /** Forgets the room (call after `presenceRemove`). */
  sessionRemoveRoom(sessionId: string, room: string): Promise<void>;

  /**
   * The session's connection `connId` closed: the session expires `graceMs` from now unless resumed;
   * true. A no-op (false) when the session is not attached to `connId` (any more): it was resumed on
   * another connection, detached already, or its gateway was found dead by a sweep.
   */
  sessionDetach(sessionId: string, connId: string, graceMs: number): Promise<boolean>;

  /**
   * Gateway `node` is alive; called every few seconds by (a worker on behalf of) each gateway, well
   * within the `nodeTimeoutMs` the sweepers use: a gateway found silent has its sessions detached
   * even if its sockets are still open. Also keeps its sessions from the one-day expiry above.
   */
  nodeAlive(node: string): Promise<void>;

  /**
   * Detaches the sessions of gateways silent for `nodeTimeoutMs` (deadline: their last sign of
   * life + `graceMs`; at most 1000 sessions per call, the rest on the next calls), then leases at
   * most `limit` sessions whose deadline passed (or whose earlier lease ran out), earliest first, to
   * this caller for `leaseMs`, with their user and rooms (ordered). Concurrent callers never get the
   * same session while its lease runs.
   * After a gap in sweeping longer than `nodeTimeoutMs` (the store, or every worker, was down, so
   * the gateways could not report either), a sweep first counts every known gateway as alive now,
   * giving each one timeout to report again: an outage must not end the sessions of connected users.
   */
  sweepSessions(opts: { nodeTimeoutMs: number; graceMs: number; leaseMs: number; limit: number }): Promise<ExpiredSession[]>;

  /** Deletes a session handed out by `sweepSessions` once its presence is removed. Idempotent. */
  sessionReaped(sessionId: string): Promise<void>;
}

export interface ExpiredSession {
  sessionId: string;
  user: User;
  rooms: string[];
}

/** A session's safety-net lifetime: see the interface comment (the day). */
export const SESSION_TTL_MS = 24 * 3600_000;
/** At most this many sessions of dead gateways are detached per `sweepSessions` call. */
export const NODE_SWEEP_BATCH = 1000;
