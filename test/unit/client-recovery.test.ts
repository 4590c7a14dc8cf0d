/**
 * The SDK's room stream with fake timers and a fake WebSocket: every message delivered exactly
 * once and in seq order, gaps filled from history (paging), `recovery` after reconnects, and
 * `recovered: false` whenever history no longer has what was missed.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RtClient, MAX_HISTORY_LIMIT, TYPING_REFRESH_MS, type Recovery, type Room, type RtClientOptions } from '../../client/index.ts';
import { MAX_HISTORY_LIMIT as PROTOCOL_MAX_HISTORY_LIMIT } from '../../shared/protocol/schemas.ts';
import { FakeWebSocket, message, type Frame } from '../harness/fake-websocket.ts';

const tick = () => vi.advanceTimersByTimeAsync(0);
const ROOM = 'lobby';

function range(from: number, to: number): number[] {
  return Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i);
}

/** What the application saw, in order: `m<seq>` per message, `R+`/`R-` per recovery. */
interface Seen {
  log: string[];
  seqs: number[];
  recoveries: Recovery[];
}

async function setup(opts: Partial<RtClientOptions> = {}, joinedAt = 0, epoch = 'e1') {
  const client = new RtClient({ url: 'ws://gw.test/ws', username: 'ann', WebSocket: FakeWebSocket, random: () => 0, ...opts });
  const connected = client.connect();
  await tick();
  FakeWebSocket.last.welcome({ heartbeat: 0, sessionId: 's1' });
  await connected;
  const room = client.room(ROOM);
  const seen: Seen = { log: [], seqs: [], recoveries: [] };
  room.on('message', (m) => {
    seen.log.push(`m${m.seq}`);
    seen.seqs.push(m.seq);
  });
  room.on('recovery', (r) => {
    seen.log.push(r.recovered ? 'R+' : 'R-');
    seen.recoveries.push(r);
  });
  const join = room.join();
  await tick();
  const ws = FakeWebSocket.last;
  ws.reply(ws.lastRequest('join'), { room: ROOM, seq: joinedAt, epoch, members: [{ id: 'ann', name: 'ann' }], history: [] });
  await join;
  return { client, room, seen, ws };
}

/** Answers the last `history` request from a server-side history holding seqs `from..to`. */
function answerHistory(ws: FakeWebSocket, have: { from: number; to: number; epoch?: string }, request = ws.lastRequest('history')): Frame {
  const after = Number(request.after ?? 0);
  const limit = Number(request.limit ?? 50);
  const start = Math.max(after + 1, have.from);
  const seqs = range(start, Math.min(have.to, start + limit - 1));
  ws.reply(request, { room: ROOM, seq: have.to, epoch: have.epoch ?? 'e1', messages: seqs.map((s) => message(ROOM, s)) });
  return request;
}

/** Drops the connection and brings up the next one with a welcome. */
async function reconnect(ws: FakeWebSocket, welcome: Record<string, unknown>) {
  ws.serverClose(1006);
  await tick();
  const next = FakeWebSocket.last;
  expect(next).not.toBe(ws);
  expect(next.param('session')).toBe('s1');
  next.welcome({ heartbeat: 0, sessionId: 's1', ...welcome });
  await tick();
  return next;
}

beforeEach(() => {
  vi.useFakeTimers();
  FakeWebSocket.reset();
});
afterEach(() => {
  vi.useRealTimers();
});

it('the SDK pages history by the protocol maximum', () => {
  expect(MAX_HISTORY_LIMIT).toBe(PROTOCOL_MAX_HISTORY_LIMIT);
});

describe('live stream', () => {
  it('delivers in order and drops duplicates (own publish echoes, repeated frames)', async () => {
    const { seen, ws } = await setup();
    for (const s of [1, 2, 2, 3, 1, 3]) ws.receive(message(ROOM, s));
    expect(seen.seqs).toEqual([1, 2, 3]);
    expect(ws.requests('history')).toHaveLength(0);
  });

  it('a gap is filled from history after the last seq, then the held-back message follows', async () => {
    const { seen, ws } = await setup({}, 10);
    ws.receive(message(ROOM, 11));
    ws.receive(message(ROOM, 15));
    await tick();
    const req = ws.lastRequest('history');
    expect(req).toMatchObject({ room: ROOM, after: 11, limit: 3 });
    ws.receive(message(ROOM, 16)); // held back too
    answerHistory(ws, { from: 1, to: 16 }, req);
    await tick();
    expect(seen.seqs).toEqual([11, 12, 13, 14, 15, 16]);
    expect(seen.recoveries).toEqual([]);
    expect(ws.requests('history')).toHaveLength(1);
  });

  it('a message that arrives late while its gap is being filled is delivered once', async () => {
    const { seen, ws } = await setup();
    ws.receive(message(ROOM, 1));
    ws.receive(message(ROOM, 3));
    await tick();
    const req = ws.lastRequest('history');
    ws.receive(message(ROOM, 2));
    expect(seen.seqs).toEqual([1, 2, 3]);
    answerHistory(ws, { from: 1, to: 3 }, req);
    await tick();
    expect(seen.seqs).toEqual([1, 2, 3]);
  });

  it('a gap history no longer has is reported as recovered: false before delivery continues', async () => {
    const { seen, ws } = await setup({}, 5);
    ws.receive(message(ROOM, 9));
    await tick();
    answerHistory(ws, { from: 8, to: 9 });
    await tick();
    expect(seen.log).toEqual(['R-', 'm8', 'm9']);
    expect(seen.recoveries[0]).toMatchObject({ room: ROOM, recovered: false, epoch: 'e1', seq: 7 });
  });

  it('a failed gap fill is retried after a backoff delay', async () => {
    const { seen, ws } = await setup({ random: () => 0.999 });
    ws.receive(message(ROOM, 2));
    await tick();
    ws.error(ws.lastRequest('history'), 'unavailable', 'no worker');
    await vi.advanceTimersByTimeAsync(499);
    expect(ws.requests('history')).toHaveLength(2);
    answerHistory(ws, { from: 1, to: 2 });
    await tick();
    expect(seen.seqs).toEqual([1, 2]);
  });
});

describe('resumed session', () => {
  it('fetches what was missed with history, paging 500 at a time, holding live messages back meanwhile', async () => {
    const { seen, ws, room } = await setup();
    for (const s of range(1, 10)) ws.receive(message(ROOM, s));
    const ws2 = await reconnect(ws, { resumed: true, rooms: [{ room: ROOM, seq: 1200, epoch: 'e1' }] });
    expect(ws2.requests('join')).toHaveLength(0);
    expect(room.joined).toBe(true);
    // Live messages after the welcome's seq come while history is fetched.
    ws2.receive(message(ROOM, 1201));
    ws2.receive(message(ROOM, 1202));
    for (let page = 0; page < 3; page++) {
      answerHistory(ws2, { from: 1, to: 1202 });
      await tick();
    }
    expect(ws2.requests('history').map((f) => [f.after, f.limit])).toEqual([
      [10, 500],
      [510, 500],
      [1010, 190],
    ]);
    expect(seen.seqs).toEqual(range(1, 1202));
    expect(seen.log.filter((e) => e.startsWith('R'))).toEqual(['R+']);
    expect(seen.log.at(-1)).toBe('R+');
    expect(seen.recoveries[0]).toMatchObject({ recovered: true, epoch: 'e1', seq: 1202 });
  });

  it('nothing missed: recovered: true at once, no history request', async () => {
    const { seen, ws } = await setup();
    ws.receive(message(ROOM, 1));
    const ws2 = await reconnect(ws, { resumed: true, rooms: [{ room: ROOM, seq: 1, epoch: 'e1' }] });
    expect(ws2.requests('history')).toHaveLength(0);
    expect(seen.log).toEqual(['m1', 'R+']);
    expect(ws2.requests('presence')).toHaveLength(1); // who is here now
  });

  it('history that starts above the last seq + 1 means recovered: false, then what is left', async () => {
    const { seen, ws } = await setup();
    ws.receive(message(ROOM, 1));
    const ws2 = await reconnect(ws, { resumed: true, rooms: [{ room: ROOM, seq: 2000, epoch: 'e1' }] });
    answerHistory(ws2, { from: 1001, to: 2000 });
    await tick();
    answerHistory(ws2, { from: 1001, to: 2000 });
    await tick();
    expect(seen.log.slice(0, 3)).toEqual(['m1', 'R-', 'm1001']);
    expect(seen.seqs).toEqual([1, ...range(1001, 2000)]);
    expect(seen.recoveries).toHaveLength(1);
  });

  it('an epoch change in the welcome means recovered: false and the latest messages of the new history', async () => {
    const { seen, ws } = await setup({ recoveryLimit: 20 });
    for (const s of range(1, 50)) ws.receive(message(ROOM, s));
    const ws2 = await reconnect(ws, { resumed: true, rooms: [{ room: ROOM, seq: 30, epoch: 'e2' }] });
    expect(seen.recoveries).toEqual([{ room: ROOM, recovered: false, epoch: 'e2', seq: 10 }]);
    expect(ws2.lastRequest('history')).toMatchObject({ after: 10, limit: 20 });
    answerHistory(ws2, { from: 1, to: 30, epoch: 'e2' });
    await tick();
    expect(seen.seqs).toEqual([...range(1, 50), ...range(11, 30)]);
    expect(seen.recoveries).toHaveLength(1);
  });

  it('an epoch change seen in a history reply means recovered: false', async () => {
    const { seen, ws } = await setup({ recoveryLimit: 5 });
    ws.receive(message(ROOM, 1));
    const ws2 = await reconnect(ws, { resumed: true, rooms: [{ room: ROOM, seq: 8, epoch: 'e1' }] });
    answerHistory(ws2, { from: 1, to: 8, epoch: 'e9' });
    await tick();
    expect(seen.recoveries).toEqual([{ room: ROOM, recovered: false, epoch: 'e9', seq: 3 }]);
    answerHistory(ws2, { from: 1, to: 8, epoch: 'e9' });
    await tick();
    expect(seen.seqs).toEqual([1, 4, 5, 6, 7, 8]);
  });

  it('a connection lost during the fill starts over on the next one, delivering nothing twice', async () => {
    const { seen, ws } = await setup();
    const ws2 = await reconnect(ws, { resumed: true, rooms: [{ room: ROOM, seq: 700, epoch: 'e1' }] });
    answerHistory(ws2, { from: 1, to: 700 });
    await tick();
    expect(seen.seqs).toEqual(range(1, 500));
    const ws3 = await reconnect(ws2, { resumed: true, rooms: [{ room: ROOM, seq: 710, epoch: 'e1' }] });
    expect(ws3.lastRequest('history')).toMatchObject({ after: 500, limit: 210 });
    answerHistory(ws3, { from: 1, to: 710 });
    await tick();
    expect(seen.seqs).toEqual(range(1, 710));
    expect(seen.log.filter((e) => e.startsWith('R'))).toEqual(['R+']);
  });

  it('a room missing from the resumed session is joined again from its position', async () => {
    const { seen, ws } = await setup();
    ws.receive(message(ROOM, 1));
    const ws2 = await reconnect(ws, { resumed: true, rooms: [] });
    expect(ws2.lastRequest('join')).toMatchObject({ room: ROOM, since: 1, epoch: 'e1' });
    expect(seen.log).toEqual(['m1']);
  });
});

describe('session not resumed', () => {
  it('joins again with since and epoch; recovered: true delivers the missed messages, then R+', async () => {
    const { seen, ws } = await setup({ recoveryLimit: 40 });
    for (const s of range(1, 3)) ws.receive(message(ROOM, s));
    const ws2 = await reconnect(ws, { resumed: false, sessionId: 's2' });
    const join = ws2.lastRequest('join');
    expect(join).toMatchObject({ room: ROOM, since: 3, epoch: 'e1', limit: 40 });
    ws2.reply(join, { room: ROOM, seq: 6, epoch: 'e1', members: [], history: [4, 5, 6].map((s) => message(ROOM, s)), recovered: true });
    await tick();
    ws2.receive(message(ROOM, 6));
    ws2.receive(message(ROOM, 7));
    expect(seen.log).toEqual(['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'R+', 'm7']);
  });

  it('recovered: false (another epoch): R- first, then the latest messages of the new history', async () => {
    const { seen, ws } = await setup();
    for (const s of range(1, 5)) ws.receive(message(ROOM, s));
    const ws2 = await reconnect(ws, { resumed: false });
    ws2.reply(ws2.lastRequest('join'), { room: ROOM, seq: 2, epoch: 'e2', members: [], history: [1, 2].map((s) => message(ROOM, s)), recovered: false });
    await tick();
    ws2.receive(message(ROOM, 3));
    expect(seen.log).toEqual(['m1', 'm2', 'm3', 'm4', 'm5', 'R-', 'm1', 'm2', 'm3']);
    expect(seen.recoveries[0]).toMatchObject({ recovered: false, epoch: 'e2', seq: 0 });
  });

  it('publishes made while offline wait for the rejoin, then carry their cid', async () => {
    const { ws, room } = await setup();
    ws.serverClose(1006);
    const p = room.publish('offline');
    await tick();
    const ws2 = FakeWebSocket.last;
    ws2.welcome({ heartbeat: 0 });
    await tick();
    expect(ws2.sent.map((f) => f.type)).toEqual(['join']);
    ws2.reply(ws2.lastRequest('join'), { room: ROOM, seq: 0, epoch: 'e1', members: [], history: [], recovered: true });
    await tick();
    const pub = ws2.lastRequest('publish');
    ws2.reply(pub, { room: ROOM, seq: 1, ts: 't' });
    await expect(p).resolves.toMatchObject({ seq: 1, cid: pub.cid });
  });
});

describe('join and leave', () => {
  it('join resolves with history, which is not repeated as message events', async () => {
    const client = new RtClient({ url: 'ws://gw.test/ws', username: 'ann', WebSocket: FakeWebSocket, joinLimit: 2 });
    const connected = client.connect();
    await tick();
    const ws = FakeWebSocket.last;
    ws.welcome({ heartbeat: 0 });
    await connected;
    const room = client.room('r');
    const seqs: number[] = [];
    room.on('message', (m) => seqs.push(m.seq));
    const join = room.join();
    await tick();
    expect(ws.lastRequest('join')).toMatchObject({ room: 'r', limit: 2 });
    ws.reply(ws.lastRequest('join'), { room: 'r', seq: 9, epoch: 'e', members: [], history: [8, 9].map((s) => message('r', s)) });
    const result = await join;
    expect(result.history.map((m) => m.seq)).toEqual([8, 9]);
    ws.receive(message('r', 10));
    expect(seqs).toEqual([10]);
    await expect(room.join()).resolves.toMatchObject({ seq: 10, history: [] });
    expect(ws.requests('join')).toHaveLength(1);
  });

  it('a left room is left on the server after a resumed reconnect and delivers nothing', async () => {
    const { seen, ws, room } = await setup();
    ws.serverClose(1006);
    await room.leave();
    await tick();
    const ws2 = FakeWebSocket.last;
    ws2.welcome({ heartbeat: 0, sessionId: 's1', resumed: true, rooms: [{ room: ROOM, seq: 5, epoch: 'e1' }] });
    expect(ws2.lastRequest('leave')).toMatchObject({ room: ROOM });
    ws2.receive(message(ROOM, 6));
    expect(seen.seqs).toEqual([]);
  });

  it('members follow presence events; typing is throttled', async () => {
    const { ws, room } = await setup();
    const members: string[][] = [];
    room.on('members', (m) => members.push(m.map((u) => u.id)));
    ws.receive({ type: 'presence', room: ROOM, event: 'join', user: { id: 'bob', name: 'bob' } });
    ws.receive({ type: 'presence', room: ROOM, event: 'join', user: { id: 'bob', name: 'bob' } });
    ws.receive({ type: 'presence', room: ROOM, event: 'leave', user: { id: 'ann', name: 'ann' } });
    expect(members).toEqual([['ann', 'bob'], ['bob']]);
    room.typing(true);
    room.typing(true);
    await vi.advanceTimersByTimeAsync(TYPING_REFRESH_MS);
    room.typing(true);
    room.typing(false);
    room.typing(false);
    expect(ws.requests('typing').map((f) => f.typing)).toEqual([true, true, false]);
    const typing: string[][] = [];
    room.on('typing', (users) => typing.push(users.map((u) => u.id)));
    ws.receive({ type: 'typing', room: ROOM, users: [{ id: 'bob', name: 'bob' }] });
    ws.serverClose(1006);
    expect(typing).toEqual([['bob'], []]);
  });
});

describe('several rooms', () => {
  it('each room fills its own gap', async () => {
    const { client, ws, seen } = await setup();
    const other: Room = client.room('other');
    const otherSeqs: number[] = [];
    other.on('message', (m) => otherSeqs.push(m.seq));
    const join = other.join();
    await tick();
    ws.reply(ws.lastRequest('join'), { room: 'other', seq: 3, epoch: 'x', members: [], history: [] });
    await join;
    ws.receive(message('other', 5));
    ws.receive(message(ROOM, 1));
    await tick();
    const req = ws.lastRequest('history');
    expect(req).toMatchObject({ room: 'other', after: 3, limit: 1 });
    ws.reply(req, { room: 'other', seq: 5, epoch: 'x', messages: [message('other', 4)] });
    await tick();
    expect(otherSeqs).toEqual([4, 5]);
    expect(seen.seqs).toEqual([1]);
  });
});

describe('a room the server takes away', () => {
  beforeEach(() => {
    vi.useFakeTimers();
    FakeWebSocket.reset();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('an unsolicited forbidden naming the room: revoked once, the room is left, its messages no longer delivered', async () => {
    const { client, room, seen, ws } = await setup();
    const revoked: string[] = [];
    const errors: string[] = [];
    room.on('revoked', (err) => revoked.push(err.code));
    client.on('error', (err) => errors.push(err.code));
    ws.receive(message(ROOM, 1));
    await tick();
    ws.receive({ type: 'error', code: 'forbidden', message: 'no longer allowed in "lobby"', room: ROOM });
    await tick();
    expect(revoked).toEqual(['forbidden']);
    expect(errors).toEqual(['forbidden']);
    expect(room.joined).toBe(false);
    ws.receive(message(ROOM, 2));
    await tick();
    expect(seen.seqs).toEqual([1]);
    // Not joined again by itself after a reconnect.
    await reconnect(ws, { resumed: false });
    expect(FakeWebSocket.last.sent.filter((f) => f.type === 'join')).toEqual([]);
    client.close();
  });
});
