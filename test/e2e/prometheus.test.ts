/** A real Prometheus (Debian's package) scrapes a running gateway and worker; its query API returns their metrics. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { distributedTarget, type Target } from '../harness/targets.ts';
import { TestClient } from '../harness/client.ts';
import { freePort, waitForPort } from '../harness/servers.ts';

interface QueryResult {
  status: string;
  data: { result: { metric: Record<string, string>; value: [number, string] }[] };
}

describe('Prometheus scrapes the gateway and the worker', () => {
  let t: Target;
  let prom: ChildProcess;
  let promUrl: string;
  let dir: string;

  beforeAll(async () => {
    t = await distributedTarget({ METRICS_PORT: '0' }, { gateways: 1, workers: 1 });
    dir = mkdtempSync(join(tmpdir(), 'rt-prom-'));
    const gatewayPort = Number(new URL(t.gateways[0]!.replace(/^ws/, 'http')).port);
    const config = [
      'global:',
      '  scrape_interval: 1s',
      '  scrape_timeout: 1s',
      'scrape_configs:',
      '  - job_name: rt-gateway',
      `    static_configs: [{ targets: ['127.0.0.1:${gatewayPort}'] }]`,
      '  - job_name: rt-worker',
      `    static_configs: [{ targets: ['127.0.0.1:${t.workers[0]!.port}'] }]`,
      '',
    ].join('\n');
    writeFileSync(join(dir, 'prometheus.yml'), config);
    const port = await freePort();
    promUrl = `http://127.0.0.1:${port}`;
    prom = spawn('prometheus', [`--config.file=${join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`], {
      stdio: 'ignore',
    });
    await waitForPort('127.0.0.1', port, 20_000, prom);
  });
  afterAll(async () => {
    prom?.kill('SIGTERM');
    await t?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const query = async (q: string) => {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`);
    return ((await res.json()) as QueryResult).data.result;
  };

  it('returns the gateway and worker series through its query API', async () => {
    const c = await TestClient.connect(t.gateways[0]!, { query: { username: 'scraped' } });
    await c.ok({ type: 'join', room: 'prom' });
    await c.ok({ type: 'publish', room: 'prom', content: 'hello' });
    await expect
      .poll(async () => (await query('rt_gateway_connections'))[0]?.value[1], { timeout: 20_000, interval: 500 })
      .toBe('1');
    await expect
      .poll(async () => (await query('rt_worker_requests_total{type="publish",result="ok"}'))[0]?.value[1], { timeout: 20_000, interval: 500 })
      .toBe('1');
    const up = await query('up');
    expect(up.map((r) => [r.metric.job, r.value[1]]).sort()).toEqual([
      ['rt-gateway', '1'],
      ['rt-worker', '1'],
    ]);
    const latency = await query('rt_gateway_request_duration_seconds_count{type="publish"}');
    expect(latency[0]?.value[1]).toBe('1');
    c.close();
  });
});
