import { describe, expect, it } from 'vitest';
import { CHROMIUM, rawGet, skipBrowser } from '../../support/browser.ts';
import { useConsolePage } from '../../support/console-browser.ts';
import { SEED_REQUEST } from '../../support/gateway.ts';

/**
 * A conversation whose delivery failed in its run (four tries), then redriven: its page's timings and the list's
 * delivery column added the redrive's time in Deliver to the run's, so the delivery read larger than the conversation's
 * total (the redrive came later, outside the total), and nothing said when that part happened. Now the run's delivery
 * is its own (a part of the total) and the redrive is a line of its own: what ran it, when, and its own time.
 */
if (skipBrowser) console.warn(`console redriven-timings browser test SKIPPED: ${CHROMIUM} is missing`);

let id = '';

describe.skipIf(skipBrowser)('a redriven delivery’s time, in Chromium', () => {
  const opened = useConsolePage({
    noPageErrors: true,
    seed: async (world) => {
      world.receiver.reply(500, 500, 500, 500);
      const failed = await world.post(SEED_REQUEST);
      expect(failed.body.tracking.delivery_status).toBe('retrying');
      id = failed.body.conversation_id;
      world.receiver.reply(200);
      const redrive = await rawGet(`${world.gateway.url}/local/deliveries/${id}/redrive`, {}, 'POST');
      expect(JSON.parse(redrive.body).status).toBe('delivered');
    },
  });

  it('shows the run’s delivery inside its total, and the redrive apart with when it ran', async () => {
    const { world, page } = opened;
    const api = JSON.parse((await rawGet(`${world.gateway.url}/console/api/conversations`)).body);
    const row = api.conversations.find((c: { conversation_id: string }) => c.conversation_id === id);
    expect(row.delivery_ms).toBeLessThanOrEqual(row.total_time_ms);
    const redriveRun = (await world.gateway.executions.executions(id)).find((e) => e.state_machine === 'redelivery')!;
    expect(row.later_deliveries).toEqual([
      { at: redriveRun.started_at, via: 'redrive', delivery_ms: expect.any(Number), tries: 1, result: 'delivered' },
    ]);

    await page.goto(`${world.gateway.url}/console/conversations/${id}`);
    expect(await page.locator('#timings').innerText()).toMatch(
      /^agent \d+ ms · delivery \d+ ms \(4 tries, 3 retries in the workflow\) · total \d+ ms · run \d+ ms$/,
    );
    expect(await page.locator('#later-deliveries li').allInnerTexts()).toEqual([
      expect.stringMatching(
        new RegExp(`^redrive at ${redriveRun.started_at}: delivered, delivery \\d+ ms \\(1 try\\)$`),
      ),
    ]);

    // The list's delivery column (a wide window shows it): the run's time, and the redrive marked beside it.
    await page.setViewportSize({ width: 1600, height: 900 });
    await page.goto(`${world.gateway.url}/console`);
    const later = page.locator(`#conversations tr[data-id="${id}"] small.later`);
    expect(await later.innerText()).toBe('+1 later');
    expect(await later.getAttribute('title')).toMatch(/^redrive at \S+: delivered, delivery \d+ ms \(1 try\)$/);
  });
});
