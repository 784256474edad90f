import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, unlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { ConsoleContext } from '../../../local/console/data.ts';
import { listedConversations } from '../../../local/console/data.ts';
import { parseFilter } from '../../../local/history/conversation-filters.ts';
import { SummaryIndex, type WriteRetry } from '../../../local/history/summary-index.ts';
import { ExecutionStore } from '../../../local/store/execution-store.ts';
import { runMain } from '../../support/cli.ts';
import { ageHistories, saveKeyedHistory } from '../../support/history-reads.ts';
import { anotherHost } from '../../support/pid-namespaces.ts';
import { withTimeStill } from '../../support/time.ts';

/** Each look at the index's lock: its holder touches it, the clock moves on 500 ms (test/support/held-lock.ts). */
const looks = vi.hoisted(() => ({ n: 0, lock: '' }));
vi.mock('node:fs/promises', async (importOriginal) =>
  (await import('../../support/held-lock.ts')).withHeldLock(await importOriginal(), looks),
);

/**
 * The summary index's lock held by a process of another pid namespace (a `conversations list` in a container sharing
 * the data folder, writing the index): a lock there is waited on until it is 10 s stale and 1 s more
 * (functions/shared/local-files.ts), and a listing waited that long before it answered: a console page 11 s (its
 * live poll gives up after 10 s), a command 11 s. Now a listing waits for it 2 s at most (LISTING_LOCK_WAIT_MS) and
 * answers its rows; the index is written later (the gateway's retry, the next listing): nothing is lost.
 */
const COUNT = 3;
let dataDir: string;
let store: ExecutionStore;
const ids: string[] = [];
const indexFile = () => path.join(dataDir, 'summaries', 'conversations.json');
const lockFile = () => `${indexFile()}.lock`;
const theirs = () => `4242@${anotherHost()}.0a0b0c0d`;

async function plantLock(): Promise<void> {
  await mkdir(path.dirname(lockFile()), { recursive: true });
  await writeFile(lockFile(), theirs());
  const now = new Date();
  await utimes(lockFile(), now, now);
  looks.n = 0;
  looks.lock = lockFile();
}

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-index-foreign-lock-'));
  store = new ExecutionStore(dataDir);
  for (let n = 0; n < COUNT; n++) ids.push(await saveKeyedHistory(store, n, 'fl'));
  await ageHistories(store, ids);
});
afterAll(async () => {
  looks.lock = '';
  await rm(dataDir, { recursive: true, force: true });
});

describe('a listing while another container’s process holds the summary index’s lock', () => {
  it('the console’s list answers its rows after 2 s at most; the gateway writes the index once the lock is free', async () => {
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
    SummaryIndex.of(gateway, retry);
    const ctx = { executions: gateway, running: () => [] } as unknown as ConsoleContext;
    await plantLock();

    const listed = await withTimeStill(() => listedConversations(ctx, parseFilter({}), 50));
    expect(listed.rows.map((r) => r.conversation_id).sort()).toEqual([...ids].sort());
    // Before: 23 looks (11.5 s of the clock), while its holder kept it fresh all along.
    expect(looks.n).toBe(5);
    const busy = `${lockFile()} is held by another process for more than 2000 ms: nothing was changed; try again`;
    expect(listed.unwritten_index).toBe(`${indexFile()}: ${busy}`);
    expect(lines).toEqual([
      `webhook-gateway: the summary index ${indexFile()} cannot be written (${busy}): tried again in 1 s, then up to every 60 s; listings read the histories it lacks meanwhile`,
    ]);
    expect(await readFile(lockFile(), 'utf8')).toBe(theirs());
    expect(existsSync(indexFile())).toBe(false);

    // Its holder is done: the gateway's retry (off any request) writes what the listing learnt.
    looks.lock = '';
    await unlink(lockFile());
    expect(retries.map((r) => r.ms)).toEqual([1_000]);
    await retries[0]!.retry();
    expect(lines.at(-1)).toBe(`webhook-gateway: the summary index ${indexFile()} is written again`);
    const written = JSON.parse(await readFile(indexFile(), 'utf8')) as { entries: Record<string, unknown> };
    expect(Object.keys(written.entries).sort()).toEqual([...ids].sort());
  });

  it('`conversations list` prints its rows, says the index was not written, and exits 0', async () => {
    await rm(indexFile(), { force: true });
    await plantLock();
    const listed = await withTimeStill(() => runMain(['conversations', 'list', '--json'], { LOCAL_DATA_DIR: dataDir }));
    looks.lock = '';
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as { conversation_id: string }[]).length).toBe(COUNT);
    expect(looks.n).toBe(5);
    expect(listed.stderr).toContain(
      `webhook-gateway: the summary index ${indexFile()} could not be written (${lockFile()} is held by another process for more than 2000 ms: nothing was changed; try again): the next listing reads those histories again`,
    );
    expect(await readFile(lockFile(), 'utf8')).toBe(theirs());
  });
});
