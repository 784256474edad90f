import { describe, expect, it } from 'vitest';
import { CHROMIUM, skipBrowser } from '../../support/browser.ts';
import { useConsolePage } from '../../support/console-browser.ts';
import { SEED_REQUEST } from '../../support/gateway.ts';

/**
 * The Endpoints page in a laptop's window (1,280 × 800), in Chromium, once a receiver has failed and another has
 * delivered: its three times (last success, failing since, the last error's) each took a whole unbroken line, the
 * table grew past the window and each receiver's Pause was cut in half at the page's edge, the rest scrolled out of
 * sight. Each time now wraps after its date, and every action is whole in sight. The list's failed deliveries, a
 * receiver's long message beside them, cut each next attempt after its month ("2026-12-" / "03T…"): now after its date.
 */
if (skipBrowser) console.warn(`console endpoints-laptop browser test SKIPPED: ${CHROMIUM} is missing`);

/** A time as the page gives it to a reader or a copy: whole, however it wraps. */
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describe.skipIf(skipBrowser)('the Endpoints page in a 1,280 px window, in Chromium', () => {
  const opened = useConsolePage({
    noPageErrors: true,
    seed: async (world) => {
      // deal_analysis failing (its streak, since when, its last error and when); data_analysis delivered (last success).
      const down = { status: 503, body: 'down for maintenance' };
      world.receiver.reply(down, down, down, down, down, down);
      expect((await world.post(SEED_REQUEST)).body.tracking.delivery_status).toBe('retrying');
      world.receiver.reset();
      const data = await world.post({ ...SEED_REQUEST, query: 'What is the churn trend in the data?' });
      expect(data.body.tracking).toMatchObject({ webhook_type: 'data_analysis', delivery_status: 'delivered' });
    },
  });

  it('shows every receiver’s action whole, nothing scrolled sideways', async () => {
    const { world, page } = opened;
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.goto(`${world.gateway.url}/console/endpoints`);
    const deal = page.locator('#endpoints tr[data-type="deal_analysis"]');
    expect(await deal.locator('td[data-label="failing since"]').innerText()).toMatch(ISO);
    expect(
      await page.locator('#endpoints tr[data-type="data_analysis"] td[data-label="last success"]').innerText(),
    ).toMatch(ISO);
    expect(await deal.locator('td.last-error').innerText()).toMatch(
      /^HTTP 503: down for maintenance\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
    );
    expect(await page.locator('main').evaluate((main) => main.scrollWidth - main.clientWidth)).toBe(0);
    for (const button of await page.locator('#endpoints td.action button').all()) {
      const box = await button.boundingBox();
      expect(box!.x + box!.width).toBeLessThanOrEqual(1280 - 20);
    }
  });
});

describe.skipIf(skipBrowser)('the list’s failed deliveries in a 1,280 px window, in Chromium', () => {
  const opened = useConsolePage({
    noPageErrors: true,
    seed: async (world) => {
      // A last error of the most the list shows (80 characters), as a receiver's message often is.
      const down = {
        status: 503,
        body: 'the CRM is being migrated to a new cluster, please try again later (ticket 4711)',
      };
      world.receiver.reply(down, down, down, down, down, down);
      expect((await world.post(SEED_REQUEST)).body.tracking.delivery_status).toBe('retrying');
      world.receiver.reset();
    },
  });

  it('shows each next attempt’s date whole on one line (it was cut after its month: "2026-12-" / "03T…")', async () => {
    const { world, page } = opened;
    await page.setViewportSize({ width: 1280, height: 800 });
    await page.goto(`${world.gateway.url}/console`);
    const next = page.locator('#failed-deliveries tbody tr td').last();
    expect(await next.innerText()).toMatch(ISO);
    const dateLines = await next.evaluate((cell) => {
      const range = cell.ownerDocument.createRange();
      const walker = cell.ownerDocument.createTreeWalker(cell, 4 /* text */);
      const first = walker.nextNode()!;
      range.setStart(first, 0);
      range.setEnd(first, Math.min(first.textContent!.length, 'yyyy-mm-ddT'.length));
      return new Set([...range.getClientRects()].map((r) => Math.round(r.top))).size;
    });
    expect(dateLines).toBe(1);
  });
});
