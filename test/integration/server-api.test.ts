/** The server API (POST /api/rooms/{room}/messages, GET /api/rooms/{room}/presence) in both modes. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TARGETS, embeddedTarget, type Target } from '../harness/targets.ts';
import { TestClient } from '../harness/client.ts';

const KEY = 'server-api-key-for-tests';

describe.each(TARGETS)('server API (%s)', (_name, start) => {
  let t: Target;
  let base: string;
  const clients: TestClient[] = [];
  const api = (path: string, init: RequestInit & { key?: string | null } = {}) => {
    const { key = KEY, ...rest } = init;
    return fetch(`${base}${path}`, { ...rest, headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), 'content-type': 'application/json' } });
  };

  beforeAll(async () => {
    t = await start({ API_KEY: KEY, MAX_BODY_BYTES: '2048', MAX_CONTENT_CHARS: '100' });
    base = t.gateways[0]!.replace(/^ws/, 'http');
  });
  afterAll(async () => {
    for (const c of clients) c.terminate();
    await t?.stop();
  });

  it('publishes as the server or on behalf of a user: 201 {seq}, delivered to members on every gateway', async () => {
    const room = `api-${process.pid}`;
    const member = await TestClient.connect(t.gateways.at(-1)!, { query: { username: 'member' } });
    clients.push(member);
    await member.ok({ type: 'join', room });
    const r1 = await api(`/api/rooms/${room}/messages`, { method: 'POST', body: JSON.stringify({ content: 'maintenance at 5' }) });
    expect(r1.status).toBe(201);
    expect(await r1.json()).toEqual({ seq: 1 });
    const r2 = await api(`/api/rooms/${room}/messages`, { method: 'POST', body: JSON.stringify({ content: 'hi', user: { id: 'bot', name: 'Bot' } }) });
    expect(await r2.json()).toEqual({ seq: 2 });
    const [m1, m2] = await member.take('message', 2);
    expect(m1).toMatchObject({ seq: 1, content: 'maintenance at 5', user: { id: 'server', name: 'server' } });
    expect(m2).toMatchObject({ seq: 2, content: 'hi', user: { id: 'bot', name: 'Bot' } });

    const p = await api(`/api/rooms/${room}/presence`);
    expect(p.status).toBe(200);
    expect(await p.json()).toEqual({ members: [{ id: 'member', name: 'member' }] });
  });

  it.each([
    ['malformed JSON', '{"content":', 400, 'bad_request'],
    ['not an object', '[1]', 400, 'bad_request'],
    ['missing content', '{}', 400, 'bad_request'],
    ['mistyped user', '{"content":"x","user":"bob"}', 400, 'bad_request'],
    ['content too long', JSON.stringify({ content: 'x'.repeat(101) }), 413, 'too_large'],
    ['body too large', JSON.stringify({ content: 'x', pad: 'y'.repeat(3000) }), 413, 'too_large'],
  ])('%s → %i %s', async (_label, body, status, code) => {
    const res = await api('/api/rooms/r/messages', { method: 'POST', body });
    expect(res.status).toBe(status);
    const json = (await res.json()) as { error: { code: string; message: string } };
    expect(json.error.code).toBe(code);
    expect(json.error.message.length).toBeGreaterThan(0);
  });

  it('an invalid room name is 400', async () => {
    const res = await api('/api/rooms/a%20b/presence');
    expect(res.status).toBe(400);
  });

  it('a missing or wrong API key is 401', async () => {
    expect((await api('/api/rooms/r/presence', { key: null })).status).toBe(401);
    expect((await api('/api/rooms/r/presence', { key: 'wrong' })).status).toBe(401);
    expect((await api('/api/rooms/r/messages', { method: 'POST', key: `${KEY}x`, body: '{"content":"x"}' })).status).toBe(401);
  });
});

describe('server API without API_KEY', () => {
  it('is off: 403', async () => {
    const t = await embeddedTarget({});
    try {
      const base = t.gateways[0]!.replace(/^ws/, 'http');
      const res = await fetch(`${base}/api/rooms/r/presence`, { headers: { authorization: 'Bearer anything' } });
      expect(res.status).toBe(403);
      expect(await res.json()).toMatchObject({ error: { code: 'forbidden' } });
    } finally {
      await t.stop();
    }
  });
});
