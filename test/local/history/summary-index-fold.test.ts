import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { SummaryIndex } from '../../../local/history/summary-index.ts';
import { ExecutionStore } from '../../../local/store/execution-store.ts';
import { saveDeliveredHistory } from '../../support/history-reads.ts';

/** Every whole write of the summary index. */
const indexWrites = vi.hoisted(() => [] as string[]);
vi.mock(import('../../../local/store/json-files.ts'), async (original) => {
  const actual = await original();
  return {
    ...actual,
    writeTextAtomic: (async (file: string, text: string, mode?: number) => {
      if (file.endsWith(`${path.sep}conversations.json`)) indexWrites.push(file);
      return actual.writeTextAtomic(file, text, mode);
    }) as typeof actual.writeTextAtomic,
  };
});

/**
 * The running gateway folds the entries it appends (`summaries/conversations.saved.jsonl`) into the summary index
 * itself once their file is large (docs/operations.md "Runbook"), once however many histories are saved meanwhile,
 * counting what earlier runs left in it, and losing none of the entries.
 */
let dataDir: string;
const savedFile = () => path.join(dataDir, 'summaries', 'conversations.saved.jsonl');

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-fold-'));
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe("the gateway's fold of the saved entries", () => {
  it('writes the index once, from a file an earlier run left large, and keeps every entry', async () => {
    // 9 MB of entries of conversations whose folders are gone (left by earlier runs, never folded).
    const gone = JSON.stringify({
      v: 2,
      id: 'webhook_20261101_000000_crmsync_nightly_gone000000',
      entry: { stamp: '0:0', files: [], files_stamp: '-', row: null, pad: 'x'.repeat(400) },
    });
    await mkdir(path.join(dataDir, 'summaries'), { recursive: true });
    await writeFile(savedFile(), `${gone}\n`.repeat(20_000));
    const store: ExecutionStore = new ExecutionStore(dataDir, {
      onSaved: (id, file, record, folder) => SummaryIndex.of(store).recordSaved(id, file, record, folder),
    });
    const ids: string[] = [];
    await Promise.all(
      Array.from({ length: 6 }, async (_, n) => {
        const at = new Date(Date.UTC(2026, 10, 29, 10, 0, n)).toISOString();
        ids.push(await saveDeliveredHistory(store, at, `fo${n}`, `run-${n}`));
      }),
    );
    expect(indexWrites).toHaveLength(1);
    const index = JSON.parse(await readFile(path.join(dataDir, 'summaries', 'conversations.json'), 'utf8'));
    const left = (await readFile(savedFile(), 'utf8').catch(() => ''))
      .split('\n')
      .filter((l) => l !== '')
      .map((l) => JSON.parse(l).id as string);
    expect([...new Set([...Object.keys(index.entries), ...left])].sort()).toEqual([...ids].sort());
    expect((await readdir(path.join(dataDir, 'summaries'))).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });
});
