import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileEndpointStore } from '../../../functions/shared/endpoint-store.ts';
import { CHROMIUM, skipBrowser } from '../../support/browser.ts';
import { useConsolePage } from '../../support/console-browser.ts';

/**
 * Pause pressed on a receiver another tab (or `endpoints pause`) paused meanwhile, in Chromium: the page still offered
 * Pause, and pressing it moved the receiver's "paused since" to now, so a receiver held for hours (its deliveries
 * queued all along) read as paused a moment ago, here and in `endpoints list`. A pause of a paused receiver now keeps
 * since when it is paused.
 */
if (skipBrowser) console.warn(`console pause-paused browser test SKIPPED: ${CHROMIUM} is missing`);

describe.skipIf(skipBrowser)('Pause of a receiver paused meanwhile, in Chromium', () => {
  const opened = useConsolePage({ noPageErrors: true });

  it('keeps since when it is paused', async () => {
    const { world, page } = opened;
    await page.goto(`${world.gateway.url}/console/endpoints`);
    const row = page.locator('#endpoints tr[data-type="general"]');
    expect(await row.getAttribute('data-state')).toBe('healthy');
    // The other tab's pause, three hours ago: this page has not refreshed since and still offers Pause.
    const pausedAt = new Date(Date.now() - 3 * 3_600_000);
    await new FileEndpointStore(path.join(world.dataDir, 'deliveries')).configure(
      'general',
      { paused: true },
      pausedAt,
    );
    await page.getByRole('button', { name: 'Pause general', exact: true }).click();
    // The answer, not the Resume button: a live refresh may show the other tab's pause before the press is answered.
    await expect.poll(() => page.locator('#flash').innerText()).toBe('general is paused');
    const endpoints = (await (await fetch(`${world.gateway.url}/local/endpoints`)).json()) as {
      webhook_type: string;
      paused_at: string | null;
    }[];
    expect(endpoints.find((e) => e.webhook_type === 'general')?.paused_at).toBe(pausedAt.toISOString());
    await page.getByRole('button', { name: 'Resume general', exact: true }).waitFor();
    expect(await row.locator('.state-since').innerText()).toBe(`since ${pausedAt.toISOString()} (3h ago)`);
  });
});
