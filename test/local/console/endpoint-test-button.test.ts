import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FileEndpointStore } from '../../../functions/shared/endpoint-store.ts';
import { CHROMIUM, skipBrowser } from '../../support/browser.ts';
import { useConsolePage } from '../../support/console-browser.ts';

/**
 * The Endpoints page's Send test in Chromium (`endpoints test <type>` in the console): one signed test delivery to the
 * receiver, marked as a test, and what it answered in the page's line; a URL Deliver would not use is refused.
 */
if (skipBrowser) console.warn(`console endpoint test button browser test SKIPPED: ${CHROMIUM} is missing`);

describe.skipIf(skipBrowser)("the Endpoints page's Send test", () => {
  const opened = useConsolePage({ noPageErrors: true });

  it('sends one test delivery and says what the receiver answered, a refusal too; nothing is queued', async () => {
    const { world, page } = opened;
    await page.goto(`${world.gateway.url}/console/endpoints`);
    const flash = page.locator('#flash');
    const send = (type: string) =>
      page.getByRole('button', { name: `Send a test delivery to ${type}`, exact: true }).click();

    world.receiver.reset();
    world.receiver.reply({ status: 200, body: 'test seen' });
    await send('deal_analysis');
    await expect
      .poll(() => flash.innerText())
      .toMatch(/^Test delivery to deal_analysis \(signed with one secret\): HTTP 200 in \d+ ms — test seen$/);
    expect(await flash.getAttribute('class')).toBe('ok');
    expect(world.receiver.received).toHaveLength(1);
    expect(world.receiver.received[0]!.body).toMatchObject({ test: true, conversation_id: null });
    expect(world.receiver.received[0]!.headers['webhook-test']).toBe('true');

    world.receiver.reply({ status: 503, body: 'down' });
    await send('deal_analysis');
    await expect
      .poll(() => flash.innerText())
      .toMatch(/^Test delivery to deal_analysis \(.*\): HTTP 503 in \d+ ms — down$/);
    expect(await flash.getAttribute('class')).toBe('bad');
    expect(world.receiver.received).toHaveLength(2);

    await new FileEndpointStore(path.join(world.dataDir, 'deliveries')).configure(
      'general',
      { url: 'http://crm.example.com/hook' },
      new Date(),
    );
    await send('general');
    await expect
      .poll(() => flash.innerText())
      .toBe(
        'Test delivery to general failed: general: delivery URL must use https (plain http only to loopback): http://crm.example.com',
      );
    expect(world.receiver.received).toHaveLength(2);
    expect((await world.gateway.failedDeliveries.list()).length).toBe(0);
  });
});
