import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastDayHours, niceMax } from '../../../local/console/analytics.ts';
import { type Browser, launchBrowser, rawGet, skipBrowser } from '../../support/browser.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * The console's Analytics page: three charts of the last day drawn from the named queries on the local engine, in a
 * real browser (test/support/browser.ts), with no request leaving the gateway.
 */

let world: TestWorld;
const sent: { type: string; status: string }[] = [];

beforeAll(async () => {
  world = await startWorld();
  const questions: [string, number?][] = [
    ['What are the top 5 deals closing this quarter?'],
    ['Which deals slipped in the pipeline?'],
    ['Show the churn metrics report'],
    ['How many new leads came in from the webinar?', 400],
    ['Hello there'],
  ];
  for (const [query, receiverStatus] of questions) {
    if (receiverStatus) world.receiver.reply(receiverStatus);
    const res = await world.post({ ...SEED_REQUEST, query });
    sent.push({ type: res.body.tracking.webhook_type, status: res.body.tracking.delivery_status });
  }
  // One conversation whose agent fails: exported as failed, nothing to deliver.
  world.agent.behave(() => ({ functionError: 'Unhandled', payload: { errorType: 'Error', errorMessage: 'boom' } }));
  expect((await world.post({ ...SEED_REQUEST, query: 'anything' })).status).toBe(502);
  world.agent.reset();
  sent.push({ type: 'none', status: 'not_attempted' });
});
afterAll(async () => {
  await world?.close();
});

describe('the Analytics page over HTTP', () => {
  it("is served by the gateway with the console's CSP, on loopback hosts only", async () => {
    const page = await rawGet(`${world.gateway.url}/console/analytics`);
    expect(page.status).toBe(200);
    expect(page.headers['content-security-policy']).toMatch(/default-src 'none'; script-src 'self'; style-src 'self'/);
    expect(page.body).toContain('id="chart-hourly"');
    expect(page.body).not.toMatch(/https?:\/\/(?!127\.0\.0\.1|www\.w3\.org\/2000\/svg)/);
    expect((await rawGet(`${world.gateway.url}/console/analytics`, { host: 'attacker.example' })).status).toBe(403);
    const fragment = await rawGet(`${world.gateway.url}/console/analytics?fragment=1`);
    expect(fragment.body.startsWith('<p class="crumbs">')).toBe(true);
  });

  it('lays out the 24 hours ending with the current one, and round axis tops', () => {
    const hours = lastDayHours(new Date('2026-11-29T12:34:56Z'));
    expect(hours).toHaveLength(24);
    expect(hours[0]).toBe('2026-11-28T13:00:00Z');
    expect(hours[23]).toBe('2026-11-29T12:00:00Z');
    expect([0, 1, 3, 7, 10, 11, 99, 101].map(niceMax)).toEqual([1, 1, 5, 10, 10, 20, 100, 200]);
  });
});

describe.skipIf(skipBrowser)('the Analytics page in Chromium', () => {
  let browser: Browser;
  let page: Page;
  const requests: string[] = [];
  const errors: string[] = [];

  beforeAll(async () => {
    browser = await launchBrowser();
    page = browser.page;
    page.setDefaultTimeout(10_000);
    page.on('request', (r) => requests.push(r.url()));
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  });
  afterAll(async () => {
    await browser?.close();
  });

  const count = (type: string, status?: string) =>
    sent.filter((s) => (type === '*' || s.type === type) && (status === undefined || s.status === status)).length;

  it('draws conversations per hour by type, the delivery success and the time percentiles', async () => {
    await page.goto(`${world.gateway.url}/console`);
    await page.locator('header nav a', { hasText: 'Analytics' }).click();
    await page.waitForURL('**/console/analytics');

    const hours = page.locator('#chart-hourly g.hour');
    expect(await hours.count()).toBe(24);
    const totals = await hours.evaluateAll((gs) => gs.map((g) => Number(g.getAttribute('data-total'))));
    expect(totals.reduce((a, b) => a + b, 0)).toBe(sent.length);
    const segments = await page
      .locator('#chart-hourly rect.seg')
      .evaluateAll((rs) => rs.map((r) => [r.getAttribute('data-type'), Number(r.getAttribute('data-count'))] as const));
    const byType: Record<string, number> = {};
    for (const [type, n] of segments) byType[type!] = (byType[type!] ?? 0) + n;
    expect(byType).toEqual(Object.fromEntries([...new Set(sent.map((s) => s.type))].map((t) => [t, count(t)])));
    for (const type of Object.keys(byType)) {
      expect(await page.locator(`#chart-hourly ul.legend li[data-type="${type}"] b`).innerText()).toBe(
        String(byType[type]),
      );
    }
    // Drawn, styled by the console's stylesheet: a deal segment is blue and has a height.
    const deal = page.locator('#chart-hourly rect.seg[data-type="deal_analysis"]').first();
    const style = await deal.evaluate((r) => {
      const box = (r as unknown as { getBBox(): { height: number } }).getBBox();
      return { fill: (globalThis as any).getComputedStyle(r).fill, height: box.height };
    });
    expect(style.fill).toBe('rgb(11, 92, 173)');
    expect(style.height).toBeGreaterThan(10);

    const attempted = sent.length - count('*', 'not_attempted');
    const rate = `${Math.round((count('*', 'delivered') / attempted) * 1000) / 10}%`;
    expect(await page.locator('#chart-delivery').getAttribute('data-rate')).toBe(rate);
    expect(await page.locator('#chart-delivery p.big').innerText()).toMatch(
      new RegExp(
        `^${rate.replace('.', '\\.')} delivered ${count('*', 'delivered')} of ${attempted} · 1 failed · 1 not attempted`,
      ),
    );
    expect(await page.locator('#chart-delivery tr[data-type="lead_analysis"]').getAttribute('data-rate')).toBe('0%');
    expect(await page.locator('#chart-delivery tr[data-type="deal_analysis"]').getAttribute('data-rate')).toBe('100%');

    const latency = await page
      .locator('#chart-latency tr')
      .evaluateAll((trs) =>
        trs.map((tr) => [tr.getAttribute('data-series'), tr.getAttribute('data-p'), tr.getAttribute('data-ms')]),
      );
    expect(latency.map(([s, p]) => `${s} p${p}`)).toEqual([
      'agent p50',
      'agent p90',
      'agent p99',
      'total p50',
      'total p90',
      'total p99',
    ]);
    const ms = latency.map(([, , v]) => Number(v));
    for (const v of ms) expect(Number.isInteger(v) && v >= 0).toBe(true);
    expect(ms[0]).toBeLessThanOrEqual(ms[1]!);
    expect(ms[1]).toBeLessThanOrEqual(ms[2]!);
    expect(ms[3]).toBeLessThanOrEqual(ms[5]!);
  });

  it('updates when a conversation arrives, and never leaves the gateway', async () => {
    await world.post({ ...SEED_REQUEST, query: 'Show the revenue report' });
    await expect
      .poll(() => page.locator('#analytics').getAttribute('data-conversations'), { timeout: 10_000 })
      .toBe(String(sent.length + 1));
    const origin = new URL(world.gateway.url).origin;
    expect(requests.filter((u) => !u.startsWith(origin) && !u.startsWith('data:'))).toEqual([]);
    expect(errors).toEqual([]);
  });
});
