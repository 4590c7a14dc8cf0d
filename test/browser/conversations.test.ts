/**
 * Conversations (durable direct messages) in the demo chat, in Chromium against a real
 * `bin/embedded.ts` process: Bob is offline when Alice (an SDK client) writes to him; he opens the
 * demo on two tabs, both show the conversation with its unread badge; he reads it on one tab and the
 * badge clears on the other. Then Bob clicks Carol under "Here now", his first message creates the
 * conversation, and it shows up in Carol's list with a badge until she opens it. Screenshots go to
 * test-results/browser/conversations-*.png.
 */
import type { Browser, Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it, onTestFailed } from 'vitest';
import WebSocket from 'ws';
import { RtClient } from '../../client/index.ts';
import { freePort } from '../../tools/processes.ts';
import {
  EmbeddedProcess,
  chatMembers,
  chatMessages,
  clearScreenshots,
  connState,
  ensureClientBuilt,
  failureScreenshots,
  launchBrowser,
  newPage,
  screenshot,
  send,
  textOf,
  type TestPage,
} from '../harness/browser.ts';

/** The conversations list as a page shows it: the other user's name and the unread badge ('' when none). */
function conversationsShown(page: Page): Promise<{ name: string; unread: string }[]> {
  return page.$$eval('#conversations li[data-room]', (items) =>
    items.map((li) => ({ name: li.querySelector('.name')?.textContent ?? '', unread: li.querySelector('.unread-badge')?.textContent ?? '' })),
  );
}

/** A second tab of the same browser context (the same user, the same storage), recording its errors. */
async function newTab(of: TestPage): Promise<TestPage> {
  const page = await of.context.newPage();
  const tab: TestPage = { context: of.context, page, errors: [], console: [] };
  page.on('pageerror', (err) => tab.errors.push(err.stack ?? err.message));
  page.on('console', (m) => tab.console.push(`${m.type()}: ${m.text()}`));
  page.setDefaultTimeout(15_000);
  return tab;
}

describe('conversations in the demo chat (Chromium, embedded server process)', () => {
  let server: EmbeddedProcess;
  let browser: Browser;
  let alice: RtClient | undefined;
  let bob1: TestPage;
  let bob2: TestPage;
  let carol: TestPage | undefined;

  beforeAll(async () => {
    clearScreenshots('conversations');
    await ensureClientBuilt();
    server = new EmbeddedProcess(await freePort(), { LOG_LEVEL: 'warn' });
    await server.start();
    browser = await launchBrowser();
    bob1 = await newPage(browser);
    bob2 = await newTab(bob1);
  }, 120_000);

  afterAll(async () => {
    alice?.close();
    await browser?.close();
    await server?.stop();
  }, 30_000);

  afterEach(() => {
    for (const p of [bob1, bob2, carol]) expect(p?.errors ?? []).toEqual([]);
  });

  const onFailure = () =>
    onTestFailed(async ({ task }) => {
      await failureScreenshots('conversations', task.name, [bob1?.page, bob2?.page, carol?.page]);
      console.error(`--- embedded server (pid ${server.pid}):\n${server.tail()}`);
      for (const [who, p] of [['Bob tab 1', bob1], ['Bob tab 2', bob2], ['Carol', carol]] as const) console.error(`--- ${who}'s console:\n${p?.console.slice(-20).join('\n')}`);
    });

  it('Bob is offline when Alice writes, opens the page on two tabs, sees the message and the badge, reads it on one tab and the badge clears on the other', async () => {
    onFailure();
    alice = new RtClient({ url: `${server.url}/ws`, username: 'Alice', WebSocket: WebSocket as never });
    await alice.connect();
    // Nobody called Bob has ever connected: the message waits in the conversation.
    const sent = await alice.direct('Bob', 'Are you there, Bob?');
    expect(sent.room).toMatch(/^dm:/);

    for (const tab of [bob1, bob2]) {
      await tab.page.goto(`${server.url}/?username=Bob&room=lobby`);
      await expect.poll(() => connState(tab.page), { timeout: 10_000 }).toBe('online');
    }
    for (const tab of [bob1, bob2]) {
      await expect.poll(() => conversationsShown(tab.page), { timeout: 10_000 }).toEqual([{ name: 'Alice', unread: '1' }]);
      // The room on screen is still the lobby: the message is not shown, so it is not read.
      expect(await textOf(tab.page, '#room-title')).toBe('#lobby');
    }
    await screenshot(bob2.page, 'conversations-1-bob-tab2-badge');

    await bob1.page.locator('#conversations li[data-room] button').click();
    await expect.poll(() => textOf(bob1.page, '#room-title')).toBe('@Alice');
    await expect.poll(() => chatMessages(bob1.page), { timeout: 10_000 }).toEqual([{ author: 'Alice', content: 'Are you there, Bob?', mine: false, pending: false }]);
    // Read on this tab, and the server tells the other one.
    await expect.poll(() => conversationsShown(bob1.page), { timeout: 10_000 }).toEqual([{ name: 'Alice', unread: '' }]);
    await expect.poll(() => conversationsShown(bob2.page), { timeout: 10_000 }).toEqual([{ name: 'Alice', unread: '' }]);
    // The other tab did not open it: it still shows the lobby.
    expect(await textOf(bob2.page, '#room-title')).toBe('#lobby');
    expect(alice.unreadIn(sent.room)).toBe(0);
    await screenshot(bob1.page, 'conversations-2-bob-tab1-read');
    await screenshot(bob2.page, 'conversations-3-bob-tab2-cleared');

    // Bob answers from the conversation; Alice's SDK gets it as a direct message.
    const answer = new Promise<string>((resolve) => alice!.on('direct', (m) => resolve(`${m.from.name}: ${m.content}`)));
    await send(bob1.page, 'Yes, here now');
    await expect(answer).resolves.toBe('Bob: Yes, here now');
    await expect.poll(async () => (await chatMessages(bob1.page)).map((m) => `${m.author}: ${m.content}${m.pending ? ' (pending)' : ''}`), { timeout: 10_000 }).toEqual([
      'Alice: Are you there, Bob?',
      'Bob: Yes, here now',
    ]);
    // What Bob wrote is not unread for him, on either tab.
    for (const tab of [bob1, bob2]) expect(await conversationsShown(tab.page)).toEqual([{ name: 'Alice', unread: '' }]);
  }, 60_000);

  it('clicking a member opens a conversation with them; the first message creates it, and the other user sees it with a badge until opened', async () => {
    onFailure();
    carol = await newPage(browser);
    await carol.page.goto(`${server.url}/?username=Carol&room=lobby`);
    await expect.poll(() => connState(carol!.page), { timeout: 10_000 }).toBe('online');
    await bob1.page.locator('#rooms .room-link', { hasText: '#lobby' }).click();
    await expect.poll(() => chatMembers(bob1.page), { timeout: 10_000 }).toEqual(['Bob (you)', 'Carol']);

    await bob1.page.locator('#members li', { hasText: 'Carol' }).click();
    await expect.poll(() => textOf(bob1.page, '#room-title')).toBe('@Carol');
    expect(await bob1.page.locator('#messages li.note').allTextContents()).toEqual(['This is the start of your conversation with Carol.']);
    await send(bob1.page, 'Hi Carol');
    await expect.poll(() => chatMessages(bob1.page), { timeout: 10_000 }).toEqual([{ author: 'Bob', content: 'Hi Carol', mine: true, pending: false }]);
    await expect.poll(() => new URL(bob1.page.url()).searchParams.get('room') ?? '').toMatch(/^dm:/);
    await expect.poll(async () => (await conversationsShown(bob1.page)).map((c) => c.name), { timeout: 10_000 }).toEqual(['Carol', 'Alice']);

    // Carol is in the lobby: the conversation appears in her list, unread.
    await expect.poll(() => conversationsShown(carol!.page), { timeout: 10_000 }).toEqual([{ name: 'Bob', unread: '1' }]);
    expect(await textOf(carol.page, '#room-title')).toBe('#lobby');
    await screenshot(carol.page, 'conversations-4-carol-badge');
    await carol.page.locator('#conversations li[data-room] button').click();
    await expect.poll(() => chatMessages(carol!.page), { timeout: 10_000 }).toEqual([{ author: 'Bob', content: 'Hi Carol', mine: false, pending: false }]);
    await expect.poll(() => conversationsShown(carol!.page), { timeout: 10_000 }).toEqual([{ name: 'Bob', unread: '' }]);

    // Carol answers while Bob has the conversation on screen on tab 1: shown there, so read on both tabs.
    await send(carol.page, 'Hi Bob');
    await expect.poll(async () => (await chatMessages(bob1.page)).map((m) => `${m.author}: ${m.content}`), { timeout: 10_000 }).toEqual(['Bob: Hi Carol', 'Carol: Hi Bob']);
    for (const tab of [bob1, bob2]) {
      await expect.poll(() => conversationsShown(tab.page), { timeout: 10_000 }).toEqual([
        { name: 'Carol', unread: '' },
        { name: 'Alice', unread: '' },
      ]);
    }
    await screenshot(bob1.page, 'conversations-5-bob-with-carol');
  }, 60_000);
});
