/**
 * One room's live stream on one gateway: puts the room's messages in `seq` order, exactly once,
 * before they reach the room's local sockets through one uWS topic publish.
 *
 * Why it exists: messages of one room are stored (and numbered) by whichever worker took the
 * publish, and several workers publish to the bus independently, so a gateway can receive seq 7
 * before seq 6, or never receive seq 6 when its worker died between storing and publishing.
 * The stream holds frames that arrive early, waits `gapMs` for the missing ones, then fills the
 * gap from history; a frame at or below the last delivered seq is a duplicate and is dropped.
 *
 * Joining: a connection joins at the room position its join reply carried (`seq` S, after the
 * history it got with the reply). If the stream has already delivered past S, the connection is
 * sent (S, last] from a small ring of recent frames before it subscribes; if the stream has not
 * reached S yet, the connection waits and subscribes the moment the stream delivers S. Either way it
 * sees every message after S once, in order. (If the ring no longer holds what it needs — more than
 * `ringSize` messages arrived while its join was in flight — the connection sees a gap, which the
 * protocol's gap rule covers: the client asks `history` for it.)
 */
import { scanRoomEventHeader, type RoomEventSpan } from '../shared/envelope.ts';

const encoder = new TextEncoder();
const NL = 10;
const latin1 = new TextDecoder('latin1');
/** Reused for every event: the header is read without allocating. */
const span: RoomEventSpan = { seq: 0, epochStart: 0, epochEnd: 0, offset: 0 };

export interface StreamMember {
  readonly closed: boolean;
  subscribe(topic: string): void;
  /** Sends one frame to this member alone; `seq` is given for room messages. */
  send(frame: Uint8Array, seq?: number): void;
}

export interface HistoryFrames {
  epoch: string;
  /** Latest seq of the room. */
  seq: number;
  frames: { seq: number; frame: Uint8Array }[];
}

export interface StreamHost {
  /** Sends one frame to every socket subscribed to the topic. */
  publish(topic: string, frame: Uint8Array, seq?: number): void;
  /** Messages after `after`, oldest first; undefined when history could not be read now. */
  fetchAfter(room: string, after: number, limit: number): Promise<HistoryFrames | undefined>;
}

export interface StreamOptions {
  gapMs: number;
  ringSize: number;
  /** Early frames held at most; past it the gap is filled at once. */
  maxPending: number;
}

export const defaultStreamOptions: StreamOptions = { gapMs: 200, ringSize: 256, maxPending: 1000 };

export class RoomStream {
  /** Last seq delivered; -1 until the first join reply tells where the room is. */
  last = -1;
  epoch = '';
  private epochBytes = new Uint8Array(0);
  /** Connections attached or joining; the gateway drops the stream at 0. */
  refs = 0;
  private readonly pending = new Map<number, Uint8Array>();
  private readonly waiting = new Map<StreamMember, number>();
  private readonly ring: (Uint8Array | undefined)[];
  private readonly ringSeq: Int32Array;
  private gapTimer: NodeJS.Timeout | undefined;
  private filling = false;
  private resyncWanted = false;
  private closed = false;

  constructor(
    readonly room: string,
    readonly topic: string,
    private readonly host: StreamHost,
    private readonly opts: StreamOptions = defaultStreamOptions,
  ) {
    this.ring = new Array(opts.ringSize);
    this.ringSeq = new Int32Array(opts.ringSize).fill(-1);
  }

  /**
   * Room events from the bus: one `"<seq> <epoch>\n<frame>"`, or several joined by `\n` (a worker
   * sends the events of one room made in one turn together; frames are JSON, which has no raw
   * newline, so the next event starts after the next one).
   */
  onEvent(data: Uint8Array): void {
    let at = 0;
    while (at < data.length) {
      const entry = at === 0 ? data : data.subarray(at);
      if (!scanRoomEventHeader(entry, span)) return;
      const end = entry.indexOf(NL, span.offset);
      if (end < 0) return this.onOne(entry);
      this.onOne(entry.subarray(0, end));
      at += end + 1;
    }
  }

  /** One event; `span` holds its header, read by onEvent. */
  private onOne(data: Uint8Array): void {
    const seq = span.seq;
    const frame = data.subarray(span.offset);
    if (seq === 0) {
      this.host.publish(this.topic, frame);
      return;
    }
    if (this.last < 0) {
      this.hold(seq, frame);
      return;
    }
    // The epoch is compared as bytes; decoded only when it changed (history was lost).
    if (!this.sameEpoch(data, span.epochStart, span.epochEnd)) this.reset(latin1.decode(data.subarray(span.epochStart, span.epochEnd)), seq - 1);
    if (seq <= this.last) return;
    if (seq === this.last + 1) {
      this.deliver(seq, frame);
      this.drain();
    } else {
      this.hold(seq, frame);
    }
  }

  private sameEpoch(data: Uint8Array, start: number, end: number): boolean {
    const e = this.epochBytes;
    if (end - start !== e.length) return false;
    for (let i = 0; i < e.length; i++) if (data[start + i] !== e[i]) return false;
    return true;
  }

  /** Attaches a member whose join reply said the room was at `seq` in `epoch`. */
  attach(member: StreamMember, seq: number, epoch: string): void {
    if (this.last < 0 || epoch !== this.epoch) {
      // First position known, or history was lost and started again: the store is right.
      this.reset(epoch, seq);
      member.subscribe(this.topic);
      this.drain();
      return;
    }
    if (seq <= this.last) {
      this.catchUp(member, seq);
      member.subscribe(this.topic);
    } else {
      this.waiting.set(member, seq);
      this.armGapTimer();
    }
  }

  /**
   * Catches up from history after the bus was down: whatever was published meanwhile never
   * arrived, and without a later message nothing would reveal the gap.
   */
  resync(): void {
    if (this.last < 0 || this.closed) return;
    this.resyncWanted = true;
    void this.fill();
  }

  detach(member: StreamMember): void {
    this.waiting.delete(member);
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.gapTimer);
    this.gapTimer = undefined;
    this.pending.clear();
    this.waiting.clear();
  }

  private reset(epoch: string, last: number): void {
    this.epoch = epoch;
    this.epochBytes = encoder.encode(epoch);
    this.last = last;
    this.ringSeq.fill(-1);
    this.ring.fill(undefined);
    for (const seq of this.pending.keys()) if (seq <= last) this.pending.delete(seq);
    // Positions from before a reset mean nothing now: everyone waiting starts from here.
    for (const member of this.waiting.keys()) this.release(member);
  }

  private deliver(seq: number, frame: Uint8Array): void {
    this.host.publish(this.topic, frame, seq);
    this.last = seq;
    const slot = seq % this.opts.ringSize;
    this.ring[slot] = frame;
    this.ringSeq[slot] = seq;
    if (this.waiting.size > 0) {
      for (const [member, floor] of this.waiting) if (floor <= seq) this.release(member);
    }
  }

  private release(member: StreamMember): void {
    const floor = this.waiting.get(member);
    this.waiting.delete(member);
    if (member.closed || floor === undefined) return;
    this.catchUp(member, floor);
    member.subscribe(this.topic);
  }

  /** Sends the member what the stream delivered after `from`, from the ring. */
  private catchUp(member: StreamMember, from: number): void {
    for (let s = from + 1; s <= this.last; s++) {
      const slot = s % this.opts.ringSize;
      if (this.ringSeq[slot] === s) member.send(this.ring[slot]!, s);
    }
  }

  private hold(seq: number, frame: Uint8Array): void {
    this.pending.set(seq, frame);
    if (this.pending.size > this.opts.maxPending) void this.fill();
    else this.armGapTimer();
  }

  private drain(): void {
    for (let next = this.pending.get(this.last + 1); next; next = this.pending.get(this.last + 1)) {
      this.pending.delete(this.last + 1);
      this.deliver(this.last + 1, next);
    }
    if (this.pending.size === 0 && this.waiting.size === 0) {
      clearTimeout(this.gapTimer);
      this.gapTimer = undefined;
    } else {
      this.armGapTimer();
    }
  }

  private armGapTimer(): void {
    if (this.gapTimer || this.closed) return;
    this.gapTimer = setTimeout(() => {
      this.gapTimer = undefined;
      void this.fill();
    }, this.opts.gapMs);
  }

  /** Fills the gap after `last` from history; skips what history no longer has. */
  private async fill(): Promise<void> {
    if (this.filling || this.closed || this.last < 0) return;
    this.filling = true;
    try {
      let target = this.last;
      for (const s of this.pending.keys()) if (s > target) target = s;
      for (const s of this.waiting.values()) if (s > target) target = s;
      // A resync does not know how far the room went: it asks for a full page.
      if (this.resyncWanted) target = Math.max(target, this.last + 500);
      this.resyncWanted = false;
      if (target <= this.last) return;
      const got = await this.host.fetchAfter(this.room, this.last, Math.min(500, target - this.last));
      if (this.closed || !got) return;
      if (got.epoch !== this.epoch) {
        this.reset(got.epoch, got.seq);
        return;
      }
      for (const { seq, frame } of got.frames) {
        if (seq <= this.last) continue;
        // History starts later than we need: those messages are gone; go on from what exists.
        if (seq > this.last + 1) this.last = seq - 1;
        this.deliver(seq, frame);
        this.pending.delete(seq);
      }
      if (!this.pending.has(this.last + 1) && this.pending.size > 0 && got.frames.length === 0) {
        // Nothing stored after last although later frames arrived: skip to the earliest held.
        this.last = Math.min(...this.pending.keys()) - 1;
      }
      for (const [member, floor] of this.waiting) if (floor <= this.last || floor > got.seq) this.release(member);
    } finally {
      this.filling = false;
      if (!this.closed) this.drain();
    }
  }
}
