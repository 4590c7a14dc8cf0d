/**
 * A Redis Cluster primary killed (SIGKILL) under a publishing client, with REDIS_WAIT_REPLICAS=1:
 * every publish acknowledged before, during and after the failover is in the room's history
 * afterwards (WAIT put it on the replica that took over), and every request answered: a reply, or
 * `unavailable` during the failover and until the killed node is back as the new primary's replica
 * (the client retries with the same `cid`), never silence.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { TestClient, type Frame } from '../harness/client.ts';
import { clusterLogs, startTestCluster, type Cluster } from '../harness/cluster.ts';

describe('Redis Cluster primary killed with SIGKILL', () => {
  let cluster: Cluster;
  let client: TestClient | undefined;

  beforeAll(async () => {
    cluster = await startTestCluster({
      redisCluster: true,
      gateways: 1,
      workers: 2,
      env: { REDIS_WAIT_REPLICAS: '1', REDIS_WAIT_TIMEOUT_MS: '1000', REQUEST_TIMEOUT_MS: '4000', RATE_LIMIT_RPS: '0' },
    });
  }, 60_000);
  afterAll(async () => {
    client?.terminate();
    await cluster?.stop();
  });

  it('loses no acknowledged publish, and no request hangs', async () => {
    onTestFailed(() => console.log(clusterLogs(cluster)));
    const room = `rfail-${process.pid}`;
    client = await TestClient.connect(cluster.wsUrl, { query: { username: 'writer' } });
    await client.ok({ type: 'join', room });

    const acked = new Map<string, number>();
    const outcomes = { ok: 0, unavailable: 0, other: [] as Frame[], hung: 0 };
    let stop = false;
    let n = 0;
    // One publisher, one message at a time, each retried with its cid until acknowledged: what
    // the SDK does. A request unanswered within 10 s (REQUEST_TIMEOUT_MS is 4 s) has hung.
    const publisher = (async () => {
      while (!stop) {
        const cid = `m${n++}`;
        for (;;) {
          let answer: Frame;
          try {
            answer = await client!.request({ type: 'publish', room, content: cid, cid }, 10_000);
          } catch {
            outcomes.hung += 1;
            return;
          }
          if (answer.type === 'reply') {
            outcomes.ok += 1;
            acked.set(cid, answer.seq as number);
            break;
          }
          if (answer.code === 'unavailable') outcomes.unavailable += 1;
          else {
            outcomes.other.push(answer);
            return;
          }
        }
      }
    })();

    const until = async (what: string, cond: () => boolean, timeoutMs: number) => {
      const deadline = Date.now() + timeoutMs;
      while (!cond()) {
        if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 20));
      }
    };
    await until('20 acknowledged publishes', () => acked.size >= 20, 15_000);
    const victim = await cluster.redisCluster!.killPrimaryOf(`rt:{r:${room}}:meta`);
    const atFailover = acked.size;
    // The promoted replica has no replica of its own: with REDIS_WAIT_REPLICAS=1 its slots refuse
    // writes (`unavailable`) until the killed node is back, as its replica.
    await cluster.redisCluster!.restartDead();
    await until('20 more acknowledged publishes after the failover', () => acked.size >= atFailover + 20, 30_000);
    stop = true;
    await publisher;

    expect(outcomes.hung).toBe(0);
    expect(outcomes.other).toEqual([]);
    const page = await client.ok({ type: 'history', room, limit: 500 });
    const stored = (page.messages as { content: string; seq: number }[]).map((m) => m.content);
    const missing = [...acked.keys()].filter((cid) => !stored.includes(cid));
    expect(missing).toEqual([]);
    // Stored once each: the retries' cids deduplicated.
    expect(new Set(stored).size).toBe(stored.length);
    for (const m of page.messages as { content: string; seq: number }[]) if (acked.has(m.content)) expect(m.seq).toBe(acked.get(m.content));
    console.log(`killed ${victim}: ${outcomes.ok} acknowledged, ${outcomes.unavailable} answered unavailable (retried), none lost or hung`);
  }, 90_000);
});
