import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ConsoleContext } from '../../../local/console/data.ts';
import { listedConversations } from '../../../local/console/data.ts';
import { listFragment } from '../../../local/console/pages.ts';
import { parseFilter } from '../../../local/history/conversation-filters.ts';
import { SummaryIndex, type WriteRetry } from '../../../local/history/summary-index.ts';
import { ExecutionStore } from '../../../local/store/execution-store.ts';
import { runMain } from '../../support/cli.ts';
import { SEED_REQUEST, startWorld } from '../../support/gateway.ts';
import { ageHistories, commandListingReads, saveKeyedHistory } from '../../support/history-reads.ts';

/** While set, each write of the summary index fails as a full disk fails it. */
const disk = vi.hoisted(() => ({ full: false }));
vi.mock(import('../../../local/store/json-files.ts'), async (original) => {
  const actual = await original();
  return {
    ...actual,
    writeTextAtomic: (async (file: string, text: string, mode?: number) => {
      if (disk.full && file.endsWith(`${path.sep}conversations.json`))
        throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', syscall: 'write' });
      return actual.writeTextAtomic(file, text, mode);
    }) as typeof actual.writeTextAtomic,
  };
});

/**
 * A write of the summary index that fails (a full disk, a refused folder) kept nothing, and nothing tried it again
 * until something else changed: every listing read those histories again, and nobody was told why. The running
 * gateway now says so on stderr and in the console's list, and tries again by itself (its timer injected here); a
 * command says so on stderr.
 */
const COUNT = 4;
let dataDir: string;
let store: ExecutionStore;
const ids: string[] = [];
const indexFile = () => path.join(dataDir, 'summaries', 'conversations.json');

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-index-retry-'));
  store = new ExecutionStore(dataDir);
  for (let n = 0; n < COUNT; n++) ids.push(await saveKeyedHistory(store, n, 'rt'));
  await ageHistories(store, ids);
});
afterAll(async () => {
  disk.full = false;
  await rm(dataDir, { recursive: true, force: true });
});

describe('a write of the summary index that fails', () => {
  it("the gateway's is said once, shown in the console's list, and tried again until it is written", async () => {
    const retries: { retry: () => Promise<void>; ms: number }[] = [];
    const lines: string[] = [];
    const retry: WriteRetry = {
      later: (run, ms) => {
        retries.push({ retry: run, ms });
        return () => {};
      },
      warn: (line) => lines.push(line),
    };
    const gateway = new ExecutionStore(dataDir);
    const index = SummaryIndex.of(gateway, retry);
    const ctx = { executions: gateway, running: () => [] } as unknown as ConsoleContext;

    disk.full = true;
    const listed = await listedConversations(ctx, parseFilter({}), 50);
    expect(listed.rows).toHaveLength(COUNT);
    expect(lines).toEqual([
      `webhook-gateway: the summary index ${indexFile()} cannot be written (ENOSPC: no space left on device, write): tried again in 1 s, then up to every 60 s; listings read the histories it lacks meanwhile`,
    ]);
    expect(listFragment(listed, { deliveries: [], total: 0 }, 50).value).toContain(
      `<p class="err" id="summary-index-unwritten">The summary index cannot be written (${indexFile()}: ENOSPC: no space left on device, write); the gateway tries again by itself.`,
    );
    expect(retries.map((r) => r.ms)).toEqual([1_000]);
    // Another listing meanwhile fails too: said once, one retry due at a time.
    await listedConversations(ctx, parseFilter({}), 50);
    expect(lines).toHaveLength(1);
    expect(retries).toHaveLength(1);

    // The retry, the disk still full: the next one waits twice as long.
    await runRetry(retries);
    expect(retries.map((r) => r.ms)).toEqual([2_000]);
    expect(index.unwritten).toBe('ENOSPC: no space left on device, write');

    // Space freed: the next retry writes it, with nothing else changed (before: never, until another listing).
    disk.full = false;
    await runRetry(retries);
    expect(retries).toEqual([]);
    expect(lines.at(-1)).toBe(`webhook-gateway: the summary index ${indexFile()} is written again`);
    expect(Object.keys(JSON.parse(await readFile(indexFile(), 'utf8')).entries).sort()).toEqual([...ids].sort());
    expect(await commandListingReads(store)).toBe(0);
    expect((await listedConversations(ctx, parseFilter({}), 50)).unwritten_index).toBeUndefined();
  });

  it("a command's is said on stderr", async () => {
    await rm(path.join(dataDir, 'summaries'), { recursive: true, force: true });
    disk.full = true;
    const run = await runMain(['conversations', 'list', '--json'], { LOCAL_DATA_DIR: dataDir });
    disk.full = false;
    expect(run.code).toBe(0);
    expect(JSON.parse(run.stdout)).toHaveLength(COUNT);
    expect(run.stderr).toBe(
      `webhook-gateway: the summary index ${indexFile()} could not be written (ENOSPC: no space left on device, write): the next listing reads those histories again\n`,
    );
  });
});

describe('a retry of a failed write still due when the gateway closes', () => {
  it('is cancelled: the data folder deleted after the gateway stopped stays gone', async () => {
    const clock = retryClock();
    const world = await startWorld({}, { summaryIndexRetry: clock.retry });
    try {
      expect((await world.post(SEED_REQUEST)).status).toBe(200);
      // Its history saved and its index line appended (they may end after the answer, on a loaded machine): else the
      // console could find nothing new to write, and no retry would ever be scheduled.
      await world.gateway.idle();
      disk.full = true;
      // The console's list folds the saved entry into the index: its write fails, a retry is due in 1 s.
      expect((await fetch(`${world.gateway.url}/console`)).status).toBe(200);
      await clock.scheduled();
      expect(clock.due()).toBe(1);
    } finally {
      await world.close(); // the data folder removed
      disk.full = false;
    }
    expect(clock.due()).toBe(0);
    await clock.advance(RETRY_WAIT_MAX_MS * 2);
    expect(existsSync(world.dataDir)).toBe(false);
  });
});

/** Longer than any wait before a retry (summary-index.ts: RETRY_MAX_MS). */
const RETRY_WAIT_MAX_MS = 60_000;

/** An injected timer for the index's retries: what is due runs when the test moves the clock on. */
function retryClock() {
  let now = 0;
  const timers = new Set<{ run: () => Promise<void>; at: number }>();
  let wake: () => void = () => {};
  let scheduled = new Promise<void>((resolve) => (wake = resolve));
  const retry: WriteRetry = {
    later: (run, ms) => {
      const timer = { run, at: now + ms };
      timers.add(timer);
      wake();
      return () => timers.delete(timer);
    },
    warn: () => {},
  };
  return {
    retry,
    due: () => timers.size,
    /** Resolves once a retry has been scheduled (the failed write may end after the answer that caused it). */
    async scheduled() {
      await scheduled;
      scheduled = new Promise<void>((resolve) => (wake = resolve));
    },
    async advance(ms: number) {
      now += ms;
      for (const timer of [...timers].filter((t) => t.at <= now)) {
        timers.delete(timer);
        await timer.run();
      }
    },
  };
}

/** The retry due, run to its end. */
async function runRetry(retries: { retry: () => Promise<void>; ms: number }[]): Promise<void> {
  const due = retries.shift();
  expect(due).toBeDefined();
  await due?.retry();
}
