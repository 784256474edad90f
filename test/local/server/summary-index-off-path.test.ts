import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SummaryIndex } from '../../../local/history/summary-index.ts';
import { startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * The gateway writes a conversation's summary index entry after saving its history (docs/operations.md), but not on
 * the caller's path: the answer goes out once the history is on disk, and stopping the gateway waits for the entries
 * still being written.
 */
let world: TestWorld | undefined;
afterEach(async () => {
  vi.restoreAllMocks();
  await world?.close();
  world = undefined;
});

const savedIds = async (dataDir: string) =>
  (await readFile(path.join(dataDir, 'summaries', 'conversations.saved.jsonl'), 'utf8').catch(() => ''))
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => (JSON.parse(l) as { id: string }).id);

describe('the summary index entry, off the caller path', () => {
  it('answers before the entry is written, and close() waits for it', async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => {
      release = resolve;
    });
    const recordSaved = SummaryIndex.prototype.recordSaved;
    vi.spyOn(SummaryIndex.prototype, 'recordSaved').mockImplementation(async function (this: SummaryIndex, ...args) {
      await held;
      return recordSaved.apply(this, args);
    });
    world = await startWorld();
    const answer = await world.post({ query: 'Hello there', source_system: 'crm_sync', source_process: 'nightly' });
    expect(answer.status).toBe(200);
    expect(await savedIds(world.dataDir)).toEqual([]);

    const closing = world.gateway.close();
    release();
    await closing;
    expect(await savedIds(world.dataDir)).toEqual([answer.body.conversation_id]);
  });
});
