/**
 * Local fan-out (the hub): which rooms and users this gateway has sockets or SSE streams for, one
 * bus subscription per room with local members, and the delivery of each room or user event to
 * them with one uWS topic publish (the frame was serialized once, by the worker).
 *
 * Topics: `r:<room>` for a room's sockets. A user's events go to the user's sockets one `send`
 * each, found by the user's subject token (a uWS topic per connected user cost native memory on
 * every connection for events that are rare next to rooms'). SSE streams are not uWS sockets, so
 * they are kept per topic here (`u:<token>` for a user's) and written to after the publish.
 *
 * User events of all users come through one wildcard subscription (`rt.user.>`): a subscription
 * per connected user would cost a SUB/UNSUB per connect for traffic that is small next to rooms'.
 * A user event is delivered only where that user has a local socket or stream (the topic has
 * subscribers); elsewhere it costs a header read.
 */
import type * as UWS from 'uWebSockets.js';
import { subjects, subjectToken, type Bus, type BusSubscription } from '../shared/bus.ts';
import { readUserEventHeader } from '../shared/envelope.ts';
import type { User } from '../shared/protocol/schemas.ts';
import type { Boundary } from './boundary.ts';
import { RoomStream, defaultStreamOptions, type HistoryFrames, type StreamHost } from './room-stream.ts';
import { SseRoomMember, type SseConn } from './sse.ts';
import type { GatewayStats } from './stats.ts';
import type { Upstream } from './upstream.ts';

/** What the hub needs of a WebSocket connection. */
export interface LocalConn {
  readonly id: string;
  readonly user: User;
  readonly closed: boolean;
  readonly ws: UWS.WebSocket<unknown>;
}

/** The uWS topic of a user's sockets: named by the user's subject token, so a bus event maps to it without a lookup. */
export function userTopic(userId: string): string {
  return `u:${subjectToken(userId)}`;
}

export class Fanout implements StreamHost {
  readonly streams = new Map<string, RoomStream>();
  private readonly streamSubs = new Map<RoomStream, BusSubscription>();
  /** Local connections and SSE streams per user (for MAX_CONNECTIONS_PER_USER). */
  readonly users = new Map<string, number>();
  /** WebSocket connections by their user's subject token: one, or several of one user. */
  private readonly userConns = new Map<string, LocalConn | LocalConn[]>();
  /** SSE members by uWS topic, which uWS publish does not reach. */
  private readonly sseByTopic = new Map<string, Set<SseRoomMember | SseConn>>();
  private readonly userEvents: BusSubscription;

  constructor(
    private readonly app: UWS.TemplatedApp,
    private readonly bus: Bus,
    private readonly upstream: Upstream,
    private readonly stats: GatewayStats,
    private readonly boundary: Boundary,
  ) {
    this.userEvents = bus.subscribe(subjects.allUsers, boundary.guarded('user_event', (data: Uint8Array, subject: string) => this.onUserEvent(data, subject)));
  }

  /** One frame to every local subscriber of a topic: one uWS publish, counted per recipient. */
  publish(topic: string, frame: Uint8Array, seq?: number): void {
    const n = this.app.numSubscribers(topic);
    if (n > 0) {
      this.app.publish(topic, frame, false);
      this.stats.sentTo(n, frame);
    }
    if (this.sseByTopic.size > 0) this.publishSse(topic, frame, seq);
  }

  fetchAfter(room: string, after: number, limit: number): Promise<HistoryFrames | undefined> {
    return this.upstream.fetchAfter(room, after, limit);
  }

  /** The room's stream, subscribed to the bus on its first reference. */
  acquire(room: string): RoomStream {
    let stream = this.streams.get(room);
    if (!stream) {
      const created = new RoomStream(room, `r:${room}`, this, defaultStreamOptions);
      const sub = this.bus.subscribe(subjects.room(room), this.boundary.guarded('room_event', (data: Uint8Array) => created.onEvent(data)));
      this.streams.set(room, created);
      this.streamSubs.set(created, sub);
      stream = created;
    }
    stream.refs++;
    return stream;
  }

  /** Drops one reference; the last one unsubscribes the room from the bus. */
  release(stream: RoomStream): void {
    if (--stream.refs > 0) return;
    stream.close();
    this.streamSubs.get(stream)?.unsubscribe();
    this.streamSubs.delete(stream);
    if (this.streams.get(stream.room) === stream) this.streams.delete(stream.room);
  }

  /** Back from a bus outage: what rooms published meanwhile never arrived; fetch it. */
  resync(): void {
    for (const stream of this.streams.values()) stream.resync();
  }

  userCount(userId: string): number {
    return this.users.get(userId) ?? 0;
  }

  /** A new WebSocket connection: counted for its user, and reached by the user's events. */
  addConn(conn: LocalConn): void {
    this.countUser(conn.user.id, 1);
    const token = subjectToken(conn.user.id);
    const held = this.userConns.get(token);
    if (held === undefined) this.userConns.set(token, conn);
    else if (Array.isArray(held)) held.push(conn);
    else this.userConns.set(token, [held, conn]);
  }

  removeConn(conn: LocalConn): void {
    this.countUser(conn.user.id, -1);
    const token = subjectToken(conn.user.id);
    const held = this.userConns.get(token);
    if (held === conn) this.userConns.delete(token);
    else if (Array.isArray(held)) {
      const rest = held.filter((c) => c !== conn);
      this.userConns.set(token, rest.length === 1 ? rest[0]! : rest);
    }
  }

  addSse(sse: SseConn): void {
    this.countUser(sse.user.id, 1);
    this.sseSubscribe(userTopic(sse.user.id), sse);
  }

  removeSse(sse: SseConn): void {
    this.sseUnsubscribe(userTopic(sse.user.id), sse);
    this.countUser(sse.user.id, -1);
  }

  private countUser(id: string, by: 1 | -1): void {
    const refs = (this.users.get(id) ?? 0) + by;
    if (refs > 0) this.users.set(id, refs);
    else this.users.delete(id);
  }

  sseSubscribe(topic: string, member: SseRoomMember | SseConn): void {
    let set = this.sseByTopic.get(topic);
    if (!set) this.sseByTopic.set(topic, (set = new Set()));
    set.add(member);
  }

  sseUnsubscribe(topic: string, member: SseRoomMember | SseConn): void {
    const set = this.sseByTopic.get(topic);
    if (!set) return;
    set.delete(member);
    if (set.size === 0) this.sseByTopic.delete(topic);
  }

  private publishSse(topic: string, frame: Uint8Array, seq?: number): void {
    const members = this.sseByTopic.get(topic);
    if (!members) return;
    for (const m of members) {
      if (m instanceof SseRoomMember) m.send(frame, seq);
      else m.event(frame);
    }
    this.stats.sentTo(members.size, frame);
  }

  /**
   * A user event from the bus: to the user's local sockets and SSE streams, if any, but the
   * connection the event names as its origin.
   */
  private onUserEvent(data: Uint8Array, subject: string): void {
    const token = subject.slice(subjects.userPrefix.length);
    const h = readUserEventHeader(data);
    if (!h) return;
    const frame = data.subarray(h.offset);
    const held = this.userConns.get(token);
    if (held !== undefined) {
      for (const conn of Array.isArray(held) ? held : [held]) {
        if (conn.closed || conn.id === h.except) continue;
        conn.ws.cork(() => conn.ws.send(frame, false));
        this.stats.sentTo(1, frame);
      }
    }
    if (this.sseByTopic.size > 0) this.publishSse(`u:${token}`, frame);
  }

  /** Drops every bus subscription (the gateway is stopping). */
  close(): void {
    for (const [stream, sub] of this.streamSubs) {
      stream.close();
      sub.unsubscribe();
    }
    this.streamSubs.clear();
    this.streams.clear();
    this.userEvents.unsubscribe();
    this.users.clear();
    this.userConns.clear();
  }
}
