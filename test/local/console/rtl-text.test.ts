import type { Locator } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { CHROMIUM, skipBrowser } from '../../support/browser.ts';
import { useConsolePage } from '../../support/console-browser.ts';
import { SEED_REQUEST } from '../../support/gateway.ts';

/**
 * A question in Arabic ending in "?" (as a Latin keyboard types it), in Chromium: the list's query column and the
 * conversation page laid it out left to right, as the page's English is, so its question mark stood at its right-hand
 * end, where an Arabic reader begins (a thread's turns and a receiver's body alike). Free text now takes its own
 * direction: the question mark ends it, on the left.
 */
if (skipBrowser) console.warn(`console rtl-text browser test SKIPPED: ${CHROMIUM} is missing`);

const QUESTION = 'ما هي أفضل الصفقات هذا الربع?';
let id = '';

/** Whether the text's last character (its question mark) is drawn left of its first, as right-to-left text is. */
const endsOnTheLeft = (element: Locator) =>
  element.evaluate((el) => {
    const text = el.firstChild!;
    const box = (from: number) => {
      const range = el.ownerDocument.createRange();
      range.setStart(text, from);
      range.setEnd(text, from + 1);
      return range.getBoundingClientRect();
    };
    return box(text.textContent!.length - 1).right <= box(0).left;
  });

describe.skipIf(skipBrowser)('a question in Arabic, in Chromium', () => {
  const opened = useConsolePage({
    noPageErrors: true,
    seed: async (world) => {
      id = (await world.post({ ...SEED_REQUEST, query: QUESTION })).body.conversation_id;
    },
  });

  it('reads right to left in the list and on its page', async () => {
    const { world, page } = opened;
    await page.goto(`${world.gateway.url}/console`);
    const cell = page.locator(`#conversations tr[data-id="${id}"] td.query`);
    expect(await cell.innerText()).toBe(QUESTION);
    expect(await endsOnTheLeft(cell)).toBe(true);
    await page.goto(`${world.gateway.url}/console/conversations/${id}`);
    const query = page.locator('h2:has-text("Query") + pre');
    expect(await query.innerText()).toBe(QUESTION);
    expect(await endsOnTheLeft(query)).toBe(true);
  });
});
