import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import type { UpdateItemCommandInput } from '@aws-sdk/client-dynamodb';
import type { DeliveryStatus } from '../domain/conversation.ts';
import { isConversationId } from '../domain/conversation-id.ts';
import type { ConversationStatusRecord, StatusDelivery, StatusOutcome } from '../domain/conversation-status.ts';
import { conditionFailed, dynamoDb } from './clients/dynamodb.ts';
import { readJsonFile, UnreadableFileError, writeFileAtomic } from './local-files.ts';
import { settings } from './settings.ts';

/**
 * The status store of asynchronous conversations (functions/domain/conversation-status.ts): one port, two adapters
 * chosen by configuration.
 * - STATUS_TABLE_NAME: DynamoDB, one item per conversation (`conversation_id`), TTL on `expires_at` (AWS);
 * - STATUS_DIR: one JSON file per conversation (local);
 * - neither: no asynchronous conversations (an accept refuses to start without a store).
 */
export interface ConversationStatusStore {
  /** The conversation was accepted: its record says `running`. */
  accept(record: ConversationStatusRecord, signal?: AbortSignal): Promise<void>;
  /**
   * The conversation ended: record how, once. Only a `running` record changes (a redelivery re-exporting the
   * conversation leaves the first answer as it was); returns whether it did.
   */
  finish(conversationId: string, outcome: StatusOutcome, signal?: AbortSignal): Promise<boolean>;
  /**
   * A redelivery re-exported the conversation: a `completed` record, not expired, now shows its delivery status
   * (never over `delivered`, never an older report over a newer: deliveryMayChange). A record that does not exist
   * (a synchronous conversation, an expired status) is not created; returns whether it changed.
   */
  redelivered(conversationId: string, delivery: StatusDelivery, now: Date, signal?: AbortSignal): Promise<boolean>;
  get(conversationId: string): Promise<ConversationStatusRecord | null>;
}

class DynamoStatusStore implements ConversationStatusStore {
  constructor(private readonly table: string) {}

  async accept(record: ConversationStatusRecord, signal?: AbortSignal): Promise<void> {
    const { sdk, db } = await dynamoDb();
    await db.send(
      new sdk.PutItemCommand({
        TableName: this.table,
        Item: {
          conversation_id: { S: record.conversation_id },
          source_system: { S: record.source_system },
          status: { S: record.status },
          accepted_at: { S: record.accepted_at },
          expires_at: { N: String(record.expires_at) },
        },
      }),
      { abortSignal: signal },
    );
  }

  finish(conversationId: string, outcome: StatusOutcome, signal?: AbortSignal): Promise<boolean> {
    return this.updateIf(conversationId, signal, {
      UpdateExpression: 'SET #s = :status, #b = :body, completed_at = :at',
      ConditionExpression: '#s = :running',
      ExpressionAttributeNames: { '#s': 'status', '#b': 'body' },
      ExpressionAttributeValues: {
        ':status': { S: outcome.status },
        ':body': { S: outcome.body },
        ':at': { S: outcome.completed_at },
        ':running': { S: 'running' },
      },
    });
  }

  redelivered(conversationId: string, delivery: StatusDelivery, now: Date, signal?: AbortSignal): Promise<boolean> {
    return this.updateIf(conversationId, signal, {
      UpdateExpression: 'SET #d = :delivery, #du = :at',
      // deliveryMayChange, and a completed unexpired record: the write never creates an item.
      ConditionExpression:
        '#s = :completed AND expires_at > :now AND (attribute_not_exists(#d) OR #d <> :delivered) AND (attribute_not_exists(#du) OR #du <= :at)',
      ExpressionAttributeNames: { '#s': 'status', '#d': 'delivery_status', '#du': 'delivery_updated_at' },
      ExpressionAttributeValues: {
        ':delivery': { S: delivery.delivery_status },
        ':at': { S: delivery.at },
        ':completed': { S: 'completed' },
        ':delivered': { S: 'delivered' },
        ':now': { N: String(Math.floor(now.getTime() / 1000)) },
      },
    });
  }

  /** One conditional UpdateItem of the conversation's record: whether its condition held (and it was written). */
  private async updateIf(
    conversationId: string,
    signal: AbortSignal | undefined,
    update: Pick<
      UpdateItemCommandInput,
      'UpdateExpression' | 'ConditionExpression' | 'ExpressionAttributeNames' | 'ExpressionAttributeValues'
    >,
  ): Promise<boolean> {
    const { sdk, db } = await dynamoDb();
    try {
      await db.send(
        new sdk.UpdateItemCommand({
          TableName: this.table,
          Key: { conversation_id: { S: conversationId } },
          ...update,
        }),
        { abortSignal: signal },
      );
      return true;
    } catch (error) {
      if (conditionFailed(error)) return false;
      throw error;
    }
  }

  async get(conversationId: string): Promise<ConversationStatusRecord | null> {
    const { sdk, db } = await dynamoDb();
    const out = await db.send(
      new sdk.GetItemCommand({
        TableName: this.table,
        Key: { conversation_id: { S: conversationId } },
        ConsistentRead: true,
      }),
    );
    const item = out.Item;
    if (!item) return null;
    const status = item.status?.S;
    return {
      conversation_id: conversationId,
      source_system: item.source_system?.S ?? '',
      status: status === 'completed' || status === 'failed' ? status : 'running',
      accepted_at: item.accepted_at?.S ?? '',
      ...(item.completed_at?.S ? { completed_at: item.completed_at.S } : {}),
      ...(item.body?.S ? { body: item.body.S } : {}),
      ...(item.delivery_status?.S
        ? {
            delivery_status: item.delivery_status.S as DeliveryStatus,
            delivery_updated_at: item.delivery_updated_at?.S ?? '',
          }
        : {}),
      expires_at: Number(item.expires_at?.N ?? 0),
    };
  }
}

/**
 * Whether a redelivery's report may replace the delivery the status shows: a delivered conversation stays
 * delivered, and a report older than the one kept (a late or concurrent run) changes nothing. The DynamoDB adapter
 * says the same in its condition.
 */
function deliveryMayChange(shown: ConversationStatusRecord, next: StatusDelivery): boolean {
  return shown.delivery_status !== 'delivered' && (shown.delivery_updated_at ?? '') <= next.at;
}

/**
 * Why a stored value is not a status record (what the local store finds in a damaged file: JSON of another shape),
 * or null when it is one. Here, not in domain/conversation-status.ts: that module checks signatures, and Export, which
 * writes statuses, is built without Standard Webhooks (test/infra/functions.test.ts).
 */
function notStatusRecord(value: unknown): string | null {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return 'not an object';
  const r = value as Partial<Record<keyof ConversationStatusRecord, unknown>>;
  if (typeof r.conversation_id !== 'string' || typeof r.source_system !== 'string') return 'no conversation or source';
  if (r.status !== 'running' && r.status !== 'completed' && r.status !== 'failed') return 'no status';
  if (typeof r.accepted_at !== 'string') return 'no accepted_at';
  if (r.status !== 'running' && typeof r.body !== 'string') return `${r.status} without its body`;
  return null;
}

export class FileStatusStore implements ConversationStatusStore {
  constructor(private readonly dir: string) {}

  private file(conversationId: string): string {
    if (!isConversationId(conversationId)) throw new Error(`not a conversation id: ${conversationId}`);
    return path.join(this.dir, `${conversationId}.json`);
  }

  private async write(record: ConversationStatusRecord): Promise<void> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    await writeFileAtomic(this.file(record.conversation_id), JSON.stringify(record), 0o600);
  }

  async accept(record: ConversationStatusRecord): Promise<void> {
    await this.write(record);
  }

  /**
   * A damaged record is left as it is (its source and acceptance are unknown): GET /conversations/{id} goes on
   * saying so until the operator deletes it (docs/operations.md, "After a crash"); the conversation is exported.
   */
  async finish(conversationId: string, outcome: StatusOutcome): Promise<boolean> {
    const record = await this.readable(conversationId);
    if (record?.status !== 'running') return false;
    await this.write({ ...record, ...outcome });
    return true;
  }

  /** A damaged record changes no more (finish). */
  async redelivered(conversationId: string, delivery: StatusDelivery, now: Date): Promise<boolean> {
    const record = await this.readable(conversationId);
    if (record?.status !== 'completed' || record.expires_at <= Math.floor(now.getTime() / 1000)) return false;
    if (!deliveryMayChange(record, delivery)) return false;
    await this.write({ ...record, delivery_status: delivery.delivery_status, delivery_updated_at: delivery.at });
    return true;
  }

  /**
   * Local crash recovery started the run again at `now` (local/engine/recovery.ts): a running record says so
   * (restarted_at), so that its status reads running while the run goes on, however long the gateway was down. A
   * record that is not running (or damaged) is left as it is.
   */
  async restarted(conversationId: string, now: Date): Promise<boolean> {
    const record = await this.readable(conversationId);
    if (record?.status !== 'running') return false;
    await this.write({ ...record, restarted_at: now.toISOString() });
    return true;
  }

  private async readable(conversationId: string): Promise<ConversationStatusRecord | null> {
    return this.get(conversationId).catch((error: unknown) => {
      if (error instanceof UnreadableFileError) return null;
      throw error;
    });
  }

  /** A file that is not a status record (cut short, edited by hand) is an UnreadableFileError, never "unknown". */
  async get(conversationId: string): Promise<ConversationStatusRecord | null> {
    const file = this.file(conversationId);
    const value = await readJsonFile<unknown>(file);
    if (value === null) return null;
    const wrong = notStatusRecord(value);
    if (wrong !== null) throw new UnreadableFileError(file, wrong, 'a conversation status record');
    return value as ConversationStatusRecord;
  }

  /**
   * The conversations whose record's id starts with `prefix` (local recovery looks for the record of a request cut
   * before its accept answered, whose id it does not know: local/engine/recovery.ts).
   */
  async idsStartingWith(prefix: string): Promise<string[]> {
    const names = await readdir(this.dir).catch((error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') return [];
      throw error;
    });
    return names
      .filter((n) => n.startsWith(prefix) && n.endsWith('.json'))
      .map((n) => n.slice(0, -'.json'.length))
      .filter(isConversationId)
      .sort();
  }

  /** Forget a record (local recovery: a conversation that was never accepted; its caller never got the id). */
  async remove(conversationId: string): Promise<void> {
    await rm(this.file(conversationId), { force: true });
  }
}

/** The local adapter when the statuses are files (STATUS_DIR, no STATUS_TABLE_NAME), for recovery; else null. */
export function localStatusStore(): FileStatusStore | null {
  const { statusTableName, statusDir } = settings();
  return !statusTableName && statusDir ? new FileStatusStore(statusDir) : null;
}

export function conversationStatusStore(): ConversationStatusStore | null {
  const { statusTableName, statusDir } = settings();
  if (statusTableName) return new DynamoStatusStore(statusTableName);
  if (statusDir) return new FileStatusStore(statusDir);
  return null;
}
