import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { CHROMIUM, skipBrowser } from '../../support/browser.ts';
import { useConsolePage } from '../../support/console-browser.ts';
import { failOneDelivery } from '../../support/gateway.ts';

/**
 * The Endpoints page's Pause, Resume and Recover, in Chromium, when the gateway took the press and was cut before it
 * answered (killed, a crash: the browser cannot tell it from a gateway stopped before): they said only "the gateway did
 * not answer", as though nothing had been done. Now each says what may have been done and what shows it once the
 * gateway runs again (docs/operations.md, "After a crash"), as the conversation page's Redrive does.
 */
if (skipBrowser) console.warn(`console endpoint-buttons-cut browser test SKIPPED: ${CHROMIUM} is missing`);

const UNANSWERED = 'the gateway did not answer \\(is npm start still running\\?\\)';

describe.skipIf(skipBrowser)('the Endpoints page buttons when the gateway is cut under them, in Chromium', () => {
  const opened = useConsolePage({ seed: failOneDelivery, noPageErrors: true });
  const flash = (page: Page) => page.locator('#flash');
  /** Presses `button` with the gateway's answer to `url` cut; the line it leaves. */
  const pressCut = async (page: Page, url: string, button: string) => {
    await page.route(url, (route) => route.abort('connectionreset'));
    await page.getByRole('button', { name: button, exact: true }).click();
    await expect.poll(() => flash(page).getAttribute('class')).toBe('bad');
    await page.unroute(url);
    return flash(page).innerText();
  };

  it('Pause and Resume: the change may or may not have been made, and where to see which', async () => {
    const { world, page } = opened;
    await page.goto(`${world.gateway.url}/console/endpoints`);
    expect(await pressCut(page, '**/local/endpoints/general/pause', 'Pause general')).toMatch(
      new RegExp(
        `^pause general failed: ${UNANSWERED}; if it stopped during the pause, the pause may or may not have been made: once it runs again, this page \\(or "endpoints list"\\) shows whether general is paused$`,
      ),
    );
    await page.getByRole('button', { name: 'Pause general', exact: true }).click();
    await page.getByRole('button', { name: 'Resume general', exact: true }).waitFor();
    expect(await pressCut(page, '**/local/endpoints/general/resume', 'Resume general')).toMatch(
      new RegExp(`^resume general failed: ${UNANSWERED}; if it stopped during the resume, the resume may or may not`),
    );
  });

  it('Recover: some deliveries may have reached the receiver; what the restart and a new plan show', async () => {
    const { world, page } = opened;
    await page.goto(`${world.gateway.url}/console/endpoints`);
    await page.locator('button[data-plan="deal_analysis"]').click();
    await page.locator('#flash:has-text("would be redriven")').waitFor();
    expect(await pressCut(page, '**/local/deliveries/redrive?**', 'Recover 1 deal_analysis')).toMatch(
      new RegExp(
        `^Recover deal_analysis failed: ${UNANSWERED}; if it stopped during the recover, some of them may have reached the receiver: once it runs again, its "recovered" line says what became of them, and a new plan what is still owed$`,
      ),
    );
  });
});
