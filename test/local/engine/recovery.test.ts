import { mkdir, mkdtemp, readdir, readFile, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { idempotencyPk } from '../../../functions/domain/idempotency.ts';
import { attemptLog } from '../../../functions/shared/attempt-log.ts';
import { localStatusStore } from '../../../functions/shared/conversation-status-store.ts';
import { idempotencyStore } from '../../../functions/shared/idempotency-store.ts';
import { recoveryFields } from '../../../local/cli/main.ts';
import type { LocalWorkflow } from '../../../local/engine/engine.ts';
import { ExecutionJournal, type JournalEntry, type JournaledRun } from '../../../local/engine/journal.ts';
import {
  MAX_RESTARTS,
  planRecovery,
  planRedeliveryRecovery,
  type RecoveryContext,
  type RecoveryPlan,
  RecoveryStopped,
  recoverInterrupted,
} from '../../../local/engine/recovery.ts';
import { LocalRedelivery } from '../../../local/engine/redelivery.ts';
import { loadStageHandlers, localWorkflow } from '../../../local/engine/workflows.ts';
import { LocalFailedDeliveryStore } from '../../../local/store/failed-delivery-store.ts';
import { sweepLocalHistory } from '../../../local/store/retention.ts';
import { runMain } from '../../support/cli.ts';
import {
  folderOf,
  journalEntries,
  journalOf,
  NO_WAIT,
  SEED_REQUEST,
  startWorld,
  type TestWorld,
} from '../../support/gateway.ts';

/**
 * Every crash point of the conversation workflow: the journal of a real run, cut after each of its lines (what a
 * kill -9 at that moment leaves), must plan the right recovery — and that recovery, run for real against the
 * gateway's S3, idempotency and failed-delivery stores, must leave the conversation exported, its key settled, and
 * an answer not known to be delivered in the failed-delivery store under the same delivery id.
 */
let world: TestWorld;
let workflow: LocalWorkflow;
let redeliveryWorkflow: LocalWorkflow;
let acceptWorkflow: LocalWorkflow;
beforeAll(async () => {
  world = await startWorld({ REDELIVERY_SCHEDULE: '1h' });
  const send = (params: unknown) => world.gateway.failedDeliveries.sendMessage(params as never);
  workflow = localWorkflow('conversation', await loadStageHandlers(), send, NO_WAIT);
  redeliveryWorkflow = localWorkflow('redelivery', await loadStageHandlers(), send, NO_WAIT);
  acceptWorkflow = localWorkflow('accept', await loadStageHandlers(), send, NO_WAIT);
});
afterAll(async () => {
  await world?.close();
});
beforeEach(() => {
  world.receiver.reset();
  world.agent.reset();
});

/** One real conversation and its journal, from `begin` to `end`. */
async function journaledRun(headers: Record<string, string>, body: unknown = SEED_REQUEST) {
  const res = await world.post(body, headers);
  const entries = await journalOf(world, res.headers.get('x-request-id')!);
  expect(entries[0]!.k).toBe('begin');
  expect(entries.at(-1)!.k).toBe('end');
  return { res, entries: entries.slice(0, -1) };
}

const point = (entry: JournalEntry) => `${entry.k}:${entry.s ?? ''}`;

/** The history of one execution, wherever it is: saved once the execution ended, so a crash before that left none. */
async function forgetHistory(name: string) {
  const dir = world.gateway.executions.dir;
  for (const id of await readdir(dir))
    for (const file of await readdir(path.join(dir, id)))
      if (file.endsWith(`_${name}.json`)) await rm(path.join(dir, id, file));
}

/** What recovery works with, as the gateway gives it (its journal apart): the world's stores, these workflows. */
function recoveryContext(restart: RecoveryContext['restart'] = () => undefined, conversations = workflow) {
  return {
    workflow: conversations,
    redeliveryWorkflow,
    acceptWorkflow,
    failedDeliveries: world.gateway.failedDeliveries,
    executions: world.gateway.executions,
    idempotency: idempotencyStore(),
    statuses: localStatusStore(),
    attempts: attemptLog(),
    restart,
  };
}

/** Recover one cut journal for real, in a journal directory of its own (its execution's history not saved). */
async function recover(
  entries: JournalEntry[],
  options: { historySaved?: boolean; beforeRestartedRun?: () => Promise<unknown> } = {},
) {
  const dir = await mkdtemp(path.join(tmpdir(), 'journal-'));
  if (!options.historySaved) await forgetHistory(entries[0]!.e);
  // A run started again (an asynchronous conversation's, named after it) runs as the gateway runs it: its history
  // saved, then its journal ended; waited for here.
  const restarted: Promise<void>[] = [];
  const restart = (name: string, input: unknown, run: JournaledRun) =>
    restarted.push(
      (async () => {
        await options.beforeRestartedRun?.();
        return workflow.run(input, name, { observer: run });
      })().then(async (record) => {
        await world.gateway.executions.save(name, record);
        run.end();
      }),
    );
  try {
    await writeFile(path.join(dir, '000000000000001-1.jsonl'), `${entries.map((e) => JSON.stringify(e)).join('\n')}\n`);
    const journal = await ExecutionJournal.open(dir);
    const recovered = await recoverInterrupted({ ...recoveryContext(restart), journal });
    await Promise.all(restarted);
    journal.close();
    expect(await readdir(dir)).toEqual([]); // nothing left to recover
    return recovered;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

async function keyStatus(key: string): Promise<string | null> {
  const file = path.join(world.dataDir, 'idempotency', `${idempotencyPk('testing_system', key)}.json`);
  try {
    return (JSON.parse(await readFile(file, 'utf8')) as { status: string }).status;
  } catch {
    return null;
  }
}

function expectPlan(plan: RecoveryPlan, expected: Partial<Extract<RecoveryPlan, { kind: 'resume' }>> | string) {
  if (typeof expected === 'string') expect(plan.kind).toBe(expected);
  else expect(plan).toMatchObject({ kind: 'resume', ...expected });
}

describe('a delivered conversation, cut after each journal line', () => {
  it('plans: not accepted → interrupted without answer → interrupted with answer → resumed', async () => {
    const { entries } = await journaledRun({ 'idempotency-key': 'plan-1' });
    expect(entries.map(point)).toEqual([
      'begin:',
      'in:Validate',
      'out:Validate',
      'in:InvokeManagerAgent',
      'out:InvokeManagerAgent',
      'in:Classify',
      'out:Classify',
      'in:Deliver',
      'out:Deliver',
      'in:Export',
      'out:Export',
    ]);
    const expected = [
      'unaccepted',
      'unaccepted',
      { startAt: 'ExportFailedConversation', interrupted: true, stage: 'Validate' },
      { startAt: 'ExportFailedConversation', interrupted: true, stage: 'InvokeManagerAgent' },
      { startAt: 'QueueFailedDelivery', interrupted: true, stage: 'InvokeManagerAgent' },
      { startAt: 'QueueFailedDelivery', interrupted: true, stage: 'Classify' },
      { startAt: 'QueueFailedDelivery', interrupted: true, stage: 'Classify' },
      { startAt: 'QueueFailedDelivery', interrupted: true, stage: 'Deliver' },
      { startAt: 'Export', interrupted: false },
      { startAt: 'Export', interrupted: false },
      { startAt: 'Completed', interrupted: false },
    ];
    const now = new Date();
    for (let i = 0; i < entries.length; i++) expectPlan(planRecovery(entries.slice(0, i + 1), now), expected[i]!);
    expect(planRecovery([...entries, { e: entries[0]!.e, t: 0, k: 'end' }], now).kind).toBe('ended');
  });

  it('recovered at every cut: exported, key settled at once, an undelivered answer queued under its delivery id', async () => {
    const key = 'recover-1';
    const { res, entries } = await journaledRun({ 'idempotency-key': key });
    const id = res.body.conversation_id as string;
    const deliveryId = res.body.tracking.delivery_id as string;
    const store = idempotencyStore()!;
    const pk = idempotencyPk('testing_system', key);
    for (let i = 0; i < entries.length; i++) {
      const cut = entries.slice(0, i + 1);
      const label = point(cut.at(-1)!);
      const plan = planRecovery(cut, new Date());
      // The stores as the crash left them: no envelope yet; the key claimed from Validate's answer until Export
      // settles it (then it is completed with the answer).
      await rm(path.join(world.gateway.failedDeliveries.dir, `${id}.json`), { force: true });
      await store.release(pk, id);
      if (plan.kind === 'resume') await store.claim(pk, { conversationId: id, requestId: `cut-${i}` }, new Date());
      if (label === 'out:Export') await store.complete(pk, id, res.body, new Date());
      const [recovered] = await recover(cut);
      if (plan.kind === 'unaccepted') {
        expect(recovered, label).toMatchObject({ outcome: 'not_accepted', conversation_id: null });
        expect(await keyStatus(key), label).not.toBe('in_progress');
        continue;
      }
      const exported = await world.getJson(`${folderOf(id)}conversation.json`);
      const record = exported.conversation;
      expect(recovered, label).toMatchObject({ conversation_id: id, status: record.execution.status });
      expect(record.webhook_context.delivery_id, label).toBe(deliveryId);
      expect(await keyStatus(key), label).not.toBe('in_progress');
      if (plan.kind === 'resume' && plan.interrupted) {
        expect(record.execution.status, label).toBe('interrupted');
        expect(record.execution.errors.at(-1), label).toMatchObject({ error: 'GatewayInterrupted' });
        const answered = plan.startAt === 'QueueFailedDelivery';
        expect(await keyStatus(key), label).toBe(answered ? 'completed' : null);
        // Cut during the attempt the receiver took (here it had answered 200, and the attempt log kept that before
        // Deliver returned): delivered, nothing queued. Before: the export showed that delivered attempt yet said
        // retrying, and the schedule sent it again. Cut before Deliver: queued for the schedule.
        const took = label === 'in:Deliver';
        expect(record.webhook_context.delivery_status, label).toBe(
          took ? 'delivered' : answered ? 'retrying' : 'not_attempted',
        );
        const envelope = await world.gateway.failedDeliveries.get(id);
        if (took) expect(envelope, label).toBeNull();
        else if (answered) expect(envelope, label).toMatchObject({ state: 'pending', delivery_id: deliveryId });
        if (took)
          expect(record.execution.delivery_attempts.at(-1)).toMatchObject({
            attempt: 1,
            outcome: 'delivered',
            response: { status: 200 },
          });
      } else {
        expect(record.execution.status, label).toBe('completed');
        expect(record.webhook_context.delivery_status, label).toBe('delivered');
        expect(await keyStatus(key), label).toBe('completed');
      }
    }
    // Nothing was called again: recovery never calls the agent or the receiver.
    expect(world.agent.invocations).toHaveLength(1);
    expect(world.receiver.received).toHaveLength(1);
  });

  it('killed after its history was saved, before the journal’s end line: nothing to recover, one history', async () => {
    const { res, entries } = await journaledRun({ 'idempotency-key': 'saved-1' });
    const id = res.body.conversation_id as string;
    const saved = await world.gateway.executions.executions(id);
    expect(saved.map((e) => e.execution_name)).toEqual([entries[0]!.e]);

    expect(await recover(entries, { historySaved: true })).toEqual([]);
    // Before: it was resumed at Completed, printed as recovered, and saved a second time (its start taken from the
    // journal, a millisecond off the engine's), so `conversations show` listed the execution twice.
    expect(await world.gateway.executions.executions(id)).toEqual(saved);
  });

  it('killed while its history was written: the cut copy aside is removed at the next start, the history rebuilt', async () => {
    const { res, entries } = await journaledRun({ 'idempotency-key': 'cut-write-1' });
    const id = res.body.conversation_id as string;
    const folder = path.join(world.gateway.executions.dir, id);
    const [saved] = (await readdir(folder)).filter((n) => n.endsWith(`_${entries[0]!.e}.json`));
    await forgetHistory(entries[0]!.e);
    // What the kill left: half the history, written aside by the gateway that was killed (another pid).
    const cut = `${saved}.999999.0a1b2c3d4e5f.tmp`;
    await writeFile(path.join(folder, cut), '{"execution_name":"');
    await recover(entries);
    // Before: the copy stayed until the retention sweep removed the conversation (30 days later by default).
    expect((await readdir(folder)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    expect((await world.gateway.executions.executions(id)).map((e) => e.execution_name)).toEqual([entries[0]!.e]);
  });

  it('after a crash, a cut history write the journal does not point at is removed too; never a history, nor a write under way', async () => {
    const { res: other } = await journaledRun({});
    const otherId = other.body.conversation_id as string;
    const folder = path.join(world.gateway.executions.dir, otherId);
    const [history] = (await readdir(folder)).filter((n) => n.endsWith('.json'));
    // Left by a gateway killed while it wrote (its journal's lines lost with a power cut): another pid's, and this
    // pid's own written before this process started (a restart gave the gateway its predecessor's pid).
    const orphan = `${history}.999999.0a1b2c3d4e5f.tmp`;
    const reused = `${history}.${process.pid}.0f0e0d0c0b0a.tmp`;
    const underWay = `${history}.${process.pid}.1a2b3c4d5e6f.tmp`;
    for (const name of [orphan, reused, underWay]) await writeFile(path.join(folder, name), '{"execution_name":"');
    const beforeStart = new Date(Date.now() - process.uptime() * 1000 - 60_000);
    await utimes(path.join(folder, reused), beforeStart, beforeStart);
    // The crash cut another conversation, which the journal keeps.
    const { entries } = await journaledRun({});
    await recover(entries.slice(0, 2));
    // Before: both stayed until the retention sweep removed their conversation (30 days later by default).
    expect((await readdir(folder)).sort()).toEqual([history, underWay].sort());
    await rm(path.join(folder, underWay));

    // A gateway that left its pid file (killed at rest: its journal empty) has its cut writes looked for too.
    await writeFile(path.join(folder, orphan), '{"execution_name":"');
    const empty = await mkdtemp(path.join(tmpdir(), 'journal-'));
    try {
      const journal = await ExecutionJournal.open(empty);
      const context = {
        journal,
        workflow,
        executions: world.gateway.executions,
        idempotency: null,
        restart: () => expect.fail('nothing to start again'),
      };
      await recoverInterrupted(context);
      expect(await readdir(folder)).toContain(orphan); // a clean stop: nothing looked for
      await recoverInterrupted({ ...context, uncleanStop: true });
      expect(await readdir(folder)).toEqual([history]);
      journal.close();
    } finally {
      await rm(empty, { recursive: true, force: true });
    }
  });

  it('cut by a full disk during Deliver (its refused line): the record, the delivery and the history say so, not a crash', async () => {
    const { res, entries } = await journaledRun({});
    const id = res.body.conversation_id as string;
    const cut = entries.slice(0, entries.findIndex((e) => point(e) === 'in:Deliver') + 1);
    const message = 'ENOSPC: no space left on device, write';
    const refused: JournalEntry = {
      e: cut[0]!.e,
      t: cut.at(-1)!.t + 1,
      k: 'refused',
      s: 'Deliver',
      d: { code: 'ENOSPC', message },
    };
    const [recovered] = await recover([...cut, refused]);
    expect(recovered).toMatchObject({ outcome: 'interrupted', status: 'interrupted', storage_refused: message });
    const history = (await world.gateway.executions.executions(id)).find((e) => e.execution_name === cut[0]!.e)!;
    // Before: SUCCEEDED, and 'the local gateway stopped (crash or kill) during Deliver' everywhere.
    expect(history).toMatchObject({ status: 'FAILED', error: 'StorageUnavailable' });
    expect(history.cause).toContain(`data folder refused a write (${message}) in Deliver`);
    const text = JSON.stringify(history);
    expect(text).not.toContain('crash or kill');
    const cutState = history.events.find((e) => e.error === 'GatewayInterrupted')!;
    expect(cutState).toMatchObject({
      state: 'Deliver',
      cause: `the local gateway's data folder refused a write (${message}) during this state`,
    });
    const record = (await world.getJson(`${folderOf(id)}conversation.json`)).conversation;
    expect(record.execution.status).toBe('interrupted');
    expect(record.execution.errors.at(-1)!.message).toBe(
      `the local gateway's data folder refused a write (${message}) during Deliver; the conversation was closed when it restarted`,
    );
  });

  it('the recovered execution’s history shows what ran, the state the crash cut, and what recovery did', async () => {
    const { res, entries } = await journaledRun({});
    const id = res.body.conversation_id as string;
    const cut = entries.slice(0, entries.findIndex((e) => point(e) === 'in:Deliver') + 1);
    await recover(cut);
    const executions = await world.gateway.executions.executions(id);
    const recovered = executions.find((e) => e.events.some((ev) => ev.type === 'ExecutionResumed'))!;
    expect(recovered.execution_name).toBe(entries[0]!.e);
    const states = recovered.events.filter((e) => e.type === 'StateEntered').map((e) => e.state);
    // The receiver took the cut attempt (the attempt log says so): nothing queued, the export resumed.
    expect(states).toEqual(['Validate', 'InvokeManagerAgent', 'Classify', 'Deliver', 'Export']);
    expect(recovered.events.find((e) => e.type === 'StateFailed')).toMatchObject({
      state: 'Deliver',
      error: 'GatewayInterrupted',
    });
    expect(recovered.status).toBe('SUCCEEDED');
  });
});

describe('a recovered conversation and its request keys', () => {
  it('is found by the webhook-id and Idempotency-Key its request carried, interrupted or resumed (conversations list --key)', async () => {
    const found = async (key: string) => {
      const run = await runMain(['conversations', 'list', '--json', '--key', key], { LOCAL_DATA_DIR: world.dataDir });
      return (JSON.parse(run.stdout) as { conversation_id: string; status: string }[]).map((r) => [
        r.conversation_id,
        r.status,
      ]);
    };
    for (const [cutAt, status] of [
      ['in:InvokeManagerAgent', 'interrupted'],
      ['out:Deliver', 'completed'],
    ] as const) {
      const headers = { 'webhook-id': `msg_recovered_${status}`, 'idempotency-key': `order_recovered_${status}` };
      const { res, entries } = await journaledRun(headers);
      await recover(entries.slice(0, entries.findIndex((e) => point(e) === cutAt) + 1));
      const id = res.body.conversation_id as string;
      expect(await found(`msg_recovered_${status}`), cutAt).toEqual([[id, status]]);
      expect(await found(`order_recovered_${status}`), cutAt).toEqual([[id, status]]);
    }
  });
});

describe('the other endings, cut after each journal line', () => {
  it('a failed delivery: past QueueFailedDelivery it resumes; the envelope keeps its first attempts', async () => {
    world.receiver.reply(400);
    const { entries } = await journaledRun({});
    const points = entries.map(point);
    expect(points).toContain('out:QueueFailedDelivery');
    const now = new Date();
    const plans = entries.map((_, i) => planRecovery(entries.slice(0, i + 1), now));
    expect(plans[points.indexOf('err:Deliver')]).toMatchObject({ startAt: 'QueueFailedDelivery', interrupted: true });
    expect(plans[points.indexOf('in:QueueFailedDelivery')]).toMatchObject({
      startAt: 'QueueFailedDelivery',
      interrupted: false,
    });
    expect(plans[points.indexOf('out:QueueFailedDelivery')]).toMatchObject({ startAt: 'Export', interrupted: false });
    const cut = planRecovery(entries.slice(0, points.indexOf('err:Deliver') + 1), now);
    if (cut.kind !== 'resume') throw new Error('expected a resume');
    const record = (cut.state as { conversation: { execution: { delivery_attempts: unknown[] } } }).conversation;
    expect(record.execution.delivery_attempts).toEqual([
      expect.objectContaining({ status_code: 400, outcome: 'permanent' }),
    ]);
  });

  it('an agent failure: past the agent’s error it resumes at ExportFailedConversation and frees the key', async () => {
    world.agent.behave(() => ({ functionError: 'Unhandled', payload: { errorType: 'Boom', errorMessage: 'down' } }));
    const { entries } = await journaledRun({ 'idempotency-key': 'agent-down' });
    const points = entries.map(point);
    expect(points.slice(-2)).toEqual(['in:ExportFailedConversation', 'out:ExportFailedConversation']);
    const now = new Date();
    expect(planRecovery(entries.slice(0, -1), now)).toMatchObject({
      startAt: 'ExportFailedConversation',
      interrupted: false,
    });
    expect(planRecovery(entries, now)).toMatchObject({ startAt: 'AgentFailed', interrupted: false });
    const [recovered] = await recover(entries.slice(0, -1));
    expect(recovered).toMatchObject({ outcome: 'resumed', status: 'failed', delivery_status: 'not_attempted' });
    expect(await keyStatus('agent-down')).toBeNull();
  });

  it('an answer Classify refuses, cut before Classify: refused at recovery too, exported as failed, nothing queued', async () => {
    // Before: recorded unchecked as the assistant turn, closed as interrupted and queued for delivery, so the
    // redelivery schedule would have sent the receiver an empty analysis.
    world.agent.behave(() => ({ payload: { response: '  ' } }));
    const { entries } = await journaledRun({ 'idempotency-key': 'empty-answer-cut' });
    const points = entries.map(point);
    const cut = entries.slice(0, points.indexOf('out:InvokeManagerAgent') + 1);
    expect(planRecovery(cut, new Date())).toMatchObject({
      startAt: 'ExportFailedConversation',
      state: { agent_error: { Error: 'AgentAnswerRejected', Cause: 'the manager agent returned an empty answer' } },
    });
    const [recovered] = await recover(cut);
    expect(recovered).toMatchObject({ outcome: 'resumed', status: 'failed', delivery_status: 'not_attempted' });
    const id = recovered!.conversation_id!;
    const record = (await world.getJson(`${folderOf(id)}conversation.json`)).conversation;
    expect(record.conversation.turns).toHaveLength(1);
    expect(record.execution.errors.at(-1)).toMatchObject({ stage: 'InvokeManagerAgent', error: 'AgentAnswerRejected' });
    expect(await world.gateway.failedDeliveries.get(id)).toBeNull();
    expect(world.receiver.received).toHaveLength(0);
  });

  it('S3 refusing the export: each step of CloseWithoutExport → QueueFailedExport resumes where it was', async () => {
    process.env.CONVERSATION_EXPORT_S3_BUCKET = 'bucket-that-does-not-exist';
    let run: Awaited<ReturnType<typeof journaledRun>>;
    try {
      run = await journaledRun({});
    } finally {
      process.env.CONVERSATION_EXPORT_S3_BUCKET = world.gateway.bucket;
    }
    const { entries } = run;
    const points = entries.map(point);
    expect(points.slice(-4)).toEqual([
      'in:CloseWithoutExport',
      'out:CloseWithoutExport',
      'in:QueueFailedExport',
      'out:QueueFailedExport',
    ]);
    const now = new Date();
    const plan = (n: number) => planRecovery(entries.slice(0, entries.length - n), now);
    expect(plan(0)).toMatchObject({ startAt: 'AnswerWithoutExport' });
    expect(plan(1)).toMatchObject({ startAt: 'QueueFailedExport' });
    expect(plan(2)).toMatchObject({ startAt: 'IsRedeliveryQueued' });
    expect(plan(3)).toMatchObject({ startAt: 'CloseWithoutExport' });
    expect(plan(4)).toMatchObject({ startAt: 'Export' }); // an ExportError between retries: export again
  });
});

describe('a crash during recovery', () => {
  it('is recovered at the next start from where the resumed run got to', async () => {
    const { entries } = await journaledRun({});
    const name = entries[0]!.e;
    const cut = entries.slice(0, entries.findIndex((e) => point(e) === 'out:Classify') + 1);
    const first = planRecovery(cut, new Date());
    expect(first).toMatchObject({ startAt: 'QueueFailedDelivery', interrupted: true });
    if (first.kind !== 'resume') return;
    const queuedBody = { kind: 'failed_delivery', ...(first.state as object), execution_name: name };
    const resumed: JournalEntry[] = [
      { e: name, t: Date.now(), k: 'resume', s: 'QueueFailedDelivery' },
      { e: name, t: Date.now(), k: 'in', s: 'QueueFailedDelivery', d: { QueueUrl: 'q', MessageBody: queuedBody } },
      { e: name, t: Date.now(), k: 'out', s: 'QueueFailedDelivery', d: {} },
      { e: name, t: Date.now(), k: 'in', s: 'Export', d: { state: first.state, execution_name: name } },
    ];
    expect(planRecovery([...cut, ...resumed], new Date())).toMatchObject({
      startAt: 'Export',
      state: first.state,
      interrupted: false,
    });
  });
});

/** Two conversations cut after Classify (their histories not saved), journaled in a new folder: their lines, the folder. */
async function twoCutRuns() {
  const cutAt = (entries: JournalEntry[]) =>
    entries.slice(0, entries.findIndex((e) => point(e) === 'out:Classify') + 1);
  const runs = [(await journaledRun({})).entries, (await journaledRun({})).entries].map(cutAt);
  for (const entries of runs) await forgetHistory(entries[0]!.e);
  const dir = await mkdtemp(path.join(tmpdir(), 'journal-'));
  const lines = runs.flat().map((e) => JSON.stringify(e));
  await writeFile(path.join(dir, '000000000000001-1.jsonl'), `${lines.join('\n')}\n`);
  return { runs, dir };
}

describe('a stop asked while recovery runs (Ctrl-C at start)', () => {
  it('takes up no other execution: those left stay in the journal, and the next start recovers them', async () => {
    const { runs, dir } = await twoCutRuns();
    try {
      const context = recoveryContext();
      // Ctrl-C once the first execution was taken up: it finishes, the second is not begun.
      let looks = 0;
      const journal = await ExecutionJournal.open(dir);
      const stopped = await recoverInterrupted({ ...context, journal, stopped: () => looks++ > 0 }).catch(
        (error: unknown) => error,
      );
      journal.close();
      expect(stopped).toBeInstanceOf(RecoveryStopped);
      expect(stopped).toMatchObject({
        left: 1,
        recovered: [{ execution_name: runs[0]![0]!.e, outcome: 'interrupted' }],
      });
      expect((await journalEntries(dir)).some((e) => e.e === runs[1]![0]!.e)).toBe(true);

      const next = await ExecutionJournal.open(dir);
      const recovered = await recoverInterrupted({ ...context, journal: next });
      next.close();
      // The second alone: the first is not recovered twice.
      expect(recovered.map((r) => r.execution_name)).toEqual([runs[1]![0]!.e]);
      expect(await readdir(dir)).toEqual([]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('an interrupted execution whose recovery always throws (a damaged journal line, a removed workflow)', () => {
  it('is set aside with why, the others recovered: the start goes on; without a place to set it, the start fails as before', async () => {
    const { runs, dir } = await twoCutRuns();
    const broken = runs[0]![0]!.e;
    // Its replay throws, whenever it is tried.
    const throwing = Object.create(workflow, {
      run: {
        value: (state: unknown, name: string, options: never) => {
          if (name === broken) throw new TypeError("Cannot read properties of undefined (reading 'Payload')");
          return workflow.run(state, name, options);
        },
      },
    }) as LocalWorkflow;
    try {
      const context = recoveryContext(undefined, throwing);
      // Before (and still without a place to set it aside): every start failed on it, the gateway never served.
      const first = await ExecutionJournal.open(dir);
      await expect(recoverInterrupted({ ...context, journal: first })).rejects.toThrow(
        `crash recovery could not finish execution ${broken}`,
      );
      first.close();

      const setAside: { name: string; entries: JournalEntry[] }[] = [];
      const journal = await ExecutionJournal.open(dir);
      const recovered = await recoverInterrupted({
        ...context,
        journal,
        setAside: async (name, entries) => {
          setAside.push({ name, entries });
          return `/set-aside/${name}.jsonl`;
        },
      });
      journal.close();
      // The other was recovered by the failed start already (the failure let those under way finish).
      expect(recovered).toEqual([
        expect.objectContaining({
          execution_name: broken,
          conversation_id: expect.stringMatching(/^webhook_/),
          outcome: 'set_aside',
          set_aside: {
            why: "Cannot read properties of undefined (reading 'Payload')",
            file: `/set-aside/${broken}.jsonl`,
          },
        }),
      ]);
      // Its journal lines as they were, for the operator to retry; nothing of it is found again at the next start.
      // Its `recovered` line names it, says why, and where its lines are: retried or dropped by moving that file.
      expect(recoveryFields(recovered[0]!)).toEqual([
        recovered[0]!.conversation_id,
        `set aside, its recovery failed (Cannot read properties of undefined (reading 'Payload')): its journal lines are in /set-aside/${broken}.jsonl; move that file into / to retry at the next start, or delete it to drop it`,
      ]);
      // (then the `resume` line the failed start's try wrote)
      expect(setAside.map((s) => s.name)).toEqual([broken]);
      expect(setAside[0]!.entries.slice(0, runs[0]!.length)).toEqual(runs[0]);
      const next = await ExecutionJournal.open(dir);
      expect([...(await next.interrupted()).keys()]).toEqual([]);
      next.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('an asynchronous conversation: the accept execution and the run, each cut after each line', () => {
  async function asyncRun(key: string) {
    const res = await world.post(SEED_REQUEST, { prefer: 'respond-async', 'idempotency-key': key });
    expect(res.status).toBe(202);
    await world.gateway.idle();
    const id = res.body.conversation_id as string;
    const accept = (await journalOf(world, res.headers.get('x-request-id')!)).slice(0, -1);
    const run = (await journalOf(world, id)).slice(0, -1);
    return { id, accept, run };
  }

  it('plans: the accept ends once it started the run (cut before: interrupted); the run resumes like a synchronous one', async () => {
    const { id, accept, run } = await asyncRun('async-plan');
    expect(accept.map(point)).toEqual([
      'begin:',
      'in:Validate',
      'out:Validate',
      'in:StartConversation',
      'out:StartConversation',
    ]);
    const now = new Date();
    const acceptPlans = accept.map((_, i) => planRecovery(accept.slice(0, i + 1), now));
    expect(acceptPlans.map((p) => (p.kind === 'resume' ? p.startAt : p.kind))).toEqual([
      'unaccepted',
      'unaccepted',
      'ExportFailedConversation',
      'ExportFailedConversation',
      'ended',
    ]);
    // Cut while starting the run: ended if the run's journal shows it began.
    expect(planRecovery(accept.slice(0, 4), now, true).kind).toBe('ended');
    // The run, its caller told `accepted`, cut before its agent's answer was journaled (even before its Validate
    // answered: it was validated when accepted): started again with its input. Before: closed as interrupted, never
    // delivered. Its begin line counts the restarts; after MAX_RESTARTS, closed as interrupted.
    expect(run[0]!.d).toHaveProperty('accepted');
    const answered = run.findIndex((e) => point(e) === 'out:InvokeManagerAgent');
    for (let i = 0; i < answered; i++)
      expect(planRecovery(run.slice(0, i + 1), now), point(run[i]!)).toEqual({
        kind: 'restart',
        input: run[0]!.d,
        restarts: 1,
        conversationId: id,
      });
    const restarted = (r: number) => [{ ...run[0]!, r }, ...run.slice(1, answered)];
    expect(planRecovery(restarted(MAX_RESTARTS - 1), now)).toMatchObject({ kind: 'restart', restarts: MAX_RESTARTS });
    expect(planRecovery(restarted(MAX_RESTARTS), now)).toMatchObject({
      kind: 'resume',
      startAt: 'ExportFailedConversation',
      interrupted: true,
      restarts: MAX_RESTARTS,
    });
    // Its answer journaled: closed with it, as a synchronous one.
    expect(planRecovery(run.slice(0, answered + 1), now)).toMatchObject({ startAt: 'QueueFailedDelivery' });
    expect(planRecovery(run, now)).toMatchObject({ startAt: 'Completed' });
  });

  it('a run cut while its agent was called: started again, delivered under its delivery id, its status completed; after MAX_RESTARTS, closed', async () => {
    const key = 'async-restart';
    const { id, run } = await asyncRun(key);
    const cut = run.slice(0, run.findIndex((e) => point(e) === 'in:InvokeManagerAgent') + 1);
    const pk = idempotencyPk('testing_system', key);
    const deliveryId = world.receiver.received.at(-1)!.headers['webhook-id'];
    const statusFile = path.join(world.dataDir, 'status', `${id}.json`);
    const statusOf = async () => JSON.parse(await readFile(statusFile, 'utf8'));
    // What the crash left: the key claimed, the status running, the agent never answered.
    const crashed = async () => {
      await idempotencyStore()!.release(pk, id);
      await idempotencyStore()!.claim(
        pk,
        { conversationId: id, requestId: 'run-cut', responseMode: 'async' },
        new Date(),
      );
      await writeFile(statusFile, JSON.stringify({ ...(await statusOf()), status: 'running', body: undefined }));
      world.receiver.reset();
      world.agent.reset();
    };
    await crashed();
    const [restarted] = await recover(cut);
    expect(restarted).toMatchObject({ conversation_id: id, outcome: 'restarted', restarts: 1 });
    expect(recoveryFields(restarted!)[1]).toBe(
      `asynchronous, cut before its agent's answer was recorded: started again (restart 1 of ${MAX_RESTARTS}), its agent called again`,
    );
    expect(world.agent.invocations).toHaveLength(1);
    expect(world.receiver.received.map((r) => r.headers['webhook-id'])).toEqual([deliveryId]);
    expect(await statusOf()).toMatchObject({ status: 'completed' });
    expect(await keyStatus(key)).toBe('completed');
    const record = (await world.getJson(`${folderOf(id)}conversation.json`)).conversation;
    expect(record.execution.status).toBe('completed');
    expect(record.webhook_context.delivery_status).toBe('delivered');

    // Its run cut again and again: after MAX_RESTARTS, closed as interrupted, the status saying why.
    await crashed();
    const restart = {
      restart: MAX_RESTARTS,
      of: MAX_RESTARTS,
      earlier_started_at: new Date(cut[0]!.t).toISOString(),
      earlier_cut_at: new Date(cut.at(-1)!.t).toISOString(),
      earlier_cut_by: 'the local gateway stopped (crash or kill)',
    };
    const [closed] = await recover([{ ...cut[0]!, r: MAX_RESTARTS, c: restart }, ...cut.slice(1)]);
    expect(closed).toMatchObject({ conversation_id: id, outcome: 'interrupted', restarts: MAX_RESTARTS });
    // Its history, rebuilt from the journal, says which restart was cut and what cut the run before it.
    const histories = await world.gateway.executions.executions(id);
    expect(histories.find((h) => h.execution_name === id && h.status !== 'SUCCEEDED')?.restart).toEqual(restart);
    expect(recoveryFields(closed!)[1]).toContain(`not started again: its run was started again ${MAX_RESTARTS} times`);
    expect(world.agent.invocations).toHaveLength(0);
    const failed = await statusOf();
    expect(failed.status).toBe('failed');
    expect(JSON.parse(failed.body).error).toMatchObject({
      code: 'INTERRUPTED',
      message: expect.stringContaining(`its run had been started again ${MAX_RESTARTS} times`),
    });
    expect(await keyStatus(key)).toBeNull();
  });

  it('a run started again after its key claim lapsed (the gateway down more than 7 minutes): the claim is the run’s again, the start’s sweep leaves it, and a retry gets that conversation', async () => {
    const key = 'async-restart-lapsed';
    const { id, run } = await asyncRun(key);
    const cut = run.slice(0, run.findIndex((e) => point(e) === 'in:InvokeManagerAgent') + 1);
    const pk = idempotencyPk('testing_system', key);
    const statusFile = path.join(world.dataDir, 'status', `${id}.json`);
    const status = JSON.parse(await readFile(statusFile, 'utf8'));
    // What the crash left, 10 minutes ago: the key claimed (its 7 minutes lapsed since), the status running.
    await idempotencyStore()!.release(pk, id);
    await idempotencyStore()!.claim(
      pk,
      { conversationId: id, requestId: 'run-cut', responseMode: 'async' },
      new Date(Date.now() - 600_000),
    );
    await writeFile(statusFile, JSON.stringify({ ...status, status: 'running', body: undefined }));
    // The start's sweep runs beside the run started again, before it ends.
    const sweep = () =>
      sweepLocalHistory(
        { dataDir: world.dataDir, idempotencyDir: path.join(world.dataDir, 'idempotency') },
        0,
        new Date(),
      );
    const [restarted] = await recover(cut, { beforeRestartedRun: sweep });
    expect(restarted).toMatchObject({ conversation_id: id, outcome: 'restarted' });
    // Before: the sweep removed the lapsed claim, the run's answer was not kept (WEBHOOK_IDEMPOTENCY_KEY_LOST), and
    // the client's retry with the key ran a second conversation.
    expect(await keyStatus(key)).toBe('completed');
    const retry = await world.post(SEED_REQUEST, { prefer: 'respond-async', 'idempotency-key': key });
    expect(retry.body.conversation_id).toBe(id);
  });

  it('a run started again after the gateway was down more than 7 minutes: its status reads running while it runs again, then completed (not failed in between)', async () => {
    const { id, run } = await asyncRun('async-restart-late');
    const cut = run.slice(0, run.findIndex((e) => point(e) === 'in:InvokeManagerAgent') + 1);
    const statusFile = path.join(world.dataDir, 'status', `${id}.json`);
    const status = JSON.parse(await readFile(statusFile, 'utf8'));
    // What the crash left: accepted 10 minutes ago, its status running (the gateway down since).
    const acceptedAt = new Date(Date.now() - 600_000).toISOString();
    await writeFile(
      statusFile,
      JSON.stringify({
        ...status,
        status: 'running',
        body: undefined,
        completed_at: undefined,
        accepted_at: acceptedAt,
      }),
    );
    const read = async () =>
      (await fetch(`${world.gateway.url}/conversations/${id}?source_system=testing_system`)).json() as Promise<{
        status: string;
        accepted_at?: string;
        error?: { code: string };
      }>;
    let whileRunning: Awaited<ReturnType<typeof read>> | null = null;
    const [restarted] = await recover(cut, {
      beforeRestartedRun: async () => {
        whileRunning = await read();
      },
    });
    expect(restarted).toMatchObject({ conversation_id: id, outcome: 'restarted' });
    // Before: 'failed' with INTERNAL_ERROR ("its run ended without recording an outcome") while the run went on, its
    // 7 minutes counted from accepted_at; then 'completed': a poller stopped at the first and sent it again.
    expect(whileRunning).toEqual({ success: true, conversation_id: id, status: 'running', accepted_at: acceptedAt });
    expect(await read()).toMatchObject({ success: true, conversation_id: id, status: 'completed' });
  });

  it('a run whose journal lines were lost (the segment cut), its accept ended: started again from the accept’s history, delivered, its status completed', async () => {
    const key = 'async-journal-lost';
    const { id, accept } = await asyncRun(key);
    const pk = idempotencyPk('testing_system', key);
    const deliveryId = world.receiver.received.at(-1)!.headers['webhook-id'];
    const statusFile = path.join(world.dataDir, 'status', `${id}.json`);
    const status = JSON.parse(await readFile(statusFile, 'utf8'));
    // What a power cut left: the accept's history saved and its lines up to its end, nothing of the run (its
    // lines lost with the segment, no history), the key claimed and the status running.
    await forgetHistory(id);
    await idempotencyStore()!.release(pk, id);
    await idempotencyStore()!.claim(
      pk,
      { conversationId: id, requestId: 'run-lost', responseMode: 'async' },
      new Date(),
    );
    await writeFile(statusFile, JSON.stringify({ ...status, status: 'running', body: undefined }));
    world.receiver.reset();
    world.agent.reset();
    const recovered = await recover(accept, { historySaved: true });
    // Before: nothing recovered it, no line said so; its status stayed running, nothing was delivered or exported.
    const restarted = recovered.find((r) => r.conversation_id === id);
    expect(restarted).toMatchObject({ outcome: 'restarted', restarts: 1, journal_lost: true });
    expect(recoveryFields(restarted!)[1]).toContain("its run's journal lines lost");
    expect(world.agent.invocations).toHaveLength(1);
    expect(world.receiver.received.map((r) => r.headers['webhook-id'])).toEqual([deliveryId]);
    expect(JSON.parse(await readFile(statusFile, 'utf8'))).toMatchObject({ status: 'completed' });
    expect(await keyStatus(key)).toBe('completed');
  });

  it('an accept cut before its run began: exported as interrupted, its status failed, its key freed', async () => {
    const key = 'async-cut';
    const { id, accept } = await asyncRun(key);
    const cut = accept.slice(0, accept.findIndex((e) => point(e) === 'in:StartConversation') + 1);
    // The stores as that crash left them: the key claimed and the status running (no run began).
    await idempotencyStore()!.release(idempotencyPk('testing_system', key), id);
    await idempotencyStore()!.claim(
      idempotencyPk('testing_system', key),
      { conversationId: id, requestId: 'accept-cut', responseMode: 'async' },
      new Date(),
    );
    const statusFile = path.join(world.dataDir, 'status', `${id}.json`);
    const status = JSON.parse(await readFile(statusFile, 'utf8'));
    await writeFile(statusFile, JSON.stringify({ ...status, status: 'running', body: undefined }));
    await rm(path.join(world.dataDir, 'executions', id), { recursive: true, force: true });
    const [recovered] = await recover(cut);
    expect(recovered).toMatchObject({ conversation_id: id, outcome: 'interrupted', status: 'interrupted' });
    expect(await keyStatus(key)).toBeNull();
    const after = JSON.parse(await readFile(statusFile, 'utf8'));
    expect(after.status).toBe('failed');
    expect(JSON.parse(after.body).error.code).toBe('INTERRUPTED');
    expect((await world.getJson(`${folderOf(id)}conversation.json`)).conversation.execution.status).toBe('interrupted');
  });

  it('an accept killed after it started its run, before its history was saved: that history is rebuilt, nothing runs again', async () => {
    const { id, accept } = await asyncRun('async-accept-history');
    const before = await world.gateway.executions.executions(id);
    const saved = before.find((e) => e.execution_name === accept[0]!.e)!;
    expect(saved.state_machine).toBe('accept');
    const invocations = world.agent.invocations.length;
    // Before: the journal's accept was over (it started the run), so recovery left it, and `conversations show`
    // listed the run alone, without the accept execution.
    expect(await recover(accept)).toEqual([]); // no recovered line: the conversation had not been cut
    const after = await world.gateway.executions.executions(id);
    expect(after.map((e) => e.execution_name).sort()).toEqual(before.map((e) => e.execution_name).sort());
    expect(after.find((e) => e.execution_name === accept[0]!.e)).toMatchObject({
      state_machine: 'accept',
      status: 'SUCCEEDED',
      output: saved.output,
    });
    expect(world.agent.invocations).toHaveLength(invocations);
  });

  it('an accept cut in Validate after it wrote the running status: not accepted, that status removed (GET: 404), its key freed', async () => {
    const key = 'async-cut-in-validate';
    const { id, accept } = await asyncRun(key);
    const other = await asyncRun('async-not-cut'); // the same source, process and maybe second: left as it is
    const cut = accept.slice(0, 2);
    expect(cut.map(point)).toEqual(['begin:', 'in:Validate']);
    // What the crash left: Validate had claimed the key and written the status, then the process died before its
    // answer was journaled. No 202 was sent, no run began, nothing was exported.
    await idempotencyStore()!.release(idempotencyPk('testing_system', key), id);
    await idempotencyStore()!.claim(
      idempotencyPk('testing_system', key),
      { conversationId: id, requestId: 'accept-cut-in-validate', responseMode: 'async' },
      new Date(),
    );
    const statusFile = path.join(world.dataDir, 'status', `${id}.json`);
    const status = JSON.parse(await readFile(statusFile, 'utf8'));
    await writeFile(
      statusFile,
      JSON.stringify({ ...status, status: 'running', body: undefined, accepted_at: new Date(cut[1]!.t).toISOString() }),
    );
    await rm(path.join(world.dataDir, 'executions', id), { recursive: true, force: true });
    const otherStatus = await readFile(path.join(world.dataDir, 'status', `${other.id}.json`), 'utf8');
    // Another conversation of the same source, process and second, still running, whose only history is damaged:
    // it was accepted (its history says so, unreadable as it is), so its status stays.
    const sibling = `${id.slice(0, id.lastIndexOf('_') + 1)}0000000000`; // listed first
    const siblingStatus = JSON.stringify({ ...status, conversation_id: sibling, status: 'running', body: undefined });
    await writeFile(path.join(world.dataDir, 'status', `${sibling}.json`), siblingStatus);
    await mkdir(path.join(world.dataDir, 'executions', sibling), { recursive: true });
    await writeFile(path.join(world.dataDir, 'executions', sibling, `x_${sibling}.json`), '{"cut');

    const [recovered] = await recover(cut);
    expect(recovered).toMatchObject({
      outcome: 'not_accepted',
      conversation_id: null,
      key_freed: true,
      status_removed: id,
    });
    // Before: GET of that id answered `running` for 7 minutes, then `failed`, for an id no caller was ever given.
    const get = await fetch(`${world.gateway.url}/conversations/${id}?source_system=testing_system`);
    expect(get.status).toBe(404);
    expect(await keyStatus(key)).toBeNull();
    expect(await readFile(path.join(world.dataDir, 'status', `${other.id}.json`), 'utf8')).toBe(otherStatus);
    expect(await readFile(path.join(world.dataDir, 'status', `${sibling}.json`), 'utf8')).toBe(siblingStatus);
    await rm(path.join(world.dataDir, 'executions', sibling), { recursive: true });
    await rm(path.join(world.dataDir, 'status', `${sibling}.json`));
  });
});

describe('a redelivery run (a redrive), cut after each journal line', () => {
  /** The attempt log of `id` without the attempts of execution `name` (their answer unknown); restores it as it was. */
  async function forgetAttempts(id: string, name: string): Promise<() => Promise<void>> {
    const log = path.join(world.dataDir, 'deliveries', 'attempts', `${id}.jsonl`);
    const logged = await readFile(log, 'utf8');
    await writeFile(
      log,
      logged
        .split('\n')
        .filter((line) => !line.includes(name))
        .join('\n'),
    );
    return () => writeFile(log, logged);
  }

  it('plans: interrupted until its attempt ended, then resumed; recovered, the envelope is as it was or settled by the result', async () => {
    world.receiver.reply(503, 503, 503, 503);
    const res = await world.post({ ...SEED_REQUEST, query: 'a redelivery cut by a crash' });
    const id = res.body.conversation_id as string;
    const store = world.gateway.failedDeliveries;
    const before = (await store.get(id))!;
    expect(before.state).toBe('pending');
    const result = await world.gateway.redelivery.redrive(id);
    expect(result.status).toBe('delivered');
    const entries = (await journalOf(world, result.execution_name!)).filter((e) => e.k !== 'end');
    expect(entries.map(point)).toEqual(['begin:', 'in:Deliver', 'out:Deliver', 'in:Export', 'out:Export']);
    const plans = entries.map((_, i) => {
      const plan = planRedeliveryRecovery(entries.slice(0, i + 1));
      return plan.kind === 'resume' ? plan.startAt : plan.kind;
    });
    expect(plans).toEqual(['interrupted', 'interrupted', 'Export', 'Export', 'Redelivered']);

    // Cut during the attempt, its answer unknown (the attempt log without it): shown as interrupted, the envelope as
    // it was (the schedule tries it again).
    const restoreLog = await forgetAttempts(id, result.execution_name!);
    await store.put(before);
    const [cut] = await recover(entries.slice(0, 2));
    expect(cut).toMatchObject({ conversation_id: id, outcome: 'interrupted', redelivery: 'redrive' });
    expect(await store.get(id)).toEqual(before);
    // Its recovered line says what the envelope owes and when the schedule takes it up (REDELIVERY_SCHEDULE 1h).
    expect(recoveryFields(cut!)[1]).toBe(
      `redrive ${cut!.execution_name} cut during its attempt, shown as interrupted, its envelope as it was: completed, delivery retrying; its envelope owes the delivery, due at ${before.next_due_at} for the schedule`,
    );
    const history = (await world.gateway.executions.executions(id)).find(
      (e) => e.execution_name === cut!.execution_name,
    )!;
    expect(history).toMatchObject({ state_machine: 'redelivery', status: 'FAILED', error: 'GatewayInterrupted' });
    expect(history.events.find((e) => e.error === 'GatewayInterrupted')?.state).toBe('Deliver');
    await restoreLog();

    // Cut during the attempt the receiver took (the attempt log kept its 200 before Deliver returned): resumed at its
    // export and settled, so the schedule does not send it again (before: interrupted, the envelope as it was, and
    // the schedule delivered it a second time).
    await forgetHistory(result.execution_name!);
    await store.put(before);
    const [took] = await recover(entries.slice(0, 2));
    expect(took).toMatchObject({ outcome: 'resumed', status: 'completed', delivery_status: 'delivered' });
    expect((await store.get(id))?.state).toBe('settled');

    // Cut after the attempt answered: the export resumes, and the envelope is settled by what the run did.
    await store.put(before);
    const [resumed] = await recover(entries.slice(0, 3));
    expect(resumed).toMatchObject({ outcome: 'resumed', status: 'completed', delivery_status: 'delivered' });
    expect((await store.get(id))?.state).toBe('settled');
    const exported = (await world.getJson(`${folderOf(id)}conversation.json`)).conversation;
    expect(exported.webhook_context.delivery_status).toBe('delivered');
  });

  it('killed after a redrive delivered, before its caller stored the envelope: settled all the same, never delivered again', async () => {
    world.receiver.reply(503, 503, 503, 503);
    const res = await world.post({ ...SEED_REQUEST, query: 'a redrive killed before its envelope was stored' });
    const id = res.body.conversation_id as string;
    expect((await world.gateway.failedDeliveries.get(id))?.state).toBe('pending');
    // The process dies as the redrive's caller stores the envelope (redeliverHeld): nothing after that point runs.
    class KilledAtStore extends LocalFailedDeliveryStore {
      override async store(): Promise<void> {
        throw new Error('killed');
      }
    }
    const dir = await mkdtemp(path.join(tmpdir(), 'journal-'));
    try {
      const journal = await ExecutionJournal.open(dir);
      const killed = new LocalRedelivery(
        new KilledAtStore(world.dataDir),
        redeliveryWorkflow,
        world.gateway.executions,
        journal,
      );
      const received = world.receiver.received.length;
      await expect(killed.redrive(id)).rejects.toThrow('killed');
      expect(world.receiver.received).toHaveLength(received + 1); // the receiver has it (2xx)
      // The next start, on what the kill left: the journal's segment and the store's files.
      const left = await journalEntries(dir);
      await recover(left, { historySaved: true });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    // Before: the journal said the run had ended and the envelope was as before it, pending: the schedule delivered
    // it again at its slot, under the same webhook-id.
    const envelope = (await world.gateway.failedDeliveries.get(id))!;
    expect(envelope).toMatchObject({ state: 'settled', next_due_at: null });
    const later = new Date(Date.now() + 86_400_000);
    const due = (await world.gateway.failedDeliveries.take({ seen: new Set(), now: later })).items;
    expect(due.map((i) => i.envelope.conversation_id)).not.toContain(id);
    for (const item of due) await world.gateway.failedDeliveries.leave(item);
  });

  /** A redelivery workflow whose runs fail after Deliver (S3 and the data folder refusing the export: Export and
   * CloseWithoutExport throw). */
  async function failingExport() {
    const handlers = await loadStageHandlers();
    const send = (params: unknown) => world.gateway.failedDeliveries.sendMessage(params as never);
    const fail = async () => {
      throw new Error('nothing can be written');
    };
    return localWorkflow('redelivery', { ...handlers, export: fail }, send, NO_WAIT);
  }

  /**
   * A due pending envelope (with `failedRuns` failed runs in a row before), then one run of the schedule whose export
   * fails (its Deliver delivers, unless `receiverDown`), with `killedAt` throwing as the process dies there; what the
   * kill left in the journal is for the next start to recover.
   */
  async function killedRun(query: string, killedAt: 'put' | 'store', failedRuns = 0, receiverDown = false) {
    const failing = await failingExport();
    const store = world.gateway.failedDeliveries;
    world.receiver.reply(503, 503, 503, 503);
    const res = await world.post({ ...SEED_REQUEST, query });
    const id = res.body.conversation_id as string;
    const before = (await store.get(id))!;
    const due = new Date(Date.now() - 1_000).toISOString();
    await store.put({ ...before, next_due_at: due, ...(failedRuns ? { failed_runs: failedRuns } : {}) });
    if (receiverDown) world.receiver.reply(503);
    class Killed extends LocalFailedDeliveryStore {
      override async put(envelope: Parameters<LocalFailedDeliveryStore['put']>[0]): Promise<void> {
        if (killedAt === 'put' && envelope.conversation_id === id) throw new Error('killed');
        return super.put(envelope);
      }
      override async store(): Promise<void> {
        throw new Error('killed');
      }
    }
    const dir = await mkdtemp(path.join(tmpdir(), 'journal-'));
    try {
      const journal = await ExecutionJournal.open(dir);
      const killed = new LocalRedelivery(new Killed(world.dataDir), failing, world.gateway.executions, journal);
      const [result] = await killed.runDue();
      expect(result).toBeUndefined(); // the process died in it
      const left = await journalEntries(dir);
      return { id, before, left };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  it('killed as a scheduled run that delivered, then failed, ended: its failed run is counted, the export alone owed', async () => {
    const store = world.gateway.failedDeliveries;
    // Killed as its caller stored the envelope. Before: the journal said the run had ended, the envelope was as
    // before it: the failed run went uncounted (and never dead after five in a row).
    // The receiver has it: the envelope owes only the export, of the delivered record (before: it still owed the
    // delivery, and the schedule delivered it again a minute later).
    const owesExport = {
      state: 'pending',
      owed: 'export',
      failed_runs: 1,
      last_error: expect.stringMatching(/^export: the redelivery run failed after it delivered: /),
      conversation: { webhook_context: { delivery_status: 'delivered' } },
    };
    const one = await killedRun('a failed scheduled run killed after it ended', 'store');
    expect(await recover(one.left, { historySaved: true })).toEqual([]);
    expect(await store.get(one.id)).toMatchObject(owesExport);
    // Killed before the envelope was written, its history saved: the next start counts it (before: it said the run
    // was cut during its attempt, and counted nothing).
    const killedTwo = await killedRun('a failed scheduled run killed before its envelope was written', 'put');
    const two = { id: killedTwo.id, recovered: await recover(killedTwo.left, { historySaved: true }) };
    expect(two.recovered).toMatchObject([{ conversation_id: two.id, outcome: 'failed', redelivery: 'schedule' }]);
    const owed = (await store.get(two.id))!;
    expect(owed).toMatchObject(owesExport);
    expect(recoveryFields(two.recovered[0]!, new Date(0))[1]).toBe(
      `schedule ${two.recovered[0]!.execution_name} had failed before the crash: completed, delivery delivered; its envelope owes only the export, due at ${owed.next_due_at} for the schedule (1 failed run in a row; dead after 5)`,
    );
  });

  it('killed as the fifth failed scheduled run in a row stored its envelope: recovery gives the delivery up, and its export says so', async () => {
    const store = world.gateway.failedDeliveries;
    const { id, before, left } = await killedRun('a fifth failed scheduled run killed', 'put', 4, true);
    // What the kill left: an export written by the run's give-up, which the test takes back (a kill before it).
    const key = `${folderOf(id)}conversation.json`;
    const body = JSON.stringify({ conversation: before.conversation });
    await world.s3.send(new PutObjectCommand({ Bucket: 'test-conversations', Key: key, Body: body }));
    const recovered = await recover(left, { historySaved: true });
    expect(recovered).toMatchObject([{ conversation_id: id, outcome: 'failed', redelivery: 'schedule' }]);
    expect(await store.get(id)).toMatchObject({ state: 'dead', dead_reason: 'runs_failed', failed_runs: 5 });
    // Before: the export still said retrying, for good.
    const exported = (await world.getJson(key)).conversation;
    expect(exported.webhook_context.delivery_status).toBe('failed');
    expect(exported.execution.errors.at(-1)).toMatchObject({ error: 'RedeliveryRunsFailed' });
    const listed = await runMain(['conversations', 'list', '--json'], { LOCAL_DATA_DIR: world.dataDir });
    expect(JSON.parse(listed.stdout).find((r: { conversation_id: string }) => r.conversation_id === id)).toMatchObject({
      delivery_status: 'failed',
    });
  });

  it('killed after a scheduled run stored its envelope, before the journal’s end: recovered, nothing counted twice', async () => {
    world.receiver.reply(503, 503, 503, 503);
    const res = await world.post({ ...SEED_REQUEST, query: 'a scheduled run killed before its journal end' });
    const id = res.body.conversation_id as string;
    const store = world.gateway.failedDeliveries;
    const before = (await store.get(id))!;
    await store.put({ ...before, next_due_at: new Date(Date.now() - 1_000).toISOString() });
    world.receiver.reply(503);
    const [result] = await world.gateway.redelivery.runDue();
    expect(result).toMatchObject({ conversation_id: id, status: 'failed' });
    const after = (await store.get(id))!;
    // Its one slot (REDELIVERY_SCHEDULE 1h) used: no more automatic attempts.
    expect(after).toMatchObject({ state: 'dead', dead_reason: 'exhausted', scheduled_attempts: 1 });
    const history = (await world.gateway.executions.executions(id)).find(
      (e) => e.execution_name === result!.execution_name,
    );
    // What the kill left: the run's history saved and its envelope stored, the journal without its end line.
    const entries = (await journalOf(world, result!.execution_name!)).filter((e) => e.k !== 'end');
    const [recovered] = await recover(entries, { historySaved: true });
    expect(recovered).toMatchObject({ outcome: 'resumed', redelivery: 'schedule', delivery_status: 'failed' });
    expect(await store.get(id)).toEqual(after); // not settled twice: no second slot used, not redrive_failed
    const histories = (await world.gateway.executions.executions(id)).filter(
      (e) => e.execution_name === result!.execution_name,
    );
    expect(histories).toEqual([history]); // the run's own history, not one of a second run
  });

  it('a redrive that failed without delivering, killed before its journal’s end: not a failed run; its line says what the envelope still owes', async () => {
    world.receiver.reply(503, 503, 503, 503);
    const res = await world.post({ ...SEED_REQUEST, query: 'a redrive that failed, killed before its journal end' });
    const id = res.body.conversation_id as string;
    const store = world.gateway.failedDeliveries;
    const before = (await store.get(id))!;
    const dir = await mkdtemp(path.join(tmpdir(), 'journal-'));
    let recovered: Awaited<ReturnType<typeof recover>>;
    try {
      const journal = await ExecutionJournal.open(dir);
      const redelivery = new LocalRedelivery(store, await failingExport(), world.gateway.executions, journal);
      world.receiver.reply(503);
      expect(await redelivery.redrive(id)).toMatchObject({ status: 'error' });
      // What a kill after the run's history was saved leaves: the journal without its end line.
      recovered = await recover(
        (await journalEntries(dir)).filter((e) => e.k !== 'end'),
        { historySaved: true },
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
    expect(recovered).toMatchObject([{ outcome: 'failed', redelivery: 'redrive' }]);
    // An operator's redrive that failed counts no failed run (the schedule's would): the envelope is as it was.
    expect(await store.get(id)).toEqual(before);
    expect(recoveryFields(recovered[0]!)[1]).toBe(
      `redrive ${recovered[0]!.execution_name} had failed before the crash: completed, delivery retrying; its envelope owes the delivery, due at ${before.next_due_at} for the schedule`,
    );
  });

  /** A real run of `redeliver` that delivered, its journal then cut during its attempt, its answer not in the log. */
  async function cutDuringAttempt(id: string, redeliver: () => Promise<{ execution_name?: string | undefined }>) {
    world.receiver.reply(200);
    const result = await redeliver();
    const entries = (await journalOf(world, result.execution_name!)).filter((e) => e.k !== 'end');
    await forgetAttempts(id, result.execution_name!);
    return entries.slice(0, 2);
  }

  it('a redrive of a dead envelope cut during its attempt: its line says the envelope stays dead, not "for the schedule"', async () => {
    world.receiver.reply(400);
    const res = await world.post({ ...SEED_REQUEST, query: 'a dead delivery redriven, cut by a crash' });
    const id = res.body.conversation_id as string;
    const store = world.gateway.failedDeliveries;
    const dead = (await store.get(id))!;
    expect(dead).toMatchObject({ state: 'dead', dead_reason: 'permanent' });
    const cut = await cutDuringAttempt(id, () => world.gateway.redelivery.redrive(id));
    await store.put(dead);
    const [recovered] = await recover(cut);
    expect(await store.get(id)).toEqual(dead);
    // Before: "…; its envelope as it was, for the schedule", which never tries a dead one again.
    expect(recoveryFields(recovered!)[1]).toBe(
      `redrive ${recovered!.execution_name} cut during its attempt, shown as interrupted, its envelope as it was: completed, delivery failed; its envelope is dead (permanent), never tried again by the schedule: deliveries redrive ${id} tries it`,
    );
  });

  it('a resend cut during its attempt: its line says it is not repeated and how to send it again', async () => {
    const res = await world.post({ ...SEED_REQUEST, query: 'a delivered conversation resent, cut by a crash' });
    const id = res.body.conversation_id as string;
    expect(res.body.tracking.delivery_status).toBe('delivered');
    const resend = () =>
      fetch(`${world.gateway.url}/local/deliveries/${id}/resend`, { method: 'POST' }).then(
        (r) => r.json() as Promise<{ execution_name?: string }>,
      );
    const [recovered] = await recover(await cutDuringAttempt(id, resend));
    expect(recovered).toMatchObject({ outcome: 'interrupted', redelivery: 'resend' });
    expect(recovered).not.toHaveProperty('envelope');
    // Before: "…cut during its attempt, shown as interrupted; not repeated", and nothing on what to do.
    expect(recoveryFields(recovered!)[1]).toBe(
      `resend ${recovered!.execution_name} cut during its attempt, shown as interrupted: completed, delivery delivered; not repeated: deliveries resend ${id} sends it again if the receiver did not get it`,
    );
  });
});
