import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, skipBrowser, useBrowserPage } from '../../support/browser.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * The Conversations list filtered and paged, in its JSON (`GET /console/api/conversations`) and on the page, with
 * the filters of `conversations list` (docs/operations.md, "Runbook"): by status, type (its receiver), source,
 * received time (since, until) and id; a page goes on where the one before ended; a bad value is refused with why.
 * Before, the list had no filter: the operator scrolled the newest 100.
 */
if (skipBrowser) console.warn(`console list-filters browser test SKIPPED: ${CHROMIUM} is missing`);

let world: TestWorld;
/** Every conversation, newest first, with its type and delivery status. */
const sent: { id: string; type: string; delivery: string; source: string }[] = [];

async function send(body: Record<string, unknown>): Promise<void> {
  const res = await world.post({ ...SEED_REQUEST, timestamp: undefined, ...body });
  expect(res.status).toBe(200);
  sent.unshift({
    id: res.body.conversation_id,
    type: res.body.tracking.webhook_type,
    delivery: res.body.tracking.delivery_status,
    source: String(body.source_system ?? SEED_REQUEST.source_system),
  });
}

beforeAll(async () => {
  world = await startWorld();
  for (let n = 0; n < 3; n++) await send({ webhook_type: 'deal_analysis' });
  await send({ webhook_type: 'lead_analysis', source_system: 'crm_system', source_process: 'nightly_sync' });
  await send({ webhook_type: 'lead_analysis', source_system: 'crm_system', source_process: 'nightly_sync' });
  // A paused receiver: its delivery is queued, held for the schedule.
  await fetch(`${world.gateway.url}/local/endpoints/general/pause`, { method: 'POST' });
  await send({ webhook_type: 'general' });
  expect(sent[0]!.delivery).toBe('queued');
});
afterAll(async () => {
  await world?.close();
});

const api = async (query: string) => {
  const response = await fetch(`${world.gateway.url}/console/api/conversations${query}`);
  return { status: response.status, body: (await response.json()) as any };
};
const idsOf = (body: { conversations: { conversation_id: string }[] }) =>
  body.conversations.map((c) => c.conversation_id);
const receivedAt = async (id: string) => (await api(`?id=${id}`)).body.conversations[0].received_at as string;

/** Every page of a listing, following next_cursor: the ids in the order shown. */
async function allPages(query: string): Promise<string[]> {
  const ids: string[] = [];
  let cursor: string | null = null;
  for (let pages = 0; pages < 20; pages++) {
    const { status, body } = await api(`${query}${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
    expect(status).toBe(200);
    ids.push(...idsOf(body));
    cursor = body.next_cursor;
    if (cursor === null) return ids;
  }
  throw new Error('more than 20 pages');
}

describe('GET /console/api/conversations, filtered', () => {
  it('filters by type (its receiver), status, source and id, each value in any case', async () => {
    const leads = sent.filter((s) => s.type === 'lead_analysis').map((s) => s.id);
    expect(idsOf((await api('?type=LEAD_Analysis')).body)).toEqual(leads);
    expect(idsOf((await api('?status=QUEUED')).body)).toEqual([sent[0]!.id]);
    expect(idsOf((await api('?type=deal_analysis,general&status=delivered')).body)).toEqual(
      sent.filter((s) => s.type === 'deal_analysis').map((s) => s.id),
    );
    // A list is also the parameter repeated (a form's checkboxes).
    expect(idsOf((await api('?type=general&type=lead_analysis')).body)).toEqual(
      sent.filter((s) => s.type !== 'deal_analysis').map((s) => s.id),
    );
    expect(idsOf((await api('?source=CRM.System/Nightly-Sync')).body)).toEqual(leads);
    const one = sent[3]!.id;
    expect(idsOf((await api(`?id=${one.slice(-10).toUpperCase()}`)).body)).toEqual([one]);
    expect(idsOf((await api('?id=nosuchconversation')).body)).toEqual([]);
  });

  it('filters by the received time: since ≤ received < until', async () => {
    const newest = await receivedAt(sent[0]!.id);
    const oldest = await receivedAt(sent.at(-1)!.id);
    expect(idsOf((await api(`?until=${newest}`)).body)).toEqual(sent.slice(1).map((s) => s.id));
    expect(idsOf((await api(`?since=${newest}`)).body)).toEqual([sent[0]!.id]);
    expect(idsOf((await api(`?since=${oldest}&until=${newest}`)).body)).toEqual(sent.slice(1).map((s) => s.id));
  });

  it('pages with next_cursor: every conversation once, in the order of one long page, filtered or not', async () => {
    const whole = idsOf((await api('')).body);
    expect(whole).toEqual(sent.map((s) => s.id));
    for (const limit of [1, 2, 4]) expect(await allPages(`?limit=${limit}`), `limit ${limit}`).toEqual(whole);
    const deals = sent.filter((s) => s.type === 'deal_analysis').map((s) => s.id);
    expect(await allPages('?type=deal_analysis&limit=2')).toEqual(deals);
    expect((await api('?limit=10')).body.next_cursor).toBeNull();
  });

  it('refuses a bad value, an unknown parameter or a cursor it did not give, saying why', async () => {
    const refusals: [string, RegExp][] = [
      ['?type=deals', /^type takes deal_analysis, .*got "deals"$/],
      ['?status=weird', /^status takes completed, .*got "weird"$/],
      ['?since=yesterday', /^since must be an ISO 8601 date/],
      ['?until=2026-12-03T10:00', /^until must be an ISO 8601 date or date-time with a zone/],
      ['?since=2026-12-03&until=2026-12-02', /^until must be later than since/],
      ['?id=a%20b', /^id takes a conversation id or a part of one/],
      ['?colour=red', /^unknown parameter "colour": the list takes source, type, status, since, until/],
      ['?since=2026-12-01&since=2026-12-02', /^since takes one value, got 2$/],
      ['?cursor=junk', /^cursor takes the next_cursor of the page before/],
      [`?thread=q3&cursor=2026-12-03T00:00:00.000Z,${sent[0]!.id}`, /a thread is listed whole/],
    ];
    for (const [query, message] of refusals) {
      const { status, body } = await api(query);
      expect(status, query).toBe(400);
      expect(body.error.code, query).toBe('INVALID_FILTER');
      expect(body.error.message, query).toMatch(message);
    }
  });
});

describe.skipIf(skipBrowser)('the filtered list in Chromium', () => {
  let page: Page;
  useBrowserPage(
    (opened) => {
      page = opened;
    },
    { noPageErrors: true },
  );
  const shownIds = () =>
    page.locator('#conversations tbody tr').evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-id')));

  it('filters from its form, keeps the filter in the address (a reload or a shared link shows the same list)', async () => {
    await page.goto(`${world.gateway.url}/console`);
    await page.fill('#filters input[name="type"]', 'Lead_Analysis');
    await page.press('#filters input[name="type"]', 'Enter');
    await page.waitForURL(/type=Lead_Analysis/);
    const leads = sent.filter((s) => s.type === 'lead_analysis').map((s) => s.id);
    expect(await shownIds()).toEqual(leads);
    // Only what was given is in the address: the fields left blank are not.
    expect([...new URL(page.url()).searchParams.keys()]).toEqual(['type']);
    await page.reload();
    expect(await shownIds()).toEqual(leads);
    expect(await page.inputValue('#filters input[name="type"]')).toBe('Lead_Analysis');
    expect(await page.locator('h2', { hasText: 'Matching conversations' }).count()).toBe(1);
    // The live refresh keeps the filter: it asks for this very list.
    expect(await page.locator('body').getAttribute('data-fragment-src')).toBe('/console?type=Lead_Analysis&fragment=1');
    await page.click('#filters a'); // Clear
    await page.waitForURL(/\/console$/);
    expect(await shownIds()).toEqual(sent.map((s) => s.id));
  });

  it('a bad value: 400, the form with what was typed, and why', async () => {
    const response = await page.goto(`${world.gateway.url}/console?status=weird&type=general`);
    expect(response?.status()).toBe(400);
    expect(await page.locator('#filter-error').innerText()).toMatch(/^status takes completed, .*got "weird"$/);
    expect(await page.inputValue('#filters input[name="status"]')).toBe('weird');
    expect(await page.inputValue('#filters input[name="type"]')).toBe('general');
    // The field refused is marked, described by why, and has the keyboard (a screen reader said only "why").
    const status = page.locator('#filters input[name="status"]');
    expect(await status.getAttribute('aria-invalid')).toBe('true');
    expect(await page.locator('#filters input[aria-invalid]').count()).toBe(1);
    expect(await status.evaluate((el) => el === el.ownerDocument.activeElement)).toBe(true);
    expect(
      await status.evaluate((el) => el.ownerDocument.getElementById(el.getAttribute('aria-describedby')!)?.id),
    ).toBe('filter-error');
    await page.fill('#filters input[name="status"]', 'queued');
    await page.press('#filters input[name="status"]', 'Enter');
    await page.waitForURL(/status=queued/);
    expect(await shownIds()).toEqual([sent[0]!.id]);
  });

  it('a value too long to send (a page of text pasted in a field): said on the page, which stays, the field marked', async () => {
    await page.goto(`${world.gateway.url}/console?type=general`);
    const key = page.locator('#filters input[name="key"]');
    await key.fill('ü'.repeat(20_000));
    await key.press('Enter');
    // Before: the address went past the gateway's 16 KB and the console was replaced by its 431 JSON answer.
    await expect
      .poll(() => page.locator('#flash').innerText())
      .toBe('Not filtered: key has 20000 characters, too long to send (no id, key, source or date is that long)');
    expect(page.url()).toBe(`${world.gateway.url}/console?type=general`);
    expect(await key.getAttribute('aria-invalid')).toBe('true');
    expect(await page.locator(':focus').getAttribute('name')).toBe('key');
    expect(await shownIds()).toEqual([sent[0]!.id]);
    // Cut to what it should have been, it is sent.
    await key.fill('order-1001');
    await key.press('Enter');
    await page.waitForURL(/key=order-1001/);
  });
});
