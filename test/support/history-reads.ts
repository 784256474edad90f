import { readdir, utimes } from 'node:fs/promises';
import path from 'node:path';
import { expect } from 'vitest';
import { parseFilter } from '../../local/history/conversation-filters.ts';
import { listConversations } from '../../local/history/listing.ts';
import { SummaryIndex } from '../../local/history/summary-index.ts';
import type { ExecutionStore } from '../../local/store/execution-store.ts';
import { runMain } from './cli.ts';
import { deliveredRecord, SEED_REQUEST, startedRecord } from './fixtures.ts';

/**
 * Which conversations' execution histories were read, from the files a test's `readJson` spy recorded (each test file
 * mocks `local/store/json-files.ts` to push every path it reads into `reads`).
 */
export function historiesRead(reads: string[], dataDir: string): string[] {
  const executions = path.join(dataDir, 'executions');
  return [
    ...new Set(
      reads.filter((f) => path.dirname(path.dirname(f)) === executions).map((f) => path.basename(path.dirname(f))),
    ),
  ].sort();
}

/** `conversations list --json …args` on a data folder, `reads` emptied first: the ids it lists, sorted. */
export async function listedIds(reads: string[], dataDir: string, ...args: string[]): Promise<string[]> {
  reads.length = 0;
  const run = await runMain(['conversations', 'list', '--json', ...args], { LOCAL_DATA_DIR: dataDir });
  expect(run.code, run.stderr).toBe(0);
  return (JSON.parse(run.stdout) as { conversation_id: string }[]).map((r) => r.conversation_id).sort();
}

/**
 * A conversation's record saved as the gateway saves its history: one SUCCEEDED execution, `executionName`, started
 * and stopped at `at`, whose Export state carries the record; `input` is the execution's input.
 */
export async function saveRecordHistory(
  store: ExecutionStore,
  record: ReturnType<typeof deliveredRecord>,
  at: string,
  executionName: string,
  input: Record<string, unknown> = {},
): Promise<string> {
  await store.save(record.conversation_id, {
    execution_name: executionName,
    state_machine: 'conversation',
    status: 'SUCCEEDED',
    started_at: at,
    stopped_at: at,
    input,
    events: [{ type: 'StateExited', timestamp: Date.parse(at), state: 'Export', output: { conversation: record } }],
  });
  return record.conversation_id;
}

/**
 * A delivered conversation received at `at`, saved as the gateway saves its history (one execution, `executionName`,
 * whose Export state carries the record): its conversation id, which ends in `suffix`.
 */
export async function saveDeliveredHistory(
  store: ExecutionStore,
  at: string,
  suffix: string,
  executionName: string,
): Promise<string> {
  const record = deliveredRecord(startedRecord(undefined, { input: { received_at: at }, ids: { suffix } }));
  return saveRecordHistory(store, record, at, executionName);
}

/**
 * A delivered conversation of `request`, received `n` seconds after 2026-11-29T10:00Z with the inbound webhook-id
 * `msg_<n>`, saved as the gateway saves its history (one execution, `run-<n>`): its id, which ends in `<suffix><n>`.
 */
export async function saveKeyedHistory(
  store: ExecutionStore,
  n: number,
  suffix: string,
  request: Record<string, unknown> = SEED_REQUEST,
): Promise<string> {
  const at = new Date(Date.UTC(2026, 10, 29, 10, Math.floor(n / 60), n % 60)).toISOString();
  const record = deliveredRecord(
    startedRecord(request, { input: { received_at: at }, ids: { suffix: `${suffix}${n}` } }),
  );
  return saveRecordHistory(store, record, at, `run-${n}`, { headers: { 'webhook-id': `msg_${n}` } });
}

/** These conversations' folders and histories made an hour old: the summary index keeps an entry of one once settled. */
export async function ageHistories(store: ExecutionStore, ids: string[]): Promise<void> {
  const before = new Date(Date.now() - 3_600_000);
  for (const id of ids) {
    const folder = path.join(store.dir, id);
    for (const file of await readdir(folder)) await utimes(path.join(folder, file), before, before);
    await utimes(folder, before, before);
  }
}

/** A listing of all, with an index of its own as `conversations list` makes it: how many histories it read. */
export async function commandListingReads(store: ExecutionStore): Promise<number> {
  let read = 0;
  await listConversations(store, new SummaryIndex(store), parseFilter({}), 50, null, (p) => {
    read = p.read;
  });
  return read;
}
