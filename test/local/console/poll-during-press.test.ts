import { describe, expect, it } from 'vitest';
import { CHROMIUM, holdNextFragment, rawGet, skipBrowser, watchLivePolls } from '../../support/browser.ts';
import { useConsolePage } from '../../support/console-browser.ts';
import { SEED_REQUEST } from '../../support/gateway.ts';

/**
 * A change the live poll saw while a press's refresh was under way: the poll's own refresh is dropped for it, but it
 * took the change as shown, while that refresh may have fetched the page before the change. The page then left it out
 * until the next change (a Resend from another tab, a conversation that arrived: not shown). Now the next poll asks
 * again. The page's clock is Playwright's: time is moved on, never waited for.
 */
if (skipBrowser) console.warn(`console poll-during-press browser test SKIPPED: ${CHROMIUM} is missing`);

describe.skipIf(skipBrowser)('a change seen while a press’s refresh is under way, in Chromium', () => {
  const opened = useConsolePage({ noPageErrors: true });

  it('is shown by the next poll', async () => {
    const { world, page } = opened;
    const id: string = (await world.post(SEED_REQUEST)).body.conversation_id;
    await world.gateway.idle();
    const polls = watchLivePolls(page);
    await page.clock.install();
    await page.goto(`${world.gateway.url}/console/conversations/${encodeURIComponent(id)}`);
    await page.clock.pauseAt(Date.now() + 60_000);
    await polls.advance(2);
    const rows = page.locator('#attempts tbody tr');
    expect(await rows.count()).toBe(1);

    // The press's refresh: its fragment fetched when asked (the Resend's attempt in it), answered when the test lets it.
    const held = await holdNextFragment(page, '/console/conversations/');
    await page.locator('button#resend').click();
    await held.fetched;
    expect(await page.locator('#flash').innerText()).toMatch(new RegExp(`^Resend of ${id}: delivered`));

    // Meanwhile another Resend (another tab, the CLI): the poll sees it while the press's refresh is under way.
    expect((await rawGet(`${world.gateway.url}/local/deliveries/${id}/resend`, {}, 'POST')).status).toBe(200);
    const polled = page.waitForResponse((r) => r.url().includes('/console/api/version'));
    await page.clock.runFor(1000);
    await (await polled).finished();
    await page.evaluate(() => 0); // the poll's answer handled: its refresh dropped for the press's
    held.answer();
    await expect.poll(() => rows.count()).toBe(2);

    // Before: no poll refreshed the page again, the third attempt left out until the next change.
    await polls.advance(3, async () => (await rows.count()) === 3);
    expect(await rows.allInnerTexts()).toEqual([
      expect.stringMatching(/^1\s+\S+\s+workflow\s+delivered\s+200/),
      expect.stringMatching(/^2\s+\S+\s+resend\s+delivered\s+200/),
      expect.stringMatching(/^3\s+\S+\s+resend\s+delivered\s+200/),
    ]);
    await page.unrouteAll();
  });
});
