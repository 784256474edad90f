import { describe, expect, it } from 'vitest';
import { CHROMIUM, skipBrowser } from '../../support/browser.ts';
import { useConsolePage } from '../../support/console-browser.ts';
import { queueOwedDeliveries } from '../../support/gateway.ts';

/**
 * A recover planned for a paused receiver said "2 … would be redriven" and, run, "Recovered deal_analysis: 2 redriven
 * (2 held)", though a paused receiver holds an operator's redrive too and nothing was attempted. Now the plan says
 * each would be held back until the receiver is resumed (paused since when), and the outcome that nothing was
 * attempted.
 */
if (skipBrowser) console.warn(`console recover-held browser test SKIPPED: ${CHROMIUM} is missing`);

describe.skipIf(skipBrowser)('a recover for a paused receiver, in Chromium', () => {
  const opened = useConsolePage({
    seed: async (world) => {
      await queueOwedDeliveries(world, 2);
    },
    noPageErrors: true,
  });

  it('says before it runs that each would be held, and after that nothing was attempted', async () => {
    const { world, page } = opened;
    await page.goto(`${world.gateway.url}/console/endpoints`);
    expect(await page.locator('#endpoints tr[data-type="deal_analysis"]').getAttribute('data-state')).toBe('paused');
    await page.locator('button[data-plan="deal_analysis"]').click();
    const confirm = page.locator('button[data-recover="deal_analysis"]');
    await confirm.waitFor({ state: 'visible' });
    expect(await page.locator('#flash').innerText()).toMatch(
      /^2 deal_analysis deliveries owed since \S+ would be redriven, oldest first; but deal_analysis is paused since \S+ \(\d+s ago\): each would be held back, nothing attempted, until it is resumed$/,
    );
    await confirm.click();
    await expect
      .poll(() => page.locator('#flash').innerText())
      .toMatch(
        /^Recover deal_analysis: nothing attempted, its receiver held back all 2 \(deal_analysis is paused since \S+ \(\d+s ago\): nothing is attempted until it is resumed\); they stay owed$/,
      );
    expect(await page.locator('#flash').getAttribute('class')).toBe('bad');
    expect(world.receiver.received).toHaveLength(0);
  });
});
