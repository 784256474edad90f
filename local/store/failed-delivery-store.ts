import path from 'node:path';
import { isConversationId } from '../../functions/domain/conversation-id.ts';
import { envelopeFromMessage, type FailedDeliveryEnvelope } from '../../functions/domain/failed-delivery.ts';
import { settings } from '../../functions/shared/settings.ts';
import { listDir, readJson, writeJsonAtomic } from './json-files.ts';

/**
 * The failed-delivery store's local adapter: one JSON file per conversation under `<dataDir>/failed-deliveries/`.
 * Durable across restarts of the gateway. (On AWS the same port is the SQS queue.)
 */
export class LocalFailedDeliveryStore {
  readonly dir: string;

  constructor(dataDir: string) {
    this.dir = path.join(dataDir, 'failed-deliveries');
  }

  private file(conversationId: string): string {
    if (!isConversationId(conversationId)) throw new Error(`not a conversation id: ${conversationId}`);
    return path.join(this.dir, `${conversationId}.json`);
  }

  /** The local stand-in for `sqs:sendMessage` in QueueFailedDelivery and QueueFailedExport: receives the resolved Parameters. */
  async sendMessage(parameters: { QueueUrl?: string; MessageBody?: unknown }): Promise<{ MessageId: string }> {
    const body =
      typeof parameters.MessageBody === 'string' ? JSON.parse(parameters.MessageBody) : parameters.MessageBody;
    const envelope = envelopeFromMessage(body, new Date(), settings().redeliverySchedule);
    if (!envelope)
      throw new Error('sqs:sendMessage: the message body is neither a failed delivery nor a failed export');
    await this.put(envelope);
    return { MessageId: envelope.delivery_id };
  }

  async put(envelope: FailedDeliveryEnvelope): Promise<void> {
    await writeJsonAtomic(this.file(envelope.conversation_id), envelope);
  }

  async get(conversationId: string): Promise<FailedDeliveryEnvelope | null> {
    return readJson<FailedDeliveryEnvelope>(this.file(conversationId));
  }

  async list(): Promise<FailedDeliveryEnvelope[]> {
    const names = (await listDir(this.dir)).filter((n) => n.endsWith('.json'));
    const envelopes = await Promise.all(names.map((n) => readJson<FailedDeliveryEnvelope>(path.join(this.dir, n))));
    return envelopes
      .filter((e): e is FailedDeliveryEnvelope => e !== null)
      .sort((a, b) => a.created_at.localeCompare(b.created_at));
  }
}
