/**
 * The demo chat in Chromium against a real `bin/embedded.ts` process: two browser contexts (Ann and
 * Bob) chat, see each other in "who is here", see the typing indicator come and go, Bob gets a
 * notification on the bell, and after the server is killed (SIGKILL) and started again on the same
 * port both pages show "reconnecting", then "online", and keep chatting. Screenshots go to
 * test-results/browser/chat-*.png.
 */
import { randomBytes } from 'node:crypto';
import type { Browser } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import { freePort } from '../../tools/processes.ts';
import {
  EmbeddedProcess,
  chatMembers,
  chatMessages,
  connState,
  clearScreenshots,
  ensureClientBuilt,
  failureScreenshots,
  launchBrowser,
  newPage,
  screenshot,
  send,
  textOf,
  type TestPage,
} from '../harness/browser.ts';

const API_KEY = `browser-test-${randomBytes(12).toString('hex')}`;

describe('demo chat in Chromium (embedded server process)', () => {
  let server: EmbeddedProcess;
  let browser: Browser;
  let ann: TestPage;
  let bob: TestPage;
  let phone: TestPage | undefined;

  beforeAll(async () => {
    clearScreenshots('chat');
    await ensureClientBuilt();
    server = new EmbeddedProcess(await freePort(), { API_KEY, LOG_LEVEL: 'warn' });
    await server.start();
    browser = await launchBrowser();
    [ann, bob] = await Promise.all([newPage(browser), newPage(browser)]);
  }, 120_000);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  }, 30_000);

  afterEach(() => {
    // An uncaught error in the page is a bug of the demo, whatever the test looked at.
    for (const p of [ann, bob, phone]) expect(p?.errors ?? []).toEqual([]);
  });

  const onFailure = () =>
    onTestFailed(async ({ task }) => {
      await failureScreenshots('chat', task.name, [ann?.page, bob?.page, phone?.page]);
      console.error(`--- embedded server (pid ${server.pid}):\n${server.tail()}`);
      for (const [who, p] of [['Ann', ann], ['Bob', bob]] as const) console.error(`--- ${who}'s console:\n${p?.console.slice(-20).join('\n')}`);
    });

  it('each sees the other in "who is here"', async () => {
    onFailure();
    await ann.page.goto(`${server.url}/?username=Ann&room=lobby`);
    await bob.page.goto(`${server.url}/?username=Bob&room=lobby`);
    for (const p of [ann.page, bob.page]) {
      await expect.poll(() => connState(p), { timeout: 10_000 }).toBe('online');
      await expect.poll(() => textOf(p, '#conn-text')).toBe('Online');
      await expect.poll(() => textOf(p, '#room-title')).toBe('#lobby');
    }
    await expect.poll(() => chatMembers(ann.page), { timeout: 10_000 }).toEqual(['Ann (you)', 'Bob']);
    await expect.poll(() => chatMembers(bob.page), { timeout: 10_000 }).toEqual(['Ann', 'Bob (you)']);
    expect(await textOf(ann.page, '#member-count')).toBe('2');
    expect(await textOf(bob.page, '#me')).toBe('Bob');
    await screenshot(ann.page, 'chat-1-ann-joined');
  });

  it('Ann types: Bob sees "Ann is typing…", which goes away when she sends; the message shows for both with its author', async () => {
    onFailure();
    const typingSince = Date.now();
    await ann.page.locator('#text').pressSequentially('Hello Bob', { delay: 20 });
    await expect.poll(() => textOf(bob.page, '#typing'), { timeout: 5_000 }).toBe('Ann is typing…');
    // Nobody is told about their own typing.
    expect(await textOf(ann.page, '#typing')).toBe('');
    await screenshot(bob.page, 'chat-2-bob-sees-typing');

    await ann.page.locator('#text').press('Enter');
    await expect.poll(() => chatMessages(bob.page), { timeout: 5_000 }).toContainEqual({ author: 'Ann', content: 'Hello Bob', mine: false, pending: false });
    await expect.poll(() => textOf(bob.page, '#typing'), { timeout: 3_000 }).toBe('');
    // Gone because she sent, not because the entry expired (5 s after her last keystroke).
    expect(Date.now() - typingSince).toBeLessThan(5_000);
    await expect.poll(() => chatMessages(ann.page), { timeout: 5_000 }).toContainEqual({ author: 'Ann', content: 'Hello Bob', mine: true, pending: false });
    expect(await ann.page.locator('#text').inputValue()).toBe('');

    await send(bob.page, 'Hi Ann!');
    await expect.poll(() => chatMessages(ann.page), { timeout: 5_000 }).toContainEqual({ author: 'Bob', content: 'Hi Ann!', mine: false, pending: false });
    await expect.poll(async () => (await chatMessages(bob.page)).map((m) => m.content)).toEqual(['Hello Bob', 'Hi Ann!']);
    expect((await chatMessages(ann.page)).map((m) => `${m.author}: ${m.content}`)).toEqual(['Ann: Hello Bob', 'Bob: Hi Ann!']);
    // Each user has one colour (from the user id) on every page, and times have one format.
    const looks = (page: TestPage['page']) =>
      page.$$eval('#messages li.message', (items) =>
        items.map((li) => ({ avatar: getComputedStyle(li.querySelector('.avatar')!).backgroundColor, author: getComputedStyle(li.querySelector('.author')!).color, time: li.querySelector('.time')?.textContent ?? '' })),
      );
    const [onAnn, onBob] = [await looks(ann.page), await looks(bob.page)];
    expect(onAnn.map(({ avatar, author }) => [avatar, author])).toEqual(onBob.map(({ avatar, author }) => [avatar, author]));
    expect(onAnn[0]!.avatar).not.toBe(onAnn[1]!.avatar);
    expect(onAnn[0]!.author).not.toBe(onAnn[1]!.author);
    for (const m of [...onAnn, ...onBob]) expect(m.time).toMatch(/^\d{2}\D\d{2}\D\d{2}/);
    await screenshot(ann.page, 'chat-3-ann-conversation');
    await screenshot(bob.page, 'chat-3-bob-conversation');
  });

  it('a notification to Bob shows on his bell with the unread count, and only on his', async () => {
    onFailure();
    const res = await fetch(`${server.url}/api/notifications`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify({ userId: 'Bob', kind: 'success', title: 'Build finished', body: 'main is green: 128 tests passed.', url: 'https://example.com/builds/42' }),
    });
    expect(res.status).toBe(202);
    const badge = bob.page.locator('#unread');
    await badge.waitFor({ state: 'visible', timeout: 5_000 });
    expect(await badge.textContent()).toBe('1');
    expect(await bob.page.locator('#bell').getAttribute('aria-label')).toBe('Notifications (1 unread)');
    expect(await ann.page.locator('#unread').isHidden()).toBe(true);

    await bob.page.locator('#bell').click();
    const item = bob.page.locator('#notif-list li.notif.unread');
    await item.waitFor({ state: 'visible', timeout: 5_000 });
    expect(await item.locator('a').textContent()).toBe('Build finished');
    expect(await item.locator('a').getAttribute('href')).toBe('https://example.com/builds/42');
    expect(await item.locator('p').textContent()).toBe('main is green: 128 tests passed.');
    await screenshot(bob.page, 'chat-4-bob-notification');

    await bob.page.locator('#read-all').click();
    await badge.waitFor({ state: 'hidden', timeout: 5_000 });
    expect(await bob.page.locator('#bell').getAttribute('aria-label')).toBe('Notifications');
    expect(await bob.page.locator('#notif-list li.notif.unread').count()).toBe(0);
    // A click elsewhere closes the panel.
    await bob.page.locator('#messages').click();
    await bob.page.locator('#notif-panel').waitFor({ state: 'hidden' });
  });

  it('the server is killed and started again on its port: both show reconnecting, then online, and keep chatting', async () => {
    onFailure();
    const firstPid = server.pid;
    await server.kill();
    for (const p of [ann.page, bob.page]) {
      await expect.poll(() => connState(p), { timeout: 10_000 }).not.toBe('online');
      await expect.poll(() => textOf(p, '#conn-text'), { timeout: 10_000 }).toMatch(/^Reconnecting/);
    }
    // While it waits between attempts ("Reconnecting in N s") it offers to try at once.
    await expect.poll(() => ann.page.locator('#conn-retry').isVisible(), { timeout: 10_000, interval: 20 }).toBe(true);
    await screenshot(ann.page, 'chat-5-ann-reconnecting');

    await server.start();
    expect(server.pid).not.toBe(firstPid);
    // The SDK's backoff (full jitter, capped at 30 s) decides when it tries again: after a few
    // seconds away the next try is at most 8-16 s off, usually much less.
    for (const p of [ann.page, bob.page]) {
      await expect.poll(() => connState(p), { timeout: 35_000 }).toBe('online');
      await expect.poll(() => textOf(p, '#conn-text')).toBe('Online');
    }
    expect(await ann.page.locator('#conn-retry').isHidden()).toBe(true);
    // The new process knows nobody: both joined the room again.
    await expect.poll(() => chatMembers(ann.page), { timeout: 10_000 }).toEqual(['Ann (you)', 'Bob']);
    await expect.poll(() => chatMembers(bob.page), { timeout: 10_000 }).toEqual(['Ann', 'Bob (you)']);

    await send(bob.page, 'Welcome back');
    await expect.poll(() => chatMessages(ann.page), { timeout: 10_000 }).toContainEqual({ author: 'Bob', content: 'Welcome back', mine: false, pending: false });
    await send(ann.page, 'Still here');
    await expect.poll(() => chatMessages(bob.page), { timeout: 10_000 }).toContainEqual({ author: 'Ann', content: 'Still here', mine: false, pending: false });

    // What was shown before the crash stays, nothing is shown twice, nothing is left pending; the
    // new process has no history of the room (a new epoch), and the page says so once.
    const expected = ['Ann: Hello Bob', 'Bob: Hi Ann!', 'Bob: Welcome back', 'Ann: Still here'];
    for (const p of [ann.page, bob.page]) {
      await expect.poll(async () => (await chatMessages(p)).map((m) => `${m.author}: ${m.content}${m.pending ? ' (pending)' : ''}`), { timeout: 10_000 }).toEqual(expected);
      expect(await p.locator('#messages li.note').allTextContents()).toEqual(['This is the start of #lobby.', 'Some messages could not be recovered; newer ones follow.']);
    }
    await screenshot(ann.page, 'chat-6-ann-after-restart');
    await screenshot(bob.page, 'chat-6-bob-after-restart');
  }, 60_000);

  it('on a phone-sized screen (390×844) the chat fits, and the drawer shows who is here', async () => {
    onFailure();
    phone = await newPage(browser, { viewport: { width: 390, height: 844 }, deviceScaleFactor: 2, isMobile: true, hasTouch: true });
    const res = await fetch(`${server.url}/api/notifications`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}` },
      body: JSON.stringify({ userId: 'Bob', kind: 'info', title: 'Welcome back', body: 'The server restarted.' }),
    });
    expect(res.status).toBe(202);
    const p = phone.page;
    await p.goto(`${server.url}/?username=Bob&room=lobby`);
    await expect.poll(() => connState(p), { timeout: 10_000 }).toBe('online');
    await expect.poll(async () => (await chatMessages(p)).map((m) => `${m.author}: ${m.content}`), { timeout: 10_000 }).toEqual(['Bob: Welcome back', 'Ann: Still here']);
    await expect.poll(() => textOf(p, '#unread'), { timeout: 5_000 }).toBe('1');
    expect(await p.locator('#menu').isVisible()).toBe(true);
    // The closed drawer is off-screen and hidden (no shadow at the edge, no focus in it).
    expect(await p.locator('#sidebar').isHidden()).toBe(true);
    expect(await p.locator('#text').isVisible()).toBe(true);
    const fits = await p.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth);
    expect(fits, 'no horizontal scrolling on a phone').toBe(true);
    // The composer sits at the bottom of the screen.
    const composer = await p.locator('#composer').boundingBox();
    expect(composer && composer.y + composer.height).toBeCloseTo(844, -1);
    await screenshot(p, 'chat-7-phone');

    await p.locator('#menu').tap();
    await expect.poll(() => p.locator('#menu').getAttribute('aria-expanded')).toBe('true');
    // The drawer has slid in (a 0.2 s transition) when its left edge is at 0.
    await expect.poll(() => p.locator('#sidebar').isVisible(), { timeout: 3_000 }).toBe(true);
    await expect.poll(async () => (await p.locator('#sidebar').boundingBox())?.x, { timeout: 3_000 }).toBe(0);
    await expect.poll(() => chatMembers(p)).toEqual(['Ann', 'Bob (you)']);
    await screenshot(p, 'chat-8-phone-drawer');
  });
});
