import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startWorld, type TestWorld } from '../../support/gateway.ts';
import { historiesRead as historiesReadFrom, listedIds } from '../../support/history-reads.ts';

/** Every file the stores read as JSON, by path: which execution histories a listing reads. */
const reads = vi.hoisted(() => [] as string[]);
vi.mock(import('../../../local/store/json-files.ts'), async (original) =>
  (await import('../../support/read-recorder.ts')).recordReads(reads, await original()),
);

/**
 * `conversations list --source` and the console's thread page read the histories of that source's conversations
 * only: a conversation id says its source (docs/operations.md, "Runbook"). At 54,000 conversations,
 * `list --source nosuch` read every history (68 s) to say that none matched, and a thread page every one (128 s).
 */
let world: TestWorld;
const ids: Record<string, string> = {};

beforeAll(async () => {
  world = await startWorld();
  const ask = async (name: string, source_system: string, source_process: string, thread_id?: string) => {
    const answer = await world.post({ query: `question ${name}`, source_system, source_process, thread_id });
    expect(answer.status).toBe(200);
    ids[name] = answer.body.conversation_id;
  };
  await ask('crm', 'crm_sync', 'nightly');
  await ask('crmWeekly', 'crm_sync', 'weekly', 'q3');
  await ask('scheduler', 'scheduler', 'weekly', 'q3');
});
afterAll(async () => {
  await world?.close();
});

/** The conversations whose histories were read since `reads` was emptied. */
const historiesRead = () => historiesReadFrom(reads, world.dataDir);

const list = (...args: string[]) => listedIds(reads, world.dataDir, ...args);

describe('reading by source', () => {
  it('conversations list --source reads no history of another source', async () => {
    expect(await list('--source', 'nosuch')).toEqual([]);
    expect(historiesRead()).toEqual([]);
    // Those of its source at most (the summary index, written as the gateway saved them, may hold their whole rows).
    expect(await list('--source', 'crm_sync/weekly')).toEqual([ids.crmWeekly]);
    expect([ids.crmWeekly]).toEqual(expect.arrayContaining(historiesRead()));
    expect(await list('--source', 'crm-sync')).toEqual([ids.crm, ids.crmWeekly].sort());
    expect([ids.crm, ids.crmWeekly]).toEqual(expect.arrayContaining(historiesRead()));
    expect(await list('--source', 'Scheduler', '--thread', 'q3')).toEqual([ids.scheduler]);
    expect([ids.scheduler]).toEqual(expect.arrayContaining(historiesRead()));
  });

  it("the console's thread page reads only its source's conversations", async () => {
    reads.length = 0;
    const page = await fetch(`${world.gateway.url}/console/threads/crm_sync/q3`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain(ids.crmWeekly);
    expect(html).not.toContain(ids.scheduler);
    // Its source's conversations at most (the summary index may already know the one of no thread).
    expect([ids.crm, ids.crmWeekly]).toEqual(expect.arrayContaining(historiesRead()));
    expect(historiesRead()).toContain(ids.crmWeekly);
  });
});
