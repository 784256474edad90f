import { describe, expect, it } from 'vitest';
import { ExecutionStore } from '../../../local/store/execution-store.ts';
import { CHROMIUM, skipBrowser } from '../../support/browser.ts';
import { useConsolePage } from '../../support/console-browser.ts';
import { SEED_REQUEST } from '../../support/gateway.ts';

/**
 * The console's list shows the newest 100 conversations by the time received, as `conversations list --limit 100`
 * does, also when more than 100 conversations were received and the 100th falls in a second shared with others:
 * within a second, the id order (source first) is not the order received.
 */
if (skipBrowser) console.warn(`console newest-conversations browser test SKIPPED: ${CHROMIUM} is missing`);

/** 101 conversations of one second, newest first by the time received. */
const newestFirst: string[] = [];
let seedId: string;

describe.skipIf(skipBrowser)('the newest conversations in Chromium', () => {
  const opened = useConsolePage({
    seed: async (world) => {
      const seed = (await world.post(SEED_REQUEST)).body;
      seedId = seed.conversation_id;
      const store = new ExecutionStore(world.dataDir);
      const [execution] = await store.executions(seed.conversation_id);
      const text = JSON.stringify(execution);
      const day = JSON.parse(text).started_at.slice(0, 10);
      const seedReceivedAt = (text.match(/"received_at":"([^"]+)"/) ?? [])[1]!;
      // Source s000 is received last (.900 s), s100 first (.000 s): the id order within the second is the reverse.
      for (let n = 0; n <= 100; n++) {
        const source = `s${String(n).padStart(3, '0')}`;
        const id = `webhook_${day.replaceAll('-', '')}_235959_${source}_p_aaaaaaaaaa`;
        const at = `${day}T23:59:59.${String(900 - n * 9).padStart(3, '0')}Z`;
        const copy = JSON.parse(text.replaceAll(seed.conversation_id, id).replaceAll(seedReceivedAt, at));
        await store.save(id, copy);
        newestFirst.push(id);
      }
    },
  });

  it('lists the 100 received last, newest first, and the rest on the next page', async () => {
    const { world, page } = opened;
    await page.goto(`${world.gateway.url}/console`);
    const shown = await page
      .locator('#conversations tbody tr')
      .evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-id')));
    expect(shown).toEqual(newestFirst.slice(0, 100));
    // The next page goes on where this one ended, within that same second: nothing missed, nothing twice.
    await page.click('#older');
    const older = await page
      .locator('#conversations tbody tr')
      .evaluateAll((trs) => trs.map((tr) => tr.getAttribute('data-id')));
    expect(older).toEqual([newestFirst[100], seedId]);
    expect(await page.locator('#older').count()).toBe(0);
    expect(new URL(page.url()).searchParams.get('cursor')).toMatch(/,webhook_\d{8}_235959_s099_p_aaaaaaaaaa$/);
  });
});
