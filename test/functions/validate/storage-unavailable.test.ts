import { DynamoDBClient, ProvisionedThroughputExceededException, PutItemCommand } from '@aws-sdk/client-dynamodb';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { httpResultForExecution } from '../../../functions/domain/gateway-contract.ts';
import { handler } from '../../../functions/validate/handler.ts';
import { executionInput, SEED_REQUEST } from '../../support/fixtures.ts';

/**
 * On AWS, Validate's calls to the inbound secrets and the idempotency table may be throttled or fail: the request is
 * refused with 503 STORAGE_UNAVAILABLE and Retry-After, nothing run (docs/contract.md#errors), as the local gateway
 * answers a data folder that refuses a write. Before, the workflow failed on the error: 500 INTERNAL_ERROR.
 */
const dynamo = mockClient(DynamoDBClient);
const secrets = mockClient(SecretsManagerClient);
afterEach(() => {
  dynamo.reset();
  secrets.reset();
  delete process.env.IDEMPOTENCY_TABLE_NAME;
  delete process.env.INBOUND_WEBHOOK_SECRETS_ARN;
});

/** What the caller gets for Validate's result, through the workflow's Fail state (its cause is the rejection). */
function answered(result: unknown) {
  const { error, rejection } = result as { error: string; rejection: string };
  return httpResultForExecution({ status: 'FAILED', error, cause: rejection });
}

const throttled = (name: string) =>
  Object.assign(new Error(`Rate exceeded (${name})`), { name, $metadata: { httpStatusCode: 400 } });

describe('Validate when an AWS service refuses its call', () => {
  it('the idempotency table throttled: 503 STORAGE_UNAVAILABLE with Retry-After; nothing ran', async () => {
    process.env.IDEMPOTENCY_TABLE_NAME = 'idempotency';
    dynamo
      .on(PutItemCommand)
      .rejects(new ProvisionedThroughputExceededException({ message: 'throttled', $metadata: {} }));
    const result = await handler(
      executionInput(SEED_REQUEST, {
        headers: { 'content-type': 'application/json', 'idempotency-key': 'throttled-key' },
      }),
    );
    expect(result).toMatchObject({ valid: false, error: 'StorageUnavailable', code: 'STORAGE_UNAVAILABLE' });
    const answer = answered(result);
    expect(answer.statusCode).toBe(503);
    expect(answer.headers).toEqual({ 'retry-after': '2' });
    expect(answer.body).toMatchObject({
      success: false,
      error: {
        code: 'STORAGE_UNAVAILABLE',
        message: expect.stringMatching(
          /^The request could not be taken just now \(its Idempotency-Key could not be claimed\); nothing ran: send it again/,
        ),
      },
    });
  });

  it('the inbound secrets not readable (Secrets Manager throttled): the same 503', async () => {
    process.env.INBOUND_WEBHOOK_SECRETS_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:inbound-AbCdEf';
    secrets.on(GetSecretValueCommand).rejects(throttled('ThrottlingException'));
    const result = await handler({ accept: executionInput(SEED_REQUEST) });
    expect(result).toMatchObject({ valid: false, error: 'StorageUnavailable', code: 'STORAGE_UNAVAILABLE' });
    expect(answered(result).statusCode).toBe(503);
    expect(JSON.stringify(answered(result).body)).toMatch(/the inbound signing secrets could not be read/);
  });

  it('an error that is not an AWS service answer is thrown as before (a bug is no 503)', async () => {
    process.env.INBOUND_WEBHOOK_SECRETS_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:inbound-AbCdEf';
    secrets.on(GetSecretValueCommand).resolves({ SecretString: '{"testing_system": "not a secret"}' });
    await expect(handler(executionInput(SEED_REQUEST))).rejects.toThrow(/secrets must be "whsec_"/);
  });
});
