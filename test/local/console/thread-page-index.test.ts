import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type ConsoleContext, threadConversations } from '../../../local/console/data.ts';
import { parseFilter } from '../../../local/history/conversation-filters.ts';
import { listConversations } from '../../../local/history/listing.ts';
import { SummaryIndex } from '../../../local/history/summary-index.ts';
import { ExecutionStore } from '../../../local/store/execution-store.ts';
import { SEED_REQUEST } from '../../support/fixtures.ts';
import { ageHistories, saveKeyedHistory } from '../../support/history-reads.ts';

/**
 * The console's thread page looks its source's conversations up in the summary index, as the list does. The list
 * merges in what another process (a command, `conversations list`) wrote to the index since the gateway read it
 * (docs/operations.md, "Runbook"); the thread page did not, and read every history of the source again.
 */
const COUNT = 6;
let dataDir: string;
const ids: string[] = [];

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-thread-index-'));
  const store = new ExecutionStore(dataDir);
  for (let n = 0; n < COUNT; n++)
    ids.push(await saveKeyedHistory(store, n, 'th', { ...SEED_REQUEST, thread_id: n % 2 === 0 ? 'even' : 'odd' }));
  await ageHistories(store, ids);
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe("the console's thread page and another process's writes of the summary index", () => {
  it('finds what a command wrote since the gateway read the index: it reads only the thread', async () => {
    const gateway = new ExecutionStore(dataDir);
    // The gateway read the index (none yet) before the command ran.
    expect(await SummaryIndex.of(gateway).rowOf(ids[0]!, true)).toBeNull();
    const command = new ExecutionStore(dataDir);
    await listConversations(command, new SummaryIndex(command), parseFilter({}), 50);

    const reads = vi.spyOn(gateway, 'executionsChecked');
    const ctx = { executions: gateway, running: () => [] } as unknown as ConsoleContext;
    const { turns } = await threadConversations(ctx, SEED_REQUEST.source_system, 'odd');
    expect(turns.map((t) => t.row.conversation_id)).toEqual(ids.filter((_, n) => n % 2 === 1));
    // Only the thread's turns are read (for their records). Before: every conversation of the source, its index as
    // the gateway had read it.
    expect(reads.mock.calls.map(([id]) => id).sort()).toEqual(ids.filter((_, n) => n % 2 === 1));
  });
});

describe("the console's thread page on a large data folder", () => {
  it("looks only at the thread's conversations: the index rules the others out, one it does not know is looked at", async () => {
    const gateway = new ExecutionStore(dataDir);
    const index = SummaryIndex.of(gateway);
    await listConversations(gateway, index, parseFilter({}), 50);
    // Saved after the index was filled, and not through the gateway: the index does not know it.
    const unknown = await saveKeyedHistory(gateway, COUNT, 'th', { ...SEED_REQUEST, thread_id: 'even' });
    const looked = vi.spyOn(index, 'rowOf');
    const ctx = { executions: gateway, running: () => [] } as unknown as ConsoleContext;
    const { turns } = await threadConversations(ctx, SEED_REQUEST.source_system, 'even');
    const even = [...ids.filter((_, n) => n % 2 === 0), unknown];
    expect(turns.map((t) => t.row.conversation_id).sort()).toEqual([...even].sort());
    // Before: every conversation of the source was looked at (its folder and each history stat'ed; 4.8 s at 50,000).
    expect(looked.mock.calls.map(([id]) => id).sort()).toEqual([...even].sort());
  });
});
