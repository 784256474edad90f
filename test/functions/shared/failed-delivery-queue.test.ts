import {
  ChangeMessageVisibilityBatchCommand,
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  type QueuedEnvelope,
  REDELIVERY_VISIBILITY_SECONDS,
  SqsFailedDeliveryQueue,
} from '../../../functions/shared/failed-delivery-queue.ts';
import {
  DLQ_URL,
  deadEnvelope,
  pendingEnvelope,
  QUEUE_URL,
  sqsMessage,
  T0,
  workflowMessage,
} from '../../support/aws-fixtures.ts';

/** The failed-delivery store's SQS adapter, against aws-sdk-client-mock (no SQS emulator speaks the JSON protocol). */
const sqsMock = mockClient(SQSClient);
let queue: SqsFailedDeliveryQueue;

beforeEach(() => {
  sqsMock.reset();
  sqsMock.on(SendMessageCommand).resolves({ MessageId: 'new' });
  queue = new SqsFailedDeliveryQueue(new SQSClient({}), QUEUE_URL, DLQ_URL);
});

async function receiveOne(body: unknown, options: Parameters<typeof sqsMessage>[1] = {}): Promise<QueuedEnvelope> {
  sqsMock.on(ReceiveMessageCommand).resolvesOnce({ Messages: [sqsMessage(body, options)] });
  const batch = await queue.receive({}, new Date(T0.getTime() + 60_000));
  expect(batch.envelopes).toHaveLength(1);
  return batch.envelopes[0]!;
}

const later = (ms: number) => new Date(T0.getTime() + ms);

describe('receive', () => {
  it('asks for a batch, invisible for one redelivery, with the receive count and the send time', async () => {
    sqsMock.on(ReceiveMessageCommand).resolves({});
    const batch = await queue.receive();
    expect(batch).toEqual({ envelopes: [], unreadable: [], count: 0 });
    expect(sqsMock.commandCalls(ReceiveMessageCommand)[0]!.args[0].input).toEqual({
      QueueUrl: QUEUE_URL,
      MaxNumberOfMessages: 10,
      WaitTimeSeconds: 1,
      VisibilityTimeout: REDELIVERY_VISIBILITY_SECONDS,
      MessageSystemAttributeNames: ['ApproximateReceiveCount', 'SentTimestamp'],
    });
  });

  it("converts the workflow's QueueFailedDelivery message into an envelope dated when it was sent", async () => {
    const sentAt = new Date(T0.getTime() - 30_000);
    const item = await receiveOne(workflowMessage(), { sentAt, receiveCount: 2 });
    expect(item).toMatchObject({ converted: true, receiveCount: 2, queueUrl: QUEUE_URL, sentAt });
    expect(item.envelope).toMatchObject({
      version: 1,
      state: 'pending',
      scheduled_attempts: 0,
      webhook_type: 'deal_analysis',
      created_at: sentAt.toISOString(),
    });
    expect(item.envelope.next_due_at).toBe(new Date(sentAt.getTime() + 5_000).toISOString());
    expect(item.envelope.conversation.webhook_context.delivery_status).toBe('retrying');
  });

  it("converts the workflow's QueueFailedExport message into an export-only envelope", async () => {
    const sentAt = new Date(T0.getTime() - 30_000);
    const record = workflowMessage().conversation;
    const item = await receiveOne(
      { kind: 'failed_export', conversation: record, export_error: { Error: 'ExportError', Cause: 'S3 down' } },
      { sentAt },
    );
    expect(item).toMatchObject({ converted: true, sentAt });
    expect(item.envelope).toMatchObject({
      owed: 'export',
      state: 'pending',
      last_error: 'export: ExportError: S3 down',
      conversation: record,
    });
    expect(item.envelope.next_due_at).toBe(new Date(sentAt.getTime() + 5_000).toISOString());
  });

  it('reads a stored envelope as it is', async () => {
    const envelope = pendingEnvelope();
    const item = await receiveOne(envelope);
    expect(item.converted).toBe(false);
    expect(item.envelope).toEqual(envelope);
  });

  it('reports poison messages and leaves them alone (the redrive policy dead-letters them)', async () => {
    sqsMock.on(ReceiveMessageCommand).resolvesOnce({
      Messages: [
        sqsMessage('not json {', { receiveCount: 4 }),
        sqsMessage({ hello: 'world' }),
        sqsMessage(workflowMessage()),
      ],
    });
    const batch = await queue.receive();
    expect(batch.count).toBe(3);
    expect(batch.envelopes).toHaveLength(1);
    expect(batch.unreadable.map((m) => [m.receiveCount, m.reason])).toEqual([
      [4, 'the body is not JSON'],
      [1, expect.stringMatching(/neither a failed-delivery envelope nor/)],
    ]);
    expect(sqsMock.calls()).toHaveLength(1);
  });
});

describe('storing the next state', () => {
  it('re-sends an updated envelope delayed towards its due time (15 min at most), then deletes the old message', async () => {
    const item = await receiveOne(pendingEnvelope());
    const soon = { ...item.envelope, next_due_at: later(300_000).toISOString() };
    await queue.resend(item, soon, T0);
    const far = { ...item.envelope, next_due_at: later(7_200_000).toISOString() };
    await queue.resend(item, far, T0);
    const sends = sqsMock.commandCalls(SendMessageCommand).map((c) => c.args[0].input);
    expect(sends[0]).toEqual({ QueueUrl: QUEUE_URL, MessageBody: JSON.stringify(soon), DelaySeconds: 300 });
    expect(sends[1]).toMatchObject({ QueueUrl: QUEUE_URL, DelaySeconds: 900 });
    expect(sqsMock.commandCalls(DeleteMessageCommand)[0]!.args[0].input).toEqual({
      QueueUrl: QUEUE_URL,
      ReceiptHandle: item.receiptHandle,
    });
    const order = sqsMock.calls().map((c) => c.args[0].constructor.name);
    expect(order.slice(1)).toEqual([
      'SendMessageCommand',
      'DeleteMessageCommand',
      'SendMessageCommand',
      'DeleteMessageCommand',
    ]);
  });

  it('a due envelope is re-sent without a delay', async () => {
    const item = await receiveOne(pendingEnvelope());
    await queue.resend(item, item.envelope, later(10_000));
    expect(sqsMock.commandCalls(SendMessageCommand)[0]!.args[0].input.DelaySeconds).toBeUndefined();
  });

  it('keeps the old message when the send fails: duplicated rather than lost', async () => {
    sqsMock.on(SendMessageCommand).rejects(new Error('throttled'));
    const item = await receiveOne(pendingEnvelope());
    await expect(queue.resend(item, item.envelope, T0)).rejects.toThrow('throttled');
    expect(sqsMock.commandCalls(DeleteMessageCommand)).toHaveLength(0);
  });

  it('a dead envelope moves to the dead-letter queue', async () => {
    const item = await receiveOne(pendingEnvelope());
    const dead = deadEnvelope();
    await queue.deadLetter(item, dead);
    expect(sqsMock.commandCalls(SendMessageCommand)[0]!.args[0].input).toEqual({
      QueueUrl: DLQ_URL,
      MessageBody: JSON.stringify(dead),
    });
    expect(sqsMock.commandCalls(DeleteMessageCommand)[0]!.args[0].input).toEqual({
      QueueUrl: QUEUE_URL,
      ReceiptHandle: item.receiptHandle,
    });
  });

  it('a delivered envelope is deleted', async () => {
    const item = await receiveOne(pendingEnvelope());
    await queue.delete(item);
    expect(sqsMock.commandCalls(DeleteMessageCommand)).toHaveLength(1);
    expect(sqsMock.commandCalls(SendMessageCommand)).toHaveLength(0);
  });
});

describe('waiting for the due time', () => {
  it('an envelope that is not due is re-sent delayed towards its due time, then the received message deleted', async () => {
    const envelope = pendingEnvelope(undefined, T0, { next_due_at: later(600_000).toISOString() });
    const item = await receiveOne(envelope, { receiveCount: 1 });
    expect(await queue.wait(item, later(60_000))).toEqual({ delaySeconds: 540 });
    expect(sqsMock.commandCalls(SendMessageCommand)[0]!.args[0].input).toEqual({
      QueueUrl: QUEUE_URL,
      MessageBody: JSON.stringify(envelope),
      DelaySeconds: 540,
    });
    expect(sqsMock.commandCalls(DeleteMessageCommand)[0]!.args[0].input.ReceiptHandle).toBe(item.receiptHandle);
    // Never hidden again: every receive of one message would count towards the queue's maxReceiveCount.
    expect(sqsMock.commandCalls(ChangeMessageVisibilityCommand)).toHaveLength(0);
    const order = sqsMock.calls().map((c) => c.args[0].constructor.name);
    expect(order.slice(1)).toEqual(['SendMessageCommand', 'DeleteMessageCommand']);
  });

  it('a longer wait is delayed 15 minutes at a time (received again, then re-sent again)', async () => {
    const item = await receiveOne(pendingEnvelope(undefined, T0, { next_due_at: later(20 * 3_600_000).toISOString() }));
    expect(await queue.wait(item, T0)).toEqual({ delaySeconds: 900 });
  });

  it('a receiver held back waits until the time the gate gives', async () => {
    const item = await receiveOne(pendingEnvelope());
    expect(await queue.wait(item, later(10_000), later(70_000))).toEqual({ delaySeconds: 60 });
  });

  it('a converted workflow message is replaced by its envelope, delayed', async () => {
    const item = await receiveOne(workflowMessage(), { sentAt: T0 });
    expect(await queue.wait(item, T0)).toEqual({ delaySeconds: 5 });
    expect(JSON.parse(sqsMock.commandCalls(SendMessageCommand)[0]!.args[0].input.MessageBody!)).toEqual(item.envelope);
    expect(sqsMock.commandCalls(DeleteMessageCommand)).toHaveLength(1);
  });

  it('release makes peeked messages visible again, ten per call', async () => {
    const items = Array.from({ length: 12 }, (_, i) => ({
      queueUrl: DLQ_URL,
      receiptHandle: `rh${i}`,
      messageId: `m${i}`,
    }));
    await queue.release(items);
    const calls = sqsMock.commandCalls(ChangeMessageVisibilityBatchCommand).map((c) => c.args[0].input);
    expect(calls.map((c) => c.Entries!.length)).toEqual([10, 2]);
    expect(calls[1]).toEqual({
      QueueUrl: DLQ_URL,
      Entries: [
        { Id: '10', ReceiptHandle: 'rh10', VisibilityTimeout: 0 },
        { Id: '11', ReceiptHandle: 'rh11', VisibilityTimeout: 0 },
      ],
    });
  });
});
