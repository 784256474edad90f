import { describe, expect, it } from 'vitest';
import { CHROMIUM, skipBrowser } from '../../support/browser.ts';
import { useConsolePage } from '../../support/console-browser.ts';
import { queueOwedDeliveries } from '../../support/gateway.ts';

/**
 * The console's list page with more deliveries owed than it lists (100): the newest 100 of them, their number, and
 * where the rest are; the conversations' table stays within reach below them.
 */
if (skipBrowser) console.warn(`console many-failed-deliveries browser test SKIPPED: ${CHROMIUM} is missing`);

const OWED = 103;
const owed: string[] = [];

describe.skipIf(skipBrowser)('many failed deliveries in Chromium', () => {
  const opened = useConsolePage({
    seed: async (world) => {
      owed.push(...(await queueOwedDeliveries(world, OWED)));
    },
  });

  it('lists the newest 100 of them with their number and where the others are, the conversations right after', async () => {
    const { world, page } = opened;
    await page.setViewportSize({ width: 1400, height: 900 });
    await page.goto(`${world.gateway.url}/console`);
    const section = page.locator('#failed-deliveries');
    expect(await section.locator('h2 .count').innerText()).toBe(String(OWED));
    const listed = await section.locator('tbody tr').evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-id')));
    expect(listed).toEqual(owed.toReversed().slice(0, 100));
    expect(await section.locator('p.more').innerText()).toBe(
      `Showing the newest 100 of ${OWED}. npx webhook-gateway deliveries list --limit N lists more; the Endpoints page recovers them by type.`,
    );
    expect(await section.locator('p.more a').getAttribute('href')).toBe('/console/endpoints');
    expect(await page.locator('#conversations tbody tr').count()).toBe(100);
  });
});
