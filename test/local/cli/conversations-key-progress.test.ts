import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExecutionStore } from '../../../local/store/execution-store.ts';
import { runMain } from '../../support/cli.ts';
import { SEED_REQUEST } from '../../support/fixtures.ts';
import { ageHistories, saveKeyedHistory } from '../../support/history-reads.ts';

/**
 * The first `conversations list|show --key` on a data folder an earlier version wrote reads every history once, to
 * fill the summary index with the request keys (docs/operations.md, "Find a conversation by the source's message
 * id"): 68 s at 54,000 conversations, with nothing on screen. It now says what it reads, and how far it got, on stderr;
 * stdout (--json) stays one JSON document.
 */
const COUNT = 120;
let dataDir: string;
const ids: string[] = [];

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-key-progress-'));
  // Saved as a gateway of an earlier version saved them: histories alone, no entry of the summary index.
  const store = new ExecutionStore(dataDir);
  // A question too long for the index to keep (over 2,000 characters): a listing that shows it reads its history.
  const request = { ...SEED_REQUEST, query: 'Which deals close this quarter? '.repeat(70) };
  for (let n = 0; n < COUNT; n++) ids.push(await saveKeyedHistory(store, n, 'kp', request));
  // Written an hour ago: the index keeps an entry once its folder has not changed for a second.
  await ageHistories(store, ids);
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

const indexFile = () => path.join(dataDir, 'summaries', 'conversations.json');
const progress = (stderr: string) => stderr.split('\n').filter((line) => line !== '');
const PROGRESS = /^webhook-gateway: filling the summary index \(once\): (\d+)\/(\d+) conversations$/;

describe('the first lookup by key on a data folder of an earlier version', () => {
  it('without a summary index: says on stderr how many conversations it has read of how many; --json stays clean', async () => {
    const run = await runMain(['conversations', 'list', '--key', 'msg_7', '--json'], { LOCAL_DATA_DIR: dataDir });
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual([expect.objectContaining({ conversation_id: ids[7], webhook_id: 'msg_7' })]);
    // Before: nothing on stderr while every history was read.
    const lines = progress(run.stderr);
    for (const line of lines) expect(line).toMatch(PROGRESS);
    expect(lines[0]).toMatch(new RegExp(`: 100/${COUNT} conversations$`));
    expect(lines.at(-1)).toMatch(new RegExp(`: ${COUNT}/${COUNT} conversations$`));
  });

  it('with an index of an earlier version (no request keys): show --key says so too, once; the next lookup reads nothing and says nothing', async () => {
    const stored = JSON.parse(await readFile(indexFile(), 'utf8'));
    for (const entry of Object.values(stored.entries) as { row: Record<string, unknown> }[]) {
      delete entry.row.idempotency_key;
      delete entry.row.webhook_id;
    }
    await writeFile(indexFile(), JSON.stringify(stored));
    const first = await runMain(['conversations', 'show', '--key', 'msg_42', '--json'], { LOCAL_DATA_DIR: dataDir });
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout)).toMatchObject({ conversation: { conversation_id: ids[42] } });
    const lines = progress(first.stderr);
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) expect(line).toMatch(PROGRESS);
    expect(lines.at(-1)).toMatch(new RegExp(`: ${COUNT}/${COUNT} conversations$`));

    const next = await runMain(['conversations', 'show', '--key', 'msg_42', '--json'], { LOCAL_DATA_DIR: dataDir });
    expect(next.code, next.stderr).toBe(0);
    expect(next.stderr).toBe('');
  });

  it('a listing that reads histories to show questions too long for the index, not to fill it, says nothing', async () => {
    const run = await runMain(['conversations', 'list', '--limit', '500', '--json'], { LOCAL_DATA_DIR: dataDir });
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toHaveLength(COUNT);
    expect(run.stderr).toBe('');
  });

  it('a listing that reads few histories says nothing', async () => {
    await rm(path.join(dataDir, 'summaries'), { recursive: true, force: true });
    const run = await runMain(['conversations', 'list', '--limit', '5', '--json'], { LOCAL_DATA_DIR: dataDir });
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toHaveLength(5);
    expect(run.stderr).toBe('');
  });
});
