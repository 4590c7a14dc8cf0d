/**
 * The two wire protocols the load generator speaks over WsConn, behind one interface, so that every
 * target is measured by the same code:
 *
 * - `rt`: our protocol v1 (and the raw uWS reference server, which speaks the same frames):
 *   `welcome` first; `{"type":"join","id":1,"room":"r"}` → `{"type":"reply","id":1,...}`;
 *   `{"type":"publish","id":2,"room":"r","content":"…"}` → `{"type":"reply",...}` and
 *   `{"type":"message",...}` to every member; `{"type":"notification",...}` per user.
 * - `sio`: Engine.IO v4 + Socket.IO v5 over the websocket transport: `0{…}` open → `40` connect →
 *   `40{"sid":…}`; events `42["message",{…}]`; acknowledgements `43<id>[…]` for emits sent as
 *   `42<id>["join","r"]`; pings `2` answered with `3`.
 *
 * Frames are told apart by fixed byte positions of their prefix, never by parsing JSON while
 * measuring: `{"type":"m…` has `m` at index 9 (`r` reply, `e` error, `w` welcome, `n`
 * notification, `p` presence, `t` typing); `42["m…` has `m` at index 4 and an ack has `3` at 1.
 * Setup (welcome, join replies) runs with the whole payload captured and does parse JSON.
 */
import { OP_TEXT } from './frame.ts';
import { WsConn } from './client.ts';

export type Proto = 'rt' | 'sio';

export interface Endpoint {
  host: string;
  port: number;
}

/** Counters shared by every client of a scenario (one increment per frame, no per-client sums). */
export class Counters {
  frames = 0;
  messages = 0;
  notifications = 0;
  replies = 0;
  errors = 0;
  /** Publishes answered `overloaded` (each sent again after its `retryAfterMs`). */
  refused = 0;
  /** Sum and maximum of the time from sending a publish to its `overloaded` answer (ms). */
  refusedMs = 0;
  refusedMaxMs = 0;
}

/** Receives each latency sample (ms), parsed from the content of a `message`. */
export interface LatencySink {
  record(ms: number): void;
}

let stamp = -1;
const clearStamp = () => {
  stamp = -1;
};

/**
 * The receive time of a delivery: when the event loop's current poll batch began to be processed.
 * Every socket handled in one batch was readable when epoll returned, so this is an upper bound of
 * when its data arrived; it leaves out the time the client spends reading the other 999 sockets of
 * the batch one after another (about 5 µs each here), which a real client — one per user — does not
 * have, while the client's own event-loop delay still counts. The stamp is dropped in the check
 * phase (setImmediate), right after the poll phase.
 */
function receiveTime(): number {
  if (stamp < 0) {
    stamp = performance.now();
    setImmediate(clearStamp);
  }
  return stamp;
}

/** Leading bytes captured while measuring: enough for every discriminating byte above. */
export const COUNT_CAPTURE = 16;
const CONTENT_KEY = Buffer.from('"content":"');
const ID_KEY = Buffer.from('"id":');
const ERROR_TYPE = Buffer.from('"type":"error"');
const OVERLOADED = Buffer.from('"code":"overloaded"');
const RETRY_AFTER = Buffer.from('"retryAfterMs":');
const M = 0x6d;
const R = 0x72;
const E = 0x65;
const N = 0x6e;
const W = 0x77;

export interface ClientOptions {
  /** Query parameters of the upgrade (`username`, `token`). */
  query: Record<string, string>;
  localAddress?: string;
  timeoutMs?: number;
}

interface Waiter {
  resolve(frame: string): void;
  reject(err: Error): void;
}

export class BenchClient {
  /** `message` events received by this client. */
  messages = 0;
  notifications = 0;
  /** Called once per acknowledged (or refused) publish. */
  onReply: (() => void) | undefined;
  /** Called after each `message` (publishers watch their own echo, sampled members their lag). */
  onMessage: ((c: BenchClient) => void) | undefined;
  latency: LatencySink | undefined;
  /** Last error frame received, for diagnostics. */
  lastError = '';
  private readonly waiters = new Map<number, Waiter>();
  private nextId = 1;
  /** Publishes by id & mask, with their send time, kept to send again when refused `overloaded`. */
  private sentFrames: string[] | undefined;
  private sentAt: Float64Array | undefined;
  private sentMask = 0;
  private ready: Waiter | undefined;

  private constructor(
    readonly proto: Proto,
    readonly conn: WsConn,
    readonly counters: Counters,
  ) {
    conn.onData = proto === 'rt' ? this.rtData : this.sioData;
    conn.onClose = () => {
      const how = conn.closeCode ? ` ${conn.closeCode} ${conn.closeReason}` : ' without a close frame';
      const err = new Error(`closed${how}${conn.error ? `: ${conn.error.message}` : ''} after ${conn.parser.bytes} bytes`);
      this.ready?.reject(err);
      for (const w of this.waiters.values()) w.reject(err);
      this.waiters.clear();
    };
  }

  /** Connects and resolves once the client is usable: `welcome` (rt) or the namespace connect (sio). */
  static async open(proto: Proto, at: Endpoint, counters: Counters, opts: ClientOptions): Promise<BenchClient> {
    const query = new URLSearchParams(opts.query).toString();
    const path = proto === 'rt' ? `/ws?${query}` : `/socket.io/?EIO=4&transport=websocket&${query}`;
    const timeoutMs = opts.timeoutMs ?? 15_000;
    const conn = WsConn.connect({
      host: at.host,
      port: at.port,
      path,
      capture: Infinity,
      timeoutMs,
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    });
    const client = new BenchClient(proto, conn, counters);
    let timer: NodeJS.Timeout | undefined;
    const ready = new Promise<string>((resolve, reject) => {
      client.ready = { resolve, reject };
      timer = setTimeout(() => {
        reject(new Error(`no ${proto === 'rt' ? 'welcome' : 'namespace connect'} within ${timeoutMs} ms`));
        conn.destroy();
      }, timeoutMs);
    });
    try {
      await Promise.all([conn.upgraded, ready]);
    } catch (err) {
      conn.destroy();
      throw err;
    } finally {
      clearTimeout(timer);
      client.ready = undefined;
    }
    return client;
  }

  get closed(): boolean {
    return this.conn.closed;
  }

  /** Leading payload bytes handed to the client: Infinity while setting up or measuring latency. */
  set capture(n: number) {
    this.conn.capture = n;
  }

  join(room: string, timeoutMs = 30_000): Promise<string> {
    const id = this.nextId++;
    if (this.proto === 'rt') this.conn.send(`{"type":"join","id":${id},"room":${JSON.stringify(room)}}`);
    else this.conn.send(`42${id}["join",${JSON.stringify(room)}]`);
    return this.await(id, timeoutMs);
  }

  /**
   * Keeps the last `size` (a power of two, above the publish window) publishes, so that one answered
   * `overloaded` is sent again, unchanged but for its id, after the server's `retryAfterMs`, and the
   * time to the refusal is measured. Without it a refusal counts as an error.
   */
  trackPublishes(size: number): void {
    this.sentFrames = new Array<string>(size).fill('');
    this.sentAt = new Float64Array(size);
    this.sentMask = size - 1;
  }

  /** Fire and forget: the acknowledgement calls `onReply`. */
  publish(room: string, content: string): void {
    if (this.proto === 'rt') this.sendPublish(`,"room":${JSON.stringify(room)},"content":${JSON.stringify(content)}}`);
    else this.conn.send(`42${this.nextId++}["publish",${JSON.stringify(room)},${JSON.stringify(content)}]`);
  }

  /** `rest`: the frame after its id. */
  private sendPublish(rest: string): void {
    const id = this.nextId++;
    if (this.sentFrames) {
      this.sentFrames[id & this.sentMask] = rest;
      this.sentAt![id & this.sentMask] = performance.now();
    }
    this.conn.send(`{"type":"publish","id":${id}${rest}`);
  }

  /** An `overloaded` answer to publish `id`: count it, send the publish again after the hint. */
  private refused(id: number, buf: Buffer, start: number, end: number): void {
    const slot = id & this.sentMask;
    const rest = this.sentFrames![slot]!;
    const ms = performance.now() - this.sentAt![slot]!;
    this.counters.refused++;
    this.counters.refusedMs += ms;
    if (ms > this.counters.refusedMaxMs) this.counters.refusedMaxMs = ms;
    const at = buf.indexOf(RETRY_AFTER, start);
    const hint = at >= 0 && at < end ? (leadingInt(buf, at + RETRY_AFTER.length, end) ?? 10) : 10;
    setTimeout(() => {
      if (!this.conn.closed) this.sendPublish(rest);
    }, hint);
  }

  close(): void {
    this.conn.destroy();
  }

  private await(id: number, timeoutMs: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(id);
        reject(new Error(`no answer to request ${id} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiters.set(id, {
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  private delivered(buf: Buffer, start: number, captured: number): void {
    this.messages++;
    this.counters.messages++;
    if (this.latency) {
      const end = start + captured;
      const at = buf.indexOf(CONTENT_KEY, start);
      if (at >= 0 && at < end) {
        let us = 0;
        for (let i = at + CONTENT_KEY.length; i < end; i++) {
          const c = buf[i]!;
          if (c < 48 || c > 57) break;
          us = us * 10 + (c - 48);
        }
        this.latency.record(receiveTime() - us / 1000);
      }
    }
    this.onMessage?.(this);
  }

  /** An answer to a request: resolves its waiter while setting up, else acknowledges a publish. */
  private answer(id: number | undefined, buf: Buffer, start: number, captured: number, isError: boolean): void {
    if (this.waiters.size > 0 && id !== undefined) {
      const w = this.waiters.get(id);
      if (w) {
        this.waiters.delete(id);
        const text = buf.toString('utf8', start, start + captured);
        if (isError) w.reject(new Error(`request ${id} failed: ${text.slice(0, 300)}`));
        else w.resolve(text);
        return;
      }
    }
    if (isError) {
      this.counters.errors++;
      this.lastError = buf.toString('utf8', start, start + Math.min(captured, 300));
    } else this.counters.replies++;
    this.onReply?.();
  }

  private readonly rtData = (op: number, buf: Buffer, start: number, captured: number): void => {
    if (op !== OP_TEXT) return;
    this.counters.frames++;
    const k = captured > 9 ? buf[start + 9] : 0;
    if (k === M) return this.delivered(buf, start, captured);
    if (k === E && this.sentFrames) {
      const at = buf.indexOf(OVERLOADED, start);
      const id = at >= 0 && at < start + captured ? rtId(buf, start, captured) : undefined;
      if (id !== undefined && this.sentFrames[id & this.sentMask] !== '') return this.refused(id, buf, start, start + captured);
    }
    if (k === R || k === E) {
      // The id is only needed (and only fully captured) while setting up.
      const id = this.waiters.size > 0 ? rtId(buf, start, captured) : undefined;
      return this.answer(id, buf, start, captured, k === E);
    }
    if (k === N) {
      this.notifications++;
      this.counters.notifications++;
      return;
    }
    if (k === W && this.ready) {
      const r = this.ready;
      this.ready = undefined;
      r.resolve(buf.toString('utf8', start, start + captured));
    }
  };

  private readonly sioData = (op: number, buf: Buffer, start: number, captured: number, length: number): void => {
    if (op !== OP_TEXT) return;
    this.counters.frames++;
    const c0 = captured > 0 ? buf[start] : 0;
    if (c0 === 0x32 && length === 1) {
      this.conn.send('3');
      return;
    }
    if (c0 === 0x34 /* 4: message */ && captured > 1) {
      const c1 = buf[start + 1];
      if (c1 === 0x32 /* 2: EVENT */) {
        const k = captured > 4 ? buf[start + 4] : 0;
        if (k === M) return this.delivered(buf, start, captured);
        if (k === N) {
          this.notifications++;
          this.counters.notifications++;
        }
        return;
      }
      if (c1 === 0x33 /* 3: ACK */) {
        const id = this.waiters.size > 0 ? leadingInt(buf, start + 2, start + captured) : undefined;
        // Our servers acknowledge with {"type":"reply"|"error",...}, near the start.
        const at = buf.indexOf(ERROR_TYPE, start);
        const isError = at >= 0 && at < start + Math.min(captured, 40);
        return this.answer(id, buf, start, captured, isError);
      }
      if (c1 === 0x30 /* 0: CONNECT */ && this.ready) {
        const r = this.ready;
        this.ready = undefined;
        r.resolve(buf.toString('utf8', start, start + captured));
        return;
      }
      if (c1 === 0x34 /* 4: CONNECT_ERROR */ && this.ready) {
        this.ready.reject(new Error(`socket.io connect error: ${buf.toString('utf8', start, start + Math.min(captured, 200))}`));
        this.ready = undefined;
      }
      return;
    }
    if (c0 === 0x30 /* 0: Engine.IO open */) this.conn.send('40');
  };
}

/** The `id` of a captured `{"type":"reply","id":N,...}` frame. */
function rtId(buf: Buffer, start: number, captured: number): number | undefined {
  const at = buf.indexOf(ID_KEY, start);
  return at < 0 || at >= start + captured ? undefined : leadingInt(buf, at + ID_KEY.length, start + captured);
}

function leadingInt(buf: Buffer, from: number, end: number): number | undefined {
  let n = 0;
  let i = from;
  for (; i < end; i++) {
    const c = buf[i]!;
    if (c < 48 || c > 57) break;
    n = n * 10 + (c - 48);
  }
  return i === from ? undefined : n;
}
