import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ExecutionStore } from '../../../local/store/execution-store.ts';
import { until } from '../../support/cli.ts';
import { startWorld, type TestWorld } from '../../support/gateway.ts';
import { historiesRead as historiesReadFrom, listedIds } from '../../support/history-reads.ts';

/** Every file the stores read as JSON, by path: which execution histories a listing reads. */
const reads = vi.hoisted(() => [] as string[]);
vi.mock(import('../../../local/store/json-files.ts'), async (original) =>
  (await import('../../support/read-recorder.ts')).recordReads(reads, await original()),
);

/**
 * The gateway writes each conversation's summary index entry as it saves a history (docs/operations.md "Runbook"):
 * the first filtered listing of a folder the gateway filled reads only the conversations that match, where it parsed
 * every history (4–6 s at 15,000). A history saved without its entry (a crash between the two writes, another
 * history saved within the same tick of the folder's time) or edited in place is read again.
 */
let world: TestWorld;
const ids: Record<string, string> = {};
const folderOf = (id: string) => path.join(world.dataDir, 'executions', id);
const savedFile = () => path.join(world.dataDir, 'summaries', 'conversations.saved.jsonl');
const savedLines = async () =>
  (await readFile(savedFile(), 'utf8').catch(() => ''))
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as { id: string; entry: { stamp: string } });

beforeAll(async () => {
  world = await startWorld();
  const ask = async (name: string, query: string) => {
    const answer = await world.post({ query, source_system: 'crm_sync', source_process: 'nightly' });
    expect(answer.status).toBe(200);
    ids[name] = answer.body.conversation_id;
  };
  await ask('deal', 'What are the top 5 deals closing this quarter?');
  await ask('general', 'Hello there');
  await ask('lead', 'Which leads should we call?');
  // Each history (and its entry) is saved as its execution ends, which may be just after the answer.
  await until('the three entries', async () => new Set((await savedLines()).map((l) => l.id)).size === 3);
});
afterAll(async () => {
  await world?.close();
});

/** A start a second after `at`: the history of a later execution. */
const later = (at: string) => new Date(Date.parse(at) + 1000).toISOString();
const historiesRead = () => historiesReadFrom(reads, world.dataDir);
const list = (...args: string[]) => listedIds(reads, world.dataDir, ...args);

describe('the summary index written as histories are saved', () => {
  it('a first filtered listing reads only the conversations that match', async () => {
    expect(await list('--type', 'general')).toEqual([ids.general]);
    expect(historiesRead()).toEqual([]);
    expect(await list('--status', 'failed')).toEqual([]);
    expect(historiesRead()).toEqual([]);
    // Folded into the index by its write: the saved entries' file is gone, what it held is not lost.
    expect(await readdir(path.dirname(savedFile()))).not.toContain('conversations.saved.jsonl');
    expect(await list('--type', 'deal_analysis')).toEqual([ids.deal]);
    expect(historiesRead()).toEqual([]);
  });

  it('a history the gateway saved, then edited in place, is read again', async () => {
    const [name] = await readdir(folderOf(ids.deal!));
    const file = path.join(folderOf(ids.deal!), name!);
    await writeFile(file, (await readFile(file, 'utf8')).replaceAll('"delivered"', '"failed"'));
    expect(await list('--status', 'failed')).toEqual([ids.deal]);
    expect(historiesRead()).toEqual([ids.deal]);
  });

  it('a history saved within the tick of the entry (its folder keeps its time) is read', async () => {
    // The entry the gateway wrote names one history; a second one lands while the folder's time stays the same.
    const store = new ExecutionStore(world.dataDir);
    const [execution] = await store.executions(ids.general!);
    const run = JSON.parse(
      JSON.stringify({
        ...execution,
        execution_name: 'same-tick',
        started_at: later(execution!.started_at),
      }).replaceAll('"delivered"', '"failed"'),
    );
    await store.save(ids.general!, run);
    const folder = await stat(folderOf(ids.general!), { bigint: true });
    const index = path.join(world.dataDir, 'summaries', 'conversations.json');
    const stored = JSON.parse(await readFile(index, 'utf8'));
    // The gateway's entry, as written before the second history (a crash before that one's entry was written).
    expect(stored.entries[ids.general!].files).toHaveLength(1);
    stored.entries[ids.general!].verify = true;
    stored.entries[ids.general!].stamp = `${folder.ino}:${folder.mtimeNs}`;
    await writeFile(index, JSON.stringify(stored));
    expect(await list('--status', 'failed')).toEqual([ids.deal, ids.general].sort());
    expect(historiesRead()).toContain(ids.general);
    expect(historiesRead()).not.toContain(ids.lead);
  });

  it('a history saved without its entry (a crash between the two writes) is read', async () => {
    // As the gateway saves it, but its entry never written: another store, without the gateway's index.
    const store = new ExecutionStore(world.dataDir);
    const [execution] = await store.executions(ids.lead!);
    const run = JSON.parse(
      JSON.stringify({
        ...execution,
        execution_name: 'crashed-run',
        started_at: later(execution!.started_at),
      }).replaceAll('"delivered"', '"failed"'),
    );
    await store.save(ids.lead!, run);
    expect(await list('--status', 'failed')).toEqual([ids.deal, ids.general, ids.lead].sort());
    // Read (a history changed within the last second is read at each listing until it is a second old).
    expect(historiesRead()).toContain(ids.lead);
  });
});
