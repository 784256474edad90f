import { describe, expect, it } from 'vitest';
import { CHROMIUM, skipBrowser } from '../../support/browser.ts';
import { useConsolePage } from '../../support/console-browser.ts';
import { SEED_REQUEST } from '../../support/gateway.ts';

/**
 * A conversation page in a phone's window (375 px), in Chromium: its attempt table and each execution's timeline were
 * tables wider than the window (the page scrolled 233 px sideways inside it), a failed state's result (the receiver's
 * error, a few hundred characters) squeezed into the last column, off the screen, a few letters a line down a card
 * otherwise blank; the export documents' S3 keys pushed it sideways too. Now each row is a card: its figures under
 * their column's name, its result or the receiver's answer the card's whole width, nothing sideways.
 */
if (skipBrowser) console.warn(`console phone-conversation browser test SKIPPED: ${CHROMIUM} is missing`);

let id = '';

describe.skipIf(skipBrowser)('a conversation page in a 375 px window, in Chromium', () => {
  const opened = useConsolePage({
    noPageErrors: true,
    seed: async (world) => {
      const error = { status: 500, body: 'the CRM is restarting, please try again in a few minutes '.repeat(4) };
      world.receiver.reply(error, error, error, error);
      const failed = await world.post(SEED_REQUEST);
      expect(failed.body.tracking.delivery_status).toBe('retrying');
      id = failed.body.conversation_id;
    },
  });

  it('reads each attempt and each state without scrolling sideways, a failed state’s error across the card', async () => {
    const { world, page } = opened;
    await page.setViewportSize({ width: 375, height: 800 });
    await page.goto(`${world.gateway.url}/console/conversations/${id}`);
    const main = page.locator('main');
    expect(await main.evaluate((m) => m.scrollWidth - m.clientWidth)).toBe(0);

    const section = await page.locator('section.execution').first().boundingBox();
    const result = page.locator('table.timeline tr[data-state="Deliver"] td.wide');
    expect(await result.innerText()).toMatch(/^caught DeliveryRetryableError: HTTP 500: the CRM is restarting/);
    const box = (await result.boundingBox())!;
    // The card's width (its padding apart), within the window.
    expect(box.width).toBeGreaterThan(section!.width * 0.85);
    expect(box.x + box.width).toBeLessThanOrEqual(375);
    // Its figures, each named (the column's name, drawn before it), on the line above it.
    const named = (row: string) =>
      page.locator(`${row} td:not(.wide)`).evaluateAll((tds) =>
        tds.map((td) => {
          const label = td.ownerDocument.defaultView!.getComputedStyle(td, '::before').content;
          return `${label === 'none' ? '' : JSON.parse(label)}${td.textContent}`;
        }),
      );
    expect(await named('table.timeline tr[data-state="Deliver"]')).toEqual([
      'Deliver',
      expect.stringMatching(/^start \+\d+ ms$/),
      expect.stringMatching(/^duration \d+ ms$/),
      'retries 3',
    ]);
    const figures = await page.locator('table.timeline tr[data-state="Deliver"] td').first().boundingBox();
    expect(figures!.y).toBeLessThan(box.y);

    const attempt = page.locator('#attempts tr[data-attempt="1"]');
    expect(await named('#attempts tr[data-attempt="1"]')).toEqual([
      '# 1',
      expect.stringMatching(/^at \S+Z$/),
      'via workflow',
      'retryable',
      'HTTP 500',
      expect.stringMatching(/^duration \d+ ms$/),
    ]);
    const answer = (await attempt.locator('td.answer').boundingBox())!;
    expect(answer.x + answer.width).toBeLessThanOrEqual(375);

    // Where a wide window keeps them: a table row, its result the last column.
    await page.setViewportSize({ width: 1280, height: 800 });
    const cells = await page
      .locator('table.timeline tr[data-state="Deliver"] td')
      .evaluateAll((tds) => tds.map((td) => td.ownerDocument.defaultView!.getComputedStyle(td).display));
    expect(cells).toEqual(['table-cell', 'table-cell', 'table-cell', 'table-cell', 'table-cell']);
  });
});
