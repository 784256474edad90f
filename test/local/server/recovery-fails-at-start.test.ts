import { readdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { JournalEntry } from '../../../local/engine/journal.ts';
import { startGateway } from '../../../local/server/gateway.ts';
import { ExecutionStore } from '../../../local/store/execution-store.ts';
import { journalOf, NO_WAIT, SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * A start whose crash recovery fails at one execution (docs/operations.md, "After a crash") after it started another
 * asynchronous conversation's run again: the gateway does not start, but not before that run has ended (delivered,
 * journaled ended), and the next start recovers what was left, nothing twice.
 */
let world: TestWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  vi.restoreAllMocks();
  await world?.close();
});

const point = (entry: JournalEntry) => `${entry.k}:${entry.s ?? ''}`;
const cutAfter = (entries: JournalEntry[], at: string) =>
  entries.slice(0, entries.findIndex((e) => point(e) === at) + 1);

/** The histories of `name` (saved when it ended): gone, as when the crash came before they were saved. */
async function forgetHistory(name: string) {
  const dir = world.gateway.executions.dir;
  for (const id of await readdir(dir))
    for (const file of await readdir(path.join(dir, id)))
      if (file.endsWith(`_${name}.json`)) await rm(path.join(dir, id, file));
}

describe('crash recovery that fails at one execution', () => {
  it('lets the run it started again end before the gateway stops; the next start finishes the rest', async () => {
    const accepted = await world.post(SEED_REQUEST, { prefer: 'respond-async', 'idempotency-key': 'recovery-fails' });
    expect(accepted.status).toBe(202);
    await world.gateway.idle();
    const asyncId = accepted.body.conversation_id as string;
    const sync = await world.post(SEED_REQUEST);
    const syncId = sync.body.conversation_id as string;
    const syncName = sync.headers.get('x-request-id')!;
    // What a kill left: the asynchronous run cut while its agent was called (started again at the next start), the
    // synchronous one cut once delivered (resumed at its export).
    const cut = [
      ...cutAfter(await journalOf(world, asyncId), 'in:InvokeManagerAgent'),
      ...cutAfter(await journalOf(world, syncName), 'out:Deliver'),
    ];
    const s3Port = Number(new URL(world.gateway.s3Endpoint).port);
    await world.gateway.close();
    await forgetHistory(asyncId);
    await forgetHistory(syncName);
    const journalDir = path.join(world.dataDir, 'journal');
    await writeFile(
      path.join(journalDir, '000000000000001-1.jsonl'),
      `${cut.map((e) => JSON.stringify(e)).join('\n')}\n`,
    );

    // The synchronous one's history cannot be saved; the restarted run's agent answers once that has failed.
    let saveFailed = () => {};
    const failedSave = new Promise<void>((resolve) => {
      saveFailed = resolve;
    });
    const save = ExecutionStore.prototype.save;
    const spy = vi.spyOn(ExecutionStore.prototype, 'save').mockImplementation(function (this: ExecutionStore, id, r) {
      if (id !== syncId) return save.call(this, id, r);
      saveFailed();
      // A data folder refusing writes: the start fails, and the next one tries it again (an execution whose replay
      // throws anything else is set aside instead, test/local/engine/recovery.test.ts).
      return Promise.reject(Object.assign(new Error('the history disk is gone'), { code: 'ENOSPC', syscall: 'write' }));
    });
    let agentCalled = () => {};
    const calledAgent = new Promise<void>((resolve) => {
      agentCalled = resolve;
    });
    world.agent.reset();
    world.agent.behave((request) => {
      agentCalled();
      return { held: true, payload: { response: `Answer to: ${String(request.query)}` } };
    });
    world.receiver.reset();
    const printed: string[] = [];
    vi.spyOn(console, 'error').mockImplementation((line: string) => void printed.push(line));
    delete process.env.AWS_ENDPOINT_URL_S3;
    const start = startGateway({ port: 0, s3Port, dataDir: world.dataDir, retryIntervalOverrides: NO_WAIT });
    const failedStart = start.then(
      () => expect.fail('started'),
      (error: Error) => error,
    );
    await Promise.all([failedSave, calledAgent]);
    world.agent.letGo();
    expect((await failedStart).message).toBe('the history disk is gone');
    vi.mocked(console.error).mockRestore();
    spy.mockRestore();

    // Before, the start failed at once: the run went on with the gateway stopped (its embedded S3 closed, its data
    // folder unlocked), its journal not ended. Now it ended before the start gave up, delivered once.
    const run = (await journalOf(world, asyncId)).filter((e) => e.k === 'begin' || e.k === 'end');
    expect(run.map((e) => `${e.k}${e.r ?? ''}`)).toEqual(['begin', 'begin1', 'end']);
    expect(world.receiver.received.filter((r) => r.body.conversation_id === asyncId)).toHaveLength(1);
    expect((await world.gateway.executions.executions(asyncId)).map((e) => e.execution_name)).toContain(asyncId);

    expect(printed.join('\n')).toContain(
      `webhook-gateway: crash recovery could not finish execution ${syncName}: the history disk is gone; the next start tries it again, with what recovery had not finished; 1 conversation run(s) it had started again are finished first`,
    );

    // The next start finishes the synchronous one and does not start the finished run again.
    world.agent.reset();
    world.gateway = await startGateway({ port: 0, s3Port, dataDir: world.dataDir, retryIntervalOverrides: NO_WAIT });
    expect(world.gateway.recovered.map((r) => [r.execution_name, r.outcome])).toEqual([[syncName, 'resumed']]);
    expect(world.agent.invocations).toHaveLength(0);
  });
});
