import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, skipBrowser, useBrowserPage } from '../../support/browser.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * The Analytics page of a gateway started with ENABLE_CONVERSATION_EXPORT=false: its charts are drawn from the
 * exports, so the page says why the conversations it ran are not there, instead of promising they soon will be.
 */
if (skipBrowser) console.warn(`console analytics (exports off) browser test SKIPPED: ${CHROMIUM} is missing`);

let world: TestWorld;

beforeAll(async () => {
  world = await startWorld({ ENABLE_CONVERSATION_EXPORT: 'false' });
  expect((await world.post(SEED_REQUEST)).status).toBe(200);
});
afterAll(async () => {
  await world?.close();
});

describe.skipIf(skipBrowser)('Analytics with exports off, in Chromium', () => {
  let page: Page;
  useBrowserPage((opened) => {
    page = opened;
  });

  it('says the conversations are not exported, so not charted, and does not tell to POST one', async () => {
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
