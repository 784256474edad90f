import { describe, expect, it } from 'vitest';
import { CHROMIUM, rawGet, skipBrowser, watchLivePolls } from '../../support/browser.ts';
import { useConsolePage } from '../../support/console-browser.ts';
import { failOneDelivery } from '../../support/gateway.ts';

/**
 * The Endpoints page had no live indicator and was not refreshed: a receiver paused from a terminal, or a delivery
 * queued meanwhile, was not shown until a reload, and a stopped gateway was not said. Now its header says "live",
 * "gateway not reachable" (asking less and less often) as the other pages do, and the page is refreshed when a
 * receiver or the failed deliveries change; a recover already planned stays offered. The page's clock is
 * Playwright's: time is moved on, never waited for.
 */
if (skipBrowser) console.warn(`console Endpoints live browser test SKIPPED: ${CHROMIUM} is missing`);

describe.skipIf(skipBrowser)('Endpoints page, live, in Chromium', () => {
  const opened = useConsolePage({ seed: failOneDelivery, noPageErrors: true });

  it('says live, shows a change made elsewhere without a reload, keeps a planned recover, and says when the gateway is gone', async () => {
    const { world, page } = opened;
    const polls = watchLivePolls(page);
    const advance = polls.advance;

    await page.clock.install();
    await page.goto(`${world.gateway.url}/console/endpoints`);
    await page.clock.pauseAt(Date.now() + 60_000);
    await advance(2);
    expect(await page.locator('header #live').innerText()).toBe('live');
    expect(await page.locator('header #live').getAttribute('class')).toBe('live ok');
    // What it follows, as it does (it said "refreshes when conversations arrive", which this page never did).
    expect(await page.locator('header #live').getAttribute('title')).toBe(
      'refreshes when a receiver or its queued deliveries change, at most every 5 s',
    );
    const url = page.url();

    // Planned here: Recover 1 is offered.
    await page.locator('button[data-plan="deal_analysis"]').click();
    const confirm = page.locator('button[data-recover="deal_analysis"]');
    await confirm.waitFor({ state: 'visible' });
    expect(await confirm.innerText()).toBe('Recover 1');

    // Paused from elsewhere (a terminal, another tab): shown within a second or two, the page not reloaded.
    const general = page.locator('#endpoints tr[data-type="general"]');
    expect(await general.getAttribute('data-state')).toBe('healthy');
    expect((await rawGet(`${world.gateway.url}/local/endpoints/general/pause`, {}, 'POST')).status).toBe(200);
    await advance(3, async () => (await general.getAttribute('data-state')) === 'paused');
    expect(await general.getAttribute('data-state')).toBe('paused');
    expect(page.url()).toBe(url);
    // The plan made before the refresh is still offered, as planned.
    expect(await confirm.isVisible()).toBe(true);
    expect(await confirm.innerText()).toBe('Recover 1');

    // The gateway stopped: said so, and asked less often (1, 2, 4 … s), the page kept.
    await world.gateway.close();
    await advance(5, async () => (await page.locator('#live').innerText()) === 'gateway not reachable');
    expect(await page.locator('#live').innerText()).toBe('gateway not reachable');
    polls.reset();
    await advance(30);
    expect(polls.asked).toBeLessThanOrEqual(5);
    expect(await general.getAttribute('data-state')).toBe('paused');
  });
});
