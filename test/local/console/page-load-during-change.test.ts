import { describe, expect, it } from 'vitest';
import { CHROMIUM, skipBrowser, watchLivePolls } from '../../support/browser.ts';
import { useConsolePage } from '../../support/console-browser.ts';
import { SEED_REQUEST } from '../../support/gateway.ts';

/**
 * A change made while the gateway rendered a page, between its read of what the page shows and its read of the page's
 * version: the page took the change as shown, and its live poll, finding that version, left the change out until the
 * next one (a run that ended while its page was opened stayed "running"). Now the version is read before what the page
 * shows. The page's clock is Playwright's: time is moved on, never waited for.
 */
if (skipBrowser) console.warn(`console page-load-during-change browser test SKIPPED: ${CHROMIUM} is missing`);

describe.skipIf(skipBrowser)('a change made while a page is rendered, in Chromium', () => {
  const opened = useConsolePage({ noPageErrors: true });

  it('is shown by the page’s next poll', async () => {
    const { world, page } = opened;
    const id: string = (await world.post(SEED_REQUEST)).body.conversation_id;
    await world.gateway.idle();
    // Once the page's histories are read, a Resend (another tab, the CLI) is made before the page is answered.
    const executions = world.gateway.executions;
    const read = executions.executionsAndDamaged.bind(executions);
    let armed = true;
    executions.executionsAndDamaged = async (conversationId) => {
      const histories = await read(conversationId);
      if (armed && conversationId === id) {
        armed = false;
        const resent = await fetch(`${world.gateway.url}/local/deliveries/${id}/resend`, { method: 'POST' });
        expect(resent.status).toBe(200);
      }
      return histories;
    };
    try {
      const polls = watchLivePolls(page);
      await page.clock.install();
      const loaded = await page.goto(`${world.gateway.url}/console/conversations/${encodeURIComponent(id)}`);
      expect(armed).toBe(false);
      // The page as rendered: the histories as they were before the Resend.
      expect(
        [...(await loaded!.text()).matchAll(/<section class="execution"[^>]* data-machine="(\w+)"/g)].map((m) => m[1]),
      ).toEqual(['conversation']);
      await page.clock.pauseAt(Date.now() + 60_000);
      const machines = () =>
        page.locator('section.execution').evaluateAll((ss) => ss.map((s) => s.getAttribute('data-machine')));
      // Before: the page's version was read after the Resend: no poll refreshed it.
      await polls.advance(3, async () => (await machines()).length === 2);
      expect(await machines()).toEqual(['conversation', 'redelivery']);
    } finally {
      executions.executionsAndDamaged = read;
    }
  });
});
