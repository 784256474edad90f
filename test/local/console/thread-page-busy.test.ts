import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, skipBrowser, useBrowserPage, watchLivePolls } from '../../support/browser.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * A thread's page on a busy gateway was fetched again every second: it follows the list's version, which every
 * conversation of any source or thread changes, and each fetch reads the thread's turns again (up to 100 histories).
 * Now at most every 5 s, as the Conversations list. The page's clock is Playwright's: time is moved on, never waited
 * for.
 */
if (skipBrowser) console.warn(`console thread page busy browser test SKIPPED: ${CHROMIUM} is missing`);

let world: TestWorld;
const THREAD = 'busy-thread';
const turn = { ...SEED_REQUEST, query: 'Top deals this quarter?', thread_id: THREAD };

beforeAll(async () => {
  world = await startWorld();
  expect((await world.post(turn)).status).toBe(200);
});
afterAll(async () => {
  await world?.close();
});

describe.skipIf(skipBrowser)("A thread's page on a busy gateway, in Chromium", () => {
  let page: Page;
  useBrowserPage(
    (opened) => {
      page = opened;
    },
    { noPageErrors: true },
  );

  it('is fetched at most every 5 s, and shows a new turn of its thread once they are up', async () => {
    const polls = watchLivePolls(page);
    let fetched = 0;
    page.on('request', (r) => {
      if (r.url().includes('fragment=1')) fetched++;
    });
    await page.clock.install();
    await page.goto(`${world.gateway.url}/console/threads/testing_system/${THREAD}`);
    await page.clock.pauseAt(Date.now() + 60_000);
    const turns = page.locator('ol.thread > li');
    expect(await turns.count()).toBe(1);

    // A conversation of no thread every second for 10 s: before, the page was fetched again at each (10 times).
    for (let second = 0; second < 10; second++) {
      expect((await world.post(SEED_REQUEST)).status).toBe(200);
      await polls.advance(1);
    }
    expect(fetched).toBeGreaterThanOrEqual(1);
    expect(fetched).toBeLessThanOrEqual(3);

    // A turn of its thread: shown once the 5 s are up.
    expect((await world.post({ ...turn, query: 'Which of those are at risk?' })).status).toBe(200);
    await polls.advance(6, async () => (await turns.count()) === 2);
    expect(await turns.count()).toBe(2);
    expect(await page.locator('#live').getAttribute('title')).toBe(
      'refreshes when a conversation arrives or changes, at most every 5 s',
    );
  });
});
