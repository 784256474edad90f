import { describe, expect, it } from 'vitest';
import { CHROMIUM, skipBrowser } from '../../support/browser.ts';
import { useConsolePage } from '../../support/console-browser.ts';
import { folderOf, SEED_REQUEST } from '../../support/gateway.ts';

/**
 * A NUL, an ESC and a right-to-left override in a question, and a NUL and a BEL in a receiver's answer, in Chromium:
 * the console echoed them raw into the page, where the browser drops the NUL (the text read as if it had none) and the
 * override turned the text after it around. Now each is written out as `conversations show` writes it (`\u0000`,
 * `\u001b`, `\u202e`; a lone CR as `\r`), the question's line breaks kept as lines; the stored conversation is
 * unchanged. The Endpoints page's Send test quotes the receiver's answer alike.
 */
if (skipBrowser) console.warn(`console control-characters browser test SKIPPED: ${CHROMIUM} is missing`);

const QUERY = 'Top deals\u0000 this quarter\u001b[31m?\nsecond line \u202eevil\u202c\rend';
const SHOWN = 'Top deals\\u0000 this quarter\\u001b[31m?\nsecond line \\u202eevil\\u202c\\rend';
/** On one line in the list, its white space (the line break, the CR) one space each, as `conversations list` has it. */
const LISTED = 'Top deals\\u0000 this quarter\\u001b[31m? second line \\u202eevil\\u202c end';
const ANSWER = 'stored\u0000 as CRM-7\u0007';
const ANSWER_SHOWN = 'stored\\u0000 as CRM-7\\u0007';
let id = '';

describe.skipIf(skipBrowser)('control characters of stored text, in Chromium', () => {
  const opened = useConsolePage({
    noPageErrors: true,
    seed: async (world) => {
      world.receiver.reply({ status: 200, body: ANSWER });
      const answer = await world.post({ ...SEED_REQUEST, query: QUERY });
      expect(answer.body.tracking.delivery_status).toBe('delivered');
      id = answer.body.conversation_id;
    },
  });

  it('are written out in the list and on the conversation page; the stored text keeps them', async () => {
    const { world, page } = opened;
    await page.goto(`${world.gateway.url}/console`);
    const cell = page.locator(`#conversations tr[data-id="${id}"] td.query`);
    expect(await cell.innerText()).toBe(LISTED);
    expect(await cell.getAttribute('title')).toBe(LISTED);

    await page.goto(`${world.gateway.url}/console/conversations/${id}`);
    expect(await page.locator('h2:has-text("Query") + pre').innerText()).toBe(SHOWN);
    const answer = page.locator('#attempts tr[data-attempt="1"] details.answer');
    expect(await answer.locator('summary').innerText()).toBe(ANSWER_SHOWN);
    await answer.locator('summary').click();
    expect(await answer.locator('pre').innerText()).toBe(ANSWER_SHOWN);

    // Stored as sent: only the page writes them out.
    const stored = await world.getJson(`${folderOf(id)}conversation.json`);
    expect(stored.conversation.conversation.turns[0].content).toBe(QUERY);
  });

  it('a test delivery’s answer quoted on the Endpoints page is written out too', async () => {
    const { world, page } = opened;
    await page.goto(`${world.gateway.url}/console/endpoints`);
    world.receiver.reply({ status: 200, body: ANSWER });
    await page.getByRole('button', { name: 'Send a test delivery to deal_analysis' }).click();
    await expect.poll(() => page.locator('#flash').innerText()).toMatch(/^Test delivery to deal_analysis/);
    expect(await page.locator('#flash').innerText()).toMatch(/ — stored\\u0000 as CRM-7\\u0007$/);
  });
});
