/**
 * Two people in two browsers chat through `npm run cluster`: nats-server, redis-server, two
 * gateways, two workers and nginx (startTestCluster), Ann and Bob on the demo page through nginx.
 *
 * nginx is sticky by client address and both browsers connect from 127.0.0.1, so they share a
 * gateway; a third person, Cy, connects (a plain protocol client) from another address that nginx
 * sends to the other gateway, so the browsers also show presence and messages that crossed NATS.
 */
import type { Browser } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { waitFor } from '../../tools/processes.ts';
import {
  chatMembers,
  chatMessages,
  connState,
  clearScreenshots,
  ensureClientBuilt,
  failureScreenshots,
  gatewayGauge,
  launchBrowser,
  newPage,
  screenshot,
  send,
  type TestPage,
} from '../harness/browser.ts';
import { TestClient } from '../harness/client.ts';
import { clusterLogs, startTestCluster, type Cluster } from '../harness/cluster.ts';

describe('demo chat in two browsers through the cluster (nginx, 2 gateways, 2 workers, NATS, Redis)', () => {
  let cluster: Cluster;
  let browser: Browser;
  let ann: TestPage;
  let bob: TestPage;
  let cy: TestClient | undefined;

  beforeAll(async () => {
    clearScreenshots('cluster');
    await ensureClientBuilt();
    [cluster, browser] = await Promise.all([startTestCluster(), launchBrowser()]);
    [ann, bob] = await Promise.all([newPage(browser), newPage(browser)]);
  }, 120_000);

  afterAll(async () => {
    cy?.terminate();
    await browser?.close();
    await cluster?.stop();
  }, 60_000);

  afterEach(() => {
    for (const p of [ann, bob]) expect(p?.errors ?? []).toEqual([]);
  });

  const onFailure = () =>
    onTestFailed(async ({ task }) => {
      await failureScreenshots('cluster', task.name, [ann?.page, bob?.page]);
      console.error(clusterLogs(cluster));
    });

  it('Ann and Bob see each other and chat both ways; Cy on the other gateway too', async () => {
    onFailure();
    await ann.page.goto(`${cluster.url}/?username=Ann&room=lobby`);
    await bob.page.goto(`${cluster.url}/?username=Bob&room=lobby`);
    for (const p of [ann.page, bob.page]) await expect.poll(() => connState(p), { timeout: 15_000 }).toBe('online');
    await expect.poll(() => chatMembers(ann.page), { timeout: 10_000 }).toEqual(['Ann (you)', 'Bob']);
    await expect.poll(() => chatMembers(bob.page), { timeout: 10_000 }).toEqual(['Ann', 'Bob (you)']);

    // Both pages' sockets went through nginx to one gateway (sticky by address): find it.
    const counts = await waitFor(
      async () => {
        const n = await Promise.all(cluster.gateways.map((g) => gatewayGauge(g.port, 'rt_gateway_connections')));
        return n.includes(2) && n.reduce((a, b) => a + b, 0) === 2 ? n : undefined;
      },
      { timeoutMs: 5_000, what: 'both browsers on one gateway' },
    );
    const browsersGateway = cluster.gateways[counts.indexOf(2)]!;

    // Cy through nginx from other loopback addresses until nginx sends him to the other gateway.
    for (let i = 2; i <= 16 && !cy; i++) {
      const c = await TestClient.connect(cluster.url, { query: { username: 'Cy' }, localAddress: `127.${i}.0.1` });
      if (c.node !== browsersGateway.nodeId) cy = c;
      else {
        c.close();
        await c.waitClosed();
      }
    }
    if (!cy) throw new Error(`15 source addresses all hashed to ${browsersGateway.nodeId}`);
    await cy.ok({ type: 'join', room: 'lobby' });
    for (const p of [ann.page, bob.page]) await expect.poll(() => chatMembers(p), { timeout: 10_000 }).toContain('Cy');

    await send(ann.page, 'Hi Bob, through nginx');
    await expect.poll(() => chatMessages(bob.page), { timeout: 10_000 }).toContainEqual({ author: 'Ann', content: 'Hi Bob, through nginx', mine: false, pending: false });
    await send(bob.page, 'Hi Ann, same way back');
    await expect.poll(() => chatMessages(ann.page), { timeout: 10_000 }).toContainEqual({ author: 'Bob', content: 'Hi Ann, same way back', mine: false, pending: false });

    // Cy, on the other gateway, got both in order, and his reaches both browsers.
    const seen: string[] = [];
    while (seen.length < 2) {
      const m = await cy.next((f) => f.type === 'message' && f.room === 'lobby', 10_000);
      seen.push(`${(m.user as { name: string }).name}: ${m.content as string}`);
    }
    expect(seen).toEqual(['Ann: Hi Bob, through nginx', 'Bob: Hi Ann, same way back']);
    await cy.ok({ type: 'publish', room: 'lobby', content: 'Cy here, from the other gateway' });
    const expected = ['Ann: Hi Bob, through nginx', 'Bob: Hi Ann, same way back', 'Cy: Cy here, from the other gateway'];
    for (const p of [ann.page, bob.page]) {
      await expect.poll(async () => (await chatMessages(p)).map((m) => `${m.author}: ${m.content}${m.pending ? ' (pending)' : ''}`), { timeout: 10_000 }).toEqual(expected);
    }
    expect(await chatMembers(ann.page)).toEqual(['Ann (you)', 'Bob', 'Cy']);
    await screenshot(ann.page, 'cluster-ann');
    await screenshot(bob.page, 'cluster-bob');

    // Cy leaves: both browsers see it.
    await cy.ok({ type: 'leave', room: 'lobby' });
    for (const p of [ann.page, bob.page]) await expect.poll(() => chatMembers(p), { timeout: 10_000 }).not.toContain('Cy');
  });
});
