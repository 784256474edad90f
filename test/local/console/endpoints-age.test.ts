import { describe, expect, it } from 'vitest';
import { CHROMIUM, rawGet, skipBrowser, watchLivePolls } from '../../support/browser.ts';
import { useConsolePage } from '../../support/console-browser.ts';

/**
 * The Endpoints page says since when a receiver is paused, and how long ago; but it is refreshed only when a receiver
 * or its deliveries change, so a page left open said "(1s ago)" an hour later. Now the age goes on as the page's
 * clock does. The clock is Playwright's: time is moved on, never waited for.
 */
if (skipBrowser) console.warn(`console Endpoints age browser test SKIPPED: ${CHROMIUM} is missing`);

describe.skipIf(skipBrowser)('the age of a pause on an Endpoints page left open, in Chromium', () => {
  const opened = useConsolePage({ noPageErrors: true });

  it('goes on while nothing changes', async () => {
    const { world, page } = opened;
    const polls = watchLivePolls(page);
    await page.clock.install();
    expect((await rawGet(`${world.gateway.url}/local/endpoints/general/pause`, {}, 'POST')).status).toBe(200);
    await page.goto(`${world.gateway.url}/console/endpoints`);
    await page.clock.pauseAt(Date.now() + 1_000);
    const since = page.locator('#endpoints tr[data-type="general"] small.state-since');
    const pausedAt = await since.getAttribute('data-age-of');
    expect(await since.innerText()).toMatch(new RegExp(`^since ${pausedAt} \\(\\d+s ago\\)$`));
    await page.clock.fastForward(3 * 3_600_000);
    await polls.advance(2);
    expect(await since.innerText()).toBe(`since ${pausedAt} (3h ago)`);
  });
});
