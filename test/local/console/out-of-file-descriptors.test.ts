import type { Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { ExecutionStore } from '../../../local/store/execution-store.ts';
import { CHROMIUM, skipBrowser, useBrowserPage } from '../../support/browser.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * The console while the gateway process is out of file descriptors (EMFILE, its `ulimit -n`): a page it cannot build
 * was a 500 "This page could not be built: EMFILE: too many open files, open '…'" and a stack trace in the terminal,
 * and an open page's live refresh dropped the answer ("HTTP 503" from its check). Now the page is answered 503 with
 * Retry-After, as the gateway answers its API (local/server/storage-failure.ts): what the gateway could not do and
 * what to do, the terminal's line naming the data folder and the file, no stack; an open page shows it.
 */
if (skipBrowser) console.warn(`console out-of-file-descriptors browser test SKIPPED: ${CHROMIUM} is missing`);

let world: TestWorld;
beforeAll(async () => {
  world = await startWorld();
  await world.post(SEED_REQUEST);
});
afterAll(async () => {
  await world?.close();
});
afterEach(() => {
  vi.restoreAllMocks();
});

/** The executions folder's listing refused as a process out of file descriptors is refused. */
function outOfFileDescriptors() {
  const dir = `${world.dataDir}/executions`;
  const emfile = () =>
    Object.assign(new Error(`EMFILE: too many open files, scandir '${dir}'`), {
      code: 'EMFILE',
      errno: -24,
      syscall: 'scandir',
      path: dir,
    });
  vi.spyOn(ExecutionStore.prototype, 'conversationIds').mockImplementation(() => Promise.reject(emfile()));
  return vi.spyOn(console, 'error').mockImplementation(() => undefined);
}

const SAID =
  'This page could not be built: the local gateway cannot open a file of its data folder (EMFILE: too many open files in the gateway process). The gateway process is out of file descriptors: close what holds them, or start it again with a higher limit (ulimit -n 1024); the page is shown again once it can.';

describe('a console page the gateway cannot build for want of file descriptors', () => {
  it('503 with Retry-After, what happened and what to do; the terminal names the folder and the file, no stack', async () => {
    const printed = outOfFileDescriptors();
    const response = await fetch(`${world.gateway.url}/console`);
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('30');
    const text = await response.text();
    expect(text).toContain(`<p class="err" id="page-error">${SAID}</p>`);
    expect(printed).toHaveBeenCalledTimes(1);
    expect(String(printed.mock.calls[0]![0])).toBe(
      `webhook-gateway: GET "/console" failed: the data folder ${world.dataDir} refused an open (EMFILE: too many open files, scandir '${world.dataDir}/executions'); answered 503 STORAGE_UNAVAILABLE until it takes it again`,
    );
  });
});

describe.skipIf(skipBrowser)('an open console page when the gateway runs out of file descriptors, in Chromium', () => {
  let page: Page;
  useBrowserPage((opened) => {
    page = opened;
  });

  it('the header says "gateway error" and the page shows what happened and what to do; back once it can', async () => {
    await page.goto(`${world.gateway.url}/console`);
    await page.locator('#conversations tbody tr').first().waitFor();
    await page.locator('#live.ok').waitFor();
    outOfFileDescriptors();
    await world.post(SEED_REQUEST); // the list changed: its check reads the folder again
    await page.locator('#live:text-is("gateway error")').waitFor();
    await page.locator('#page-error').waitFor();
    expect(await page.locator('#page-error').innerText()).toBe(SAID);

    vi.restoreAllMocks();
    await page.locator('#conversations tbody tr').first().waitFor();
    await page.locator('#live.ok:text-is("live")').waitFor();
    expect(await page.locator('#page-error').count()).toBe(0);
  });
});
