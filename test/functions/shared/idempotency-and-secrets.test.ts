import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  type AttributeValue,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { secretsFingerprint } from '../../../functions/domain/secrets-fingerprint.ts';
import { type Claim, idempotencyStore } from '../../../functions/shared/idempotency-store.ts';
import { UnreadableFileError } from '../../../functions/shared/local-files.ts';
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

/** A claim of request `requestId` for `conversationId`. */
const claimOf = (conversationId: string, requestId = 'req-1', extra: Partial<Claim> = {}): Claim => ({
  conversationId,
  requestId,
  ...extra,
});
const taken = (Item?: Record<string, AttributeValue>) =>
  new ConditionalCheckFailedException({
    message: 'The conditional request failed',
    $metadata: {},
    ...(Item ? { Item } : {}),
  });
const CLAIMED = {
  pk: { S: PK },
  status: { S: 'in_progress' },
  conversation_id: { S: 'webhook_first' },
  request_id: { S: 'req-1' },
  created_at: { S: NOW.toISOString() },
  expires_at: { N: String(NOW.getTime() / 1000 + 420) },
};

describe('DynamoDB idempotency store (IDEMPOTENCY_TABLE_NAME)', () => {
  it('claims a key for 7 minutes, with the request that claims it, by a conditional write that also takes over an expired one', async () => {
    dynamo.on(PutItemCommand).resolves({});
    expect(await idempotencyStore()!.claim(PK, claimOf('webhook_x'), NOW)).toEqual({
      claimed: true,
      conversation_id: 'webhook_x',
    });
    const input = dynamo.commandCalls(PutItemCommand)[0]!.args[0].input;
    expect(input).toMatchObject({
      TableName: 'idempotency',
      ConditionExpression: 'attribute_not_exists(pk) OR expires_at <= :now',
      ExpressionAttributeValues: { ':now': { N: String(NOW.getTime() / 1000) } },
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      Item: {
        pk: { S: PK },
        status: { S: 'in_progress' },
        conversation_id: { S: 'webhook_x' },
        request_id: { S: 'req-1' },
        expires_at: { N: String(NOW.getTime() / 1000 + 420) },
      },
    });
  });

  it('a key another request holds: its claim as the failed write returned it, with no second read', async () => {
    dynamo
      .on(PutItemCommand)
      .rejects(taken({ ...CLAIMED, status: { S: 'completed' }, response: { S: '{"success":true}' } }));
    const result = await idempotencyStore()!.claim(PK, claimOf('webhook_second', 'req-2'), NOW);
    expect(result).toEqual({
      claimed: false,
      existing: expect.objectContaining({
        status: 'completed',
        conversation_id: 'webhook_first',
        request_id: 'req-1',
        response: '{"success":true}',
      }),
    });
    expect(dynamo.commandCalls(PutItemCommand)).toHaveLength(1);
    expect(dynamo.commandCalls(GetItemCommand)).toHaveLength(0);
  });

  it('an attempt of the same request meets its own claim: the same claim, under the conversation id first chosen', async () => {
    // The workflow's Retry of Validate, or the SDK's retry of a PutItem that had been written.
    dynamo.on(PutItemCommand).rejects(taken(CLAIMED));
    expect(await idempotencyStore()!.claim(PK, claimOf('webhook_retry', 'req-1'), NOW)).toEqual({
      claimed: true,
      conversation_id: 'webhook_first',
    });
    expect(await idempotencyStore()!.claim(PK, claimOf('webhook_other', 'req-2'), NOW)).toMatchObject({
      claimed: false,
      existing: { conversation_id: 'webhook_first', status: 'in_progress' },
    });
    // Its answer kept: the same request id is then a request answered, not a claim to go on with.
    dynamo.on(PutItemCommand).rejects(taken({ ...CLAIMED, status: { S: 'completed' }, response: { S: '{}' } }));
    expect(await idempotencyStore()!.claim(PK, claimOf('webhook_retry', 'req-1'), NOW)).toMatchObject({
      claimed: false,
      existing: { status: 'completed' },
    });
  });

  it('a failed condition that returns no item (the key freed meanwhile) is claimed again once, never answered with an empty claim', async () => {
    dynamo.on(PutItemCommand).rejectsOnce(taken()).resolves({});
    expect(await idempotencyStore()!.claim(PK, claimOf('webhook_x'), NOW)).toEqual({
      claimed: true,
      conversation_id: 'webhook_x',
    });
    expect(dynamo.commandCalls(PutItemCommand)).toHaveLength(2);
    dynamo.reset();
    dynamo.on(PutItemCommand).rejects(taken());
    await expect(idempotencyStore()!.claim(PK, claimOf('webhook_x'), NOW)).rejects.toThrow(
      'could not claim the idempotency key',
    );
    expect(dynamo.commandCalls(PutItemCommand)).toHaveLength(2);
  });

  it("keeps the request's fingerprint and response mode with the claim and reads them back", async () => {
    dynamo.on(PutItemCommand).resolves({});
    await idempotencyStore()!.claim(
      PK,
      claimOf('webhook_x', 'req-1', { fingerprint: 'f'.repeat(64), responseMode: 'async' }),
      NOW,
    );
    expect(dynamo.commandCalls(PutItemCommand)[0]!.args[0].input.Item).toMatchObject({
      request_fingerprint: { S: 'f'.repeat(64) },
      response_mode: { S: 'async' },
    });
    dynamo.reset();
    dynamo
      .on(PutItemCommand)
      .rejects(taken({ ...CLAIMED, request_fingerprint: { S: 'f'.repeat(64) }, response_mode: { S: 'async' } }));
    expect(
      await idempotencyStore()!.claim(PK, claimOf('webhook_y', 'req-2', { fingerprint: 'e'.repeat(64) }), NOW),
    ).toMatchObject({
      claimed: false,
      existing: { request_fingerprint: 'f'.repeat(64), response_mode: 'async' },
    });
  });

  it('any other DynamoDB error is not mistaken for a duplicate', async () => {
    dynamo
      .on(PutItemCommand)
      .rejects(Object.assign(new Error('throttled'), { name: 'ProvisionedThroughputExceededException' }));
    await expect(idempotencyStore()!.claim(PK, claimOf('webhook_x'), NOW)).rejects.toThrow('throttled');
    expect(dynamo.commandCalls(PutItemCommand)).toHaveLength(1);
  });

  it('completes its own claim with the response for the full 24 h, and releases it by deleting the key', async () => {
    dynamo.on(UpdateItemCommand).resolves({});
    dynamo.on(DeleteItemCommand).resolves({});
    const answer = { success: true, conversation_id: 'webhook_x' };
    expect(await idempotencyStore()!.complete(PK, 'webhook_x', answer, NOW)).toEqual({ settled: true });
    expect(dynamo.commandCalls(UpdateItemCommand)[0]!.args[0].input).toMatchObject({
      Key: { pk: { S: PK } },
      // Once: never over the answer already kept (a second run of the conversation).
      ConditionExpression: 'conversation_id = :cid AND #s = :in_progress',
      ExpressionAttributeValues: {
        ':completed': { S: 'completed' },
        ':in_progress': { S: 'in_progress' },
        ':response': { S: '{"success":true,"conversation_id":"webhook_x"}' },
        ':expires': { N: String(NOW.getTime() / 1000 + 86_400) },
        ':cid': { S: 'webhook_x' },
      },
    });
    expect(await idempotencyStore()!.release(PK, 'webhook_x')).toEqual({ settled: true });
    expect(dynamo.commandCalls(DeleteItemCommand)[0]!.args[0].input).toMatchObject({
      TableName: 'idempotency',
      Key: { pk: { S: PK } },
      ConditionExpression: 'attribute_not_exists(pk) OR conversation_id = :cid',
      ExpressionAttributeValues: { ':cid': { S: 'webhook_x' } },
    });
  });

  it("a key that is no longer the conversation's claim is neither completed nor freed: the store says whose it is", async () => {
    const other = { ...CLAIMED, conversation_id: { S: 'webhook_other' }, request_id: { S: 'req-2' } };
    dynamo.on(UpdateItemCommand).rejects(taken(other));
    dynamo.on(DeleteItemCommand).rejects(taken(other));
    expect(await idempotencyStore()!.complete(PK, 'webhook_x', { success: true }, NOW)).toEqual({
      settled: false,
      heldBy: 'webhook_other',
    });
    expect(await idempotencyStore()!.release(PK, 'webhook_x')).toEqual({ settled: false, heldBy: 'webhook_other' });
    // Gone (expired and deleted by TTL): not written back without its claim.
    dynamo.on(UpdateItemCommand).rejects(taken());
    expect(await idempotencyStore()!.complete(PK, 'webhook_x', { success: true }, NOW)).toEqual({
      settled: false,
      heldBy: null,
    });
    dynamo.on(UpdateItemCommand).rejects(Object.assign(new Error('throttled'), { name: 'ThrottlingException' }));
    await expect(idempotencyStore()!.complete(PK, 'webhook_x', { success: true }, NOW)).rejects.toThrow('throttled');
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
    dynamo.on(DeleteItemCommand).resolves({});
    await idempotencyStore()!.releaseInProgress(PK, 'req-1@2025-08-13T10:30:45.000Z');
    expect(dynamo.commandCalls(DeleteItemCommand)[2]!.args[0].input).toMatchObject({
      ConditionExpression: '#s = :in_progress AND request_id = :request',
      ExpressionAttributeValues: {
        ':in_progress': { S: 'in_progress' },
        ':request': { S: 'req-1@2025-08-13T10:30:45.000Z' },
      },
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

describe('delivery secrets named by the receiver (endpoints set --secret --aws leaves their fingerprint on it)', () => {
  const CURRENT = `whsec_${Buffer.from('c'.repeat(32)).toString('base64')}`;
  const NEXT = `whsec_${Buffer.from('n'.repeat(32)).toString('base64')}`;
  afterEach(() => vi.useRealTimers());

  it('cached secrets of another fingerprint are read again at once; once they match, the cache holds as before', async () => {
    process.env.DELIVERY_SIGNING_SECRETS_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:rotated';
    secrets
      .on(GetSecretValueCommand)
      .resolvesOnce({ SecretString: JSON.stringify({ deal_analysis: CURRENT }) })
      .resolves({ SecretString: JSON.stringify({ deal_analysis: [NEXT, CURRENT] }) });
    expect(await deliverySecrets('deal_analysis')).toEqual([CURRENT]);
    const rotated = secretsFingerprint([NEXT, CURRENT]);
    expect(await deliverySecrets('deal_analysis', undefined, rotated)).toEqual([NEXT, CURRENT]);
    expect(await deliverySecrets('deal_analysis', undefined, rotated)).toEqual([NEXT, CURRENT]);
    expect(secrets.commandCalls(GetSecretValueCommand)).toHaveLength(2);
  });

  it('a fingerprint the secret never matches (changed by hand) is read again 1, 2, 4 … s apart, not per delivery', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(NOW);
    process.env.DELIVERY_SIGNING_SECRETS_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:by-hand';
    secrets.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify({ deal_analysis: CURRENT }) });
    const stale = secretsFingerprint([NEXT, CURRENT]);
    const reads = () => secrets.commandCalls(GetSecretValueCommand).length;
    expect(await deliverySecrets('deal_analysis', undefined, stale)).toEqual([CURRENT]);
    expect(reads()).toBe(2); // the first read, and once again for the fingerprint
    for (let i = 0; i < 5; i++) await deliverySecrets('deal_analysis', undefined, stale);
    expect(reads()).toBe(2);
    vi.setSystemTime(NOW.getTime() + 1_000);
    await deliverySecrets('deal_analysis', undefined, stale);
    expect(reads()).toBe(3);
    vi.setSystemTime(NOW.getTime() + 2_500);
    await deliverySecrets('deal_analysis', undefined, stale);
    expect(reads()).toBe(3); // the next one 2 s after the last
    vi.setSystemTime(NOW.getTime() + 3_000);
    await deliverySecrets('deal_analysis', undefined, stale);
    expect(reads()).toBe(4);
  });

  it('secrets from configuration (locally) are never read again for a fingerprint', async () => {
    delete process.env.DELIVERY_SIGNING_SECRETS_ARN;
    process.env.DELIVERY_SIGNING_SECRETS = JSON.stringify({ deal_analysis: CURRENT });
    try {
      expect(await deliverySecrets('deal_analysis', undefined, 'ffffffffffffffff')).toEqual([CURRENT]);
    } finally {
      delete process.env.DELIVERY_SIGNING_SECRETS;
    }
    expect(secrets.commandCalls(GetSecretValueCommand)).toHaveLength(0);
  });
});

describe('file idempotency store (IDEMPOTENCY_DIR, local)', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(`${tmpdir()}/idempotency-`);
    delete process.env.IDEMPOTENCY_TABLE_NAME;
    process.env.IDEMPOTENCY_DIR = dir;
  });
  afterEach(async () => {
    delete process.env.IDEMPOTENCY_DIR;
    await rm(dir, { recursive: true, force: true });
  });
  const at = (seconds: number) => new Date(NOW.getTime() + seconds * 1000);

  it('an in-progress key that never completes lapses after 7 minutes; a completed one holds for 24 h', async () => {
    const store = idempotencyStore()!;
    expect(await store.claim(PK, claimOf('webhook_first', 'req-1'), NOW)).toEqual({
      claimed: true,
      conversation_id: 'webhook_first',
    });
    expect(await store.claim(PK, claimOf('webhook_second', 'req-2'), at(419))).toMatchObject({
      claimed: false,
      existing: { status: 'in_progress' },
    });
    expect(await store.claim(PK, claimOf('webhook_third', 'req-3'), at(421))).toEqual({
      claimed: true,
      conversation_id: 'webhook_third',
    });
    expect(await store.complete(PK, 'webhook_third', { success: true }, at(422))).toEqual({ settled: true });
    const later = at(422 + 86_000);
    expect(await store.claim(PK, claimOf('webhook_fourth', 'req-4'), later)).toMatchObject({
      claimed: false,
      existing: { status: 'completed', conversation_id: 'webhook_third' },
    });
    // After a restart: a completed key keeps its answer, an in-progress one is freed at once.
    expect(await store.releaseInProgress(PK)).toBe(false);
    expect(await store.claim(PK, claimOf('webhook_fourth', 'req-4'), later)).toMatchObject({ claimed: false });
    const other = 'b'.repeat(64);
    await store.claim(other, claimOf('webhook_cut_off', 'req-5'), NOW);
    // Freed for one request only (an execution the data folder cut, in a gateway still running others): not another's.
    expect(await store.releaseInProgress(other, 'req-6')).toBe(false);
    expect(await store.releaseInProgress(other, 'req-5')).toBe(true);
    expect(await store.claim(other, claimOf('webhook_retry', 'req-6'), NOW)).toMatchObject({ claimed: true });
  });

  it.each([
    ['cut short', '{"pk":"aaa","status":"completed","respo'],
    ['JSON of another shape', '[]'],
    ['a completed record without its answer', '{"status":"completed","conversation_id":"webhook_x","expires_at":1e12}'],
  ])(
    'a record file %s is never taken for a free key: a claim is refused naming the file, completing or freeing leaves it',
    async (_what, damaged) => {
      const store = idempotencyStore()!;
      const file = path.join(dir, `${PK}.json`);
      await writeFile(file, damaged);
      const refused = await store.claim(PK, claimOf('webhook_second', 'req-2'), NOW).catch((error: Error) => error);
      expect(refused).toBeInstanceOf(UnreadableFileError);
      expect((refused as UnreadableFileError).file).toBe(file);
      expect(await store.complete(PK, 'webhook_second', { success: true }, NOW)).toEqual({
        settled: false,
        heldBy: null,
      });
      expect(await store.releaseInProgress(PK)).toBe(false);
      expect(await readFile(file, 'utf8')).toBe(damaged);
    },
  );

  it('an attempt of the same request meets its own claim: the same claim, under the conversation id first chosen', async () => {
    const store = idempotencyStore()!;
    await store.claim(PK, claimOf('webhook_first', 'req-1'), NOW);
    expect(await store.claim(PK, claimOf('webhook_retry', 'req-1'), at(2))).toEqual({
      claimed: true,
      conversation_id: 'webhook_first',
    });
    expect(await store.claim(PK, claimOf('webhook_other', 'req-2'), at(3))).toMatchObject({
      claimed: false,
      existing: { conversation_id: 'webhook_first', request_id: 'req-1' },
    });
    await store.complete(PK, 'webhook_first', { success: true }, at(4));
    expect(await store.claim(PK, claimOf('webhook_retry', 'req-1'), at(5))).toMatchObject({
      claimed: false,
      existing: { status: 'completed' },
    });
  });

  it("a key that is no longer the conversation's claim is neither completed nor freed, nor written back once gone", async () => {
    const store = idempotencyStore()!;
    await store.claim(PK, claimOf('webhook_first', 'req-1'), NOW);
    // The first claim lapsed; another request took the key.
    await store.claim(PK, claimOf('webhook_second', 'req-2'), at(421));
    expect(await store.complete(PK, 'webhook_first', { success: true }, at(422))).toEqual({
      settled: false,
      heldBy: 'webhook_second',
    });
    expect(await store.release(PK, 'webhook_first')).toEqual({ settled: false, heldBy: 'webhook_second' });
    expect(await store.claim(PK, claimOf('webhook_third', 'req-3'), at(423))).toMatchObject({
      claimed: false,
      existing: { status: 'in_progress', conversation_id: 'webhook_second' },
    });
    expect(await store.release(PK, 'webhook_second')).toEqual({ settled: true });
    expect(await store.release(PK, 'webhook_second')).toEqual({ settled: true }); // nothing left to free
    expect(await store.complete(PK, 'webhook_second', { success: true }, at(424))).toEqual({
      settled: false,
      heldBy: null,
    });
    expect(await readdir(dir)).toEqual([]);
  });

  it('a retry racing the completion of its key never finds it half-written, so never runs the request again', async () => {
    const store = idempotencyStore()!;
    const answer = { success: true, response: 'x'.repeat(64 * 1024) }; // a real answer's size: not one write
    const reruns: number[] = [];
    for (let i = 0; i < 100; i++) {
      const pk = i.toString(16).padStart(64, '0');
      expect(await store.claim(pk, claimOf('webhook_first', 'req-1'), NOW)).toMatchObject({ claimed: true });
      const [, retry] = await Promise.all([
        store.complete(pk, 'webhook_first', answer, NOW),
        store.claim(pk, claimOf('webhook_retry', 'req-2'), NOW),
      ]);
      if (retry.claimed) reruns.push(i);
    }
    expect(reruns).toEqual([]);
    expect((await readdir(dir)).filter((name) => !/^[0-9a-f]{64}\.json$/.test(name))).toEqual([]); // no temp files left
  });

  it('two requests taking over one lapsed key at once: one claims it, the other meets that claim', async () => {
    const store = idempotencyStore()!;
    const doubleClaims: number[] = [];
    for (let i = 0; i < 400; i++) {
      const pk = i.toString(16).padStart(64, '0');
      await store.claim(pk, claimOf('webhook_lapsed', 'req-0'), NOW);
      // The second and third start a few event-loop turns later, a different number each time: every interleaving
      // of the takeovers' steps gets its turn.
      const claims = await Promise.all(
        ['req-1', 'req-2', 'req-3'].map(async (request, n) => {
          for (let turn = 0; turn < n * (i % 8); turn++) await new Promise(setImmediate);
          return store.claim(pk, claimOf(`webhook_${request}`, request), at(421));
        }),
      );
      const winners = claims.filter((c) => c.claimed);
      if (winners.length !== 1) doubleClaims.push(i);
      const held = winners[0]?.claimed ? winners[0].conversation_id : null;
      for (const lost of claims.filter((c) => !c.claimed))
        expect(lost).toMatchObject({ existing: { status: 'in_progress', conversation_id: held } });
    }
    expect(doubleClaims).toEqual([]);
  });

  it('completing races a takeover of its lapsed key: the takeover keeps the key, the completion reports it lost', async () => {
    const store = idempotencyStore()!;
    for (let i = 0; i < 50; i++) {
      const pk = i.toString(16).padStart(64, '0');
      await store.claim(pk, claimOf('webhook_lapsed', 'req-0'), NOW);
      const [completed, takeover] = await Promise.all([
        store.complete(pk, 'webhook_lapsed', { success: true }, at(421)),
        (async () => {
          for (let turn = 0; turn < i % 8; turn++) await new Promise(setImmediate);
          return store.claim(pk, claimOf('webhook_next', 'req-1'), at(421));
        })(),
      ]);
      const kept = await store.claim(pk, claimOf('webhook_probe', 'req-2'), at(422));
      if (takeover.claimed) {
        // Lost either way: to the new claim, or to the moment between the lapsed claim's removal and the new one's
        // link (the key gone, as a DynamoDB key TTL deleted: heldBy null). Never completed as well.
        expect(completed.settled).toBe(false);
        if (!completed.settled) expect([null, 'webhook_next']).toContain(completed.heldBy);
        expect(kept).toMatchObject({
          claimed: false,
          existing: { status: 'in_progress', conversation_id: 'webhook_next' },
        });
      } else {
        expect(completed).toEqual({ settled: true });
        expect(kept).toMatchObject({
          claimed: false,
          existing: { status: 'completed', conversation_id: 'webhook_lapsed' },
        });
      }
    }
  });
});
