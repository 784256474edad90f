/**
 * The failed-delivery store's local adapter (the port is functions/shared/redelivery.ts; on AWS it is the SQS
 * queue): one JSON file per conversation under `<dataDir>/failed-deliveries/`, durable across restarts of the
 * gateway. Settled and dead envelopes stay as files (`deliveries list --state all` shows them). A worker (the
 * schedule, a redrive) holds an envelope in memory until it stores it or lets it go; a second worker asking for the
 * same conversation waits for it.
 */
import path from 'node:path';
import { isConversationId } from '../../functions/domain/conversation-id.ts';
import { NamedError } from '../../functions/domain/errors.ts';
import {
  envelopeFromMessage,
  type FailedDeliveryEnvelope,
  readEnvelope,
} from '../../functions/domain/failed-delivery.ts';
import { UnreadableFileError } from '../../functions/shared/local-files.ts';
import type { FailedDeliveryStore, HeldEnvelope, TakenBatch } from '../../functions/shared/redelivery.ts';
import { settings } from '../../functions/shared/settings.ts';
import { listDir, readJson, writeJsonAtomic } from './json-files.ts';

/** The error name Step Functions' sqs:sendMessage integration reports when SQS refuses a message. */
export const SQS_REFUSED = 'SQS.AmazonSQSException';

/** As many envelopes as one SQS receive returns: the schedule redelivers one batch at a time. */
const BATCH = 10;

/**
 * The envelope a file holds, null when there is none; a file that is not one (not JSON, or JSON of another shape) is
 * an UnreadableFileError naming it, never "no envelope": the delivery it held may still be owed.
 */
async function envelopeIn(file: string): Promise<FailedDeliveryEnvelope | null> {
  const value = await readJson(file);
  if (value === null) return null;
  const envelope = readEnvelope(value);
  if (envelope === null)
    throw new UnreadableFileError(file, 'no version 1, conversation_id and conversation', 'a failed-delivery envelope');
  return envelope;
}

export class LocalFailedDeliveryStore implements FailedDeliveryStore {
  readonly dir: string;
  /** Conversation id → resolves when its holder lets it go. */
  private readonly holds = new Map<string, { released: Promise<void>; release: () => void }>();

  constructor(dataDir: string) {
    this.dir = path.join(dataDir, 'failed-deliveries');
  }

  get schedule(): readonly number[] {
    return settings().redeliverySchedule;
  }

  private file(conversationId: string): string {
    if (!isConversationId(conversationId)) throw new Error(`not a conversation id: ${conversationId}`);
    return path.join(this.dir, `${conversationId}.json`);
  }

  /** The local stand-in for `sqs:sendMessage` in QueueFailedDelivery and QueueFailedExport: receives the resolved Parameters. */
  async sendMessage(parameters: { QueueUrl?: string; MessageBody?: unknown }): Promise<{ MessageId: string }> {
    const body =
      typeof parameters.MessageBody === 'string' ? JSON.parse(parameters.MessageBody) : parameters.MessageBody;
    const envelope = envelopeFromMessage(body, new Date(), this.schedule);
    if (!envelope)
      throw new Error('sqs:sendMessage: the message body is neither a failed delivery nor a failed export');
    try {
      await this.put(envelope);
    } catch (error) {
      // Fail as the SQS integration does when the queue refuses a message, so the workflow's Retry and Catch treat
      // a full or unwritable disk exactly as they treat SQS being down on AWS.
      throw new NamedError(
        SQS_REFUSED,
        `the local failed-delivery store (${this.dir}) could not store the message: ${(error as Error).message}`,
      );
    }
    return { MessageId: envelope.delivery_id };
  }

  async put(envelope: FailedDeliveryEnvelope): Promise<void> {
    await writeJsonAtomic(this.file(envelope.conversation_id), envelope);
  }

  async get(conversationId: string): Promise<FailedDeliveryEnvelope | null> {
    return envelopeIn(this.file(conversationId));
  }

  /**
   * Every envelope, oldest first. A damaged file (not JSON, or JSON that is not an envelope: cut short by a crash or
   * a full disk, edited by hand) is left out: one damaged file must not stop the schedule, the lists or a redrive of
   * the others. `unreadable()` names those files.
   */
  async list(): Promise<FailedDeliveryEnvelope[]> {
    return (await this.scan()).envelopes;
  }

  /** The damaged files of this store, each with why: `deliveries list` names them. */
  async unreadable(): Promise<{ file: string; reason: string }[]> {
    return (await this.scan()).unreadable;
  }

  private async scan(): Promise<{
    envelopes: FailedDeliveryEnvelope[];
    unreadable: { file: string; reason: string }[];
  }> {
    const names = (await listDir(this.dir)).filter((n) => n.endsWith('.json')).sort();
    const unreadable: { file: string; reason: string }[] = [];
    const read = await Promise.all(
      names.map(async (n) => {
        const file = path.join(this.dir, n);
        try {
          return await envelopeIn(file);
        } catch (error) {
          if (!(error instanceof SyntaxError)) throw error;
          unreadable.push({ file, reason: error.message });
          return null;
        }
      }),
    );
    const envelopes = read
      .filter((e): e is FailedDeliveryEnvelope => e !== null)
      .sort((a, b) => a.created_at.localeCompare(b.created_at));
    return { envelopes, unreadable };
  }

  private claim(conversationId: string): void {
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.holds.set(conversationId, { released, release });
  }

  private release(conversationId: string): void {
    this.holds.get(conversationId)?.release();
    this.holds.delete(conversationId);
  }

  /** Hold one conversation's envelope (waiting while another worker holds it), or null when there is none. */
  async hold(conversationId: string): Promise<HeldEnvelope | null> {
    while (this.holds.has(conversationId)) await this.holds.get(conversationId)!.released;
    this.claim(conversationId);
    try {
      const envelope = await this.get(conversationId);
      if (envelope) return { envelope };
    } catch (error) {
      this.release(conversationId);
      throw error;
    }
    this.release(conversationId);
    return null;
  }

  /** Pending envelopes no one holds and this run has not seen yet, oldest first. */
  async take(options: { seen: ReadonlySet<string> }): Promise<TakenBatch<HeldEnvelope>> {
    const pending = (await this.list()).filter(
      (e) => e.state === 'pending' && !options.seen.has(e.conversation_id) && !this.holds.has(e.conversation_id),
    );
    const items = pending.slice(0, BATCH).map((envelope) => {
      this.claim(envelope.conversation_id);
      return { envelope };
    });
    return { items, unreadable: [], count: items.length };
  }

  async store(item: HeldEnvelope, updated: FailedDeliveryEnvelope): Promise<void> {
    try {
      await this.put(updated);
    } finally {
      this.release(item.envelope.conversation_id);
    }
  }

  async wait(item: HeldEnvelope): Promise<void> {
    this.release(item.envelope.conversation_id);
  }

  async leave(item: HeldEnvelope): Promise<void> {
    this.release(item.envelope.conversation_id);
  }
}
