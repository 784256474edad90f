import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { MAX_RESTARTS, type RecoveredExecution } from '../../../local/engine/recovery.ts';
import { formatTimeline } from '../../../local/history/timeline.ts';
import type { RequestSummary } from '../../../local/server/config.ts';
import { runMain } from '../../support/cli.ts';
import { folderOf, journalEntries, journalOf, startWorld, type TestWorld } from '../../support/gateway.ts';

/** Export failing (an error it does not retry): a redelivery run that gets there fails, past CloseWithoutExport. */
let exportFails = false;
/** The file system refusing writes, as a full disk does (ENOSPC), or reads (EACCES), through the seams below. */
const full = {
  journal: false,
  validate: false,
  idempotencyRead: false,
  afterClassify: false,
  afterDeliver: false,
  afterRedeliveryBegin: false,
  /** Full once a run's agent call is journaled: its answer is not. */
  afterAgentCall: false,
  /** The failed-delivery store's envelope files (its put). */
  envelopes: false,
  /** The process out of file descriptors when Validate opens its Idempotency-Key claim (EMFILE, or ENFILE). */
  tooManyOpen: null as 'EMFILE' | 'ENFILE' | null,
};
const noSpace = (syscall: string, file = '') =>
  Object.assign(new Error(`ENOSPC: no space left on device, ${syscall}${file ? ` '${file}'` : ''}`), {
    code: 'ENOSPC',
    syscall,
  });
// The journal appends its lines with writeSync to segments it opens with openSync (local/engine/journal.ts): a full
// disk refuses both.
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const journalFds = new Set<number>();
  const openSync = ((file: string, ...rest: never[]) => {
    // A store's file its owner may no longer read (chmod 000 by another user; root reads it anyway, so the refusal is
    // made here): Node's error, as the open of functions/shared/local-files.ts (readDataFileSync) gives it.
    if (full.idempotencyRead && String(file).includes(`${path.sep}idempotency${path.sep}`))
      throw Object.assign(new Error(`EACCES: permission denied, open '${file}'`), {
        code: 'EACCES',
        syscall: 'open',
        path: String(file),
      });
    const journal = String(file).includes(`${path.sep}journal${path.sep}`);
    if (journal && full.journal) throw noSpace('open', String(file));
    const fd = (fs.openSync as (...args: unknown[]) => number)(file, ...rest);
    if (journal) journalFds.add(fd);
    return fd;
  }) as typeof fs.openSync;
  const writeSync = ((fd: number, ...rest: never[]) => {
    if (full.journal && journalFds.has(fd)) throw noSpace('write');
    const written = (fs.writeSync as (...args: unknown[]) => number)(fd, ...rest);
    // The disk fills up once a redelivery's first line is written: its Deliver is refused.
    if (
      full.afterRedeliveryBegin &&
      journalFds.has(fd) &&
      /-redelivery-[^"]*","t":\d+,"k":"begin"/.test(String(rest[0]))
    )
      full.journal = true;
    if (full.afterAgentCall && journalFds.has(fd) && String(rest[0]).includes('"k":"in","s":"InvokeManagerAgent"'))
      full.journal = true;
    return written;
  }) as typeof fs.writeSync;
  const closeSync = (fd: number) => {
    journalFds.delete(fd);
    fs.closeSync(fd);
  };
  const mocked = { openSync, writeSync, closeSync };
  return { ...fs, ...mocked, default: { ...fs, ...mocked } };
});

let world: TestWorld;
const operatorLog: RequestSummary[] = [];
/** What the running gateway finished of what the data folder cut (each a `recovered` line of `npm start`). */
const recoveredLog: RecoveredExecution[] = [];
beforeAll(async () => {
  const { handler: validate } = await import('../../../functions/validate/handler.ts');
  const { handler: classify } = await import('../../../functions/classify/handler.ts');
  const { handler: deliver } = await import('../../../functions/deliver/handler.ts');
  world = await startWorld(
    {},
    {
      onExecution: (summary) => operatorLog.push(summary),
      onRecovery: (recovered) => recoveredLog.push(...recovered),
      stageOverrides: {
        // Validate's claim of an Idempotency-Key is a file of the data folder: a full disk refuses it.
        validate: async (input) => {
          if (full.validate) throw noSpace('write');
          if (full.tooManyOpen)
            throw Object.assign(
              new Error(`${full.tooManyOpen}: too many open files, open '${path.join(world.dataDir, 'idempotency')}'`),
              { code: full.tooManyOpen, syscall: 'open' },
            );
          return validate(input as never);
        },
        // The disk fills up once the agent has answered: nothing after Classify can be journaled.
        classify: async (input) => {
          const output = await classify(input as never);
          if (full.afterClassify) full.journal = true;
          return output;
        },
        export: async (input) => {
          if (exportFails) throw new Error('the export bucket is gone');
          // Imported once the gateway has set its S3 endpoint (the handler builds its client then).
          const { handler: exportStage } = await import('../../../functions/export/handler.ts');
          return exportStage(input as never);
        },
        // The disk fills up once the receiver has answered (and the attempt log has that): Deliver's result is not
        // journaled.
        deliver: async (input) => {
          const output = await deliver(input as never);
          if (full.afterDeliver) full.journal = true;
          return output;
        },
      },
    },
  );
  const envelopes = world.gateway.failedDeliveries;
  const put = envelopes.put.bind(envelopes);
  vi.spyOn(envelopes, 'put').mockImplementation(async (envelope) => {
    if (full.envelopes)
      throw noSpace('open', path.join(world.dataDir, 'deliveries', `${envelope.conversation_id}.json`));
    return put(envelope);
  });
});
beforeEach(() => {
  full.journal = false;
  full.validate = false;
  full.idempotencyRead = false;
  full.afterClassify = false;
  full.afterDeliver = false;
  full.afterRedeliveryBegin = false;
  full.afterAgentCall = false;
  full.envelopes = false;
  full.tooManyOpen = null;
  exportFails = false;
  operatorLog.length = 0;
  recoveredLog.length = 0;
});
afterAll(async () => {
  await world?.close();
});

const request = { query: 'What are the top deals?', source_system: 'crm', source_process: 'sync' };

/** A conversation whose delivery the receiver refused for now (503), its envelope due now; the receiver then takes. */
async function owedAndDue() {
  // Only this one is due: another test's envelope left pending comes due as the clock moves on (a slow machine) and
  // was sent with it, which the schedule's results and the receiver's count then showed.
  const envelopes = world.gateway.failedDeliveries;
  const later = new Date(Date.now() + 86_400_000).toISOString();
  for (const other of await envelopes.list())
    if (other.state === 'pending') await envelopes.put({ ...other, next_due_at: later });
  world.receiver.reset();
  world.receiver.reply(503, 503, 503, 503);
  const first = await world.post(request);
  expect(first.body.tracking.delivery_status).toBe('retrying');
  const id = first.body.conversation_id as string;
  world.receiver.reset();
  const owed = (await world.gateway.failedDeliveries.get(id))!;
  await world.gateway.failedDeliveries.put({ ...owed, next_due_at: new Date(Date.now() - 1).toISOString() });
  return { id, owed };
}

describe('a data folder that fails while the gateway runs', () => {
  it('a journal folder that became a file (once the body was read): 500 STATE_UNREADABLE, not left hanging, and one line naming the file in the way (no stack)', async () => {
    const journal = path.join(world.dataDir, 'journal');
    // The journal's next segment cannot be made: its folder is now a file (ENOTDIR), once the body has been read.
    await rm(journal, { recursive: true, force: true });
    await writeFile(journal, 'not a folder');
    const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      const answer = await fetch(`${world.gateway.url}/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(request),
        signal: AbortSignal.timeout(5_000),
      });
      expect(answer.status).toBe(500);
      const body = (await answer.json()) as { error: { code: string; message: string } };
      expect(body.error.code).toBe('STATE_UNREADABLE');
      // The local operator (this loopback caller) is told which file and what to do.
      expect(body.error.message).toContain(`${journal} is a file where the gateway keeps a folder`);
      expect(printed).toHaveBeenCalledTimes(1);
      const line = String(printed.mock.calls[0]![0]);
      expect(line).toContain(
        `POST "/webhook" failed: ${journal} is a file where the gateway keeps a folder (ENOTDIR: not a directory, open '${journal}${path.sep}`,
      );
      expect(line).toContain('move it aside or delete it');
      expect(line).not.toContain('    at ');
    } finally {
      printed.mockRestore();
      await rm(journal, { force: true });
      await mkdir(journal);
    }
    // The folder back: the next request runs as usual.
    const again = await world.post(request);
    expect(again.status).toBe(200);
    expect(again.body.tracking.delivery_status).toBe('delivered');
  });

  it('a full disk under the journal: 503 STORAGE_UNAVAILABLE with Retry-After, one line naming the folder (no stack); served again once it has space', async () => {
    full.journal = true;
    const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      const refused = await world.post(request, { 'idempotency-key': 'disk-full-1' });
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('30');
      expect(refused.body.error).toEqual({
        code: 'STORAGE_UNAVAILABLE',
        message:
          'the local gateway cannot write its data folder (ENOSPC: no space left on its device): send it again once it can',
      });
      expect(printed).toHaveBeenCalledTimes(1);
      const line = String(printed.mock.calls[0]![0]);
      expect(line).toContain(`the data folder ${world.dataDir} refused a write (ENOSPC: no space left on device, `);
      expect(line).not.toContain('    at ');
    } finally {
      printed.mockRestore();
    }
    full.journal = false;
    const again = await world.post(request, { 'idempotency-key': 'disk-full-1' });
    expect(again.status).toBe(200);
    expect(again.body.tracking.delivery_status).toBe('delivered');
  });

  it('a history the full disk refused at the end of a conversation is saved before the next conversation once there is space, not only at the next start', async () => {
    // Before: `conversations show <id>` said "no conversation <id>" (and the console's list left it out) until the
    // gateway was started again, though the caller had its answer and the conversation was delivered and exported.
    const save = world.gateway.executions.save.bind(world.gateway.executions);
    const refused = vi
      .spyOn(world.gateway.executions, 'save')
      .mockImplementationOnce(async () => {
        throw noSpace('write', path.join(world.dataDir, 'executions'));
      })
      .mockImplementation(save);
    const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    const cli = (args: string[]) => runMain(args, { LOCAL_DATA_DIR: world.dataDir, GATEWAY_URL: world.gateway.url });
    try {
      const first = await world.post(request);
      expect(first.status).toBe(200);
      const id = first.body.conversation_id as string;
      expect(String(printed.mock.calls.at(-1)?.[0])).toMatch(
        new RegExp(
          `^webhook-gateway: the history of execution (\\S+) \\(conversation ${id}\\) could not be saved; it is saved once the data folder takes writes again \\(before the next conversation\\), or rebuilt from the journal at the next start: ENOSPC`,
        ),
      );
      const name = /history of execution (\S+)/.exec(String(printed.mock.calls.at(-1)?.[0]))![1]!;
      expect((await cli(['conversations', 'show', id])).code).toBe(1);

      const next = await world.post(request);
      expect(next.status).toBe(200);
      expect(printed).toHaveBeenCalledWith(
        `webhook-gateway: the history of execution ${name} (conversation ${id}) is saved now that the data folder takes writes again`,
      );
      const shown = await cli(['conversations', 'show', id]);
      expect(shown.code, shown.stderr).toBe(0);
      expect(shown.stdout).toMatch(new RegExp(`^conversation ${id}\n`));
      expect(shown.stdout).toMatch(/status {5}completed {3}delivery delivered/);
      // Ended in the journal: the next start does not rebuild it a second time.
      expect((await journalOf(world, name)).some((e) => e.k === 'end')).toBe(true);
      expect(refused).toHaveBeenCalledTimes(3); // the refused save, the one before `next`, next's own
    } finally {
      printed.mockRestore();
      refused.mockRestore();
    }
  });

  it('a disk that fills up once the agent has answered: 503 STORAGE_UNAVAILABLE, not a 500 that hides why', async () => {
    full.afterClassify = true;
    const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    let refused: Awaited<ReturnType<typeof world.post>>;
    try {
      refused = await world.post(request, { 'idempotency-key': 'disk-full-3' });
    } finally {
      printed.mockRestore();
    }
    // Before: 500 INTERNAL_ERROR "The conversation workflow failed" (ConversationUnanswered: every later step
    // failed on the journal, and the last one's error was all the answer said), the operator's line no wiser.
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('30');
    expect(refused.body.error.code).toBe('STORAGE_UNAVAILABLE');
    expect(operatorLog.at(-1)?.detail).toContain('ENOSPC: no space left on device');
  });

  it('a conversation the full disk cut after its agent answered is finished by the next request, without a restart: the retry with its key gets its answer', async () => {
    full.afterClassify = true;
    const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    let refused: Awaited<ReturnType<typeof world.post>>;
    try {
      refused = await world.post(request, { 'idempotency-key': 'disk-full-4' });
    } finally {
      printed.mockRestore();
    }
    expect(refused.status).toBe(503);
    const cutId = operatorLog.at(-1)!.conversation_id!;
    const agentCalls = world.agent.invocations.length;
    // The disk has space again; the client sends it again with the same key, as the 503 says.
    full.afterClassify = false;
    full.journal = false;
    const again = await world.post(request, { 'idempotency-key': 'disk-full-4' });
    // Before: 409 IDEMPOTENCY_CONFLICT "still being processed; retry in a few seconds" for the claim's 7 minutes
    // (nothing was processing it until a restart), then a second conversation: a second agent call and delivery.
    expect(again.status).toBe(200);
    expect(again.body.conversation_id).toBe(cutId);
    expect(world.agent.invocations.length).toBe(agentCalls);
    // Its history: what the journal saw, the state the full disk cut, then what was run once it had space.
    const [history] = await world.gateway.executions.executions(cutId);
    expect(history).toMatchObject({ error: 'StorageUnavailable' });
    expect(history!.events.some((e) => e.type === 'ExecutionResumed')).toBe(true);
    // Finished as the next start would have finished it: exported, its delivery queued for the schedule.
    expect(await world.listKeys(folderOf(cutId))).toHaveLength(4);
    expect((await world.gateway.failedDeliveries.get(cutId))?.state).toBe('pending');
    // Nothing is left for the next start: every execution the journal holds has ended.
    await world.gateway.idle();
    const entries = await journalEntries(path.join(world.dataDir, 'journal')).catch(() => []);
    const ended = new Set(entries.filter((e) => e.k === 'end').map((e) => e.e));
    expect(entries.filter((e) => e.k === 'begin' && !ended.has(e.e))).toEqual([]);
  });

  it('a conversation the full disk cut once its receiver had taken the delivery is finished delivered by the next request: the receiver gets it once', async () => {
    world.receiver.reset();
    full.afterDeliver = true;
    const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    let refused: Awaited<ReturnType<typeof world.post>>;
    try {
      refused = await world.post(request, { 'idempotency-key': 'disk-full-5' });
    } finally {
      printed.mockRestore();
    }
    expect(refused.status).toBe(503);
    const cutId = operatorLog.at(-1)!.conversation_id!;
    expect(world.receiver.received).toHaveLength(1);
    full.afterDeliver = false;
    full.journal = false;
    const again = await world.post(request, { 'idempotency-key': 'disk-full-5' });
    expect(again.status).toBe(200);
    expect(again.body.conversation_id).toBe(cutId);
    // Before: the data folder's note on the refused line (named after Deliver) was read as Deliver's last step, so the
    // attempt log was not looked at: exported `interrupted`, its delivery queued, and the schedule sent it again.
    const exported = await world.getJson(`${folderOf(cutId)}conversation.json`);
    expect(exported.conversation.webhook_context.delivery_status).toBe('delivered');
    expect(await world.gateway.failedDeliveries.get(cutId)).toBeNull();
    expect(world.receiver.received).toHaveLength(1);
  });

  it('a redelivery the full disk cut once its receiver had taken the attempt is finished by the running gateway before the schedule runs again: delivered once', async () => {
    const { id, owed } = await owedAndDue();
    full.afterDeliver = true;
    const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      const [cut] = await world.gateway.redelivery.runDue();
      expect(cut).toMatchObject({ conversation_id: id, status: 'error' });
      expect(cut!.error).toContain('ENOSPC');
    } finally {
      printed.mockRestore();
    }
    expect(world.receiver.received).toHaveLength(1);
    // Not a failed run of the envelope: the full disk cut it. It is as it was until the run is finished.
    expect(await world.gateway.failedDeliveries.get(id)).toMatchObject({
      state: 'pending',
      updated_at: owed.updated_at,
    });
    full.afterDeliver = false;
    full.journal = false;
    // The folder takes writes again; the schedule's next run first finishes the cut one. Before: counted as a failed
    // run and left pending, so this run sent it to the receiver a second time, and the cut run waited in the journal
    // for the next start.
    await world.gateway.redelivery.runDue();
    expect(world.receiver.received).toHaveLength(1);
    expect(await world.gateway.failedDeliveries.get(id)).toMatchObject({ state: 'settled' });
    const exported = await world.getJson(`${folderOf(id)}conversation.json`);
    expect(exported.conversation.webhook_context.delivery_status).toBe('delivered');
    const redeliveries = (await world.gateway.executions.executions(id)).filter((e) =>
      e.execution_name.includes('-redelivery-'),
    );
    expect(redeliveries.map((e) => e.error)).toEqual(['StorageUnavailable']);
    // Its recovered line says it was finished, cut by the data folder (before: "had failed before the crash, counted as
    // a failed run").
    expect(recoveredLog).toMatchObject([
      { outcome: 'resumed', delivery_status: 'delivered', storage_refused: expect.stringContaining('ENOSPC') },
    ]);
    expect(redeliveries[0]!.events.some((e) => e.type === 'ExecutionResumed')).toBe(true);
    await world.gateway.idle();
    const entries = await journalEntries(path.join(world.dataDir, 'journal')).catch(() => []);
    const ended = new Set(entries.filter((e) => e.k === 'end').map((e) => e.e));
    expect(entries.filter((e) => e.k === 'begin' && !ended.has(e.e))).toEqual([]);
  });

  it('a redelivery the full disk cut, the envelope store full too: its envelope is left alone, the run reported as cut, not "envelope not processed"', async () => {
    const { id } = await owedAndDue();
    const due = await world.gateway.failedDeliveries.get(id);
    full.afterDeliver = true;
    full.envelopes = true;
    const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    let results: Awaited<ReturnType<typeof world.gateway.redelivery.runDue>>;
    try {
      results = await world.gateway.redelivery.runDue();
    } finally {
      printed.mockRestore();
    }
    // Before: the cut run's envelope, unchanged, was written again; the full disk refused that write, so the result was
    // lost and stderr said "Failed-delivery envelope not processed; it comes back later" (ENOSPC on the envelope).
    expect(results).toMatchObject([{ conversation_id: id, status: 'error' }]);
    expect(results[0]!.error).toContain('ENOSPC');
    expect(printed.mock.calls.map((c) => String(c[0])).filter((l) => l.includes('not processed'))).toEqual([]);
    expect(await world.gateway.failedDeliveries.get(id)).toEqual(due);
    full.afterDeliver = false;
    full.journal = false;
    full.envelopes = false;
    await world.gateway.redelivery.runDue();
    expect(world.receiver.received).toHaveLength(1);
    expect(await world.gateway.failedDeliveries.get(id)).toMatchObject({ state: 'settled' });
  });

  it('a redelivery the full disk cut once its receiver had taken the attempt, whose finished run fails in its export: it owes only the export, not sent again', async () => {
    const { id } = await owedAndDue();
    full.afterDeliver = true;
    const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      expect((await world.gateway.redelivery.runDue())[0]).toMatchObject({ conversation_id: id, status: 'error' });
      full.afterDeliver = false;
      full.journal = false;
      exportFails = true;
      // The folder takes writes again: the cut run is finished from its export, which fails (past CloseWithoutExport).
      await world.gateway.redelivery.runDue();
    } finally {
      printed.mockRestore();
    }
    // Before: counted as a failed run that still owed the delivery, so its next run sent the receiver the attempt it
    // had taken.
    const owed = (await world.gateway.failedDeliveries.get(id))!;
    expect(owed).toMatchObject({ state: 'pending', owed: 'export', failed_runs: 1 });
    // Its recovered line says so, and what the envelope owes. Before: "cut during its attempt, shown as interrupted;
    // its envelope as it was, for the schedule", the envelope counted a failed run all the same.
    expect(recoveredLog).toMatchObject([{ outcome: 'failed', failed_when_finished: true }]);
    const { recoveryFields } = await import('../../../local/cli/main.ts');
    expect(recoveryFields(recoveredLog[0]!)[1]).toBe(
      `schedule ${recoveredLog[0]!.execution_name} finished, and failed (cut by the data folder refusing a write: ${recoveredLog[0]!.storage_refused}): completed, delivery delivered; its envelope owes only the export, due at ${owed.next_due_at} for the schedule (1 failed run in a row; dead after 5)`,
    );
    expect(recoveredLog[0]!.storage_refused).toContain('ENOSPC');
    exportFails = false;
    await world.gateway.failedDeliveries.put({ ...owed, next_due_at: new Date(Date.now() - 1).toISOString() });
    expect(await world.gateway.redelivery.runDue()).toMatchObject([{ conversation_id: id, status: 'delivered' }]);
    expect(world.receiver.received).toHaveLength(1);
    const exported = await world.getJson(`${folderOf(id)}conversation.json`);
    expect(exported.conversation.webhook_context.delivery_status).toBe('delivered');
  });

  it("an operator's redrive while a redelivery the full disk cut is unfinished is skipped, not sent a second time", async () => {
    const { id } = await owedAndDue();
    full.afterDeliver = true;
    const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    // The gateway's clock stands still: the folder refused finishing the cut run "just now", whenever the redrive comes.
    // (A second back, so that the tests after this one find the last refusal a second old.)
    const now = performance.now() - 1_000;
    const still = vi.spyOn(performance, 'now').mockReturnValue(now);
    try {
      expect((await world.gateway.redelivery.runDue())[0]).toMatchObject({ conversation_id: id, status: 'error' });
      expect(world.receiver.received).toHaveLength(1);
      full.afterDeliver = false;
      // Still full: the schedule's next run cannot finish the cut run, and sends nothing.
      expect(await world.gateway.redelivery.runDue()).toEqual([]);
      // The folder takes writes again, but the gateway tries finishing the cut run a second after its last refusal at
      // the soonest. Before: the redrive went on meanwhile and sent the receiver the attempt it had already taken.
      full.journal = false;
      const redriven = await world.gateway.redelivery.redrive(id);
      expect(redriven).toMatchObject({ conversation_id: id, status: 'skipped' });
      expect(redriven.error).toMatch(/data folder/);
      expect(world.receiver.received).toHaveLength(1);
      // A second later the cut run is finished (delivered, by that run), and nothing is owed.
      still.mockReturnValue(now + 1_000);
      await world.gateway.redelivery.runDue();
    } finally {
      still.mockRestore();
      printed.mockRestore();
    }
    expect(world.receiver.received).toHaveLength(1);
    expect(await world.gateway.failedDeliveries.get(id)).toMatchObject({ state: 'settled' });
    expect(await world.gateway.redelivery.redrive(id)).toMatchObject({ status: 'already_delivered' });
  });

  it("an operator's resend while a resend the full disk cut is unfinished is skipped (exit code 75), not sent one more time", async () => {
    world.receiver.reset();
    const id = (await world.post(request)).body.conversation_id as string;
    const cli = (args: string[]) => runMain(args, { LOCAL_DATA_DIR: world.dataDir, GATEWAY_URL: world.gateway.url });
    full.afterDeliver = true;
    const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    // The gateway's clock stands still, as in the redrive's test above.
    const now = performance.now() - 1_000;
    const still = vi.spyOn(performance, 'now').mockReturnValue(now);
    try {
      // The receiver takes the resend; the full disk cuts its run, and the operator is told of the error.
      expect((await cli(['deliveries', 'resend', id])).code).toBe(1);
      expect(world.receiver.received).toHaveLength(2);
      full.afterDeliver = false;
      expect(await world.gateway.redelivery.runDue()).toEqual([]);
      full.journal = false;
      // Before: the second resend was sent (a third delivery, where the operator asked for one more), from a record
      // that did not have the cut resend's attempt yet.
      const again = await cli(['deliveries', 'resend', id]);
      expect(again.code).toBe(75);
      expect(again.stdout).toContain(
        `${id} resent → skipped: a redelivery run the data folder cut is not finished yet (the folder refused a write): try again in a few seconds`,
      );
      expect(world.receiver.received).toHaveLength(2);
      // A second later the cut resend is finished (its attempt exported), and the next resend is one more attempt.
      still.mockReturnValue(now + 1_000);
      expect((await cli(['deliveries', 'resend', id])).code).toBe(0);
      expect(world.receiver.received).toHaveLength(3);
      const exported = await world.getJson(`${folderOf(id)}conversation.json`);
      expect(
        exported.conversation.execution.delivery_attempts.map((a: { attempt: number; via: string }) => [
          a.attempt,
          a.via,
        ]),
      ).toEqual([
        [1, 'workflow'],
        [2, 'resend'],
        [3, 'resend'],
      ]);
    } finally {
      still.mockRestore();
      printed.mockRestore();
    }
  });

  it('a redelivery the full disk cut before its attempt: its history says the data folder refused a write; its envelope is delivered by the next run', async () => {
    const { id } = await owedAndDue();
    full.afterRedeliveryBegin = true;
    const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      expect((await world.gateway.redelivery.runDue())[0]).toMatchObject({ conversation_id: id, status: 'error' });
    } finally {
      printed.mockRestore();
    }
    expect(world.receiver.received).toHaveLength(0);
    full.afterRedeliveryBegin = false;
    full.journal = false;
    const [next] = await world.gateway.redelivery.runDue();
    expect(next).toMatchObject({ conversation_id: id, status: 'delivered' });
    expect(world.receiver.received).toHaveLength(1);
    // Before: shown as cut by a crash ("the local gateway stopped (crash or kill)", its attempt said to have perhaps
    // reached the receiver), and its recovered line the same.
    const [cut] = (await world.gateway.executions.executions(id)).filter(
      (e) => e.execution_name.includes('-redelivery-') && e.execution_name !== next!.execution_name,
    );
    expect(cut).toMatchObject({ status: 'FAILED', error: 'StorageUnavailable' });
    expect(cut!.cause).toMatch(
      /^the local gateway's data folder refused a write \(ENOSPC: no space left on device, write\) in Deliver; the envelope is as it was before the run$/,
    );
    expect(recoveredLog).toMatchObject([
      {
        execution_name: cut!.execution_name,
        outcome: 'interrupted',
        redelivery: 'schedule',
        storage_refused: expect.stringContaining('ENOSPC'),
      },
    ]);
  });

  it("an asynchronous conversation the full disk cut: its run's line says 503 STORAGE_UNAVAILABLE and why, as a synchronous one's", async () => {
    full.afterClassify = true;
    const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      const accepted = await world.post(request, { prefer: 'respond-async' });
      expect(accepted.status).toBe(202);
      await world.gateway.idle();
    } finally {
      printed.mockRestore();
    }
    // Before: "500 … async run ended: INTERNAL_ERROR: The conversation workflow failed", the disk not named.
    const ended = operatorLog.find((line) => line.detail.startsWith('async run ended'));
    expect(ended).toMatchObject({ http_status: 503 });
    expect(ended!.detail).toMatch(
      /^async run ended: STORAGE_UNAVAILABLE: .* \(ENOSPC: no space left on device, write\)$/,
    );
  });

  it("an asynchronous conversation the full disk cut before its agent's answer was journaled is started again once there is space: delivered, completed", async () => {
    full.afterAgentCall = true;
    const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    let id: string;
    try {
      const accepted = await world.post(request, { prefer: 'respond-async', 'idempotency-key': 'disk-full-async' });
      expect(accepted.status).toBe(202);
      id = accepted.body.conversation_id as string;
      await world.gateway.idle();
    } finally {
      printed.mockRestore();
    }
    const statusOf = async () => JSON.parse(await readFile(path.join(world.dataDir, 'status', `${id}.json`), 'utf8'));
    expect((await statusOf()).status).toBe('running');
    // The disk has space again: the next request finishes what it cut first. Before: closed as interrupted (its
    // status failed, INTERRUPTED), its caller told `accepted` and never delivered.
    full.afterAgentCall = false;
    full.journal = false;
    world.receiver.reset();
    const agentCalls = world.agent.invocations.length;
    expect((await world.post(request)).status).toBe(200);
    await world.gateway.idle();
    expect(recoveredLog).toContainEqual(
      expect.objectContaining({
        conversation_id: id,
        outcome: 'restarted',
        restarts: 1,
        storage_refused: expect.stringContaining('ENOSPC'),
      }),
    );
    expect(world.agent.invocations.length).toBe(agentCalls + 2); // its agent called again, and the new request's
    expect((await statusOf()).status).toBe('completed');
    expect(world.receiver.received.filter((r) => r.body.conversation_id === id)).toHaveLength(1);
    // Nothing of it is left for the next start: the run started again ended, and the cut run wrote no `end` (read as
    // the new run's, it would have hidden a second cut from the next start).
    const entries = (await journalEntries(path.join(world.dataDir, 'journal')).catch(() => [])).filter(
      (e) => e.e === id,
    );
    expect(entries.filter((e) => e.k === 'begin').map((e) => e.r)).toEqual([undefined, 1]);
    expect(entries.filter((e) => e.k === 'end')).toHaveLength(1);
    expect(entries.at(-1)?.k).toBe('end');
    // The cut run left no history of its own (the run started again has its name): the run's says what happened.
    // Before, `conversations show` and the console listed the run as if it had run once.
    const runs = (await world.gateway.executions.executions(id)).filter((e) => e.execution_name === id);
    expect(runs).toHaveLength(1);
    expect(runs[0]!.restart).toMatchObject({
      restart: 1,
      of: MAX_RESTARTS,
      earlier_cut_by: expect.stringContaining("the local gateway's data folder refused a write (ENOSPC"),
    });
    const said = `restart 1 of ${MAX_RESTARTS}: the run before it (started ${runs[0]!.restart!.earlier_started_at}) was cut at`;
    expect(formatTimeline(runs[0]!)).toContain(`\n  ${said}`);
    const page = await (await fetch(`${world.gateway.url}/console/conversations/${id}`)).text();
    expect(page).toContain(`<p class="note restart">${said}`);
  });

  it('a handler that cannot write the folder (the Idempotency-Key claim): 503 STORAGE_UNAVAILABLE, then the retry runs once', async () => {
    full.validate = true;
    const refused = await world.post(request, { 'idempotency-key': 'disk-full-2' });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('30');
    expect(refused.body.error.code).toBe('STORAGE_UNAVAILABLE');
    full.validate = false;
    const again = await world.post(request, { 'idempotency-key': 'disk-full-2' });
    expect(again.status).toBe(200);
    const replay = await world.post(request, { 'idempotency-key': 'disk-full-2' });
    expect(replay.body.conversation_id).toBe(again.body.conversation_id);
  });

  it.each([
    ['EMFILE', 'too many open files in the gateway process'],
    ['ENFILE', 'too many open files on this system'],
  ] as const)(
    'out of file descriptors (%s) when Validate opens a file: 503 STORAGE_UNAVAILABLE with Retry-After, nothing run; then the retry runs once',
    async (code, why) => {
      full.tooManyOpen = code;
      operatorLog.length = 0;
      const calls = world.agent.invocations.length;
      const refused = await world.post(request, { 'idempotency-key': `fds-${code}` });
      // Before: 500 INTERNAL_ERROR, as a bug of the gateway.
      expect(refused.status).toBe(503);
      expect(refused.headers.get('retry-after')).toBe('30');
      expect(refused.body.error).toEqual({
        code: 'STORAGE_UNAVAILABLE',
        message: `the local gateway cannot open a file of its data folder (${code}: ${why}): send it again once it can`,
      });
      expect(operatorLog[0]!.detail).toContain(`(${code}: too many open files, open '${world.dataDir}`);
      expect(world.agent.invocations).toHaveLength(calls);
      full.tooManyOpen = null;
      const again = await world.post(request, { 'idempotency-key': `fds-${code}` });
      expect(again.status).toBe(200);
      expect(world.agent.invocations).toHaveLength(calls + 1);
      const replay = await world.post(request, { 'idempotency-key': `fds-${code}` });
      expect(replay.body.conversation_id).toBe(again.body.conversation_id);
    },
  );

  it('a store file the gateway may not read (the Idempotency-Key record): 503 saying it cannot read, the operator line names the file; served again once readable', async () => {
    const first = await world.post(request, { 'idempotency-key': 'unreadable-1' });
    expect(first.status).toBe(200);
    full.idempotencyRead = true;
    operatorLog.length = 0;
    const refused = await world.post(request, { 'idempotency-key': 'unreadable-1' });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('30');
    expect(refused.body.error).toEqual({
      code: 'STORAGE_UNAVAILABLE',
      message: 'the local gateway cannot read its data folder (EACCES: permission denied): send it again once it can',
    });
    expect(operatorLog).toHaveLength(1);
    expect(operatorLog[0]!.detail).toMatch(
      new RegExp(
        `STORAGE_UNAVAILABLE.*EACCES: permission denied, read '${world.dataDir}/idempotency/[0-9a-f]+\\.json'`,
      ),
    );
    full.idempotencyRead = false;
    const replay = await world.post(request, { 'idempotency-key': 'unreadable-1' });
    expect(replay.status).toBe(200);
    expect(replay.body.conversation_id).toBe(first.body.conversation_id);
  });
});
