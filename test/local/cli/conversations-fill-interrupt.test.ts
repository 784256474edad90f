import { readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { ExecutionStore } from '../../../local/store/execution-store.ts';
import { runMain } from '../../support/cli.ts';
import { ageHistories, saveKeyedHistory } from '../../support/history-reads.ts';

/** Ctrl-C (or the signal `stop` names) once the listing looked at this many conversations. */
const STOP_AT = 110;
const stop = vi.hoisted(() => ({ signal: 'SIGINT' as NodeJS.Signals }));
vi.mock(import('../../../local/history/listing.ts'), async (original) => {
  const actual = await original();
  return {
    ...actual,
    listConversations: ((store, index, filter, limit, cursor, onProgress) =>
      actual.listConversations(store, index, filter, limit, cursor, (p) => {
        onProgress?.(p);
        if (p.looked === STOP_AT) process.emit(stop.signal, stop.signal);
      })) as typeof actual.listConversations,
  };
});

/**
 * The first `--key` on a data folder of an earlier version reads every history to fill the summary index (68 s at
 * 54,000 conversations, docs/operations.md "Runbook"). Stopped with Ctrl-C on the way, it kept nothing: the next one
 * read them all again. What it read is now kept, and it says so; so it is when `timeout` (SIGTERM) or a closed terminal
 * (SIGHUP) stops it, which killed it with nothing kept.
 */
const COUNT = 130;
let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-fill-interrupt-'));
  const store = new ExecutionStore(dataDir);
  const ids: string[] = [];
  for (let n = 0; n < COUNT; n++) ids.push(await saveKeyedHistory(store, n, 'fi'));
  await ageHistories(store, ids);
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('Ctrl-C, SIGTERM or SIGHUP while a --key fills the summary index', () => {
  it.each([
    ['SIGINT', 130],
    ['SIGTERM', 143],
    ['SIGHUP', 129],
  ] as const)('%s keeps the entries read so far, says so, and exits %i', async (signal, code) => {
    stop.signal = signal;
    await rm(path.join(dataDir, 'summaries'), { recursive: true, force: true });
    // What the index file holds when the command exits (the exit itself is stubbed: the listing then runs on).
    const atExit: { code: unknown; entries: number }[] = [];
    const exit = vi.spyOn(process, 'exit').mockImplementation(((code: unknown) => {
      const file = path.join(dataDir, 'summaries', 'conversations.json');
      const stored = JSON.parse(readFileSync(file, 'utf8')) as { entries: Record<string, unknown> };
      atExit.push({ code, entries: Object.keys(stored.entries).length });
    }) as never);
    try {
      const run = await runMain(['conversations', 'list', '--key', 'msg_0', '--json'], { LOCAL_DATA_DIR: dataDir });
      // Its last line: nothing more is said while the index is written.
      expect(run.stderr.trimEnd().split('\n').at(-1)).toBe(
        `webhook-gateway: stopped at ${STOP_AT}/${COUNT} conversations; the summary index keeps those read`,
      );
    } finally {
      exit.mockRestore();
    }
    // Before: nothing was written (the command was killed by the signal).
    expect(atExit).toHaveLength(1);
    expect(atExit[0]!.code).toBe(code);
    expect(atExit[0]!.entries).toBeGreaterThanOrEqual(STOP_AT);
  });
});
