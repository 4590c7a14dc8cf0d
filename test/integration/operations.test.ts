/** Metrics, health and graceful drain, as an operator sees them. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { embeddedTarget, distributedTarget, type Target } from '../harness/targets.ts';
import { TestClient } from '../harness/client.ts';

/** The value of one sample of a Prometheus text exposition, e.g. `rt_gateway_connections`. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return undefined;
}

describe('metrics (embedded: gateway and worker on one /metrics)', () => {
  let t: Target;
  let http: string;
  beforeAll(async () => {
    t = await embeddedTarget();
    http = t.gateways[0]!.replace(/^ws/, 'http');
  });
  afterAll(() => t.stop());

  it('counts connections, frames by type, fan-out, requests and store operations; labels never name rooms or users', async () => {
    const room = 'secret-room-name';
    const a = await TestClient.connect(t.gateways[0]!, { query: { username: 'secret-user-a' } });
    const b = await TestClient.connect(t.gateways[0]!, { query: { username: 'secret-user-b' } });
    await a.ok({ type: 'join', room });
    await b.ok({ type: 'join', room });
    for (let i = 0; i < 5; i++) await a.ok({ type: 'publish', room, content: `m${i}` });
    await b.take('message', 5);
    a.send('{oops');
    await a.next((f) => f.type === 'error');
    const res = await fetch(`${http}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(sample(text, 'rt_gateway_connections')).toBe(2);
    expect(sample(text, 'rt_gateway_rooms')).toBe(1);
    expect(sample(text, 'rt_gateway_connects_total', { result: 'accepted' })).toBe(2);
    expect(sample(text, 'rt_gateway_messages_received_total', { type: 'publish' })).toBe(5);
    expect(sample(text, 'rt_gateway_messages_received_total', { type: 'join' })).toBe(2);
    expect(sample(text, 'rt_gateway_messages_received_total', { type: 'invalid' })).toBe(1);
    // 5 messages to 2 members, 5 publish replies, 2 join replies, 2 welcomes, 1 presence join, 1 error.
    expect(sample(text, 'rt_gateway_messages_sent_total')).toBeGreaterThanOrEqual(10 + 5 + 2 + 2 + 1 + 1);
    expect(sample(text, 'rt_gateway_bytes_received_total')).toBeGreaterThan(0);
    expect(sample(text, 'rt_gateway_request_duration_seconds_count', { type: 'publish' })).toBe(5);
    expect(sample(text, 'rt_worker_requests_total', { type: 'publish', result: 'ok' })).toBe(5);
    expect(sample(text, 'rt_store_operation_duration_seconds_count', { op: 'append' })).toBe(5);
    expect(sample(text, 'rt_gateway_bus_connected')).toBe(1);
    expect(sample(text, 'process_resident_memory_bytes')).toBeGreaterThan(0);
    expect(text).not.toContain('secret-room-name');
    expect(text).not.toContain('secret-user');
    a.close();
    b.close();
  });
});

describe('worker health and metrics on METRICS_PORT', () => {
  let t: Target;
  beforeAll(async () => {
    t = await distributedTarget({ METRICS_PORT: '0' }, { gateways: 1, workers: 1 });
  });
  afterAll(() => t.stop());

  it('serves /healthz, /readyz and /metrics', async () => {
    const base = `http://127.0.0.1:${t.workers[0]!.port}`;
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ bus: true, store: true });
    const c = await TestClient.connect(t.gateways[0]!, { query: { username: 'w' } });
    await c.ok({ type: 'join', room: 'wm' });
    c.close();
    const text = await (await fetch(`${base}/metrics`)).text();
    expect(sample(text, 'rt_worker_requests_total', { type: 'join', result: 'ok' })).toBe(1);
    expect(sample(text, 'process_cpu_seconds_total')).toBeGreaterThan(0);
  });

  it('/readyz turns 503 when the store is unreachable', async () => {
    const base = `http://127.0.0.1:${t.workers[0]!.port}`;
    await t.redis!.stop();
    await expect.poll(async () => (await fetch(`${base}/readyz`)).status, { timeout: 10_000, interval: 200 }).toBe(503);
    await t.redis!.restart();
    await expect.poll(async () => (await fetch(`${base}/readyz`)).status, { timeout: 10_000, interval: 200 }).toBe(200);
  });
});

describe('graceful drain', () => {
  it('reports not ready at once, refuses upgrades, and closes sockets with 1001 spread over DRAIN_MS', async () => {
    const t = await embeddedTarget({ DRAIN_MS: '1500' });
    const base = t.gateways[0]!;
    const http = base.replace(/^ws/, 'http');
    const clients = await Promise.all(Array.from({ length: 30 }, (_, i) => TestClient.connect(base, { query: { username: `d${i}` } })));
    const closedAt: number[] = [];
    const started = Date.now();
    const closes = Promise.all(
      clients.map(async (c) => {
        const { code } = await c.waitClosed(5000);
        closedAt.push(Date.now() - started);
        return code;
      }),
    );
    const stopping = t.gatewayNodes[0]!.gateway!.close();
    expect((await fetch(`${http}/readyz`)).status).toBe(503);
    await expect(TestClient.connect(base, { query: { username: 'late' } })).rejects.toThrow('HTTP 503');
    const codes = await closes;
    await stopping;
    expect(new Set(codes)).toEqual(new Set([1001]));
    closedAt.sort((x, y) => x - y);
    // Spread: the first closes come at once, the last near the end of the window.
    expect(closedAt[0]!).toBeLessThan(500);
    expect(closedAt.at(-1)!).toBeGreaterThan(1000);
    await t.stop();
  });
});

describe('the live dashboard feed', () => {
  it('every gateway publishes its stats once a second to the dashboard room', async () => {
    const t = await distributedTarget({}, { gateways: 2, workers: 1 });
    try {
      const viewer = await TestClient.connect(t.gateways[0]!, { query: { username: 'ops' } });
      await viewer.ok({ type: 'join', room: 'rt.dashboard' });
      const busy = await TestClient.connect(t.gateways[1]!, { query: { username: 'busy' } });
      await busy.ok({ type: 'join', room: 'work' });
      for (let i = 0; i < 20; i++) await busy.ok({ type: 'publish', room: 'work', content: `w${i}` });
      const nodes = new Set<string>();
      let sawTraffic = false;
      while (nodes.size < 2 || !sawTraffic) {
        const s = await viewer.next((f) => f.type === 'stats', 5000);
        expect(s).toMatchObject({ room: 'rt.dashboard', connections: expect.any(Number), busConnected: true, latencyMs: { p99: expect.any(Number) } });
        nodes.add(s.node as string);
        if (s.node === 'gw2' && (s.messagesInPerSec as number) > 0) sawTraffic = true;
      }
      expect([...nodes].sort()).toEqual(['gw1', 'gw2']);
      const page = await fetch(`${t.gateways[0]!.replace(/^ws/, 'http')}/dashboard`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('dashboard.js');
      viewer.close();
      busy.close();
    } finally {
      await t.stop();
    }
  });
});
