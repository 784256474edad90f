import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type ConsoleContext, threadConversations } from '../../../local/console/data.ts';
import { threadFragment } from '../../../local/console/pages.ts';
import { ExecutionStore } from '../../../local/store/execution-store.ts';
import { deliveredRecord, SEED_REQUEST, startedRecord } from '../../support/fixtures.ts';
import { ageHistories, commandListingReads, saveRecordHistory } from '../../support/history-reads.ts';

/**
 * A long thread on the console's thread page: it read and rendered every turn's history (3,000 turns: a 2.4 MB page
 * and 2 s of the gateway's CPU at each live refresh, which any conversation brings). It shows the newest turns, in
 * turn order, reads only their histories, and says how many earlier ones there are and how to list them.
 */
const TURNS = 12;
let dataDir: string;
const byTurn = new Map<number, string>();

async function saveTurn(store: ExecutionStore, n: number, threadId: string, turn: number, day = 29): Promise<string> {
  const at = new Date(Date.UTC(2026, 10, day, 10, Math.floor(n / 60), n % 60)).toISOString();
  const started = startedRecord(
    { ...SEED_REQUEST, query: `question of turn ${turn}`, thread_id: threadId },
    { input: { received_at: at }, ids: { suffix: `long${n}` } },
  );
  const record = deliveredRecord({ ...started, metadata: { ...started.metadata, thread_turn: turn } });
  return saveRecordHistory(store, record, at, `run-${n}`);
}

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-thread-long-'));
  const store = new ExecutionStore(dataDir);
  const ids: string[] = [];
  // Received in another order than their turns (a turn is claimed as its Validate runs), and another thread beside.
  const turns = [3, 1, 2, 5, 4, 7, 6, 9, 8, 12, 10, 11];
  for (const [n, turn] of turns.entries()) {
    const id = await saveTurn(store, n, 'long', turn);
    byTurn.set(turn, id);
    ids.push(id);
  }
  ids.push(await saveTurn(store, TURNS, 'other', 1));
  // A thread of six turns, unused for longer than THREAD_TTL_DAYS, then started again at turn 1 (two turns since).
  for (let turn = 1; turn <= 6; turn++) ids.push(await saveTurn(store, 20 + turn, 'again', turn, 1));
  for (let turn = 1; turn <= 2; turn++) {
    const id = await saveTurn(store, 30 + turn, 'again', turn, 29);
    byTurn.set(100 + turn, id);
    ids.push(id);
  }
  await ageHistories(store, ids);
  await commandListingReads(store); // the summary index filled, as a `conversations list` does
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe("the console's thread page of a long thread", () => {
  it('shows the newest turns in turn order, reads only their histories, and says how many earlier ones are left out', async () => {
    const gateway = new ExecutionStore(dataDir);
    const reads = vi.spyOn(gateway, 'executionsChecked');
    const ctx = { executions: gateway, running: () => [] } as unknown as ConsoleContext;

    const shown = await threadConversations(ctx, SEED_REQUEST.source_system, 'long', 5);
    expect(shown.turns.map((t) => t.row.thread_turn)).toEqual([8, 9, 10, 11, 12]);
    expect(shown.turns.map((t) => t.record.conversation_id)).toEqual([8, 9, 10, 11, 12].map((t) => byTurn.get(t)));
    expect(shown.earlier).toBe(7);
    // The five shown are read whole; the seven earlier ones are known from the index alone.
    const read = reads.mock.calls.map(([id]) => id).sort();
    expect(read).toEqual([8, 9, 10, 11, 12].map((t) => byTurn.get(t)).sort());

    const page = threadFragment(SEED_REQUEST.source_system, 'long', shown).value;
    expect(page).toContain('<span class="count">12</span>');
    expect(page).toContain('the 7 earlier ones are not shown here');
    expect(page).toContain(`conversations list --thread long --source ${SEED_REQUEST.source_system} --limit 12`);
    expect(page.match(/<li data-id=/g)).toHaveLength(5);
  });

  it('a thread started again at turn 1: its new life is the newest, after the earlier one', async () => {
    const gateway = new ExecutionStore(dataDir);
    const ctx = { executions: gateway, running: () => [] } as unknown as ConsoleContext;
    const shown = await threadConversations(ctx, SEED_REQUEST.source_system, 'again', 3);
    // Before: by turn number alone, turns 4, 5 and 6 of the forgotten life, the two new turns left out.
    expect(shown.turns.map((t) => `${t.row.received_at.slice(5, 10)} turn ${t.row.thread_turn}`)).toEqual([
      '11-01 turn 6',
      '11-29 turn 1',
      '11-29 turn 2',
    ]);
    expect(shown.turns.slice(1).map((t) => t.record.conversation_id)).toEqual([byTurn.get(101), byTurn.get(102)]);
    expect(shown.earlier).toBe(5);
  });

  it('a thread within the bound is shown whole, with no line about earlier turns', async () => {
    const gateway = new ExecutionStore(dataDir);
    const ctx = { executions: gateway, running: () => [] } as unknown as ConsoleContext;
    const all = await threadConversations(ctx, SEED_REQUEST.source_system, 'long');
    expect(all.turns.map((t) => t.row.thread_turn)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    expect(all.earlier).toBe(0);
    expect(threadFragment(SEED_REQUEST.source_system, 'long', all).value).not.toContain('earlier-turns');
  });
});
