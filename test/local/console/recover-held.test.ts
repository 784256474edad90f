import { describe, expect, it } from 'vitest';
import { CHROMIUM, skipBrowser } from '../../support/browser.ts';
import { useConsolePage } from '../../support/console-browser.ts';
import { queueOwedDeliveries } from '../../support/gateway.ts';

/**
 * A recover planned for a paused receiver said "2 … would be redriven" and, run, "Recovered deal_analysis: 2 redriven
 * (2 held)", though a paused receiver holds an operator's redrive too and nothing was attempted. Now the plan says
 * each would be held back until the receiver is resumed (paused since when), and the outcome that nothing was
 * attempted. The plan names the conversations it would redrive, the oldest five, and how to list them all.
 */
if (skipBrowser) console.warn(`console recover-held browser test SKIPPED: ${CHROMIUM} is missing`);

describe.skipIf(skipBrowser)('a recover for a paused receiver, in Chromium', () => {
  let owed: string[] = [];
  const opened = useConsolePage({
    seed: async (world) => {
      owed = await queueOwedDeliveries(world, 7);
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
    // Which conversations, the oldest five, and how to list the rest (before: only how many).
    const since = await page.getByRole('textbox', { name: 'since, for deal_analysis', exact: true }).inputValue();
    const named = owed
      .slice(0, 5)
      .map((id) => `${id} (pending, 0 tries)`)
      .join(', ');
    const plan = await page.locator('#flash').innerText();
    expect(plan).toMatch(/ \(\d+s ago\): each would be held back, nothing attempted, until it is resumed$/);
    expect(plan.replace(/ \(\d+s ago\)/, '')).toBe(
      `7 deal_analysis deliveries owed since ${since} would be redriven, oldest first: ${named} and 2 more (npx webhook-gateway deliveries redrive --all --type deal_analysis --since ${since} --dry-run --limit 7 lists them all); but deal_analysis is paused since ${plan.match(/paused since (\S+)/)![1]}: each would be held back, nothing attempted, until it is resumed`,
    );
    await confirm.click();
    await expect
      .poll(() => page.locator('#flash').innerText())
      .toMatch(
        /^Recover deal_analysis: nothing attempted, its receiver held back all 7 \(deal_analysis is paused since \S+ \(\d+s ago\): nothing is attempted until it is resumed\); they stay owed$/,
      );
    expect(await page.locator('#flash').getAttribute('class')).toBe('bad');
    expect(world.receiver.received).toHaveLength(0);
  });
});
