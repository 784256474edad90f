import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SummaryIndex } from '../../../local/history/summary-index.ts';
import { ExecutionStore } from '../../../local/store/execution-store.ts';
import { sweepLocalHistory } from '../../../local/store/retention.ts';
import { saveDeliveredHistory } from '../../support/history-reads.ts';

/**
 * The conversation summary index holds each conversation's question (docs/operations.md "Runbook"): the running
 * gateway's sweep drops the entries of the histories it removed, from the index and from the entries it appended, so
 * nothing of a conversation outlives LOCAL_HISTORY_DAYS there (docs/operations.md "Local history retention").
 */
const NOW = new Date('2026-03-31T12:00:00Z');
let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'retention-index-'));
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('the sweep and the summary index', () => {
  it('drops the entries of the histories it removed', async () => {
    // As the gateway saves histories: each one's entry appended as it is saved.
    const store: ExecutionStore = new ExecutionStore(dataDir, {
      onSaved: (id, file, record, folder) => SummaryIndex.of(store).recordSaved(id, file, record, folder),
    });
    const ids: string[] = [];
    for (const [n, at] of ['2026-02-01T10:00:00.000Z', '2026-03-30T10:00:00.000Z'].entries()) {
      ids.push(await saveDeliveredHistory(store, at, `ri${n}`, `run-${n}`));
    }
    const [old, recent] = ids as [string, string];
    const summaries = async () => {
      const dir = path.join(dataDir, 'summaries');
      return (await Promise.all((await readdir(dir)).map((n) => readFile(path.join(dir, n), 'utf8')))).join('\n');
    };
    expect(await summaries()).toContain(old);
    const swept = await sweepLocalHistory(
      { dataDir, idempotencyDir: null, historiesRemoved: () => SummaryIndex.of(store).forgetRemoved() },
      30,
      NOW,
    );
    expect(swept.histories).toBe(1);
    expect(await summaries()).not.toContain(old);
    expect(await summaries()).toContain(recent);
  });
});
