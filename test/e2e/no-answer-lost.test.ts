import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { attemptsMade, type FailedDeliveryEnvelope } from '../../functions/domain/failed-delivery.ts';
import {
  DELIVERY_UNQUEUED_EVENT,
  EXPORT_DEFERRED_EVENT,
  RECORD_UNSAVED_EVENT,
} from '../../functions/domain/observability.ts';
import { FileAttemptLog } from '../../functions/shared/attempt-log.ts';
import { runMain } from '../support/cli.ts';
import { folderOf, journalOf, SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';
import { captureJsonLines } from '../support/log-capture.ts';

/**
 * Once the agent has answered, no fault of a later stage loses the answer: one test per fault — the failed-delivery
 * queue (SQS) down, S3 down, both, Classify failing — each showing what the caller gets and where the record is.
 */
let world: TestWorld;
let classifyFails = false;
/** Classify hangs: the engine ends it at its state's TimeoutSeconds (2 s) with States.Timeout, as Step Functions does. */
let classifyHangs = false;
/** Lambda refuses to run Deliver (throttled: the account's concurrency used up); counts the refusals. */
let deliverThrottled = false;
let deliverRefusals = 0;
/** Lambda refuses to run Deliver from its n-th invocation on (null: never); counts them all. */
let deliverThrottledFrom: number | null = null;
let deliverInvocations = 0;
/** Lambda fails Deliver's next invocations after the function ran (its POST made, its attempt logged). */
let deliverFailsAfterRun = 0;
/** How many of the next Export invocations (Export, CloseWithoutExport, …: one function) Lambda refuses to run. */
let exportRefusals = 0;
let exportInvocations = 0;
/** Lambda refuses to run RecordOnlyInLogs (the Export function's invocation with export_queue_error). */
let refuseLogging = false;
const throttle = () => Object.assign(new Error('Rate Exceeded.'), { name: 'Lambda.TooManyRequestsException' });
beforeAll(async () => {
  const { handler: classify } = await import('../../functions/classify/handler.ts');
  const { handler: deliver } = await import('../../functions/deliver/handler.ts');
  world = await startWorld(
    {},
    {
      stageOverrides: {
        // A Classify Lambda that crashes (as Step Functions reports an unhandled error: its errorType).
        classify: async (input) => {
          if (classifyHangs) return new Promise(() => {});
          if (!classifyFails) return classify(input as never);
          throw Object.assign(new Error('Runtime exited with error: signal: killed'), { name: 'Runtime.ExitError' });
        },
        deliver: async (input, context) => {
          deliverInvocations += 1;
          const throttled =
            deliverThrottled || (deliverThrottledFrom !== null && deliverInvocations >= deliverThrottledFrom);
          if (throttled) {
            deliverRefusals += 1;
            throw throttle();
          }
          if (deliverFailsAfterRun === 0) return deliver(input as never, context as never);
          deliverFailsAfterRun -= 1;
          await deliver(input as never, context as never).catch(() => undefined);
          throw Object.assign(new Error('Internal error.'), { name: 'Lambda.ServiceException' });
        },
        export: async (input, context) => {
          exportInvocations += 1;
          // Imported once the gateway has given the S3 client its settings (it is built as the module loads).
          const { handler: exportStage } = await import('../../functions/export/handler.ts');
          if (refuseLogging && (input as { state: { export_queue_error?: unknown } }).state.export_queue_error)
            throw throttle();
          if (exportRefusals === 0) return exportStage(input as never, context as never);
          exportRefusals -= 1;
          throw throttle();
        },
      },
    },
  );
});
afterAll(async () => {
  await world?.close();
});

const realSend = () => world.gateway.failedDeliveries.sendMessage.bind(world.gateway.failedDeliveries);
let send: ReturnType<typeof realSend>;
beforeEach(() => {
  world.receiver.reset();
  world.agent.reset();
  classifyFails = false;
  classifyHangs = false;
  deliverThrottled = false;
  deliverRefusals = 0;
  deliverThrottledFrom = null;
  deliverInvocations = 0;
  deliverFailsAfterRun = 0;
  exportRefusals = 0;
  exportInvocations = 0;
  refuseLogging = false;
  process.env.CONVERSATION_EXPORT_S3_BUCKET = world.gateway.bucket;
  send ??= realSend();
  world.gateway.failedDeliveries.sendMessage = send;
});

/** The failed-delivery queue refuses every message (SQS down; locally, the store the SQS task is routed to). */
function queueDown(): void {
  world.gateway.failedDeliveries.sendMessage = async () => {
    throw Object.assign(new Error('Service Unavailable'), { name: 'SQS.SqsException' });
  };
}
const s3Down = () => {
  process.env.CONVERSATION_EXPORT_S3_BUCKET = 'bucket-that-does-not-exist';
};

async function statePath(conversationId: string) {
  const [execution] = await world.gateway.executions.executions(conversationId);
  return execution!.events.filter((e) => e.type === 'StateEntered').map((e) => e.state);
}

/** POST the request with the gateway's JSON log lines captured. */
async function postCapturingLogs(body: unknown) {
  const capture = captureJsonLines();
  try {
    return { res: await world.post(body), capture };
  } finally {
    capture.restore();
  }
}

/** postCapturingLogs, with the lines the gateway printed for the operator (console.error) meanwhile. */
async function postCapturingLogsAndLines(body: unknown) {
  const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
  try {
    return { ...(await postCapturingLogs(body)), printedLines: printed.mock.calls.map((c) => String(c[0])) };
  } finally {
    printed.mockRestore();
  }
}

/** The delivery's attempt numbers as the export, the attempt log, the envelope and `conversations show` give them. */
async function expectAttempts(id: string, numbers: number[]): Promise<void> {
  const numbered = (attempts: { attempt: number }[]) => attempts.map((a) => a.attempt);
  const exported = (await world.getJson(`${folderOf(id)}conversation.json`)).conversation;
  expect(numbered(exported.execution.delivery_attempts)).toEqual(numbers);
  const logged = await new FileAttemptLog(path.join(world.dataDir, 'deliveries')).list(id);
  expect(numbered(logged)).toEqual(numbers);
  const envelope = (await world.gateway.failedDeliveries.get(id))!;
  expect(attemptsMade(envelope)).toBe(numbers.at(-1));
  const cli = (args: string[]) => runMain(args, { LOCAL_DATA_DIR: world.dataDir, GATEWAY_URL: world.gateway.url });
  const shown = JSON.parse((await cli(['conversations', 'show', id, '--json'])).stdout);
  expect(numbered(shown.delivery_attempts)).toEqual(numbers);
}

const ANSWER = { response: 'Top deals closing this quarter: Acme Corp renewal ($120,000, 80%).' };
/** What the caller gets when an empty answer is refused (by Classify, Deliver or Export). */
const EMPTY_ANSWER_REFUSED = {
  code: 'AGENT_ERROR',
  message: 'The manager agent failed: AgentAnswerRejected: the manager agent returned an empty answer',
};

describe('no answer lost after the agent answered', () => {
  it('SQS down (the receiver refused, the queue too): 200 with the answer, the record exported with the delivery failed, logged to be resent; a resend delivers it', async () => {
    world.agent.behave(() => ({ payload: ANSWER }));
    world.receiver.reply(410);
    queueDown();
    const { res, capture, printedLines } = await postCapturingLogsAndLines(SEED_REQUEST);
    expect(res.status).toBe(200);
    expect(res.body.response).toEqual(ANSWER);
    expect(res.body.tracking.delivery_status).toBe('failed');
    const id = res.body.conversation_id as string;
    expect(await statePath(id)).toEqual([
      'Validate',
      'IsRequestValid',
      'InvokeManagerAgent',
      'Classify',
      'Deliver',
      'DeliveryFailed',
      'QueueFailedDelivery',
      'Export',
    ]);
    const record = (await world.getJson(`${folderOf(id)}conversation.json`)).conversation;
    expect(record.conversation.turns.at(-1).data).toEqual(ANSWER);
    expect(record.webhook_context.delivery_status).toBe('failed');
    expect(record.execution.errors.map((e: { stage: string }) => e.stage)).toEqual(['Deliver', 'QueueFailedDelivery']);
    expect(record.execution.errors.at(-1).message).toMatch(/Service Unavailable/);
    // Nothing holds it for a later attempt: the operator is told (alarm DeliveriesUnqueued on AWS) how to deliver it.
    expect(await world.gateway.failedDeliveries.get(id)).toBeNull();
    const unqueued = capture.events(id).filter((l) => l.event_type === DELIVERY_UNQUEUED_EVENT);
    expect(unqueued).toEqual([
      expect.objectContaining({
        level: 'ERROR',
        webhook_type: record.webhook_context.webhook_type,
        error: 'SQS.SqsException',
        recover: `deliveries resend ${id}`,
      }),
    ]);
    // And the local gateway's operator says so (before: only that line of .data/logs/handlers.jsonl did).
    expect(printedLines.filter((line) => line.includes(id))).toEqual([
      `webhook-gateway: conversation ${id}: its delivery failed and the failed-delivery store refused it (SQS.SqsException: Service Unavailable): no automatic attempt follows; deliver it with: webhook-gateway deliveries resend ${id}`,
    ]);
    world.gateway.failedDeliveries.sendMessage = send;
    world.receiver.reply(200);
    const resent = await fetch(`${world.gateway.url}/local/deliveries/${id}/resend`, { method: 'POST' });
    expect(resent.status).toBe(200);
    const after = (await world.getJson(`${folderOf(id)}conversation.json`)).conversation;
    expect(after.webhook_context.delivery_status).toBe('delivered');
    expect(after.execution.delivery_attempts.at(-1)).toMatchObject({ via: 'resend' });
  });

  it('SQS hanging (the receiver refused): QueueFailedDelivery gives up after its 1 s; 200 with the answer, the record exported with the delivery failed', async () => {
    // Before: no TimeoutSeconds, so a send that never answered held the caller until the workflow's own limit.
    world.agent.behave(() => ({ payload: ANSWER }));
    world.receiver.reply(410);
    let sends = 0;
    world.gateway.failedDeliveries.sendMessage = () => {
      sends += 1;
      return new Promise(() => {});
    };
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(200);
    expect(res.body.response).toEqual(ANSWER);
    expect(res.body.tracking.delivery_status).toBe('failed');
    expect(sends).toBe(1); // not retried: a send that timed out may have landed
    const id = res.body.conversation_id as string;
    const record = (await world.getJson(`${folderOf(id)}conversation.json`)).conversation;
    expect(record.execution.errors.at(-1)).toMatchObject({ stage: 'QueueFailedDelivery', error: 'States.Timeout' });
  });

  it('S3 down: 200 with the answer, the closed record queued as an export-only envelope', async () => {
    world.agent.behave(() => ({ payload: ANSWER }));
    s3Down();
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(200);
    expect(res.body.response).toEqual(ANSWER);
    const id = res.body.conversation_id as string;
    expect(await world.listKeys(folderOf(id))).toEqual([]);
    const envelope = (await world.gateway.failedDeliveries.get(id))!;
    expect(envelope).toMatchObject({ owed: 'export', state: 'pending' });
    expect(envelope.conversation.conversation.turns.at(-1)!.data).toEqual(ANSWER);
  });

  it('S3 and SQS both down: 200 with the answer and conversation_id; the whole record logged once as WEBHOOK_CONVERSATION_UNSAVED, and the gateway says so', async () => {
    world.agent.behave(() => ({ payload: ANSWER }));
    s3Down();
    queueDown();
    const { res, capture, printedLines } = await postCapturingLogsAndLines(SEED_REQUEST);
    expect(res.status).toBe(200);
    expect(res.body.response).toEqual(ANSWER);
    const id = res.body.conversation_id as string;
    expect(id).toMatch(/^webhook_/);
    expect((await statePath(id)).slice(-6)).toEqual([
      'CloseWithoutExport',
      'IsRedeliveryQueued',
      'QueueFailedExport',
      'RecordOnlyInLogs',
      'AnswerWithoutExport',
      'Completed',
    ]);
    const unsaved = capture.events(id).filter((l) => l.event_type === RECORD_UNSAVED_EVENT);
    expect(unsaved).toHaveLength(1);
    expect(unsaved[0]).toMatchObject({ level: 'ERROR', queue_error: expect.stringMatching(/Service Unavailable/) });
    // The line holds the closed record whole: enough to export it by hand.
    expect(unsaved[0]!.record).toMatchObject({
      conversation_id: id,
      execution: { status: 'completed' },
      webhook_context: { delivery_status: 'delivered' },
    });
    expect(unsaved[0]!.record.conversation.turns.at(-1).data).toEqual(ANSWER);
    expect(await world.listKeys(folderOf(id))).toEqual([]);
    expect(await world.gateway.failedDeliveries.get(id)).toBeNull();
    // Before: the deferred line said "queued to be exported later" though the queue was still to be asked (and then
    // refused), and the terminal said nothing: the record's only copy was a line of .data/logs/handlers.jsonl.
    const deferred = capture.events(id).filter((l) => l.event_type === EXPORT_DEFERRED_EVENT);
    expect(deferred.map((l) => l.message)).toEqual([
      'Conversation export failed; the record is queued next (QueueFailedExport): a refusal there is logged as WEBHOOK_CONVERSATION_UNSAVED',
    ]);
    expect(printedLines.filter((line) => line.includes(id))).toEqual([
      `webhook-gateway: conversation ${id}: its record is only in the handlers' log: S3 refused its export, then the failed-delivery store refused it (SQS.SqsException: Service Unavailable). The record is the \`record\` of its WEBHOOK_CONVERSATION_UNSAVED line in ${path.join(world.dataDir, 'logs', 'handlers.jsonl')}; export it by hand once S3 takes it (docs/operations.md)`,
    ]);
  });

  it.each([
    [
      'failing',
      () => {
        classifyFails = true;
      },
      { error: 'Runtime.ExitError', message: expect.stringMatching(/signal: killed/) },
    ],
    [
      'timing out (its TimeoutSeconds, 2 s)',
      () => {
        classifyHangs = true;
      },
      { error: 'States.Timeout' },
    ],
  ])(
    'Classify %s: 200 with the answer, classified and delivered by Deliver, exported with the Classify error',
    async (_how, fault, classifyError) => {
      world.agent.behave(() => ({ payload: ANSWER }));
      fault();
      const res = await world.post(SEED_REQUEST);
      expect(res.status).toBe(200);
      expect(res.body.response).toEqual(ANSWER);
      expect(res.body.tracking).toMatchObject({ webhook_type: 'deal_analysis', delivery_status: 'delivered' });
      expect(world.receiver.received).toHaveLength(1);
      const id = res.body.conversation_id as string;
      const record = (await world.getJson(`${folderOf(id)}conversation.json`)).conversation;
      expect(record.conversation.turns.at(-1).data).toEqual(ANSWER);
      expect(record.execution.timings.agent_ms).toBeGreaterThanOrEqual(0);
      expect(record.execution.errors).toEqual([expect.objectContaining({ stage: 'Classify', ...classifyError })]);
      expect(record).not.toHaveProperty('pending_answer');
    },
  );

  it('Classify timing out on an empty answer: 502 AGENT_ERROR as Classify would answer, nothing delivered, exported as failed', async () => {
    // Before: Deliver recorded the answer unchecked, the receiver got an empty analysis and the caller 200.
    world.agent.behave(() => ({ payload: { response: '  ' } }));
    classifyHangs = true;
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(502);
    expect(res.body.error).toMatchObject(EMPTY_ANSWER_REFUSED);
    expect(world.receiver.received).toHaveLength(0);
    const id = res.body.error.conversation_id as string;
    expect(await statePath(id)).toEqual([
      'Validate',
      'IsRequestValid',
      'InvokeManagerAgent',
      'Classify',
      'Deliver',
      'ExportFailedConversation',
      'AgentFailed',
    ]);
    const record = (await world.getJson(`${folderOf(id)}conversation.json`)).conversation;
    expect(record.execution.status).toBe('failed');
    expect(record.webhook_context.delivery_status).toBe('not_attempted');
    expect(record.execution.errors).toEqual([
      expect.objectContaining({ stage: 'InvokeManagerAgent', error: 'AgentAnswerRejected' }),
      expect.objectContaining({ stage: 'Classify', error: 'States.Timeout' }),
    ]);
  });

  it('Classify failing, then Lambda refusing to run Deliver, on an empty answer: 502 AGENT_ERROR, exported as failed, never delivered', async () => {
    // Before: Deliver, which checks the answer after a failed Classify, never ran, and Export recorded the empty answer
    // unchecked: 200 with it, the record completed, and its queued delivery would have sent it to the receiver.
    world.agent.behave(() => ({ payload: { response: '  ' } }));
    classifyFails = true;
    deliverThrottled = true;
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(502);
    expect(res.body.error).toMatchObject(EMPTY_ANSWER_REFUSED);
    const id = res.body.error.conversation_id as string;
    // Not retried: a throttled Deliver goes to its Catch at once (docs/deploy.md, Timeouts).
    expect(deliverRefusals).toBe(1);
    expect(await statePath(id)).toEqual([
      'Validate',
      'IsRequestValid',
      'InvokeManagerAgent',
      'Classify',
      'Deliver',
      'DeliveryFailed',
      'QueueFailedDelivery',
      'Export',
      'ExportFailedConversation',
      'AgentFailed',
    ]);
    const record = (await world.getJson(`${folderOf(id)}conversation.json`)).conversation;
    expect(record.execution.status).toBe('failed');
    expect(record.webhook_context.delivery_status).toBe('not_attempted');
    expect(record.conversation.turns.map((t: { role: string }) => t.role)).toEqual(['user']);
    expect(record).not.toHaveProperty('pending_answer');
    expect(record.execution.delivery_attempts).toEqual([]);
    expect(record.execution.errors).toEqual([
      expect.objectContaining({ stage: 'InvokeManagerAgent', error: 'AgentAnswerRejected' }),
      expect.objectContaining({ stage: 'Classify', error: 'Runtime.ExitError' }),
      expect.objectContaining({ stage: 'Deliver', error: 'Lambda.TooManyRequestsException' }),
    ]);
    // The delivery QueueFailedDelivery queued before Export refused the answer: its first redelivery's Deliver refuses
    // it too, and the envelope is settled (before: read as held back and run again every minute); nothing is sent.
    deliverThrottled = false;
    await world.gateway.redelivery.redrive(id);
    expect(await world.gateway.failedDeliveries.get(id)).toMatchObject({ state: 'settled', next_due_at: null });
    expect(world.receiver.received).toHaveLength(0);
    const after = (await world.getJson(`${folderOf(id)}conversation.json`)).conversation;
    expect(after.execution.status).toBe('failed');
    expect(after.conversation.turns).toHaveLength(1);
  });

  it('Classify failing, then Lambda refusing to run Deliver, on a good answer: 200 with it, the delivery queued and redelivered', async () => {
    world.agent.behave(() => ({ payload: ANSWER }));
    classifyFails = true;
    deliverThrottled = true;
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(200);
    expect(res.body.response).toEqual(ANSWER);
    expect(res.body.tracking.delivery_status).toBe('retrying');
    const id = res.body.conversation_id as string;
    expect(deliverRefusals).toBe(1);
    deliverThrottled = false;
    expect((await world.gateway.redelivery.redrive(id)).status).toBe('delivered');
    expect((world.receiver.received[0]!.body as { response: unknown }).response).toEqual(ANSWER);
  });

  it('Lambda refusing to run Export: not retried, CloseWithoutExport (its next invocation) answers 200 and queues the export', async () => {
    // Before: Export was retried after up to 1 s, then 2 s, on top of whatever the agent took (docs/deploy.md, Timeouts).
    world.agent.behave(() => ({ payload: ANSWER }));
    exportRefusals = 1;
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(200);
    expect(res.body.response).toEqual(ANSWER);
    const id = res.body.conversation_id as string;
    expect(exportInvocations).toBe(2);
    expect((await statePath(id)).slice(-6)).toEqual([
      'Export',
      'CloseWithoutExport',
      'IsRedeliveryQueued',
      'QueueFailedExport',
      'AnswerWithoutExport',
      'Completed',
    ]);
    expect(await world.gateway.failedDeliveries.get(id)).toMatchObject({ owed: 'export', state: 'pending' });
  });

  it('Lambda refusing Export and then CloseWithoutExport: 500 INTERNAL_ERROR (ConversationUnanswered) at once, the record queued', async () => {
    world.agent.behave(() => ({ payload: ANSWER }));
    exportRefusals = 2;
    const query = 'Top deals closing this quarter? (the closing run refused too)';
    const res = await world.post({ ...SEED_REQUEST, query });
    expect(res.status).toBe(500);
    expect(res.body.error).toMatchObject({ code: 'INTERNAL_ERROR', workflow_error: 'ConversationUnanswered' });
    expect(exportInvocations).toBe(2);
    const envelope = (await world.gateway.failedDeliveries.list()).find(
      (e) => e.conversation.conversation.turns[0]!.content === query,
    )!;
    expect(envelope).toMatchObject({ owed: 'export', state: 'pending' });
    expect(envelope.conversation.conversation.turns.at(-1)!.data).toEqual(ANSWER);
  });

  it('Classify failing, Lambda refusing Deliver and Export, on an empty answer: the closing run refuses it (502), nothing owed but the export', async () => {
    world.agent.behave(() => ({ payload: { response: '  ' } }));
    classifyFails = true;
    deliverThrottled = true;
    exportRefusals = 1;
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(502);
    expect(res.body.error).toMatchObject(EMPTY_ANSWER_REFUSED);
    const id = res.body.error.conversation_id as string;
    expect((await statePath(id)).slice(-5)).toEqual([
      'CloseWithoutExport',
      'IsRedeliveryQueued',
      'QueueFailedExport',
      'AnswerWithoutExport',
      'AgentFailed',
    ]);
    // The export owed is the failed record; the delivery QueueFailedDelivery queued was settled when it was read.
    const envelope = (await world.gateway.failedDeliveries.get(id))!;
    expect(envelope.conversation.execution.status).toBe('failed');
    expect(envelope.conversation.conversation.turns).toHaveLength(1);
    expect(world.receiver.received).toHaveLength(0);
  });

  it('Classify failing and the receiver down: the queued envelope still carries the answer, and its redelivery delivers it', async () => {
    world.agent.behave(() => ({ payload: ANSWER }));
    classifyFails = true;
    world.receiver.reply(503, 503, 503, 503);
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(200);
    expect(res.body.tracking.delivery_status).toBe('retrying');
    const id = res.body.conversation_id as string;
    world.receiver.reset();
    expect((await world.gateway.redelivery.redrive(id)).status).toBe('delivered');
    expect(world.receiver.received).toHaveLength(1);
    expect((world.receiver.received[0]!.body as { response: unknown }).response).toEqual(ANSWER);
  });

  it('the local history cannot be written: 200 with the answer, delivered once; the journal keeps the execution for the next start', async () => {
    // Before, the caller got no answer at all (curl waited for ever), though the conversation was delivered and exported.
    world.agent.behave(() => ({ payload: ANSWER }));
    const folder = path.join(world.dataDir, 'executions');
    await rm(folder, { recursive: true, force: true });
    await writeFile(folder, 'not a folder'); // every history write now fails
    const printed = vi.spyOn(console, 'error').mockImplementation(() => {});
    try {
      const res = await world.post(SEED_REQUEST);
      expect(res.status).toBe(200);
      expect(res.body.tracking.delivery_status).toBe('delivered');
      expect(res.body.response).toEqual(ANSWER);
      expect(world.receiver.received).toHaveLength(1);
      const id = res.body.conversation_id as string;
      expect(await world.listKeys(folderOf(id))).toHaveLength(4);
      expect(printed).toHaveBeenCalledWith(
        expect.stringMatching(
          new RegExp(
            `the history of execution .* \\(conversation ${id}\\) could not be saved; it is rebuilt from the journal at the next start`,
          ),
        ),
      );
      const [execution] = printed.mock.calls
        .map((c) => /history of execution (\S+)/.exec(String(c[0]))?.[1])
        .filter(Boolean);
      const journaled = await journalOf(world, execution!);
      expect(journaled.some((e) => e.k === 'out' && e.s === 'Export')).toBe(true);
      expect(journaled.some((e) => e.k === 'end')).toBe(false);
    } finally {
      printed.mockRestore();
      await rm(folder, { force: true });
    }
  });
  it('Lambda refusing to run Deliver in the conversation: 200 retrying, exported and queued with no attempt; its redelivery is attempt 1', async () => {
    // Before: the export and the envelope had a 0 ms attempt 1 the receiver never got, and the redelivery was attempt 2.
    world.agent.behave(() => ({ payload: ANSWER }));
    deliverThrottled = true;
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(200);
    expect(res.body.tracking.delivery_status).toBe('retrying');
    const id = res.body.conversation_id as string;
    const record = (await world.getJson(`${folderOf(id)}conversation.json`)).conversation;
    expect(record.execution.delivery_attempts).toEqual([]);
    expect(record.execution.errors.at(-1)).toMatchObject({
      stage: 'Deliver',
      error: 'Lambda.TooManyRequestsException',
    });
    expect(await world.gateway.failedDeliveries.get(id)).toMatchObject({
      state: 'pending',
      attempts: [],
      last_error: 'Lambda did not run Deliver (Lambda.TooManyRequestsException: Rate Exceeded.); no attempt was made',
    });
    deliverThrottled = false;
    expect((await world.gateway.redelivery.redrive(id)).status).toBe('delivered');
    expect(world.receiver.received).toHaveLength(1);
    const after = (await world.getJson(`${folderOf(id)}conversation.json`)).conversation;
    expect(after.execution.delivery_attempts.map((a: { attempt: number }) => a.attempt)).toEqual([1]);
  });

  it("Lambda refusing Deliver's retry in the conversation: the redelivery is attempt 2, after the try only the log knows", async () => {
    // Before: the envelope had no attempt, so the redelivery was attempt 1 again: two attempt 1 in the export.
    world.agent.behave(() => ({ payload: ANSWER }));
    world.receiver.reply(503, 200);
    deliverThrottledFrom = 2;
    const res = await world.post(SEED_REQUEST);
    expect(res.body.tracking.delivery_status).toBe('retrying');
    const id = res.body.conversation_id as string;
    expect(deliverRefusals).toBe(1);
    expect(await world.gateway.failedDeliveries.get(id)).toMatchObject({ state: 'pending', attempts: [] });
    deliverThrottledFrom = null;
    expect((await world.gateway.redelivery.redrive(id)).status).toBe('delivered');
    expect(world.receiver.received).toHaveLength(2);
    await expectAttempts(id, [1, 2]);
  });

  it('Lambda failing Deliver after it ran (its attempt logged): the redelivery is attempt 2', async () => {
    // Before: the attempt was in the log, not in the envelope, and the redelivery was attempt 1 again.
    world.agent.behave(() => ({ payload: ANSWER }));
    world.receiver.reply(503, 200);
    deliverFailsAfterRun = 1;
    const res = await world.post(SEED_REQUEST);
    expect(res.body.tracking.delivery_status).toBe('retrying');
    const id = res.body.conversation_id as string;
    expect(world.receiver.received).toHaveLength(1);
    const redriven = await world.gateway.redelivery.redrive(id);
    expect(redriven.status).toBe('delivered');
    // Named after the attempt its Deliver records, the try only the log had counted (before: `-redelivery-1-`).
    expect(redriven.execution_name).toMatch(new RegExp(`^${id}-redelivery-2-`));
    expect(world.receiver.received).toHaveLength(2);
    await expectAttempts(id, [1, 2]);
  });

  it("an envelope behind the attempt log (Lambda refused Deliver's retry, then failed a scheduled run's Deliver after it ran): listed with every logged try, and the next run is named and numbered after them", async () => {
    // Before: `deliveries list` (and the console's table, GET /local/deliveries) counted what the envelope carried, and
    // each run was named from it: `-redelivery-1-` for attempt 2, `-redelivery-2-` for attempt 3.
    world.agent.behave(() => ({ payload: ANSWER }));
    world.receiver.reply(503, 503, 200);
    deliverThrottledFrom = 2;
    const res = await world.post(SEED_REQUEST);
    expect(res.body.tracking.delivery_status).toBe('retrying');
    const id = res.body.conversation_id as string;
    expect(deliverRefusals).toBe(1);
    deliverThrottledFrom = null;
    const due = async () => {
      const envelope = (await world.gateway.failedDeliveries.get(id))!;
      await world.gateway.failedDeliveries.put({ ...envelope, next_due_at: new Date(Date.now() - 1).toISOString() });
    };
    // The schedule's run: its Deliver POSTs attempt 2 (the receiver answers 503, the log keeps it), then Lambda fails
    // the invocation. The run is named after the try only the log had, and counts as refused.
    await due();
    deliverFailsAfterRun = 1;
    const [refused] = (await world.gateway.redelivery.runDue()).filter((r) => r.conversation_id === id);
    expect(refused).toMatchObject({ status: 'error', refused: true });
    expect(refused!.execution_name).toMatch(new RegExp(`^${id}-redelivery-2-`));
    expect(world.receiver.received).toHaveLength(2);
    const behind = (await world.gateway.failedDeliveries.get(id))!;
    expect(behind).toMatchObject({ state: 'pending', failed_runs: 1 });
    expect(behind.attempts.map((a) => a.attempt)).toEqual([1]);

    // Before the next run: every list counts the 2 attempts the log has.
    const cli = (args: string[]) => runMain(args, { LOCAL_DATA_DIR: world.dataDir, GATEWAY_URL: world.gateway.url });
    const listed = JSON.parse((await cli(['deliveries', 'list', '--json'])).stdout) as FailedDeliveryEnvelope[];
    expect(listed.find((e) => e.conversation_id === id)!.attempts.map((a) => a.attempt)).toEqual([1, 2]);
    const line = (await cli(['deliveries', 'list'])).stdout.split('\n').find((l) => l.startsWith(id));
    expect(line).toMatch(/deal_analysis\s+2\s+redelivery run failed: Lambda did not run Deliv/);
    const routed = (await (await fetch(`${world.gateway.url}/local/deliveries`)).json()) as {
      deliveries: FailedDeliveryEnvelope[];
    };
    expect(routed.deliveries.find((e) => e.conversation_id === id)!.attempts).toHaveLength(2);
    const shown = (await (await fetch(`${world.gateway.url}/console/api/conversations`)).json()) as {
      failed_deliveries: FailedDeliveryEnvelope[];
    };
    expect(shown.failed_deliveries.find((e) => e.conversation_id === id)!.attempts).toHaveLength(2);
    // And every redrive plan says the same count (before: the envelope's 1): `deliveries redrive --all --dry-run`, its
    // --json, and GET /local/deliveries/plan (the console's recover plan), whose rows came from the summary index.
    const dryRun = await cli(['deliveries', 'redrive', '--all', '--dry-run', '--limit', '1000']);
    expect(dryRun.stdout.split('\n').find((l) => l.includes(id))).toMatch(/\s2 attempts$/);
    const planned = JSON.parse(
      (await cli(['deliveries', 'redrive', '--all', '--dry-run', '--json', '--limit', '1000'])).stdout,
    ) as FailedDeliveryEnvelope[];
    expect(attemptsMade(planned.find((e) => e.conversation_id === id)!)).toBe(2);
    const plan = (await (await fetch(`${world.gateway.url}/local/deliveries/plan?limit=1000`)).json()) as {
      deliveries: { conversation_id: string; attempts: number }[];
    };
    expect(plan.deliveries.find((e) => e.conversation_id === id)!.attempts).toBe(2);

    // The next run: named after the log's last attempt, as its Deliver numbers it.
    await due();
    const [next] = (await world.gateway.redelivery.runDue()).filter((r) => r.conversation_id === id);
    expect(next).toMatchObject({ status: 'delivered' });
    expect(next!.execution_name).toMatch(new RegExp(`^${id}-redelivery-3-`));
    expect(world.receiver.received).toHaveLength(3);
    await expectAttempts(id, [1, 2, 3]);
  });

  it('a resend after one whose Deliver Lambda failed after it ran (its attempt only in the log): named after the attempt its Deliver records', async () => {
    // Before: the second resend was named from the record, which lacked the first resend's attempt: `-redelivery-3-`
    // for attempt 4.
    world.agent.behave(() => ({ payload: ANSWER }));
    const res = await world.post(SEED_REQUEST);
    expect(res.body.tracking.delivery_status).toBe('delivered');
    const id = res.body.conversation_id as string;
    const resendIt = async () =>
      (await (await fetch(`${world.gateway.url}/local/deliveries/${id}/resend`, { method: 'POST' })).json()) as {
        status: string;
        execution_name?: string;
        error?: string;
      };
    deliverFailsAfterRun = 1;
    const first = await resendIt();
    expect(first.execution_name).toMatch(new RegExp(`^${id}-redelivery-2-`));
    // Said as an error of the resend (before: `held`, "deal_analysis is healthy now (it was paused, …)").
    expect(first).toMatchObject({
      status: 'error',
      error: `Lambda did not run Deliver (Lambda.ServiceException: Internal error.); no attempt was made, unless Lambda failed it after it ran: its attempt is then in the attempt log (conversations show ${id})`,
    });
    expect(world.receiver.received).toHaveLength(2);
    const logged = await new FileAttemptLog(path.join(world.dataDir, 'deliveries')).list(id);
    expect(logged.map((a) => a.attempt)).toEqual([1, 2]);
    const second = await resendIt();
    expect(second.status).toBe('delivered');
    expect(world.receiver.received).toHaveLength(3);
    const numbers = (await new FileAttemptLog(path.join(world.dataDir, 'deliveries')).list(id)).map((a) => a.attempt);
    expect(numbers).toEqual([1, 2, 3]);
    expect(second.execution_name).toMatch(new RegExp(`^${id}-redelivery-3-`));
  });

  it('a redelivery whose Deliver Lambda will not run: not retried (its 60 s), exported with the refusal, no attempt, tried again', async () => {
    // Before: the redelivery workflow retried it 3 times (after 2, 4 and 8 s), each try up to the Lambda's timeout.
    world.agent.behave(() => ({ payload: ANSWER }));
    world.receiver.reply(503, 503, 503, 503);
    const res = await world.post(SEED_REQUEST);
    expect(res.body.tracking.delivery_status).toBe('retrying');
    const id = res.body.conversation_id as string;
    const before = (await world.gateway.failedDeliveries.get(id))!;
    const tries = (await world.getJson(`${folderOf(id)}conversation.json`)).conversation.execution.delivery_attempts;
    deliverThrottled = true;
    const run = await world.gateway.redelivery.redrive(id);
    expect(deliverRefusals).toBe(1);
    // An operator's run that did not succeed (before: `failed`, with a 0 ms attempt the receiver never got).
    expect(run).toMatchObject({
      status: 'error',
      error: 'Lambda did not run Deliver (Lambda.TooManyRequestsException: Rate Exceeded.); no attempt was made',
    });
    expect(await world.gateway.failedDeliveries.get(id)).toEqual(before);
    const [redelivery] = (await world.gateway.executions.executions(id)).filter((e) =>
      e.execution_name.includes('-redelivery-'),
    );
    expect(redelivery!.events.filter((e) => e.type === 'StateEntered').map((e) => e.state)).toEqual([
      'IsDeliveryOwed',
      'Deliver',
      'Export',
      'Redelivered',
    ]);
    const record = (await world.getJson(`${folderOf(id)}conversation.json`)).conversation;
    expect(record.execution.errors.at(-1)).toMatchObject({
      stage: 'Deliver',
      error: 'Lambda.TooManyRequestsException',
    });
    expect(record.execution.delivery_attempts).toEqual(tries);
    expect(record.webhook_context.delivery_status).toBe('retrying');
    world.receiver.reply(200);
    deliverThrottled = false;
    expect((await world.gateway.redelivery.redrive(id)).status).toBe('delivered');
  });

  it('Lambda refusing to run Deliver on the last slot: no slot used, no attempt, back in a minute; for ever: given up after five runs', async () => {
    // Before: the run appended a 0 ms attempt, exported the delivery `failed` and dead-lettered the envelope
    // (exhausted), though the receiver was sent nothing in that run.
    world.agent.behave(() => ({ payload: ANSWER }));
    world.receiver.reply(503, 503, 503, 503);
    const res = await world.post(SEED_REQUEST);
    const id = res.body.conversation_id as string;
    const queued = (await world.gateway.failedDeliveries.get(id))!;
    const exported = async () => (await world.getJson(`${folderOf(id)}conversation.json`)).conversation;
    // The four tries of the conversation workflow, from the attempt log (the envelope keeps the last one).
    const tries = (await exported()).execution.delivery_attempts;
    expect(tries).toHaveLength(4);
    const lastSlot = world.gateway.failedDeliveries.schedule.length - 1;
    const due = () => new Date(Date.now() - 1).toISOString();
    await world.gateway.failedDeliveries.put({ ...queued, scheduled_attempts: lastSlot, next_due_at: due() });
    world.receiver.reset();
    deliverThrottled = true;

    const [first] = (await world.gateway.redelivery.runDue()).filter((r) => r.conversation_id === id);
    expect(deliverRefusals).toBe(1);
    expect(first).toMatchObject({
      status: 'error',
      error: 'Lambda did not run Deliver (Lambda.TooManyRequestsException: Rate Exceeded.); no attempt was made',
    });
    const waiting = (await world.gateway.failedDeliveries.get(id))!;
    expect(waiting).toMatchObject({ state: 'pending', scheduled_attempts: lastSlot, failed_runs: 1 });
    expect(Date.parse(waiting.next_due_at!) - Date.now()).toBeGreaterThan(50_000);
    // No attempt of the refused run: the workflow's four tries, the three the envelope lacked counted from the log.
    expect(queued.attempts.map((a) => a.attempt)).toEqual([4]);
    expect(waiting.attempts.map((a) => a.attempt)).toEqual([1, 2, 3, 4]);
    const record = await exported();
    expect(record.webhook_context.delivery_status).toBe('retrying');
    expect(record.execution.delivery_attempts).toEqual(tries);
    expect(record.execution.errors.at(-1)).toMatchObject({
      stage: 'Deliver',
      error: 'Lambda.TooManyRequestsException',
    });

    // Lambda refusing for ever: the fifth refused run in a row gives the delivery up (runs_failed), as five failed
    // runs do, written where users read it: delivery `failed`, still without an attempt of those runs.
    for (let run = 2; run <= 5; run += 1) {
      await world.gateway.failedDeliveries.put({
        ...(await world.gateway.failedDeliveries.get(id))!,
        next_due_at: due(),
      });
      await world.gateway.redelivery.runDue();
    }
    expect(deliverRefusals).toBe(5);
    expect(world.receiver.received).toHaveLength(0);
    const dead = (await world.gateway.failedDeliveries.get(id))!;
    expect(dead).toMatchObject({
      state: 'dead',
      dead_reason: 'runs_failed',
      failed_runs: 5,
      scheduled_attempts: lastSlot,
    });
    expect(dead.attempts.map((a) => a.attempt)).toEqual([1, 2, 3, 4]);
    const given = await exported();
    expect(given.webhook_context.delivery_status).toBe('failed');
    expect(given.execution.delivery_attempts).toEqual(tries);
    expect(given.execution.errors.at(-1)).toMatchObject({
      stage: 'RedeliverySchedule',
      error: 'RedeliveryRunsFailed',
      message: expect.stringContaining('(the last: Lambda did not run Deliver (Lambda.TooManyRequestsException'),
    });
    const cli = (args: string[]) => runMain(args, { LOCAL_DATA_DIR: world.dataDir, GATEWAY_URL: world.gateway.url });
    // What the operator sees: the four tries of the conversation's run, each refused run after it as one that sent
    // nothing (before: `· then schedule at …: delivery 0 ms (1 try)` for each, a try the receiver never got; then
    // none at all, as if no run had come since), each refusal in the errors, and why the schedule gave up.
    const line = (await cli(['deliveries', 'list'])).stdout.split('\n').find((l) => l.startsWith(id));
    expect(line).toMatch(/deal_analysis\s+4\s+redelivery run failed: Lambda did not run Deliv.*dead \(runs_failed\)/);
    const shown = (await cli(['conversations', 'show', id])).stdout;
    expect(shown).toMatch(/delivery failed/);
    expect(shown).toMatch(/\(4 tries, 3 retries in the workflow\) · total \d+ ms · run \d+ ms · then schedule/);
    expect(
      shown.match(/ · then schedule at \S+: refused by Lambda \(Lambda\.TooManyRequestsException\), nothing sent/g),
    ).toHaveLength(5);
    expect(shown.match(/error {6}\S+ {2}Deliver: Lambda.TooManyRequestsException: Rate Exceeded\./g)).toHaveLength(5);
    expect(shown).toMatch(/RedeliverySchedule: RedeliveryRunsFailed: no more automatic attempts: 5 redelivery runs/);
  });
  it('S3, SQS and then Lambda refusing RecordOnlyInLogs: 200 with the answer; the record only in the execution history, and the gateway says so', async () => {
    // Before: the only line was WEBHOOK_CONVERSATION_EXPORT_DEFERRED ("queued to be exported later"), though the queue
    // had refused it; nothing said the record was kept nowhere else (on AWS nothing alarmed either).
    world.agent.behave(() => ({ payload: ANSWER }));
    s3Down();
    queueDown();
    refuseLogging = true;
    const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    let res: Awaited<ReturnType<TestWorld['post']>>;
    let printedLines: string[];
    try {
      res = await world.post(SEED_REQUEST);
    } finally {
      printedLines = printed.mock.calls.map((c) => String(c[0]));
      printed.mockRestore();
    }
    expect(res.status).toBe(200);
    expect(res.body.response).toEqual(ANSWER);
    const id = res.body.conversation_id as string;
    expect((await statePath(id)).slice(-5)).toEqual([
      'QueueFailedExport',
      'RecordOnlyInLogs',
      'RecordOnlyInHistory',
      'AnswerWithoutExport',
      'Completed',
    ]);
    const said = printedLines.filter((line) => line.includes(id));
    expect(said).toEqual([
      expect.stringMatching(
        new RegExp(
          `^webhook-gateway: conversation ${id}: its record is only in the history of execution .*: S3 and the failed-delivery store refused it, then the Export function could not log it \\(Lambda.TooManyRequestsException: Rate Exceeded.\\)\\. The record is the input of state RecordOnlyInLogs there`,
        ),
      ),
    ]);
    // And it is there, whole: the input of RecordOnlyInLogs in the saved history.
    const [execution] = await world.gateway.executions.executions(id);
    const logged = execution!.events.find((e) => e.type === 'StateEntered' && e.state === 'RecordOnlyInLogs');
    expect((logged!.input as { conversation: { conversation_id: string } }).conversation.conversation_id).toBe(id);
    expect(await world.listKeys(folderOf(id))).toEqual([]);
    expect(await world.gateway.failedDeliveries.get(id)).toBeNull();
  });
});
