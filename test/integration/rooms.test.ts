/**
 * Rooms done right, as a client speaking only the protocol observes it, in both modes:
 * recovery, idempotent publish, presence per user, typing, sessions.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TARGETS, type Target } from '../harness/targets.ts';
import { TestClient, type Frame } from '../harness/client.ts';

let n = 0;
const uniq = (p: string) => `${p}-${process.pid}-${++n}`;
const GRACE_MS = 1500;
const seqs = (frames: Frame[]) => frames.map((m) => m.seq);
const ids = (users: unknown) => (users as { id: string }[]).map((u) => u.id);

describe.each(TARGETS)('rooms (%s)', (_name, start) => {
  let t: Target;
  let gwA: string;
  let gwB: string;
  const clients: TestClient[] = [];
  const connect = async (username: string, gw = gwA, query: Record<string, string> = {}) => {
    const c = await TestClient.connect(gw, { query: { username, ...query } });
    clients.push(c);
    return c;
  };
  const publishN = async (c: TestClient, room: string, count: number, prefix = 'm') => {
    const out: number[] = [];
    for (let i = 0; i < count; i++) out.push((await c.ok({ type: 'publish', room, content: `${prefix}${i}` })).seq as number);
    return out;
  };

  beforeAll(async () => {
    t = await start({ SESSION_GRACE_MS: String(GRACE_MS), REPLAY_MAX: '10', HISTORY_MAX: '30' });
    gwA = t.gateways[0]!;
    gwB = t.gateways[t.gateways.length - 1]!;
  });
  afterAll(async () => {
    for (const c of clients) c.terminate();
    await t?.stop();
  });

  describe('recovery', () => {
    it('join with since and epoch returns exactly the missed messages, recovered: true', async () => {
      const room = uniq('rec');
      const ann = await connect('ann');
      const j1 = await ann.ok({ type: 'join', room });
      await publishN(ann, room, 3);
      await ann.ok({ type: 'leave', room });
      const bob = await connect('bob');
      await bob.ok({ type: 'join', room });
      await publishN(bob, room, 4, 'x');
      const j2 = await ann.ok({ type: 'join', room, since: 3, epoch: j1.epoch });
      expect(j2.recovered).toBe(true);
      expect(seqs(j2.history as Frame[])).toEqual([4, 5, 6, 7]);
      expect(j2.seq).toBe(7);
      const j3 = await ann.ok({ type: 'join', room, since: 7, epoch: j1.epoch });
      expect(j3).toMatchObject({ recovered: true, history: [] });
    });

    it('another epoch means recovered: false with the latest messages', async () => {
      const room = uniq('epoch');
      const ann = await connect('ann');
      await ann.ok({ type: 'join', room });
      await publishN(ann, room, 5);
      const j = await ann.ok({ type: 'join', room, since: 2, epoch: 'not-the-epoch', limit: 2 });
      expect(j.recovered).toBe(false);
      expect(seqs(j.history as Frame[])).toEqual([4, 5]);
    });

    it('more missing than REPLAY_MAX, or a position ahead of the room, means recovered: false', async () => {
      const room = uniq('cap');
      const ann = await connect('ann');
      const j1 = await ann.ok({ type: 'join', room });
      await publishN(ann, room, 12);
      const far = await ann.ok({ type: 'join', room, since: 1, epoch: j1.epoch, limit: 3 });
      expect(far.recovered).toBe(false);
      expect(seqs(far.history as Frame[])).toEqual([10, 11, 12]);
      const near = await ann.ok({ type: 'join', room, since: 2, epoch: j1.epoch });
      expect(near.recovered).toBe(true);
      expect(seqs(near.history as Frame[])).toEqual([3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
      expect((await ann.ok({ type: 'join', room, since: 99, epoch: j1.epoch })).recovered).toBe(false);
    });

    it('messages trimmed from history (HISTORY_MAX) mean recovered: false, never a partial replay', async () => {
      const room = uniq('trim');
      const ann = await connect('ann');
      const j1 = await ann.ok({ type: 'join', room });
      await publishN(ann, room, 35);
      // REPLAY_MAX is 10, so ask for a gap under it whose start was trimmed: history holds 6..35.
      const h = await ann.ok({ type: 'history', room, after: 0, limit: 1 });
      expect(seqs(h.messages as Frame[])).toEqual([6]);
      const j = await ann.ok({ type: 'join', room, since: 4, epoch: j1.epoch, limit: 1 });
      expect(j.recovered).toBe(false);
    });
  });

  describe('idempotent publish', () => {
    it('a retry with the same cid returns the first seq and stores nothing new, on any worker', async () => {
      const room = uniq('cid');
      const ann = await connect('ann');
      await ann.ok({ type: 'join', room });
      const first = await ann.ok({ type: 'publish', room, content: 'once', cid: 'abc' });
      const retries = await Promise.all(Array.from({ length: 6 }, () => ann.ok({ type: 'publish', room, content: 'once', cid: 'abc' })));
      for (const r of retries) expect(r).toMatchObject({ seq: first.seq, ts: first.ts });
      // Directly on every worker, so the retry certainly reaches another one than the first.
      for (const w of t.workers) {
        const env = `{"c":"x","n":"test","s":"","u":{"id":"ann","name":"ann"},"f":{"type":"publish","id":1,"room":"${room}","content":"once","cid":"abc"}}`;
        const answer = JSON.parse(new TextDecoder().decode(await w.worker!.handle(new TextEncoder().encode(env))));
        expect(answer).toMatchObject({ type: 'reply', seq: first.seq });
      }
      const other = await ann.ok({ type: 'publish', room, content: 'twice', cid: 'abd' });
      expect(other.seq).toBe((first.seq as number) + 1);
      const bob = await connect('bob');
      await bob.ok({ type: 'join', room });
      expect((await bob.ok({ type: 'publish', room, content: 'same cid, other user', cid: 'abc' })).seq).toBe((first.seq as number) + 2);
      const hist = await ann.ok({ type: 'history', room });
      expect((hist.messages as Frame[]).map((m) => m.content)).toEqual(['once', 'twice', 'same cid, other user']);
      expect(seqs(await ann.take('message', 3))).toEqual([1, 2, 3]);
    });
  });

  it('a message stored by an attempt that never announced it reaches the members when the client retries', async () => {
    const room = uniq('orphan');
    const ann = await connect('ann');
    const bob = await connect('bob', gwB);
    await ann.ok({ type: 'join', room });
    await bob.ok({ type: 'join', room });
    // What a first attempt leaves behind when its worker dies after storing, or when its Redis
    // command timed out in the worker but ran once Redis recovered: stored, never published.
    const ts = new Date().toISOString();
    const head = `{"type":"message","room":${JSON.stringify(room)},"seq":`;
    const tail = `,"user":{"id":"ann","name":"ann"},"content":"orphan","ts":"${ts}","cid":"o-1"}`;
    const stored = await t.workers[0]!.stores!.history.append(room, { head, tail, ts, dedupeKey: 'ann\no-1' });
    expect(stored).toMatchObject({ seq: 1, duplicate: false });
    // The retry is a duplicate: same seq, nothing stored again, and the members get it now.
    expect(await ann.ok({ type: 'publish', room, content: 'orphan', cid: 'o-1' })).toMatchObject({ seq: 1, ts });
    for (const c of [ann, bob]) expect(await c.next((f) => f.type === 'message', 3000)).toMatchObject({ seq: 1, content: 'orphan', ts });
    // A second retry announces it again; the gateways drop it: nobody sees it twice.
    await ann.ok({ type: 'publish', room, content: 'orphan', cid: 'o-1' });
    await ann.ok({ type: 'publish', room, content: 'next' });
    for (const c of [ann, bob]) expect(await c.next((f) => f.type === 'message', 3000)).toMatchObject({ seq: 2, content: 'next' });
  });

  describe('presence', () => {
    it('a user with connections on two gateways joins once and leaves once', async () => {
      const room = uniq('pres');
      const obs = await connect('observer', gwA);
      await obs.ok({ type: 'join', room });
      const c1 = await connect('carl', gwA);
      const c2 = await connect('carl', gwB);
      await c1.ok({ type: 'join', room });
      await c2.ok({ type: 'join', room });
      expect(await obs.next((f) => f.type === 'presence')).toMatchObject({ event: 'join', user: { id: 'carl' } });
      expect(ids((await obs.ok({ type: 'presence', room })).members).sort()).toEqual(['carl', 'observer']);
      await c1.ok({ type: 'leave', room });
      expect(ids((await obs.ok({ type: 'presence', room })).members).sort()).toEqual(['carl', 'observer']);
      await c2.ok({ type: 'leave', room });
      expect(await obs.next((f) => f.type === 'presence')).toMatchObject({ event: 'leave', user: { id: 'carl' } });
      expect(ids((await obs.ok({ type: 'presence', room })).members)).toEqual(['observer']);
      expect(obs.events.filter((e) => e.type === 'presence')).toEqual([]);
    });
  });

  describe('typing', () => {
    it('sends the full set when it changes; publishing clears it; an entry expires about 5 s after the last typing: true', async () => {
      const room = uniq('typ');
      const ann = await connect('ann', gwA);
      const bob = await connect('bob', gwB);
      await ann.ok({ type: 'join', room });
      await bob.ok({ type: 'join', room });
      ann.send({ type: 'typing', room, typing: true });
      expect(ids((await bob.next((f) => f.type === 'typing')).users)).toEqual(['ann']);
      bob.send({ type: 'typing', room, typing: true });
      expect(ids((await ann.next((f) => f.type === 'typing' && (f.users as unknown[]).length === 2)).users)).toEqual(['ann', 'bob']);
      await ann.ok({ type: 'publish', room, content: 'done typing' });
      expect(ids((await bob.next((f) => f.type === 'typing' && (f.users as unknown[]).length === 1)).users)).toEqual(['bob']);
      const started = Date.now();
      const expired = await ann.next((f) => f.type === 'typing' && (f.users as unknown[]).length === 0, 10_000);
      expect(expired.users).toEqual([]);
      expect(Date.now() - started).toBeGreaterThan(3000);
    });

    it('leaving the room clears typing', async () => {
      const room = uniq('typleave');
      const ann = await connect('ann');
      const bob = await connect('bob');
      await ann.ok({ type: 'join', room });
      await bob.ok({ type: 'join', room });
      await ann.ok({ type: 'typing', room, typing: true });
      expect(ids((await bob.next((f) => f.type === 'typing')).users)).toEqual(['ann']);
      await ann.ok({ type: 'leave', room });
      expect((await bob.next((f) => f.type === 'typing')).users).toEqual([]);
    });
  });

  describe('sessions', () => {
    it('reconnecting with ?session= on another gateway restores the rooms without presence events', async () => {
      const room = uniq('sess');
      const obs = await connect('observer', gwA);
      await obs.ok({ type: 'join', room });
      const ann = await connect('ann', gwA);
      await ann.ok({ type: 'join', room });
      await obs.next((f) => f.type === 'presence' && f.event === 'join');
      // A control session that goes away with ann's and never comes back: its leave proves the
      // sweep ran past the grace period, so ann's absence of a leave below means something.
      const ctl = await connect('control', gwA);
      await ctl.ok({ type: 'join', room });
      await obs.next((f) => f.type === 'presence' && f.event === 'join');
      await publishN(obs, room, 2);
      const sessionId = ann.welcome.sessionId as string;
      ann.terminate();
      ctl.terminate();
      await publishN(obs, room, 1, 'while away');
      const back = await connect('ann', gwB, { session: sessionId });
      expect(back.welcome).toMatchObject({ resumed: true, sessionId, rooms: [{ room, seq: 3 }] });
      // Still a member without joining again: live messages arrive and publish is allowed.
      await publishN(obs, room, 1, 'after');
      expect(await back.next((f) => f.type === 'message')).toMatchObject({ seq: 4 });
      expect((await back.ok({ type: 'publish', room, content: 'back' })).seq).toBe(5);
      // Past the grace period the control session leaves; ann's session is attached, so ann stays.
      expect(await obs.next((f) => f.type === 'presence', GRACE_MS + 5000)).toMatchObject({ event: 'leave', user: { id: 'control' } });
      expect(ids((await obs.ok({ type: 'presence', room })).members).sort()).toEqual(['ann', 'observer']);
      expect(obs.events.filter((e) => e.type === 'presence')).toEqual([]);
    });

    it('a session ends after the grace period: its rooms are left and presence leave is sent', async () => {
      const room = uniq('grace');
      const obs = await connect('observer', gwB);
      await obs.ok({ type: 'join', room });
      const dan = await connect('dan', gwA);
      await dan.ok({ type: 'join', room });
      await obs.next((f) => f.type === 'presence' && f.event === 'join');
      const sessionId = dan.welcome.sessionId as string;
      const closedAt = Date.now();
      dan.terminate();
      expect(await obs.next((f) => f.type === 'presence', GRACE_MS + 5000)).toMatchObject({ event: 'leave', user: { id: 'dan' } });
      expect(Date.now() - closedAt).toBeGreaterThanOrEqual(GRACE_MS - 100);
      const late = await connect('dan', gwA, { session: sessionId });
      expect(late.welcome).toMatchObject({ resumed: false, rooms: [] });
      expect(late.welcome.sessionId).not.toBe(sessionId);
    });

    it('a session id is only valid for the same user', async () => {
      const room = uniq('steal');
      const eve = await connect('eve');
      await eve.ok({ type: 'join', room });
      const mallory = await connect('mallory', gwB, { session: eve.welcome.sessionId as string });
      expect(mallory.welcome).toMatchObject({ resumed: false, rooms: [] });
      expect(mallory.welcome.sessionId).not.toBe(eve.welcome.sessionId);
      expect(await mallory.request({ type: 'publish', room, content: 'x' })).toMatchObject({ code: 'not_member' });
    });
  });
});

describe.each(TARGETS)('recovery after the history was lost (%s)', (_name, start) => {
  let t: Target;
  const clients: TestClient[] = [];
  // HISTORY_TTL_MS at its minimum: a room's history is lost a second after its last message.
  beforeAll(async () => {
    t = await start({ HISTORY_TTL_MS: '1000' });
  });
  afterAll(async () => {
    for (const c of clients) c.terminate();
    await t?.stop();
  });

  it('join with since but no epoch says recovered: false, never the new epoch\'s messages as the missed ones', async () => {
    const room = uniq('lost');
    const ann = await TestClient.connect(t.gateways[0]!, { query: { username: 'ann' } });
    clients.push(ann);
    const j1 = await ann.ok({ type: 'join', room });
    for (let i = 0; i < 3; i++) await ann.ok({ type: 'publish', room, content: `old${i}` });
    const deadline = Date.now() + 10_000;
    let h = await ann.ok({ type: 'history', room });
    while (h.epoch === j1.epoch && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 100));
      h = await ann.ok({ type: 'history', room });
    }
    expect(h.epoch).not.toBe(j1.epoch);
    for (let i = 0; i < 5; i++) await ann.ok({ type: 'publish', room, content: `new${i}` });
    const now = await ann.ok({ type: 'history', room });
    expect(now.seq).toBe(5);

    // The client's position 3 was in the old epoch: 4 and 5 of the new one are not what it missed.
    const blind = await ann.ok({ type: 'join', room, since: 3, limit: 2 });
    expect(blind.recovered).toBe(false);
    expect(blind.epoch).toBe(now.epoch);
    expect(seqs(blind.history as Frame[])).toEqual([4, 5]);
    expect(await ann.ok({ type: 'join', room, since: 3, epoch: j1.epoch })).toMatchObject({ recovered: false });
    // With the epoch it names, the same position recovers.
    const matching = await ann.ok({ type: 'join', room, since: 3, epoch: now.epoch });
    expect(matching.recovered).toBe(true);
    expect((matching.history as Frame[]).map((m) => m.content)).toEqual(['new3', 'new4']);
  });
});
