/**
 * Browser tests (test/browser/): Chromium through playwright-core, the demo built into dist/public,
 * a real `bin/embedded.ts` process that can be killed and started again on its port, screenshots in
 * test-results/browser/.
 *
 * Chromium is the system's (`/usr/bin/chromium`, Debian's `chromium` package; `CHROMIUM_PATH`
 * overrides it): playwright-core never downloads a browser.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type BrowserContext, type BrowserContextOptions, type Page } from 'playwright-core';
import { ROOT } from '../../tools/cluster.ts';
import { LocalProcess, httpStatus, waitFor } from '../../tools/processes.ts';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const SCREENSHOT_DIR = join(ROOT, 'test-results', 'browser');

export async function launchBrowser(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) throw new Error(`Chromium not found at ${CHROMIUM_PATH}: install it (Debian: apt-get install chromium) or set CHROMIUM_PATH`);
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/**
 * A page in its own context (its own storage: a second user, not a second tab) that records
 * uncaught page errors; `errors` is checked by the tests, a broken page must fail them.
 */
export interface TestPage {
  context: BrowserContext;
  page: Page;
  errors: string[];
  console: string[];
}

export async function newPage(browser: Browser, opts: BrowserContextOptions = {}): Promise<TestPage> {
  const context = await browser.newContext({ viewport: { width: 1100, height: 720 }, ...opts });
  const page = await context.newPage();
  const errors: string[] = [];
  const console: string[] = [];
  page.on('pageerror', (err) => errors.push(err.stack ?? err.message));
  page.on('console', (m) => {
    console.push(`${m.type()}: ${m.text()}`);
    if (console.length > 200) console.shift();
  });
  page.setDefaultTimeout(15_000);
  return { context, page, errors, console };
}

/** `test-results/browser/<name>.png` of the viewport. */
export async function screenshot(page: Page, name: string): Promise<string> {
  mkdirSync(SCREENSHOT_DIR, { recursive: true });
  const path = join(SCREENSHOT_DIR, `${name}.png`);
  await page.screenshot({ path, animations: 'disabled', caret: 'hide' });
  return path;
}

/** Screenshots of every page still open, `failed-<prefix>-<test>-<n>.png`, for a failing test. */
export async function failureScreenshots(prefix: string, test: string, pages: (Page | undefined)[]): Promise<void> {
  const slug = test.replace(/[^A-Za-z0-9]+/g, '-').slice(0, 60);
  await Promise.allSettled(pages.map((p, i) => (p && !p.isClosed() ? screenshot(p, `failed-${prefix}-${slug}-${i + 1}`) : undefined)));
}

/** Removes the screenshots of an earlier run of one test file: `<prefix>.png`, `<prefix>-*.png`, `failed-<prefix>-*.png`. */
export function clearScreenshots(prefix: string): void {
  if (!existsSync(SCREENSHOT_DIR)) return;
  const mine = new RegExp(`^(failed-)?${prefix}(-.*)?\\.png$`);
  for (const name of readdirSync(SCREENSHOT_DIR)) if (mine.test(name)) rmSync(join(SCREENSHOT_DIR, name), { force: true });
}

// ---- what the demo chat page shows (element ids of client/demo/index.html) ----

export interface ShownMessage {
  author: string;
  content: string;
  /** Sent by this page's user. */
  mine: boolean;
  /** Not confirmed by the server (sending…) or failed. */
  pending: boolean;
}

/** The messages the page shows in the current room, top to bottom. */
export function chatMessages(page: Page): Promise<ShownMessage[]> {
  return page.$$eval('#messages li.message', (items) =>
    items.map((li) => ({
      author: li.querySelector('.author')?.textContent ?? '',
      content: li.querySelector('.content')?.textContent ?? '',
      mine: li.classList.contains('mine'),
      pending: li.classList.contains('pending') || li.classList.contains('failed'),
    })),
  );
}

/** The names in the "Here now" list, as shown (`Ann (you)` for the page's own user). */
export function chatMembers(page: Page): Promise<string[]> {
  return page.$$eval('#members li', (items) => items.map((li) => li.querySelector('span:last-child')?.textContent ?? ''));
}

/** The connection state of the demo or the dashboard: `connecting`, `online`, `reconnecting`, `offline`. */
export const connState = (page: Page) => page.locator('#conn').getAttribute('data-state');

export const textOf = (page: Page, selector: string) => page.locator(selector).textContent();

/** Types `content` into the composer and presses Enter. */
export async function send(page: Page, content: string): Promise<void> {
  await page.locator('#text').fill(content);
  await page.locator('#text').press('Enter');
}

// ---- gateways ----

/** A gauge of a gateway's own /metrics (asked directly, not through nginx), e.g. `rt_gateway_connections`. */
export async function gatewayGauge(port: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const m = new RegExp(`^${name}(?:\\{[^}]*\\})? (\\d+)$`, 'm').exec(text);
  if (!m) throw new Error(`no ${name} in the /metrics of port ${port}`);
  return Number(m[1]);
}

// ---- the demo's build ----

const PUBLIC = join(ROOT, 'dist', 'public');
const BUILT = ['index.html', 'app.js', 'app.css', 'rt-client.js', 'dashboard.html', 'dashboard.js', 'dashboard.css'];

function newestSource(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs);
  }
  return newest;
}

function buildIsCurrent(): boolean {
  const outputs = BUILT.map((f) => join(PUBLIC, f));
  if (!outputs.every((f) => existsSync(f))) return false;
  return Math.min(...outputs.map((f) => statSync(f).mtimeMs)) >= newestSource(join(ROOT, 'client'));
}

/**
 * Runs `npm run build:client` when dist/public is missing or older than client/ (`npm test` builds
 * it first, in `pretest`; a direct `npx vitest run test/browser` may not have). Test files run in
 * parallel: a lock directory lets one of them build while the others wait for it.
 */
export async function ensureClientBuilt(timeoutMs = 120_000): Promise<void> {
  if (buildIsCurrent()) return;
  const lock = join(ROOT, 'dist', '.build-client.lock');
  mkdirSync(join(ROOT, 'dist'), { recursive: true });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      mkdirSync(lock);
      break;
    } catch {
      // Another test file builds: wait for it, then look again.
      await waitFor(() => !existsSync(lock) || undefined, { timeoutMs: Math.max(1, deadline - Date.now()), intervalMs: 200, what: `${lock} to go away (another build:client)` });
      if (buildIsCurrent()) return;
    }
  }
  try {
    if (buildIsCurrent()) return;
    const r = spawnSync('npm', ['run', 'build:client'], { cwd: ROOT, encoding: 'utf8', timeout: timeoutMs });
    if (r.status !== 0) throw new Error(`npm run build:client failed (${r.error?.message ?? `exit ${r.status}`}):\n${r.stdout}\n${r.stderr}`);
  } finally {
    rmdirSync(lock);
  }
}

// ---- a real embedded server process ----

/** `bin/embedded.ts` as its own process on a fixed port, so it can be killed and started again there. */
export class EmbeddedProcess {
  readonly proc: LocalProcess;
  readonly url: string;

  constructor(
    readonly port: number,
    env: Record<string, string> = {},
  ) {
    // Embedded: in-process bus and in-memory store, whatever the test run's environment says.
    const { NATS_URL: _nats, REDIS_URL: _redis, ...inherited } = process.env;
    this.url = `http://127.0.0.1:${port}`;
    this.proc = new LocalProcess({
      name: 'embedded',
      command: process.execPath,
      args: ['--import', 'tsx', 'bin/embedded.ts'],
      cwd: ROOT,
      env: { ...inherited, LOG_LEVEL: 'warn', ...env, PORT: String(port), HOST: '127.0.0.1' },
    });
  }

  get pid(): number | undefined {
    return this.proc.pid;
  }

  /** Starts it and resolves once /readyz answers 200. */
  async start(timeoutMs = 20_000): Promise<void> {
    await this.proc.start();
    try {
      await waitFor(async () => (await httpStatus(`${this.url}/readyz`, 1000)) === 200 || undefined, {
        timeoutMs,
        intervalMs: 50,
        what: `${this.url}/readyz to answer 200`,
        proc: this.proc,
      });
    } catch (err) {
      await this.proc.stop(0, 'SIGKILL');
      throw new Error(`the embedded server did not start: ${(err as Error).message}\n${this.proc.tail(30)}`);
    }
  }

  /** SIGKILL, as a crash; resolves once it has exited. */
  async kill(): Promise<void> {
    await this.proc.stop(0, 'SIGKILL');
  }

  async stop(): Promise<void> {
    await this.proc.stop(5000);
  }

  tail(lines = 30): string {
    return this.proc.tail(lines);
  }
}
