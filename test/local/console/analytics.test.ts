import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analysisFormat } from '../../../functions/domain/export-formats.ts';
import { completeConversation, withAgentAnswer, withClassification } from '../../../functions/domain/lifecycle.ts';
import { idempotencyStore } from '../../../functions/shared/idempotency-store.ts';
import { dayOfKey, openAnalytics } from '../../../local/analytics/engine.ts';
import type { AnalysisSource } from '../../../local/analytics/sources.ts';
import { analyticsView, lastDayHours, niceMax } from '../../../local/console/analytics.ts';
import { ExecutionJournal } from '../../../local/engine/journal.ts';
import { recoverInterrupted } from '../../../local/engine/recovery.ts';
import { loadStageHandlers, localWorkflow } from '../../../local/engine/workflows.ts';
import { rawGet, skipBrowser, useBrowserPage } from '../../support/browser.ts';
import { startedRecord } from '../../support/fixtures.ts';
import { journalOf, NO_WAIT, SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * The console's Analytics page: three charts of the last day drawn from the named queries on the local engine, in a
 * real browser (test/support/browser.ts), with no request leaving the gateway.
 */

let world: TestWorld;
/** What each conversation shows as: its type and its delivery status, or `interrupted` (the gateway stopped). */
const sent: { type: string; status: string }[] = [];

/**
 * A conversation the gateway was stopped in while its agent was called (docs/operations.md, After a crash): its
 * journal cut there and recovered as the next start would, which exports it again as interrupted, not attempted.
 */
async function interruptWhileTheAgentRuns(query: string): Promise<string> {
  const res = await world.post({ ...SEED_REQUEST, query });
  const entries = await journalOf(world, res.headers.get('x-request-id')!);
  const cut = entries.slice(0, entries.findIndex((e) => e.k === 'in' && e.s === 'InvokeManagerAgent') + 1);
  expect(cut.at(-1)).toMatchObject({ k: 'in', s: 'InvokeManagerAgent' });
  // A crash while the agent ran leaves no history of the execution (it is saved once the execution ended).
  const folder = path.join(world.gateway.executions.dir, res.body.conversation_id as string);
  for (const file of await readdir(folder)) if (file.endsWith(`_${cut[0]!.e}.json`)) await rm(path.join(folder, file));
  const dir = await mkdtemp(path.join(tmpdir(), 'journal-'));
  try {
    await writeFile(path.join(dir, '000000000000001-1.jsonl'), `${cut.map((e) => JSON.stringify(e)).join('\n')}\n`);
    const journal = await ExecutionJournal.open(dir);
    const send = (params: unknown) => world.gateway.failedDeliveries.sendMessage(params as never);
    const [recovered] = await recoverInterrupted({
      journal,
      workflow: localWorkflow('conversation', await loadStageHandlers(), send, NO_WAIT),
      executions: world.gateway.executions,
      idempotency: idempotencyStore(),
      restart: () => expect.fail('a synchronous conversation is not started again'),
    });
    journal.close();
    expect(recovered).toMatchObject({ outcome: 'interrupted', status: 'interrupted' });
    return res.body.conversation_id as string;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

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
  // One held by its paused receiver: queued for the redelivery schedule, nothing attempted yet.
  expect((await rawGet(`${world.gateway.url}/local/endpoints/deal_analysis/pause`, {}, 'POST')).status).toBe(200);
  const held = await world.post({ ...SEED_REQUEST, query: 'Which deals are at risk this quarter?' });
  expect(held.body.tracking.delivery_status).toBe('queued');
  sent.push({ type: 'deal_analysis', status: 'queued' });
  expect((await rawGet(`${world.gateway.url}/local/endpoints/deal_analysis/resume`, {}, 'POST')).status).toBe(200);
  // One the gateway stopped in before its agent answered: exported as interrupted, delivery not_attempted.
  await interruptWhileTheAgentRuns('Which deals closed last week?');
  sent.push({ type: 'none', status: 'interrupted' });
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

  it('keeps queued and interrupted conversations out of the delivered percentage, each under its own legend', async () => {
    const page = (await rawGet(`${world.gateway.url}/console/analytics?fragment=1`)).body;
    const chart = /<figure class="chart" id="chart-delivery"[\s\S]*?<\/figure>/.exec(page)?.[0] ?? '';
    // Delivered of attempted (delivered, retrying or failed): 4 of 5 — not of 6 with the queued one.
    expect(chart).toMatch(/^<figure class="chart" id="chart-delivery" data-rate="80%"/);
    expect(chart).toMatch(/<b>80%<\/b> delivered <small>4 of 5 · 1 failed · 1 queued \(held for the schedule\)/);
    expect(chart).toContain('· 1 not attempted (the agent failed) · 1 interrupted (the gateway stopped)</small>');
    const legend = [
      ...chart.matchAll(/<li data-status="(\w+)"><span class="swatch s-\w+"><\/span>([^<]*)<b>(\d+)<\/b><\/li>/g),
    ];
    expect(legend.map(([, status, text, n]) => [status, text!.trim(), Number(n)])).toEqual([
      ['delivered', 'delivered', 4],
      ['retrying', 'retrying: attempts failed, the schedule goes on', 0],
      ['failed', 'failed: no automatic attempt follows', 1],
      ['queued', 'queued: held for the schedule', 1],
      ['not_attempted', 'not attempted: the agent failed', 1],
      ['interrupted', 'interrupted: the gateway stopped', 1],
    ]);
    // Per type: the queued deal is not a failure to deliver; the segments say what they are.
    expect(chart).toMatch(/<tr data-type="deal_analysis" data-rate="100%">/);
    expect(chart).toContain('aria-label="deal_analysis: 2 delivered, 1 queued"');
    expect(chart).toContain('aria-label="none: 1 not attempted, 1 interrupted"');
    expect(chart).toMatch(/<rect class="seg s-queued" data-status="queued" data-count="1"/);
    expect(chart).toMatch(/<rect class="seg s-interrupted" data-status="interrupted" data-count="1"/);
  });

  it('lays out the hours of the last 24 hours (the first and the current one in part), and round axis tops', () => {
    const hours = lastDayHours(new Date('2026-11-29T12:34:56Z'));
    expect(hours).toHaveLength(25);
    expect(hours[0]).toBe('2026-11-28T12:00:00Z');
    expect(hours[24]).toBe('2026-11-29T12:00:00Z');
    expect(lastDayHours(new Date('2026-11-29T12:00:00Z'))).toHaveLength(25);
    expect(lastDayHours(new Date('2026-11-29T12:00:00Z'))[0]).toBe('2026-11-28T12:00:00Z');
    expect([0, 1, 3, 7, 10, 11, 99, 101].map(niceMax)).toEqual([1, 1, 5, 10, 10, 20, 100, 200]);
  });
});

describe('the window of the last 24 hours', () => {
  /** An exported analysis.json row of a conversation received at `at`. */
  function analysisObject(at: string, suffix: string) {
    let r = startedRecord(
      { query: 'What are the top 5 deals closing this quarter?', source_system: 'crm', source_process: 'sync' },
      { input: { received_at: at }, ids: { suffix } },
    );
    r = withClassification(withAgentAnswer(r, 'Acme renewal', 20, new Date(Date.parse(at) + 20)));
    r = completeConversation(r, false, 'x', new Date(Date.parse(at) + 50));
    const key = `conversation-history/${at.slice(0, 10).replaceAll('-', '/')}/${r.conversation_id}/analysis.json`;
    return { key, text: `${JSON.stringify(analysisFormat(r, at))}\n` };
  }

  it('counts every conversation of the last 24 hours, and none older, on the named queries', async () => {
    const now = new Date('2026-11-29T12:34:56Z');
    const objects = [
      analysisObject('2026-11-28T12:33:00.000Z', 'older1'), // 24 h 2 min ago: outside
      analysisObject('2026-11-28T12:40:00.000Z', 'inside1'), // 23 h 55 min ago: inside, in the first hour's part
      analysisObject('2026-11-29T11:30:00.000Z', 'inside2'),
      analysisObject('2026-11-29T12:34:00.000Z', 'inside3'),
    ];
    const source: AnalysisSource = {
      location: 'memory',
      list: async () => objects.map(({ key }) => ({ key, version: '1' })),
      read: async (asked) => asked.map((a) => objects.find((o) => o.key === a.key)?.text ?? null),
      close: async () => {},
    };
    const view = await analyticsView(() => openAnalytics({ source, cacheDir: null }), now);
    expect(view.error).toBeUndefined();
    expect(view.since).toBe('2026-11-28T12:34:56.000Z');
    expect(view.total).toBe(4);
    expect(view.hourly.reduce((n, r) => n + r.conversations, 0)).toBe(3);
    expect(view.hourly.map((r) => r.hour)).toEqual([
      '2026-11-28T12:00:00Z',
      '2026-11-29T11:00:00Z',
      '2026-11-29T12:00:00Z',
    ]);
    expect(view.hourly.every((r) => view.hours.includes(r.hour))).toBe(true);
    expect(view.latency?.conversations).toBe(3);
    expect(view.latency?.conversations_with_both_times).toBe(3);
    expect(view.delivery.reduce((n, r) => n + r.conversations, 0)).toBe(3);
  });

  it("lists and reads only the exports of the window's day folders", async () => {
    const now = new Date('2026-11-29T12:34:56Z');
    const objects = [
      analysisObject('2026-11-20T10:00:00.000Z', 'weekago'),
      analysisObject('2026-11-28T12:40:00.000Z', 'inside1'),
      analysisObject('2026-11-29T11:30:00.000Z', 'inside2'),
    ];
    const read: string[] = [];
    const source: AnalysisSource = {
      location: 'memory',
      list: async (fromDay) =>
        objects.filter(({ key }) => !fromDay || dayOfKey(key)! >= fromDay).map(({ key }) => ({ key, version: '1' })),
      read: async (asked) => {
        read.push(...asked.map((a) => a.key));
        return asked.map((a) => objects.find((o) => o.key === a.key)?.text ?? null);
      },
      close: async () => {},
    };
    const view = await analyticsView((fromDay) => openAnalytics({ source, cacheDir: null, fromDay }), now);
    expect(view.hourly.reduce((n, r) => n + r.conversations, 0)).toBe(2);
    expect(read.map(dayOfKey).sort()).toEqual(['2026/11/28', '2026/11/29']);
  });
});

describe.skipIf(skipBrowser)('the Analytics page in Chromium', () => {
  let page: Page;
  const requests: string[] = [];
  const errors: string[] = [];

  useBrowserPage((opened) => {
    page = opened;
    page.on('request', (r) => requests.push(r.url()));
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
  });

  const count = (type: string, status?: string) =>
    sent.filter((s) => (type === '*' || s.type === type) && (status === undefined || s.status === status)).length;

  it('draws conversations per hour by type, the delivery success and the time percentiles', async () => {
    await page.goto(`${world.gateway.url}/console`);
    await page.locator('header nav a', { hasText: 'Analytics' }).click();
    await page.waitForURL('**/console/analytics');

    const hours = page.locator('#chart-hourly g.hour');
    expect(await hours.count()).toBe(25);
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

    // Attempted: delivered, retrying or failed; queued, not attempted and interrupted ones are outside it.
    const attempted = count('*', 'delivered') + count('*', 'retrying') + count('*', 'failed');
    const rate = `${Math.round((count('*', 'delivered') / attempted) * 1000) / 10}%`;
    expect(await page.locator('#chart-delivery').getAttribute('data-rate')).toBe(rate);
    expect(await page.locator('#chart-delivery p.big').innerText()).toBe(
      `${rate} delivered ${count('*', 'delivered')} of ${attempted} · 1 failed · 1 queued (held for the schedule) · 1 not attempted (the agent failed) · 1 interrupted (the gateway stopped)`,
    );
    // Each segment is drawn in its own colour, and the legend's swatch matches it.
    const fills = await page
      .locator('#chart-delivery rect.seg')
      .evaluateAll((rs) =>
        rs.map((r) => [r.getAttribute('data-status'), (globalThis as any).getComputedStyle(r).fill] as const),
      );
    const fillOf = Object.fromEntries(fills);
    expect(Object.keys(fillOf).sort()).toEqual(['delivered', 'failed', 'interrupted', 'not_attempted', 'queued']);
    expect(new Set(Object.values(fillOf)).size).toBe(5);
    for (const [status, fill] of Object.entries(fillOf)) {
      const swatch = page.locator(`#chart-delivery ul.legend li[data-status="${status}"] .swatch`);
      expect(await swatch.evaluate((s) => (globalThis as any).getComputedStyle(s).backgroundColor)).toBe(fill);
    }
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
    // Every percentile is of the same rows, and the caption says which.
    for (const i of [0, 1, 2]) expect(ms[i]).toBeLessThanOrEqual(ms[i + 3]!);
    expect(await page.locator('#chart-latency figcaption').textContent()).toMatch(
      /p50, p90, p99 of the \d+ of \d+ conversations with both times/,
    );
  });

  it('updates when a conversation arrives, and never leaves the gateway', async () => {
    // The counts per hour, opened from the keyboard, stay open (and the keyboard on them) as the page refreshes.
    const perHour = page.locator('#chart-hourly details.per-hour');
    await perHour.locator('summary').focus();
    await page.keyboard.press('Enter');
    expect(await perHour.getAttribute('open')).toBe('');
    const total = async () =>
      Number(
        await perHour
          .locator('tbody tr td:last-child')
          .allInnerTexts()
          .then((t) => t.reduce((a, n) => a + Number(n), 0)),
      );
    expect(await total()).toBe(sent.length);
    await world.post({ ...SEED_REQUEST, query: 'Show the revenue report' });
    await expect
      .poll(() => page.locator('#analytics').getAttribute('data-conversations'))
      .toBe(String(sent.length + 1));
    expect(await perHour.getAttribute('open')).toBe('');
    expect(await total()).toBe(sent.length + 1);
    expect(await perHour.locator('summary').evaluate((s) => s === (globalThis as any).document.activeElement)).toBe(
      true,
    );
    const origin = new URL(world.gateway.url).origin;
    expect(requests.filter((u) => !u.startsWith(origin) && !u.startsWith('data:'))).toEqual([]);
    expect(errors).toEqual([]);
  });
});
