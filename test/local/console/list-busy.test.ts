import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, skipBrowser, useBrowserPage, watchLivePolls } from '../../support/browser.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * The Conversations list of a busy gateway was replaced every second: each conversation arriving or changing
 * refreshed it, one it does not list too. Now it is fetched again at most every 5 s, as the Endpoints page is, and
 * left as it is when what it shows did not change (what the reader selected stays). The page's clock is Playwright's:
 * time is moved on, never waited for.
 */
if (skipBrowser) console.warn(`console list busy browser test SKIPPED: ${CHROMIUM} is missing`);

let world: TestWorld;
const lead = { ...SEED_REQUEST, webhook_type: 'lead_analysis' };

beforeAll(async () => {
  world = await startWorld();
  expect((await world.post(lead)).status).toBe(200);
});
afterAll(async () => {
  await world?.close();
});

describe.skipIf(skipBrowser)('Conversations list of a busy gateway, in Chromium', () => {
  let page: Page;
  useBrowserPage(
    (opened) => {
      page = opened;
    },
    { noPageErrors: true },
  );

  it('is fetched at most every 5 s, and swapped only when what it lists changed', async () => {
    const polls = watchLivePolls(page);
    let fetched = 0;
    let answered = 0;
    const isRefresh = (url: string) => url.includes('fragment=1');
    page.on('request', (r) => {
      if (isRefresh(r.url())) fetched++;
    });
    page.on('requestfinished', (r) => {
      if (isRefresh(r.url())) answered++;
    });
    // Its history saved (a moment after its answer): the page lists it.
    await expect
      .poll(
        async () =>
          ((await (await fetch(`${world.gateway.url}/console/api/conversations?type=lead_analysis`)).json()) as any)
            .conversations.length,
      )
      .toBe(1);
    await page.clock.install();
    await page.goto(`${world.gateway.url}/console?type=lead_analysis`);
    await page.clock.pauseAt(Date.now() + 60_000);
    const rows = page.locator('#conversations tbody tr');
    expect(await rows.count()).toBe(1);
    // What the reader is at: a mark on the list, gone only if the list is replaced.
    await page.locator('#conversations').evaluate((el) => el.setAttribute('data-mark', 'kept'));

    // A conversation of another type every second for 10 s: the list is asked for at most every 5 s, and never
    // replaced, since none of them is of the list.
    for (let second = 0; second < 10; second++) {
      expect((await world.post(SEED_REQUEST)).status).toBe(200);
      await polls.advance(1);
    }
    await expect.poll(() => answered).toBe(fetched);
    expect(fetched).toBeGreaterThanOrEqual(1);
    expect(fetched).toBeLessThanOrEqual(3);
    expect(await page.locator('#conversations[data-mark="kept"]').count()).toBe(1);

    // One it lists: shown once the 5 s are up.
    expect((await world.post(lead)).status).toBe(200);
    await polls.advance(6, async () => (await rows.count()) === 2);
    expect(await rows.count()).toBe(2);
    expect(await page.locator('#live').getAttribute('title')).toBe(
      'refreshes when a conversation arrives or changes, at most every 5 s',
    );
  });
});
