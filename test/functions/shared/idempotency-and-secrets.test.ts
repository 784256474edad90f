import {
  ConditionalCheckFailedException,
  DeleteItemCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { idempotencyStore } from '../../../functions/shared/idempotency-store.ts';
import { deliverySecrets, inboundPolicy } from '../../../functions/shared/secrets.ts';

/** The AWS adapters of the idempotency store and the secrets, against mocked DynamoDB and Secrets Manager (never real AWS). */
const dynamo = mockClient(DynamoDBClient);
const secrets = mockClient(SecretsManagerClient);
const NOW = new Date('2025-08-13T10:30:45Z');
const PK = 'a'.repeat(64);

beforeEach(() => {
  dynamo.reset();
  secrets.reset();
  process.env.IDEMPOTENCY_TABLE_NAME = 'idempotency';
  delete process.env.IDEMPOTENCY_DIR;
});
afterEach(() => {
  delete process.env.IDEMPOTENCY_TABLE_NAME;
  delete process.env.INBOUND_WEBHOOK_SECRETS_ARN;
  delete process.env.DELIVERY_SIGNING_SECRETS_ARN;
});

describe('DynamoDB idempotency store (IDEMPOTENCY_TABLE_NAME)', () => {
  it('claims a key for 5 minutes with a conditional write that also takes over an expired one', async () => {
    dynamo.on(PutItemCommand).resolves({});
    expect(await idempotencyStore()!.claim(PK, 'webhook_x', NOW)).toEqual({ claimed: true });
    const input = dynamo.commandCalls(PutItemCommand)[0]!.args[0].input;
    expect(input).toMatchObject({
      TableName: 'idempotency',
      ConditionExpression: 'attribute_not_exists(pk) OR expires_at <= :now',
      ExpressionAttributeValues: { ':now': { N: String(NOW.getTime() / 1000) } },
      Item: {
        pk: { S: PK },
        status: { S: 'in_progress' },
        conversation_id: { S: 'webhook_x' },
        expires_at: { N: String(NOW.getTime() / 1000 + 300) },
      },
    });
  });

  it('a taken key returns the first conversation, read consistently', async () => {
    dynamo.on(PutItemCommand).rejects(new ConditionalCheckFailedException({ message: 'taken', $metadata: {} }));
    dynamo.on(GetItemCommand).resolves({
      Item: {
        pk: { S: PK },
        status: { S: 'completed' },
        conversation_id: { S: 'webhook_first' },
        response: { S: '{"success":true}' },
        created_at: { S: NOW.toISOString() },
        expires_at: { N: '1' },
      },
    });
    const result = await idempotencyStore()!.claim(PK, 'webhook_second', NOW);
    expect(result).toEqual({
      claimed: false,
      existing: expect.objectContaining({
        status: 'completed',
        conversation_id: 'webhook_first',
        response: '{"success":true}',
      }),
    });
    expect(dynamo.commandCalls(GetItemCommand)[0]!.args[0].input).toMatchObject({
      ConsistentRead: true,
      Key: { pk: { S: PK } },
    });
  });

  it("keeps the request's fingerprint with the claim and reads it back", async () => {
    dynamo.on(PutItemCommand).resolves({});
    await idempotencyStore()!.claim(PK, 'webhook_x', NOW, 'f'.repeat(64));
    expect(dynamo.commandCalls(PutItemCommand)[0]!.args[0].input.Item).toMatchObject({
      request_fingerprint: { S: 'f'.repeat(64) },
    });
    dynamo.reset();
    dynamo.on(PutItemCommand).rejects(new ConditionalCheckFailedException({ message: 'taken', $metadata: {} }));
    dynamo.on(GetItemCommand).resolves({
      Item: {
        pk: { S: PK },
        status: { S: 'in_progress' },
        conversation_id: { S: 'webhook_x' },
        request_fingerprint: { S: 'f'.repeat(64) },
        expires_at: { N: '1' },
      },
    });
    expect(await idempotencyStore()!.claim(PK, 'webhook_y', NOW, 'e'.repeat(64))).toMatchObject({
      claimed: false,
      existing: { request_fingerprint: 'f'.repeat(64) },
    });
  });

  it('any other DynamoDB error is not mistaken for a duplicate', async () => {
    dynamo
      .on(PutItemCommand)
      .rejects(Object.assign(new Error('throttled'), { name: 'ProvisionedThroughputExceededException' }));
    await expect(idempotencyStore()!.claim(PK, 'webhook_x', NOW)).rejects.toThrow('throttled');
    expect(dynamo.commandCalls(GetItemCommand)).toHaveLength(0);
  });

  it('completes with the response for the full 24 h, and releases by deleting the key', async () => {
    dynamo.on(UpdateItemCommand).resolves({});
    dynamo.on(DeleteItemCommand).resolves({});
    await idempotencyStore()!.complete(PK, { success: true, conversation_id: 'webhook_x' }, NOW);
    expect(dynamo.commandCalls(UpdateItemCommand)[0]!.args[0].input).toMatchObject({
      Key: { pk: { S: PK } },
      ExpressionAttributeValues: {
        ':completed': { S: 'completed' },
        ':response': { S: '{"success":true,"conversation_id":"webhook_x"}' },
        ':expires': { N: String(NOW.getTime() / 1000 + 86_400) },
      },
    });
    await idempotencyStore()!.release(PK);
    expect(dynamo.commandCalls(DeleteItemCommand)[0]!.args[0].input).toEqual({
      TableName: 'idempotency',
      Key: { pk: { S: PK } },
    });
  });

  it('releaseInProgress deletes only an in-progress claim (a condition on status), never a completed answer', async () => {
    dynamo
      .on(DeleteItemCommand)
      .resolvesOnce({})
      .rejectsOnce(new ConditionalCheckFailedException({ message: 'completed', $metadata: {} }));
    expect(await idempotencyStore()!.releaseInProgress(PK)).toBe(true);
    expect(await idempotencyStore()!.releaseInProgress(PK)).toBe(false);
    expect(dynamo.commandCalls(DeleteItemCommand)[0]!.args[0].input).toMatchObject({
      Key: { pk: { S: PK } },
      ConditionExpression: '#s = :in_progress',
      ExpressionAttributeValues: { ':in_progress': { S: 'in_progress' } },
    });
  });

  it('neither IDEMPOTENCY_TABLE_NAME nor IDEMPOTENCY_DIR: idempotency is off', () => {
    delete process.env.IDEMPOTENCY_TABLE_NAME;
    expect(idempotencyStore()).toBeNull();
  });
});

describe('signing secrets from Secrets Manager (…_ARN)', () => {
  const CURRENT = `whsec_${Buffer.from('c'.repeat(32)).toString('base64')}`;
  const NEXT = `whsec_${Buffer.from('n'.repeat(32)).toString('base64')}`;

  it('reads the inbound secrets once and caches them', async () => {
    process.env.INBOUND_WEBHOOK_SECRETS_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:inbound';
    secrets.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify({ testing_system: [CURRENT] }) });
    expect((await inboundPolicy()).secrets).toEqual({ testing_system: [CURRENT] });
    expect((await inboundPolicy()).secrets).toEqual({ testing_system: [CURRENT] });
    expect(secrets.commandCalls(GetSecretValueCommand)).toHaveLength(1);
    expect(secrets.commandCalls(GetSecretValueCommand)[0]!.args[0].input).toEqual({
      SecretId: process.env.INBOUND_WEBHOOK_SECRETS_ARN,
    });
  });

  it('the delivery secrets of a type (two during a rotation), or none; a malformed secret is an error naming it', async () => {
    process.env.DELIVERY_SIGNING_SECRETS_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:delivery';
    secrets
      .on(GetSecretValueCommand)
      .resolves({ SecretString: JSON.stringify({ deal_analysis: CURRENT, data_analysis: [NEXT, CURRENT] }) });
    expect(await deliverySecrets('deal_analysis')).toEqual([CURRENT]);
    expect(await deliverySecrets('data_analysis')).toEqual([NEXT, CURRENT]);
    expect(await deliverySecrets('general')).toEqual([]);
    process.env.DELIVERY_SIGNING_SECRETS_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:broken';
    secrets
      .on(GetSecretValueCommand, { SecretId: process.env.DELIVERY_SIGNING_SECRETS_ARN })
      .resolves({ SecretString: '{"general": "plain"}' });
    await expect(deliverySecrets('general')).rejects.toThrow(
      /DELIVERY_SIGNING_SECRETS\.general\[0\]: secrets must be "whsec_"/,
    );
  });
});

describe('file idempotency store (IDEMPOTENCY_DIR, local)', () => {
  it('an in-progress key that never completes lapses after 5 minutes; a completed one holds for 24 h', async () => {
    const { mkdtemp, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(`${tmpdir()}/idempotency-`);
    delete process.env.IDEMPOTENCY_TABLE_NAME;
    process.env.IDEMPOTENCY_DIR = dir;
    try {
      const store = idempotencyStore()!;
      expect(await store.claim(PK, 'webhook_first', NOW)).toEqual({ claimed: true });
      expect(await store.claim(PK, 'webhook_second', new Date(NOW.getTime() + 299_000))).toMatchObject({
        claimed: false,
        existing: { status: 'in_progress' },
      });
      expect(await store.claim(PK, 'webhook_third', new Date(NOW.getTime() + 301_000))).toEqual({ claimed: true });
      await store.complete(PK, { success: true }, new Date(NOW.getTime() + 302_000));
      const later = new Date(NOW.getTime() + 302_000 + 86_000_000);
      expect(await store.claim(PK, 'webhook_fourth', later)).toMatchObject({
        claimed: false,
        existing: { status: 'completed', conversation_id: 'webhook_third' },
      });
      // After a restart: a completed key keeps its answer, an in-progress one is freed at once.
      expect(await store.releaseInProgress(PK)).toBe(false);
      expect(await store.claim(PK, 'webhook_fourth', later)).toMatchObject({ claimed: false });
      const other = 'b'.repeat(64);
      await store.claim(other, 'webhook_cut_off', NOW);
      expect(await store.releaseInProgress(other)).toBe(true);
      expect(await store.claim(other, 'webhook_retry', NOW)).toEqual({ claimed: true });
    } finally {
      delete process.env.IDEMPOTENCY_DIR;
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('a retry racing the completion of its key never finds it half-written, so never runs the request again', async () => {
    const { mkdtemp, readdir, rm } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const dir = await mkdtemp(`${tmpdir()}/idempotency-`);
    delete process.env.IDEMPOTENCY_TABLE_NAME;
    process.env.IDEMPOTENCY_DIR = dir;
    try {
      const store = idempotencyStore()!;
      const answer = { success: true, response: 'x'.repeat(64 * 1024) }; // a real answer's size: not one write
      const reruns: number[] = [];
      for (let i = 0; i < 100; i++) {
        const pk = i.toString(16).padStart(64, '0');
        expect(await store.claim(pk, 'webhook_first', NOW)).toEqual({ claimed: true });
        const [, retry] = await Promise.all([store.complete(pk, answer, NOW), store.claim(pk, 'webhook_retry', NOW)]);
        if (retry.claimed) reruns.push(i);
      }
      expect(reruns).toEqual([]);
      expect((await readdir(dir)).filter((name) => !/^[0-9a-f]{64}\.json$/.test(name))).toEqual([]); // no temp files left
    } finally {
      delete process.env.IDEMPOTENCY_DIR;
      await rm(dir, { recursive: true, force: true });
    }
  });
});
