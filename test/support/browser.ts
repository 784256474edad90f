import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type BrowserContext, chromium, type Page } from 'playwright-core';
import { afterAll, beforeAll, expect } from 'vitest';

/**
 * Debian's Chromium driven by playwright-core, for the console's browser tests. They skip only on a developer
 * machine without /usr/bin/chromium; in CI (CI set) they must run.
 */
export const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
export const skipBrowser = !haveChromium && !process.env.CI;

export interface Browser {
  context: BrowserContext;
  page: Page;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<Browser> {
  if (!haveChromium)
    throw new Error(`${CHROMIUM} is missing: CI must install Chromium (apt-get install -y chromium) before npm test`);
  const userDataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-chromium-'));
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    timeout: 15_000,
  });
  const page = context.pages()[0] ?? (await context.newPage());
  return {
    context,
    page,
    async close() {
      await context.close();
      await rm(userDataDir, { recursive: true, force: true });
    },
  };
}

/** One plain HTTP request (any Host header, any method), its status, body and headers. */
export function rawGet(
  url: string,
  headers: Record<string, string> = {},
  method = 'GET',
): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * Inside a `describe`: Chromium launched before its tests (its page given to `opened`, 15 s per action: a loaded
 * machine answers late) and closed after them. `noPageErrors`: after them, no script of the page threw an uncaught
 * error.
 */
export function useBrowserPage(opened: (page: Page) => void, options: { noPageErrors?: boolean } = {}): void {
  let browser: Browser | undefined;
  const errors: string[] = [];
  beforeAll(async () => {
    browser = await launchBrowser();
    browser.page.setDefaultTimeout(15_000);
    if (options.noPageErrors) browser.page.on('pageerror', (e) => errors.push(e.message));
    opened(browser.page);
  });
  afterAll(async () => {
    await browser?.close();
    expect(errors).toEqual([]);
  });
}

/**
 * The console's live refresh as a page with Playwright's clock installed runs it: its poll (`GET /console/api/version`)
 * and the fragment it fetches when the poll (or a button) finds a change (`?fragment=1`).
 */
export interface LivePolls {
  /** Polls asked since the watch began or the last reset. */
  readonly asked: number;
  reset(): void;
  /**
   * Moves the page's clock on by `seconds`, one second at a time. After each second, every poll asked and every
   * fragment fetched is answered (or refused) and the page's reaction to it run, waited for in real time (a loaded
   * machine answers late), before `until` is asked or the clock moves again; stops early once `until` holds. The
   * seconds moved. A test that holds a poll's answer back moves the clock itself.
   */
  advance(seconds: number, until?: () => Promise<boolean>): Promise<number>;
}

export function watchLivePolls(page: Page): LivePolls {
  let asked = 0;
  /** Live requests asked in all, and those not yet answered or refused. */
  let requested = 0;
  let underWay = 0;
  const isPoll = (url: string) => url.includes('/console/api/version');
  const isLive = (url: string) => isPoll(url) || new URL(url).searchParams.get('fragment') === '1';
  page.on('request', (r) => {
    if (isPoll(r.url())) asked++;
    if (!isLive(r.url())) return;
    requested++;
    underWay++;
  });
  const onEnded = (r: { url(): string }) => {
    if (isLive(r.url())) underWay--;
  };
  page.on('requestfinished', onEnded);
  page.on('requestfailed', onEnded);
  /**
   * Until no live request is under way through two round trips to the page: an answer is handled by the page's script
   * after the request ends (the poll's answer may ask for a fragment, the fragment is swapped in), between them.
   */
  const settle = async () => {
    for (let quiet = 0; quiet < 2; ) {
      await expect.poll(() => underWay, { timeout: 20_000 }).toBe(0);
      const before = requested;
      await page.evaluate(() => 0);
      quiet = requested === before ? quiet + 1 : 0;
    }
  };
  return {
    get asked() {
      return asked;
    },
    reset() {
      asked = 0;
    },
    async advance(seconds, until) {
      for (let i = 0; i < seconds; i++) {
        const before = requested;
        await page.clock.runFor(1000);
        await page.evaluate(() => 0); // brings here the event of what that second asked, if anything
        if (requested !== before || underWay > 0) await settle();
        if (until && (await until())) return i + 1;
      }
      return seconds;
    },
  };
}

/**
 * The next fragment of a console page under `pagePath` (a conversation's: `/console/conversations/`) the page asks for
 * (a live refresh or a press's) is fetched from the gateway when asked (the page as it is then), but given to the page
 * only once `answer()` is called; `fetched` settles when it was fetched. The fragments after it go through.
 * `page.unrouteAll()` ends it.
 */
export async function holdNextFragment(
  page: Page,
  pagePath: string,
): Promise<{ fetched: Promise<void>; answer(): void }> {
  let fetched!: () => void;
  const fragmentFetched = new Promise<void>((resolve) => {
    fetched = resolve;
  });
  let answer!: () => void;
  const answered = new Promise<void>((resolve) => {
    answer = resolve;
  });
  let first = true;
  await page.route(
    (url) => url.pathname.startsWith(pagePath) && url.searchParams.get('fragment') === '1',
    async (route) => {
      if (!first) return route.continue();
      first = false;
      const response = await route.fetch();
      fetched();
      await answered;
      await route.fulfill({ response });
    },
  );
  return { fetched: fragmentFetched, answer };
}
