/**
 * The chaos scenario's users: SDK clients (client/index.ts, as an application uses it) that chat
 * in their rooms and write down everything the scenario later checks:
 * - every publish attempt (room, cid, content), every acknowledgement (seq) and every rejection;
 * - every room message delivered to the application, in order, and whether it was a repeat or
 *   came out of order;
 * - every `recovery` the SDK reported, every time the connection went away and came back (how
 *   long it took, the close code, whether the session was resumed);
 * - every request (publish, direct, join, history) until it settles, to find any that hangs.
 *
 * Direct messages are counted like room messages: each client may have a partner, their
 * conversation (a `dm:` room named by the server) is one of the client's rooms, joined like the
 * others, and a "publish" there is a `direct` to the partner (same cid on every attempt). Both
 * partners joined it, so the SDK hands each message over once, as the room's `message`.
 *
 * Each client connects from its own loopback address (127.x.y.z) so that nginx, which hashes the
 * client address, spreads the clients over the gateways as it would spread real users.
 */
import WebSocket from 'ws';
import { RtClient, RtError, type Recovery, type Room, type RtClientOptions, type StateChange, type WebSocketConstructor } from '../../client/index.ts';
import { between } from './random.ts';

/**
 * The `ws` WebSocket with its TCP connection bound to `localAddress`. `onError` sees the code of
 * every `error` frame the server sends, also those the SDK handles by itself (an `unavailable`
 * answer to a publish, which it sends again), to show that the faults reached requests.
 */
export function boundWebSocket(localAddress: string, onError?: (code: string) => void): WebSocketConstructor {
  return class BoundWebSocket extends WebSocket {
    constructor(url: string, protocols?: string | string[]) {
      super(url, protocols, { localAddress });
      if (onError) {
        this.on('message', (data, isBinary) => {
          if (isBinary) return;
          const text = data.toString();
          if (text.startsWith('{"type":"error"')) onError(String((JSON.parse(text) as { code?: unknown }).code));
        });
      }
    }
  };
}

/** Loopback source address of client `i` (0-based): 127.1.0.1, 127.1.0.2, … 127.1.0.250, 127.1.1.1, … */
export function clientAddress(i: number): string {
  return `127.${1 + Math.floor(i / 62_500)}.${Math.floor(i / 250) % 250}.${1 + (i % 250)}`;
}

/** What the scenario shares with its clients: the clock, the current phase, the request watch. */
export interface RunContext {
  /** Milliseconds since the run started. */
  now(): number;
  /** The fault (or quiet period) going on now, written into every record. */
  phase: string;
  requests: RequestWatch;
}

/**
 * Every request from its start until it settles. A request that is still open after `limitMs`
 * (twice the SDK's request timeout, which should have rejected it by then) has hung.
 */
export class RequestWatch {
  #next = 0;
  readonly #open = new Map<number, { what: string; phase: string; startedAt: number; hung: boolean }>();
  /** Requests seen open past the limit, each counted once (they may still settle later). */
  readonly hung: { what: string; phase: string; startedAt: number }[] = [];
  started = 0;

  constructor(
    readonly limitMs: number,
    private readonly now: () => number,
  ) {}

  track<T>(what: string, phase: string, p: Promise<T>): Promise<T> {
    const id = this.#next++;
    this.started++;
    this.#open.set(id, { what, phase, startedAt: this.now(), hung: false });
    const done = () => this.#open.delete(id);
    p.then(done, done);
    return p;
  }

  /** Marks the requests open for longer than the limit; returns how many are open now. */
  check(): number {
    const now = this.now();
    for (const r of this.#open.values()) {
      if (!r.hung && now - r.startedAt > this.limitMs) {
        r.hung = true;
        this.hung.push({ what: r.what, phase: r.phase, startedAt: r.startedAt });
      }
    }
    return this.#open.size;
  }

  get open(): number {
    return this.#open.size;
  }
}

export interface Ack {
  room: string;
  seq: number;
  /** The room's epoch as the client knew it when the acknowledgement came. */
  epoch: string;
  cid: string;
  content: string;
  phase: string;
  /** Ms into the run when the acknowledgement came. */
  at: number;
  /** Attempts it took (1: acknowledged the first time; more: rejected, then sent again with the same cid). */
  attempts: number;
}

export interface Delivery {
  seq: number;
  epoch: string;
  cid: string | undefined;
  content: string;
}

export interface Reconnect {
  /** When the connection was lost (ms into the run), and when the client was online again. */
  lostAt: number;
  onlineAt: number | undefined;
  code: number | undefined;
  reason: string | undefined;
  phase: string;
  fromNode: string | undefined;
  toNode: string | undefined;
  resumed: boolean | undefined;
  /** Connection attempts that failed before the one that succeeded. */
  failedAttempts: number;
}

export interface ChatClientOptions {
  index: number;
  /** nginx's WebSocket URL. */
  url: string;
  username: string;
  rooms: string[];
  ctx: RunContext;
  /** This client's own seeded randomness: publish timing, room choice, and the SDK's jitter. */
  random: () => number;
  /** Wait between the end of one publish and the start of the next, uniformly in this range. */
  publishIntervalMs: [number, number];
  /** A publish rejected (timeout, …) is sent again with the same cid, at most this many times in all. */
  publishAttempts: number;
  sdk: Pick<RtClientOptions, 'requestTimeoutMs' | 'reconnect'>;
}

export class ChatClient {
  readonly index: number;
  readonly username: string;
  readonly address: string;
  readonly sdk: RtClient;
  readonly rooms = new Map<string, Room>();
  /** Seq of each room when this client joined it: it must get every message after it. */
  readonly joinedAt = new Map<string, { seq: number; epoch: string }>();
  readonly delivered = new Map<string, Delivery[]>();
  /** Deliveries of a (room, epoch, seq) the application had already been given. */
  readonly duplicates: { room: string; epoch: string; seq: number; phase: string }[] = [];
  /** Deliveries with a seq below the last one delivered (and not a repeat). */
  readonly outOfOrder: { room: string; epoch: string; seq: number; after: number; phase: string }[] = [];
  readonly recoveries: (Recovery & { at: number; phase: string })[] = [];
  /** `presence` `leave` events this client's application got: who left which room, when. */
  readonly leaves: { room: string; user: string; at: number; phase: string }[] = [];
  readonly attempted: { room: string; cid: string; content: string }[] = [];
  readonly acks: Ack[] = [];
  readonly rejections: { room: string; cid: string; code: string; phase: string }[] = [];
  /** Publishes given up after `publishAttempts` rejections (never acknowledged). */
  readonly gaveUp: { room: string; cid: string; lastCode: string }[] = [];
  readonly reconnects: Reconnect[] = [];
  /** `error` frames from the server by code, including those the SDK retried by itself. */
  readonly serverErrors: Record<string, number> = {};
  /** Set when the SDK stopped for good (state `offline` without close()): never expected here. */
  stopped: StateChange | undefined;
  node: string | undefined;

  readonly #opts: ChatClientOptions;
  readonly #seen = new Map<string, Set<string>>();
  readonly #deliveredAt = new Map<string, number>();
  readonly #last = new Map<string, number>();
  #publishing: Promise<void> | undefined;
  #stop = false;
  #wake: (() => void) | undefined;
  #closing = false;
  /** Publishes made so far: the next cid is `<username>.<n + 1>`. */
  #n = 0;
  /** Conversation room → the partner's user id. */
  readonly #partners = new Map<string, string>();

  constructor(opts: ChatClientOptions) {
    this.#opts = opts;
    this.index = opts.index;
    this.username = opts.username;
    this.address = clientAddress(opts.index);
    this.sdk = new RtClient({
      url: opts.url,
      username: opts.username,
      WebSocket: boundWebSocket(this.address, (code) => (this.serverErrors[code] = (this.serverErrors[code] ?? 0) + 1)),
      random: opts.random,
      ...opts.sdk,
    });
    const ctx = opts.ctx;
    this.sdk.on('state', (s) => {
      const open = this.reconnects.at(-1);
      if (s.previous === 'online' && s.state !== 'online') {
        this.reconnects.push({
          lostAt: ctx.now(),
          onlineAt: undefined,
          code: s.code,
          reason: s.reason,
          phase: ctx.phase,
          fromNode: this.node,
          toNode: undefined,
          resumed: undefined,
          failedAttempts: 0,
        });
      } else if (s.state === 'reconnecting' && open && open.onlineAt === undefined && s.previous === 'connecting') {
        open.failedAttempts++;
      } else if (s.state === 'online' && open && open.onlineAt === undefined) {
        open.onlineAt = ctx.now();
      }
      if (s.state === 'offline' && !this.#closing) this.stopped = s;
    });
    this.sdk.on('welcome', (w) => {
      this.node = w.node;
      const last = this.reconnects.at(-1);
      if (last && last.onlineAt !== undefined && last.toNode === undefined) {
        last.toNode = w.node;
        last.resumed = w.resumed;
      }
    });
    for (const name of opts.rooms) this.#watch(name);
  }

  /** Records what the application gets in room `name`. */
  #watch(name: string): Room {
    const ctx = this.#opts.ctx;
    const room = this.sdk.room(name);
    this.rooms.set(name, room);
    this.delivered.set(name, []);
    room.on('message', (m) => {
      const epoch = room.epoch ?? '';
      const key = `${epoch}:${m.seq}`;
      let seen = this.#seen.get(name);
      if (!seen) this.#seen.set(name, (seen = new Set()));
      if (seen.has(key)) {
        this.duplicates.push({ room: name, epoch, seq: m.seq, phase: ctx.phase });
        return;
      }
      seen.add(key);
      const lastKey = `${name}\n${epoch}`;
      const last = this.#last.get(lastKey) ?? 0;
      if (m.seq <= last) this.outOfOrder.push({ room: name, epoch, seq: m.seq, after: last, phase: ctx.phase });
      this.#last.set(lastKey, Math.max(last, m.seq));
      this.delivered.get(name)!.push({ seq: m.seq, epoch, cid: m.cid, content: m.content });
      if (m.cid !== undefined) this.#deliveredAt.set(`${name}\n${m.cid}`, ctx.now());
    });
    room.on('recovery', (r) => this.recoveries.push({ ...r, at: ctx.now(), phase: ctx.phase }));
    room.on('presence', (e) => {
      if (e.event === 'leave') this.leaves.push({ room: name, user: e.user.id, at: ctx.now(), phase: ctx.phase });
    });
    return room;
  }

  /** Connects and joins its rooms; resolves once every room is joined. */
  async start(): Promise<void> {
    const { ctx } = this.#opts;
    await this.sdk.connect();
    this.node = this.sdk.welcome?.node;
    await Promise.all(
      [...this.rooms].map(async ([name, room]) => {
        const joined = await ctx.requests.track(`join ${name}`, ctx.phase, room.join({ limit: 0 }));
        this.joinedAt.set(name, { seq: joined.seq, epoch: joined.epoch });
      }),
    );
  }

  /**
   * Adds the conversation with `partner` (its room named by the server, learned by whichever of
   * the two sent the first direct message) to this client's rooms: joined, and published to with
   * `direct`. Before publishing starts.
   */
  async addConversation(room: string, partner: string): Promise<void> {
    const { ctx } = this.#opts;
    this.#partners.set(room, partner);
    const r = this.#watch(room);
    const joined = await ctx.requests.track(`join ${room}`, ctx.phase, r.join({ limit: 0 }));
    this.joinedAt.set(room, { seq: joined.seq, epoch: joined.epoch });
  }

  /** Starts chatting: one publish at a time, a random pause between them. */
  startPublishing(): void {
    this.#publishing ??= this.#publishLoop();
  }

  /** Stops publishing; resolves when the publish in progress has settled (acknowledged or given up). */
  async stopPublishing(): Promise<void> {
    this.#stop = true;
    this.#wake?.();
    await this.#publishing;
  }

  /** Seq of the last message delivered in `room` (in the epoch of that message). */
  lastDelivered(room: string): number {
    return this.delivered.get(room)?.at(-1)?.seq ?? this.joinedAt.get(room)?.seq ?? 0;
  }

  get online(): boolean {
    return this.sdk.state === 'online';
  }

  close(): void {
    this.#closing = true;
    this.#stop = true;
    this.#wake?.();
    this.sdk.close();
  }

  async #publishLoop(): Promise<void> {
    const { random, publishIntervalMs } = this.#opts;
    const names = [...this.rooms.keys()];
    while (!this.#stop) {
      await this.#pause(between(random, publishIntervalMs[0], publishIntervalMs[1]));
      if (this.#stop) break;
      await this.publish(names[between(random, 0, names.length - 1)]!);
    }
  }

  /**
   * One message to `room`, sent until acknowledged, always with the same cid (the server must
   * store it once); its Ack, or undefined when given up.
   */
  async publish(name: string): Promise<Ack | undefined> {
    const { ctx, publishAttempts } = this.#opts;
    const room = this.rooms.get(name)!;
    const cid = `${this.username}.${++this.#n}`;
    const content = `${cid} during ${ctx.phase}`;
    this.attempted.push({ room: name, cid, content });
    for (let attempt = 1; ; attempt++) {
      try {
        const partner = this.#partners.get(name);
        const r = partner
          ? await ctx.requests.track(`direct ${cid}`, ctx.phase, this.sdk.direct(partner, content, { cid }))
          : await ctx.requests.track(`publish ${cid}`, ctx.phase, room.publish(content, { cid }));
        const ack: Ack = { room: name, seq: r.seq, epoch: room.epoch ?? '', cid, content, phase: ctx.phase, at: ctx.now(), attempts: attempt };
        this.acks.push(ack);
        return ack;
      } catch (err) {
        const code = err instanceof RtError ? err.code : `exception: ${(err as Error).message}`;
        this.rejections.push({ room: name, cid, code, phase: ctx.phase });
        if (code === 'closed' || attempt >= publishAttempts) {
          this.gaveUp.push({ room: name, cid, lastCode: code });
          return undefined;
        }
      }
    }
  }

  /** When the application got the message with `cid` in `room` (ms into the run), if it did. */
  deliveredAt(room: string, cid: string): number | undefined {
    return this.#deliveredAt.get(`${room}\n${cid}`);
  }

  /** The workload's pause between two publishes; cut short when publishing stops. */
  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.#wake = done;
    });
  }
}
