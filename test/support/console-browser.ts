import type { Page } from 'playwright-core';
import { afterAll, beforeAll } from 'vitest';
import { useBrowserPage } from './browser.ts';
import { startWorld, type TestWorld } from './gateway.ts';

/** What the tests of useConsolePage's `describe` read, inside a test: the gateway world and Chromium's page. */
export interface ConsolePage {
  readonly world: TestWorld;
  readonly page: Page;
}

/**
 * Inside a `describe` of the console in Chromium: before its tests, a gateway world (`startWorld(env)`, then `seed`)
 * and Chromium's page (useBrowserPage, `noPageErrors` checked after them); after them, the page closed, then the world.
 */
export function useConsolePage(
  options: { env?: Record<string, string>; seed?: (world: TestWorld) => Promise<void>; noPageErrors?: boolean } = {},
): ConsolePage {
  let world: TestWorld | undefined;
  let page: Page | undefined;
  beforeAll(async () => {
    world = await startWorld(options.env);
    await options.seed?.(world);
  });
  afterAll(async () => {
    await world?.close();
  });
  useBrowserPage(
    (opened) => {
      page = opened;
    },
    { noPageErrors: options.noPageErrors },
  );
  return {
    get world() {
      if (!world) throw new Error('the world is started before the tests: read it inside a test');
      return world;
    },
    get page() {
      if (!page) throw new Error('the page is opened before the tests: read it inside a test');
      return page;
    },
  };
}
