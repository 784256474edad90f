import {
  DeleteItemCommand,
  DynamoDBClient,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SFNClient, StartSyncExecutionCommand } from '@aws-sdk/client-sfn';
import {
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ConversationRecord } from '../../../functions/domain/conversation.ts';
import { DEFAULT_RETRY_SCHEDULE_MS, type FailedDeliveryEnvelope } from '../../../functions/domain/failed-delivery.ts';
import { closeConversation, withDeliveryAttempt } from '../../../functions/domain/lifecycle.ts';
import { handler } from '../../../functions/redelivery-scheduler/handler.ts';
import { DynamoAttemptLog } from '../../../functions/shared/attempt-log.ts';
import {
  REDELIVERY_VISIBILITY_SECONDS,
  SqsFailedDeliveryQueue,
} from '../../../functions/shared/failed-delivery-queue.ts';
import { runSchedule, type ScheduleOptions } from '../../../functions/shared/redelivery.ts';
import { DynamoRedeliveryClaims, REDELIVERY_CLAIM_MS } from '../../../functions/shared/redelivery-claim.ts';
import { stepFunctionsRedeliver } from '../../../functions/shared/redelivery-execution.ts';
import {
  afterAttempt,
  DLQ_URL,
  deadEnvelope,
  pendingEnvelope,
  QUEUE_URL,
  STATE_MACHINE_ARN,
  sqsMessage,
  succeeded,
  T0,
  workflowMessage,
} from '../../support/aws-fixtures.ts';
import { dynamoTables } from '../../support/dynamodb-tables.ts';
import { FakeSqs } from '../../support/fake-sqs.ts';
import { captureJsonLines } from '../../support/log-capture.ts';

/**
 * The scheduled Lambda (EventBridge, every minute): due envelopes are redelivered through the redelivery workflow,
 * the others wait; each outcome is stored back in SQS. Time is injected, never waited for.
 */
const sqsMock = mockClient(SQSClient);
const sfnMock = mockClient(SFNClient);
const dynamoMock = mockClient(DynamoDBClient);
const s3Mock = mockClient(S3Client);
const NOW = new Date(T0.getTime() + 60_000);
const logs: { level: string; message: string; extra: Record<string, unknown>[] }[] = [];
const log = Object.fromEntries(
  ['info', 'warn', 'error'].map((level) => [
    level,
    (message: string, ...extra: Record<string, unknown>[]) => logs.push({ level, message, extra }),
  ]),
) as unknown as ScheduleOptions['log'];

beforeEach(() => {
  sqsMock.reset();
  sfnMock.reset();
  dynamoMock.reset();
  s3Mock.reset();
  logs.length = 0;
  sqsMock.on(SendMessageCommand).resolves({ MessageId: 'new' });
});

/** The queue holds these batches, then nothing. */
function queueHolds(...batches: Message[][]) {
  const receive = sqsMock.on(ReceiveMessageCommand);
  for (const batch of batches) receive.resolvesOnce({ Messages: batch });
  receive.resolves({});
}

function run(overrides: Partial<ScheduleOptions> = {}, schedule: readonly number[] = DEFAULT_RETRY_SCHEDULE_MS) {
  const queue = new SqsFailedDeliveryQueue(new SQSClient({}), QUEUE_URL, DLQ_URL, schedule);
  const now = overrides.now ?? (() => NOW);
  const redeliver = stepFunctionsRedeliver(new SFNClient({}), STATE_MACHINE_ARN, {
    schedule,
    now,
    suffix: () => 'a1b2c3',
  });
  return runSchedule(queue, redeliver, {
    remainingMs: () => 300_000,
    reserveMs: 75_000,
    minHoldSeconds: REDELIVERY_VISIBILITY_SECONDS,
    log,
    now,
    ...overrides,
  });
}

const sent = () =>
  sqsMock.commandCalls(SendMessageCommand).map((c) => ({
    url: c.args[0].input.QueueUrl,
    delay: c.args[0].input.DelaySeconds,
    envelope: JSON.parse(c.args[0].input.MessageBody!) as FailedDeliveryEnvelope,
  }));
const deleted = () => sqsMock.commandCalls(DeleteMessageCommand).map((c) => c.args[0].input.ReceiptHandle);

describe('a due envelope is redelivered once, through the redelivery workflow', () => {
  it('starts the execution with the conversation and its redelivery context, named after the conversation; delivered → deleted', async () => {
    const envelope = pendingEnvelope();
    const message = sqsMessage(envelope);
    queueHolds([message]);
    sfnMock.on(StartSyncExecutionCommand).resolves(succeeded(afterAttempt(envelope, 'delivered')));
    const summary = await run();
    const call = sfnMock.commandCalls(StartSyncExecutionCommand)[0]!.args[0].input;
    expect(call.stateMachineArn).toBe(STATE_MACHINE_ARN);
    expect(call.name).toBe(`${envelope.conversation_id}-redelivery-2-a1b2c3`);
    expect(JSON.parse(call.input!)).toEqual({
      conversation: envelope.conversation,
      redelivery: { via: 'schedule', status_if_failed: 'retrying' },
    });
    expect(deleted()).toEqual([message.ReceiptHandle]);
    expect(sent()).toEqual([]);
    expect(summary).toMatchObject({ received: 1, redelivered: 1, delivered: 1, stopped_by_time_budget: false });
    expect(logs.at(-1)).toMatchObject({ message: 'Redelivery sweep finished' });
  });

  it("the workflow's QueueFailedExport message, due already: an export-only execution, then deleted", async () => {
    const record = workflowMessage().conversation;
    const message = sqsMessage(
      { kind: 'failed_export', conversation: record, export_error: { Error: 'ExportError', Cause: 'S3 down' } },
      { sentAt: T0 },
    );
    queueHolds([message]);
    sfnMock.on(StartSyncExecutionCommand).resolves(succeeded(record));
    const summary = await run();
    const call = sfnMock.commandCalls(StartSyncExecutionCommand)[0]!.args[0].input;
    expect(JSON.parse(call.input!)).toEqual({
      conversation: record,
      redelivery: { via: 'schedule', status_if_failed: 'retrying', export_only: true },
    });
    expect(deleted()).toEqual([message.ReceiptHandle]);
    expect(sent()).toEqual([]);
    expect(summary).toMatchObject({ received: 1, redelivered: 1, delivered: 1 });
  });

  it('delivered but S3 refused the re-export → re-sent owing only the export, at the next slot', async () => {
    const envelope = pendingEnvelope();
    const message = sqsMessage(envelope);
    queueHolds([message]);
    const output = {
      conversation: afterAttempt(envelope, 'delivered'),
      export_error: { Error: 'ExportError', Cause: 'S3 down' },
    };
    sfnMock.on(StartSyncExecutionCommand).resolves({ status: 'SUCCEEDED', output: JSON.stringify(output) });
    await run();
    expect(deleted()).toEqual([message.ReceiptHandle]);
    expect(sent()).toHaveLength(1);
    expect(sent()[0]!.envelope).toMatchObject({
      state: 'pending',
      owed: 'export',
      scheduled_attempts: 1,
      last_error: 'export: ExportError: S3 down',
    });
    expect(sent()[0]!.envelope.next_due_at).toBe(new Date(NOW.getTime() + 300_000).toISOString());
    expect(sent()[0]!.url).toBe(QUEUE_URL);
  });

  it('a retryable failure → re-sent with the next slot (5 min), the old message deleted', async () => {
    const envelope = pendingEnvelope();
    const message = sqsMessage(envelope);
    queueHolds([message]);
    sfnMock.on(StartSyncExecutionCommand).resolves(succeeded(afterAttempt(envelope, 'retryable')));
    expect(await run()).toMatchObject({ rescheduled: 1 });
    expect(sent()).toEqual([
      {
        url: QUEUE_URL,
        delay: 300,
        envelope: expect.objectContaining({
          state: 'pending',
          scheduled_attempts: 1,
          next_due_at: new Date(NOW.getTime() + 300_000).toISOString(),
        }),
      },
    ]);
    expect(sent()[0]!.envelope.attempts).toHaveLength(2);
    expect(deleted()).toEqual([message.ReceiptHandle]);
  });

  it("honours the receiver's Retry-After when it asks for longer", async () => {
    const envelope = pendingEnvelope();
    queueHolds([sqsMessage(envelope)]);
    sfnMock
      .on(StartSyncExecutionCommand)
      .resolves(succeeded(afterAttempt(envelope, 'retryable', { status_code: 429, retry_after_ms: 3 * 3_600_000 })));
    await run();
    expect(sent()[0]).toMatchObject({
      delay: 900,
      envelope: { next_due_at: new Date(NOW.getTime() + 3 * 3_600_000).toISOString() },
    });
  });

  it('a permanent answer → the dead-letter queue, no more automatic attempts', async () => {
    const envelope = pendingEnvelope();
    queueHolds([sqsMessage(envelope)]);
    sfnMock.on(StartSyncExecutionCommand).resolves(succeeded(afterAttempt(envelope, 'permanent')));
    expect(await run()).toMatchObject({ dead_lettered: 1 });
    expect(sent()).toEqual([
      {
        url: DLQ_URL,
        delay: undefined,
        envelope: expect.objectContaining({ state: 'dead', dead_reason: 'permanent' }),
      },
    ]);
    expect(deleted()).toHaveLength(1);
  });

  it('the last slot failing → dead (exhausted); its execution knows no attempt follows', async () => {
    const envelope = pendingEnvelope(undefined, T0, { scheduled_attempts: 1 });
    queueHolds([sqsMessage(envelope)]);
    sfnMock.on(StartSyncExecutionCommand).resolves(succeeded(afterAttempt(envelope, 'retryable')));
    await run({}, [5_000, 60_000]);
    expect(JSON.parse(sfnMock.commandCalls(StartSyncExecutionCommand)[0]!.args[0].input.input!).redelivery).toEqual({
      via: 'schedule',
      status_if_failed: 'failed',
    });
    expect(sent()).toEqual([
      {
        url: DLQ_URL,
        delay: undefined,
        envelope: expect.objectContaining({ state: 'dead', dead_reason: 'exhausted' }),
      },
    ]);
  });

  it("the workflow's own message, due already, is converted and redelivered in the same run", async () => {
    const message = sqsMessage(workflowMessage(), { sentAt: T0 });
    queueHolds([message]);
    sfnMock.on(StartSyncExecutionCommand).callsFake((input: { input: string }) => {
      const { conversation } = JSON.parse(input.input);
      return succeeded(
        afterAttempt(
          { conversation, attempts: conversation.execution.delivery_attempts } as FailedDeliveryEnvelope,
          'retryable',
        ),
      );
    });
    await run();
    expect(sent()).toEqual([
      {
        url: QUEUE_URL,
        delay: 300,
        envelope: expect.objectContaining({ created_at: T0.toISOString(), scheduled_attempts: 1 }),
      },
    ]);
    expect(deleted()).toEqual([message.ReceiptHandle]);
  });
});

describe('everything else', () => {
  it('not due yet → re-sent delayed until it is, no execution', async () => {
    const envelope = pendingEnvelope(undefined, T0, { next_due_at: new Date(NOW.getTime() + 600_000).toISOString() });
    const message = sqsMessage(envelope);
    queueHolds([message]);
    expect(await run()).toMatchObject({ waiting: 1, redelivered: 0 });
    expect(sfnMock.commandCalls(StartSyncExecutionCommand)).toHaveLength(0);
    expect(sent()).toEqual([{ url: QUEUE_URL, delay: 600, envelope }]);
    expect(deleted()).toEqual([message.ReceiptHandle]);
    expect(sqsMock.commandCalls(ChangeMessageVisibilityCommand)).toHaveLength(0);
  });

  it('a permanent failure from the workflow goes straight to the dead-letter queue', async () => {
    queueHolds([sqsMessage(workflowMessage('permanent'))]);
    expect(await run()).toMatchObject({ dead_lettered: 1, redelivered: 0 });
    expect(sent()).toEqual([
      {
        url: DLQ_URL,
        delay: undefined,
        envelope: expect.objectContaining({ state: 'dead', dead_reason: 'permanent' }),
      },
    ]);
    expect(sfnMock.commandCalls(StartSyncExecutionCommand)).toHaveLength(0);
  });

  it('a FAILED or TIMED_OUT execution → re-sent with a failed run counted, back in a minute; no slot used', async () => {
    const first = sqsMessage(pendingEnvelope('aaa111'));
    const second = sqsMessage(pendingEnvelope('bbb222', T0, { failed_runs: 2 }));
    queueHolds([first, second]);
    sfnMock
      .on(StartSyncExecutionCommand)
      .resolvesOnce({ status: 'FAILED', error: 'States.TaskFailed', cause: 'Export failed' })
      .resolvesOnce({ status: 'TIMED_OUT' });
    expect(await run()).toMatchObject({ redelivered: 2, failed_executions: 2, errors: 0 });
    expect(sent()).toEqual([
      {
        url: QUEUE_URL,
        delay: 60,
        envelope: expect.objectContaining({
          state: 'pending',
          failed_runs: 1,
          scheduled_attempts: 0,
          next_due_at: new Date(NOW.getTime() + 60_000).toISOString(),
          last_error: 'redelivery run failed: FAILED: States.TaskFailed: Export failed',
        }),
      },
      {
        url: QUEUE_URL,
        delay: 240,
        envelope: expect.objectContaining({ state: 'pending', failed_runs: 3, scheduled_attempts: 0 }),
      },
    ]);
    expect(deleted()).toEqual([first.ReceiptHandle, second.ReceiptHandle]);
    expect(logs.filter((l) => l.level === 'warn').map((l) => l.extra[0])).toEqual([
      expect.objectContaining({ error: 'FAILED: States.TaskFailed: Export failed', failed_runs: 1 }),
      expect.objectContaining({ error: 'TIMED_OUT', failed_runs: 3 }),
    ]);
  });

  it('the fifth failed run in a row → the dead-letter queue (runs_failed)', async () => {
    queueHolds([sqsMessage(pendingEnvelope(undefined, T0, { failed_runs: 4 }))]);
    sfnMock.on(StartSyncExecutionCommand).resolves({ status: 'FAILED', error: 'States.Runtime' });
    expect(await run()).toMatchObject({ failed_executions: 1 });
    expect(sent()).toEqual([
      {
        url: DLQ_URL,
        delay: undefined,
        envelope: expect.objectContaining({
          state: 'dead',
          dead_reason: 'runs_failed',
          failed_runs: 5,
          next_due_at: null,
        }),
      },
    ]);
    expect(logs.find((l) => l.level === 'warn')).toMatchObject({
      message: 'Redelivery run did not succeed, again; no more automatic attempts',
    });
  });

  /** A redelivery run whose Deliver Lambda would not run: its Export records what its Catch put in delivery_error. */
  const refusedRun = (input: { input?: string; name?: string }) => {
    const { conversation, redelivery } = JSON.parse(input.input!);
    const delivery_error = { Error: 'Lambda.TooManyRequestsException', Cause: 'Rate Exceeded.' };
    return succeeded(closeConversation({ conversation, redelivery, delivery_error }, input.name!, NOW).record);
  };

  it('Lambda refusing to run Deliver on the last slot: re-sent with a failed run counted, back in a minute; no slot used, no attempt', async () => {
    // Before: a 0 ms attempt appended, exported `failed`, and the envelope dead-lettered (exhausted), the receiver
    // never sent a request of that run.
    const envelope = pendingEnvelope(undefined, T0, { scheduled_attempts: 1 });
    queueHolds([sqsMessage(envelope)]);
    sfnMock.on(StartSyncExecutionCommand).callsFake(refusedRun);
    expect(await run({}, [5_000, 60_000])).toMatchObject({
      redelivered: 1,
      refused_runs: 1,
      failed_executions: 0,
      dead_lettered: 0,
    });
    const [again] = sent();
    expect(again).toMatchObject({
      url: QUEUE_URL,
      delay: 60,
      envelope: {
        state: 'pending',
        scheduled_attempts: 1,
        failed_runs: 1,
        next_due_at: new Date(NOW.getTime() + 60_000).toISOString(),
        last_error:
          'redelivery run failed: Lambda did not run Deliver (Lambda.TooManyRequestsException: Rate Exceeded.); no attempt was made',
      },
    });
    expect(again!.envelope.attempts).toEqual(envelope.attempts);
    expect(again!.envelope.conversation.webhook_context.delivery_status).toBe('retrying');
    expect(again!.envelope.conversation.execution.errors.at(-1)).toMatchObject({
      stage: 'Deliver',
      error: 'Lambda.TooManyRequestsException',
    });
    expect(logs.find((l) => l.level === 'warn')).toMatchObject({
      message: 'Redelivery run did not succeed; the envelope comes back later',
    });
  });

  it('Lambda refusing to run Deliver run after run: the fifth in a row → the dead-letter queue (runs_failed), given up', async () => {
    const envelope = pendingEnvelope(undefined, T0, { failed_runs: 4 });
    queueHolds([sqsMessage(envelope)]);
    sfnMock.on(StartSyncExecutionCommand).callsFake(refusedRun);
    expect(await run()).toMatchObject({ refused_runs: 1, failed_executions: 0, dead_lettered: 0 });
    const [dead] = sent();
    expect(dead).toMatchObject({
      url: DLQ_URL,
      envelope: { state: 'dead', dead_reason: 'runs_failed', failed_runs: 5, scheduled_attempts: 0 },
    });
    expect(dead!.envelope.attempts).toEqual(envelope.attempts);
    expect(dead!.envelope.conversation.webhook_context.delivery_status).toBe('failed');
    expect(dead!.envelope.conversation.execution.errors.at(-1)).toMatchObject({
      stage: 'RedeliverySchedule',
      error: 'RedeliveryRunsFailed',
    });
  });

  it('an SDK error starting one execution is a failed run of that envelope; the others go on', async () => {
    const ok = pendingEnvelope('bbb222');
    queueHolds([sqsMessage(pendingEnvelope('aaa111')), sqsMessage(ok)]);
    sfnMock
      .on(StartSyncExecutionCommand)
      .rejectsOnce(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }))
      .resolves(succeeded(afterAttempt(ok, 'delivered')));
    expect(await run()).toMatchObject({ failed_executions: 1, delivered: 1, errors: 0 });
    expect(sent()).toEqual([
      {
        url: QUEUE_URL,
        delay: 60,
        envelope: expect.objectContaining({
          failed_runs: 1,
          last_error: 'redelivery run failed: ThrottlingException: Rate exceeded',
        }),
      },
    ]);
  });

  it('an SQS error storing the result leaves the message as it was taken (the redrive policy is the safety net)', async () => {
    const envelope = pendingEnvelope();
    queueHolds([sqsMessage(envelope)]);
    sfnMock.on(StartSyncExecutionCommand).resolves({ status: 'FAILED', error: 'States.Runtime' });
    sqsMock.on(SendMessageCommand).rejects(new Error('SQS unavailable'));
    expect(await run()).toMatchObject({ errors: 1 });
    expect(deleted()).toEqual([]);
    expect(logs.find((l) => l.level === 'error')?.extra[0]).toMatchObject({ error: 'Error: SQS unavailable' });
  });

  it('two messages of one conversation in a run: redelivered once', async () => {
    const envelope = pendingEnvelope();
    queueHolds([sqsMessage(envelope), sqsMessage(envelope)]);
    sfnMock.on(StartSyncExecutionCommand).resolves(succeeded(afterAttempt(envelope, 'delivered')));
    expect(await run()).toMatchObject({ redelivered: 1, delivered: 1, duplicates: 1 });
  });

  it('unreadable messages are logged and left alone', async () => {
    queueHolds([sqsMessage('garbage')]);
    expect(await run()).toMatchObject({ received: 1, unreadable: 1 });
    expect(logs.find((l) => l.level === 'warn')?.extra[0]).toMatchObject({ reason: 'the body is not JSON' });
    expect(sqsMock.calls()).toHaveLength(2);
  });

  it('receives batch after batch until the queue is empty', async () => {
    queueHolds([sqsMessage(deadEnvelope('aaa111'))], [sqsMessage(deadEnvelope('bbb222'))]);
    expect(await run()).toMatchObject({ received: 2, dead_lettered: 2 });
    expect(sqsMock.commandCalls(ReceiveMessageCommand)).toHaveLength(3);
  });

  it('stops receiving when less than the reserve is left', async () => {
    queueHolds([sqsMessage(deadEnvelope('aaa111'))], [sqsMessage(deadEnvelope('bbb222'))]);
    const left = [100_000, 70_000];
    expect(await run({ remainingMs: () => left.shift() ?? 0 })).toMatchObject({
      received: 1,
      stopped_by_time_budget: true,
    });
    expect(sqsMock.commandCalls(ReceiveMessageCommand)).toHaveLength(1);
    // What a run receives stays hidden until the run is over (the Lambda's remaining time and a margin).
    expect(sqsMock.commandCalls(ReceiveMessageCommand)[0]!.args[0].input.VisibilityTimeout).toBe(130);
    sqsMock.resetHistory();
    expect(await run({ remainingMs: () => 10_000 })).toMatchObject({ received: 0, stopped_by_time_budget: true });
    expect(sqsMock.commandCalls(ReceiveMessageCommand)).toHaveLength(0);
  });
});

describe('copies of one envelope in the queue (SQS delivers at least once; a run may deliver and not delete)', () => {
  /** The attempt log as Deliver leaves it: one item per attempt, the delivered one once a redelivery delivered. */
  function attemptLogHolds(attempts: () => Record<string, unknown>[]) {
    dynamoMock.on(QueryCommand).callsFake(() => ({
      Items: attempts().map((entry, i) => ({
        pk: { S: `conversation#${entry.conversation_id}` },
        sk: { S: `attempt#${entry.at}#${i}` },
        entry: { S: JSON.stringify(entry) },
      })),
    }));
  }
  const withLog = (): Partial<ScheduleOptions> => {
    const attemptLog = new DynamoAttemptLog('deliveries', 90, new DynamoDBClient({}));
    return { logged: (envelope) => attemptLog.list(envelope.conversation_id) };
  };

  /** The redelivery workflow: Deliver logs its attempt before Export; an export-only run writes the record it is given. */
  function workflowDelivers(delivered: ConversationRecord, logged: Record<string, unknown>[]) {
    sfnMock.on(StartSyncExecutionCommand).callsFake(({ input }: { input: string }) => {
      const given = JSON.parse(input) as { conversation: ConversationRecord; redelivery: { export_only?: boolean } };
      if (given.redelivery.export_only) return succeeded(given.conversation);
      logged.push({ ...delivered.execution.delivery_attempts.at(-1), conversation_id: delivered.conversation_id });
      return succeeded(delivered);
    });
  }
  const startedWith = (i: number) =>
    JSON.parse(sfnMock.commandCalls(StartSyncExecutionCommand)[i]!.args[0].input.input!) as {
      conversation: ConversationRecord;
      redelivery: { export_only?: boolean };
    };

  it('a copy received in a later run than the one that delivered its conversation is not sent again, only exported delivered', async () => {
    const envelope = pendingEnvelope();
    const first = sqsMessage(envelope, { id: 'copy-1' });
    const second = sqsMessage(envelope, { id: 'copy-2' });
    const delivered = afterAttempt(envelope, 'delivered');
    const logged: Record<string, unknown>[] = [];
    attemptLogHolds(() => logged);
    workflowDelivers(delivered, logged);
    // Run 1 receives the first copy; the second comes back to run 2.
    queueHolds([first], [], [second]);
    expect(await run(withLog())).toMatchObject({ redelivered: 1, delivered: 1 });
    expect(await run(withLog())).toMatchObject({ received: 1, redelivered: 0, already_delivered: 1 });
    // Run 2's execution only exports (no Deliver): the copy's record with the logged attempt, delivered.
    expect(sfnMock.commandCalls(StartSyncExecutionCommand)).toHaveLength(2);
    expect(startedWith(1).redelivery.export_only).toBe(true);
    expect(startedWith(1).conversation.webhook_context.delivery_status).toBe('delivered');
    expect(startedWith(1).conversation.execution.delivery_attempts.at(-1)).toMatchObject({ outcome: 'delivered' });
    expect(logged).toHaveLength(1);
    expect(deleted()).toEqual([first.ReceiptHandle, second.ReceiptHandle]);
    expect(sent()).toEqual([]);
    expect(logs.find((l) => l.message.startsWith('Already delivered'))?.extra[0]).toMatchObject({
      conversation_id: envelope.conversation_id,
      delivered_attempt: 2,
    });
    // One consistent read per envelope about to be redelivered.
    expect(dynamoMock.commandCalls(QueryCommand)).toHaveLength(2);
    expect(dynamoMock.commandCalls(QueryCommand)[0]!.args[0].input).toMatchObject({
      TableName: 'deliveries',
      ConsistentRead: true,
    });
  });

  it("a conversation workflow's Deliver that delivered but whose result was lost: exported delivered, nothing sent; an export that fails is tried again, owing only that", async () => {
    // The workflow queued the envelope (retrying), but the receiver took attempt 1: the attempt log has it.
    const envelope = pendingEnvelope();
    expect(envelope.conversation.webhook_context.delivery_status).toBe('retrying');
    const took = { ...envelope.attempts[0]!, outcome: 'delivered' as const, status_code: 200 };
    attemptLogHolds(() => [
      { ...took, conversation_id: envelope.conversation_id, request: { url: 'https://crm.example/hook', headers: {} } },
    ]);
    sfnMock.on(StartSyncExecutionCommand).resolvesOnce({ status: 'FAILED', error: 'States.Timeout' });
    const batches: Message[][] = [[sqsMessage(envelope)]];
    sqsMock.on(ReceiveMessageCommand).callsFake(() => ({ Messages: batches.shift() ?? [] }));
    expect(await run(withLog())).toMatchObject({ redelivered: 0, failed_executions: 1 });
    // The export-only run failed: the envelope is back in a minute, owing only the export of the delivered record.
    const [back] = sent();
    expect(back!.envelope).toMatchObject({ owed: 'export', state: 'pending', failed_runs: 1 });
    expect(back!.envelope.conversation.webhook_context.delivery_status).toBe('delivered');
    // Next run: an envelope owing only the export is exported (the attempt log is not read again), then deleted.
    sfnMock
      .on(StartSyncExecutionCommand)
      .callsFake(({ input }: { input: string }) =>
        succeeded((JSON.parse(input) as { conversation: ConversationRecord }).conversation),
      );
    batches.push([sqsMessage(back!.envelope, { id: 'export-only' })]);
    const later = new Date(NOW.getTime() + 60_000);
    const summary = await run({ ...withLog(), now: () => later });
    expect(summary).toMatchObject({ delivered: 1 });
    expect(sfnMock.commandCalls(StartSyncExecutionCommand).every((_, i) => startedWith(i).redelivery.export_only)).toBe(
      true,
    );
    expect(dynamoMock.commandCalls(QueryCommand)).toHaveLength(1);
  });

  it('a log with failed attempts only, or one that cannot be read: redelivered as before (at least once)', async () => {
    const envelope = pendingEnvelope();
    attemptLogHolds(() => [{ ...envelope.attempts[0], conversation_id: envelope.conversation_id }]);
    sfnMock.on(StartSyncExecutionCommand).resolves(succeeded(afterAttempt(envelope, 'delivered')));
    queueHolds([sqsMessage(envelope)], [], [sqsMessage(envelope)]);
    expect(await run(withLog())).toMatchObject({ redelivered: 1, delivered: 1, already_delivered: 0 });
    dynamoMock.on(QueryCommand).rejects(Object.assign(new Error('denied'), { name: 'AccessDeniedException' }));
    expect(await run(withLog())).toMatchObject({ redelivered: 1, delivered: 1, already_delivered: 0 });
    expect(logs.find((l) => l.level === 'warn')).toMatchObject({
      message: 'Could not read whether the conversation was delivered meanwhile; redelivered',
      extra: [expect.objectContaining({ error: 'AccessDeniedException: denied' })],
    });
  });

  /** The scheduler's claims (redelivery-claim.ts) in a fake deliveries table keyed by `pk` (one claim per conversation). */
  const withClaims = (): Partial<ScheduleOptions> => {
    const claims = new DynamoRedeliveryClaims('deliveries', new DynamoDBClient({}));
    return { ...withLog(), claim: (envelope, now) => claims.claim(envelope.conversation_id, now) };
  };

  it('two overlapping runs that each received a copy: one redelivery in flight; the other copy waits until its claim ends, then is dropped', async () => {
    const table = dynamoTables(dynamoMock, { deliveries: 'pk' }).items('deliveries');
    const envelope = pendingEnvelope();
    const first = sqsMessage(envelope, { id: 'copy-1' });
    const second = sqsMessage(envelope, { id: 'copy-2' });
    const delivered = afterAttempt(envelope, 'delivered');
    const logged: Record<string, unknown>[] = [];
    attemptLogHolds(() => logged);
    let started!: () => void;
    const inFlight = new Promise<void>((resolve) => {
      started = resolve;
    });
    let answer!: () => void;
    const answered = new Promise<void>((resolve) => {
      answer = resolve;
    });
    sfnMock.on(StartSyncExecutionCommand).callsFake(async ({ input }: { input: string }) => {
      const given = JSON.parse(input) as { conversation: ConversationRecord; redelivery: { export_only?: boolean } };
      if (given.redelivery.export_only) return succeeded(given.conversation);
      started();
      await answered;
      // Deliver logs the attempt as the receiver answered it, before the execution ends.
      logged.push({ ...delivered.execution.delivery_attempts.at(-1), conversation_id: envelope.conversation_id });
      return succeeded(delivered);
    });
    // Run 1 receives the first copy, run 2 the second and then nothing, run 1 nothing more; a later run, the copy run 2
    // put back.
    const later = sqsMessage(envelope, { id: 'copy-2b' });
    queueHolds([first], [second], [], [], [later]);
    // Run 1 receives the first copy and starts its redelivery; run 2 starts meanwhile and receives the second.
    const run1 = run(withClaims());
    await inFlight;
    const summary2 = await run(withClaims());
    expect(summary2).toMatchObject({ received: 1, redelivered: 0, in_flight_elsewhere: 1 });
    expect(sfnMock.commandCalls(StartSyncExecutionCommand)).toHaveLength(1);
    // The second copy waits as a fresh message until run 1's claim has surely ended (3 minutes).
    expect(sent()).toEqual([{ url: QUEUE_URL, delay: 180, envelope }]);
    expect(deleted()).toEqual([second.ReceiptHandle]);
    answer();
    expect(await run1).toMatchObject({ redelivered: 1, delivered: 1 });
    // Run 1's execution ended: its claim is released at once.
    expect(table.size).toBe(0);
    // The waiting copy comes back to a later run: delivered meanwhile, nothing sent, only exported again.
    expect(await run(withClaims())).toMatchObject({ already_delivered: 1, redelivered: 0 });
    expect(sfnMock.commandCalls(StartSyncExecutionCommand)).toHaveLength(2);
    expect(startedWith(1).redelivery.export_only).toBe(true);
    expect(logged).toHaveLength(1);
    expect(table.size).toBe(0);
  });

  it('a run that crashed holding a claim holds nothing for good: once it has ended, another run redelivers', async () => {
    const table = dynamoTables(dynamoMock, { deliveries: 'pk' }).items('deliveries');
    const envelope = pendingEnvelope();
    attemptLogHolds(() => []);
    const leaseUntil = NOW.getTime() + 30_000;
    table.set(`conversation#${envelope.conversation_id}`, {
      pk: { S: `conversation#${envelope.conversation_id}` },
      sk: { S: 'redelivery' },
      holder: { S: 'crashed-run' },
      lease_until: { N: String(leaseUntil) },
    });
    sfnMock.on(StartSyncExecutionCommand).resolves(succeeded(afterAttempt(envelope, 'delivered')));
    queueHolds([sqsMessage(envelope)], [], [sqsMessage(envelope)]);
    expect(await run(withClaims())).toMatchObject({ in_flight_elsewhere: 1, redelivered: 0 });
    expect(sent()).toEqual([{ url: QUEUE_URL, delay: 30, envelope }]);
    const later = new Date(leaseUntil);
    const second = await run({ ...withClaims(), now: () => later });
    console.log(second);
    expect(second).toMatchObject({ redelivered: 1, delivered: 1 });
    expect(sfnMock.commandCalls(StartSyncExecutionCommand)).toHaveLength(1);
  });

  it('a run whose execution may still be under way (TIMED_OUT) keeps its claim until it ends by itself', async () => {
    const table = dynamoTables(dynamoMock, { deliveries: 'pk' }).items('deliveries');
    const envelope = pendingEnvelope();
    attemptLogHolds(() => []);
    sfnMock.on(StartSyncExecutionCommand).resolves({ status: 'TIMED_OUT' });
    queueHolds([sqsMessage(envelope)]);
    expect(await run(withClaims())).toMatchObject({ failed_executions: 1 });
    expect(table.get(`conversation#${envelope.conversation_id}`)?.lease_until).toEqual({
      N: String(NOW.getTime() + REDELIVERY_CLAIM_MS),
    });
    expect(REDELIVERY_CLAIM_MS).toBe(180_000);
  });

  it('a run whose Deliver Lambda would not run ended (SUCCEEDED): its claim is released, so the next run a minute later tries again', async () => {
    // Before: kept for REDELIVERY_CLAIM_MS as if the run might be under way, so the envelope due a minute later waited
    // for it (in_flight_elsewhere) until 3 minutes had passed.
    const table = dynamoTables(dynamoMock, { deliveries: 'pk' }).items('deliveries');
    const envelope = pendingEnvelope();
    attemptLogHolds(() => []);
    sfnMock.on(StartSyncExecutionCommand).callsFake((input: { input: string; name: string }) => {
      const { conversation, redelivery } = JSON.parse(input.input);
      const delivery_error = { Error: 'Lambda.ServiceException', Cause: 'Service unavailable' };
      return succeeded(closeConversation({ conversation, redelivery, delivery_error }, input.name, NOW).record);
    });
    // The queue: what each run receives, the message each run sent back for the next.
    const inbox = [sqsMessage(envelope)];
    sqsMock.on(ReceiveMessageCommand).callsFake(() => ({ Messages: inbox.splice(0) }));
    expect(await run(withClaims())).toMatchObject({ refused_runs: 1 });
    expect(table.size).toBe(0);
    const [again] = sent();
    expect(again).toMatchObject({ delay: 60, envelope: { failed_runs: 1 } });
    inbox.push(sqsMessage(again!.envelope));
    const later = new Date(NOW.getTime() + 60_000);
    expect(await run({ ...withClaims(), now: () => later })).toMatchObject({
      refused_runs: 1,
      in_flight_elsewhere: 0,
    });
    expect(sfnMock.commandCalls(StartSyncExecutionCommand)).toHaveLength(2);
  });

  it('a claim that cannot be written leaves the envelope as it was taken: nothing sent', async () => {
    attemptLogHolds(() => []);
    dynamoMock.on(PutItemCommand).rejects(Object.assign(new Error('denied'), { name: 'AccessDeniedException' }));
    queueHolds([sqsMessage(pendingEnvelope())]);
    expect(await run(withClaims())).toMatchObject({ errors: 1, redelivered: 0 });
    expect(sfnMock.commandCalls(StartSyncExecutionCommand)).toHaveLength(0);
    expect(sent()).toEqual([]);
    expect(deleted()).toEqual([]);
  });

  it('the Lambda reads the attempt log of its deliveries table (DELIVERIES_TABLE_NAME)', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, {
      FAILED_DELIVERY_QUEUE_URL: QUEUE_URL,
      FAILED_DELIVERY_DLQ_URL: DLQ_URL,
      REDELIVERY_STATE_MACHINE_ARN: STATE_MACHINE_ARN,
      DELIVERIES_TABLE_NAME: 'deliveries-table',
    });
    const envelope = pendingEnvelope(undefined, new Date(Date.now() - 60_000));
    const delivered = afterAttempt(envelope, 'delivered').execution.delivery_attempts.at(-1);
    attemptLogHolds(() => [{ ...delivered, conversation_id: envelope.conversation_id }]);
    queueHolds([sqsMessage(envelope)]);
    sfnMock
      .on(StartSyncExecutionCommand)
      .callsFake(({ input }: { input: string }) =>
        succeeded((JSON.parse(input) as { conversation: ConversationRecord }).conversation),
      );
    const capture = captureJsonLines();
    try {
      const summary = await handler({}, { getRemainingTimeInMillis: () => 190_000 } as unknown as Context);
      expect(summary).toMatchObject({ already_delivered: 1, redelivered: 0 });
    } finally {
      capture.restore();
      process.env = saved;
    }
    // Nothing delivered again: one export-only run, of the record with the logged attempt.
    expect(sfnMock.commandCalls(StartSyncExecutionCommand)).toHaveLength(1);
    expect(startedWith(0)).toMatchObject({
      redelivery: { export_only: true },
      conversation: { webhook_context: { delivery_status: 'delivered' } },
    });
    expect(dynamoMock.commandCalls(QueryCommand)[0]!.args[0].input.TableName).toBe('deliveries-table');
    // Claimed in the same table before the log was read, and released once the copy was dropped.
    expect(dynamoMock.commandCalls(PutItemCommand)[0]!.args[0].input).toMatchObject({
      TableName: 'deliveries-table',
      Item: { pk: { S: `conversation#${envelope.conversation_id}` }, sk: { S: 'redelivery' } },
    });
    expect(dynamoMock.commandCalls(DeleteItemCommand)[0]!.args[0].input.TableName).toBe('deliveries-table');
  });
});

describe('against a queue that applies its redrive policy (maxReceiveCount 5, as deployed)', () => {
  let fake: FakeSqs;
  /** When each redelivery run was started, on the fake clock. */
  let runs: number[];
  beforeEach(() => {
    fake = new FakeSqs(T0);
    fake.addQueue(DLQ_URL);
    fake.addQueue(QUEUE_URL, { deadLetterUrl: DLQ_URL, maxReceiveCount: 5 });
    fake.wire(sqsMock);
    runs = [];
  });

  /** The EventBridge rule: one run of the schedule at each minute of the fake clock, for `minutes`. */
  async function everyMinute(minutes: number, schedule: readonly number[] = DEFAULT_RETRY_SCHEDULE_MS) {
    for (let i = 0; i < minutes; i += 1) {
      await run({ now: () => new Date(fake.now) }, schedule);
      fake.now += 60_000;
    }
  }

  /** A pending envelope due in `ms`, put back on the queue as the scheduler re-sends one (delayed 15 min at most). */
  function queuedEnvelope(ms: number): FailedDeliveryEnvelope {
    const envelope = pendingEnvelope(undefined, T0, { next_due_at: new Date(T0.getTime() + ms).toISOString() });
    fake.send({ QueueUrl: QUEUE_URL, MessageBody: JSON.stringify(envelope), DelaySeconds: Math.min(900, ms / 1000) });
    return envelope;
  }

  const deadLetters = () => fake.bodies(DLQ_URL).map((b) => JSON.parse(b) as FailedDeliveryEnvelope);
  const highestReceiveCount = () => Math.max(...fake.highestReceiveCount.values());

  it.each([
    ['2 h', 7_200_000],
    ['20 h (a long Retry-After)', 72_000_000],
  ])(
    'due in %s, every redelivery run failing: 5 runs from the due time on, then the dead-letter queue',
    async (_, dueIn) => {
      const envelope = queuedEnvelope(dueIn);
      sfnMock.on(StartSyncExecutionCommand).callsFake(() => {
        runs.push(fake.now);
        return { status: 'FAILED', error: 'States.TaskFailed', cause: 'Export failed' };
      });
      await everyMinute(dueIn / 60_000 + 60);
      // Waiting used none of the allowance: the first run is at the due time, and the fifth failure dead-letters it.
      expect(runs).toHaveLength(5);
      expect(runs[0]).toBe(T0.getTime() + dueIn);
      // Spaced out, not one per visibility timeout: 1, 2, 4 and 8 minutes.
      expect(runs.slice(1).map((t, i) => (t - runs[i]!) / 60_000)).toEqual([1, 2, 4, 8]);
      expect(fake.bodies(QUEUE_URL)).toEqual([]);
      expect(deadLetters()).toEqual([
        expect.objectContaining({
          conversation_id: envelope.conversation_id,
          state: 'dead',
          dead_reason: 'runs_failed',
          failed_runs: 5,
          scheduled_attempts: 0,
          last_error: 'redelivery run failed: FAILED: States.TaskFailed: Export failed',
        }),
      ]);
      // The scheduler dead-lettered it itself (SendMessage: 14 days in the dead-letter queue from now), and no message
      // it received was ever received twice: neither waiting nor failing counted towards maxReceiveCount.
      expect(highestReceiveCount()).toBe(1);
    },
  );

  it('a throttled or unreachable Step Functions counts as a failed run too, never as a receive', async () => {
    const envelope = queuedEnvelope(0);
    const throttled = Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' });
    sfnMock.on(StartSyncExecutionCommand).callsFake(() => {
      runs.push(fake.now);
      if (runs.length % 2 === 1) throw throttled;
      return { status: 'TIMED_OUT' };
    });
    await everyMinute(60);
    expect(runs).toHaveLength(5);
    expect(deadLetters()).toEqual([
      expect.objectContaining({
        conversation_id: envelope.conversation_id,
        dead_reason: 'runs_failed',
        failed_runs: 5,
        last_error: 'redelivery run failed: ThrottlingException: Rate exceeded',
      }),
    ]);
    expect(highestReceiveCount()).toBe(1);
    expect(logs.filter((l) => l.level === 'warn').map((l) => l.extra[0]!.error)).toEqual([
      'ThrottlingException: Rate exceeded',
      'TIMED_OUT',
      'ThrottlingException: Rate exceeded',
      'TIMED_OUT',
      'ThrottlingException: Rate exceeded',
    ]);
  });

  it('a run that succeeds in between starts the count again', async () => {
    const envelope = queuedEnvelope(0);
    sfnMock.on(StartSyncExecutionCommand).callsFake((input: { input: string }) => {
      runs.push(fake.now);
      if (runs.length === 4) {
        const { conversation } = JSON.parse(input.input);
        return succeeded(afterAttempt({ ...envelope, conversation }, 'retryable'));
      }
      return { status: 'FAILED', error: 'States.Runtime' };
    });
    await everyMinute(120);
    // 3 failures, the attempt of the first slot (5 s), then 5 failures in a row.
    expect(runs).toHaveLength(9);
    expect(deadLetters()).toEqual([
      expect.objectContaining({ dead_reason: 'runs_failed', failed_runs: 5, scheduled_attempts: 1 }),
    ]);
  });

  it('the whole schedule, the receiver failing at every slot: each slot used once, then exhausted', async () => {
    const envelope = queuedEnvelope(5_000);
    sfnMock.on(StartSyncExecutionCommand).callsFake((input: { input: string }) => {
      runs.push(fake.now);
      const { conversation } = JSON.parse(input.input);
      return succeeded(
        afterAttempt({ ...envelope, conversation, attempts: conversation.execution.delivery_attempts }, 'retryable'),
      );
    });
    const total = DEFAULT_RETRY_SCHEDULE_MS.reduce((a, b) => a + b, 0);
    await everyMinute(Math.ceil(total / 60_000) + 10);
    expect(runs).toHaveLength(DEFAULT_RETRY_SCHEDULE_MS.length);
    expect(deadLetters()).toEqual([
      expect.objectContaining({ state: 'dead', dead_reason: 'exhausted', scheduled_attempts: 7 }),
    ]);
    expect(highestReceiveCount()).toBe(1);
  });

  it.each([
    ['pending without a due time', { next_due_at: null }],
    ['pending with a due time that is no date', { next_due_at: 'soon' }],
    ['in no known state', { state: 'paused' }],
  ])('an envelope %s is never redelivered nor re-sent for good: dead-lettered after 5 receives', async (_, change) => {
    const envelope = { ...pendingEnvelope(), ...change };
    fake.send({ QueueUrl: QUEUE_URL, MessageBody: JSON.stringify(envelope) });
    await everyMinute(60);
    expect(fake.bodies(QUEUE_URL)).toEqual([]);
    expect(fake.bodies(DLQ_URL)).toEqual([JSON.stringify(envelope)]);
    expect(highestReceiveCount()).toBe(5);
    expect(sfnMock.commandCalls(StartSyncExecutionCommand)).toHaveLength(0);
    expect(logs.find((l) => l.level === 'warn')?.extra[0]).toMatchObject({
      reason: expect.stringMatching(/^the envelope (is pending without a due time|has no known state)/),
    });
  });

  it('an unreadable message is still dead-lettered by the redrive policy, after 5 receives', async () => {
    fake.send({ QueueUrl: QUEUE_URL, MessageBody: 'not json {' });
    await everyMinute(60);
    expect(fake.bodies(QUEUE_URL)).toEqual([]);
    expect(fake.bodies(DLQ_URL)).toEqual(['not json {']);
    expect(highestReceiveCount()).toBe(5);
    expect(sfnMock.commandCalls(StartSyncExecutionCommand)).toHaveLength(0);
  });
});

describe('the Lambda handler', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });

  function context(remaining: number): Context {
    return {
      awsRequestId: 'req-1',
      functionName: 'scheduler',
      getRemainingTimeInMillis: () => remaining,
    } as unknown as Context;
  }

  it('reads its queues, state machine and schedule from the environment and uses the Lambda clock', async () => {
    Object.assign(process.env, {
      FAILED_DELIVERY_QUEUE_URL: QUEUE_URL,
      FAILED_DELIVERY_DLQ_URL: DLQ_URL,
      REDELIVERY_STATE_MACHINE_ARN: STATE_MACHINE_ARN,
      REDELIVERY_SCHEDULE: '1s,1s',
    });
    const envelope = pendingEnvelope(undefined, new Date(Date.now() - 60_000), { scheduled_attempts: 1 });
    queueHolds([sqsMessage(envelope)]);
    sfnMock.on(StartSyncExecutionCommand).resolves(succeeded(afterAttempt(envelope, 'retryable')));
    const capture = captureJsonLines();
    try {
      const summary = await handler({ source: 'aws.events' }, context(190_000));
      expect(summary).toMatchObject({ redelivered: 1, dead_lettered: 1 });
    } finally {
      capture.restore();
    }
    expect(sfnMock.commandCalls(StartSyncExecutionCommand)[0]!.args[0].input).toMatchObject({
      stateMachineArn: STATE_MACHINE_ARN,
      name: expect.stringMatching(new RegExp(`^${envelope.conversation_id}-redelivery-2-[0-9a-f]{6}$`)),
    });
    expect(sent()).toEqual([
      {
        url: DLQ_URL,
        delay: undefined,
        envelope: expect.objectContaining({ state: 'dead', dead_reason: 'exhausted' }),
      },
    ]);
    expect(capture.lines.find((l) => l.message === 'Redelivery sweep finished')).toMatchObject({
      level: 'INFO',
      summary: { dead_lettered: 1 },
    });
  });

  it("keeps time for each envelope's claim, attempt-log read and release too: no batch is received with 186 s left", async () => {
    Object.assign(process.env, {
      FAILED_DELIVERY_QUEUE_URL: QUEUE_URL,
      FAILED_DELIVERY_DLQ_URL: DLQ_URL,
      REDELIVERY_STATE_MACHINE_ARN: STATE_MACHINE_ARN,
      DELIVERIES_TABLE_NAME: 'deliveries-table',
    });
    const capture = captureJsonLines();
    try {
      // StartSyncExecution at worst, and five calls of the request limits at worst: the claim's PutItem and the
      // attempt log's Query before it, the queue's send and delete and the claim's DeleteItem after it.
      expect(await handler({}, context(186_000))).toMatchObject({ received: 0, stopped_by_time_budget: true });
    } finally {
      capture.restore();
    }
    expect(sqsMock.commandCalls(ReceiveMessageCommand)).toHaveLength(0);
  });

  it('does not start receiving with less than the reserve left: what one batch can take at worst (187 s)', async () => {
    Object.assign(process.env, {
      FAILED_DELIVERY_QUEUE_URL: QUEUE_URL,
      FAILED_DELIVERY_DLQ_URL: DLQ_URL,
      REDELIVERY_STATE_MACHINE_ARN: STATE_MACHINE_ARN,
    });
    const capture = captureJsonLines();
    try {
      // 130 s would have been enough for the 60 s the redelivery workflow may run, but not for a StartSyncExecution
      // whose answer stalls after its headers (START_SYNC_EXECUTION_WORST_MS) and the queue calls after it.
      expect(await handler({}, context(130_000))).toMatchObject({ received: 0, stopped_by_time_budget: true });
    } finally {
      capture.restore();
    }
    expect(sqsMock.commandCalls(ReceiveMessageCommand)).toHaveLength(0);
  });

  /**
   * The scheduler's stores configured, and the queue holding an asynchronous conversation's envelope due now after 4
   * failed runs in a row: the next failed run is the fifth, and gives its delivery up.
   */
  function givingUp(made: (e: FailedDeliveryEnvelope) => FailedDeliveryEnvelope = (e) => e): FailedDeliveryEnvelope {
    Object.assign(process.env, {
      FAILED_DELIVERY_QUEUE_URL: QUEUE_URL,
      FAILED_DELIVERY_DLQ_URL: DLQ_URL,
      REDELIVERY_STATE_MACHINE_ARN: STATE_MACHINE_ARN,
      DELIVERIES_TABLE_NAME: 'deliveries-table',
      CONVERSATION_EXPORT_S3_BUCKET: 'exports',
      STATUS_TABLE_NAME: 'status-table',
    });
    const base = pendingEnvelope(undefined, new Date(Date.now() - 60_000), { failed_runs: 4 });
    const conversation = { ...base.conversation, metadata: { ...base.conversation.metadata, response_mode: 'async' } };
    const envelope = made({ ...base, conversation } as FailedDeliveryEnvelope);
    queueHolds([sqsMessage(envelope)]);
    s3Mock.on(PutObjectCommand).resolves({});
    // The first run's Export completed the status: it no longer says running.
    dynamoMock
      .on(UpdateItemCommand, { ConditionExpression: '#s = :running' })
      .rejects(Object.assign(new Error('The conditional request failed'), { name: 'ConditionalCheckFailedException' }));
    return envelope;
  }
  /** The conversation.json the scheduler wrote, and its status updates (completing it, then its delivery). */
  const exportedRecord = () =>
    JSON.parse(
      String(
        s3Mock.commandCalls(PutObjectCommand).find((c) => c.args[0].input.Key!.endsWith('/conversation.json'))!.args[0]
          .input.Body,
      ),
    ).conversation;
  const statusUpdates = () => dynamoMock.commandCalls(UpdateItemCommand).map((c) => c.args[0].input);
  const deliveryUpdates = () => statusUpdates().filter((u) => u.UpdateExpression === 'SET #d = :delivery, #du = :at');

  it('a delivery given up after five failed runs in a row: its export and its status say failed, why and when (the run never reached Export)', async () => {
    // Before, only the envelope said so (in the dead-letter queue): the export and GET /conversations/{id} kept saying
    // `retrying` forever.
    const envelope = givingUp();
    sfnMock.on(StartSyncExecutionCommand).resolves({ status: 'FAILED', error: 'States.Runtime', cause: 'boom' });
    dynamoMock.on(QueryCommand).resolves({ Items: [] });
    const capture = captureJsonLines();
    try {
      expect(await handler({}, context(190_000))).toMatchObject({ failed_executions: 1 });
    } finally {
      capture.restore();
    }
    const dead = sent()[0]!;
    expect(dead).toMatchObject({ url: DLQ_URL, envelope: { state: 'dead', dead_reason: 'runs_failed' } });
    const givenUpAt = dead.envelope.updated_at;
    const puts = s3Mock.commandCalls(PutObjectCommand).map((c) => c.args[0].input);
    expect(puts.map((p) => p.Key!.split('/').at(-1)).sort()).toEqual([
      'analysis.json',
      'conversation.json',
      'metadata.json',
      'summary.json',
    ]);
    expect(puts.every((p) => p.Bucket === 'exports')).toBe(true);
    const exported = exportedRecord();
    expect(exported.webhook_context.delivery_status).toBe('failed');
    expect(exported.execution.errors.at(-1)).toMatchObject({
      stage: 'RedeliverySchedule',
      error: 'RedeliveryRunsFailed',
      at: givenUpAt,
    });
    expect(exported.execution.errors.at(-1).message).toContain('FAILED: States.Runtime: boom');
    const update = deliveryUpdates();
    expect(update).toEqual([
      expect.objectContaining({
        TableName: 'status-table',
        Key: { conversation_id: { S: envelope.conversation_id } },
        ExpressionAttributeValues: expect.objectContaining({
          ':delivery': { S: 'failed' },
          ':at': { S: givenUpAt },
        }),
      }),
    ]);
    // Conditional: never over a delivered status, never creating one.
    expect(update[0]!.ConditionExpression).toContain('<> :delivered');
  });

  it('a fifth failed run that delivered before it failed (its Export did): the export and status say delivered, not failed', async () => {
    const envelope = givingUp();
    // Nothing delivered when the run began; its Deliver then delivered, and its Export failed.
    const delivered = afterAttempt(envelope, 'delivered', {
      at: new Date().toISOString(),
    }).execution.delivery_attempts.at(-1);
    let runs = 0;
    dynamoMock.on(QueryCommand).callsFake(() => ({
      Items:
        runs === 0
          ? []
          : [
              {
                pk: { S: `conversation#${envelope.conversation_id}` },
                sk: { S: `attempt#${delivered!.at}#0` },
                entry: {
                  S: JSON.stringify({
                    ...delivered,
                    conversation_id: envelope.conversation_id,
                    delivery_id: envelope.delivery_id,
                    webhook_type: envelope.webhook_type,
                    request: { url: 'https://crm.example/hook', headers: {} },
                    response: { status: 200, headers: {}, body: 'ok', body_truncated: false },
                  }),
                },
              },
            ],
    }));
    sfnMock.on(StartSyncExecutionCommand).callsFake(() => {
      runs += 1;
      return { status: 'FAILED', error: 'States.Timeout' };
    });
    const capture = captureJsonLines();
    try {
      await handler({}, context(190_000));
    } finally {
      capture.restore();
    }
    const exported = exportedRecord();
    // Before: `failed`, beside the delivered attempt the receiver answered 200 to.
    expect(exported.webhook_context.delivery_status).toBe('delivered');
    expect(exported.execution.delivery_attempts.at(-1)).toMatchObject({ outcome: 'delivered' });
    expect(exported.execution.errors.map((e: { error: string }) => e.error)).not.toContain('RedeliveryRunsFailed');
    expect(deliveryUpdates()[0]!.ExpressionAttributeValues).toMatchObject({ ':delivery': { S: 'delivered' } });
  });

  it('an export given up after five failed runs in a row (delivered, then each Export failed): the export and status say delivered', async () => {
    // A delivered record that owes only its export, whose export run now fails for the fifth time in a row.
    const envelope = givingUp((e) => ({ ...e, owed: 'export', conversation: afterAttempt(e, 'delivered') }));
    const delivered = envelope.conversation.execution.delivery_attempts.at(-1)!;
    sfnMock.on(StartSyncExecutionCommand).resolves({ status: 'FAILED', error: 'States.Timeout' });
    dynamoMock.on(QueryCommand).resolves({ Items: [] });
    // S3 still refuses the export: the status is written all the same.
    s3Mock.on(PutObjectCommand).rejects(new Error('AccessDenied'));
    const capture = captureJsonLines();
    try {
      await handler({}, context(190_000));
    } finally {
      capture.restore();
    }
    expect(sent()[0]).toMatchObject({ url: DLQ_URL, envelope: { state: 'dead', dead_reason: 'runs_failed' } });
    const logged = capture.lines.find((l) => String(l.message).startsWith('A delivery given up could not be written'));
    expect(logged).toMatchObject({ level: 'ERROR', conversation_id: envelope.conversation_id });
    expect(logged!.error).toContain('AccessDenied');
    // Before: nothing was written, and the status (and the export) kept saying `retrying` until a redrive.
    expect(deliveryUpdates()[0]!.ExpressionAttributeValues).toMatchObject({
      ':delivery': { S: 'delivered' },
      ':at': { S: delivered.at },
    });

    dynamoMock.resetHistory();
    s3Mock.on(PutObjectCommand).resolves({});
    queueHolds([sqsMessage(givingUp((e) => ({ ...e, owed: 'export', conversation: afterAttempt(e, 'delivered') })))]);
    await handler({}, context(190_000));
    const exported = exportedRecord();
    expect(exported.webhook_context.delivery_status).toBe('delivered');
    expect(exported.execution.delivery_attempts.at(-1)).toMatchObject({ outcome: 'delivered' });
    expect(exported.execution.errors.map((e: { error: string }) => e.error)).not.toContain('RedeliveryRunsFailed');
  });

  it('an export given up whose status still says running (no Export completed it): the status is completed, delivered', async () => {
    // Before, only the delivery was written, on a condition a running status never meets: the poller read `running`
    // (then, 7 minutes after its accept, a workflow failure) for a conversation its receiver had.
    const envelope = givingUp((e) => ({ ...e, owed: 'export', conversation: afterAttempt(e, 'delivered') }));
    const delivered = envelope.conversation.execution.delivery_attempts.at(-1)!;
    dynamoMock.on(UpdateItemCommand, { ConditionExpression: '#s = :running' }).resolves({});
    sfnMock.on(StartSyncExecutionCommand).resolves({ status: 'FAILED', error: 'States.Timeout' });
    dynamoMock.on(QueryCommand).resolves({ Items: [] });
    const capture = captureJsonLines();
    try {
      await handler({}, context(190_000));
    } finally {
      capture.restore();
    }
    const [finish, delivery] = statusUpdates();
    // Conditional: only a status still running, never creating one.
    expect(finish).toMatchObject({
      TableName: 'status-table',
      Key: { conversation_id: { S: envelope.conversation_id } },
      UpdateExpression: 'SET #s = :status, #b = :body, completed_at = :at',
      ConditionExpression: '#s = :running',
      ExpressionAttributeValues: { ':status': { S: 'completed' } },
    });
    const body = JSON.parse(finish!.ExpressionAttributeValues![':body']!.S!);
    expect(body).toMatchObject({
      success: true,
      conversation_id: envelope.conversation_id,
      tracking: { delivery_status: 'delivered' },
    });
    // Then its delivery, as of the attempt that delivered it, on the redelivery's conditions.
    expect(delivery!.ExpressionAttributeValues).toMatchObject({
      ':delivery': { S: 'delivered' },
      ':at': { S: delivered.at },
    });
  });

  /**
   * The scheduler's stores configured, and the queue holding an envelope due now with 1 attempt, while the attempt log
   * has 2: the workflow's second try reached the receiver, then Lambda refused Deliver's next retry (or failed it
   * after it ran), so the envelope never had it.
   */
  function behindTheLog(): { envelope: FailedDeliveryEnvelope; logged: Record<string, unknown>[] } {
    Object.assign(process.env, {
      FAILED_DELIVERY_QUEUE_URL: QUEUE_URL,
      FAILED_DELIVERY_DLQ_URL: DLQ_URL,
      REDELIVERY_STATE_MACHINE_ARN: STATE_MACHINE_ARN,
      DELIVERIES_TABLE_NAME: 'deliveries-table',
    });
    const envelope = pendingEnvelope(undefined, new Date(Date.now() - 60_000));
    expect(envelope.attempts.map((a) => a.attempt)).toEqual([1]);
    const first = envelope.attempts[0]!;
    const second = { ...first, attempt: 2, at: new Date(Date.parse(first.at) + 1_000).toISOString() };
    const logged = [first, second].map((a) => ({
      ...a,
      conversation_id: envelope.conversation_id,
      delivery_id: envelope.delivery_id,
      webhook_type: envelope.webhook_type,
      request: { url: 'https://crm.example.com/hooks/deals', headers: {} },
      response: { status: 503, headers: {}, body: 'busy', body_truncated: false },
    }));
    dynamoMock.on(QueryCommand).callsFake(() => ({
      Items: logged.map((entry) => ({
        pk: { S: `conversation#${entry.conversation_id}` },
        sk: { S: `attempt#${entry.at}#${String(entry.attempt).padStart(6, '0')}` },
        entry: { S: JSON.stringify(entry) },
      })),
    }));
    queueHolds([sqsMessage(envelope)]);
    return { envelope, logged };
  }
  const started = () =>
    sfnMock.commandCalls(StartSyncExecutionCommand).map((c) => ({
      name: c.args[0].input.name!,
      conversation: (JSON.parse(c.args[0].input.input!) as { conversation: ConversationRecord }).conversation,
    }));

  it("an envelope behind the attempt log (Lambda refused Deliver's retry after a try it made): its run is named after the log's last attempt, and its envelope counts every logged try", async () => {
    // Before: named `-redelivery-2-` from the envelope's one attempt, while its Deliver records attempt 3 (numbered after
    // the log's last), and the envelope it left counted 2 attempts where 3 were made.
    const { envelope } = behindTheLog();
    // Deliver numbers the attempt after the log's last (functions/deliver/handler.ts, redeliveryAttemptNumber): 3.
    sfnMock.on(StartSyncExecutionCommand).callsFake(({ input }: { input: string }) => {
      const { conversation } = JSON.parse(input) as { conversation: ConversationRecord };
      const third = { ...conversation.execution.delivery_attempts[0]!, attempt: 3, at: NOW.toISOString() };
      return succeeded(withDeliveryAttempt(conversation, third, null, 'retrying'));
    });
    const capture = captureJsonLines();
    try {
      expect(await handler({}, context(190_000))).toMatchObject({
        redelivered: 1,
        rescheduled: 1,
        failed_executions: 0,
      });
    } finally {
      capture.restore();
    }
    const [run] = started();
    expect(run!.name).toMatch(new RegExp(`^${envelope.conversation_id}-redelivery-3-[0-9a-f]{6}$`));
    // The workflow's record carries the logged tries, short (the log keeps what the receiver answered).
    expect(run!.conversation.execution.delivery_attempts.map((a) => a.attempt)).toEqual([1, 2]);
    expect(run!.conversation.execution.delivery_attempts[1]).not.toHaveProperty('response');
    const [back] = sent();
    expect(back!.envelope.attempts.map((a) => a.attempt)).toEqual([1, 2, 3]);
    // One read of the log for the envelope, as before (whether a copy delivered it meanwhile is the same read).
    expect(dynamoMock.commandCalls(QueryCommand)).toHaveLength(1);
  });

  it('a run whose Deliver Lambda would not run counts as refused, not as a failed execution; its envelope keeps the logged tries', async () => {
    // Before: counted in failed_executions, which the RedeliveryExecutionsFailed alarm (Step Functions' failed and
    // timed-out executions) never sees: the execution SUCCEEDED.
    const { envelope } = behindTheLog();
    sfnMock.on(StartSyncExecutionCommand).callsFake(({ input, name }: { input: string; name: string }) => {
      const { conversation, redelivery } = JSON.parse(input);
      const delivery_error = { Error: 'Lambda.TooManyRequestsException', Cause: 'Rate Exceeded.' };
      return succeeded(closeConversation({ conversation, redelivery, delivery_error }, name, NOW).record);
    });
    const capture = captureJsonLines();
    try {
      expect(await handler({}, context(190_000))).toMatchObject({
        redelivered: 1,
        refused_runs: 1,
        failed_executions: 0,
      });
    } finally {
      capture.restore();
    }
    expect(capture.lines.find((l) => l.message === 'Redelivery sweep finished')).toMatchObject({
      summary: { refused_runs: 1, failed_executions: 0 },
    });
    expect(started()[0]!.name).toMatch(new RegExp(`^${envelope.conversation_id}-redelivery-3-`));
    const [back] = sent();
    expect(back!.envelope).toMatchObject({ state: 'pending', failed_runs: 1 });
    expect(back!.envelope.attempts.map((a) => a.attempt)).toEqual([1, 2]);
  });

  it('an attempt log that cannot be read: the run is named from the envelope, as before, with a warning', async () => {
    behindTheLog();
    dynamoMock.on(QueryCommand).rejects(Object.assign(new Error('denied'), { name: 'AccessDeniedException' }));
    sfnMock.on(StartSyncExecutionCommand).callsFake(({ input }: { input: string }) => {
      const { conversation } = JSON.parse(input) as { conversation: ConversationRecord };
      const next = { ...conversation.execution.delivery_attempts[0]!, attempt: 3, at: NOW.toISOString() };
      return succeeded(withDeliveryAttempt(conversation, next, null, 'retrying'));
    });
    const capture = captureJsonLines();
    try {
      expect(await handler({}, context(190_000))).toMatchObject({ redelivered: 1, rescheduled: 1 });
    } finally {
      capture.restore();
    }
    expect(started()[0]!.name).toContain('-redelivery-2-');
    expect(started()[0]!.conversation.execution.delivery_attempts.map((a) => a.attempt)).toEqual([1]);
    expect(capture.lines.find((l) => l.level === 'WARN' && l.message.startsWith('Could not read'))).toMatchObject({
      message: 'Could not read whether the conversation was delivered meanwhile; redelivered',
      error: 'AccessDeniedException: denied',
    });
  });

  it('fails loudly without its configuration', async () => {
    delete process.env.FAILED_DELIVERY_QUEUE_URL;
    await expect(handler({}, context(190_000))).rejects.toThrow('FAILED_DELIVERY_QUEUE_URL is not set');
  });
});
