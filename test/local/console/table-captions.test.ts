import type { Page } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { CHROMIUM, skipBrowser } from '../../support/browser.ts';
import { useConsolePage } from '../../support/console-browser.ts';
import { SEED_REQUEST } from '../../support/gateway.ts';

/**
 * Every table of every console page as a screen reader meets it, in Chromium: no table had a caption (a screen reader
 * names a table by it: it said "table, 6 columns" for the failed deliveries, the conversations and each timeline
 * alike), and the column headers had no scope. Now each table says what it lists (its accessible name), each header
 * cell whether it heads a column or a row; the captions are out of sight (the heading above says it to the eye).
 */
if (skipBrowser) console.warn(`console table-captions browser test SKIPPED: ${CHROMIUM} is missing`);

let delivered = '';

/** Each table of the page: its accessible name (from its caption), whether its caption is seen, and headers without scope. */
const tables = (page: Page) =>
  page.locator('main table').evaluateAll((els) =>
    els.map((table) => {
      const caption = table.querySelector(':scope > caption');
      const box = caption?.getBoundingClientRect();
      return {
        caption: caption?.textContent ?? null,
        seen: box ? box.width > 1 && box.height > 1 : false,
        unscoped: [...table.querySelectorAll('th')].filter((th) => !['col', 'row'].includes(th.scope)).length,
      };
    }),
  );

describe.skipIf(skipBrowser)('console tables, in Chromium', () => {
  const opened = useConsolePage({
    noPageErrors: true,
    seed: async (world) => {
      world.receiver.reply(500, 200);
      delivered = (await world.post({ ...SEED_REQUEST, thread_id: 'captions' })).body.conversation_id;
      world.receiver.reply(400);
      expect((await world.post(SEED_REQUEST)).body.tracking.delivery_status).toBe('failed');
    },
  });

  it('each says what it lists, and each header what it heads, on every page', async () => {
    const { world, page } = opened;
    const visit = async (path: string) => {
      await page.goto(`${world.gateway.url}${path}`);
      return tables(page);
    };
    const named = (caption: string | RegExp) => ({
      caption: typeof caption === 'string' ? caption : expect.stringMatching(caption),
      seen: false,
      unscoped: 0,
    });
    expect(await visit('/console')).toEqual([
      named('Failed deliveries still owed, newest first: 1 of 1'),
      named('Recent conversations, newest first'),
    ]);
    expect(await visit('/console?thread=captions')).toEqual([
      named('Failed deliveries still owed, newest first: 1 of 1'),
      named('Conversations matching the filters, in turn order'),
    ]);
    const execution = (await world.gateway.executions.executions(delivered))[0]!.execution_name;
    expect(await visit(`/console/conversations/${delivered}`)).toEqual([
      named(`Delivery attempts of ${delivered}, oldest first`),
      named(`States of execution ${execution}, in the order entered`),
    ]);
    expect(await visit('/console/endpoints')).toEqual([
      named("Receivers, one per webhook type, with each one's state and actions"),
      named('Recover the failed deliveries of each webhook type since a time'),
    ]);
    expect(await visit('/console/analytics')).toEqual([
      named('Conversations per hour by type (UTC), the hours that had one'),
      named('Delivery success per webhook type: delivered of attempted'),
      named('Agent and total time, p50, p90 and p99'),
    ]);
    // The name a screen reader gives the table is its caption.
    await page.goto(`${world.gateway.url}/console`);
    expect(await page.getByRole('table', { name: 'Recent conversations, newest first' }).count()).toBe(1);
  });
});
