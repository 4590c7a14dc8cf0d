/**
 * No credential in any log, under failure either. Through the real cluster (nginx, two gateways, two
 * workers, NATS, Redis), clients connect with `?token=` and with tickets (`POST /api/tickets`, then
 * `?ticket=`), over WebSocket and SSE, and services call the server API with its key. One gateway is
 * killed with SIGKILL and its clients reconnect through nginx, which first tries the dead gateway and
 * fails to connect: the moment nginx used to write the request line, `?token=` included, into its
 * error log. Then every file of the run (nginx's access and error logs, every process's output) is
 * searched for every token, ticket, session id and the API key used.
 */
import { randomBytes } from 'node:crypto';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { waitFor } from '../../tools/processes.ts';
import { ClosedError, TestClient } from '../harness/client.ts';
import { clusterLogs, startTestCluster, type Cluster } from '../harness/cluster.ts';
import { TEST_SECRET, hs256 } from '../harness/jwt.ts';

const tag = () => randomBytes(4).toString('hex');

interface Reply {
  status: number;
  body: string;
}

/** One HTTP request from a chosen source address (nginx is sticky by address; tickets are bound to it). */
function http(url: string, opts: { method?: string; headers?: Record<string, string>; body?: string; localAddress: string }): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: opts.method ?? 'GET', headers: opts.headers, localAddress: opts.localAddress }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.setTimeout(10_000, () => req.destroy(new Error(`no answer from ${new URL(url).pathname} within 10 s`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

/** An SSE stream from a source address, open once its first bytes arrived; `close()` ends it. */
function openSse(url: string, localAddress: string): Promise<{ status: number; close: () => void }> {
  return new Promise((resolve, reject) => {
    let req: ClientRequest | undefined = undefined;
    req = httpRequest(url, { headers: { accept: 'text/event-stream' }, localAddress }, (res: IncomingMessage) => {
      const close = () => req!.destroy();
      if (res.statusCode !== 200) {
        res.resume();
        return resolve({ status: res.statusCode ?? 0, close });
      }
      res.once('data', () => resolve({ status: 200, close }));
    });
    req.setTimeout(10_000, () => req!.destroy(new Error('no SSE bytes within 10 s')));
    req.on('error', reject);
    req.end();
  });
}

/** Every regular file under `dir`, with its text. */
function filesUnder(dir: string): { path: string; text: string }[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .map((name) => join(dir, name))
    .filter((path) => statSync(path).isFile())
    .map((path) => ({ path, text: readFileSync(path, 'latin1') }));
}

interface AccessLine {
  path: string;
  status: number;
  upstream: string;
  upstream_status: string;
}

describe('credentials in logs', () => {
  let cluster: Cluster;
  const apiKey = `key-${randomBytes(24).toString('base64url')}`;
  /** Every credential the test used, with what it was: none may appear in any file of the run. */
  const secrets = new Map<string, string>();
  const remember = (what: string, value: string) => {
    secrets.set(value, what);
    // A JWT logged in part (cut at a length, or without its header) still leaks its signature.
    const signature = value.split('.')[2];
    if (signature) secrets.set(signature, `${what} (its signature)`);
  };
  const clients: TestClient[] = [];
  const streams: { close: () => void }[] = [];

  beforeAll(async () => {
    cluster = await startTestCluster({
      // debug: every log statement of the gateways and workers runs.
      env: { JWT_SECRET: TEST_SECRET, API_KEY: apiKey, ALLOW_ANONYMOUS: 'false', LOG_LEVEL: 'debug' },
    });
    remember('API key', apiKey);
  }, 90_000);

  afterAll(async () => {
    for (const c of clients) c.terminate();
    for (const s of streams) s.close();
    await cluster?.stop();
  }, 60_000);

  const token = async (user: string) => {
    const t = await hs256({ sub: user, name: user, expiresIn: 600 });
    remember(`token of ${user}`, t);
    return t;
  };
  const ticket = async (user: string, localAddress: string) => {
    const r = await http(`${cluster.url}/api/tickets`, { method: 'POST', headers: { authorization: `Bearer ${await token(user)}` }, localAddress });
    expect(r.status, r.body).toBe(201);
    const t = (JSON.parse(r.body) as { ticket: string }).ticket;
    remember(`ticket of ${user}`, t);
    return t;
  };
  const connect = async (query: Record<string, string>, localAddress: string) => {
    const c = await TestClient.connect(cluster.url, { query, localAddress });
    remember(`session of ${c.userId}`, c.welcome.sessionId as string);
    clients.push(c);
    return c;
  };

  it('keeps every token, ticket, session id and the API key out of every log while a gateway dies', async () => {
    onTestFailed(() => console.error(clusterLogs(cluster)));
    const room = `logs-${tag()}`;
    const victim = cluster.gateways[0]!;
    const survivor = cluster.gateways[1]!;

    // Clients by `?token=` and by `?ticket=`, each from its own address, until both kinds have two
    // on the gateway that will be killed (nginx hashes the address; the odds of 24 addresses on one
    // gateway are 1 in 16 million).
    type Placed = { user: string; address: string; how: 'token' | 'ticket'; client: TestClient };
    const placed: Placed[] = [];
    const onVictim = (how: Placed['how']) => placed.filter((p) => p.how === how && p.client.node === victim.nodeId);
    for (let i = 1; i <= 24 && (onVictim('token').length < 2 || onVictim('ticket').length < 2); i++) {
      for (const how of ['token', 'ticket'] as const) {
        const user = `${how}-${i}-${tag()}`;
        const address = `127.${how === 'token' ? 61 : 62}.${i}.1`;
        const client = await connect({ [how]: how === 'token' ? await token(user) : await ticket(user, address) }, address);
        await client.ok({ type: 'join', room });
        placed.push({ user, address, how, client });
      }
    }
    expect(onVictim('token').length).toBeGreaterThanOrEqual(2);
    expect(onVictim('ticket').length).toBeGreaterThanOrEqual(2);

    // Refused credentials take other paths through the gateway (and its log): a token signed with
    // another key, a ticket used twice, a wrong API key.
    const forged = await hs256({ sub: 'mallory', expiresIn: 600 }, 'another-secret-that-is-at-least-32-characters');
    remember('forged token', forged);
    await expect(TestClient.connect(cluster.url, { query: { token: forged }, localAddress: '127.63.0.1' })).rejects.toBeInstanceOf(ClosedError);
    const once = await ticket('reuser', '127.63.0.2');
    await connect({ ticket: once }, '127.63.0.2');
    await expect(TestClient.connect(cluster.url, { query: { ticket: once }, localAddress: '127.63.0.2' })).rejects.toBeInstanceOf(ClosedError);
    const wrongKey = `key-${randomBytes(24).toString('base64url')}`;
    remember('wrong API key', wrongKey);
    const api = (key: string, localAddress: string) =>
      http(`${cluster.url}/api/rooms/${room}/messages`, {
        method: 'POST',
        headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
        body: JSON.stringify({ content: 'from a service', user: { id: 'ci', name: 'CI' } }),
        localAddress,
      });
    expect((await api(wrongKey, '127.63.0.3')).status).toBe(401);
    expect((await api(apiKey, '127.63.0.3')).status).toBe(201);

    // The crash. Its clients reconnect through nginx, which tries the dead gateway first for each of
    // their addresses: WebSockets with a fresh `?token=` or a fresh ticket and their `?session=`,
    // SSE streams with `?token=` and `?ticket=`, and the server API with its key.
    victim.kill('SIGKILL');
    const orphans = placed.filter((p) => p.client.node === victim.nodeId);
    await Promise.all(orphans.map((p) => p.client.waitClosed()));
    for (const p of orphans) {
      const credential = () => (p.how === 'token' ? token(p.user) : ticket(p.user, p.address));
      const back = await connect({ [p.how]: await credential(), session: p.client.welcome.sessionId as string }, p.address);
      expect(back.node).toBe(survivor.nodeId);
      expect(back.welcome).toMatchObject({ resumed: true });
      const sse = await openSse(`${cluster.url}/sse?rooms=${room}&${p.how}=${await credential()}`, p.address);
      streams.push(sse);
      expect(sse.status).toBe(200);
      expect((await api(apiKey, p.address)).status).toBe(201);
      // The demo page takes `?token=` in its own URL, and its assets then carry it in the Referer.
      const page = `${cluster.url}/?token=${await token(p.user)}`;
      expect((await http(page, { localAddress: p.address })).status).toBe(200);
      expect((await http(`${cluster.url}/rt-client.js`, { headers: { referer: page }, localAddress: p.address })).status).toBe(200);
    }

    // nginx writes a WebSocket's or a stream's access line when it ends.
    for (const c of clients) c.close();
    for (const s of streams) s.close();
    const accessLog = join(cluster.logDir, 'nginx-access.log');
    const deadAddress = `127.0.0.1:${victim.port}`;
    const failed = (l: AccessLine) => l.upstream.startsWith(`${deadAddress}, `) && l.upstream_status.startsWith('502, ');
    const lines = await waitFor(
      () => {
        const all = readFileSync(accessLog, 'utf8')
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l) as AccessLine);
        const ws = all.filter((l) => l.path === '/ws' && failed(l) && l.upstream_status.endsWith(', 101'));
        const sse = all.filter((l) => l.path === '/sse' && failed(l) && l.upstream_status.endsWith(', 200'));
        return ws.length === orphans.length && sse.length === orphans.length ? all : undefined;
      },
      { timeoutMs: 10_000, what: `a line per reconnect that names the failed attempt at ${deadAddress} in ${accessLog}` },
    );
    // The failure is on record where operators look, without the request line: the failed
    // gateway, its 502, and the one that answered.
    expect(lines.filter((l) => l.path === '/api/tickets' && failed(l)).length).toBe(onVictim('ticket').length * 2);
    expect(lines.filter((l) => l.path === `/api/rooms/${room}/messages` && failed(l)).length).toBe(orphans.length);
    expect(lines.filter((l) => (l.path === '/' || l.path === '/rt-client.js') && failed(l)).length).toBe(orphans.length * 2);

    // Every file of the run: nginx's access and error logs, every gateway's, worker's, NATS's and
    // Redis's output, and nginx's own run files.
    const files = filesUnder(cluster.runDir);
    const names = files.map((f) => relative(cluster.runDir, f.path));
    expect(names).toEqual(expect.arrayContaining(['logs/nginx-access.log', 'logs/nginx-error.log', 'logs/gateway-1.log', 'logs/gateway-2.log', 'logs/worker-1.log', 'logs/worker-2.log']));
    // Not vacuous: the gateways logged (at debug), and so did nginx.
    for (const name of ['logs/gateway-1.log', 'logs/gateway-2.log', 'logs/nginx-access.log']) expect(files.find((f) => f.path.endsWith(name))!.text.length, name).toBeGreaterThan(0);
    expect(secrets.size).toBeGreaterThan(4 * orphans.length);
    const leaks = files.flatMap((f) => [...secrets].filter(([value]) => f.text.includes(value)).map(([, what]) => `${what} in ${relative(cluster.runDir, f.path)}`));
    expect(leaks).toEqual([]);
  }, 120_000);
});
