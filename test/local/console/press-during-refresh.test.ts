import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { CHROMIUM, holdNextFragment, skipBrowser, useBrowserPage, watchLivePolls } from '../../support/browser.ts';
import { useHeldDeliverWorld } from '../../support/gateway.ts';

/**
 * A Redrive answered while the page's live refresh was under way: that refresh had fetched the page before the
 * redrive ended (its run in Deliver, or in Export), and the refresh the press asks for was dropped because one was
 * under way. The page said "delivered" in its message but showed the run as it was until the next change (a fresh
 * clone's CI run caught the redelivery's Export still "running" on it). Now the press's refresh runs after the one
 * under way. The page's clock is Playwright's and is not moved once the press is made: no poll comes to mend the page.
 */
if (skipBrowser) console.warn(`console press-during-refresh browser test SKIPPED: ${CHROMIUM} is missing`);

describe.skipIf(skipBrowser)('a press answered while the page is refreshed, in Chromium', () => {
  const setup = useHeldDeliverWorld();
  let page: Page;
  useBrowserPage(
    (opened) => {
      page = opened;
    },
    { noPageErrors: true },
  );

  it('shows what the press did once that refresh ended, without waiting for the next poll', async () => {
    const { world, held } = setup;
    const id = await setup.deadLettered();

    const polls = watchLivePolls(page);
    await page.clock.install();
    await page.goto(`${world.gateway.url}/console/conversations/${encodeURIComponent(id)}`);
    await page.clock.pauseAt(Date.now() + 60_000);
    await polls.advance(2);
    expect(await page.locator('#delivery-status').getAttribute('data-status')).toBe('failed');

    // The next fragment is fetched when asked (the page as it is then) but answered only when the test lets it.
    const fragment = await holdNextFragment(page, '/console/conversations/');

    held.holdNext();
    await page.locator('button#redrive').click();
    await held.reached;
    // The poll sees the redelivery under way and fetches the page: the run in Deliver.
    await page.clock.runFor(1000);
    await fragment.fetched;
    held.letGo();
    await page.locator('#flash:has-text("delivered")').waitFor();
    expect(await page.locator('#flash').innerText()).toMatch(
      new RegExp(`^Redrive of ${id}: delivered \\(execution ${id}-redelivery-2-`),
    );
    expect(world.receiver.received.map((r) => r.body.conversation_id)).toEqual([id]);
    fragment.answer();

    await page.locator('#delivery-status[data-status="delivered"]').waitFor();
    expect(await page.locator('#redelivery-under-way').count()).toBe(0);
    expect(
      await page
        .locator('section.execution[data-machine="redelivery"] svg g.state')
        .evaluateAll((gs) => gs.map((g) => `${g.getAttribute('data-state')}:${g.getAttribute('data-status')}`)),
    ).toEqual(['IsDeliveryOwed:succeeded', 'Deliver:succeeded', 'Export:succeeded', 'Redelivered:succeeded']);
    expect(await page.locator('button#redrive').count()).toBe(0);
    await page.unrouteAll();
  });
});
