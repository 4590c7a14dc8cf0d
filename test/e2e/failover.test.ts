/**
 * A gateway killed without a goodbye (SIGKILL), in the real cluster: its clients resume their
 * sessions on another gateway without presence leave/join, and the presence of those that do not
 * come back is cleaned up by the living within the grace period + 10 s.
 */
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { TestClient } from '../harness/client.ts';
import { clusterLogs, startTestCluster, type Cluster } from '../harness/cluster.ts';

const GRACE_MS = 3000;

describe('gateway killed with SIGKILL', () => {
  let cluster: Cluster;
  const clients: TestClient[] = [];
  const at = (gw: number) => `ws://127.0.0.1:${cluster.gateways[gw]!.port}`;
  const connect = async (name: string, base: string, query: Record<string, string> = {}) => {
    const c = await TestClient.connect(base, { query: { username: name, ...query } });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    cluster = await startTestCluster({ env: { SESSION_GRACE_MS: String(GRACE_MS) } });
  });
  afterAll(async () => {
    for (const c of clients) c.terminate();
    await cluster?.stop();
  });

  it('clients resume on another gateway; the presence of those that do not is removed within grace + 10 s', async () => {
    onTestFailed(() => console.log(clusterLogs(cluster)));
    const room = `failover-${process.pid}`;
    const observer = await connect('observer', at(1));
    await observer.ok({ type: 'join', room });
    const stays = await connect('stays', at(0));
    const gone = await connect('gone', at(0));
    for (const c of [stays, gone]) {
      await c.ok({ type: 'join', room });
      await observer.next((f) => f.type === 'presence' && f.event === 'join' && (f.user as { id: string }).id === c.userId);
    }
    await observer.ok({ type: 'publish', room, content: 'before' });

    const killedAt = Date.now();
    cluster.gateways[0]!.kill('SIGKILL');
    await Promise.all([stays.waitClosed(), gone.waitClosed()]);

    // "stays" comes back at once, through nginx, which now has only the living gateway.
    const back = await connect('stays', cluster.url, { session: stays.welcome.sessionId as string });
    expect(back.node).toBe(cluster.gateways[1]!.nodeId);
    expect(back.welcome).toMatchObject({ resumed: true, rooms: [{ room, seq: 1 }] });
    await observer.ok({ type: 'publish', room, content: 'after' });
    expect(await back.next((f) => f.type === 'message')).toMatchObject({ seq: 2, content: 'after' });

    // "gone" never comes back: the living sweep its presence.
    const leave = await observer.next((f) => f.type === 'presence' && f.event === 'leave', GRACE_MS + 10_000);
    const tookMs = Date.now() - killedAt;
    expect(leave.user).toMatchObject({ id: 'gone' });
    expect(tookMs).toBeLessThan(GRACE_MS + 10_000);
    const members = (await observer.ok({ type: 'presence', room })).members as { id: string }[];
    expect(members.map((m) => m.id).sort()).toEqual(['observer', 'stays']);
    expect(observer.events.filter((e) => e.type === 'presence')).toEqual([]);
    console.log(`presence of a client of the killed gateway removed after ${tookMs} ms (grace ${GRACE_MS} ms)`);
  });
});
