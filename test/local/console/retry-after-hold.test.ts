import { describe, expect, it } from 'vitest';
import { CHROMIUM, skipBrowser, watchLivePolls } from '../../support/browser.ts';
import { useConsolePage } from '../../support/console-browser.ts';
import { SEED_REQUEST } from '../../support/gateway.ts';

/**
 * A delivery its receiver's Retry-After holds (429 with `Retry-After: 3600`): the conversation page said only
 * `next automatic attempt held: Retry-After, until <time>`, and offered Redrive as "delivers it now", though the
 * receiver's hold holds a redrive back too (nothing attempted). Now the page says it is held by its receiver, until
 * when and why, what the schedule does then and what the operator can do (docs/operations.md, "Retry-After"); the
 * Redrive's note says it would be held back too, its "in <age>" going on as the page's clock does (Playwright's: moved
 * on, never waited for).
 */
if (skipBrowser) console.warn(`console retry-after-hold browser test SKIPPED: ${CHROMIUM} is missing`);

let id = '';

describe.skipIf(skipBrowser)('a delivery held by its receiver’s Retry-After, in Chromium', () => {
  const opened = useConsolePage({
    noPageErrors: true,
    seed: async (world) => {
      world.receiver.reply({ status: 429, headers: { 'retry-after': '3600' }, body: 'slow down' });
      const held = await world.post(SEED_REQUEST);
      expect(held.body.tracking.delivery_status).toBe('retrying');
      id = held.body.conversation_id;
    },
  });

  it('says it is held, until when, why, and what to do; Redrive says it would be held back too', async () => {
    const { world, page } = opened;
    const polls = watchLivePolls(page);
    await page.clock.install();
    await page.goto(`${world.gateway.url}/console/conversations/${id}`);
    await page.clock.pauseAt(Date.now() + 1_000);
    const hold = page.locator('#retry-after-hold');
    const until = await hold.locator('[data-age-until]').getAttribute('data-age-until');
    expect(until).toMatch(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/);
    expect(await hold.innerText()).toBe(
      `Held by its receiver: deal_analysis asked for nothing before ${until} (in 60m; its Retry-After). It answered 429 or 503 with a Retry-After: nothing of its type is sent before then, this delivery included, and a redrive or resend before then is held back too. The schedule tries it then by itself: nothing to do. Sure that deal_analysis takes deliveries again sooner? Its Resume now on Endpoints (or npx webhook-gateway endpoints resume deal_analysis) forgets its Retry-After, then Redrive.`,
    );
    const note = page.locator('#redrive-note');
    expect(await note.innerText()).toBe(
      `a redrive is held back too, nothing attempted, until ${until} (in 60m; deal_analysis's Retry-After: why, and what to do)`,
    );
    // Left open half an hour, nothing changed: the time left goes on.
    await page.clock.fastForward(30 * 60_000);
    await polls.advance(2);
    expect(await note.innerText()).toContain(`until ${until} (in 30m;`);
    expect(await hold.innerText()).toContain(`(in 30m; its Retry-After)`);
    // The link leads to the explanation, from the keyboard too.
    await note.getByRole('link', { name: 'why, and what to do' }).focus();
    await page.keyboard.press('Enter');
    expect(new URL(page.url()).hash).toBe('#retry-after-hold');
  });

  it('Endpoints offers Resume now for the held receiver, says what it means, and releases the hold', async () => {
    const { world, page } = opened;
    await page.clock.resume(); // the first test paused the page's clock: its live updates run again
    await page.goto(`${world.gateway.url}/console/endpoints`);
    const row = page.locator('#endpoints tr[data-type="deal_analysis"]');
    // Before: an active receiver held by its Retry-After had only Pause (and Send test): no way to release it here.
    const release = row.getByRole('button', { name: 'Resume deal_analysis now, forgetting its Retry-After' });
    expect(await release.getAttribute('title')).toMatch(
      /^deal_analysis asked for nothing before \S+Z: Resume forgets that, so its queued deliveries go out when the schedule finds them due and a redrive or resend is sent at once\. Only when you know it takes deliveries again/,
    );
    // A receiver not held has none.
    expect(await page.locator('#endpoints tr[data-type="general"] button[data-releases]').count()).toBe(0);
    world.receiver.reset();
    await release.click();
    await expect
      .poll(() => page.locator('#flash').textContent(), { timeout: 15_000 })
      .toContain(
        'deal_analysis is healthy: its Retry-After is forgotten; its queued deliveries go out when the schedule finds them due, a redrive or resend at once',
      );
    await expect.poll(() => row.locator('.retry-after').count(), { timeout: 15_000 }).toBe(0);
    expect(await row.locator('button[data-releases]').count()).toBe(0);
    const rows = (await (await fetch(`${world.gateway.url}/local/endpoints`)).json()) as {
      webhook_type: string;
      retry_after_until: string | null;
    }[];
    expect(rows.find((e) => e.webhook_type === 'deal_analysis')?.retry_after_until).toBeNull();

    // Its conversation's page no longer says it is held.
    await page.goto(`${world.gateway.url}/console/conversations/${id}`);
    expect(await page.locator('#retry-after-hold').count()).toBe(0);
  });
});
