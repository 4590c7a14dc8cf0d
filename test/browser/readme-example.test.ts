/**
 * "A developer can add real-time chat to a page in ten lines using the README's example": the
 * README's HTML example, taken from README.md as it is, runs in Chromium against `npm start`'s
 * server, and two such pages chat.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchBrowser } from '../harness/browser.ts';
import { freePort, waitForPort } from '../harness/servers.ts';

const root = new URL('../../', import.meta.url);

describe("the README's ten-line chat page", () => {
  let server: ChildProcess;
  let browser: Browser;
  let base: string;

  beforeAll(async () => {
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    server = spawn(process.execPath, ['--import', 'tsx', 'bin/embedded.ts'], {
      cwd: root,
      env: { ...process.env, PORT: String(port), HOST: '127.0.0.1', LOG_LEVEL: 'warn', NATS_URL: '', REDIS_URL: '' },
      stdio: 'ignore',
    });
    await waitForPort('127.0.0.1', port, 20_000, server);
    browser = await launchBrowser();
  });
  afterAll(async () => {
    await browser?.close();
    server?.kill('SIGTERM');
  });

  it('is at most ten lines of script, and two pages running it chat', async () => {
    const readme = readFileSync(new URL('README.md', root), 'utf8');
    const html = readme.split('```html\n')[1]!.split('```')[0]!;
    const script = html.split('<script type="module">')[1]!.split('</script>')[0]!.trim().split('\n');
    expect(script.length).toBeLessThanOrEqual(10);
    const pages = [];
    for (const name of ['ann', 'bob']) {
      const page = await browser.newPage();
      const errors: string[] = [];
      page.on('pageerror', (e) => errors.push(e.message));
      await page.goto(`${base}/healthz`);
      await page.setContent(html.replace("username: 'ann'", `username: '${name}'`));
      await page.waitForFunction(() => (document.querySelector('#box') as HTMLInputElement).onkeydown !== null, null, { timeout: 10_000 });
      expect(errors).toEqual([]);
      pages.push(page);
    }
    await pages[0]!.fill('#box', 'hello from ann');
    await pages[0]!.press('#box', 'Enter');
    await pages[1]!.fill('#box', 'hi ann');
    await pages[1]!.press('#box', 'Enter');
    for (const page of pages) {
      await page.waitForFunction(() => document.querySelectorAll('#log li').length === 2, null, { timeout: 10_000 });
      expect(await page.locator('#log li').allTextContents()).toEqual(['ann: hello from ann', 'bob: hi ann']);
    }
  });
});
