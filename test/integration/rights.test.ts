/**
 * Rights end when the credential says so. Every new credential — connect, resume, refresh —
 * re-checks every room the connection or session holds; a room no longer allowed is left (presence
 * too), the client gets an `error` with code `forbidden` and the `room`, and nothing more from the
 * room reaches it. An `/sse` stream ends at its token's `exp`. Server-owned rooms are read-only.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { TARGETS, embeddedTarget, type Target } from '../harness/targets.ts';
import { TestClient, type Frame } from '../harness/client.ts';
import { SseClient } from '../harness/sse.ts';
import { TEST_SECRET, hs256 } from '../harness/jwt.ts';

let n = 0;
const uniq = (p: string) => `${p}-${process.pid}-${++n}`;
const ids = (users: unknown) => (users as { id: string }[]).map((u) => u.id);

describe.each(TARGETS)('rights follow the credentials (%s)', (_name, start) => {
  let t: Target;
  let gwA: string;
  let gwB: string;
  const clients: TestClient[] = [];
  const connect = async (token: string, gw = gwA, query: Record<string, string> = {}) => {
    const c = await TestClient.connect(gw, { query: { token, ...query } });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    t = await start({ JWT_SECRET: TEST_SECRET, SESSION_GRACE_MS: '30000' });
    gwA = t.gateways[0]!;
    gwB = t.gateways[t.gateways.length - 1]!;
  });
  afterEach(() => {
    for (const c of clients.splice(0)) c.terminate();
  });
  afterAll(async () => {
    await t?.stop();
  });

  /** A member of `room` who watches what happens there. */
  async function observer(room: string): Promise<TestClient> {
    const o = await connect(await hs256({ sub: uniq('observer'), rooms: ['private:*'], expiresIn: 600 }));
    await o.ok({ type: 'join', room });
    return o;
  }

  it('resuming a session with a token that no longer lists a private room: the room is left and the client told', async () => {
    const room = `private:${uniq('team')}`;
    const user = uniq('ann');
    const ann = await connect(await hs256({ sub: user, rooms: [room], expiresIn: 600 }));
    const open = uniq('open');
    await ann.ok({ type: 'join', room });
    await ann.ok({ type: 'join', room: open });
    const o = await observer(room);
    await o.ok({ type: 'publish', room, content: 'before' });
    const sessionId = ann.welcome.sessionId as string;
    ann.close();
    await ann.waitClosed();

    const back = await connect(await hs256({ sub: user, rooms: [], expiresIn: 600 }), gwB, { session: sessionId });
    expect(back.welcome).toMatchObject({ resumed: true, sessionId });
    expect((back.welcome.rooms as { room: string }[]).map((r) => r.room)).toEqual([open]);
    expect(await back.next((f) => f.type === 'error' && f.room === room)).toMatchObject({ code: 'forbidden', room });
    // The session left the room: presence says so at once (not after the grace period).
    await o.next((f) => f.type === 'presence' && f.event === 'leave' && (f.user as { id: string }).id === user);
    expect(ids((await o.ok({ type: 'presence', room })).members)).not.toContain(user);
    // Nothing from the room reaches it, and it may not use it.
    await o.ok({ type: 'publish', room, content: 'after' });
    expect(await back.request({ type: 'publish', room, content: 'x' })).toMatchObject({ type: 'error', code: 'not_member' });
    expect(await back.request({ type: 'history', room })).toMatchObject({ type: 'error', code: 'not_member' });
    expect(await back.request({ type: 'join', room })).toMatchObject({ type: 'error', code: 'forbidden' });
    // The open room still works on the resumed session.
    await back.ok({ type: 'publish', room: open, content: 'still here' });
    await back.next((f) => f.type === 'message' && f.room === open && f.content === 'still here');
    expect(back.events.filter((f: Frame) => f.type === 'message' && f.room === room)).toEqual([]);
  });

  it('a refresh to a token without the claim: the room is left at once, presence updated, nothing more delivered', async () => {
    const room = `private:${uniq('ops')}`;
    const user = uniq('bob');
    const bob = await connect(await hs256({ sub: user, rooms: ['private:ops-*', room], expiresIn: 600 }));
    await bob.ok({ type: 'join', room });
    const o = await observer(room);
    await bob.ok({ type: 'typing', room, typing: true });
    const refreshed = await bob.request({ type: 'refresh', token: await hs256({ sub: user, rooms: ['private:nothing-*'], expiresIn: 600 }) });
    expect(refreshed.type).toBe('reply');
    expect(await bob.next((f) => f.type === 'error' && f.room === room)).toMatchObject({ code: 'forbidden', room });
    await o.next((f) => f.type === 'presence' && f.event === 'leave' && (f.user as { id: string }).id === user);
    await o.ok({ type: 'publish', room, content: 'secret' });
    await o.next((f) => f.type === 'message' && f.content === 'secret');
    expect(await bob.request({ type: 'publish', room, content: 'x' })).toMatchObject({ type: 'error', code: 'not_member' });
    expect(bob.events.filter((f: Frame) => f.type === 'message' && f.room === room)).toEqual([]);
    // A refresh that keeps the claim keeps the room.
    const other = `private:${uniq('keep')}`;
    await bob.request({ type: 'refresh', token: await hs256({ sub: user, rooms: [other], expiresIn: 600 }) });
    await bob.ok({ type: 'join', room: other });
    expect((await bob.request({ type: 'refresh', token: await hs256({ sub: user, rooms: ['private:keep-*'], expiresIn: 600 }) })).type).toBe('reply');
    await bob.ok({ type: 'publish', room: other, content: 'kept' });
    expect(bob.events.filter((f: Frame) => f.type === 'error' && f.room === other)).toEqual([]);
  });

  it('the dashboard room is read-only for clients: publish and typing are forbidden, joining it is allowed', async () => {
    const room = 'rt.dashboard'; // DASHBOARD_ROOM's default
    const c = await connect(await hs256({ sub: uniq('viewer'), expiresIn: 600 }));
    await c.ok({ type: 'join', room });
    expect(await c.request({ type: 'publish', room, content: 'fake stats' })).toMatchObject({ type: 'error', code: 'forbidden' });
    expect(await c.request({ type: 'typing', room, typing: true })).toMatchObject({ type: 'error', code: 'forbidden' });
    expect((await c.ok({ type: 'history', room })).messages).toEqual([]);
    // The gateways' own stats still arrive.
    expect(await c.next((f) => f.type === 'stats' && f.room === room, 5000)).toMatchObject({ type: 'stats' });
  });
});

describe('an /sse stream ends when its token expires', () => {
  let t: Target;
  let http: string;
  beforeAll(async () => {
    t = await embeddedTarget({ JWT_SECRET: TEST_SECRET, JWT_CLOCK_SKEW_S: '0' });
    http = t.gateways[0]!.replace(/^ws/, 'http');
  });
  afterAll(async () => {
    await t?.stop();
  });

  it('delivers until exp, then a last error event says unauthorized and the stream ends', async () => {
    const room = uniq('feed');
    const token = await hs256({ sub: uniq('reader'), expiresIn: 2 });
    const sse = await SseClient.open(`${http}/sse?rooms=${room}&token=${token}`);
    expect(sse.status).toBe(200);
    const writer = await TestClient.connect(t.gateways[0]!, { query: { token: await hs256({ sub: 'writer', expiresIn: 600 }) } });
    await writer.ok({ type: 'join', room });
    await writer.ok({ type: 'publish', room, content: 'live' });
    expect((await sse.next((e) => e.event === 'message')).json).toMatchObject({ content: 'live' });
    const last = await sse.next((e) => e.event === 'error', 5000);
    expect(last.json).toMatchObject({ type: 'error', code: 'unauthorized' });
    await expect(sse.next(() => false, 5000)).rejects.toThrow(/ended/);
    expect(sse.ended).toBe(true);
    // Nothing is delivered after the end, and the same URL is refused now.
    await writer.ok({ type: 'publish', room, content: 'after exp' });
    const again = await SseClient.open(`${http}/sse?rooms=${room}&token=${token}`);
    expect(again.status).toBe(401);
    expect(sse.events.filter((e) => e.event === 'message' && e.json.content === 'after exp')).toEqual([]);
    writer.close();
  }, 15_000);
});
