/**
 * Issue 9: an `EventSource` in a browser follows a room and resumes after a network drop without
 * losing a message. Against the cluster (nginx, 2 gateways, 2 workers, NATS, Redis): Chromium's own
 * EventSource, in a page served by the gateway, follows `/sse?rooms=feed` through nginx. The drop is
 * real: the gateway serving the stream is killed (SIGKILL); Chromium reconnects by itself after the
 * server's `retry:` with `Last-Event-ID`, and nginx sends it to the other gateway, which replays
 * what was missed from history.
 *
 * Why not `context.setOffline(true)`: DevTools' offline emulation fails new requests but leaves an
 * open EventSource stream alone (events keep arriving "offline"), so it drops nothing.
 *
 * The reconnect request is held (page.route) until the messages "published while dropped" are
 * stored, so they are certainly published while the browser has no stream, on any machine speed.
 */
import { randomBytes } from 'node:crypto';
import type { Browser } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { waitFor } from '../../tools/processes.ts';
import { clearScreenshots, ensureClientBuilt, failureScreenshots, gatewayGauge, launchBrowser, newPage, type TestPage } from '../harness/browser.ts';
import { clusterLogs, startTestCluster, type Cluster, type ClusterNode } from '../harness/cluster.ts';

const API_KEY = `browser-test-${randomBytes(12).toString('hex')}`;
const ROOM = 'feed';

/** What the page collects from its EventSource, in `window.feed`. */
interface Feed {
  messages: { lastEventId: string; seq: number; room: string; content: string }[];
  opens: number;
  /** readyState at each `error` event: 0 (reconnecting) or 2 (given up). */
  errors: number[];
  readyState: () => number;
}

describe('EventSource in Chromium through the cluster', () => {
  let cluster: Cluster;
  let browser: Browser;
  let reader: TestPage;

  beforeAll(async () => {
    clearScreenshots('eventsource');
    await ensureClientBuilt();
    [cluster, browser] = await Promise.all([startTestCluster({ env: { API_KEY } }), launchBrowser()]);
    reader = await newPage(browser);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await cluster?.stop();
  }, 60_000);

  afterEach(() => {
    expect(reader?.errors ?? []).toEqual([]);
  });

  /** Publishes through the server API of one gateway; resolves with the stored seq. */
  async function publish(via: ClusterNode, content: string): Promise<number> {
    const res = await fetch(`http://127.0.0.1:${via.port}/api/rooms/${ROOM}/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify({ content, user: { id: 'feeder', name: 'Feeder' } }),
    });
    const body = (await res.json()) as { seq?: number };
    if (res.status !== 201 && res.status !== 200) throw new Error(`publish answered ${res.status}: ${JSON.stringify(body)}`);
    return body.seq!;
  }

  const feed = () =>
    reader.page.evaluate(() => {
      const f = (window as unknown as { feed: Feed }).feed;
      return { messages: f.messages, opens: f.opens, errors: f.errors, readyState: f.readyState() };
    });
  const received = async () => (await feed()).messages.length;

  it('follows a room, and after its gateway is killed resumes with Last-Event-ID: every message once, in seq order', async () => {
    onTestFailed(async ({ task }) => {
      await failureScreenshots('eventsource', task.name, [reader.page]);
      console.error(`--- page's console:\n${reader.console.join('\n')}\n--- feed: ${JSON.stringify(await feed().catch((e: Error) => e.message))}`);
      console.error(clusterLogs(cluster));
    });
    const page = reader.page;
    const sent: string[] = [];
    const publishAll = async (via: ClusterNode, contents: string[]) => {
      for (const c of contents) {
        expect(await publish(via, c)).toBe(sent.length + 1);
        sent.push(c);
      }
    };

    // Three messages before the page exists: `lastEventId=feed:0` asks for the room from its start.
    await publishAll(cluster.gateways[0]!, ['m1', 'm2', 'm3']);
    await page.goto(`${cluster.url}/healthz`);
    await page.evaluate(
      ({ room }) => {
        const source = new EventSource(`/sse?rooms=${room}&username=reader&lastEventId=${room}:0`);
        const f: Feed = { messages: [], opens: 0, errors: [], readyState: () => source.readyState };
        (window as unknown as { feed: Feed }).feed = f;
        source.addEventListener('open', () => f.opens++);
        source.addEventListener('error', () => f.errors.push(source.readyState));
        source.addEventListener('message', (e) => {
          const m = JSON.parse(e.data) as { seq: number; room: string; content: string };
          f.messages.push({ lastEventId: e.lastEventId, seq: m.seq, room: m.room, content: m.content });
        });
      },
      { room: ROOM },
    );
    await expect.poll(received, { timeout: 10_000 }).toBe(3);

    // The gateway nginx gave the stream to; messages go in through the other one, across NATS.
    const counts = await waitFor(
      async () => {
        const n = await Promise.all(cluster.gateways.map((g) => gatewayGauge(g.port, 'rt_gateway_sse_connections')));
        return n.reduce((a, b) => a + b, 0) === 1 ? n : undefined;
      },
      { timeoutMs: 5_000, what: 'one SSE stream on one gateway' },
    );
    const serving = cluster.gateways[counts.indexOf(1)]!;
    const other = cluster.gateways.find((g) => g !== serving)!;
    await publishAll(other, ['m4', 'm5', 'm6']);
    await expect.poll(received, { timeout: 10_000 }).toBe(6);

    // Hold the browser's reconnect until the messages of the outage are stored.
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let reconnects = 0;
    await page.route('**/sse?**', async (route) => {
      reconnects++;
      await released;
      await route.continue();
    });

    serving.kill('SIGKILL');
    await expect.poll(async () => (await feed()).errors, { timeout: 10_000 }).toEqual([0]); // reconnecting, not given up
    await publishAll(other, ['m7', 'm8', 'm9', 'm10']);
    // The browser asks again by itself, after the server's `retry: 2000`. (The Last-Event-ID header
    // it adds is not among the headers DevTools shows here; without it the gateway would take the
    // query's `feed:0` and send 1-6 again, which the exactly-once check below would catch.)
    await expect.poll(() => reconnects, { timeout: 10_000 }).toBe(1);
    expect(await received()).toBe(6);
    release();
    await page.unrouteAll({ behavior: 'wait' });

    await expect.poll(async () => (await feed()).opens, { timeout: 10_000 }).toBe(2);
    await expect.poll(received, { timeout: 10_000 }).toBe(10);
    await publishAll(other, ['m11', 'm12']);
    await expect.poll(received, { timeout: 10_000 }).toBe(12);

    const f = await feed();
    expect(f.messages).toEqual(sent.map((content, i) => ({ lastEventId: `${ROOM}:${i + 1}`, seq: i + 1, room: ROOM, content })));
    expect(f.readyState).toBe(1); // open
    expect(f.errors).toEqual([0]);
    expect(await gatewayGauge(other.port, 'rt_gateway_sse_connections')).toBe(1);
  });
});
