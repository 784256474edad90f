import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ExecutionStore } from '../../../local/store/execution-store.ts';
import { runMain } from '../../support/cli.ts';
import { historiesRead, saveDeliveredHistory } from '../../support/history-reads.ts';

/** Every file read as JSON, and the most history reads that were under way at once. */
const reads = vi.hoisted(() => ({ files: [] as string[], inFlight: 0, most: 0 }));
vi.mock(import('../../../local/store/json-files.ts'), async (original) => {
  const actual = await original();
  return {
    ...actual,
    readJson: (async (file: string) => {
      reads.files.push(file);
      reads.inFlight += 1;
      reads.most = Math.max(reads.most, reads.inFlight);
      try {
        return await actual.readJson(file);
      } finally {
        reads.inFlight -= 1;
      }
    }) as typeof actual.readJson,
  };
});

/**
 * A filtered `conversations list` that builds the summary index (docs/operations.md "Runbook") reads the histories it
 * must read several at a time, never one it would not reach: it read them one after another (165 s at 54,000).
 */
let dataDir: string;
/** The conversations, newest first. */
const newestFirst: string[] = [];

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-first-build-'));
  const store = new ExecutionStore(dataDir);
  for (let n = 0; n < 8; n++) {
    const at = new Date(Date.UTC(2026, 10, 29, 10, 0, n)).toISOString();
    newestFirst.unshift(await saveDeliveredHistory(store, at, `fb${n}`, `run-${n}`));
  }
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

async function list(...args: string[]): Promise<string[]> {
  await rm(path.join(dataDir, 'summaries'), { recursive: true, force: true }); // a first listing: no index yet
  reads.files.length = 0;
  reads.most = 0;
  const run = await runMain(['conversations', 'list', '--json', ...args], { LOCAL_DATA_DIR: dataDir });
  expect(run.code, run.stderr).toBe(0);
  return (JSON.parse(run.stdout) as { conversation_id: string }[]).map((r) => r.conversation_id);
}

describe('the first filtered listing', () => {
  it('reads the histories several at a time', async () => {
    expect(await list('--status', 'failed')).toEqual([]);
    expect(historiesRead(reads.files, dataDir)).toEqual([...newestFirst].sort());
    expect(reads.most).toBeGreaterThan(1);
  });

  it('reads ahead no history the listing would not reach', async () => {
    expect(await list('--limit', '3')).toEqual(newestFirst.slice(0, 3));
    expect(historiesRead(reads.files, dataDir)).toEqual(newestFirst.slice(0, 3).sort());
    expect(await list('--status', 'delivered', '--limit', '2')).toEqual(newestFirst.slice(0, 2));
    expect(historiesRead(reads.files, dataDir)).toEqual(newestFirst.slice(0, 2).sort());
  });
});
