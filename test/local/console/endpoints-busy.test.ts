import { describe, expect, it } from 'vitest';
import { CHROMIUM, rawGet, skipBrowser, watchLivePolls } from '../../support/browser.ts';
import { useConsolePage } from '../../support/console-browser.ts';
import { SEED_REQUEST } from '../../support/gateway.ts';

/**
 * The Endpoints page of a busy gateway was replaced about once a second: every failed delivery rewrites its receiver's
 * file (its failure streak) and a failed-delivery file (its queue), and any such write refreshed the page, one that
 * changed nothing it shows too. Now it is refreshed only when what its rows show changed, and at most every 5 s; the last
 * change is shown once that time is up. The page's clock is Playwright's: time is moved on, never waited for.
 */
if (skipBrowser) console.warn(`console Endpoints busy browser test SKIPPED: ${CHROMIUM} is missing`);

describe.skipIf(skipBrowser)('Endpoints page of a busy gateway, in Chromium', () => {
  const opened = useConsolePage({ noPageErrors: true });

  it('is refreshed when what it shows changes, at most every 5 s, and then shows the latest', async () => {
    const { world, page } = opened;
    const polls = watchLivePolls(page);
    let refreshes = 0;
    page.on('request', (r) => {
      if (r.url().includes('/console/endpoints?fragment=1')) refreshes++;
    });
    await page.clock.install();
    await page.goto(`${world.gateway.url}/console/endpoints`);
    await page.clock.pauseAt(Date.now() + 60_000);
    await polls.advance(2);
    expect(refreshes).toBe(0);

    // A receiver's file written again with nothing the page shows changed (resumed while it runs): not refreshed.
    expect((await rawGet(`${world.gateway.url}/local/endpoints/general/resume`, {}, 'POST')).status).toBe(200);
    await polls.advance(3);
    expect(refreshes).toBe(0);

    // A receiver refusing a delivery every second for 10 s, each one a longer failure streak and one more queued:
    // refreshed at most every 5 s, not every second.
    for (let second = 0; second < 10; second++) {
      world.receiver.reply(400);
      const answer = await world.post(SEED_REQUEST);
      expect(answer.body.tracking.delivery_status).toBe('failed');
      await polls.advance(1);
    }
    expect(refreshes).toBeGreaterThanOrEqual(1);
    expect(refreshes).toBeLessThanOrEqual(3);

    // The last one is shown once the 5 s are up.
    const queued = page.locator('#endpoints tr[data-type="deal_analysis"] td.queued');
    await polls.advance(6, async () => (await queued.innerText()) === '10');
    expect(await queued.innerText()).toBe('10');
  });
});
