import { describe, expect, it } from 'vitest';
import { CHROMIUM, skipBrowser } from '../../support/browser.ts';
import { useConsolePage } from '../../support/console-browser.ts';

/**
 * A console page open on a gateway that took its requests but never answered (hung, stopped in a debugger, its disk
 * stuck) said "live" for ever: the live poll waited on its ask with no end, so it neither asked again nor said
 * anything, over a page that no longer changed. Now an ask unanswered for 10 s counts as the gateway not answering:
 * "gateway not reachable", since when, and "live" again once it answers. The page's clock is Playwright's.
 */
if (skipBrowser) console.warn(`console hung-gateway browser test SKIPPED: ${CHROMIUM} is missing`);

describe.skipIf(skipBrowser)('a console page open on a gateway that stops answering, in Chromium', () => {
  const opened = useConsolePage({ noPageErrors: true });

  it('says it is not reachable once an ask goes unanswered for 10 s, and live again once it answers', async () => {
    const { world, page } = opened;
    await page.clock.install();
    await page.goto(`${world.gateway.url}/console/endpoints`);
    // Paused a moment ahead, no further: a jump past an ask's 10 s would give up an ask still under way, as a
    // loaded machine left one (the page said "gateway not reachable" before any ask was held).
    await page.clock.pauseAt(Date.now() + 1_000);
    const live = page.locator('#live');
    const pageNow = () => page.evaluate(() => Date.now());

    // Every ask taken and never answered; the first one's time on the page's clock (paused between steps, so at
    // most the last step's second after it was sent).
    let heldAt: number | undefined;
    const held = new Promise<void>((resolve) => {
      void page.route('**/console/api/version**', async () => {
        heldAt ??= await pageNow();
        resolve();
      });
    });
    for (let step = 0; step < 30 && heldAt === undefined; step++) {
      await page.clock.runFor(1_000);
      // Real time for the ask to reach the route (an ask sent before the route was set may still be answered).
      await Promise.race([held, new Promise((resolve) => setTimeout(resolve, 2_000))]);
    }
    expect(heldAt).toBeDefined();
    await page.clock.runFor(heldAt! + 8_000 - (await pageNow()));
    expect(await live.innerText()).toBe('live');
    await page.clock.runFor(heldAt! + 10_100 - (await pageNow()));
    await page.locator('#live:text-is("gateway not reachable")').waitFor();
    expect(await live.getAttribute('title')).toMatch(
      /^the gateway did not answer since \d\d:\d\d:\d\d: the page shows what it had then$/,
    );

    // Answering again.
    await page.unroute('**/console/api/version**');
    for (let second = 0; second < 15 && (await live.innerText()) !== 'live'; second++) {
      await page.clock.runFor(1_000);
      await page.evaluate(() => 0);
    }
    await page.locator('#live:text-is("live")').waitFor();
  });
});
