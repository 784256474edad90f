import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, skipBrowser, useBrowserPage } from '../../support/browser.ts';
import { startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * On a slow gateway, pressing Plan or Pause on the Endpoints page showed nothing until the answer came, so an operator
 * could not tell whether the press was taken. Now each says at once what it is doing, as
 * Redrive and Recover did; the answer then replaces it.
 */
if (skipBrowser) console.warn(`console slow-gateway browser test SKIPPED: ${CHROMIUM} is missing`);

let world: TestWorld;

beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});

describe.skipIf(skipBrowser)('the Endpoints page on a slow gateway, in Chromium', () => {
  let page: Page;
  useBrowserPage(
    (opened) => {
      page = opened;
    },
    { noPageErrors: true },
  );

  /** Holds back every request to `pattern` until the returned function is called. */
  async function holdBack(pattern: string): Promise<() => void> {
    let release = () => {};
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    await page.route(pattern, async (route) => {
      await held;
      await route.continue();
    });
    return release;
  }

  it('says at once that Plan and Pause were pressed, then what they found', async () => {
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
