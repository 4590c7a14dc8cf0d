import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RoomEventBatcher, encodeRoomEvent } from '../../shared/envelope.ts';
import { RoomStream, type HistoryFrames, type StreamHost, type StreamMember } from '../../gateway/room-stream.ts';

const dec = new TextDecoder();
const frame = (seq: number) => `{"seq":${seq}}`;
const ev = (seq: number, epoch = 'e1') => encodeRoomEvent(seq, epoch, frame(seq));

/** A host that records topic publishes and serves history from a list the test controls. */
class Host implements StreamHost {
  published: string[] = [];
  history: number[] = [];
  epoch = 'e1';
  fetches: [number, number][] = [];
  publish(_topic: string, f: Uint8Array): void {
    this.published.push(dec.decode(f));
  }
  async fetchAfter(_room: string, after: number, limit: number): Promise<HistoryFrames> {
    this.fetches.push([after, limit]);
    const frames = this.history.filter((s) => s > after).slice(0, limit).map((s) => ({ seq: s, frame: new TextEncoder().encode(frame(s)) }));
    return { epoch: this.epoch, seq: Math.max(0, ...this.history), frames };
  }
  seqs(): number[] {
    return this.published.map((p) => (JSON.parse(p) as { seq: number }).seq);
  }
}

class Member implements StreamMember {
  closed = false;
  subscribed = false;
  sent: number[] = [];
  subscribe(): void {
    this.subscribed = true;
  }
  send(f: Uint8Array): void {
    this.sent.push((JSON.parse(dec.decode(f)) as { seq: number }).seq);
  }
}

const opts = { gapMs: 100, ringSize: 8, maxPending: 50 };

describe('RoomStream ordering', () => {
  let host: Host;
  let stream: RoomStream;
  beforeEach(() => {
    vi.useFakeTimers();
    host = new Host();
    stream = new RoomStream('r', 'r:r', host, opts);
  });
  afterEach(() => {
    stream.close();
    vi.useRealTimers();
  });

  it('puts frames that arrive out of order back in seq order', () => {
    stream.attach(new Member(), 0, 'e1');
    for (const s of [2, 1, 4, 3, 5]) stream.onEvent(ev(s));
    expect(host.seqs()).toEqual([1, 2, 3, 4, 5]);
  });

  it('takes several events of one bus message (joined by newlines) in order, presence included', () => {
    stream.attach(new Member(), 0, 'e1');
    const te = new TextEncoder();
    stream.onEvent(te.encode(`2 e1\n${frame(2)}\n0 -\n{"seq":0}\n1 e1\n${frame(1)}\n3 e1\n${frame(3)}`));
    expect(host.published).toEqual([frame(0), frame(1), frame(2), frame(3)]);
  });

  it('batched events from a RoomEventBatcher arrive as one message per room per turn', async () => {
    vi.useRealTimers();
    const sent: [string, Uint8Array][] = [];
    const batcher = new RoomEventBatcher((room, data) => sent.push([room, data]));
    batcher.add('r', 1, 'e1', frame(1));
    batcher.add('other', 7, 'e1', frame(7));
    batcher.add('r', 2, 'e1', frame(2));
    expect(sent).toEqual([]);
    await new Promise((r) => setImmediate(r));
    expect(sent.map(([room]) => room)).toEqual(['r', 'other']);
    stream.attach(new Member(), 0, 'e1');
    stream.onEvent(sent[0]![1]);
    expect(host.seqs()).toEqual([1, 2]);
  });

  it('drops duplicates and frames at or below the position', () => {
    stream.attach(new Member(), 3, 'e1');
    for (const s of [2, 3, 4, 4, 5, 4]) stream.onEvent(ev(s));
    expect(host.seqs()).toEqual([4, 5]);
  });

  it('fills a gap from history when the missing frame never comes', async () => {
    stream.attach(new Member(), 0, 'e1');
    host.history = [1, 2, 3];
    stream.onEvent(ev(1));
    stream.onEvent(ev(3));
    expect(host.seqs()).toEqual([1]);
    await vi.advanceTimersByTimeAsync(opts.gapMs);
    expect(host.fetches).toEqual([[1, 2]]);
    expect(host.seqs()).toEqual([1, 2, 3]);
  });

  it('skips what history no longer has instead of stalling', async () => {
    stream.attach(new Member(), 0, 'e1');
    host.history = [5, 6];
    stream.onEvent(ev(6));
    await vi.advanceTimersByTimeAsync(opts.gapMs);
    expect(host.seqs()).toEqual([5, 6]);
  });

  it('sends unsequenced events (presence, typing) at once', () => {
    stream.onEvent(encodeRoomEvent(0, '-', '{"seq":0}'));
    expect(host.seqs()).toEqual([0]);
  });

  it('holds events until the first join tells the position, then delivers only what follows it', () => {
    stream.onEvent(ev(4));
    stream.onEvent(ev(3));
    stream.onEvent(ev(5));
    expect(host.seqs()).toEqual([]);
    const m = new Member();
    stream.attach(m, 3, 'e1');
    expect(m.subscribed).toBe(true);
    expect(host.seqs()).toEqual([4, 5]);
  });

  it('starts over when the epoch changes (history was lost)', () => {
    stream.attach(new Member(), 10, 'e1');
    stream.onEvent(ev(11));
    stream.onEvent(ev(1, 'e2'));
    stream.onEvent(ev(2, 'e2'));
    expect(host.seqs()).toEqual([11, 1, 2]);
  });
});

describe('RoomStream joining', () => {
  let host: Host;
  let stream: RoomStream;
  beforeEach(() => {
    vi.useFakeTimers();
    host = new Host();
    stream = new RoomStream('r', 'r:r', host, opts);
    stream.attach(new Member(), 0, 'e1');
  });
  afterEach(() => {
    stream.close();
    vi.useRealTimers();
  });

  it('a member whose join position is behind the stream gets the difference from the ring, then subscribes', () => {
    for (let s = 1; s <= 5; s++) stream.onEvent(ev(s));
    const m = new Member();
    stream.attach(m, 2, 'e1');
    expect(m.sent).toEqual([3, 4, 5]);
    expect(m.subscribed).toBe(true);
  });

  it('a member whose join position is ahead of the stream subscribes exactly when the stream reaches it', () => {
    stream.onEvent(ev(1));
    const m = new Member();
    stream.attach(m, 3, 'e1');
    expect(m.subscribed).toBe(false);
    stream.onEvent(ev(2));
    expect(m.subscribed).toBe(false);
    stream.onEvent(ev(3));
    expect(m.subscribed).toBe(true);
    expect(m.sent).toEqual([]);
  });

  it('a waiting member is released by gap filling when the frames it waits for were never published', async () => {
    host.history = [1, 2];
    const m = new Member();
    stream.attach(m, 2, 'e1');
    await vi.advanceTimersByTimeAsync(opts.gapMs);
    expect(host.seqs()).toEqual([1, 2]);
    expect(m.subscribed).toBe(true);
  });
});
