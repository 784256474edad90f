import { describe, expect, it } from 'vitest';
import { CHROMIUM, rawGet, skipBrowser, watchLivePolls } from '../../support/browser.ts';
import { runMain } from '../../support/cli.ts';
import { useConsolePage } from '../../support/console-browser.ts';

/**
 * After `endpoints set <type> --secret …`, the Endpoints page did not say that the receiver's deliveries were signed,
 * nor with two secrets (the new and the previous one) until --drop-previous-secret, nor since when: the old secret was
 * easily forgotten. Now each row says how its deliveries are signed and, during a rotation, since when and the command
 * that ends it, as `endpoints list` says it (the age kept current), never a secret.
 */
if (skipBrowser) console.warn(`console Endpoints signing browser test SKIPPED: ${CHROMIUM} is missing`);

describe.skipIf(skipBrowser)('the Endpoints page during a rotation of a delivery secret, in Chromium', () => {
  const opened = useConsolePage({ noPageErrors: true });

  it('says two secrets since when and how to end it, then one secret once the previous one is dropped', async () => {
    const { world, page } = opened;
    const polls = watchLivePolls(page);
    const endpoints = (...args: string[]) =>
      runMain(['endpoints', ...args], { LOCAL_DATA_DIR: world.dataDir, GATEWAY_URL: world.gateway.url });
    await page.clock.install();
    const set = await endpoints('set', 'general', '--secret', 'whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=');
    expect(set.code, set.stderr).toBe(0);
    await page.goto(`${world.gateway.url}/console/endpoints`);
    await page.clock.pauseAt(Date.now() + 1_000);
    const signing = (type: string) => page.locator(`#endpoints tr[data-type="${type}"] td.signing`);
    expect(await signing('deal_analysis').innerText()).toBe('one secret');
    const since = await signing('general').locator('[data-age-of]').getAttribute('data-age-of');
    expect(await signing('general').innerText()).toMatch(
      new RegExp(
        `^two secrets since ${since!.replace(/\./g, '\\.')} \\(\\d+s ago\\): endpoints set general --drop-previous-secret once the receiver verifies the new one$`,
      ),
    );
    expect(await page.content()).not.toContain('whsec_');
    // GET /local/endpoints (what the page's buttons are answered with) says the same.
    const listed = await rawGet(`${world.gateway.url}/local/endpoints`);
    expect(listed.body).not.toContain('whsec_');
    expect(JSON.parse(listed.body)).toContainEqual(
      expect.objectContaining({ webhook_type: 'general', signing_secrets: 2, secrets_changed_at: since }),
    );
    // Left open, the age goes on.
    await page.clock.fastForward(3 * 3_600_000);
    await polls.advance(2);
    expect(await signing('general').innerText()).toMatch(/^two secrets since \S+ \(3h ago\): endpoints/);

    expect((await endpoints('set', 'general', '--drop-previous-secret')).code).toBe(0);
    await page.goto(`${world.gateway.url}/console/endpoints`);
    expect(await signing('general').innerText()).toBe('one secret');
  });
});
