/**
 * One WebSocket connection: `UpgradeData`, what uWS keeps per socket from the upgrade on, and
 * `Conn`, the open connection's state (its user, session, rooms, rate limit, expiry) and its
 * writes. The protocol spoken with it is `Connections` (connections.ts).
 *
 * uWS lifetimes: a closed connection is never written to (`closed` is set in the `close` callback,
 * before anything else runs); a write from an async continuation is corked (`sendLater`).
 */
import type * as UWS from 'uWebSockets.js';
import { envelopeHeader } from '../shared/protocol/internal.ts';
import type { User } from '../shared/protocol/schemas.ts';
import type { AuthError, AuthFailure, Identity } from './auth.ts';
import type { ConnectionLimiter } from './limits.ts';
import type { StreamMember } from './room-stream.ts';
import type { GatewayStats } from './stats.ts';

/** What uWS keeps per socket, from the upgrade on. */
export interface UpgradeData {
  identity?: Identity;
  /** Why the credentials were refused; the socket is closed with 4001 and this reason. */
  authError?: string;
  /** The kind of refusal, for rt_gateway_auth_failures_total. */
  authFailure?: AuthFailure;
  /** `?session=` of the upgrade: the session to resume. */
  session?: string;
  /** Credentials still being checked (a JWT, a ticket); `open` applies the outcome. */
  credentials?: Promise<Identity | AuthError>;
  /** Frames received while the credentials were checked; handled once the session is open. */
  early?: string[];
  /** Set by `close` on a socket that closed before it had a `Conn`. */
  gone?: boolean;
  /** The connection, once open (uWS keeps this object per socket: no side table needed). */
  conn?: Conn;
}

/** One client connection. Also the member a RoomStream attaches. */
export class Conn implements StreamMember {
  closed = false;
  readonly rooms = new Set<string>();
  /** Rooms with a join in flight, so a second join or a leave does not race it (made on first join). */
  private joiningRooms: Set<string> | undefined;
  /** Rooms where this connection said `typing: true` last (made on first use: most never type). */
  private typingRooms: Set<string> | undefined;
  /** Frames received before the session opened (undefined once it is open). */
  early: string[] | undefined = [];
  sessionId = '';
  /** The envelope header of this connection's requests: forwarding a frame is one concatenation. */
  header: string;
  readonly user: User;
  /** Its entry in the gateway's expiry `Deadlines` (closed with 4001 when the credentials expire without a refresh). */
  expiryKey: number | undefined;
  /** Requests forwarded to a worker and not answered yet (MAX_IN_FLIGHT_PER_CONNECTION). */
  inFlight = 0;
  constructor(
    readonly ws: UWS.WebSocket<UpgradeData>,
    readonly id: string,
    public identity: Identity,
    readonly node: string,
    readonly limiter: ConnectionLimiter | undefined,
    private readonly stats: GatewayStats,
  ) {
    this.user = identity.user;
    this.header = envelopeHeader(id, node, this.user);
  }
  get joining(): Set<string> {
    return (this.joiningRooms ??= new Set());
  }
  get joiningCount(): number {
    return this.joiningRooms?.size ?? 0;
  }
  isJoining(room: string): boolean {
    return this.joiningRooms !== undefined && this.joiningRooms.has(room);
  }
  /** A join finished (or failed): the set goes once empty, as most connections join once or twice. */
  joined(room: string): void {
    if (this.joiningRooms?.delete(room) && this.joiningRooms.size === 0) this.joiningRooms = undefined;
  }
  get typing(): Set<string> {
    return (this.typingRooms ??= new Set());
  }
  get isTyping(): boolean {
    return this.typingRooms !== undefined && this.typingRooms.size > 0;
  }
  openSession(sessionId: string): void {
    this.sessionId = sessionId;
    this.header = envelopeHeader(this.id, this.node, this.user, sessionId);
  }
  subscribe(topic: string): void {
    if (!this.closed) this.ws.subscribe(topic);
  }
  send(frame: Uint8Array | string): void {
    if (this.closed) return;
    this.stats.sentOne(frame, this.ws.send(frame, false));
  }
  /** Sends from outside a uWS callback (after an await): corked into one write. */
  sendLater(frame: Uint8Array | string): void {
    if (this.closed) return;
    this.ws.cork(() => this.stats.sentOne(frame, this.ws.send(frame, false)));
  }
}
