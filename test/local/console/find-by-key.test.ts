import { describe, expect, it } from 'vitest';
import { ExecutionStore } from '../../../local/store/execution-store.ts';
import { CHROMIUM, skipBrowser } from '../../support/browser.ts';
import { until } from '../../support/cli.ts';
import { useConsolePage } from '../../support/console-browser.ts';
import { SEED_REQUEST, type TestWorld } from '../../support/gateway.ts';

/**
 * The Conversations list's `key` field in Chromium: the webhook-id (or Idempotency-Key) a source system knows finds
 * its conversation, the filter kept in the address, and the conversation's page shows both keys of its request
 * (docs/operations.md, "Find a conversation by the source's message id"). Before, the form had no such field and
 * `?key=` was refused as an unknown parameter.
 */
if (skipBrowser) console.warn(`console find-by-key browser test SKIPPED: ${CHROMIUM} is missing`);

const ids: Record<string, string> = {};

async function seed(world: TestWorld): Promise<void> {
  for (const [name, headers] of [
    ['wanted', { 'webhook-id': 'msg_console_42', 'Idempotency-Key': 'order-42' }],
    ['other', { 'webhook-id': 'msg_console_43' }],
    ['plain', {}],
  ] as const) {
    const answer = await world.post(SEED_REQUEST, headers);
    expect(answer.status).toBe(200);
    ids[name] = answer.body.conversation_id;
  }
  const store = new ExecutionStore(world.dataDir);
  for (const id of Object.values(ids))
    await until(`the history of ${id}`, async () => (await store.executions(id)).length > 0);
}

describe.skipIf(skipBrowser)("the list's key filter in Chromium", () => {
  const browser = useConsolePage({ seed, noPageErrors: true });
  const shownIds = () =>
    browser.page.locator('#conversations tbody tr').evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-id')));

  it('finds the conversation by its webhook-id from the form, and its page shows both keys', async () => {
    const { page, world } = browser;
    await page.goto(`${world.gateway.url}/console`);
    expect(await shownIds()).toEqual([ids.plain, ids.other, ids.wanted]);
    await page.fill('#filters input[name="key"]', 'msg_console_42');
    await page.press('#filters input[name="key"]', 'Enter');
    await page.waitForURL(/key=msg_console_42/);
    expect(await shownIds()).toEqual([ids.wanted]);
    await page.reload();
    expect(await shownIds()).toEqual([ids.wanted]);
    expect(await page.inputValue('#filters input[name="key"]')).toBe('msg_console_42');
    // The Idempotency-Key it carried finds it too; another case is another key.
    await page.goto(`${world.gateway.url}/console?key=order-42`);
    expect(await shownIds()).toEqual([ids.wanted]);
    await page.goto(`${world.gateway.url}/console?key=ORDER-42`);
    expect(await shownIds()).toEqual([]);
    await page.goto(`${world.gateway.url}/console?key=order-42`);
    await page.click(`#conversations tbody tr[data-id="${ids.wanted}"] a`);
    await page.waitForURL(new RegExp(`/console/conversations/${ids.wanted}$`));
    expect(await page.locator('#request-keys').innerText()).toBe(
      'idempotency key order-42 · webhook-id msg_console_42',
    );
  });
});
