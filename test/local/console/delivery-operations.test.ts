import { utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cutUnfinished } from '../../../local/engine/redelivery.ts';
import { CHROMIUM, rawGet, skipBrowser, useBrowserPage } from '../../support/browser.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * The console's delivery operations in Chromium: the attempt table with the receiver's answer, Resend, the Endpoints
 * page (Pause/Resume) and "recover failed since" with its dry-run count first.
 */
if (skipBrowser) console.warn(`console delivery operations browser test SKIPPED: ${CHROMIUM} is missing`);

let world: TestWorld;
const ids = { delivered: '', failed: '' };

beforeAll(async () => {
  world = await startWorld();
  world.receiver.reply({ status: 500, body: 'crm is restarting' }, { status: 200, body: 'stored as CRM-7' });
  ids.delivered = (await world.post(SEED_REQUEST)).body.conversation_id;
  world.receiver.reply(400, 400);
  const failed = await world.post(SEED_REQUEST);
  expect(failed.body.tracking.delivery_status).toBe('failed');
  ids.failed = failed.body.conversation_id;
  world.receiver.reset();
});
afterAll(async () => {
  await world?.close();
});

describe('operator routes behind the console’s checks', () => {
  it('refuse a rebound host name and a cross-site origin: nothing is paused or resent', async () => {
    const base = world.gateway.url;
    const rebound = await rawGet(`${base}/local/endpoints/deal_analysis/pause`, { host: 'attacker.example' }, 'POST');
    expect(rebound.status).toBe(403);
    const crossSite = await rawGet(
      `${base}/local/deliveries/${ids.delivered}/resend`,
      { origin: 'https://attacker.example' },
      'POST',
    );
    expect(crossSite.status).toBe(403);
    // Another server on this machine (a dev server, another gateway) is not the console either, whatever its port.
    const own = new URL(base);
    const otherPort = String(Number(own.port) === 9999 ? 9998 : 9999);
    for (const origin of ['http://localhost:9999', `http://127.0.0.1:${otherPort}`, `http://localhost:${own.port}`]) {
      const pause = await rawGet(`${base}/local/endpoints/deal_analysis/pause`, { origin }, 'POST');
      expect(pause.status).toBe(403);
      expect(JSON.parse(pause.body).error.message).toBe(
        `the operator endpoint answers the local operator only: it answers the console's own pages (http://${own.host}) only, not a page of ${origin}`,
      );
      const resend = await rawGet(`${base}/local/deliveries/${ids.delivered}/resend`, { origin }, 'POST');
      expect(resend.status).toBe(403);
      const redrive = await rawGet(`${base}/local/deliveries/${ids.failed}/redrive`, { origin }, 'POST');
      expect(redrive.status).toBe(403);
    }
    expect(world.receiver.received).toHaveLength(0);
    const endpoints = JSON.parse((await rawGet(`${base}/local/endpoints`)).body) as {
      webhook_type: string;
      status: string;
    }[];
    expect(endpoints.find((e) => e.webhook_type === 'deal_analysis')?.status).not.toBe('paused');
    // The console's own page (Origin = this origin) is the operator: its POST is taken.
    const sameOrigin = await rawGet(`${base}/local/endpoints/general/pause`, { origin: own.origin }, 'POST');
    expect(sameOrigin.status).toBe(200);
    expect(JSON.parse(sameOrigin.body).status).toBe('paused');
    expect((await rawGet(`${base}/local/endpoints/general/resume`, { origin: own.origin }, 'POST')).status).toBe(200);
    const plan = await rawGet(`${base}/local/deliveries/plan?since=yesterday`);
    expect(plan.status).toBe(400);
    expect(plan.body).toContain('since must be an ISO 8601 date');
    // A time without its zone would be read in the gateway's own zone: refused, as the CLI refuses it.
    const zoneless = await rawGet(`${base}/local/deliveries/plan?since=2026-11-29T08:00`);
    expect(zoneless.status).toBe(400);
    expect(zoneless.body).toContain('with a zone');
  });
});

describe.skipIf(skipBrowser)('delivery operations in Chromium', () => {
  let page: Page;
  useBrowserPage(
    (opened) => {
      page = opened;
    },
    { noPageErrors: true },
  );

  it('the attempt table shows what the receiver answered (an opened answer stays open as the page refreshes); Resend delivers again under the same webhook-id', async () => {
    await page.goto(`${world.gateway.url}/console/conversations/${ids.delivered}`);
    expect(await page.locator('header #live').innerText()).toBe('live');
    const rows = page.locator('#attempts tbody tr');
    expect(await rows.allInnerTexts()).toEqual([
      expect.stringMatching(/^1\s+\S+\s+workflow\s+retryable\s+500\s+\d+ ms\s+crm is restarting$/),
      expect.stringMatching(/^2\s+\S+\s+workflow\s+delivered\s+200\s+\d+ ms\s+stored as CRM-7$/),
    ]);
    await rows.nth(0).locator('details.answer summary').click();
    expect(await rows.nth(0).locator('details.answer dl.headers').innerText()).toMatch(/content-type\s+text\/plain/);

    world.receiver.reply({ status: 200, body: 'again, thanks' });
    await page.locator('button#resend').click();
    await expect.poll(() => rows.count()).toBe(3);
    // The page refreshed with the new attempt: the answer the reader had opened is still open, the others closed.
    expect(await rows.nth(0).locator('details.answer').getAttribute('open')).not.toBeNull();
    expect(await rows.nth(1).locator('details.answer').getAttribute('open')).toBeNull();
    // The live refresh may show the new attempt before the button's own answer is in (a loaded machine): waited for.
    await expect
      .poll(() => page.locator('#flash').innerText())
      .toMatch(new RegExp(`Resend of ${ids.delivered}: delivered \\(execution ${ids.delivered}-redelivery-3-`));
    expect(await rows.nth(2).innerText()).toMatch(/^3\s+\S+\s+resend\s+delivered\s+200\s+\d+ ms\s+again, thanks$/);
    const webhookIds = new Set(world.receiver.received.map((r) => r.headers['webhook-id']));
    expect(webhookIds.size).toBe(1);
  });

  it('a Resend the gateway skipped (a run the full data folder cut is unfinished): the line says why, and Resend can be pressed again', async () => {
    await page.goto(`${world.gateway.url}/console/conversations/${ids.delivered}`);
    // The gateway's answer while a redelivery run the data folder cut is unfinished
    // (test/local/server/failing-data-folder.test.ts).
    await page.route(`**/local/deliveries/${ids.delivered}/resend`, (route) =>
      route.fulfill({
        status: 200,
        contentType: 'application/json',
        body: JSON.stringify(cutUnfinished(ids.delivered)),
      }),
    );
    const resend = page.locator('button#resend');
    await resend.click();
    // Before: "another redelivery of it was running; look again in a moment", and the button stayed "Resending…".
    await expect
      .poll(() => page.locator('#flash').innerText())
      .toBe(
        `Resend of ${ids.delivered}: skipped — a redelivery run the data folder cut is not finished yet (the folder refused a write): try again in a few seconds`,
      );
    expect(await resend.innerText()).toBe('Resend');
    expect(await resend.isEnabled()).toBe(true);
    await page.unroute(`**/local/deliveries/${ids.delivered}/resend`);
  });

  it('Endpoints: each type’s state; Pause holds deliveries (queued), Resume and recover deliver them', async () => {
    await page.goto(`${world.gateway.url}/console/endpoints`);
    // Live as the other pages (test/local/console/endpoints-live.test.ts).
    await page.locator('header #live.ok').waitFor();
    const deal = page.locator('#endpoints tr[data-type="deal_analysis"]');
    expect(await deal.getAttribute('data-state')).toBe('healthy');
    expect(await page.locator('#endpoints tbody tr').count()).toBe(4);

    await deal.locator('button[data-endpoint-action="pause"]').click();
    await page.locator('#endpoints tr[data-type="deal_analysis"][data-state="paused"]').waitFor();
    // Since when: the pause an operator forgot is seen as one (before, only "paused" was shown).
    const pausedAt = (await (await fetch(`${world.gateway.url}/local/endpoints`)).json()) as {
      webhook_type: string;
      paused_at: string | null;
    }[];
    const since = pausedAt.find((e) => e.webhook_type === 'deal_analysis')!.paused_at!;
    expect(Date.parse(since)).not.toBeNaN();
    expect(await deal.locator('small.state-since').innerText()).toMatch(new RegExp(`^since ${since} \\(\\d+s ago\\)$`));
    world.receiver.reset();
    const held = await world.post(SEED_REQUEST);
    expect(held.body.tracking.delivery_status).toBe('queued');
    expect(world.receiver.received).toHaveLength(0);

    // A Redrive while its receiver is paused: held, and the page says why: paused, since when (before: "paused,
    // disabled or at its rate", which one left to look up).
    await page.goto(`${world.gateway.url}/console/conversations/${held.body.conversation_id}`);
    await page.locator('button#redrive').click();
    await expect
      .poll(() => page.locator('#flash').innerText())
      .toMatch(
        new RegExp(
          `^Redrive of ${held.body.conversation_id}: held \\(execution \\S+\\) — its receiver held it back: deal_analysis is paused since ${since} \\(\\d+s ago\\): nothing is attempted until it is resumed$`,
        ),
      );
    expect(world.receiver.received).toHaveLength(0);
    await page.goto(`${world.gateway.url}/console/endpoints`);

    await page.locator('#endpoints tr[data-type="deal_analysis"] button[data-endpoint-action="resume"]').click();
    await page.locator('#endpoints tr[data-type="deal_analysis"][data-state="healthy"]').waitFor();
    expect(await page.locator('#endpoints tr[data-type="deal_analysis"] td.queued').innerText()).toBe('2');

    // Plan first: the count, nothing redriven yet; then Recover runs exactly that plan.
    await page.locator('button[data-plan="deal_analysis"]').click();
    const confirm = page.locator('button[data-recover="deal_analysis"]');
    await confirm.waitFor({ state: 'visible' });
    // A second tab plans the same recover.
    const other = await page.context().newPage();
    await other.goto(`${world.gateway.url}/console/endpoints`);
    await other.locator('button[data-plan="deal_analysis"]').click();
    await other.locator('button[data-recover="deal_analysis"]').waitFor({ state: 'visible' });
    expect(await confirm.innerText()).toBe('Recover 2');
    expect(await page.locator('#flash').innerText()).toMatch(
      /^2 deal_analysis deliveries owed since \S+ would be redriven/,
    );
    expect(world.receiver.received).toHaveLength(0);
    await confirm.click();
    await expect
      .poll(() => page.locator('#flash').innerText())
      .toBe('Recovered deal_analysis: 2 redriven (2 delivered)');
    expect(world.receiver.received.map((r) => r.body.conversation_id).sort()).toEqual(
      [ids.failed, held.body.conversation_id].sort(),
    );
    await page.locator('#endpoints tr[data-type="deal_analysis"] td.queued:text-is("0")').waitFor();
    // The plan is used up: its Recover is no longer offered (it stayed, disabled, until a reload).
    expect(await confirm.isVisible()).toBe(false);

    // The second tab's Recover, after the first's: nothing is owed any more, and it says so (not as a failure).
    world.receiver.reset();
    await other.locator('button[data-recover="deal_analysis"]').click();
    await expect
      .poll(() => other.locator('#flash').innerText())
      .toMatch(
        /^Recovered deal_analysis: nothing to redrive, none is owed any more since \S+ \(the plan said 2: delivered or redriven meanwhile\)$/,
      );
    expect(await other.locator('#flash').getAttribute('class')).toBe('ok');
    expect(world.receiver.received).toHaveLength(0);
    await other.close();

    // Another delivery fails: planned again, its Recover can be pressed (it stayed disabled after the first recover).
    world.receiver.reply(400);
    expect((await world.post(SEED_REQUEST)).body.tracking.delivery_status).toBe('failed');
    world.receiver.reset();
    await page.locator('button[data-plan="deal_analysis"]').click();
    await page.locator('button[data-recover="deal_analysis"]:text-is("Recover 1")').waitFor();
    expect(await confirm.isEnabled()).toBe(true);
    await confirm.click();
    await expect
      .poll(() => page.locator('#flash').innerText())
      .toBe('Recovered deal_analysis: 1 redriven (1 delivered)');
  });

  it('a failed-delivery file that is not JSON: the page shows the conversation and names the file, offers no button', async () => {
    const file = path.join(world.dataDir, 'failed-deliveries', `${ids.failed}.json`);
    await writeFile(file, '{"version": 1, "conversation_id');
    // Written in place, the file leaves its folder's time as it was: the store's last look then stands for up to a
    // minute (docs/operations.md), unless it was taken within a second of the folder's last change, so whether the
    // list below saw the damage depended on the machine's speed. The folder's time is moved as a rename moves it.
    const now = new Date();
    await utimes(path.dirname(file), now, now);
    const response = await page.goto(`${world.gateway.url}/console/conversations/${ids.failed}`);
    expect(response?.status()).toBe(200);
    expect(await page.locator('h1.id').innerText()).toBe(ids.failed);
    expect(await page.locator('#envelope-unreadable').innerText()).toMatch(
      new RegExp(
        `^Failed-delivery store: ${file.replaceAll('/', '\\/')} is not valid JSON \\(.+\\)\\. Its redelivery state is not shown`,
      ),
    );
    expect(await page.locator('button#redrive, button#resend').count()).toBe(0);
    expect(await page.locator('#attempts tbody tr').count()).toBe(2);
    // The list says one is left out, and links to its page (it had been silent: nothing owed, as far as it showed).
    await page.goto(`${world.gateway.url}/console`);
    const left = page.locator('#unreadable-deliveries');
    expect(await left.innerText()).toMatch(/^Left out, their failed-delivery file damaged/);
    expect(await left.locator('a').allInnerTexts()).toEqual([ids.failed]);
    expect(await page.locator('h1').count()).toBe(1);
  });
});
