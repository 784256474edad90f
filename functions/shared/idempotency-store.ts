/**
 * The idempotency store: one port, two adapters chosen by configuration.
 * - IDEMPOTENCY_TABLE_NAME: DynamoDB, a conditional write claims a key (AWS);
 * - IDEMPOTENCY_DIR: one file per key, created exclusively (`wx`) (local);
 * - neither: idempotency is off.
 */
import { randomBytes } from 'node:crypto';
import { link, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { expiresAt, type IdempotencyRecord, IN_PROGRESS_TTL_SECONDS, isExpired } from '../domain/idempotency.ts';
import { tracer } from './powertools.ts';
import { settings } from './settings.ts';

export type ClaimResult = { claimed: true } | { claimed: false; existing: IdempotencyRecord };

export interface IdempotencyStore {
  /**
   * `fingerprint`: what the request asks (requestFingerprint), kept so a reuse for another request is told apart;
   * `responseMode`: `async` when the request asked for `Prefer: respond-async`.
   */
  claim(
    pk: string,
    conversationId: string,
    now: Date,
    fingerprint?: string,
    responseMode?: 'async',
  ): Promise<ClaimResult>;
  complete(pk: string, response: unknown, now: Date): Promise<void>;
  release(pk: string): Promise<void>;
  /**
   * Free a key only while it is still in progress (a completed one keeps its answer). After a restart of the local
   * gateway no execution of the old process runs any more, so its in-progress claims are freed at once instead of
   * lapsing after IN_PROGRESS_TTL_SECONDS. Returns whether a claim was freed.
   */
  releaseInProgress(pk: string): Promise<boolean>;
}

const ttl = () => settings().idempotencyTtlSeconds;

/** The DynamoDB SDK is loaded on first use only: a stage without a key never pays its import (measured in bench/). */
const dynamo = async () => {
  const sdk = await import('@aws-sdk/client-dynamodb');
  DynamoIdempotencyStore.client ??= tracer.captureAWSv3Client(new sdk.DynamoDBClient({}));
  return { sdk, db: DynamoIdempotencyStore.client };
};

class DynamoIdempotencyStore implements IdempotencyStore {
  static client: DynamoDBClient | null = null;
  constructor(private readonly table: string) {}

  async claim(
    pk: string,
    conversationId: string,
    now: Date,
    fingerprint?: string,
    responseMode?: 'async',
  ): Promise<ClaimResult> {
    const { sdk, db } = await dynamo();
    const nowS = Math.floor(now.getTime() / 1000);
    try {
      await db.send(
        new sdk.PutItemCommand({
          TableName: this.table,
          Item: {
            pk: { S: pk },
            status: { S: 'in_progress' },
            conversation_id: { S: conversationId },
            created_at: { S: now.toISOString() },
            expires_at: { N: String(expiresAt(now, IN_PROGRESS_TTL_SECONDS)) },
            ...(fingerprint ? { request_fingerprint: { S: fingerprint } } : {}),
            ...(responseMode ? { response_mode: { S: responseMode } } : {}),
          },
          ConditionExpression: 'attribute_not_exists(pk) OR expires_at <= :now',
          ExpressionAttributeValues: { ':now': { N: String(nowS) } },
        }),
      );
      return { claimed: true };
    } catch (error) {
      if ((error as Error).name !== 'ConditionalCheckFailedException') throw error;
    }
    const out = await db.send(
      new sdk.GetItemCommand({ TableName: this.table, Key: { pk: { S: pk } }, ConsistentRead: true }),
    );
    const item = out.Item ?? {};
    return {
      claimed: false,
      existing: {
        pk,
        status: item.status?.S === 'completed' ? 'completed' : 'in_progress',
        conversation_id: item.conversation_id?.S ?? '',
        ...(item.request_fingerprint?.S ? { request_fingerprint: item.request_fingerprint.S } : {}),
        ...(item.response_mode?.S === 'async' ? { response_mode: 'async' as const } : {}),
        response: item.response?.S,
        created_at: item.created_at?.S ?? '',
        expires_at: Number(item.expires_at?.N ?? 0),
      },
    };
  }

  async complete(pk: string, response: unknown, now: Date): Promise<void> {
    const { sdk, db } = await dynamo();
    await db.send(
      new sdk.UpdateItemCommand({
        TableName: this.table,
        Key: { pk: { S: pk } },
        UpdateExpression: 'SET #s = :completed, #r = :response, expires_at = :expires',
        ExpressionAttributeNames: { '#s': 'status', '#r': 'response' },
        ExpressionAttributeValues: {
          ':completed': { S: 'completed' },
          ':response': { S: JSON.stringify(response) },
          ':expires': { N: String(expiresAt(now, ttl())) },
        },
      }),
    );
  }

  async release(pk: string): Promise<void> {
    const { sdk, db } = await dynamo();
    await db.send(new sdk.DeleteItemCommand({ TableName: this.table, Key: { pk: { S: pk } } }));
  }

  async releaseInProgress(pk: string): Promise<boolean> {
    const { sdk, db } = await dynamo();
    try {
      await db.send(
        new sdk.DeleteItemCommand({
          TableName: this.table,
          Key: { pk: { S: pk } },
          ConditionExpression: '#s = :in_progress',
          ExpressionAttributeNames: { '#s': 'status' },
          ExpressionAttributeValues: { ':in_progress': { S: 'in_progress' } },
        }),
      );
      return true;
    } catch (error) {
      if ((error as Error).name === 'ConditionalCheckFailedException') return false;
      throw error;
    }
  }
}

class FileIdempotencyStore implements IdempotencyStore {
  constructor(private readonly dir: string) {}

  private file(pk: string): string {
    if (!/^[0-9a-f]{64}$/.test(pk)) throw new Error('bad idempotency key hash');
    return path.join(this.dir, `${pk}.json`);
  }

  private async read(pk: string): Promise<IdempotencyRecord | null> {
    try {
      return JSON.parse(await readFile(this.file(pk), 'utf8')) as IdempotencyRecord;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' || error instanceof SyntaxError) return null;
      throw error;
    }
  }

  /**
   * A record appears whole or not at all (written aside, then linked into place for a claim, renamed over the old
   * one for a change): a reader never meets it half-written — which it would take for a lapsed claim and free — not
   * while it is being written, nor after a crash in the middle of the write.
   */
  private async write(record: IdempotencyRecord, exclusive: boolean): Promise<boolean> {
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const file = this.file(record.pk);
    const aside = `${file}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await writeFile(aside, JSON.stringify(record), { mode: 0o600 }); // it keeps the answer
      await (exclusive ? link(aside, file) : rename(aside, file));
      return true;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw error;
    } finally {
      await rm(aside, { force: true });
    }
  }

  async claim(
    pk: string,
    conversationId: string,
    now: Date,
    fingerprint?: string,
    responseMode?: 'async',
  ): Promise<ClaimResult> {
    const record: IdempotencyRecord = {
      pk,
      status: 'in_progress',
      conversation_id: conversationId,
      ...(fingerprint ? { request_fingerprint: fingerprint } : {}),
      ...(responseMode ? { response_mode: responseMode } : {}),
      created_at: now.toISOString(),
      expires_at: expiresAt(now, IN_PROGRESS_TTL_SECONDS),
    };
    for (let tries = 0; tries < 3; tries++) {
      if (await this.write(record, true)) return { claimed: true };
      const existing = await this.read(pk);
      if (existing && !isExpired(existing, now)) return { claimed: false, existing };
      await rm(this.file(pk), { force: true }); // expired (or half-written): free it and claim again
    }
    throw new Error('could not claim the idempotency key');
  }

  async complete(pk: string, response: unknown, now: Date): Promise<void> {
    const existing = await this.read(pk);
    if (!existing) return;
    await this.write(
      { ...existing, status: 'completed', response: JSON.stringify(response), expires_at: expiresAt(now, ttl()) },
      false,
    );
  }

  async release(pk: string): Promise<void> {
    await rm(this.file(pk), { force: true });
  }

  async releaseInProgress(pk: string): Promise<boolean> {
    const existing = await this.read(pk);
    if (existing?.status !== 'in_progress') return false;
    await this.release(pk);
    return true;
  }
}

export function idempotencyStore(): IdempotencyStore | null {
  const { idempotencyTableName, idempotencyDir } = settings();
  if (idempotencyTableName) return new DynamoIdempotencyStore(idempotencyTableName);
  if (idempotencyDir) return new FileIdempotencyStore(idempotencyDir);
  return null;
}
