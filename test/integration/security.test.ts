/**
 * Who may connect, what they may do, and what abuse gets (the Security section of the README).
 * Each rule has a test that fails if the rule is removed.
 */
import WebSocket from 'ws';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { embeddedTarget, distributedTarget, type Target, type TargetEnv } from '../harness/targets.ts';
import { TestClient, expectClosed } from '../harness/client.ts';
import { TEST_SECRET, asymmetricKeys, hs256 } from '../harness/jwt.ts';
import { until } from '../harness/wait.ts';

const running: Target[] = [];
const clients: TestClient[] = [];
async function target(env: TargetEnv, start: (env: TargetEnv) => Promise<Target> = embeddedTarget): Promise<string> {
  const t = await start(env);
  running.push(t);
  return t.gateways[0]!;
}
async function connect(base: string, opts: Parameters<typeof TestClient.connect>[1]): Promise<TestClient> {
  const c = await TestClient.connect(base, opts);
  clients.push(c);
  return c;
}
afterEach(() => {
  for (const c of clients.splice(0)) c.terminate();
});
afterAll(async () => {
  await Promise.all(running.map((t) => t.stop()));
});
const http = (ws: string) => ws.replace(/^ws/, 'http');

describe('JWT credentials', () => {
  let gw: string;
  it('HS256 from ?token=, Authorization: Bearer, or the cookie; sub is the id, name the display name', async () => {
    gw = await target({ JWT_SECRET: TEST_SECRET, ALLOW_ANONYMOUS: 'false' });
    const token = await hs256({ sub: 'u-1', name: 'Ann', expiresIn: 60 });
    const ways: Parameters<typeof TestClient.connect>[1][] = [
      { query: { token } },
      { headers: { authorization: `Bearer ${token}` } },
      { headers: { cookie: `other=1; rt_token=${token}` } },
    ];
    for (const opts of ways) {
      const c = await connect(gw, opts);
      expect(c.welcome.user).toEqual({ id: 'u-1', name: 'Ann' });
    }
    const noName = await connect(gw, { query: { token: await hs256({ sub: 'u-2' }) } });
    expect(noName.welcome.user).toEqual({ id: 'u-2', name: 'u-2' });
  });

  it.each([
    ['a bad signature', () => hs256({ sub: 'x', expiresIn: 60 }, 'another-secret-that-is-32-characters-long!'), 'signature'],
    ['an expired token', () => hs256({ sub: 'x', expiresIn: -120 }), 'expired'],
    ['garbage', async () => 'not.a.jwt', 'not valid'],
    ['no sub', () => hs256({ name: 'nobody', expiresIn: 60 }), 'sub'],
  ])('%s is closed with 4001 and a reason', async (_label, make, reason) => {
    const closed = await expectClosed(gw, { query: { token: await make() } });
    expect(closed.code).toBe(4001);
    expect(closed.reason).toContain(reason);
  });

  it('anonymous ?username= is refused when ALLOW_ANONYMOUS is false, and a bad token does not fall back to it', async () => {
    expect(await expectClosed(gw, { query: { username: 'ann' } })).toMatchObject({ code: 4001, reason: expect.stringContaining('anonymous') });
    const anon = await target({ JWT_SECRET: TEST_SECRET, ALLOW_ANONYMOUS: 'true' });
    expect((await expectClosed(anon, { query: { username: 'ann', token: 'bad' } })).code).toBe(4001);
  });

  it('checks iss and aud when configured, with a small clock skew allowed', async () => {
    const strict = await target({ JWT_SECRET: TEST_SECRET, JWT_ISSUER: 'https://auth.example', JWT_AUDIENCE: 'rt', JWT_CLOCK_SKEW_S: '30' });
    const good = await connect(strict, { query: { token: await hs256({ sub: 'a', iss: 'https://auth.example', aud: 'rt', expiresIn: -10 }) } });
    expect(good.welcome.user).toMatchObject({ id: 'a' });
    expect((await expectClosed(strict, { query: { token: await hs256({ sub: 'a', iss: 'https://evil.example', aud: 'rt' }) } })).reason).toContain('iss');
    expect((await expectClosed(strict, { query: { token: await hs256({ sub: 'a', iss: 'https://auth.example', aud: 'other' }) } })).reason).toContain('aud');
  });

  it.each(['RS256', 'ES256'] as const)('%s with a PEM public key file and with a JWKS file', async (alg) => {
    const keys = await asymmetricKeys(alg);
    const token = await keys.sign({ sub: `user-${alg}`, expiresIn: 60 });
    const envs: TargetEnv[] = [{ JWT_PUBLIC_KEY_FILE: keys.pemFile }, { JWT_JWKS_FILE: keys.jwksFile }];
    for (const env of envs) {
      const gwK = await target(env);
      expect((await connect(gwK, { query: { token } })).welcome.user).toMatchObject({ id: `user-${alg}` });
      expect((await expectClosed(gwK, { query: { token: await hs256({ sub: 'x' }) } })).code).toBe(4001);
    }
  });

  it('frames sent while the JWT is being checked are kept and answered after the welcome', async () => {
    const token = await hs256({ sub: 'eager', expiresIn: 60 });
    const ws = new WebSocket(`${gw}/ws?token=${token}`);
    const frames: { type: string; id?: number }[] = [];
    ws.on('message', (d) => frames.push(JSON.parse(String(d)) as { type: string; id?: number }));
    await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
    // Sent at once, in the same packet as the end of the upgrade as far as the server can tell.
    ws.send(JSON.stringify({ type: 'join', room: 'eager-room', id: 1 }));
    ws.send(JSON.stringify({ type: 'ping', id: 2 }));
    await until('both answers', () => frames.length >= 3);
    ws.terminate();
    expect(frames[0]!.type).toBe('welcome');
    expect(frames.slice(1).map((f) => `${f.type}:${f.id}`).sort()).toEqual(['pong:2', 'reply:1']);
  });

  it('many JWT connections opened at once are all welcomed (none closed right after the upgrade)', async () => {
    const tokens = await Promise.all(Array.from({ length: 300 }, (_, i) => hs256({ sub: `many-${i}`, expiresIn: 60 })));
    const opened = await Promise.all(tokens.map((token) => connect(gw, { query: { token } })));
    expect(opened.map((c) => (c.welcome.user as { id: string }).id)).toEqual(tokens.map((_, i) => `many-${i}`));
  });

  it('closes a connection with 4001 when its token expires', async () => {
    const noSkew = await target({ JWT_SECRET: TEST_SECRET, JWT_CLOCK_SKEW_S: '0' });
    const c = await connect(noSkew, { query: { token: await hs256({ sub: 'short', expiresIn: 2 }) } });
    const lives = await connect(noSkew, { query: { token: await hs256({ sub: 'long', expiresIn: 600 }) } });
    const closed = await c.waitClosed(5000);
    expect(closed).toMatchObject({ code: 4001, reason: expect.stringContaining('expired') });
    expect(await lives.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
  });

  it('refresh with a new token for the same user keeps the connection past the old expiry', async () => {
    const noSkew = await target({ JWT_SECRET: TEST_SECRET, JWT_CLOCK_SKEW_S: '0' });
    const c = await connect(noSkew, { query: { token: await hs256({ sub: 'fresh', expiresIn: 2 }) } });
    const other = await c.request({ type: 'refresh', token: await hs256({ sub: 'someone-else', expiresIn: 600 }) });
    expect(other).toMatchObject({ type: 'error', code: 'forbidden' });
    expect(await c.request({ type: 'refresh', token: 'garbage' })).toMatchObject({ type: 'error', code: 'unauthorized' });
    const r = await c.ok({ type: 'refresh', token: await hs256({ sub: 'fresh', expiresIn: 600 }) });
    expect(Date.parse(r.expiresAt as string) - Date.now()).toBeGreaterThan(590_000);
    // A connection that did not refresh, opened at the same time, is closed; this one is not.
    const control = await connect(noSkew, { query: { token: await hs256({ sub: 'control', expiresIn: 2 }) } });
    expect((await control.waitClosed(5000)).code).toBe(4001);
    expect(await c.request({ type: 'ping' })).toMatchObject({ type: 'pong' });
  });
});

describe('tickets', () => {
  it('POST /api/tickets with a JWT gives a one-time ticket bound to the caller address', async () => {
    const gw = await target({ JWT_SECRET: TEST_SECRET, ALLOW_ANONYMOUS: 'false' }, distributedTarget);
    const token = await hs256({ sub: 'tix', name: 'Tix', expiresIn: 600 });
    const res = await fetch(`${http(gw)}/api/tickets`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
    expect(res.status).toBe(201);
    const { ticket, expiresIn } = (await res.json()) as { ticket: string; expiresIn: number };
    expect(expiresIn).toBe(30);
    expect(ticket).toMatch(/^[\w-]{20,}$/);
    const c = await connect(gw, { query: { ticket } });
    expect(c.welcome.user).toEqual({ id: 'tix', name: 'Tix' });
    expect(await expectClosed(gw, { query: { ticket } })).toMatchObject({ code: 4001, reason: expect.stringContaining('used') });

    const other = (await (await fetch(`${http(gw)}/api/tickets`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })).json()) as { ticket: string };
    expect(await expectClosed(gw, { query: { ticket: other.ticket }, localAddress: '127.0.0.2' })).toMatchObject({
      code: 4001,
      reason: expect.stringContaining('another address'),
    });
  });

  it('without a valid JWT the ticket endpoint answers 401 in the error format', async () => {
    const gw = await target({ JWT_SECRET: TEST_SECRET });
    const none = await fetch(`${http(gw)}/api/tickets`, { method: 'POST' });
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ error: { code: 'unauthorized' } });
    const bad = await fetch(`${http(gw)}/api/tickets`, { method: 'POST', headers: { authorization: 'Bearer nope' } });
    expect(bad.status).toBe(401);
  });

  it('an expired ticket is refused', async () => {
    const gw = await target({ JWT_SECRET: TEST_SECRET, TICKET_TTL_MS: '1000' });
    const token = await hs256({ sub: 'late' });
    const { ticket } = (await (await fetch(`${http(gw)}/api/tickets`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })).json()) as { ticket: string };
    await new Promise((r) => setTimeout(r, 1200));
    expect(await expectClosed(gw, { query: { ticket } })).toMatchObject({ code: 4001, reason: expect.stringContaining('expired') });
  });

  it('X-Forwarded-For counts only from TRUSTED_PROXIES', async () => {
    const token = await hs256({ sub: 'proxied' });
    const xff = { 'x-forwarded-for': '203.0.113.7' };
    const trusting = await target({ JWT_SECRET: TEST_SECRET, TRUSTED_PROXIES: '127.0.0.1' });
    const t1 = (await (await fetch(`${http(trusting)}/api/tickets`, { method: 'POST', headers: { authorization: `Bearer ${token}`, ...xff } })).json()) as { ticket: string };
    // Same client address behind the proxy: accepted; the proxy's own address would not match.
    expect((await connect(trusting, { query: { ticket: t1.ticket }, headers: xff })).welcome.user).toMatchObject({ id: 'proxied' });
    const t2 = (await (await fetch(`${http(trusting)}/api/tickets`, { method: 'POST', headers: { authorization: `Bearer ${token}`, ...xff } })).json()) as { ticket: string };
    expect((await expectClosed(trusting, { query: { ticket: t2.ticket } })).code).toBe(4001);

    const untrusting = await target({ JWT_SECRET: TEST_SECRET });
    const t3 = (await (await fetch(`${http(untrusting)}/api/tickets`, { method: 'POST', headers: { authorization: `Bearer ${token}` } })).json()) as { ticket: string };
    // A client cannot claim another address: the header is ignored, the peer address matches.
    expect((await connect(untrusting, { query: { ticket: t3.ticket }, headers: { 'x-forwarded-for': '198.51.100.1' } })).welcome.user).toMatchObject({ id: 'proxied' });
  });
});

describe('origin and authorization', () => {
  it('ALLOWED_ORIGINS: a listed or absent Origin is let in, another gets HTTP 403', async () => {
    const gw = await target({ ALLOWED_ORIGINS: 'https://app.example, http://localhost:3000' });
    await connect(gw, { query: { username: 'a' }, headers: { origin: 'https://app.example' } });
    await connect(gw, { query: { username: 'b' } });
    await expect(TestClient.connect(gw, { query: { username: 'c' }, headers: { origin: 'https://evil.example' } })).rejects.toThrow('HTTP 403');
  });

  it('private:* rooms need a matching rooms claim; other rooms are open to anyone authenticated', async () => {
    const gw = await target({ JWT_SECRET: TEST_SECRET });
    const member = await connect(gw, { query: { token: await hs256({ sub: 'm', rooms: ['private:team-*', 'private:exact'] }) } });
    await member.ok({ type: 'join', room: 'private:team-blue' });
    await member.ok({ type: 'join', room: 'private:exact' });
    await member.ok({ type: 'join', room: 'lobby' });
    expect(await member.request({ type: 'join', room: 'private:exactly' })).toMatchObject({ code: 'forbidden' });
    expect(await member.request({ type: 'join', room: 'private:other' })).toMatchObject({ code: 'forbidden' });
    const outsider = await connect(gw, { query: { token: await hs256({ sub: 'o' }) } });
    expect(await outsider.request({ type: 'join', room: 'private:team-blue' })).toMatchObject({ code: 'forbidden' });
    const anon = await connect(gw, { query: { username: 'anon' } });
    expect(await anon.request({ type: 'join', room: 'private:team-blue' })).toMatchObject({ code: 'forbidden' });
  });
});

describe('rooms claim', () => {
  it('an adversarial pattern is matched in linear time: the gateway keeps answering others meanwhile', async () => {
    const gw = await target({ JWT_SECRET: TEST_SECRET });
    // Against a room of 120 `a`s, each of these made a regular expression built from the pattern
    // try every way of splitting the `a`s between its stars: about 2 s each on a laptop.
    const evil = ['b', 'c', 'd', 'e'].map((last) => `private:a*a*a*a*a*${last}`);
    const attacker = await connect(gw, { query: { token: await hs256({ sub: 'evil', rooms: evil }) } });
    const other = await connect(gw, { query: { username: 'bystander' } });
    const room = `private:${'a'.repeat(120)}`;
    const started = performance.now();
    const [join, pong] = await Promise.all([
      attacker.request({ type: 'join', room }, 30_000).then((f) => ({ f, ms: performance.now() - started })),
      other.request({ type: 'ping' }, 30_000).then((f) => ({ f, ms: performance.now() - started })),
    ]);
    expect(join.f).toMatchObject({ type: 'error', code: 'forbidden' });
    expect(pong.f.type).not.toBe('error');
    // Microseconds of work; a generous budget so that a loaded machine does not fail it.
    expect(pong.ms).toBeLessThan(1000);
    expect(join.ms).toBeLessThan(1000);
    // The same patterns still let in the rooms they describe.
    await attacker.ok({ type: 'join', room: `private:${'a'.repeat(119)}b` });
  });

  it('a token listing more than 256 patterns, or one longer than 256 characters, is refused: 4001 on /ws, 401 on /sse and /api/tickets', async () => {
    const gw = await target({ JWT_SECRET: TEST_SECRET });
    const many = await hs256({ sub: 'many', rooms: Array.from({ length: 257 }, (_, i) => `private:${i}`) });
    const long = await hs256({ sub: 'long', rooms: [`private:${'x'.repeat(249)}`] });
    for (const [token, reason] of [
      [many, 'more than 256 patterns'],
      [long, 'longer than 256 characters'],
    ] as const) {
      expect(await expectClosed(gw, { query: { token } })).toMatchObject({ code: 4001, reason: expect.stringContaining(reason) });
      const sse = await fetch(`${http(gw)}/sse?rooms=lobby&token=${token}`);
      expect(sse.status).toBe(401);
      expect(await sse.json()).toMatchObject({ error: { code: 'unauthorized', message: expect.stringContaining(reason) } });
      const ticket = await fetch(`${http(gw)}/api/tickets`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
      expect(ticket.status).toBe(401);
      expect(await ticket.json()).toMatchObject({ error: { code: 'unauthorized', message: expect.stringContaining(reason) } });
    }
    // At the bounds: accepted.
    const atBounds = await hs256({ sub: 'bounds', rooms: [...Array.from({ length: 255 }, (_, i) => `private:${i}`), `private:${'x'.repeat(248)}`] });
    const c = await connect(gw, { query: { token: atBounds } });
    await c.ok({ type: 'join', room: 'private:254' });
  });
});

describe('limits', () => {
  it('MAX_ROOMS_PER_CONNECTION', async () => {
    const gw = await target({ MAX_ROOMS_PER_CONNECTION: '2' });
    const c = await connect(gw, { query: { username: 'rooms' } });
    await c.ok({ type: 'join', room: 'r1' });
    await c.ok({ type: 'join', room: 'r2' });
    expect(await c.request({ type: 'join', room: 'r3' })).toMatchObject({ code: 'forbidden' });
    await c.ok({ type: 'join', room: 'r2' });
    await c.ok({ type: 'leave', room: 'r1' });
    await c.ok({ type: 'join', room: 'r3' });
  });

  it('MAX_CONNECTIONS: past it the upgrade gets HTTP 503', async () => {
    const gw = await target({ MAX_CONNECTIONS: '2' });
    await connect(gw, { query: { username: 'a' } });
    await connect(gw, { query: { username: 'b' } });
    await expect(TestClient.connect(gw, { query: { username: 'c' } })).rejects.toThrow('HTTP 503');
  });

  it('MAX_CONNECTIONS_PER_USER: past it the new connection is closed with 1008', async () => {
    const gw = await target({ MAX_CONNECTIONS_PER_USER: '2' });
    await connect(gw, { query: { username: 'many' } });
    await connect(gw, { query: { username: 'many' } });
    expect((await expectClosed(gw, { query: { username: 'many' } })).code).toBe(1008);
    await connect(gw, { query: { username: 'someone-else' } });
  });

  it('CONNECT_RATE_PER_IP: upgrades past the rate get HTTP 429', async () => {
    const gw = await target({ CONNECT_RATE_PER_IP: '2' });
    const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => connect(gw, { query: { username: `r${i}` } })));
    const refused = results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason));
    expect(refused.length).toBeGreaterThan(0);
    expect(refused.every((r) => r.includes('HTTP 429'))).toBe(true);
    // Another address has its own budget.
    await connect(gw, { query: { username: 'other' }, localAddress: '127.0.0.3' });
  });

  it('RATE_LIMIT_RPS/BURST: frames past the bucket get rate_limited; 10 s of hammering closes with 1008', async () => {
    const gw = await target({ RATE_LIMIT_RPS: '5', RATE_LIMIT_BURST: '5' });
    const c = await connect(gw, { query: { username: 'hammer' } });
    for (let i = 0; i < 20; i++) c.send({ type: 'ping', id: i });
    const answers = await Promise.all(Array.from({ length: 20 }, () => c.next((f) => f.type === 'pong' || f.type === 'error')));
    const limited = answers.filter((a) => a.type === 'error');
    expect(limited.length).toBeGreaterThanOrEqual(10);
    expect(limited[0]).toMatchObject({ code: 'rate_limited', id: expect.any(Number) });
    // Every request got exactly one answer with its id.
    expect(answers.map((a) => a.id).sort((x, y) => Number(x) - Number(y))).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(answers.filter((a) => a.type === 'pong').length).toBeGreaterThanOrEqual(5);
    const started = Date.now();
    const timer = setInterval(() => {
      for (let i = 0; i < 20; i++) c.send({ type: 'ping' });
    }, 100);
    try {
      const closed = await c.waitClosed(15_000);
      expect(closed.code).toBe(1008);
      expect(Date.now() - started).toBeGreaterThan(8000);
    } finally {
      clearInterval(timer);
    }
  }, 20_000);
});
