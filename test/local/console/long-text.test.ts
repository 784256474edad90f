import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, skipBrowser, useBrowserPage } from '../../support/browser.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * Long unbroken text in a 1,400 px window, in Chromium: a thread id of 128 characters (the most the webhook takes)
 * and a receiver's answer without a space, quoted in a state's error on the timeline. Both pushed the page sideways
 * (the thread page 344 px past the window, the conversation page's timeline as far as the answer went); they now wrap.
 */
if (skipBrowser) console.warn(`console long text browser test SKIPPED: ${CHROMIUM} is missing`);

const THREAD = `t${'a'.repeat(127)}`;
let world: TestWorld;
let id = '';

beforeAll(async () => {
  // One receiver's URL is the gateway's built-in one (the longest it shows; empty counts as unset), on this world's
  // own port: nothing of that type is delivered here.
  world = await startWorld({ DATA_ANALYSIS_WEBHOOK_URL: '' });
  world.receiver.reply({ status: 500, body: 'Z'.repeat(3_000) }, { status: 200, body: 'ok' });
  const answer = await world.post({ ...SEED_REQUEST, thread_id: THREAD });
  expect(answer.body.tracking.delivery_status).toBe('delivered');
  id = answer.body.conversation_id;
  world.receiver.reset();
});
afterAll(async () => {
  await world?.close();
});

describe.skipIf(skipBrowser)('console long text in Chromium', () => {
  let page: Page;
  useBrowserPage((opened) => {
    page = opened;
  });
  beforeAll(async () => {
    await page.setViewportSize({ width: 1400, height: 900 });
  });

  const sideways = () => page.locator('main').evaluate((main) => main.scrollWidth - main.clientWidth);

  it('a 128-character thread id wraps on its thread page', async () => {
    await page.goto(`${world.gateway.url}/console/threads/testing_system/${THREAD}`);
    expect(await page.locator('h1').innerText()).toContain(THREAD);
    expect(await sideways()).toBe(0);
  });

  it('a receiver’s answer without a space wraps in the timeline’s error', async () => {
    await page.goto(`${world.gateway.url}/console/conversations/${id}`);
    expect(await page.locator('table.timeline tr[data-state="Deliver"] .err').innerText()).toMatch(/HTTP 500: Z{100}/);
    expect(await sideways()).toBe(0);
  });

  it('a receiver’s last error without a space wraps on the Endpoints page, its Pause in sight', async () => {
    // Failing still: its failure streak, failing since and last error (with its time) all shown.
    const z = { status: 500, body: 'Z'.repeat(3_000) };
    world.receiver.reply(z, z, z, z, z, z);
    expect((await world.post(SEED_REQUEST)).body.tracking.delivery_status).toBe('retrying');
    world.receiver.reset();
    await page.goto(`${world.gateway.url}/console/endpoints`);
    expect(await page.locator('#endpoints tr[data-type="deal_analysis"] td.time').nth(1).innerText()).toMatch(
      /^2\d{3}-/,
    );
    expect(await page.locator('#endpoints tr[data-type="data_analysis"] td.url').innerText()).toContain(
      `${world.gateway.url}/… deployed`, // its origin only (docs/security.md)
    );
    const row = page.locator('#endpoints tr[data-type="deal_analysis"]');
    expect(await row.locator('td.err').innerText()).toMatch(/^HTTP 500: Z{40}/);
    expect(await sideways()).toBe(0);
    expect(await row.getByRole('button', { name: 'Pause deal_analysis' }).isVisible()).toBe(true);
    const box = await row.getByRole('button', { name: 'Pause deal_analysis' }).boundingBox();
    expect(box!.x + box!.width).toBeLessThanOrEqual(1400);
    // Opened by the keyboard, the whole error (no space in it) wraps too.
    await row.locator('td.err summary').focus();
    await page.keyboard.press('Enter');
    expect(await row.locator('td.err pre').innerText()).toMatch(/^HTTP 500: Z{100}/);
    expect(await sideways()).toBe(0);
  });
});
