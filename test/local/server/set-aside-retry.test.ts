import { access, readdir, rename, rm, unlink } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { JournalEntry } from '../../../local/engine/journal.ts';
import { SET_ASIDE_DIR, setAsideExecution } from '../../../local/engine/set-aside.ts';
import { startGateway } from '../../../local/server/gateway.ts';
import { journalOf, NO_WAIT, SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * The operator's steps with an execution whose recovery failed (docs/operations.md, "After a crash"): every start names
 * each one still set aside, with why; moved back into the journal, it is retried at the next start and no longer named
 * (its .why.txt goes with it); deleted, it is dropped, and its .why.txt too.
 */
let world: TestWorld | undefined;
// Started before the test (the hook's time only catches a hang): the first start in a process imports every stage and
// validates the workflows, 15-20 s when three runs of this file ran at once at load 15.
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  vi.restoreAllMocks();
  await world?.close();
});

const exists = (file: string) =>
  access(file).then(
    () => true,
    () => false,
  );

describe('a set-aside execution, retried by the operator', () => {
  it('is named at each start while set aside; moved back, it is recovered and its why removed; deleted, dropped', async () => {
    const started = world!;
    const sync = await started.post(SEED_REQUEST);
    expect(sync.status).toBe(200);
    const name = sync.headers.get('x-request-id')!;
    const id = sync.body.conversation_id as string;
    // What a kill left once the conversation was delivered: recovery resumes it at its export.
    const all = await journalOf(started, name);
    const cut: JournalEntry[] = all.slice(0, all.findIndex((e) => e.k === 'out' && e.s === 'Deliver') + 1);
    const s3Port = Number(new URL(started.gateway.s3Endpoint).port);
    await started.gateway.close();
    const dir = path.join(started.gateway.executions.dir, id);
    for (const file of await readdir(dir)) if (file.endsWith(`_${name}.json`)) await rm(path.join(dir, file));
    const journalDir = path.join(started.dataDir, 'journal');
    for (const file of await readdir(journalDir)) await rm(path.join(journalDir, file), { recursive: true });
    // Two executions set aside by an earlier start (an older version could not replay them).
    const when = new Date('2026-12-03T10:00:00.000Z');
    const file = await setAsideExecution(journalDir, name, cut, new Error('no state Deliver2'), when);
    const other = await setAsideExecution(journalDir, 'other-execution', cut.slice(0, 1), new Error('bad line'), when);
    expect(file).toBe(path.join(journalDir, SET_ASIDE_DIR, `${name}.jsonl`));

    const warned: string[] = [];
    vi.spyOn(console, 'warn').mockImplementation((line: string) => void warned.push(line));
    const start = async () => {
      warned.length = 0;
      delete process.env.AWS_ENDPOINT_URL_S3;
      started.gateway = await startGateway({
        port: 0,
        s3Port,
        dataDir: started.dataDir,
        retryIntervalOverrides: NO_WAIT,
      });
      return warned.filter((l) => l.includes('set aside'));
    };

    expect(await start()).toEqual([
      `webhook-gateway: 2 interrupted execution(s) set aside, their recovery failed: ${name} (2026-12-03T10:00:00.000Z Error: no state Deliver2); other-execution (2026-12-03T10:00:00.000Z Error: bad line); in ${path.join(journalDir, SET_ASIDE_DIR)}: move an execution's .jsonl into ${journalDir} to retry it at the next start, or delete it to drop it (docs/operations.md, "After a crash")`,
    ]);
    expect(started.gateway.recovered).toEqual([]);
    await started.gateway.close();

    // Retry: its .jsonl moved back into the journal. Before, its .why.txt stayed in the set-aside folder.
    await rename(file, path.join(journalDir, `${name}.jsonl`));
    const named = await start();
    expect(started.gateway.recovered.map((r) => [r.execution_name, r.outcome, r.status])).toEqual([
      [name, 'resumed', 'completed'],
    ]);
    expect(named).toHaveLength(1);
    expect(named[0]).toContain('1 interrupted execution(s) set aside, their recovery failed: other-execution (');
    expect(named[0]).not.toContain(name);
    expect(await exists(`${file}.why.txt`)).toBe(false);
    expect(await exists(`${other}.why.txt`)).toBe(true);
    await started.gateway.close();

    // Drop: its .jsonl deleted. Nothing is named, and its .why.txt goes too.
    await unlink(other);
    expect(await start()).toEqual([]);
    expect(await readdir(path.join(journalDir, SET_ASIDE_DIR))).toEqual([]);
  });
});
