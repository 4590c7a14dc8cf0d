/**
 * A minimal WebSocket client over `net.Socket`: the HTTP/1.1 upgrade, masked client frames, and
 * server frames parsed by `FrameParser` straight out of one read buffer shared by every socket
 * (`onread`, so reading allocates nothing). It answers pings and close frames itself and hands data
 * messages to `onData` — the first `parser.capture` bytes of each, see frame.ts.
 *
 * Many connections: `localAddress` picks the source address (any 127.x.y.z is local on Linux), so
 * tens of thousands of connections to one server port do not run out of ephemeral ports.
 */
import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { FrameParser, OP_CLOSE, OP_PING, OP_PONG, encodeFrame, encodeText } from './frame.ts';

/** Every socket reads into this buffer; the parser copies what must outlive one read. */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);
const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const HEADER_END = Buffer.from('\r\n\r\n');
const MAX_RESPONSE_HEAD = 16 * 1024;

/** A data message: `buf[start, start + captured)` are its first bytes (see FrameHandler). */
export type DataHandler = (opcode: number, buf: Buffer, start: number, captured: number, length: number) => void;

export interface OpenOptions {
  host: string;
  port: number;
  /** Path and query, e.g. `/ws?username=u1`. */
  path: string;
  localAddress?: string;
  headers?: Record<string, string>;
  /** Leading bytes of each data message handed to `onData` (see FrameParser.capture). */
  capture?: number;
  /** Bound on TCP connect plus upgrade. */
  timeoutMs?: number;
}

export class UpgradeError extends Error {
  override readonly name = 'UpgradeError';
  constructor(
    message: string,
    readonly status?: number,
  ) {
    super(message);
  }
}

export class WsConn {
  readonly parser: FrameParser;
  onData: DataHandler = () => {};
  onClose: ((conn: WsConn) => void) | undefined;
  closed = false;
  /** Close code the server sent, if it sent one. */
  closeCode: number | undefined;
  closeReason = '';
  error: Error | undefined;
  /**
   * Cork the socket while a read is parsed, so that everything the handlers send in answer to one
   * read (a publisher refilling its window) leaves in one write.
   */
  batchWrites = false;
  /** Resolves once the upgrade succeeded; rejects when it failed. */
  upgraded!: Promise<void>;
  private isUpgraded = false;
  private head: Buffer | undefined;
  private settle: ((err?: Error) => void) | undefined;

  private constructor(
    readonly socket: Socket,
    private readonly accept: string,
    capture: number,
  ) {
    this.parser = new FrameParser((op, buf, start, captured, len) => (op < 0x8 ? this.onData(op, buf, start, captured, len) : this.control(op, buf.subarray(start, start + captured))), capture);
  }

  /**
   * Starts connecting and returns at once, so that handlers can be set before any byte is read (a
   * server may send its first frames in the same packet as the 101). `upgraded` resolves once the
   * server answered 101 with the right accept key.
   */
  static connect(opts: OpenOptions): WsConn {
    const key = randomBytes(16).toString('base64');
    const accept = createHash('sha1').update(key + GUID).digest('base64');
    // The read callback is set before the WsConn (which needs the socket) exists.
    const ref: { conn?: WsConn } = {};
    const socket = connect({
      host: opts.host,
      port: opts.port,
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
      noDelay: true,
      onread: {
        buffer: READ_BUFFER,
        callback: (n: number, buf: Uint8Array) => {
          ref.conn?.read(buf as Buffer, n);
          return true;
        },
      },
    });
    const c = new WsConn(socket, accept, opts.capture ?? 0);
    ref.conn = c;
    const timeoutMs = opts.timeoutMs ?? 15_000;
    c.upgraded = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        c.settle?.(new UpgradeError(`no upgrade from ${opts.host}:${opts.port} within ${timeoutMs} ms`));
        socket.destroy();
      }, timeoutMs);
      c.settle = (err) => {
        c.settle = undefined;
        clearTimeout(timer);
        if (err) reject(err);
        else resolve();
      };
    });
    socket.on('connect', () => {
      const lines = [
        `GET ${opts.path} HTTP/1.1`,
        `Host: ${opts.host}:${opts.port}`,
        'Upgrade: websocket',
        'Connection: Upgrade',
        `Sec-WebSocket-Key: ${key}`,
        'Sec-WebSocket-Version: 13',
        ...Object.entries(opts.headers ?? {}).map(([k, v]) => `${k}: ${v}`),
      ];
      socket.write(lines.join('\r\n') + '\r\n\r\n');
    });
    socket.on('error', (err) => {
      c.error = err;
      c.settle?.(err);
    });
    socket.on('close', () => {
      c.closed = true;
      c.settle?.(c.error ?? new UpgradeError('connection closed before the upgrade completed'));
      c.onClose?.(c);
    });
    return c;
  }

  /** `connect` and wait for the upgrade. */
  static async open(opts: OpenOptions): Promise<WsConn> {
    const c = WsConn.connect(opts);
    await c.upgraded;
    return c;
  }

  get capture(): number {
    return this.parser.capture;
  }

  set capture(n: number) {
    this.parser.capture = n;
  }

  send(text: string): void {
    if (!this.closed) this.socket.write(encodeText(text));
  }

  /** Sends a pre-encoded frame (encodeText), for many identical frames. */
  sendFrame(frame: Buffer): void {
    if (!this.closed) this.socket.write(frame);
  }

  /** Sends a close frame and ends the socket. */
  end(code = 1000): void {
    if (this.closed) return;
    const payload = Buffer.alloc(2);
    payload.writeUInt16BE(code, 0);
    this.socket.end(encodeFrame(OP_CLOSE, payload));
  }

  destroy(): void {
    this.socket.destroy();
  }

  private read(buf: Buffer, n: number): void {
    if (!this.isUpgraded) {
      this.handshake(buf.subarray(0, n));
      return;
    }
    this.parse(buf, n);
  }

  private parse(chunk: Buffer, n = chunk.length): void {
    const batch = this.batchWrites;
    if (batch) this.socket.cork();
    try {
      this.parser.push(chunk, n);
    } catch (err) {
      this.error = err as Error;
      this.socket.destroy();
    } finally {
      if (batch) this.socket.uncork();
    }
  }

  private handshake(chunk: Buffer): void {
    this.head = this.head ? Buffer.concat([this.head, chunk]) : Buffer.from(chunk);
    const end = this.head.indexOf(HEADER_END);
    if (end < 0) {
      if (this.head.length > MAX_RESPONSE_HEAD) this.fail(new UpgradeError('upgrade response head too long'));
      return;
    }
    const text = this.head.toString('latin1', 0, end);
    const rest = this.head.subarray(end + 4);
    this.head = undefined;
    const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0);
    if (status !== 101) {
      this.fail(new UpgradeError(`upgrade refused: HTTP ${status} ${rest.toString('utf8', 0, Math.min(rest.length, 200))}`, status));
      return;
    }
    const accept = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(text)?.[1];
    if (accept !== this.accept) {
      this.fail(new UpgradeError('upgrade answered with a wrong Sec-WebSocket-Accept'));
      return;
    }
    this.isUpgraded = true;
    this.settle?.();
    if (rest.length > 0) this.parse(rest);
  }

  private fail(err: Error): void {
    this.error = err;
    this.settle?.(err);
    this.socket.destroy();
  }

  private control(op: number, data: Buffer): void {
    if (op === OP_PING) {
      if (!this.closed) this.socket.write(encodeFrame(OP_PONG, Buffer.from(data)));
    } else if (op === OP_CLOSE) {
      this.closeCode = data.length >= 2 ? data.readUInt16BE(0) : 1005;
      this.closeReason = data.length > 2 ? data.toString('utf8', 2) : '';
      if (!this.closed) this.socket.end(encodeFrame(OP_CLOSE, Buffer.from(data.subarray(0, Math.min(2, data.length)))));
    }
  }
}
