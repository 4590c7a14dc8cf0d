/**
 * Conversations: durable direct messages, read cursors and unread counts on every device, in both
 * modes (the distributed one has two gateways and two workers).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TARGETS, type Target } from '../harness/targets.ts';
import WebSocket from 'ws';
import { RtClient, type DirectMessage, type Message } from '../../client/index.ts';
import { TestClient, type Frame } from '../harness/client.ts';
import { until } from '../harness/wait.ts';

const KEY = 'conversations-test-key';
let n = 0;
const uniq = (p: string) => `${p}-${process.pid}-${++n}`;

describe.each(TARGETS)('conversations (%s)', (_name, start) => {
  let t: Target;
  let api: string;
  const clients: TestClient[] = [];
  const closers: (() => void)[] = [];
  const connect = async (user: string, gw = 0) => {
    const c = await TestClient.connect(t.gateways[gw % t.gateways.length]!, { query: { username: user } });
    clients.push(c);
    return c;
  };
  const get = (path: string, key = KEY) => fetch(`${api}${path}`, { headers: { authorization: `Bearer ${key}` } });

  beforeAll(async () => {
    t = await start({ API_KEY: KEY });
    api = t.gateways[0]!.replace(/^ws/, 'http');
  });
  afterAll(async () => {
    for (const c of clients) c.terminate();
    for (const close of closers) close();
    await t?.stop();
  });

  it('a user who never connected gets the message at first connect, with the unread count', async () => {
    const [alice, bob] = [uniq('alice'), uniq('bob')];
    const a = await connect(alice);
    const r1 = await a.ok({ type: 'direct', to: bob, content: 'are you there?' });
    const r2 = await a.ok({ type: 'direct', to: bob, content: 'call me' });
    expect(r1.room).toMatch(/^dm:[A-Za-z0-9_-]{43}$/);
    expect(r2.room).toBe(r1.room);
    expect([r1.seq, r2.seq]).toEqual([1, 2]);

    const b = await connect(bob, 1);
    const list = await b.ok({ type: 'conversations' });
    const convs = list.conversations as Frame[];
    expect(convs).toHaveLength(1);
    expect(convs[0]).toMatchObject({ room: r1.room, with: { id: alice, name: alice }, seq: 2, read: 0, unread: 2 });
    expect(convs[0]!.last).toMatchObject({ type: 'message', room: r1.room, seq: 2, content: 'call me', user: { id: alice } });
    // The sender's own messages are read for the sender.
    expect(((await a.ok({ type: 'conversations' })).conversations as Frame[])[0]).toMatchObject({ room: r1.room, with: { id: bob }, read: 2, unread: 0 });

    const joined = await b.ok({ type: 'join', room: r1.room as string });
    expect(joined).toMatchObject({ seq: 2, read: 0, unread: 2 });
    expect((joined.history as Frame[]).map((m) => m.content)).toEqual(['are you there?', 'call me']);
    // The room name is the same whichever way round.
    expect((await b.ok({ type: 'direct', to: alice, content: 'hi' })).room).toBe(r1.room);
  });

  it('direct events go to the recipient and the sender’s other connections, with room and seq; joined ones also get message', async () => {
    const [alice, bob] = [uniq('alice'), uniq('bob')];
    const a1 = await connect(alice, 0);
    const a2 = await connect(alice, 1);
    const b1 = await connect(bob, 1);
    const b2 = await connect(bob, 0);
    const first = await a1.ok({ type: 'direct', to: bob, content: 'one', cid: 'c1' });
    const room = first.room as string;
    await b2.ok({ type: 'join', room });
    const sent = await a1.ok({ type: 'direct', to: bob, content: 'two', cid: 'c2' });
    for (const c of [a2, b1, b2]) {
      const events = await c.take('direct', 2);
      expect(events.map((e) => [e.room, e.seq, e.content, e.to, (e.from as Frame).id, e.cid])).toEqual([
        [room, 1, 'one', bob, alice, 'c1'],
        [room, 2, 'two', bob, alice, 'c2'],
      ]);
    }
    expect(await b2.next((f) => f.type === 'message')).toMatchObject({ room, seq: sent.seq, content: 'two' });
    // A retry with the same cid stores nothing new and answers the first seq.
    expect(await a1.ok({ type: 'direct', to: bob, content: 'two', cid: 'c2' })).toMatchObject({ room, seq: 2 });
    expect((await b2.ok({ type: 'history', room })).messages as Frame[]).toHaveLength(2);
    // The sending connection gets its reply, not an event.
    const other = await a1.ok({ type: 'direct', to: uniq('carol'), content: 'x' });
    expect(await a2.next((f) => f.type === 'direct' && f.room === other.room)).toMatchObject({ seq: 1 });
    await expect(a1.next((f) => f.type === 'direct', 300)).rejects.toThrow();
  });

  it('only the two participants may join, publish, read or ask presence; SSE and the server API cannot enter', async () => {
    const [alice, bob, mallory] = [uniq('alice'), uniq('bob'), uniq('mallory')];
    const a = await connect(alice);
    const { room } = await a.ok({ type: 'direct', to: bob, content: 'secret' });
    const m = await connect(mallory, 1);
    expect(await m.request({ type: 'join', room })).toMatchObject({ type: 'error', code: 'forbidden' });
    expect(await m.request({ type: 'history', room })).toMatchObject({ type: 'error', code: 'not_member' });
    expect(await m.request({ type: 'publish', room, content: 'x' })).toMatchObject({ type: 'error', code: 'not_member' });
    expect(await m.request({ type: 'read', room, seq: 1 })).toMatchObject({ type: 'error', code: 'forbidden' });
    const sse = await fetch(`${api}/sse?username=${mallory}&rooms=${room as string}`);
    expect(sse.status).toBe(403);
    await sse.body?.cancel();
    const post = await fetch(`${api}/api/rooms/${room as string}/messages`, {
      method: 'POST',
      headers: { authorization: `Bearer ${KEY}`, 'content-type': 'application/json' },
      body: JSON.stringify({ content: 'spoof', user: { id: mallory, name: 'm' } }),
    });
    expect(post.status).toBe(403);
    expect((await get(`/api/rooms/${room as string}/presence`)).status).toBe(403);
    // A participant may publish to the conversation room: it is a direct message like any other.
    const b = await connect(bob);
    await b.ok({ type: 'join', room });
    expect(await b.ok({ type: 'publish', room, content: 'reply' })).toMatchObject({ seq: 2 });
    expect(await a.next((f) => f.type === 'direct' && f.room === room)).toMatchObject({ seq: 2, content: 'reply', to: alice });
  });

  it('read cursors: forward only, clamped, synced to the other connections, in join replies', async () => {
    const [alice, bob] = [uniq('alice'), uniq('bob')];
    const a = await connect(alice);
    for (const c of ['1', '2', '3']) await a.ok({ type: 'direct', to: bob, content: c });
    const b1 = await connect(bob, 0);
    const b2 = await connect(bob, 1);
    const room = ((await b1.ok({ type: 'conversations' })).conversations as Frame[])[0]!.room as string;
    expect(await b1.ok({ type: 'read', room, seq: 2 })).toMatchObject({ room, seq: 2, unread: 1 });
    expect(await b2.next((f) => f.type === 'read')).toEqual({ type: 'read', room, seq: 2 });
    expect(await b1.ok({ type: 'read', room, seq: 1 })).toMatchObject({ seq: 2, unread: 1 });
    expect(await b1.ok({ type: 'read', room, seq: 99 })).toMatchObject({ seq: 3, unread: 0 });
    expect(await b2.next((f) => f.type === 'read')).toEqual({ type: 'read', room, seq: 3 });
    await expect(b2.next((f) => f.type === 'read', 300)).rejects.toThrow();
    expect(await b2.ok({ type: 'join', room })).toMatchObject({ seq: 3, read: 3, unread: 0 });
    // Any room has a cursor.
    const lobby = uniq('lobby');
    await a.ok({ type: 'join', room: lobby });
    await a.ok({ type: 'publish', room: lobby, content: 'x' });
    await a.ok({ type: 'publish', room: lobby, content: 'y' });
    expect(await b1.ok({ type: 'read', room: lobby, seq: 1 })).toMatchObject({ seq: 1, unread: 1 });
    expect(await b1.ok({ type: 'join', room: lobby })).toMatchObject({ seq: 2, read: 1, unread: 1 });
  });

  it('notes to self, paging, bad input and the HTTP API', async () => {
    const me = uniq('me');
    const c = await connect(me);
    const self = await c.ok({ type: 'direct', to: me, content: 'note' });
    expect(self.room).toMatch(/^dm:/);
    const peers = [uniq('p'), uniq('p'), uniq('p')];
    for (const p of peers) await c.ok({ type: 'direct', to: p, content: `to ${p}` });
    const page1 = (await c.ok({ type: 'conversations', limit: 2 })).conversations as Frame[];
    const page2 = (await c.ok({ type: 'conversations', limit: 2, before: page1[1]!.order })).conversations as Frame[];
    expect([...page1, ...page2].map((x) => (x.with as Frame).id)).toEqual([...peers.reverse(), me]);

    expect(await c.request({ type: 'direct', to: '', content: 'x' })).toMatchObject({ type: 'error', code: 'bad_request', message: expect.stringMatching(/^\/to/) });
    expect(await c.request({ type: 'direct', to: 'a\u0000b', content: 'x' })).toMatchObject({ type: 'error', code: 'bad_request', message: expect.stringMatching(/^\/to/) });
    expect(await c.request({ type: 'direct', to: 'x'.repeat(257), content: 'x' })).toMatchObject({ code: 'bad_request' });
    expect(await c.request({ type: 'read', room: 'lobby', seq: -1 })).toMatchObject({ code: 'bad_request', message: expect.stringMatching(/^\/seq/) });
    expect(await c.request({ type: 'conversations', before: 'x' })).toMatchObject({ code: 'bad_request', message: expect.stringMatching(/^\/before/) });

    const res = await get(`/api/users/${encodeURIComponent(me)}/conversations?limit=1`);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { conversations: Frame[] }).conversations.map((x) => (x.with as Frame).id)).toEqual([peers[0]]);
    expect((await get(`/api/users/${encodeURIComponent(me)}/conversations`, 'wrong')).status).toBe(401);
    expect((await get(`/api/users/${encodeURIComponent(me)}/conversations?limit=x`)).status).toBe(400);
    expect((await get(`/api/users/%00/conversations`)).status).toBe(400);
  });

  it('SDK: direct resolves with the conversation; each message reaches the application once; unread counts follow reads on other devices', async () => {
    const [alice, bob] = [uniq('alice'), uniq('bob')];
    const sdk = (user: string, gw: number) => {
      const c = new RtClient({ url: `${t.gateways[gw % t.gateways.length]!}/ws`, username: user, WebSocket, reconnect: { baseMs: 100, capMs: 1000 } });
      closers.push(() => c.close());
      return c;
    };
    const a = sdk(alice, 0);
    await a.connect();
    const sent = await a.direct(bob, 'hello bob');
    expect(sent).toMatchObject({ seq: 1, cid: expect.any(String) });
    expect(sent.conversation.name).toBe(sent.room);

    const b1 = sdk(bob, 1);
    const b2 = sdk(bob, 0);
    const shown: string[] = [];
    const counts: number[] = [];
    b1.on('direct', (d: DirectMessage) => shown.push(`direct ${d.seq} ${d.content}`));
    b2.on('conversation', (c) => counts.push(c.unread));
    await Promise.all([b1.connect(), b2.connect()]);
    const [conv] = await b1.conversations();
    expect(conv).toMatchObject({ room: sent.room, with: { id: alice }, unread: 1 });
    await b2.conversations();
    expect(b2.unreadIn(sent.room)).toBe(1);

    // Not joined: the direct event; joined: the room's message, never both.
    await a.direct(bob, 'second');
    await until('the direct event', () => shown.length === 1);
    const room = b1.room(sent.room);
    room.on('message', (m: Message) => shown.push(`message ${m.seq} ${m.content}`));
    const joined = await room.join();
    expect(joined.history.map((m) => m.seq)).toEqual([1, 2]);
    expect(room.unread).toBe(2);
    await a.direct(bob, 'third');
    await until('the room message', () => shown.length === 2);
    await until('3 unread on the other device', () => b2.unreadIn(sent.room) === 3);
    expect(shown).toEqual(['direct 2 second', 'message 3 third']);

    const read = await room.markShown();
    expect(read).toEqual({ room: sent.room, seq: 3, unread: 0 });
    await until('0 unread on the other device', () => b2.unreadIn(sent.room) === 0);
    expect(counts.at(-1)).toBe(0);
  });
});
