import { describe, expect, it } from 'vitest';
import { CHROMIUM, skipBrowser, watchLivePolls } from '../../support/browser.ts';
import { useConsolePage } from '../../support/console-browser.ts';
import { SEED_REQUEST } from '../../support/gateway.ts';

/**
 * The Analytics page of a busy gateway (a conversation every second) was refreshed every second, each refresh its
 * three queries run again on the SQL engine, per open tab, for charts of hours. Now it is refreshed at most every
 * 10 s, and shows the latest conversations once that time is up. The page's clock is Playwright's: time is moved on,
 * never waited for.
 */
if (skipBrowser) console.warn(`console Analytics busy browser test SKIPPED: ${CHROMIUM} is missing`);

describe.skipIf(skipBrowser)('Analytics page of a busy gateway, in Chromium', () => {
  const opened = useConsolePage({ noPageErrors: true });

  it('is refreshed at most every 10 s, then shows every conversation', async () => {
    const { world, page } = opened;
    const polls = watchLivePolls(page);
    let refreshes = 0;
    page.on('request', (r) => {
      if (r.url().includes('/console/analytics?fragment=1')) refreshes++;
    });
    await page.clock.install();
    await page.goto(`${world.gateway.url}/console/analytics`);
    await page.clock.pauseAt(Date.now() + 60_000);
    expect(await page.locator('header #live').getAttribute('title')).toBe(
      'refreshes when a conversation arrives or changes, at most every 10 s',
    );

    for (let second = 0; second < 10; second++) {
      expect((await world.post(SEED_REQUEST)).status).toBe(200);
      await polls.advance(1);
    }
    expect(refreshes).toBeGreaterThanOrEqual(1);
    expect(refreshes).toBeLessThanOrEqual(2);

    const count = page.locator('main h1 .count');
    await polls.advance(11, async () => (await count.innerText()) === '10');
    expect(await count.innerText()).toBe('10');
  });
});
