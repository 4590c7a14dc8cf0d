/**
 * Every value a request carries into the gateway — upgrade headers, cookies, `Host`, query strings,
 * paths, every claim of a validly signed token, the user ids of frames and of the server API — is
 * driven with arbitrary strings (lone surrogates, malformed percent-encoding, control characters
 * included). The properties: the gateway answers each with a documented status or close code,
 * keeps answering other clients, and never even reaches its last-resort boundary
 * (`rt_gateway_errors_total` and `rt_worker_errors_total` stay 0: nothing threw).
 *
 * The second half injects faults behind each boundary to show what an unexpected exception does:
 * logged with the connection id, counted by where, answered (500 / `internal` / 1011), and the
 * process serves on.
 */
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { CompactSign } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embeddedTarget, type Target } from '../harness/targets.ts';
import { TestClient } from '../harness/client.ts';
import { TEST_SECRET, hs256 } from '../harness/jwt.ts';
import { closeCodeOf, rawRequest, upgradeHead } from '../harness/raw-http.ts';

const API_KEY = 'fuzz-api-key-0123456789';
const secret = new TextEncoder().encode(TEST_SECRET);

/** Any UTF-16 string: lone surrogates and control characters included. */
const anyText = (maxLength = 40) => fc.string({ unit: fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c)), maxLength });
/** Strings that are hard on parsers: percent-encoding gone wrong, surrogates, separators. */
const nasty = fc.oneof(
  anyText(),
  fc.constantFrom('%', '%E0%A4%A', '%ZZ', '%ud800', '%F0%9F', '\ud800', '\udfff', 'a\u0000b', '[', '[::1', 'a b', ':99999', 'x:0', '..', '=', ';;', '"', '\\'),
  fc.string({ maxLength: 60 }),
);
/** Printable ASCII and Latin-1 (what HTTP allows in a header value), percent signs often. */
const headerText = fc.string({
  unit: fc.oneof(fc.integer({ min: 0x20, max: 0x7e }), fc.integer({ min: 0xa0, max: 0xff }), fc.constant(0x25)).map((c) => String.fromCharCode(c)),
  maxLength: 60,
});
/**
 * A header value: mostly what an HTTP parser accepts, so it reaches the gateway's own parsers;
 * sometimes any text (which uWS itself refuses before the gateway sees it), never the CR/LF that
 * would end the header.
 */
const headerValue = fc.oneof({ weight: 4, arbitrary: headerText }, { weight: 1, arbitrary: nasty.map((s) => s.replace(/[\r\n]/g, '')) });
/**
 * A query string as a client could put it on the request line: printable ASCII as it is (percent
 * signs and malformed escapes included), every other code unit escaped as `%XX` (or `%uXXXX`, which
 * no decoder accepts), so that uWS parses the request and the gateway's own parsers see it.
 */
const queryText = fc
  .array(fc.tuple(fc.constantFrom('token', 'ticket', 'username', 'session', 'rooms', 'lastEventId', 'x', '%'), nasty), { maxLength: 4 })
  .map((pairs) =>
    pairs
      .map(([k, v]) => `${k}=${v}`)
      .join('&')
      .replace(/[^\x21-\x7e]|#/g, (c) => {
        const code = c.charCodeAt(0);
        return code <= 0xff ? `%${code.toString(16).padStart(2, '0')}` : `%u${code.toString(16)}`;
      }),
  );
/** Any JSON value a claim could hold. */
const claimValue = fc.oneof(
  nasty,
  fc.constantFrom('alice', 'private:*', 1e300, -1e300, Number.MAX_SAFE_INTEGER, 0, -1, null, true, [], {}),
  fc.double({ noNaN: true }),
  fc.integer(),
  fc.array(fc.oneof(nasty, fc.constantFrom('private:*', '*'.repeat(50), 'private:' + 'a*'.repeat(40))), { maxLength: 6 }),
  fc.dictionary(fc.string({ maxLength: 4 }), fc.string({ maxLength: 4 }), { maxKeys: 2 }),
);
/** A claim that is mostly absent, so that enough tokens pass verification to test what follows. */
const sometimes = fc.option(claimValue, { nil: undefined, freq: 3 });
const claims = fc.record({
  sub: fc.oneof({ weight: 3, arbitrary: fc.constant('alice') }, { weight: 2, arbitrary: claimValue }),
  name: claimValue,
  rooms: claimValue,
  exp: fc.oneof({ weight: 3, arbitrary: fc.constant(Math.floor(Date.now() / 1000) + 3600) }, { weight: 2, arbitrary: claimValue }),
  nbf: sometimes,
  iat: sometimes,
  iss: sometimes,
  aud: sometimes,
  jti: claimValue,
});

/** Signs any JSON payload (jose's SignJWT would refuse claims such as a non-finite `iat`). */
function sign(payload: Record<string, unknown>): Promise<string> {
  return new CompactSign(new TextEncoder().encode(JSON.stringify(payload))).setProtectedHeader({ alg: 'HS256' }).sign(secret);
}

/** The value of one metric family summed over its series with `label` (all series if undefined). */
function metricSum(text: string, name: string, label?: string): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (label && !line.includes(label)) continue;
    sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return sum;
}

function leaksInternals(text: string): boolean {
  return /\n\s+at |\.ts:\d+|node_modules|\/work\/|TypeError|RangeError|URIError|ReferenceError/.test(text);
}

describe('request boundaries: any value from the network', () => {
  let t: Target;
  let gw: string;
  let http: string;
  let port: number;
  let watcher: TestClient;
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _enc, done) {
      logs.push(chunk.toString());
      done();
    },
  });

  /** The gateway still answers a connected client and a new request. */
  async function stillServing(): Promise<void> {
    expect((await watcher.request({ type: 'ping' })).type).toBe('pong');
    expect((await fetch(`${http}/healthz`)).status).toBe(200);
  }

  async function errorsCaught(): Promise<{ gateway: number; worker: number }> {
    const text = await (await fetch(`${http}/metrics`)).text();
    return { gateway: metricSum(text, 'rt_gateway_errors_total'), worker: metricSum(text, 'rt_worker_errors_total') };
  }

  beforeAll(async () => {
    t = await embeddedTarget({ LOG_LEVEL: 'info', JWT_SECRET: TEST_SECRET, ALLOW_ANONYMOUS: 'true', API_KEY, JWT_COOKIE: 'rt_token' }, { logDestination: sink });
    gw = t.gateways[0]!;
    http = gw.replace(/^ws/, 'http');
    port = Number(new URL(http).port);
    watcher = await TestClient.connect(gw, { query: { username: 'watcher' } });
  });
  afterAll(async () => {
    watcher?.close();
    await t?.stop();
  });

  describe('documented answers to values that once ended the process', () => {
    it('a credential cookie with malformed percent-encoding: 4001 on /ws, 401 on /sse', async () => {
      const ws = await rawRequest(port, upgradeHead('/ws', { Cookie: 'rt_token=%E0%A4%A' }));
      expect(ws.status).toBe(101);
      expect(closeCodeOf(ws)).toBe(4001);
      const sse = await rawRequest(port, `GET /sse?rooms=a HTTP/1.1\r\nHost: x\r\nCookie: rt_token=%ZZ%`);
      expect(sse.status).toBe(401);
      expect(sse.text).toContain('"unauthorized"');
      await stillServing();
    });

    it('a Host that is not a URL authority: the AsyncAPI document, without a server', async () => {
      for (const host of ['[', 'a b', 'x:99999', '%zz', 'exa mple.com:80', '\u00ff']) {
        const res = await rawRequest(port, Buffer.from(`GET /asyncapi.json HTTP/1.1\r\nHost: ${host}`, 'latin1'));
        expect(res.status).toBe(200);
        const body = JSON.parse(res.text.slice(res.text.indexOf('\r\n\r\n') + 4)) as { asyncapi: string; servers?: unknown };
        expect(body.asyncapi).toMatch(/^3\./);
        const servers = body.servers as Record<string, { host: string }> | undefined;
        for (const server of Object.values(servers ?? {})) expect(server.host).not.toBe(host);
      }
      const good = await rawRequest(port, `GET /asyncapi.json HTTP/1.1\r\nHost: chat.example.com:8080`);
      expect(good.text).toContain('"host":"chat.example.com:8080","protocol":"ws"');
      await stillServing();
    });

    it('a validly signed token whose sub is not well-formed text: 4001 naming the sub', async () => {
      for (const sub of ['\ud800', 'a\udfffb', 'x\u0000y', '']) {
        const token = await sign({ sub, exp: Math.floor(Date.now() / 1000) + 60 });
        const ws = await rawRequest(port, upgradeHead(`/ws?token=${token}`));
        expect(closeCodeOf(ws)).toBe(4001);
        expect(ws.text).toContain('token has no valid sub');
        const sse = await fetch(`${http}/sse?rooms=a&token=${token}`);
        expect(sse.status).toBe(401);
        await sse.text();
      }
      await stillServing();
    });

    it('a direct to an id that is not well-formed text: bad_request naming /to', async () => {
      const c = await TestClient.connect(gw, { query: { token: await hs256({ sub: 'sender', expiresIn: 600 }) } });
      for (const to of ['\ud800', 'a\udc00', 'bell\u0007']) {
        const answer = await c.request({ type: 'direct', to, content: 'hi' });
        expect(answer).toMatchObject({ type: 'error', code: 'bad_request' });
        expect(answer.message).toMatch(/^\/to/);
      }
      expect(await c.request({ type: 'direct', to: 'bob 😀', content: 'hi' })).toMatchObject({ type: 'reply' });
      c.close();
      await stillServing();
    });

    it('a refresh to a token whose exp no date can hold: unauthorized, the connection lives on', async () => {
      const c = await TestClient.connect(gw, { query: { token: await hs256({ sub: 'refresher', expiresIn: 600 }) } });
      const answer = await c.request({ type: 'refresh', token: await sign({ sub: 'refresher', exp: 1e300 }) });
      expect(answer).toMatchObject({ type: 'error', code: 'unauthorized', message: 'token claim exp is not valid' });
      expect((await c.request({ type: 'ping' })).type).toBe('pong');
      c.close();
    });

    it('notification recipients that are not well-formed text: 400 naming the field', async () => {
      for (const body of [{ userId: '\ud800' }, { userIds: ['ok', 'b\udc00'] }]) {
        const res = await fetch(`${http}/api/notifications`, {
          method: 'POST',
          headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
          body: JSON.stringify({ ...body, kind: 'info', title: 't', body: 'b' }),
        });
        expect(res.status).toBe(400);
        expect(((await res.json()) as { error: { message: string } }).error.message).toMatch(/^\/userId/);
      }
    });
  });

  describe('properties', () => {
    it('upgrade and SSE requests with any headers, cookies, Host and query: a documented answer, the gateway serves on', async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom('/ws', '/sse', '/asyncapi.json', '/api/tickets', '/healthz'),
          queryText,
          fc.record({ Cookie: headerValue, Host: headerValue, Authorization: headerValue, Origin: headerValue, 'Sec-WebSocket-Protocol': headerValue, 'X-Forwarded-For': headerValue, 'Last-Event-ID': headerValue }, { requiredKeys: [] }),
          async (path, query, headers) => {
            const head = path === '/ws' ? upgradeHead(`${path}?${query}`, headers) : [`${path === '/api/tickets' ? 'POST' : 'GET'} ${path}?${query} HTTP/1.1`, ...Object.entries({ Host: 'h', ...headers }).map(([k, v]) => `${k}: ${v}`)].join('\r\n');
            // Latin-1 on the wire, so each character of a header value is one byte.
            const answer = await rawRequest(port, Buffer.from(head, 'latin1'), 800);
            expect(answer.status === 0 || (answer.status >= 100 && answer.status < 500)).toBe(true);
            expect(leaksInternals(answer.text)).toBe(false);
          },
        ),
        { numRuns: 150 },
      );
      await stillServing();
      expect(await errorsCaught()).toEqual({ gateway: 0, worker: 0 });
    }, 120_000);

    it('every claim of a validly signed token, on /ws, /sse, a ticket and a refresh: 4001/401 or a working connection', async () => {
      let accepted = 0;
      await fc.assert(
        fc.asyncProperty(claims, claims, async (first, second) => {
          const token = await sign(first);
          const ws = await rawRequest(port, upgradeHead(`/ws?token=${token}`), 1500);
          const code = closeCodeOf(ws);
          expect(ws.status).toBe(101);
          expect(code === undefined || code === 4001).toBe(true);
          const sse = await fetch(`${http}/sse?rooms=a&token=${token}`);
          expect([200, 401]).toContain(sse.status);
          if (sse.status === 200) await sse.body?.cancel();
          else expect(leaksInternals(await sse.text())).toBe(false);
          const ticket = await fetch(`${http}/api/tickets`, { method: 'POST', headers: { authorization: `Bearer ${token}` } });
          expect([201, 401]).toContain(ticket.status);
          await ticket.text();
          if (code !== undefined) return;
          accepted++;
          const c = await TestClient.connect(gw, { query: { token } });
          const refreshed = await c.request({ type: 'refresh', token: await sign(second) });
          expect(['reply', 'error']).toContain(refreshed.type);
          if (refreshed.type === 'error') expect(['unauthorized', 'forbidden']).toContain(refreshed.code);
          const sub = (first as { sub?: unknown }).sub;
          const direct = await c.request({ type: 'direct', to: typeof sub === 'string' ? sub : 'x', content: 'hi' });
          expect(['reply', 'error']).toContain(direct.type);
          if (direct.type === 'error') expect(direct.code).toBe('bad_request');
          c.close();
        }),
        { numRuns: 150 },
      );
      expect(accepted).toBeGreaterThan(10);
      await stillServing();
      expect(await errorsCaught()).toEqual({ gateway: 0, worker: 0 });
    }, 180_000);

    it('frames naming any user id or room: reply or bad_request, never internal', async () => {
      const c = await TestClient.connect(gw, { query: { username: 'ids' } });
      await fc.assert(
        fc.asyncProperty(anyText(20), anyText(20), async (to, room) => {
          const direct = await c.request({ type: 'direct', to, content: 'x' });
          if (direct.type === 'error') expect(direct.code).toBe('bad_request');
          const join = await c.request({ type: 'join', room });
          if (join.type === 'error') expect(['bad_request', 'forbidden']).toContain(join.code);
        }),
        { numRuns: 200 },
      );
      c.close();
      await stillServing();
      expect(await errorsCaught()).toEqual({ gateway: 0, worker: 0 });
    }, 120_000);
  });

  describe('an unexpected exception behind each boundary', () => {
    /** Makes `obj[name]` throw once, then restores it. */
    function failOnce(obj: object, name: string): void {
      const target = obj as Record<string, unknown>;
      const original = target[name];
      target[name] = () => {
        target[name] = original;
        throw new TypeError('injected fault');
      };
    }

    it('in a frame handler: an internal error answers that frame, counted and logged with the connection id', async () => {
      const gateway = t.gatewayNodes[0]!.gateway!;
      const c = await TestClient.connect(gw, { query: { username: 'victim' } });
      const before = metricSum(await (await fetch(`${http}/metrics`)).text(), 'rt_gateway_errors_total', 'where="message"');
      failOnce(gateway.conns, 'handleText');
      const answer = await c.request({ type: 'ping' });
      expect(answer).toMatchObject({ type: 'error', code: 'internal', message: 'internal error' });
      expect(metricSum(await (await fetch(`${http}/metrics`)).text(), 'rt_gateway_errors_total', 'where="message"')).toBe(before + 1);
      expect(logs.join('')).toContain(`"conn":"${c.welcome.connectionId as string}"`);
      expect((await c.request({ type: 'ping' })).type).toBe('pong');
      c.close();
      await stillServing();
    });

    it('in open: that connection is closed 1011, others are served', async () => {
      failOnce(t.gatewayNodes[0]!.gateway!.conns, 'open');
      const ws = await rawRequest(port, upgradeHead('/ws?username=opened'));
      expect(closeCodeOf(ws)).toBe(1011);
      await stillServing();
    });

    it('in an HTTP route: 500 with the JSON error body', async () => {
      failOnce(t.gatewayNodes[0]!.gateway!.routes, 'asyncApiText');
      const res = await fetch(`${http}/asyncapi.json`);
      expect(res.status).toBe(500);
      expect(await res.json()).toEqual({ error: { code: 'internal', message: 'internal error' } });
      await stillServing();
    });

    it('in the upgrade: 500, counted', async () => {
      failOnce(t.gatewayNodes[0]!.gateway!.admission, 'credentials');
      const res = await rawRequest(port, upgradeHead('/ws?username=x'));
      expect(res.status).toBe(500);
      const text = await (await fetch(`${http}/metrics`)).text();
      expect(metricSum(text, 'rt_gateway_errors_total', 'where="upgrade"')).toBeGreaterThanOrEqual(1);
      await stillServing();
    });

    it('in a worker handler: internal, counted by request type', async () => {
      const worker = t.workers[0]!.worker! as unknown as { handlers: Record<string, unknown> };
      const c = await TestClient.connect(gw, { query: { username: 'wk' } });
      failOnce(worker.handlers, 'direct');
      expect(await c.request({ type: 'direct', to: 'bob', content: 'x' })).toMatchObject({ type: 'error', code: 'internal', message: 'internal error' });
      const text = await (await fetch(`${http}/metrics`)).text();
      expect(metricSum(text, 'rt_worker_errors_total', 'type="direct"')).toBe(1);
      c.close();
      await stillServing();
    });
  });
});
