/**
 * RFC 6455 framing for the load generator: an incremental parser of server-to-client frames that
 * counts messages from their headers alone, and the encoder of masked client-to-server frames.
 *
 * Why not `ws`: a load generator that decodes, copies and emits every frame of 1000 sockets spends
 * more CPU than the server it measures. This parser reads the 2–14 header bytes of each frame and
 * skips the payload, handing the caller at most `capture` leading bytes of each message — enough to
 * tell a `message` event from a `reply` (`{"type":"m…` vs `{"type":"r…`) — and the whole payload
 * only when asked (latency measurement parses a timestamp out of it).
 *
 * Nothing is allocated per frame in the common case: the handler is given the chunk and the offset
 * of the captured bytes in it, valid only during the call (the client reuses one read buffer for
 * every socket); a message whose captured bytes straddle two chunks or fragments is copied.
 */
import { randomFillSync } from 'node:crypto';

export const OP_CONTINUATION = 0x0;
export const OP_TEXT = 0x1;
export const OP_BINARY = 0x2;
export const OP_CLOSE = 0x8;
export const OP_PING = 0x9;
export const OP_PONG = 0xa;

/**
 * Called once per complete data message (text or binary, after its final fragment) and once per
 * control frame (close, ping, pong), with `buf[start, start + captured)` holding the first
 * `captured = min(capture, length)` payload bytes of a data message, or the whole payload of a
 * control frame; `length` is the full payload length. No object is allocated for the call: `buf` is
 * usually the chunk being parsed, valid only during the call.
 */
export type FrameHandler = (opcode: number, buf: Buffer, start: number, captured: number, length: number) => void;

export class ProtocolError extends Error {
  override readonly name = 'ProtocolError';
}

const EMPTY = Buffer.alloc(0);
/** Largest payload accepted (the servers under test cap frames far below this). */
const MAX_PAYLOAD = 2 ** 31;

/** Header length implied by its second byte: 2, +2 or +8 for the extended length, +4 for a mask. */
export function headerLength(b1: number): number {
  const len7 = b1 & 0x7f;
  return 2 + (len7 === 126 ? 2 : len7 === 127 ? 8 : 0) + (b1 & 0x80 ? 4 : 0);
}

export class FrameParser {
  /** Complete data messages seen (a fragmented message counts once). */
  messages = 0;
  /** Complete text messages seen. */
  textMessages = 0;
  /** Frames seen, control frames and fragments included. */
  frames = 0;
  /** Bytes pushed. */
  bytes = 0;

  /** How many leading bytes of each data message the handler gets (Infinity: all of it). */
  capture: number;

  private readonly header = Buffer.alloc(14);
  private headerHave = 0;
  private inPayload = false;

  // The frame being read (slow path: a frame that does not lie whole in one chunk).
  private fin = false;
  private opcode = 0;
  private masked = false;
  private readonly maskKey = Buffer.alloc(4);
  /** Payload bytes of the frame not read yet. */
  private left = 0;
  /** Payload bytes of the frame read so far (the mask's phase). */
  private pos = 0;

  // The data message being read (one frame, or several fragments).
  private msgOpcode = 0;
  private msgLength = 0;
  /**
   * Captured bytes of the message: `capBuf[capStart, capStart + capLength)`. `capBuf` is the chunk
   * being parsed (a view, nothing copied) until the message straddles two chunks or fragments,
   * then an owned copy.
   */
  private capBuf: Buffer = EMPTY;
  private capStart = 0;
  private capLength = 0;
  private capOwned = false;

  // A control frame (at most 125 bytes, may arrive between the fragments of a message).
  private readonly control = Buffer.alloc(125);

  constructor(
    private readonly onFrame: FrameHandler,
    capture = 0,
  ) {
    this.capture = capture;
  }

  /** Parses one chunk of the byte stream. The handler runs synchronously for each complete frame. */
  push(chunk: Buffer, n = chunk.length): void {
    this.bytes += n;
    let off = 0;
    while (off < n) {
      // Fast path: a whole unmasked, unfragmented data frame in this chunk (nearly every frame).
      if (!this.inPayload && this.headerHave === 0 && this.msgOpcode === 0 && n - off >= 2) {
        const b0 = chunk[off]!;
        const b1 = chunk[off + 1]!;
        const op = b0 & 0x0f;
        if ((b0 & 0xf0) === 0x80 && (op === OP_TEXT || op === OP_BINARY) && b1 < 127) {
          let len = b1;
          let h = 2;
          if (len === 126) {
            if (n - off >= 4) {
              len = (chunk[off + 2]! << 8) | chunk[off + 3]!;
              h = 4;
            } else h = 0;
          }
          if (h !== 0 && off + h + len <= n) {
            const start = off + h;
            off = start + len;
            this.frames++;
            this.messages++;
            if (op === OP_TEXT) this.textMessages++;
            this.onFrame(op, chunk, start, len < this.capture ? len : this.capture, len);
            continue;
          }
        }
      }
      if (!this.inPayload) {
        const avail = n - off;
        if (this.headerHave === 0 && avail >= 2 && avail >= headerLength(chunk[off + 1]!)) {
          off += this.readHeader(chunk, off);
        } else {
          // The header straddles chunks: gather it byte by byte (rare; at most 14 bytes).
          while (off < n) {
            this.header[this.headerHave++] = chunk[off++]!;
            if (this.headerHave >= 2 && this.headerHave === headerLength(this.header[1]!)) break;
          }
          if (this.headerHave < 2 || this.headerHave !== headerLength(this.header[1]!)) break;
          this.readHeader(this.header, 0);
          this.headerHave = 0;
        }
        if (this.left === 0) {
          this.endFrame();
          continue;
        }
        this.inPayload = true;
      }
      const take = Math.min(this.left, n - off);
      if (this.opcode >= 0x8) {
        this.copyControl(chunk, off, take);
      } else {
        const want = this.capture - this.capLength;
        if (want > 0) this.keep(chunk, off, Math.min(take, want));
      }
      off += take;
      this.left -= take;
      this.pos += take;
      if (this.left === 0) {
        this.inPayload = false;
        this.endFrame();
      }
    }
    // A message still in progress must not keep a view into the chunk the caller will reuse.
    if (this.capLength > 0 && !this.capOwned) this.own(0);
  }

  /** Reads a complete header at `buf[at]`; returns its length. */
  private readHeader(buf: Buffer, at: number): number {
    const b0 = buf[at]!;
    const b1 = buf[at + 1]!;
    if (b0 & 0x70) throw new ProtocolError('reserved bits set (no extension was negotiated)');
    this.fin = (b0 & 0x80) !== 0;
    this.opcode = b0 & 0x0f;
    this.masked = (b1 & 0x80) !== 0;
    let len = b1 & 0x7f;
    let p = at + 2;
    if (len === 126) {
      len = buf.readUInt16BE(p);
      p += 2;
    } else if (len === 127) {
      const hi = buf.readUInt32BE(p);
      const lo = buf.readUInt32BE(p + 4);
      if (hi >= 0x80000000) throw new ProtocolError('64-bit length with its most significant bit set');
      len = hi * 0x100000000 + lo;
      p += 8;
    }
    if (len > MAX_PAYLOAD) throw new ProtocolError(`frame of ${len} bytes is larger than this client accepts`);
    if (this.masked) {
      buf.copy(this.maskKey, 0, p, p + 4);
      p += 4;
    }
    if (this.opcode >= 0x8) {
      if (!this.fin) throw new ProtocolError('fragmented control frame');
      if (len > 125) throw new ProtocolError('control frame longer than 125 bytes');
    } else if (this.opcode === OP_CONTINUATION) {
      if (this.msgOpcode === 0) throw new ProtocolError('continuation frame without a message to continue');
    } else if (this.opcode === OP_TEXT || this.opcode === OP_BINARY) {
      if (this.msgOpcode !== 0) throw new ProtocolError('new message before the previous one ended');
      this.msgOpcode = this.opcode;
    } else {
      throw new ProtocolError(`unknown opcode ${this.opcode}`);
    }
    this.left = len;
    this.pos = 0;
    if (this.opcode < 0x8) this.msgLength += len;
    return p - at;
  }

  /** Adds `chunk[off, off + len)` to the captured bytes of the message. */
  private keep(chunk: Buffer, off: number, len: number): void {
    if (this.capLength === 0 && !this.masked) {
      this.capBuf = chunk;
      this.capStart = off;
      this.capLength = len;
      this.capOwned = false;
      return;
    }
    // A second piece (next chunk, next fragment) or a masked one: copy into an owned buffer.
    const at = this.capLength;
    this.own(len);
    chunk.copy(this.capBuf, at, off, off + len);
    if (this.masked) {
      for (let i = 0; i < len; i++) this.capBuf[at + i]! ^= this.maskKey[(this.pos + i) & 3]!;
    }
    this.capLength = at + len;
  }

  /** Moves the captured bytes into an owned buffer with room for `extra` more. */
  private own(extra: number): void {
    const copy = Buffer.allocUnsafe(this.capLength + extra);
    this.capBuf.copy(copy, 0, this.capStart, this.capStart + this.capLength);
    this.capBuf = copy;
    this.capStart = 0;
    this.capOwned = true;
  }

  private copyControl(chunk: Buffer, off: number, len: number): void {
    chunk.copy(this.control, this.pos, off, off + len);
    if (this.masked) {
      for (let i = 0; i < len; i++) this.control[this.pos + i]! ^= this.maskKey[(this.pos + i) & 3]!;
    }
  }

  private endFrame(): void {
    this.frames++;
    const op = this.opcode;
    if (op >= 0x8) {
      this.onFrame(op, this.control, 0, this.pos, this.pos);
      return;
    }
    if (!this.fin) return;
    const msgOp = this.msgOpcode;
    const length = this.msgLength;
    const buf = this.capBuf;
    const start = this.capStart;
    const captured = this.capLength;
    this.msgOpcode = 0;
    this.msgLength = 0;
    this.capBuf = EMPTY;
    this.capStart = 0;
    this.capLength = 0;
    this.capOwned = false;
    this.messages++;
    if (msgOp === OP_TEXT) this.textMessages++;
    this.onFrame(msgOp, buf, start, captured, length);
  }
}

// ---------------------------------------------------------------------------------------------
// Client frames: always masked (RFC 6455 §5.3), with keys from a pool of random bytes.

const keyPool = Buffer.allocUnsafe(64 * 1024);
let keyAt = keyPool.length;

function nextMaskOffset(): number {
  if (keyAt + 4 > keyPool.length) {
    randomFillSync(keyPool);
    keyAt = 0;
  }
  const at = keyAt;
  keyAt += 4;
  return at;
}

/** One masked, unfragmented client frame carrying `payload`. */
export function encodeFrame(opcode: number, payload: Buffer): Buffer {
  const len = payload.length;
  const ext = len < 126 ? 0 : len < 0x10000 ? 2 : 8;
  const head = 2 + ext + 4;
  const out = Buffer.allocUnsafe(head + len);
  out[0] = 0x80 | opcode;
  if (ext === 0) {
    out[1] = 0x80 | len;
  } else if (ext === 2) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeUInt32BE(Math.floor(len / 0x100000000), 2);
    out.writeUInt32BE(len >>> 0, 6);
  }
  const k = nextMaskOffset();
  keyPool.copy(out, head - 4, k, k + 4);
  const m0 = keyPool[k]!;
  const m1 = keyPool[k + 1]!;
  const m2 = keyPool[k + 2]!;
  const m3 = keyPool[k + 3]!;
  let i = 0;
  for (; i + 4 <= len; i += 4) {
    out[head + i] = payload[i]! ^ m0;
    out[head + i + 1] = payload[i + 1]! ^ m1;
    out[head + i + 2] = payload[i + 2]! ^ m2;
    out[head + i + 3] = payload[i + 3]! ^ m3;
  }
  for (; i < len; i++) out[head + i] = payload[i]! ^ keyPool[k + (i & 3)]!;
  return out;
}

export function encodeText(text: string): Buffer {
  return encodeFrame(OP_TEXT, Buffer.from(text, 'utf8'));
}

/** An unmasked server-style frame; for tests of the parser. */
export function encodeServerFrame(opcode: number, payload: Buffer, fin = true): Buffer {
  const len = payload.length;
  const ext = len < 126 ? 0 : len < 0x10000 ? 2 : 8;
  const out = Buffer.allocUnsafe(2 + ext + len);
  out[0] = (fin ? 0x80 : 0) | opcode;
  if (ext === 0) out[1] = len;
  else if (ext === 2) {
    out[1] = 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = 127;
    out.writeUInt32BE(Math.floor(len / 0x100000000), 2);
    out.writeUInt32BE(len >>> 0, 6);
  }
  payload.copy(out, 2 + ext);
  return out;
}
