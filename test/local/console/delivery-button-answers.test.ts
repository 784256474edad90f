import type { Page, Route } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { cutUnfinished } from '../../../local/engine/redelivery.ts';
import { CHROMIUM, skipBrowser } from '../../support/browser.ts';
import { useConsolePage } from '../../support/console-browser.ts';
import { queueOwedDeliveries } from '../../support/gateway.ts';

/**
 * A conversation page's Redrive (and Resend) in Chromium, for every answer the gateway can give: the line says what
 * happened and the page ends with its button offered again, never left "Redriving…" and disabled. Before, a `held`
 * answer kept the button disabled whenever the page's own refresh after it did not replace it (the gateway gone just
 * after answering, or a live refresh under way that found the page unchanged): only a reload brought it back.
 */
if (skipBrowser) console.warn(`console delivery-button answers browser test SKIPPED: ${CHROMIUM} is missing`);

let id = '';

describe.skipIf(skipBrowser)("a conversation page's Redrive and Resend, whatever the gateway answers", () => {
  const opened = useConsolePage({
    seed: async (world) => {
      [id] = (await queueOwedDeliveries(world, 1)) as [string];
    },
    noPageErrors: true,
  });

  const flash = (page: Page) => page.locator('#flash');
  /** The page's button after the answer: offered again, as labelled before the press. */
  const expectOffered = async (page: Page, button: 'redrive' | 'resend') => {
    const offered = page.locator(`button#${button}`);
    await expect.poll(() => offered.innerText()).toBe(button === 'redrive' ? 'Redrive' : 'Resend');
    expect(await offered.isEnabled()).toBe(true);
  };
  /** Presses Redrive with the gateway's answer to it replaced by `answer`, then puts the real route back. */
  const redriveAnswered = async (page: Page, answer: (route: Route) => Promise<void>) => {
    const url = `**/local/deliveries/${id}/redrive`;
    await page.route(url, answer);
    await page.locator('button#redrive').click();
    await expect.poll(() => flash(page).getAttribute('class')).not.toBe('pending');
    await page.unroute(url);
  };

  it('held (its receiver paused): says so, and Redrive is offered again, also when the page could not be refreshed after', async () => {
    const { world, page } = opened;
    await page.goto(`${world.gateway.url}/console/conversations/${id}`);
    await page.locator('button#redrive').click();
    await expect
      .poll(() => flash(page).innerText())
      .toMatch(new RegExp(`^Redrive of ${id}: held \\(execution \\S+\\) — its receiver held it back`));
    expect(await flash(page).getAttribute('class')).toBe('bad');
    await expectOffered(page, 'redrive');

    // The gateway answers the redrive, then is gone before the page's refresh after it.
    await page.route('**/console/conversations/*?fragment=1', (route) => route.abort('connectionrefused'));
    await page.locator('button#redrive').click();
    await expect.poll(() => flash(page).innerText()).toMatch(new RegExp(`^Redrive of ${id}: held`));
    await expectOffered(page, 'redrive');
    await page.unroute('**/console/conversations/*?fragment=1');
  });

  it('skipped, not found, a 4xx, a 5xx, the gateway gone: each said, and Redrive offered again', async () => {
    const { world, page } = opened;
    await page.goto(`${world.gateway.url}/console/conversations/${id}`);
    const cases: [string, (route: Route) => Promise<void>, RegExp][] = [
      [
        'skipped',
        (route) => route.fulfill({ status: 200, json: cutUnfinished(id) }),
        new RegExp(`^Redrive of ${id}: skipped — a redelivery run the data folder cut is not finished yet`),
      ],
      [
        'not found (its failed-delivery file deleted meanwhile)',
        (route) =>
          route.fulfill({
            status: 404,
            json: { success: false, error: { code: 'NOT_FOUND', message: `no failed delivery of ${id} is stored` } },
          }),
        new RegExp(`^Redrive of ${id} failed: no failed delivery of ${id} is stored$`),
      ],
      [
        'a 4xx',
        (route) =>
          route.fulfill({ status: 400, json: { success: false, error: { code: 'BAD_REQUEST', message: 'no such' } } }),
        new RegExp(`^Redrive of ${id} failed: no such$`),
      ],
      [
        'a 5xx that is not JSON',
        (route) => route.fulfill({ status: 502, contentType: 'text/html', body: '<h1>Bad Gateway</h1>' }),
        new RegExp(`^Redrive of ${id} failed: HTTP 502$`),
      ],
      [
        'the gateway gone, or killed while it delivered (the browser cannot tell them apart)',
        (route) => route.abort('connectionreset'),
        new RegExp(
          `^Redrive of ${id} failed: the gateway did not answer \\(is npm start still running\\?\\); if it stopped during the redrive, it may have reached the receiver: once it runs again, its "recovered" line and this page show what became of it$`,
        ),
      ],
    ];
    for (const [, answer, said] of cases) {
      await redriveAnswered(page, answer);
      expect(await flash(page).innerText()).toMatch(said);
      expect(await flash(page).getAttribute('class')).toBe('bad');
      await expectOffered(page, 'redrive');
    }
  });

  it('delivered (its receiver resumed): said, and the page offers Resend; a Resend held is said and offered again', async () => {
    const { world, page } = opened;
    expect((await fetch(`${world.gateway.url}/local/endpoints/deal_analysis/resume`, { method: 'POST' })).status).toBe(
      200,
    );
    await page.goto(`${world.gateway.url}/console/conversations/${id}`);
    await page.locator('button#redrive').click();
    await expect.poll(() => flash(page).innerText()).toMatch(new RegExp(`^Redrive of ${id}: delivered`));
    expect(await flash(page).getAttribute('class')).toBe('ok');
    await expectOffered(page, 'resend');
    expect(await page.locator('button#redrive').count()).toBe(0);

    expect((await fetch(`${world.gateway.url}/local/endpoints/deal_analysis/pause`, { method: 'POST' })).status).toBe(
      200,
    );
    await page.reload();
    await page.route('**/console/conversations/*?fragment=1', (route) => route.abort('connectionrefused'));
    await page.locator('button#resend').click();
    await expect.poll(() => flash(page).innerText()).toMatch(new RegExp(`^Resend of ${id}: held`));
    await expectOffered(page, 'resend');
    await page.unroute('**/console/conversations/*?fragment=1');
  });
});
