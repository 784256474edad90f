import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { expiresAt, type IdempotencyRecord, IN_PROGRESS_TTL_SECONDS } from '../../functions/domain/idempotency.ts';
import { dynamoTables } from './dynamodb-tables.ts';

/**
 * The idempotency store's two adapters as a handler meets them, with the status store beside each (an asynchronous
 * start writes one): DynamoDB on a mocked client holding fake tables, or files in a temporary folder. `seed` puts an
 * in-progress claim in place as the store writes one (without going through it); `key(pk)` reads what the store
 * holds for a key, as its record's fields.
 */
export interface StoreWorld {
  seed(pk: string, claim: { conversation_id: string; request_id: string }, now: Date): Promise<void>;
  key(pk: string): Promise<Pick<IdempotencyRecord, 'status' | 'conversation_id' | 'response'> | null>;
  close(): Promise<void>;
}

const dynamo = mockClient(DynamoDBClient);

export const IDEMPOTENCY_ADAPTERS: Record<'dynamodb' | 'files', () => Promise<StoreWorld>> = {
  async dynamodb() {
    dynamo.reset();
    const tables = dynamoTables(dynamo, { idempotency: 'pk', statuses: 'conversation_id' });
    process.env.IDEMPOTENCY_TABLE_NAME = 'idempotency';
    process.env.STATUS_TABLE_NAME = 'statuses';
    return {
      async seed(pk, claim, now) {
        tables.items('idempotency').set(pk, {
          pk: { S: pk },
          status: { S: 'in_progress' },
          conversation_id: { S: claim.conversation_id },
          request_id: { S: claim.request_id },
          created_at: { S: now.toISOString() },
          expires_at: { N: String(expiresAt(now, IN_PROGRESS_TTL_SECONDS)) },
        });
      },
      async key(pk) {
        const item = tables.items('idempotency').get(pk);
        if (!item) return null;
        return {
          status: item.status!.S as IdempotencyRecord['status'],
          conversation_id: item.conversation_id!.S!,
          response: item.response?.S,
        };
      },
      async close() {
        dynamo.reset();
        delete process.env.IDEMPOTENCY_TABLE_NAME;
        delete process.env.STATUS_TABLE_NAME;
      },
    };
  },
  async files() {
    const dir = await mkdtemp(path.join(tmpdir(), 'idempotency-world-'));
    process.env.IDEMPOTENCY_DIR = path.join(dir, 'idempotency');
    process.env.STATUS_DIR = path.join(dir, 'status');
    return {
      async seed(pk, claim, now) {
        const record: IdempotencyRecord = {
          pk,
          status: 'in_progress',
          ...claim,
          created_at: now.toISOString(),
          expires_at: expiresAt(now, IN_PROGRESS_TTL_SECONDS),
        };
        await mkdir(path.join(dir, 'idempotency'), { recursive: true });
        await writeFile(path.join(dir, 'idempotency', `${pk}.json`), JSON.stringify(record));
      },
      async key(pk) {
        try {
          const { status, conversation_id, response } = JSON.parse(
            await readFile(path.join(dir, 'idempotency', `${pk}.json`), 'utf8'),
          ) as IdempotencyRecord;
          return { status, conversation_id, response };
        } catch (error) {
          if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
          throw error;
        }
      },
      async close() {
        delete process.env.IDEMPOTENCY_DIR;
        delete process.env.STATUS_DIR;
        await rm(dir, { recursive: true, force: true });
      },
    };
  },
};
