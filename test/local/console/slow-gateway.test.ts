import { describe, expect, it } from 'vitest';
import { CHROMIUM, skipBrowser } from '../../support/browser.ts';
import { useConsolePage } from '../../support/console-browser.ts';

/**
 * On a slow gateway, pressing Plan or Pause on the Endpoints page showed nothing until the answer came, so an operator
 * could not tell whether the press was taken. Now each says at once what it is doing, as
 * Redrive and Recover did; the answer then replaces it.
 */
if (skipBrowser) console.warn(`console slow-gateway browser test SKIPPED: ${CHROMIUM} is missing`);

describe.skipIf(skipBrowser)('the Endpoints page on a slow gateway, in Chromium', () => {
  const opened = useConsolePage({ noPageErrors: true });

  /** Holds back every request to `pattern` until the returned function is called. */
  async function holdBack(pattern: string): Promise<() => void> {
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    await opened.page.route(pattern, async (route) => {
      await held;
      await route.continue();
    });
    return release;
  }

  it('says at once that Plan and Pause were pressed, then what they found', async () => {
    const { world, page } = opened;
    await page.goto(`${world.gateway.url}/console/endpoints`);
    const flash = page.locator('#flash');

    const planned = await holdBack('**/local/deliveries/plan**');
    await page.locator('input[name="since"][data-type="general"]').fill('2026-11-29');
    await page.locator('button[data-plan="general"]').click();
    await expect.poll(() => flash.innerText()).toBe('Planning general: counting the deliveries owed since 2026-11-29…');
    planned();
    await expect
      .poll(() => flash.innerText())
      .toBe('0 general deliveries owed since 2026-11-29 would be redriven, oldest first');

    const paused = await holdBack('**/local/endpoints/general/pause');
    await page.locator('button[data-endpoint-action][data-type="general"]').click();
    await expect.poll(() => flash.innerText()).toBe('Pausing general…');
    paused();
    await expect.poll(() => flash.innerText()).toBe('general is paused');
  });
});
