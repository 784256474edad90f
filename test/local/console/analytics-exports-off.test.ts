import { describe, expect, it } from 'vitest';
import { CHROMIUM, skipBrowser } from '../../support/browser.ts';
import { useConsolePage } from '../../support/console-browser.ts';
import { SEED_REQUEST } from '../../support/gateway.ts';

/**
 * The Analytics page of a gateway started with ENABLE_CONVERSATION_EXPORT=false: its charts are drawn from the
 * exports, so the page says why the conversations it ran are not there, instead of promising they soon will be.
 */
if (skipBrowser) console.warn(`console analytics (exports off) browser test SKIPPED: ${CHROMIUM} is missing`);

describe.skipIf(skipBrowser)('Analytics with exports off, in Chromium', () => {
  const opened = useConsolePage({
    env: { ENABLE_CONVERSATION_EXPORT: 'false' },
    seed: async (world) => {
      expect((await world.post(SEED_REQUEST)).status).toBe(200);
    },
  });

  it('says the conversations are not exported, so not charted, and does not tell to POST one', async () => {
    const { world, page } = opened;
    await page.goto(`${world.gateway.url}/console/analytics`);
    expect(await page.locator('#analytics h1 .count').innerText()).toBe('0');
    expect(await page.locator('#exports-off').innerText()).toBe(
      'ENABLE_CONVERSATION_EXPORT is false: this gateway exports no conversation, so none it runs is charted here (nor in conversations query); the Conversations page lists them.',
    );
    expect(await page.locator('#analytics p.empty').innerText()).toBe(
      'No exported conversation in the last 24 hours (0 in all).',
    );
    await page.goto(`${world.gateway.url}/console`);
    expect(await page.locator('#conversations tbody tr').count()).toBe(1);
  });
});
