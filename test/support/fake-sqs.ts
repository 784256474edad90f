import {
  ChangeMessageVisibilityBatchCommand,
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageCommand,
  type SQSClient,
} from '@aws-sdk/client-sqs';
import type { AwsClientStub } from 'aws-sdk-client-mock';

interface StoredMessage {
  id: string;
  body: string;
  /** The enqueue time; kept when the redrive policy moves the message to the dead-letter queue. */
  sentAt: number;
  visibleAt: number;
  receiveCount: number;
  /** The receipt handle of the latest receive (older ones no longer act on the message). */
  receiptHandle: string | null;
}

interface FakeQueue {
  messages: StoredMessage[];
  redrive?: { deadLetterUrl: string; maxReceiveCount: number };
}

/**
 * A standard SQS queue pair in memory, on a clock the test moves (never the wall clock), wired into an
 * aws-sdk-client-mock stub: SendMessage (DelaySeconds), ReceiveMessage (VisibilityTimeout, ApproximateReceiveCount,
 * SentTimestamp), DeleteMessage and ChangeMessageVisibility by the latest receipt handle, and the redrive policy:
 * every receive counts, and a message received maxReceiveCount times is moved to the dead-letter queue (keeping its
 * enqueue time) instead of being received again.
 */
export class FakeSqs {
  now: number;
  private readonly queues = new Map<string, FakeQueue>();
  private sequence = 0;
  /** The highest ApproximateReceiveCount any receive returned, per message id. */
  readonly highestReceiveCount = new Map<string, number>();

  constructor(start: Date) {
    this.now = start.getTime();
  }

  addQueue(url: string, redrive?: FakeQueue['redrive']): void {
    this.queues.set(url, { messages: [], ...(redrive ? { redrive } : {}) });
  }

  /** What a queue holds, visible or not. */
  bodies(url: string): string[] {
    return this.queue(url).messages.map((m) => m.body);
  }

  /** Route the stub's SQS commands to this fake. */
  wire(stub: AwsClientStub<SQSClient>): void {
    stub.on(SendMessageCommand).callsFake((input) => this.send(input));
    stub.on(ReceiveMessageCommand).callsFake((input) => this.receive(input));
    stub.on(DeleteMessageCommand).callsFake((input) => this.delete(input));
    stub.on(ChangeMessageVisibilityCommand).callsFake((input) => this.changeVisibility(input));
    stub.on(ChangeMessageVisibilityBatchCommand).callsFake((input) => {
      for (const entry of input.Entries ?? [])
        this.changeVisibility({ QueueUrl: input.QueueUrl, ...entry } as Parameters<FakeSqs['changeVisibility']>[0]);
      return { Successful: (input.Entries ?? []).map((e: { Id: string }) => ({ Id: e.Id })), Failed: [] };
    });
  }

  private queue(url: string): FakeQueue {
    const queue = this.queues.get(url);
    if (!queue) throw Object.assign(new Error(`no queue ${url}`), { name: 'QueueDoesNotExist' });
    return queue;
  }

  send(input: { QueueUrl?: string; MessageBody?: string; DelaySeconds?: number }) {
    this.sequence += 1;
    const id = `m${this.sequence}`;
    this.queue(input.QueueUrl!).messages.push({
      id,
      body: input.MessageBody ?? '',
      sentAt: this.now,
      visibleAt: this.now + (input.DelaySeconds ?? 0) * 1000,
      receiveCount: 0,
      receiptHandle: null,
    });
    return { MessageId: id };
  }

  receive(input: { QueueUrl?: string; MaxNumberOfMessages?: number; VisibilityTimeout?: number }) {
    const queue = this.queue(input.QueueUrl!);
    const out: Message[] = [];
    for (const m of [...queue.messages]) {
      if (out.length >= (input.MaxNumberOfMessages ?? 1)) break;
      if (m.visibleAt > this.now) continue;
      if (queue.redrive && m.receiveCount >= queue.redrive.maxReceiveCount) {
        queue.messages.splice(queue.messages.indexOf(m), 1);
        this.queue(queue.redrive.deadLetterUrl).messages.push({
          ...m,
          visibleAt: this.now,
          receiveCount: 0,
          receiptHandle: null,
        });
        continue;
      }
      this.sequence += 1;
      m.receiveCount += 1;
      m.receiptHandle = `rh-${m.id}-${this.sequence}`;
      m.visibleAt = this.now + (input.VisibilityTimeout ?? 30) * 1000;
      this.highestReceiveCount.set(m.id, Math.max(this.highestReceiveCount.get(m.id) ?? 0, m.receiveCount));
      out.push({
        MessageId: m.id,
        ReceiptHandle: m.receiptHandle,
        Body: m.body,
        Attributes: { ApproximateReceiveCount: String(m.receiveCount), SentTimestamp: String(m.sentAt) },
      });
    }
    return out.length > 0 ? { Messages: out } : {};
  }

  delete(input: { QueueUrl?: string; ReceiptHandle?: string }) {
    const queue = this.queue(input.QueueUrl!);
    const index = queue.messages.findIndex((m) => m.receiptHandle === input.ReceiptHandle);
    if (index >= 0) queue.messages.splice(index, 1);
    return {};
  }

  changeVisibility(input: { QueueUrl?: string; ReceiptHandle?: string; VisibilityTimeout?: number }) {
    const m = this.queue(input.QueueUrl!).messages.find((x) => x.receiptHandle === input.ReceiptHandle);
    if (!m || m.visibleAt <= this.now)
      throw Object.assign(new Error('the message is not in flight'), { name: 'MessageNotInflight' });
    m.visibleAt = this.now + (input.VisibilityTimeout ?? 0) * 1000;
    return {};
  }
}
