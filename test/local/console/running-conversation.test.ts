import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, skipBrowser, useBrowserPage } from '../../support/browser.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * An asynchronous conversation whose run is still going (its agent has not answered): its console page showed
 * status in_progress, "(no answer)" and a timeline of the accept execution alone, with no word of the run, which
 * read as a conversation stuck after its accept. It now says the run is under way, and when that means it was lost.
 * A synchronous one (its caller waiting for the answer) was not listed at all until it ended: it is now shown as
 * running, as an asynchronous one is, and turns into its finished row.
 */
if (skipBrowser) console.warn(`console running-conversation browser test SKIPPED: ${CHROMIUM} is missing`);

let world: TestWorld;

beforeAll(async () => {
  // The synchronous caller waits while the page is looked at: its agent's timeout (5 s in tests) must not end it first.
  world = await startWorld({ MANAGER_AGENT_TIMEOUT_MS: '20000' });
});
afterAll(async () => {
  await world?.close();
});

describe('console conversation page of a conversation still running', () => {
  it('says its run is under way, until the run ends', async () => {
    let answer = () => {};
    const answered = new Promise<void>((resolve) => {
      answer = resolve;
    });
    world.agent.behave(async (request) => {
      await answered;
      return { payload: { response: `Answer to: ${String(request.query)}` } };
    });
    try {
      const accepted = await world.post(SEED_REQUEST, { prefer: 'respond-async' });
      expect(accepted.status).toBe(202);
      const id = accepted.body.conversation_id as string;
      const page = async () => {
        const response = await fetch(`${world.gateway.url}/console/conversations/${id}`);
        return { status: response.status, text: await response.text() };
      };
      await expect.poll(async () => (await page()).status).toBe(200);
      // The run's execution is shown from its first state on (just after the accept's ended).
      await expect.poll(async () => (await page()).text).toContain('<span class="badge b-running">RUNNING</span>');
      const running = (await page()).text;
      expect(running).toContain('<span class="badge b-in_progress">in_progress</span>');
      // The run's execution is shown as far as it went: its agent has not answered.
      expect(running).toContain(
        '<p class="note" id="run-under-way">Its run is under way: the execution working on it is shown below as far as it went',
      );
      expect(running).toMatch(/<section class="execution" data-name="[^"]+" data-machine="conversation">/);
      expect(running).toContain('<span class="badge b-running">RUNNING</span>');

      answer();
      await expect.poll(async () => (await page()).text).toContain('<span class="badge b-completed">completed</span>');
      expect((await page()).text).not.toContain('run-under-way');
    } finally {
      answer();
      world.agent.reset();
    }
  });
});

describe.skipIf(skipBrowser)('console list of a synchronous conversation still running, in Chromium', () => {
  let page: Page;
  useBrowserPage((opened) => {
    page = opened;
  });

  it('shows it running while its caller waits, then as the finished row', async () => {
    let answer = () => {};
    const answered = new Promise<void>((resolve) => {
      answer = resolve;
    });
    const entered = new Promise<void>((resolve) => {
      world.agent.behave(async (request) => {
        resolve();
        await answered;
        return { payload: { response: `Answer to: ${String(request.query)}` } };
      });
    });
    try {
      await page.goto(`${world.gateway.url}/console`);
      // No Prefer: respond-async: the caller waits for the agent's answer.
      const waiting = world.post({ ...SEED_REQUEST, query: 'A slow synchronous question', thread_id: 'slow-thread' });
      await entered;
      const row = page.locator('#conversations tbody tr', { hasText: 'A slow synchronous question' });
      await row.waitFor();
      expect(await row.getAttribute('data-status')).toBe('in_progress');
      expect(await row.locator('td').nth(4).innerText()).toBe('in_progress');
      const id = (await row.getAttribute('data-id')) as string;

      // Its page says the run is under way, with the states it went through so far.
      await row.locator('a').first().click();
      await page.waitForURL(`**/console/conversations/${id}`);
      expect(await page.locator('#conversation-status').innerText()).toBe('in_progress');
      await page.locator('#run-under-way').waitFor();
      expect(await page.locator('section.execution tr[data-state="InvokeManagerAgent"] td').last().innerText()).toBe(
        'running',
      );
      // Its thread's page has it too, as its turn still running.
      await page.goto(`${world.gateway.url}/console/threads/testing_system/slow-thread`);
      expect(
        await page.locator('ol.thread > li').evaluateAll((lis) => lis.map((li) => li.getAttribute('data-id'))),
      ).toEqual([id]);
      expect(await page.locator('ol.thread > li p.turn .badge').first().innerText()).toBe('in_progress');
      await page.goto(`${world.gateway.url}/console`);

      answer();
      const done = await waiting;
      expect(done.status).toBe(200);
      expect(done.body.conversation_id).toBe(id);
      const rows = page.locator(`#conversations tbody tr[data-id="${id}"]`);
      await expect.poll(() => rows.getAttribute('data-status')).toBe('completed');
      expect(await rows.count()).toBe(1);
      expect(await rows.getAttribute('data-delivery')).toBe('delivered');
    } finally {
      answer();
      world.agent.reset();
    }
  });

  it('masks a secret in it while it runs, as its saved history does', async () => {
    let answer = () => {};
    const answered = new Promise<void>((resolve) => {
      answer = resolve;
    });
    const entered = new Promise<void>((resolve) => {
      world.agent.behave(async () => {
        resolve();
        await answered;
        return { payload: { response: 'noted' } };
      });
    });
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw';
    try {
      const waiting = world.post({ ...SEED_REQUEST, query: `Rotate ${secret} please` });
      await entered;
      await page.goto(`${world.gateway.url}/console`);
      const row = page.locator('#conversations tbody tr', { hasText: 'Rotate' });
      await row.waitFor();
      expect(await row.getAttribute('data-status')).toBe('in_progress');
      expect(await row.locator('td.query').innerText()).toBe('Rotate **** please');
      await row.locator('a').first().click();
      await page.locator('#run-under-way').waitFor();
      expect(await page.locator('main').innerText()).not.toContain(secret);
      answer();
      const done = await waiting;
      // Saved: the same, masked.
      await page.goto(`${world.gateway.url}/console`);
      const saved = page.locator(`#conversations tbody tr[data-id="${done.body.conversation_id}"]`);
      expect(await saved.getAttribute('data-status')).toBe('completed');
      expect(await saved.locator('td.query').innerText()).toBe('Rotate **** please');
    } finally {
      answer();
      world.agent.reset();
    }
  });
});

// Last in this file: it stops the gateway.
describe.skipIf(skipBrowser)(
  'console page open while the gateway stops with a conversation in flight, in Chromium',
  () => {
    let page: Page;
    useBrowserPage((opened) => {
      page = opened;
    });

    it('says the gateway is stopping while that conversation finishes, then that it is not reachable', async () => {
      let answer = () => {};
      const answered = new Promise<void>((resolve) => {
        answer = resolve;
      });
      const entered = new Promise<void>((resolve) => {
        world.agent.behave(async () => {
          resolve();
          await answered;
          return { payload: { response: 'late' } };
        });
      });
      try {
        const waiting = world.post({ ...SEED_REQUEST, query: 'In flight at the stop' });
        await entered;
        await page.goto(`${world.gateway.url}/console`);
        await page.locator('#live.ok').waitFor();
        const closing = world.gateway.close();
        await page.locator('#live:text-is("gateway stopping")').waitFor();
        expect(await page.locator('#live').getAttribute('title')).toBe(
          'the gateway is stopping: the conversations in flight finish, new ones are refused until it is started again',
        );
        answer();
        expect((await waiting).status).toBe(200);
        await closing;
        await page.locator('#live:text-is("gateway not reachable")').waitFor();
      } finally {
        answer();
        world.agent.reset();
      }
    });
  },
);
