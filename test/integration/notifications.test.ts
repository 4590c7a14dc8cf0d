/**
 * Notifications: sent by services over HTTP, stored per user, live on every device, read state in
 * sync — in both modes (the distributed one has two gateways and two workers).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TARGETS, type Target } from '../harness/targets.ts';
import { TestClient, type Frame } from '../harness/client.ts';

const KEY = 'notifications-test-key';
let n = 0;
const uniq = (p: string) => `${p}-${process.pid}-${++n}`;

describe.each(TARGETS)('notifications (%s)', (_name, start) => {
  let t: Target;
  let api: string;
  const clients: TestClient[] = [];
  const connect = async (user: string, gw = 0) => {
    const c = await TestClient.connect(t.gateways[gw % t.gateways.length]!, { query: { username: user } });
    clients.push(c);
    return c;
  };
  const notify = (body: unknown, key: string | null = KEY) =>
    fetch(`${api}/api/notifications`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key === null ? {} : { authorization: `Bearer ${key}` }) },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });
  const send = async (body: Record<string, unknown>) => {
    const res = await notify({ kind: 'info', title: 'Hello', body: 'World', ...body });
    expect(res.status).toBe(202);
    return ((await res.json()) as { ids: string[] }).ids;
  };

  beforeAll(async () => {
    t = await start({ API_KEY: KEY });
    api = t.gateways[0]!.replace(/^ws/, 'http');
  });
  afterAll(async () => {
    for (const c of clients) c.terminate();
    await t?.stop();
  });

  it('a user who was offline finds them at connect: welcome.unread and notifications.list', async () => {
    const user = uniq('offline');
    const [first] = await send({ userId: user, title: 'First', url: 'https://example.com/a' });
    const [second] = await send({ userId: user, kind: 'warning', title: 'Second' });
    const c = await connect(user);
    expect(c.welcome.unread).toBe(2);
    const list = await c.ok({ type: 'notifications.list' });
    expect(list.unread).toBe(2);
    const items = list.items as Frame[];
    expect(items.map((i) => i.id)).toEqual([second, first]);
    expect(items[1]).toMatchObject({ id: first, kind: 'info', title: 'First', body: 'World', url: 'https://example.com/a', read: false });
    expect(Date.parse(items[1]!.ts as string)).not.toBeNaN();
  });

  it('a url may be a path on the same origin (/orders/42) as well as an absolute http(s) URL', async () => {
    const user = uniq('paths');
    const urls = ['/orders/42', '/', '/search?q=a%20b#top', 'http://example.com/x'];
    const c = await connect(user);
    for (const url of urls) {
      await send({ userId: user, url });
      expect(await c.next((f) => f.type === 'notification')).toMatchObject({ notification: { url } });
    }
    const list = await c.ok({ type: 'notifications.list' });
    expect((list.items as Frame[]).map((i) => i.url)).toEqual([...urls].reverse());
  });

  it('online on two devices (two gateways) and offline on a third: all three agree on what is read', async () => {
    const user = uniq('multi');
    const phone = await connect(user, 0);
    const laptop = await connect(user, 1);
    const ids = [...(await send({ userId: user, title: 'one' })), ...(await send({ userId: user, title: 'two' })), ...(await send({ userId: user, title: 'three' }))];
    for (const device of [phone, laptop]) {
      const events = await device.take('notification', 3);
      expect(events.map((e) => (e.notification as Frame).title)).toEqual(['one', 'two', 'three']);
      expect(events.map((e) => e.unread)).toEqual([1, 2, 3]);
    }
    // The phone reads one: its reply says 2 unread; the laptop is told; the phone gets no event.
    expect(await phone.ok({ type: 'notifications.read', ids: [ids[0], 'no-such-id'] })).toMatchObject({ unread: 2 });
    expect(await laptop.next((f) => f.type === 'notifications.read')).toMatchObject({ ids: [ids[0]], unread: 2 });
    // Reading it again changes nothing and tells nobody.
    expect(await phone.ok({ type: 'notifications.read', ids: [ids[0]] })).toMatchObject({ unread: 2 });
    expect(await laptop.ok({ type: 'notifications.read', all: true })).toMatchObject({ unread: 0 });
    expect(await phone.next((f) => f.type === 'notifications.read')).toMatchObject({ all: true, unread: 0 });
    expect((await phone.request({ type: 'ping' })).type).toBe('pong');
    expect(phone.events.filter((e) => e.type === 'notifications.read')).toEqual([]);
    expect(laptop.events.filter((e) => e.type === 'notifications.read')).toEqual([]);

    const tablet = await connect(user, 0);
    expect(tablet.welcome.unread).toBe(0);
    const list = await tablet.ok({ type: 'notifications.list' });
    expect((list.items as Frame[]).map((i) => [i.title, i.read])).toEqual([
      ['three', true],
      ['two', true],
      ['one', true],
    ]);
    await send({ userId: user, title: 'four' });
    const unreadOnly = await tablet.ok({ type: 'notifications.list', unreadOnly: true, limit: 10 });
    expect((unreadOnly.items as Frame[]).map((i) => i.title)).toEqual(['four']);
    expect(unreadOnly.unread).toBe(1);
  });

  it('notifications.read needs ids or all', async () => {
    const c = await connect(uniq('r'));
    expect(await c.request({ type: 'notifications.read' })).toMatchObject({ type: 'error', code: 'bad_request' });
  });

  it('a bulk send to 10,000 users is stored for all and delivered live to those online', async () => {
    const online = [uniq('bulk-a'), uniq('bulk-b')];
    const devices = await Promise.all(online.map((u, i) => connect(u, i)));
    const userIds = [...online, ...Array.from({ length: 9998 }, (_, i) => `bulk-${process.pid}-${n}-${i}`)];
    const started = performance.now();
    const ids = await send({ userIds, title: 'Maintenance', body: 'Tonight at 22:00' });
    const storedMs = performance.now() - started;
    expect(ids).toHaveLength(10_000);
    expect(new Set(ids).size).toBe(10_000);
    for (const d of devices) expect(await d.next((f) => f.type === 'notification', 20_000)).toMatchObject({ notification: { title: 'Maintenance' }, unread: 1 });
    const late = await connect(userIds[9999]!);
    expect(late.welcome.unread).toBe(1);
    console.log(`bulk notification to 10,000 users stored in ${storedMs.toFixed(0)} ms (${t.name})`);
  }, 60_000);

  describe('validation: 400 naming the field, in the error format', () => {
    it.each([
      ['malformed JSON', '{"userId":', 'malformed JSON'],
      ['no recipient', { kind: 'info', title: 't', body: 'b' }, 'userId'],
      ['both recipients', { userId: 'a', userIds: ['b'], kind: 'info', title: 't', body: 'b' }, 'userId'],
      ['empty userIds', { userIds: [], kind: 'info', title: 't', body: 'b' }, '/userIds'],
      ['10,001 recipients', { userIds: Array.from({ length: 10_001 }, (_, i) => `u${i}`), kind: 'info', title: 't', body: 'b' }, '/userIds'],
      ['bad kind', { userId: 'a', kind: 'spam', title: 't', body: 'b' }, '/kind'],
      ['missing title', { userId: 'a', kind: 'info', body: 'b' }, '/title'],
      ['title over 200', { userId: 'a', kind: 'info', title: 'x'.repeat(201), body: 'b' }, '/title'],
      ['body over 2000', { userId: 'a', kind: 'info', title: 't', body: 'x'.repeat(2001) }, '/body'],
      ['url not http(s)', { userId: 'a', kind: 'info', title: 't', body: 'b', url: 'javascript:alert(1)' }, '/url'],
      ['url with a data: scheme', { userId: 'a', kind: 'info', title: 't', body: 'b', url: 'data:text/html,<script>alert(1)</script>' }, '/url'],
      ['url protocol-relative', { userId: 'a', kind: 'info', title: 't', body: 'b', url: '//evil.example/x' }, '/url'],
      ['url /\\ (another host to a browser)', { userId: 'a', kind: 'info', title: 't', body: 'b', url: '/\\evil.example/x' }, '/url'],
      ['url with a tab that a browser drops (/<tab>/host)', { userId: 'a', kind: 'info', title: 't', body: 'b', url: '/\t/evil.example' }, '/url'],
      ['url path with a newline', { userId: 'a', kind: 'info', title: 't', body: 'b', url: '/orders/42\n' }, '/url'],
      ['url relative without a leading /', { userId: 'a', kind: 'info', title: 't', body: 'b', url: 'orders/42' }, '/url'],
      ['url with leading space', { userId: 'a', kind: 'info', title: 't', body: 'b', url: ' /orders/42' }, '/url'],
      ['userId not a string', { userId: 5, kind: 'info', title: 't', body: 'b' }, '/userId'],
    ])('%s', async (_label, body, field) => {
      const res = await notify(body);
      expect(res.status).toBe(400);
      const json = (await res.json()) as { error: { code: string; message: string } };
      expect(json.error.code).toBe('bad_request');
      expect(json.error.message).toContain(field);
    });

    it('a wrong or missing API key is 401', async () => {
      expect((await notify({ userId: 'a', kind: 'info', title: 't', body: 'b' }, null)).status).toBe(401);
      expect((await notify({ userId: 'a', kind: 'info', title: 't', body: 'b' }, 'wrong')).status).toBe(401);
    });
  });
});
