import { describe, expect, it } from 'vitest';
import {
  envelope,
  envelopeHeader,
  frames,
  historyAnswer,
  positioned,
  readEnvelope,
  readHistoryAnswer,
  readOpenAnswer,
  readPosition,
  seqOfMessage,
} from '../../shared/protocol/internal.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const header = envelopeHeader('c1', 'gw1', { id: 'ann', name: 'Ann' }, 's1');

describe('internal protocol', () => {
  it('reads back every internal request its builders make', () => {
    const built = [
      frames.open('s9'),
      frames.open(undefined),
      frames.detach(['a']),
      frames.alive(),
      frames.ticketPut('t', '{"x":1}', 1000),
      frames.ticketTake('t'),
      frames.history('room', 4, 500),
      frames.notify({ userIds: ['u'], kind: 'info', title: 't', body: 'b' }),
      frames.leave('room'),
      frames.typingOff('room'),
    ];
    for (const f of built) {
      const read = readEnvelope(envelope(header, f));
      expect(read.ok, f).toBe(true);
      if (read.ok) expect(read.env).toMatchObject({ c: 'c1', n: 'gw1', s: 's1', u: { id: 'ann', name: 'Ann' }, f: JSON.parse(f) });
    }
  });

  it('a malformed envelope or frame is a bad_request result, never a throw', () => {
    const bad = ['not json', '[]', '{"c":1}', `${header}{"type":"$ticket.put","ticket":"t"}}`, `${header}{"type":"join"}}`, `${header}{"type":"$history","room":"r","after":-1,"limit":1}}`];
    for (const text of bad) {
      const read = readEnvelope(encoder.encode(text));
      expect(read).toMatchObject({ ok: false, code: 'bad_request' });
    }
    expect(readEnvelope(envelope(header, '{"type":"$nope","id":3}'))).toMatchObject({ ok: false, code: 'unknown_type' });
    expect(readEnvelope(envelope(header, '{"type":"nope","id":3}'))).toMatchObject({ ok: false, code: 'unknown_type', id: 3 });
  });

  it('a join reply carries its position in front of the exact client frame', () => {
    const frame = '{"type":"reply","id":1,"room":"r","seq":7,"epoch":"e1","members":[],"history":[]}';
    const data = encoder.encode(positioned(7, 'e1', frame));
    const at = readPosition(data)!;
    expect(at).toMatchObject({ seq: 7, epoch: 'e1' });
    expect(decoder.decode(data.subarray(at.offset))).toBe(frame);
    expect(readPosition(encoder.encode('{"type":"error","code":"internal","message":"x"}'))).toBeUndefined();
  });

  it('a $history answer hands back the stored frames byte for byte, multi-byte text included', () => {
    const stored = [3, 4, 5].map((seq) => `{"type":"message","room":"r","seq":${seq},"user":{"id":"ü","name":"😀"},"content":"é ${seq}","ts":"t"}`);
    const answer = readHistoryAnswer(encoder.encode(historyAnswer(5, 'e2', stored.map((frame) => ({ seq: seqOfMessage(frame), frame })))))!;
    expect(answer.seq).toBe(5);
    expect(answer.epoch).toBe('e2');
    expect(answer.frames.map((f) => f.seq)).toEqual([3, 4, 5]);
    expect(answer.frames.map((f) => decoder.decode(f.frame))).toEqual(stored);
    expect(readHistoryAnswer(encoder.encode(historyAnswer(0, 'e3', [])))).toEqual({ seq: 0, epoch: 'e3', frames: [] });
  });

  it('reads the $open answer, and nothing malformed as one', () => {
    const ok = { sessionId: 's', resumed: true, rooms: [{ room: 'r', seq: 2, epoch: 'e' }], unread: 1 };
    expect(readOpenAnswer(encoder.encode(JSON.stringify(ok)))).toEqual(ok);
    expect(readOpenAnswer(encoder.encode('{"type":"error","code":"unavailable","message":"x"}'))).toBeUndefined();
    expect(readOpenAnswer(encoder.encode('{"sessionId":"s","resumed":true,"rooms":[{"room":1}],"unread":0}'))).toBeUndefined();
  });
});
