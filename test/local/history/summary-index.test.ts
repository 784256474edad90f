import { readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ExecutionStore } from '../../../local/store/execution-store.ts';
import { runMain, until } from '../../support/cli.ts';
import { startWorld, type TestWorld } from '../../support/gateway.ts';
import { historiesRead as historiesReadFrom, listedIds } from '../../support/history-reads.ts';

/** Every file the stores read as JSON, by path: which execution histories a listing reads. */
const reads = vi.hoisted(() => [] as string[]);
vi.mock(import('../../../local/store/json-files.ts'), async (original) =>
  (await import('../../support/read-recorder.ts')).recordReads(reads, await original()),
);

/**
 * `conversations list` with a filter, and the console's thread page, read in full only the conversations that match,
 * once the summary index knows the others (`.data/summaries/conversations.json`, docs/operations.md "Runbook"); a
 * conversation whose folder changed (a new execution), a folder the retention removed and a damaged index are
 * answered from the histories. At 54,000 conversations a filter that matched none parsed every history (68 s).
 */
let world: TestWorld;
const ids: Record<string, string> = {};
const folderOf = (id: string) => path.join(world.dataDir, 'executions', id);
const indexFile = () => path.join(world.dataDir, 'summaries', 'conversations.json');

/**
 * As if each folder and its histories were last written a minute ago (an index entry is kept once they are a second
 * old).
 */
async function age(...names: string[]) {
  const then = new Date(Date.now() - 60_000);
  for (const name of names) {
    for (const file of await readdir(folderOf(ids[name]!)))
      await utimes(path.join(folderOf(ids[name]!), file), then, then);
    await utimes(folderOf(ids[name]!), then, then);
  }
}

beforeAll(async () => {
  world = await startWorld();
  const ask = async (name: string, query: string, thread_id?: string) => {
    const answer = await world.post({ query, source_system: 'crm_sync', source_process: 'nightly', thread_id });
    expect(answer.status).toBe(200);
    ids[name] = answer.body.conversation_id;
  };
  await ask('deal', 'What are the top 5 deals closing this quarter?');
  await ask('general', 'Hello there');
  await ask('turn', 'And the risks for these deals?', 'q3');
  // Each history is saved as its execution ends, which may be just after the answer.
  const store = new ExecutionStore(world.dataDir);
  for (const id of Object.values(ids))
    await until(`the history of ${id}`, async () => (await store.executions(id)).length > 0);
  await age('deal', 'general', 'turn');
});
afterAll(async () => {
  await world?.close();
});

/** The conversations whose histories were read since `reads` was emptied. */
const historiesRead = () => historiesReadFrom(reads, world.dataDir);

const list = (...args: string[]) => listedIds(reads, world.dataDir, ...args);

describe('the summary index', () => {
  it('a filter reads no history once the index knows the conversations (their whole rows too)', async () => {
    expect(await list('--type', 'general')).toEqual([ids.general]);
    expect(historiesRead()).toEqual([ids.deal, ids.general, ids.turn].sort()); // the first listing learns them
    reads.length = 0;
    const listed = await runMain(['conversations', 'list', '--json', '--type', 'general'], {
      LOCAL_DATA_DIR: world.dataDir,
    });
    expect(historiesRead()).toEqual([]);
    // The row the index holds is the one the histories give.
    await rm(indexFile());
    const read = await runMain(['conversations', 'list', '--json', '--type', 'general'], {
      LOCAL_DATA_DIR: world.dataDir,
    });
    expect(listed.stdout).toBe(read.stdout);
    expect(await list('--type', 'general')).toEqual([ids.general]);
    expect(historiesRead()).toEqual([]);
    expect(await list('--type', 'lead_analysis', '--status', 'failed')).toEqual([]);
    expect(historiesRead()).toEqual([]);
    expect(await list('--status', 'completed')).toEqual([ids.deal, ids.general, ids.turn].sort());
  });

  it('an entry of an earlier version (the filter fields only) is completed by the listing that reads its history', async () => {
    const stored = JSON.parse(await readFile(indexFile(), 'utf8'));
    for (const entry of Object.values(stored.entries) as { listed?: unknown }[]) delete entry.listed;
    await writeFile(indexFile(), JSON.stringify(stored));
    expect(await list('--type', 'general')).toEqual([ids.general]);
    expect(historiesRead()).toEqual([ids.general]);
    expect(await list('--type', 'general')).toEqual([ids.general]);
    expect(historiesRead()).toEqual([]);
  });

  it("the console's thread page reads only the thread's conversations", async () => {
    reads.length = 0;
    const page = await fetch(`${world.gateway.url}/console/threads/crm_sync/q3`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain(ids.turn);
    expect(historiesRead()).toEqual([ids.turn]);
  });

  it('a conversation with a new execution is read again; one the retention removed is gone from it', async () => {
    const store = new ExecutionStore(world.dataDir);
    const [execution] = await store.executions(ids.general!);
    // A second execution of the conversation (as a redelivery's): its record now says the delivery failed.
    const later = JSON.parse(
      JSON.stringify({ ...execution, execution_name: 'later-run' }).replaceAll('"delivered"', '"failed"'),
    );
    await store.save(ids.general!, later);
    await rm(folderOf(ids.deal!), { recursive: true });
    expect(await list('--status', 'failed')).toEqual([ids.general]);
    expect(historiesRead()).toEqual([ids.general]);
    expect(await list()).toEqual([ids.general, ids.turn].sort());
    await age('general');
    await list('--status', 'failed');
    const entries = JSON.parse(await readFile(indexFile(), 'utf8')).entries;
    expect(Object.keys(entries).sort()).toEqual([ids.general, ids.turn].sort());
  });

  it('a history edited in place (by hand) is read again at the next listing', async () => {
    await age('general', 'turn');
    expect(await list('--status', 'failed')).toEqual([ids.general]);
    // Its folder keeps its time: only the file's own stamp says it changed.
    const [name] = await readdir(folderOf(ids.turn!));
    const file = path.join(folderOf(ids.turn!), name!);
    await writeFile(file, (await readFile(file, 'utf8')).replaceAll('"delivered"', '"failed"'));
    expect(await list('--status', 'failed')).toEqual([ids.general, ids.turn].sort());
    expect(historiesRead()).toEqual([ids.turn]);
    await age('turn');
  });

  it('a damaged index (cut short by a crash) is an empty one: every history is read again', async () => {
    await writeFile(indexFile(), '{"version":1,"entries":{"webh');
    expect(await list('--type', 'general')).toEqual([ids.general]);
    expect(historiesRead()).toEqual([ids.general, ids.turn].sort());
    expect(await list('--type', 'general')).toEqual([ids.general]);
    expect(historiesRead()).toEqual([]);
    expect((await readdir(path.dirname(indexFile()))).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });
});
