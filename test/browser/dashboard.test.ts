/**
 * The live dashboard (`/dashboard`) in Chromium against the cluster (nginx, 2 gateways, 2 workers,
 * NATS, Redis): it shows every gateway from the `stats` each publishes once a second to
 * `rt.dashboard` over the WebSocket, its numbers follow the traffic, and its chart draws it.
 * Screenshots: test-results/browser/dashboard*.png.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { clearScreenshots, connState, ensureClientBuilt, failureScreenshots, launchBrowser, newPage, screenshot, textOf, type TestPage } from '../harness/browser.ts';
import { TestClient } from '../harness/client.ts';
import { clusterLogs, startTestCluster, type Cluster } from '../harness/cluster.ts';

const COLUMNS = ['node', 'connections', 'sse', 'rooms', 'in', 'out', 'p50', 'p99', 'bus', 'seen'] as const;
type Row = Record<(typeof COLUMNS)[number], string>;

/** The gateway table, one row per `tr[data-node]`, by node id. */
async function rows(page: Page): Promise<Record<string, Row>> {
  const raw = await page.$$eval('#gateways tbody tr[data-node]', (trs) => trs.map((tr) => [tr.getAttribute('data-node') ?? '', [...tr.querySelectorAll('td')].map((td) => td.textContent ?? '')] as const));
  return Object.fromEntries(raw.map(([node, cells]) => [node, Object.fromEntries(COLUMNS.map((c, i) => [c, cells[i] ?? ''])) as Row]));
}

const num = (s: string | null | undefined) => Number((s ?? '').replace(/[^\d.]/g, '') || NaN);

/**
 * Pixels of the chart (device pixels): drawn at all, and in a series colour clearly above the
 * zero line (a series at 0 lies on it), i.e. a non-zero value was plotted.
 */
function chartPixels(page: Page): Promise<{ drawn: number; seriesAboveZero: number }> {
  return page.evaluate(() => {
    const canvas = document.getElementById('chart') as HTMLCanvasElement;
    const { width, height } = canvas;
    const data = canvas.getContext('2d')!.getImageData(0, 0, width, height).data;
    const ratio = width / canvas.clientWidth;
    const zeroY = (canvas.clientHeight - 18) * ratio; // dashboard.ts: bottom padding 18 px
    const palette = ['#2f6fde', '#e8590c', '#2b8a3e', '#ae3ec9', '#c2255c', '#0c8599', '#f08c00', '#5c7cfa'].map((h) => [1, 3, 5].map((i) => parseInt(h.slice(i, i + 2), 16)));
    let drawn = 0;
    let seriesAboveZero = 0;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const i = (y * width + x) * 4;
        if (data[i + 3]! === 0) continue;
        drawn++;
        if (y >= zeroY - 4 * ratio || data[i + 3]! < 250) continue;
        if (palette.some((c) => Math.abs(c[0]! - data[i]!) + Math.abs(c[1]! - data[i + 1]!) + Math.abs(c[2]! - data[i + 2]!) < 30)) seriesAboveZero++;
      }
    }
    return { drawn, seriesAboveZero };
  });
}

describe('live dashboard in Chromium (cluster with 2 gateways)', () => {
  let cluster: Cluster;
  let browser: Browser;
  let viewer: TestPage;
  const clients: TestClient[] = [];
  let traffic: NodeJS.Timeout | undefined;

  beforeAll(async () => {
    clearScreenshots('dashboard');
    await ensureClientBuilt();
    [cluster, browser] = await Promise.all([startTestCluster(), launchBrowser()]);
    viewer = await newPage(browser);
  }, 120_000);

  afterAll(async () => {
    clearInterval(traffic);
    for (const c of clients) c.terminate();
    await browser?.close();
    await cluster?.stop();
  }, 60_000);

  afterEach(() => {
    expect(viewer?.errors ?? []).toEqual([]);
  });

  it('shows both gateways, follows the traffic, and draws it on the chart', async () => {
    onTestFailed(async ({ task }) => {
      await failureScreenshots('dashboard', task.name, [viewer.page]);
      console.error(`--- table: ${JSON.stringify(await rows(viewer.page).catch((e: Error) => e.message))}`);
      console.error(clusterLogs(cluster));
    });
    const page = viewer.page;
    await page.goto(`${cluster.url}/dashboard`);
    await expect.poll(() => connState(page), { timeout: 10_000 }).toBe('online');
    const nodes = cluster.gateways.map((g) => g.nodeId).sort();
    await expect.poll(async () => Object.keys(await rows(page)).sort(), { timeout: 10_000 }).toEqual(nodes);
    expect(await textOf(page, '#t-gateways')).toBe('2');
    expect(await page.locator('#empty').isHidden()).toBe(true);
    for (const row of Object.values(await rows(page))) expect(row.bus).toBe('up');
    // Times in the format the demo chat uses too (client/ui/format.ts).
    for (const row of Object.values(await rows(page))) expect(row.seen).toMatch(/^\d{2}\D\d{2}\D\d{2}/);
    // Only the dashboard's own socket so far, in its one room.
    const totals = async () => {
      const all = Object.values(await rows(page));
      return { connections: all.reduce((n, r) => n + num(r.connections), 0), rooms: all.reduce((n, r) => n + num(r.rooms), 0) };
    };
    await expect.poll(totals, { timeout: 5_000 }).toEqual({ connections: 1, rooms: 1 });
    expect(num(await textOf(page, '#t-connections'))).toBe(1);

    // Traffic on the second gateway, straight to its port: three members of a room, one of
    // them publishing ten messages a second (under the per-connection limit of 20/s).
    const busy = cluster.gateways[1]!;
    const before = (await rows(page))[busy.nodeId]!;
    for (const name of ['ann', 'bob', 'cy']) {
      const c = await TestClient.connect(`http://127.0.0.1:${busy.port}`, { query: { username: name } });
      await c.ok({ type: 'join', room: 'load' });
      clients.push(c);
    }
    let sent = 0;
    traffic = setInterval(() => clients[0]!.send({ type: 'publish', id: 1000 + sent, room: 'load', content: `load ${++sent}` }), 100);

    // Within a few seconds the row of that gateway and the totals follow.
    await expect
      .poll(
        async () => {
          const row = (await rows(page))[busy.nodeId]!;
          return { connections: num(row.connections), rooms: num(row.rooms), inPerSec: num(row.in) > 0, outPerSec: num(row.out) >= 10 };
        },
        { timeout: 10_000, interval: 200 },
      )
      .toEqual({ connections: num(before.connections) + 3, rooms: num(before.rooms) + 1, inPerSec: true, outPerSec: true });
    expect(num(await textOf(page, '#t-connections'))).toBe(4);
    expect(num(await textOf(page, '#t-out'))).toBeGreaterThanOrEqual(10);
    expect(num(await textOf(page, '#t-in'))).toBeGreaterThan(0);
    await expect.poll(() => textOf(page, '#t-p99'), { timeout: 5_000 }).toMatch(/^\d+(\.\d)? ms$/);
    // The row's "seen" time moves on every second.
    const seen = (await rows(page))[busy.nodeId]!.seen;
    await expect.poll(async () => (await rows(page))[busy.nodeId]!.seen, { timeout: 5_000 }).not.toBe(seen);

    // The chart: axes and a line for each gateway, one of them off the zero line.
    await expect.poll(async () => (await chartPixels(page)).seriesAboveZero, { timeout: 5_000 }).toBeGreaterThan(20);
    expect((await chartPixels(page)).drawn).toBeGreaterThan(1000);
    expect(await page.locator('#legend span').allTextContents()).toEqual(expect.arrayContaining(nodes));
    await screenshot(page, 'dashboard');

    // Narrow screens hide some columns but keep the table inside the page.
    await page.setViewportSize({ width: 390, height: 844 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth), 'no horizontal scrolling on a phone').toBe(true);
    const table = await page.locator('#gateways').boundingBox();
    expect(table && table.x + table.width).toBeLessThanOrEqual(390);
    // The chart is drawn again at the new size (its bitmap matches its box).
    await page.waitForFunction(() => {
      const c = document.getElementById('chart') as HTMLCanvasElement;
      return c.clientWidth < 390 && c.width === Math.round(c.clientWidth * devicePixelRatio);
    });
    await screenshot(page, 'dashboard-phone');

    clearInterval(traffic);
    traffic = undefined;
    const refused = clients[0]!.events.filter((f) => f.type === 'error');
    expect(refused, 'publishes refused by the gateway').toEqual([]);
  });
});
