import { describe, expect, it } from 'vitest';
import {
  FrameParser,
  OP_BINARY,
  OP_CLOSE,
  OP_CONTINUATION,
  OP_PING,
  OP_TEXT,
  ProtocolError,
  encodeFrame,
  encodeServerFrame,
  headerLength,
} from '../../bench/loadgen/frame.ts';

interface Seen {
  opcode: number;
  data: string;
  length: number;
}

/** A parser that records every frame, copying what it is handed (views die with the chunk). */
function recorder(capture: number): { parser: FrameParser; seen: Seen[] } {
  const seen: Seen[] = [];
  const parser = new FrameParser((opcode, buf, start, captured, length) => seen.push({ opcode, data: buf.toString('latin1', start, start + captured), length }), capture);
  return { parser, seen };
}

/** Pushes `stream` cut at the given offsets, each piece in a reused buffer that is scribbled over afterwards. */
function pushCut(parser: FrameParser, stream: Buffer, cuts: number[]): void {
  const scratch = Buffer.alloc(stream.length);
  let from = 0;
  for (const to of [...cuts, stream.length]) {
    const n = stream.copy(scratch, 0, from, to);
    parser.push(scratch.subarray(0, n));
    scratch.fill(0x5a);
    from = to;
  }
}

const text = (s: string) => encodeServerFrame(OP_TEXT, Buffer.from(s));
const payload = (n: number, seed = 7) => Buffer.from(Array.from({ length: n }, (_, i) => 97 + ((i * seed) % 26)));

describe('bench load generator: RFC 6455 frame parser', () => {
  it('reads the length from 7-bit, 16-bit and 64-bit headers', () => {
    expect(headerLength(5)).toBe(2);
    expect(headerLength(126)).toBe(4);
    expect(headerLength(127)).toBe(10);
    expect(headerLength(0x80 | 127)).toBe(14);
    const { parser, seen } = recorder(Infinity);
    const sizes = [0, 1, 125, 126, 127, 65535, 65536, 70_000];
    parser.push(Buffer.concat(sizes.map((n) => encodeServerFrame(OP_TEXT, payload(n)))));
    expect(seen.map((s) => s.length)).toEqual(sizes);
    expect(seen.map((s) => s.data)).toEqual(sizes.map((n) => payload(n).toString('latin1')));
    expect(parser.textMessages).toBe(sizes.length);
  });

  it('accepts a 64-bit length for a payload a shorter header could carry', () => {
    const body = Buffer.from('{"type":"message"}');
    const frame = Buffer.alloc(10 + body.length);
    frame[0] = 0x81;
    frame[1] = 127;
    frame.writeUInt32BE(0, 2);
    frame.writeUInt32BE(body.length, 6);
    body.copy(frame, 10);
    const { parser, seen } = recorder(Infinity);
    parser.push(frame);
    expect(seen).toEqual([{ opcode: OP_TEXT, data: body.toString(), length: body.length }]);
  });

  it('counts every frame whatever the chunk boundaries, headers split at every byte', () => {
    const frames = [text('a'), encodeServerFrame(OP_TEXT, payload(300)), encodeServerFrame(OP_BINARY, payload(10)), text(''), encodeServerFrame(OP_TEXT, payload(66_000))];
    const stream = Buffer.concat(frames);
    // Every single cut point inside the first four frames (which include a 16-bit header)...
    const smallEnd = frames.slice(0, 4).reduce((n, f) => n + f.length, 0) + 6;
    for (let cut = 1; cut < smallEnd; cut++) {
      const { parser, seen } = recorder(16);
      pushCut(parser, stream, [cut]);
      expect(seen.map((s) => s.length)).toEqual([1, 300, 10, 0, 66_000]);
      expect(parser.messages).toBe(5);
      expect(parser.textMessages).toBe(4);
    }
    // ...and one byte at a time through the 64-bit header of the last one.
    const lastStart = stream.length - frames[4]!.length;
    const cuts = Array.from({ length: 14 }, (_, i) => lastStart + i + 1);
    const { parser, seen } = recorder(16);
    pushCut(parser, stream, cuts);
    expect(seen.map((s) => s.length)).toEqual([1, 300, 10, 0, 66_000]);
    expect(seen[4]!.data).toBe(payload(66_000).toString('latin1').slice(0, 16));
  });

  it('hands over only the captured prefix, intact across chunks', () => {
    const body = '{"type":"message","room":"r","seq":1,"content":"12345|xxxx"}';
    const stream = Buffer.concat([text(body), text('{"type":"reply","id":7}'), text(body)]);
    for (let cut = 1; cut < stream.length; cut++) {
      for (const capture of [0, 10, 16, Infinity]) {
        const { parser, seen } = recorder(capture);
        pushCut(parser, stream, [cut, Math.min(stream.length, cut + 5)]);
        expect(seen.map((s) => s.data)).toEqual([body, '{"type":"reply","id":7}', body].map((b) => b.slice(0, capture)));
        expect(seen.map((s) => s.length)).toEqual([body.length, 23, body.length]);
      }
    }
  });

  it('counts a fragmented message once and joins its captured fragments', () => {
    const stream = Buffer.concat([
      encodeServerFrame(OP_TEXT, Buffer.from('{"type":'), false),
      encodeServerFrame(OP_PING, Buffer.from('hb')),
      encodeServerFrame(OP_CONTINUATION, Buffer.from('"mess'), false),
      encodeServerFrame(OP_CONTINUATION, Buffer.from('age"}')),
      text('{"type":"reply"}'),
    ]);
    for (let cut = 1; cut < stream.length; cut++) {
      const { parser, seen } = recorder(Infinity);
      pushCut(parser, stream, [cut]);
      expect(seen).toEqual([
        { opcode: OP_PING, data: 'hb', length: 2 },
        { opcode: OP_TEXT, data: '{"type":"message"}', length: 18 },
        { opcode: OP_TEXT, data: '{"type":"reply"}', length: 16 },
      ]);
      expect(parser.messages).toBe(2);
      expect(parser.frames).toBe(5);
    }
  });

  it('gives control frames their whole payload and does not count them as messages', () => {
    const close = Buffer.alloc(2 + 6);
    close.writeUInt16BE(4001, 0);
    close.write('denied', 2);
    const { parser, seen } = recorder(0);
    parser.push(Buffer.concat([encodeServerFrame(OP_PING, Buffer.from('x')), text('abc'), encodeServerFrame(OP_CLOSE, close)]));
    expect(seen.map((s) => [s.opcode, s.length])).toEqual([
      [OP_PING, 1],
      [OP_TEXT, 3],
      [OP_CLOSE, 8],
    ]);
    expect(seen[0]!.data).toBe('x');
    expect(seen[1]!.data).toBe('');
    expect(Buffer.from(seen[2]!.data, 'latin1').readUInt16BE(0)).toBe(4001);
    expect(parser.messages).toBe(1);
  });

  it('reads masked frames as the client writes them (encodeFrame round trip)', () => {
    const sizes = [0, 5, 125, 126, 1000, 65_536];
    const stream = Buffer.concat(sizes.map((n) => encodeFrame(OP_TEXT, payload(n, 3))));
    for (const cut of [1, 3, 7, 200, stream.length - 1]) {
      const { parser, seen } = recorder(Infinity);
      pushCut(parser, stream, [cut]);
      expect(seen.map((s) => s.data)).toEqual(sizes.map((n) => payload(n, 3).toString('latin1')));
    }
    // The client's frames are masked: the bytes on the wire are not the payload.
    const one = encodeFrame(OP_TEXT, Buffer.from('hello hello'));
    expect(one[1]! & 0x80).toBe(0x80);
    expect(one.subarray(6).toString()).not.toBe('hello hello');
  });

  it('rejects what a server must not send', () => {
    const { parser } = recorder(0);
    expect(() => parser.push(Buffer.from([0xc1, 0x00]))).toThrow(ProtocolError);
    expect(() => recorder(0).parser.push(Buffer.from([0x80, 0x00]))).toThrow(/continuation/);
    expect(() => recorder(0).parser.push(Buffer.from([0x09, 0x00]))).toThrow(/fragmented control/);
    expect(() => recorder(0).parser.push(Buffer.from([0x83, 0x00]))).toThrow(/opcode/);
  });
});
