import type * as fs from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { openAnalytics, READ_BATCH } from '../../../local/analytics/engine.ts';
import type { AnalysisSource } from '../../../local/analytics/sources.ts';
import { listStoredObjects } from '../../../local/store/stored-objects.ts';

/**
 * The console's Analytics page runs in the gateway's process: listing its days' exports and reading the new ones are
 * synchronous file calls, which held every request the gateway had to answer until they were done (12,000
 * conversations in the page's two days: /health waited 0.8 to 1 s, at a load of 10). Both now let the process's other
 * work run between slices of the work: each turn of the event loop is counted here (setImmediate), and the walk's file
 * calls and the source's reads must see it move on.
 */
const statTurns: number[] = [];
let turns = 0;
vi.mock('node:fs', async (importOriginal) => {
  const actual = await importOriginal<typeof fs>();
  const statSync = ((...args: Parameters<typeof actual.statSync>) => {
    statTurns.push(turns);
    return actual.statSync(...args);
  }) as typeof actual.statSync;
  return { ...actual, default: { ...actual, statSync }, statSync };
});

let counting = false;
function countTurns(): () => void {
  counting = true;
  const turn = () => {
    turns += 1;
    if (counting) setImmediate(turn);
  };
  turn();
  return () => {
    counting = false;
  };
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'event-loop-turns-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('reading the exports lets the gateway serve meanwhile', () => {
  it("the embedded store's walk lets other work run while it looks up 1,000 conversations' analysis.json", async () => {
    const day = path.join(dir, 's3', 'exports', 'conversation-history', '2026', '11', '29');
    for (let i = 0; i < 1_000; i++) {
      await mkdir(path.join(day, `webhook_${i}`), { recursive: true });
      await writeFile(path.join(day, `webhook_${i}`, 'analysis.json'), '{}\n');
    }
    statTurns.length = 0;
    const stop = countTurns();
    const listed = await listStoredObjects(
      path.join(dir, 's3'),
      'exports',
      'conversation-history/',
      'analysis.json',
      4,
    );
    stop();
    expect(listed).toHaveLength(1_000);
    expect(statTurns).toHaveLength(1_000);
    // The turn moved on during the walk, several times (every 250 entries), not only before it began.
    expect(new Set(statTurns).size).toBeGreaterThanOrEqual(4);
  });

  it('the table is brought up to date a batch at a time, with a turn of the event loop between two batches', async () => {
    const objects = Array.from({ length: READ_BATCH * 3 }, (_, i) => ({
      key: `conversation-history/2026/11/29/webhook_${i}/analysis.json`,
      version: '1',
    }));
    const readTurns: number[] = [];
    const source: AnalysisSource = {
      location: 'memory',
      list: async () => objects,
      read: async (asked) => {
        readTurns.push(turns);
        return asked.map((o) => `${JSON.stringify({ format: 'analysis', conversation_id: o.key })}\n`);
      },
      close: async () => {},
    };
    const stop = countTurns();
    const engine = await openAnalytics({ source, cacheDir: null });
    stop();
    engine.close();
    expect(engine.report.rows).toBe(READ_BATCH * 3);
    expect(readTurns).toHaveLength(3);
    expect(readTurns[1]).toBeGreaterThan(readTurns[0]!);
    expect(readTurns[2]).toBeGreaterThan(readTurns[1]!);
  });
});
