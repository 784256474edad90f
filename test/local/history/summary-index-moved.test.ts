import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { SummaryIndex } from '../../../local/history/summary-index.ts';
import { ExecutionStore } from '../../../local/store/execution-store.ts';
import { holdNextAppend } from '../../../local/store/file-writer.ts';
import { ageHistories, commandListingReads, saveKeyedHistory } from '../../support/history-reads.ts';

/**
 * A step of the file system that a test runs something in the middle of: the removal of the saved entries (or of the
 * file they were moved to). The gateway's append, made by the file thread, is held once it has opened the file and
 * before it writes (holdNextAppend).
 */
const between = vi.hoisted(() => ({
  removal: null as (() => Promise<void>) | null,
}));
vi.mock(import('node:fs/promises'), async (original) => {
  const actual = await original();
  const saved = (file: unknown) => String(file).includes('conversations.saved.jsonl');
  const unlink = (async (file, ...rest) => {
    const step = saved(file) ? between.removal : null;
    between.removal = null;
    await step?.();
    return actual.unlink(file, ...rest);
  }) as typeof actual.unlink;
  return { ...actual, unlink, default: { ...actual.default, unlink } };
});

/**
 * The gateway appends each saved history's summary index entry to `summaries/conversations.saved.jsonl`; a command's
 * listing folds that file into the index and removes it (docs/operations.md, "Runbook"). It checked the file's size,
 * then removed it: a line the gateway appended in between was lost from disk (that conversation's histories were read
 * again by the next listings, slow on a large data folder). Each step is interleaved here, none timed.
 */
let dataDir: string;
let gateway: ExecutionStore;
let store: ExecutionStore;
let n = 0;

const saveHistory = (target: ExecutionStore) => saveKeyedHistory(target, n++, 'mv');

/** Every conversation id of an entry on disk: in the index, or in a saved entries' file (moved aside or not). */
async function idsOnDisk(): Promise<string[]> {
  const dir = path.join(dataDir, 'summaries');
  const ids = new Set<string>();
  for (const name of await readdir(dir)) {
    const text = await readFile(path.join(dir, name), 'utf8');
    if (name === 'conversations.json') for (const id of Object.keys(JSON.parse(text).entries)) ids.add(id);
    else if (name.startsWith('conversations.saved.jsonl'))
      for (const line of text.split('\n').filter((l) => l !== '')) ids.add(JSON.parse(line).id);
  }
  return [...ids].sort();
}

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-index-moved-'));
  store = new ExecutionStore(dataDir);
});
beforeEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
  gateway = new ExecutionStore(dataDir, {
    onSaved: (id, file, record, folder) => SummaryIndex.of(gateway).recordSaved(id, file, record, folder),
  });
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe("the gateway's saved entries, folded by a command while the gateway appends", () => {
  it('an entry appended between the command reading the file and removing it stays on disk', async () => {
    const first = await saveHistory(gateway);
    await ageHistories(store, [first]);
    let second = '';
    between.removal = async () => {
      second = await saveHistory(gateway);
    };
    await commandListingReads(store);
    expect(second).not.toBe('');
    // Before: removed with the file the command had read (its size was what the command folded).
    expect(await idsOnDisk()).toEqual([first, second].sort());
    // Found by its entry: no history read.
    expect(await commandListingReads(store)).toBe(0);
    expect(await idsOnDisk()).toEqual([first, second].sort());
  });

  it('an entry the gateway writes into the file after the command moved and read it is written again', async () => {
    const first = await saveHistory(gateway);
    await ageHistories(store, [first]);
    // The gateway has opened the file to append the second entry; the command's whole listing runs before it writes.
    const held = holdNextAppend();
    const saving = saveHistory(gateway);
    await held.opened;
    await commandListingReads(store);
    held.go();
    const second = await saving;
    expect(await idsOnDisk()).toEqual([first, second].sort());
    // Found by its entry: no history read.
    expect(await commandListingReads(store)).toBe(0);
    expect((await readdir(path.join(dataDir, 'summaries'))).sort()).toEqual(['conversations.json']);
  });

  it('a line an earlier gateway left cut short at the end of the file does not swallow its next one', async () => {
    // A data folder of its own: this process has not appended to its file yet, as a gateway just started.
    const dir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-index-cut-'));
    try {
      const restarted: ExecutionStore = new ExecutionStore(dir, {
        onSaved: (id, file, record, folder) => SummaryIndex.of(restarted).recordSaved(id, file, record, folder),
      });
      await mkdir(path.join(dir, 'summaries'));
      // Killed in the middle of a write (or a power cut).
      await writeFile(path.join(dir, 'summaries', 'conversations.saved.jsonl'), '{"v":2,"id":"webhook_2026110');
      await saveHistory(restarted);
      // Found by its entry. Before: its line continued the cut one, and neither could be read.
      expect(await commandListingReads(new ExecutionStore(dir))).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
