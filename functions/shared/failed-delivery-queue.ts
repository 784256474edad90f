/**
 * The failed-delivery store's AWS adapter (the port is functions/shared/redelivery.ts; the local adapter
 * local/store/failed-delivery-store.ts): one SQS message per
 * conversation. The workflow's QueueFailedDelivery state sends `{kind: "failed_delivery", ...}` (QueueFailedExport
 * `{kind: "failed_export", ...}`); the first receive
 * converts it into an envelope, and every later change re-sends the envelope as a new message (Send, then Delete
 * the old one, so a failure in between duplicates rather than loses). A message that is not yet due, or whose
 * redelivery run failed, is replaced the same way by a fresh message delayed towards its due time (DelaySeconds, at
 * most 15 minutes at a time): every receive counts towards the queue's maxReceiveCount, so a readable envelope's
 * message is received once and replaced, and neither waiting nor a failed run ever uses that allowance (the
 * schedule counts failed runs in the envelope: withFailedRun in functions/domain/failed-delivery.ts). Dead envelopes
 * move to the dead-letter queue, delivered ones are deleted. Bodies that are neither, and messages the scheduler
 * could not replace (an SQS error), are left alone: the queue's redrive policy moves them to the dead-letter queue
 * after maxReceiveCount receives (docs/deploy.md, "Failed deliveries on AWS").
 */
import {
  ChangeMessageVisibilityBatchCommand,
  type ChangeMessageVisibilityBatchCommandOutput,
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import {
  DEFAULT_RETRY_SCHEDULE_MS,
  envelopeFromMessage,
  type FailedDeliveryEnvelope,
  readEnvelope,
} from '../domain/failed-delivery.ts';
import { REQUEST_TIMEOUT_MS } from './clients/request-limits.ts';
import type { FailedDeliveryStore, TakenBatch } from './redelivery.ts';

/** SQS's largest DelaySeconds. */
const MAX_DELAY_SECONDS = 900;
/** How long a received message stays invisible: one redelivery execution (its workflow times out at 60 s) and more. */
export const REDELIVERY_VISIBILITY_SECONDS = 120;

export interface QueuedEnvelope {
  envelope: FailedDeliveryEnvelope;
  /** The queue the message was received from. */
  queueUrl: string;
  messageId: string;
  receiptHandle: string;
  receiveCount: number;
  sentAt: Date;
  /** The body was the workflow's QueueFailedDelivery/QueueFailedExport message, converted on this receive: no envelope is stored yet. */
  converted: boolean;
}

export interface UnreadableMessage {
  queueUrl: string;
  messageId: string;
  receiptHandle: string;
  receiveCount: number;
  reason: string;
}

export interface ReceivedBatch {
  envelopes: QueuedEnvelope[];
  unreadable: UnreadableMessage[];
  /** Messages received (both kinds). */
  count: number;
}

export interface ReceiveOptions {
  queueUrl?: string;
  max?: number;
  waitSeconds?: number;
  visibilitySeconds?: number;
}

/** A message body → its envelope (converting the workflow's message, dated when it was sent), or why not. */
function parseMessageBody(
  body: string | undefined,
  sentAt: Date,
  schedule: readonly number[] = DEFAULT_RETRY_SCHEDULE_MS,
): { envelope: FailedDeliveryEnvelope; converted: boolean } | { reason: string } {
  let value: unknown;
  try {
    value = JSON.parse(body ?? '');
  } catch {
    return { reason: 'the body is not JSON' };
  }
  const stored = readEnvelope(value);
  if (stored) {
    const problem = unschedulable(stored);
    return problem ? { reason: `the envelope ${problem}` } : { envelope: stored, converted: false };
  }
  try {
    const envelope = envelopeFromMessage(value, sentAt, schedule);
    if (envelope) return { envelope, converted: true };
  } catch (error) {
    return { reason: `the queued message cannot be read: ${(error as Error).message}` };
  }
  return {
    reason: 'the body is neither a failed-delivery envelope nor a QueueFailedDelivery or QueueFailedExport message',
  };
}

/**
 * Why the schedule could never act on a stored envelope, or null: one that is neither pending, dead nor settled, or
 * pending without a due time, would never be due, and each run would re-send it as a fresh message (receive count 1)
 * for good, never reaching the dead-letter queue nor an alarm. Such a body is unreadable instead: left alone, the
 * redrive policy moves it to the dead-letter queue after maxReceiveCount receives (docs/deploy.md).
 */
function unschedulable(envelope: FailedDeliveryEnvelope): string | null {
  if (!['pending', 'dead', 'settled'].includes(envelope.state)) return `has no known state (${String(envelope.state)})`;
  if (envelope.state === 'pending' && !Number.isFinite(Date.parse(String(envelope.next_due_at))))
    return `is pending without a due time (next_due_at ${JSON.stringify(envelope.next_due_at)})`;
  return null;
}

/** Seconds until the envelope is due (0 when due or not pending). */
function secondsUntilDue(envelope: FailedDeliveryEnvelope, now: Date): number {
  if (envelope.state !== 'pending' || envelope.next_due_at === null) return 0;
  return Math.max(0, Math.ceil((Date.parse(envelope.next_due_at) - now.getTime()) / 1000));
}

/** How a pending envelope waits: a fresh message, delayed this long (then received again, and so on until it is due). */
export interface WaitPlan {
  delaySeconds: number;
}

/**
 * A pending envelope that is not due yet (or whose receiver is held back until `until`) waits in a fresh message,
 * delayed towards that time: hiding the received one again would make waiting count towards maxReceiveCount.
 */
function planWait(envelope: FailedDeliveryEnvelope, now: Date, until?: Date): WaitPlan {
  const wait = until
    ? Math.max(1, Math.ceil((until.getTime() - now.getTime()) / 1000))
    : Math.max(1, secondsUntilDue(envelope, now));
  return { delaySeconds: Math.min(MAX_DELAY_SECONDS, wait) };
}

/** A batch entry's codes for a receipt handle of an earlier receive: the message was received again since, or deleted. */
const staleReceipt = (f: { Code?: string | undefined; Message?: string | undefined }) =>
  f.Code === 'ReceiptHandleIsInvalid' ||
  f.Code === 'MessageNotInflight' ||
  (f.Code === 'InvalidParameterValue' && /receipt ?handle/i.test(f.Message ?? ''));

export class SqsFailedDeliveryQueue implements FailedDeliveryStore<QueuedEnvelope> {
  constructor(
    readonly client: SQSClient,
    readonly queueUrl: string,
    readonly deadLetterQueueUrl: string,
    readonly schedule: readonly number[] = DEFAULT_RETRY_SCHEDULE_MS,
  ) {}

  /** One ReceiveMessage (up to 10), each body parsed; unreadable ones are reported, not touched. */
  async receive(options: ReceiveOptions = {}, now = new Date()): Promise<ReceivedBatch> {
    const queueUrl = options.queueUrl ?? this.queueUrl;
    const waitSeconds = options.waitSeconds ?? 1;
    const result = await this.client.send(
      new ReceiveMessageCommand({
        QueueUrl: queueUrl,
        MaxNumberOfMessages: options.max ?? 10,
        WaitTimeSeconds: waitSeconds,
        VisibilityTimeout: options.visibilitySeconds ?? REDELIVERY_VISIBILITY_SECONDS,
        MessageSystemAttributeNames: ['ApproximateReceiveCount', 'SentTimestamp'],
      }),
      // An empty queue answers only after the wait: it is allowed on top of one call's limit (request-limits.ts). The
      // client's 2 s silence limit still applies while the queue waits: a wait of 2 s or more would be cut.
      { requestTimeout: waitSeconds * 1000 + REQUEST_TIMEOUT_MS },
    );
    const batch: ReceivedBatch = { envelopes: [], unreadable: [], count: 0 };
    for (const message of result.Messages ?? []) {
      if (!message.ReceiptHandle) continue;
      batch.count += 1;
      const read = readMessage(message, queueUrl, now, this.schedule);
      if ('envelope' in read) batch.envelopes.push(read);
      else batch.unreadable.push(read);
    }
    return batch;
  }

  /** The schedule's next batch: received messages stay invisible for `holdSeconds`. */
  async take(options: { holdSeconds: number; now: Date }): Promise<TakenBatch<QueuedEnvelope>> {
    const batch = await this.receive({ visibilitySeconds: options.holdSeconds }, options.now);
    return { items: batch.envelopes, unreadable: batch.unreadable, count: batch.count };
  }

  /** Settled: deleted; dead: to the dead-letter queue; pending: back into the schedule, delayed towards its due time. */
  store(item: QueuedEnvelope, updated: FailedDeliveryEnvelope, now = new Date()): Promise<void> {
    if (updated.state === 'settled') return this.delete(item);
    if (updated.state === 'dead') return this.deadLetter(item, updated);
    return this.resend(item, updated, now);
  }

  /** Left as it is: the message comes back when its visibility timeout ends. */
  async leave(_item: QueuedEnvelope): Promise<void> {}

  /** Replace the message with one holding `envelope` in `targetUrl` (Send first, then Delete). */
  async replace(
    item: QueuedEnvelope,
    envelope: FailedDeliveryEnvelope,
    targetUrl: string,
    delaySeconds = 0,
  ): Promise<void> {
    await this.client.send(
      new SendMessageCommand({
        QueueUrl: targetUrl,
        MessageBody: JSON.stringify(envelope),
        ...(delaySeconds > 0 ? { DelaySeconds: Math.min(MAX_DELAY_SECONDS, delaySeconds) } : {}),
      }),
    );
    await this.delete(item);
  }

  /** Back into the schedule: a fresh message, delayed towards its due time (at most 15 min; the rest is waited out on receive). */
  resend(item: QueuedEnvelope, envelope: FailedDeliveryEnvelope, now = new Date()): Promise<void> {
    return this.replace(item, envelope, this.queueUrl, Math.min(MAX_DELAY_SECONDS, secondsUntilDue(envelope, now)));
  }

  /** A pending envelope that is not due yet: re-sent, delayed towards its due time (see planWait). */
  async wait(item: QueuedEnvelope, now = new Date(), until?: Date): Promise<WaitPlan> {
    const plan = planWait(item.envelope, now, until);
    await this.replace(item, item.envelope, this.queueUrl, plan.delaySeconds);
    return plan;
  }

  /** No more automatic attempts: to the dead-letter queue. */
  deadLetter(item: QueuedEnvelope, envelope: FailedDeliveryEnvelope): Promise<void> {
    return this.replace(item, envelope, this.deadLetterQueueUrl);
  }

  async delete(item: Pick<QueuedEnvelope, 'queueUrl' | 'receiptHandle'>): Promise<void> {
    await this.client.send(new DeleteMessageCommand({ QueueUrl: item.queueUrl, ReceiptHandle: item.receiptHandle }));
  }

  async hold(item: Pick<QueuedEnvelope, 'queueUrl' | 'receiptHandle'>, seconds: number): Promise<void> {
    await this.client.send(
      new ChangeMessageVisibilityCommand({
        QueueUrl: item.queueUrl,
        ReceiptHandle: item.receiptHandle,
        VisibilityTimeout: seconds,
      }),
    );
  }

  /** Make received messages visible again at once (after a peek), or only after `visibilitySeconds` from now. */
  async release(
    items: Pick<QueuedEnvelope, 'queueUrl' | 'receiptHandle' | 'messageId'>[],
    visibilitySeconds = 0,
  ): Promise<void> {
    const byQueue = new Map<string, typeof items>();
    for (const item of items) byQueue.set(item.queueUrl, [...(byQueue.get(item.queueUrl) ?? []), item]);
    const failed: { Code?: string | undefined; Message?: string | undefined }[] = [];
    /** Messages of the batches SQS answered (changed, or listed in `Failed`). */
    let answered = 0;
    for (const [queueUrl, list] of byQueue) {
      for (let i = 0; i < list.length; i += 10) {
        const entries = list.slice(i, i + 10);
        let answer: ChangeMessageVisibilityBatchCommandOutput | undefined;
        try {
          answer = await this.client.send(
            new ChangeMessageVisibilityBatchCommand({
              QueueUrl: queueUrl,
              Entries: entries.map((m, j) => ({
                Id: String(i + j),
                ReceiptHandle: m.receiptHandle,
                VisibilityTimeout: visibilitySeconds,
              })),
            }),
          );
        } catch (error) {
          // Refused part-way (the network, a throttle past the retries): the batches answered before were changed,
          // all but their failed entries; this one and the rest stay hidden.
          if (error && typeof error === 'object')
            Object.assign(error, { stillHidden: failed.length + items.length - answered });
          throw error;
        }
        answered += entries.length;
        // A batch answers 200 with the entries it did not change: those stay hidden. A receipt handle SQS no longer
        // honours is a message received again (or deleted) since, which is not this command's to show.
        failed.push(...(answer?.Failed ?? []).filter((f) => !staleReceipt(f)));
      }
    }
    if (failed.length > 0)
      throw Object.assign(
        new Error(
          `SQS did not make ${failed.length} of ${items.length} message${items.length === 1 ? '' : 's'} visible again (${failed[0]!.Code}: ${failed[0]!.Message ?? 'no reason given'})`,
        ),
        { name: failed[0]!.Code ?? 'Error', stillHidden: failed.length },
      );
  }
}

function readMessage(
  message: Message,
  queueUrl: string,
  now: Date,
  schedule: readonly number[],
): QueuedEnvelope | UnreadableMessage {
  const sent = Number(message.Attributes?.SentTimestamp);
  const sentAt = Number.isFinite(sent) && sent > 0 ? new Date(sent) : now;
  const base = {
    queueUrl,
    messageId: message.MessageId ?? '',
    receiptHandle: message.ReceiptHandle!,
    receiveCount: Number(message.Attributes?.ApproximateReceiveCount ?? 1) || 1,
  };
  const parsed = parseMessageBody(message.Body, sentAt, schedule);
  return 'reason' in parsed ? { ...base, reason: parsed.reason } : { ...base, sentAt, ...parsed };
}
