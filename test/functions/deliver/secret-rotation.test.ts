import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { GetFunctionConfigurationCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { GetSecretValueCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { Webhook } from 'standardwebhooks';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type DeliverDeps, deliver } from '../../../functions/deliver/handler.ts';
import type { ConversationState } from '../../../functions/domain/conversation.ts';
import { withAgentAnswer, withClassification } from '../../../functions/domain/lifecycle.ts';
import { DynamoEndpointStore, ENDPOINT_CACHE_TTL_MS } from '../../../functions/shared/endpoint-store.ts';
import type { PostResult } from '../../../functions/shared/http-delivery.ts';
import { main } from '../../../local/cli/main.ts';
import { describedStack } from '../../support/aws-fixtures.ts';
import { captureOutput } from '../../support/cli.ts';
import { dynamoTables } from '../../support/dynamodb-tables.ts';
import { startedRecord } from '../../support/fixtures.ts';
import { captureJsonLines } from '../../support/log-capture.ts';

/**
 * docs/security.md, "Rotating a delivery secret": from the moment `endpoints set <type> --secret` returns, every
 * delivery of that type carries a signature by the new secret beside the old one's (Standard Webhooks: several
 * space-separated `v1,<sig>` in `webhook-signature`), so the operator may switch the receiver to the new secret at
 * once and a receiver holding either verifies. The same Deliver handler on both paths; what differs is where the
 * secrets come from: on AWS the DeliverySigningSecrets secret, which a warm Deliver caches for 5 minutes (AWS is
 * mocked), locally a file read again when it changes.
 */
const OLD = 'whsec_b2xkb2xkb2xkb2xkb2xkb2xk';
const NEW = 'whsec_bmV3bmV3bmV3bmV3bmV3bmV3';
const TARGET = 'https://crm.example.com/hooks/deals';

/** A deal question with its answer, classified: Deliver's input. */
function classified(): ConversationState {
  const now = new Date();
  return {
    conversation: withClassification(withAgentAnswer(startedRecord(), { response: 'top deals' }, 40, now), now),
  };
}

/** Deliver as its Lambda runs it, the receiver a fake POST that keeps what it was sent and answers 200. */
function delivering(store: DeliverDeps['store']) {
  const sent: { body: string; headers: Record<string, string> }[] = [];
  const post: DeliverDeps['post'] = async (_url, body, headers, attempt): Promise<PostResult> => {
    sent.push({ body, headers });
    return {
      attempt: { attempt, at: new Date().toISOString(), duration_ms: 5, outcome: 'delivered', status_code: 200 },
      response: { status: 200, headers: {}, body: 'ok', body_truncated: false },
    };
  };
  return {
    sent,
    deliverOnce: () =>
      deliver(
        { state: classified(), execution_name: 'e1' },
        { clock: { now: Date.now, sleep: async () => {} }, store, post },
      ),
  };
}

/** Whether a receiver holding `secret` verifies what was sent (standardwebhooks, as docs/security.md shows). */
const verifiesWith = (secret: string, { body, headers }: { body: string; headers: Record<string, string> }) => {
  try {
    new Webhook(secret).verify(body, headers);
    return true;
  } catch {
    return false;
  }
};

const saved = { ...process.env };
let logs: ReturnType<typeof captureJsonLines>;
beforeEach(() => {
  process.env.DEAL_ANALYSIS_WEBHOOK_URL = TARGET;
  logs = captureJsonLines();
});
afterEach(() => {
  logs.restore();
  process.env = { ...saved };
});

describe('on AWS: endpoints set --secret --aws reaches a warm Deliver within seconds, not 5 minutes', () => {
  const cfn = mockClient(CloudFormationClient);
  const dynamo = mockClient(DynamoDBClient);
  const lambda = mockClient(LambdaClient);
  const secrets = mockClient(SecretsManagerClient);
  const sqs = mockClient(SQSClient);
  const TABLE = 'WebhookConversationGateway-deliveries';
  // Its own secret per test: the secrets' cache is the module's, as in a Lambda container.
  const SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:DeliverySigningSecrets-rotation';

  beforeEach(() => {
    for (const mock of [cfn, dynamo, lambda, secrets, sqs]) mock.reset();
    cfn
      .on(DescribeStacksCommand)
      .resolves(describedStack({ DeliveriesTableName: TABLE, DeliverySigningSecretsArn: SECRET_ARN }));
    lambda.on(GetFunctionConfigurationCommand).resolves({ Environment: { Variables: {} } });
    sqs.on(GetQueueAttributesCommand).resolves({ Attributes: {} });
    // The secret as Secrets Manager keeps it: PutSecretValue replaces it, GetSecretValue reads it.
    let secretString = JSON.stringify({ deal_analysis: OLD });
    secrets.on(GetSecretValueCommand).callsFake(() => ({ SecretString: secretString }));
    secrets.on(PutSecretValueCommand).callsFake((input) => {
      secretString = input.SecretString;
      return {};
    });
    Object.assign(process.env, { DELIVERIES_TABLE_NAME: TABLE, DELIVERY_SIGNING_SECRETS_ARN: SECRET_ARN });
  });

  it('the delivery after the rotation (and the receivers’ 5 s) carries both signatures; a receiver on either verifies', async () => {
    dynamoTables(dynamo, { [TABLE]: 'pk' });
    let now = Date.now();
    const { sent, deliverOnce } = delivering(new DynamoEndpointStore(TABLE, undefined, { clock: () => now }));
    // A warm Deliver: it has read the secret (old) and keeps it.
    await deliverOnce();
    expect(verifiesWith(OLD, sent[0]!)).toBe(true);

    const output = captureOutput();
    try {
      expect(await main(['endpoints', 'set', 'deal_analysis', '--secret', NEW, '--aws'])).toBe(0);
    } finally {
      output.restore();
    }
    expect(output.stdout).toContain('the Deliver functions sign with them within 5 seconds');

    // The receivers' item each Deliver keeps for 5 s is read again; the secret with it, well before its 5 minutes.
    now += ENDPOINT_CACHE_TTL_MS;
    await deliverOnce();
    const rotated = sent[1]!;
    expect(rotated.headers['webhook-signature']!.split(' ')).toHaveLength(2);
    expect(verifiesWith(NEW, rotated)).toBe(true);
    expect(verifiesWith(OLD, rotated)).toBe(true);
    // One read of the secret for the change, not one per delivery.
    await deliverOnce();
    expect(secrets.commandCalls(GetSecretValueCommand).length).toBeLessThanOrEqual(3);
    expect(verifiesWith(NEW, sent[2]!)).toBe(true);
  });
});

describe('locally: endpoints set --secret reaches the running gateway’s Deliver at once', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'secret-rotation-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('the next delivery carries both signatures; a receiver on either verifies', async () => {
    const file = path.join(dir, 'delivery-signing-secrets.json');
    await writeFile(file, JSON.stringify({ deal_analysis: OLD }), { mode: 0o600 });
    Object.assign(process.env, { LOCAL_DATA_DIR: path.join(dir, 'data'), DELIVERY_SIGNING_SECRETS_FILE: file });
    delete process.env.DELIVERIES_TABLE_NAME;
    delete process.env.DELIVERY_SIGNING_SECRETS_ARN;
    const { sent, deliverOnce } = delivering(null);
    await deliverOnce();
    expect(verifiesWith(OLD, sent[0]!)).toBe(true);

    const output = captureOutput();
    try {
      expect(await main(['endpoints', 'set', 'deal_analysis', '--secret', NEW])).toBe(0);
    } finally {
      output.restore();
    }
    await deliverOnce();
    expect(verifiesWith(NEW, sent[1]!)).toBe(true);
    expect(verifiesWith(OLD, sent[1]!)).toBe(true);
  });
});
