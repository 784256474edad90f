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
import { DEFAULT_RETRY_SCHEDULE_MS, type FailedDeliveryEnvelope } from '../../../functions/domain/failed-delivery.ts';
import { handler } from '../../../functions/redelivery-scheduler/handler.ts';
import {
  REDELIVERY_VISIBILITY_SECONDS,
  SqsFailedDeliveryQueue,
} from '../../../functions/shared/failed-delivery-queue.ts';
import { runSchedule, type ScheduleOptions } from '../../../functions/shared/redelivery.ts';
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
import { captureJsonLines } from '../../support/log-capture.ts';

/**
 * The scheduled Lambda (EventBridge, every minute): due envelopes are redelivered through the redelivery workflow,
 * the others wait; each outcome is stored back in SQS. Time is injected, never waited for.
 */
const sqsMock = mockClient(SQSClient);
const sfnMock = mockClient(SFNClient);
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
  it('not due yet → hidden until it is, no execution', async () => {
    const envelope = pendingEnvelope(undefined, T0, { next_due_at: new Date(NOW.getTime() + 600_000).toISOString() });
    queueHolds([sqsMessage(envelope)]);
    expect(await run()).toMatchObject({ waiting: 1, redelivered: 0 });
    expect(sfnMock.commandCalls(StartSyncExecutionCommand)).toHaveLength(0);
    expect(sqsMock.commandCalls(ChangeMessageVisibilityCommand)[0]!.args[0].input.VisibilityTimeout).toBe(600);
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

  it('a FAILED or TIMED_OUT execution leaves the message to come back after its visibility timeout', async () => {
    queueHolds([sqsMessage(pendingEnvelope('aaa111')), sqsMessage(pendingEnvelope('bbb222'))]);
    sfnMock
      .on(StartSyncExecutionCommand)
      .resolvesOnce({ status: 'FAILED', error: 'States.TaskFailed', cause: 'Export failed' })
      .resolvesOnce({ status: 'TIMED_OUT' });
    expect(await run()).toMatchObject({ redelivered: 2, failed_executions: 2 });
    expect(sqsMock.calls().filter((c) => !(c.args[0] instanceof ReceiveMessageCommand))).toHaveLength(0);
    expect(logs.filter((l) => l.level === 'warn').map((l) => l.extra[0]!.error)).toEqual([
      'FAILED: States.TaskFailed: Export failed',
      'TIMED_OUT',
    ]);
  });

  it('an SDK error on one message is logged and the others go on', async () => {
    const ok = pendingEnvelope('bbb222');
    queueHolds([sqsMessage(pendingEnvelope('aaa111')), sqsMessage(ok)]);
    sfnMock
      .on(StartSyncExecutionCommand)
      .rejectsOnce(new Error('Rate exceeded'))
      .resolves(succeeded(afterAttempt(ok, 'delivered')));
    expect(await run()).toMatchObject({ errors: 1, delivered: 1 });
    expect(logs.find((l) => l.level === 'error')?.extra[0]).toMatchObject({ error: 'Error: Rate exceeded' });
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
      const summary = await handler({ source: 'aws.events' }, context(170_000));
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

  it('does not start receiving with less than the reserve left', async () => {
    Object.assign(process.env, {
      FAILED_DELIVERY_QUEUE_URL: QUEUE_URL,
      FAILED_DELIVERY_DLQ_URL: DLQ_URL,
      REDELIVERY_STATE_MACHINE_ARN: STATE_MACHINE_ARN,
    });
    const capture = captureJsonLines();
    try {
      expect(await handler({}, context(60_000))).toMatchObject({ received: 0, stopped_by_time_budget: true });
    } finally {
      capture.restore();
    }
    expect(sqsMock.commandCalls(ReceiveMessageCommand)).toHaveLength(0);
  });

  it('fails loudly without its configuration', async () => {
    delete process.env.FAILED_DELIVERY_QUEUE_URL;
    await expect(handler({}, context(170_000))).rejects.toThrow('FAILED_DELIVERY_QUEUE_URL is not set');
  });
});
