import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import {
  BatchGetItemCommand,
  ConditionalCheckFailedException,
  DynamoDBClient,
  GetItemCommand,
  UpdateItemCommand,
  type UpdateItemCommandInput,
} from '@aws-sdk/client-dynamodb';
import { GetFunctionConfigurationCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { GetObjectCommand, NoSuchKey, S3Client } from '@aws-sdk/client-s3';
import { GetSecretValueCommand, PutSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SFNClient, StartSyncExecutionCommand } from '@aws-sdk/client-sfn';
import { GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { ConversationRecord } from '../../../../functions/domain/conversation.ts';
import { exportKey, structuredJson } from '../../../../functions/domain/export-formats.ts';
import {
  completeConversation,
  withAgentAnswer,
  withClassification,
  withDeliveryAttempt,
  withFailure,
} from '../../../../functions/domain/lifecycle.ts';
import { secretsFingerprint } from '../../../../functions/domain/secrets-fingerprint.ts';
import { signOutbound } from '../../../../functions/domain/signatures.ts';
import { main } from '../../../../local/cli/main.ts';
import { describedStack, QUEUE_URL, STATE_MACHINE_ARN, succeeded } from '../../../support/aws-fixtures.ts';
import { captureOutput } from '../../../support/cli.ts';
import { startedRecord } from '../../../support/fixtures.ts';
import { startReceiver } from '../../../support/servers.ts';

/**
 * `endpoints list | set | pause | resume --aws` and `deliveries resend <id> --aws`, run as the user runs them (main)
 * against a mocked deployed stack (never real AWS): what the user sees (output, exit code), what is sent to AWS, and
 * the one clear line when AWS refuses.
 */
const cfn = mockClient(CloudFormationClient);
const dynamo = mockClient(DynamoDBClient);
const lambda = mockClient(LambdaClient);
const secrets = mockClient(SecretsManagerClient);
const sqs = mockClient(SQSClient);
const s3 = mockClient(S3Client);
const sfn = mockClient(SFNClient);

const TABLE = 'WebhookConversationGateway-deliveries';
const SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:DeliverySigningSecrets-abc';
const BUCKET = 'prod-exports';
const OLD_SECRET = 'whsec_b2xkb2xkb2xkb2xkb2xkb2xk';
const NEW_SECRET = 'whsec_bmV3bmV3bmV3bmV3bmV3bmV3';
const GENERAL_SECRET = 'whsec_Z2VuZXJhbGdlbmVyYWxnZW5l';

let output: ReturnType<typeof captureOutput>;
beforeEach(() => {
  for (const mock of [cfn, dynamo, lambda, secrets, sqs, s3, sfn]) mock.reset();
  output = captureOutput();
  cfn.on(DescribeStacksCommand).resolves(
    describedStack({
      DeliveriesTableName: TABLE,
      DeliverFunctionName: 'WebhookConversationGateway-Deliver',
      DeliverySigningSecretsArn: SECRET_ARN,
      FailedDeliveryQueueUrl: QUEUE_URL,
      RedeliveryStateMachineArn: STATE_MACHINE_ARN,
      ExportBucketName: BUCKET,
    }),
  );
  lambda.on(GetFunctionConfigurationCommand).resolves({
    Environment: {
      Variables: {
        DEAL_ANALYSIS_WEBHOOK_URL: 'https://crm.example.com/hooks/deals',
        GENERAL_WEBHOOK_URL: 'https://crm.example.com/hooks/general',
        ENDPOINT_FAILURE_THRESHOLD: '3',
      },
    },
  });
  // The table after the change: deal_analysis configured and failing, the others as deployed (no item).
  const dealItem = {
    pk: { S: 'endpoint#deal_analysis' },
    sk: { S: 'endpoint' },
    url: { S: 'https://crm-new.example.com/hooks/deals' },
    rate_per_second: { N: '5' },
    consecutive_failures: { N: '3' },
    failing_since: { S: '2026-11-29T12:00:00.000Z' },
    last_error: { S: 'HTTP 503' },
  };
  dynamo.on(BatchGetItemCommand).resolves({ Responses: { [TABLE]: [dealItem] } });
  dynamo.on(UpdateItemCommand).resolves({ Attributes: dealItem });
  // One secret signs deal_analysis's deliveries, none the others'.
  secrets.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify({ deal_analysis: OLD_SECRET }) });
  sqs.on(GetQueueAttributesCommand).resolves({
    Attributes: {
      ApproximateNumberOfMessages: '2',
      ApproximateNumberOfMessagesNotVisible: '1',
      ApproximateNumberOfMessagesDelayed: '0',
    },
  });
});
afterEach(() => vi.restoreAllMocks());

/** The table's rows as printed: type → its cells. */
function rows(text: string): Record<string, string> {
  return Object.fromEntries(
    text
      .split('\n')
      .filter((line) => /^(deal_analysis|data_analysis|lead_analysis|general)\s/.test(line))
      .map((line) => [line.split(/\s+/)[0]!, line]),
  );
}

/** An UpdateItem's condition with its placeholders read: `#url`, and each value as its quoted string. */
function conditionOf(input: UpdateItemCommandInput): string {
  return input
    .ConditionExpression!.replace(/#\w+/g, (p) => `#${input.ExpressionAttributeNames![p]}`)
    .replace(/:\w+/g, (p) => `'${input.ExpressionAttributeValues![p]!.S}'`);
}

describe('endpoints --aws', () => {
  it('list: every type from one consistent BatchGetItem, the deployed URLs and the breaker policy from the Deliver function, the schedule’s total', async () => {
    expect(await main(['endpoints', 'list', '--aws'])).toBe(0);
    const table = rows(output.stdout);
    expect(Object.keys(table)).toEqual(['deal_analysis', 'data_analysis', 'lead_analysis', 'general']);
    // Failing at the deployed threshold (3, not the default 5); the operator's URL and rate.
    expect(table.deal_analysis).toMatch(/failing\s+one secret\s+https:\/\/crm-new\.example\.com\/…\s+5\/s/);
    expect(table.general).toMatch(/healthy\s+unsigned\s+https:\/\/crm\.example\.com\/… \(deployed\)\s+-/);
    expect(table.data_analysis).toMatch(/healthy\s+unsigned\s+\(none\)/);
    expect(output.stdout).toContain('3 deliveries pending in the schedule across all types');
    expect(output.stderr).toBe('');
    const read = dynamo.commandCalls(BatchGetItemCommand)[0]!.args[0].input;
    expect(read.RequestItems![TABLE]).toMatchObject({ ConsistentRead: true });
    expect(read.RequestItems![TABLE]!.Keys!.map((k) => k.pk!.S)).toEqual([
      'endpoint#deal_analysis',
      'endpoint#data_analysis',
      'endpoint#lead_analysis',
      'endpoint#general',
    ]);
    expect(dynamo.commandCalls(UpdateItemCommand)).toHaveLength(0);
  });

  it('list when the schedule cannot be counted (no sqs:GetQueueAttributes): the receivers all the same, and why no count', async () => {
    sqs
      .on(GetQueueAttributesCommand)
      .rejects(Object.assign(new Error('not authorized to perform: sqs:getqueueattributes'), { name: 'AccessDenied' }));
    expect(await main(['endpoints', 'list', '--aws'])).toBe(0);
    expect(Object.keys(rows(output.stdout))).toEqual(['deal_analysis', 'data_analysis', 'lead_analysis', 'general']);
    expect(output.stdout).toContain(
      'deliveries pending in the schedule not counted (AccessDenied on sqs:GetQueueAttributes)',
    );
  });

  it('list during a rotation: two secrets since the time --secret recorded, and what ends it; never a secret', async () => {
    const changedAt = '2026-11-30T08:00:00.000Z';
    secrets.on(GetSecretValueCommand).resolves({
      SecretString: JSON.stringify({ deal_analysis: [NEW_SECRET, OLD_SECRET], general: [GENERAL_SECRET, OLD_SECRET] }),
    });
    // deal_analysis rotated by `endpoints set --secret --aws` (its mark); general's two secrets put there by hand.
    const marked = {
      pk: { S: 'endpoint#deal_analysis' },
      sk: { S: 'endpoint' },
      secrets_fingerprint: { S: secretsFingerprint([NEW_SECRET, OLD_SECRET]) },
      secrets_changed_at: { S: changedAt },
    };
    dynamo.on(BatchGetItemCommand).resolves({ Responses: { [TABLE]: [marked] } });
    expect(await main(['endpoints', 'list', '--aws'])).toBe(0);
    const table = rows(output.stdout);
    expect(table.deal_analysis).toMatch(/^deal_analysis\s+healthy\s+2 secrets\s/);
    expect(table.data_analysis).toMatch(/^data_analysis\s+healthy\s+unsigned\s/);
    expect(output.stdout).toMatch(
      /^deal_analysis: two secrets since 2026-11-30T08:00:00\.000Z \(\d+d ago\): endpoints set deal_analysis --drop-previous-secret once the receiver verifies the new one$/m,
    );
    expect(output.stdout).toContain(
      'general: two secrets since a time not recorded (set by hand, or before this version recorded it): endpoints set general --drop-previous-secret once the receiver verifies the new one',
    );
    expect(output.stdout + output.stderr).not.toContain('whsec_');
  });

  it('list by a role that may not read the secret: signing not known, and why', async () => {
    secrets.on(GetSecretValueCommand).rejects(
      Object.assign(new Error('not authorized to perform: secretsmanager:GetSecretValue'), {
        name: 'AccessDeniedException',
      }),
    );
    expect(await main(['endpoints', 'list', '--aws'])).toBe(0);
    expect(rows(output.stdout).general).toMatch(/^general\s+healthy\s+not known here\s/);
    expect(output.stdout).toMatch(
      /^signing not shown \(access denied: .*secretsmanager:GetSecretValue: these credentials need the stack's OperatorPolicyArn policy \(docs\/deploy\.md#after-the-first-deploy\)\)$/m,
    );
  });

  it('list --json: the views, nothing else on stdout', async () => {
    expect(await main(['endpoints', 'list', '--aws', '--json'])).toBe(0);
    const views = JSON.parse(output.stdout);
    expect(views[0]).toMatchObject({
      webhook_type: 'deal_analysis',
      status: 'failing',
      url_source: 'configured',
      rate_per_second: 5,
      consecutive_failures: 3,
      queued: null,
    });
    // What the table's footer says is not lost: on stderr, as deliveries list --aws --json says its counts.
    expect(output.stderr).toBe(
      '3 deliveries pending in the schedule across all types (the queue does not count them by type)\n',
    );
  });

  it('list --json by a role that may not read the Deliver function: the URLs it could not show are said on stderr', async () => {
    lambda
      .on(GetFunctionConfigurationCommand)
      .rejects(Object.assign(new Error('not authorized'), { name: 'AccessDeniedException' }));
    expect(await main(['endpoints', 'list', '--aws', '--json'])).toBe(0);
    expect(JSON.parse(output.stdout).find((v: { webhook_type: string }) => v.webhook_type === 'general')).toMatchObject(
      {
        url: null,
      },
    );
    expect(output.stderr).toContain(
      'deployed URLs not shown (AccessDeniedException on lambda:GetFunctionConfiguration)\n',
    );
  });

  it('set --url --rate: one UpdateItem on the type’s item; the row after the change and when the Delivers use it', async () => {
    expect(
      await main([
        'endpoints',
        'set',
        'deal_analysis',
        '--url',
        'https://crm-new.example.com/hooks/deals',
        '--rate',
        '5/s',
        '--aws',
      ]),
    ).toBe(0);
    const [update] = dynamo.commandCalls(UpdateItemCommand).map((c) => c.args[0].input);
    expect(update).toMatchObject({ TableName: TABLE, Key: { pk: { S: 'endpoint#deal_analysis' } } });
    const set = Object.fromEntries(
      Object.entries(update!.ExpressionAttributeNames!).map(([alias, name]) => [
        name,
        update!.ExpressionAttributeValues![alias.replace('#', ':')],
      ]),
    );
    expect(set).toMatchObject({ url: { S: 'https://crm-new.example.com/hooks/deals' }, rate_per_second: { N: '5' } });
    expect(Object.keys(rows(output.stdout))).toEqual(['deal_analysis']);
    expect(output.stdout).toContain('The Deliver functions use this within 5 s (no deploy).');
    expect(secrets.commandCalls(PutSecretValueCommand)).toHaveLength(0);
  });

  it('set --rate none and --url default clear them (back to unlimited and the deployed URL)', async () => {
    expect(await main(['endpoints', 'set', 'deal_analysis', '--url', 'default', '--rate', 'none', '--aws'])).toBe(0);
    const update = dynamo.commandCalls(UpdateItemCommand)[0]!.args[0].input;
    expect(update.UpdateExpression).toMatch(/REMOVE #r0, #r1\b/);
    expect(Object.values(update.ExpressionAttributeNames!)).toEqual(expect.arrayContaining(['url', 'rate_per_second']));
  });

  it('set --url with another URL: a new receiver, the old URL’s streak forgotten in the same conditional UpdateItem, said', async () => {
    dynamo.on(UpdateItemCommand).resolves({
      Attributes: {
        url: { S: 'https://crm-moved.example.com/hooks/deals' },
        paused: { BOOL: true },
        paused_at: { S: '2026-11-29T12:00:00.000Z' },
        consecutive_failures: { N: '0' },
      },
    });
    expect(
      await main(['endpoints', 'set', 'deal_analysis', '--url', 'https://crm-moved.example.com/hooks/deals', '--aws']),
    ).toBe(0);
    const updates = dynamo.commandCalls(UpdateItemCommand).map((c) => c.args[0].input);
    expect(updates).toHaveLength(1);
    expect(conditionOf(updates[0]!)).toBe(
      "attribute_not_exists(#url) OR #url <> 'https://crm-moved.example.com/hooks/deals'",
    );
    expect(Object.values(updates[0]!.ExpressionAttributeNames!)).toEqual(
      expect.arrayContaining(['failing_since', 'disabled_at', 'retry_after_until', 'probe_until']),
    );
    expect(output.stdout).toContain(
      "deal_analysis: a new URL is a new receiver: it starts healthy (the previous URL's failure streak, circuit breaker and Retry-After hold do not carry over); it stays paused, as paused (since 2026-11-29T12:00:00.000Z): endpoints resume deal_analysis delivers to it",
    );
    expect(rows(output.stdout).deal_analysis).toMatch(/paused/);
  });

  it('set --url with the URL it has, or the deployed one where none is set: the same receiver, its streak kept, nothing said', async () => {
    const failing = {
      url: { S: 'https://crm-new.example.com/hooks/deals' },
      consecutive_failures: { N: '3' },
      failing_since: { S: '2026-11-29T12:00:00.000Z' },
    };
    dynamo
      .on(UpdateItemCommand)
      .rejectsOnce(new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }))
      .resolves({ Attributes: failing });
    const code = await main([
      'endpoints',
      'set',
      'deal_analysis',
      '--url',
      'https://crm-new.example.com/hooks/deals',
      '--aws',
    ]);
    expect(output.stderr).toBe('');
    expect(code).toBe(0);
    expect(output.stdout).not.toContain('a new URL');
    expect(rows(output.stdout).deal_analysis).toMatch(/failing/);
    const [tried, written] = dynamo.commandCalls(UpdateItemCommand).map((c) => c.args[0].input);
    expect(tried!.ConditionExpression).toBeDefined();
    expect(written!.ConditionExpression).toBeUndefined();
    // The Deliver function's URL, read before the write: setting it where none is configured is no new receiver.
    dynamo.resetHistory();
    expect(await main(['endpoints', 'set', 'general', '--url', 'https://crm.example.com/hooks/general', '--aws'])).toBe(
      0,
    );
    expect(conditionOf(dynamo.commandCalls(UpdateItemCommand)[0]!.args[0].input)).toBe(
      "attribute_exists(#url) AND #url <> 'https://crm.example.com/hooks/general'",
    );
    expect(lambda.commandCalls(GetFunctionConfigurationCommand)).toHaveLength(2);
  });

  it('pause and resume: the pause is set; resume clears the pause, the disable and the streak', async () => {
    expect(await main(['endpoints', 'pause', 'lead_analysis', '--aws'])).toBe(0);
    expect(await main(['endpoints', 'resume', 'lead_analysis', '--aws'])).toBe(0);
    const [pause, resume] = dynamo.commandCalls(UpdateItemCommand).map((c) => c.args[0].input);
    expect(pause!.Key!.pk).toEqual({ S: 'endpoint#lead_analysis' });
    expect(Object.values(pause!.ExpressionAttributeNames!)).toEqual(expect.arrayContaining(['paused', 'paused_at']));
    expect(Object.values(pause!.ExpressionAttributeValues!)).toContainEqual({ BOOL: true });
    expect(resume!.UpdateExpression).toMatch(/REMOVE/);
    expect(Object.values(resume!.ExpressionAttributeNames!)).toEqual(
      expect.arrayContaining([
        'paused',
        'paused_at',
        'failing_since',
        'probe_until',
        'disabled_at',
        'consecutive_failures',
      ]),
    );
  });

  it('--secret rotates: the new secret first, the current one kept (two active); --drop-previous-secret keeps only the new one; other types untouched', async () => {
    secrets
      .on(GetSecretValueCommand)
      .resolvesOnce({ SecretString: JSON.stringify({ deal_analysis: OLD_SECRET, general: GENERAL_SECRET }) })
      .resolvesOnce({
        SecretString: JSON.stringify({ deal_analysis: [NEW_SECRET, OLD_SECRET], general: GENERAL_SECRET }),
      });
    secrets.on(PutSecretValueCommand).resolves({});
    // The table answers the mark with the item as written (ALL_NEW): the fingerprint and since when.
    dynamo.on(UpdateItemCommand).callsFake((input) => {
      const values = Object.values(input.ExpressionAttributeValues ?? {}).map((v) => (v as { S?: string }).S ?? '');
      return {
        Attributes: {
          pk: { S: 'endpoint#deal_analysis' },
          sk: { S: 'endpoint' },
          secrets_fingerprint: { S: values.find((v) => /^[0-9a-f]{16}$/.test(v))! },
          secrets_changed_at: { S: values.find((v) => /^\d{4}-\d\d-\d\dT/.test(v))! },
        },
      };
    });

    expect(await main(['endpoints', 'set', 'deal_analysis', '--secret', NEW_SECRET, '--aws'])).toBe(0);
    expect(output.stdout).toContain(
      'deal_analysis deliveries are signed with two secrets (the new one first): the Deliver functions sign with them within 5 seconds',
    );
    expect(output.stdout).toContain('both signatures are on the wire until --drop-previous-secret');
    // The row shown says so too, since when, and what ends the rotation.
    expect(rows(output.stdout).deal_analysis).toMatch(/^deal_analysis\s+healthy\s+2 secrets\s/);
    expect(output.stdout).toMatch(
      /^deal_analysis: two secrets since \S+Z \(\d+s ago\): endpoints set deal_analysis --drop-previous-secret once the receiver verifies the new one$/m,
    );
    // The receiver's item names the secrets now in use (by fingerprint): each Deliver reads them again within 5 s.
    const marks = () => dynamo.commandCalls(UpdateItemCommand).map((c) => c.args[0].input);
    expect(marks()).toHaveLength(1);
    expect(marks()[0]).toMatchObject({ TableName: TABLE, Key: { pk: { S: 'endpoint#deal_analysis' } } });
    expect(Object.values(marks()[0]!.ExpressionAttributeValues!)).toContainEqual({
      S: secretsFingerprint([NEW_SECRET, OLD_SECRET]),
    });
    expect(JSON.stringify(marks()[0])).not.toContain(NEW_SECRET.slice(6));

    output.stdout = '';
    expect(await main(['endpoints', 'set', 'deal_analysis', '--drop-previous-secret', '--aws'])).toBe(0);
    expect(output.stdout).toContain(
      'deal_analysis deliveries are signed with one secret: the Deliver functions sign with it within 5 seconds',
    );
    expect(rows(output.stdout).deal_analysis).toMatch(/^deal_analysis\s+healthy\s+one secret\s/);
    expect(output.stdout).not.toContain('two secrets since');
    expect(Object.values(marks()[1]!.ExpressionAttributeValues!)).toContainEqual({
      S: secretsFingerprint([NEW_SECRET]),
    });

    const puts = secrets.commandCalls(PutSecretValueCommand).map((c) => c.args[0].input);
    expect(puts.map((p) => p.SecretId)).toEqual([SECRET_ARN, SECRET_ARN]);
    expect(JSON.parse(puts[0]!.SecretString!)).toEqual({
      deal_analysis: [NEW_SECRET, OLD_SECRET],
      general: GENERAL_SECRET,
    });
    expect(JSON.parse(puts[1]!.SecretString!)).toEqual({ deal_analysis: NEW_SECRET, general: GENERAL_SECRET });
  });

  it('--secret during a rotation is refused before the secret is written: it would drop the one the receiver may verify with', async () => {
    secrets.on(GetSecretValueCommand).resolves({
      SecretString: JSON.stringify({ deal_analysis: [NEW_SECRET, OLD_SECRET], general: GENERAL_SECRET }),
    });
    const third = `whsec_${'Z'.repeat(32)}`;
    expect(await main(['endpoints', 'set', 'deal_analysis', '--secret', third, '--aws'])).toBe(1);
    expect(output.stderr).toContain(
      'webhook-gateway: deal_analysis: a rotation is under way (two secrets sign): another --secret would drop the previous one',
    );
    expect(secrets.commandCalls(PutSecretValueCommand)).toHaveLength(0);
    expect(dynamo.commandCalls(UpdateItemCommand)).toHaveLength(0);
  });

  it('--secret whose mark on the receiver is refused: the secret is changed (exit 0), and the Delivers take it within 5 minutes, said why', async () => {
    secrets.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify({ deal_analysis: OLD_SECRET }) });
    secrets.on(PutSecretValueCommand).resolves({});
    dynamo.on(UpdateItemCommand).rejects(
      Object.assign(new Error('User: ops is not authorized to perform: dynamodb:UpdateItem'), {
        name: 'AccessDeniedException',
      }),
    );
    expect(await main(['endpoints', 'set', 'deal_analysis', '--secret', NEW_SECRET, '--aws'])).toBe(0);
    expect(secrets.commandCalls(PutSecretValueCommand)).toHaveLength(1);
    expect(output.stdout).toContain(
      "deal_analysis deliveries are signed with two secrets (the new one first): the Deliver functions sign with them within 5 minutes (their cache of the secret: telling them at once failed, access denied: User: ops is not authorized to perform: dynamodb:UpdateItem: these credentials need the stack's OperatorPolicyArn policy (docs/deploy.md#after-the-first-deploy))",
    );
  });

  it('--secret with --json: stdout is the JSON document alone, the rotation’s sentence goes to stderr', async () => {
    secrets.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify({ deal_analysis: OLD_SECRET }) });
    secrets.on(PutSecretValueCommand).resolves({});
    expect(await main(['endpoints', 'set', 'deal_analysis', '--secret', NEW_SECRET, '--aws', '--json'])).toBe(0);
    expect(JSON.parse(output.stdout)).toEqual([expect.objectContaining({ webhook_type: 'deal_analysis' })]);
    expect(output.stderr).toContain('deal_analysis deliveries are signed with two secrets');
  });

  it('a bad value is refused before anything is sent to AWS', async () => {
    expect(await main(['endpoints', 'set', 'deal_analysis', '--secret', 'not-a-secret', '--aws'])).toBe(1);
    expect(output.stderr).toMatch(/^webhook-gateway: --secret: secrets must be "whsec_" followed by base64/);
    expect(await main(['endpoints', 'set', 'deal_analysis', '--rate', 'fast', '--aws'])).toBe(1);
    expect(cfn.calls()).toHaveLength(0);
    expect(dynamo.calls()).toHaveLength(0);
  });

  it('pause, resume, set: the row shown is the table’s answer to the change, so a role that may not read the table back still sees it made (exit 0)', async () => {
    dynamo.on(BatchGetItemCommand).rejects(
      Object.assign(new Error('User: ops is not authorized to perform: dynamodb:BatchGetItem'), {
        name: 'AccessDeniedException',
      }),
    );
    dynamo.on(UpdateItemCommand).resolves({
      Attributes: { pk: { S: 'endpoint#lead_analysis' }, sk: { S: 'endpoint' }, paused: { BOOL: true } },
    });
    expect(await main(['endpoints', 'pause', 'lead_analysis', '--aws'])).toBe(0);
    expect(rows(output.stdout).lead_analysis).toMatch(/^lead_analysis\s+paused\s/);
    expect(output.stdout).toContain('The Deliver functions use this within 5 s (no deploy).');
    expect(output.stderr).toBe('');
    expect(dynamo.commandCalls(BatchGetItemCommand)).toHaveLength(0);
  });

  it('set --secret by a role that may neither write nor read the receiver: says the change was made and only reading it back failed, exit 0; with --json on stdout too', async () => {
    secrets.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify({ deal_analysis: OLD_SECRET }) });
    secrets.on(PutSecretValueCommand).resolves({});
    dynamo.on(UpdateItemCommand).rejects(
      Object.assign(new Error('User: ops is not authorized to perform: dynamodb:UpdateItem'), {
        name: 'AccessDeniedException',
      }),
    );
    dynamo.on(BatchGetItemCommand).rejects(
      Object.assign(new Error('User: ops is not authorized to perform: dynamodb:BatchGetItem'), {
        name: 'AccessDeniedException',
      }),
    );
    expect(await main(['endpoints', 'set', 'deal_analysis', '--secret', NEW_SECRET, '--aws', '--json'])).toBe(0);
    expect(secrets.commandCalls(PutSecretValueCommand)).toHaveLength(1);
    // A script reads one JSON document that says the write was made and the read-back failed.
    expect(JSON.parse(output.stdout)).toEqual({
      webhook_type: 'deal_analysis',
      change_made: true,
      change: 'new signing secret',
      read_back: 'failed',
      error:
        "access denied: User: ops is not authorized to perform: dynamodb:BatchGetItem: these credentials need the stack's OperatorPolicyArn policy (docs/deploy.md#after-the-first-deploy)",
      see: 'webhook-gateway endpoints list --aws',
    });
    expect(output.stderr).toContain(
      "webhook-gateway: deal_analysis: the change was made (new signing secret), but reading the receiver back failed (access denied: User: ops is not authorized to perform: dynamodb:BatchGetItem: these credentials need the stack's OperatorPolicyArn policy (docs/deploy.md#after-the-first-deploy)); see it with: webhook-gateway endpoints list --aws\n",
    );
  });

  it('set --url --secret whose secret is refused after the URL was written: says the URL change was made, exit 1', async () => {
    secrets.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify({ deal_analysis: OLD_SECRET }) });
    secrets.on(PutSecretValueCommand).rejects(
      Object.assign(new Error('User: ops is not authorized to perform: secretsmanager:PutSecretValue'), {
        name: 'AccessDeniedException',
      }),
    );
    const url = 'https://crm-new.example.com/hooks/deals';
    expect(await main(['endpoints', 'set', 'deal_analysis', '--url', url, '--secret', NEW_SECRET, '--aws'])).toBe(1);
    expect(dynamo.commandCalls(UpdateItemCommand)).toHaveLength(1);
    expect(output.stderr).toBe(
      `webhook-gateway: deal_analysis: the change was made (URL https://crm-new.example.com/…), but its signing secrets were not changed: access denied: User: ops is not authorized to perform: secretsmanager:PutSecretValue: these credentials need the stack's OperatorPolicyArn policy (docs/deploy.md#after-the-first-deploy)\n`,
    );
  });

  it('set --url --secret whose secret cannot be read, or is refused (a rotation under way): nothing is written, exit 1', async () => {
    // Before, the URL was written first, then the secret refused: half the change was made.
    const url = 'https://crm-new.example.com/hooks/deals';
    secrets.on(GetSecretValueCommand).rejects(
      Object.assign(new Error('User: ops is not authorized to perform: secretsmanager:GetSecretValue'), {
        name: 'AccessDeniedException',
      }),
    );
    expect(await main(['endpoints', 'set', 'deal_analysis', '--url', url, '--secret', NEW_SECRET, '--aws'])).toBe(1);
    expect(output.stderr).not.toContain('the change was made');
    secrets.on(GetSecretValueCommand).resolves({
      SecretString: JSON.stringify({ deal_analysis: [NEW_SECRET, OLD_SECRET], general: GENERAL_SECRET }),
    });
    const third = `whsec_${'Z'.repeat(32)}`;
    expect(await main(['endpoints', 'set', 'deal_analysis', '--url', url, '--secret', third, '--aws'])).toBe(1);
    expect(output.stderr).toContain('webhook-gateway: deal_analysis: a rotation is under way (two secrets sign)');
    expect(dynamo.commandCalls(UpdateItemCommand)).toHaveLength(0);
    expect(secrets.commandCalls(PutSecretValueCommand)).toHaveLength(0);
  });

  it('endpoints test --aws: a signed test delivery to the receiver the Delivers use, its answer printed; nothing written', async () => {
    const receiver = await startReceiver();
    const url = receiver.urlFor('deals');
    dynamo.on(GetItemCommand).resolves({ Item: { url: { S: url } } });
    secrets.on(GetSecretValueCommand).resolves({ SecretString: JSON.stringify({ deal_analysis: OLD_SECRET }) });
    try {
      expect(await main(['endpoints', 'test', 'deal_analysis', '--aws']), output.stderr).toBe(0);
    } finally {
      await receiver.close();
    }
    expect(receiver.received).toHaveLength(1);
    const { headers, body: payload } = receiver.received[0]!;
    const body = JSON.stringify(payload);
    expect(payload).toMatchObject({ test: true, webhook_type: 'deal_analysis', conversation_id: null });
    const at = new Date(Number(headers['webhook-timestamp']) * 1000);
    expect(headers['webhook-signature']).toBe(
      signOutbound(OLD_SECRET, payload.delivery_id as string, at, body)['webhook-signature'],
    );
    expect(output.stdout).toContain(`to ${receiver.url}/… (signed with one secret) → HTTP 200 in `);
    expect(dynamo.commandCalls(UpdateItemCommand)).toHaveLength(0);
    expect(secrets.commandCalls(PutSecretValueCommand)).toHaveLength(0);
  });

  it('--secret on a stack without the secret output is refused before anything is written', async () => {
    cfn.on(DescribeStacksCommand).resolves(describedStack({ DeliveriesTableName: TABLE }));
    expect(await main(['endpoints', 'set', 'deal_analysis', '--rate', '5/s', '--secret', NEW_SECRET, '--aws'])).toBe(1);
    expect(output.stderr).toBe(
      'webhook-gateway: stack "WebhookConversationGateway" has no DeliverySigningSecretsArn output\n',
    );
    expect(dynamo.commandCalls(UpdateItemCommand)).toHaveLength(0);
  });

  it('the table missing, access denied, a stack without the table: one clear line on stderr, exit 1', async () => {
    const oneLine = () => {
      const lines = output.stderr.trim().split('\n');
      output.stderr = '';
      expect(lines).toHaveLength(1);
      return lines[0];
    };
    dynamo
      .on(BatchGetItemCommand)
      .rejects(Object.assign(new Error('Requested resource not found'), { name: 'ResourceNotFoundException' }));
    expect(await main(['endpoints', 'list', '--aws'])).toBe(1);
    expect(oneLine()).toBe(
      'webhook-gateway: something stack "WebhookConversationGateway" uses does not exist (ResourceNotFoundException: Requested resource not found): was it deleted, or is --region wrong?',
    );

    dynamo
      .on(UpdateItemCommand)
      .rejects(
        Object.assign(
          new Error(
            `User: arn:aws:iam::123456789012:user/ops is not authorized to perform: dynamodb:UpdateItem on resource: arn:aws:dynamodb:us-east-1:123456789012:table/${TABLE}`,
          ),
          { name: 'AccessDeniedException' },
        ),
      );
    expect(await main(['endpoints', 'pause', 'deal_analysis', '--aws'])).toBe(1);
    expect(oneLine()).toMatch(/^webhook-gateway: access denied: User: .* dynamodb:UpdateItem on resource/);

    cfn.on(DescribeStacksCommand).resolves(describedStack({ ExportBucketName: BUCKET }));
    expect(await main(['endpoints', 'list', '--aws'])).toBe(1);
    expect(oneLine()).toBe(
      'webhook-gateway: stack "WebhookConversationGateway" has no DeliveriesTableName output: is it a webhook gateway stack, deployed from this version?',
    );
  });
});

describe('deliveries resend --aws', () => {
  const ID = 'webhook_20250813_103045_testing_phase3valid_abc123';
  const TARGET = 'https://crm.example.com/hooks/deals';
  const classified = withClassification(
    withAgentAnswer(startedRecord(), { response: 'Top deals: Acme' }, 40, new Date('2025-08-13T10:30:46Z')),
  );
  const attempt = (n: number, at: string) => ({
    attempt: n,
    at,
    duration_ms: 30,
    outcome: 'delivered' as const,
    status_code: 200,
  });
  const delivered = completeConversation(
    withDeliveryAttempt(classified, attempt(1, '2025-08-13T10:30:46.500Z'), TARGET, 'delivered'),
    false,
    'req-1',
    new Date('2025-08-13T10:30:47Z'),
  );
  const exported = (record: ConversationRecord) =>
    s3.on(GetObjectCommand, { Bucket: BUCKET, Key: exportKey(ID, 'conversation.json') }).resolves({
      Body: { transformToString: async () => JSON.stringify(structuredJson(record, '2025-08-13T10:30:47Z')) } as never,
    });

  it('delivers the exported conversation once more through the redelivery workflow, under its webhook-id', async () => {
    exported(delivered);
    const resent = withDeliveryAttempt(delivered, attempt(2, '2026-11-29T12:00:00.000Z'), TARGET, 'delivered');
    sfn.on(StartSyncExecutionCommand).resolves(succeeded(resent));
    expect(await main(['deliveries', 'resend', ID, '--aws'])).toBe(0);
    const start = sfn.commandCalls(StartSyncExecutionCommand)[0]!.args[0].input;
    expect(start.stateMachineArn).toBe(STATE_MACHINE_ARN);
    const input = JSON.parse(start.input!);
    expect(input.redelivery.via).toBe('resend');
    expect(input.conversation.conversation_id).toBe(ID);
    expect(input.conversation.webhook_context.delivery_id).toBe(delivered.webhook_context.delivery_id);
    expect(output.stdout).toContain(`${ID} resent → delivered (HTTP 200), execution ${start.name}`);
    expect(output.stdout).toContain(
      `webhook-id ${delivered.webhook_context.delivery_id}, attempt 2: conversations show ${ID}`,
    );
    expect(output.stderr).toBe('');
  });

  it('delivers one the failed-delivery queue refused (exported failed, nothing holds it for later)', async () => {
    const failedAttempt = {
      ...attempt(1, '2025-08-13T10:30:46.500Z'),
      outcome: 'permanent' as const,
      status_code: 410,
      error: 'HTTP 410',
    };
    const unqueued = withFailure(
      withDeliveryAttempt(classified, failedAttempt, TARGET, 'failed'),
      'QueueFailedDelivery',
      { error: 'SQS.SqsException', message: 'Service Unavailable', payload: null },
      new Date('2025-08-13T10:30:46.600Z'),
    );
    exported(completeConversation(unqueued, false, 'req-1', new Date('2025-08-13T10:30:47Z')));
    const resent = withDeliveryAttempt(unqueued, attempt(2, '2026-11-29T12:00:00.000Z'), TARGET, 'delivered');
    sfn.on(StartSyncExecutionCommand).resolves(succeeded(resent));
    expect(await main(['deliveries', 'resend', ID, '--aws'])).toBe(0);
    expect(JSON.parse(sfn.commandCalls(StartSyncExecutionCommand)[0]!.args[0].input.input!).redelivery.via).toBe(
      'resend',
    );
    expect(output.stdout).toContain(`${ID} resent → delivered (HTTP 200)`);
  });

  it('the receiver refused the resend: the status and error shown, exit 1', async () => {
    exported(delivered);
    const refused = withDeliveryAttempt(
      delivered,
      { ...attempt(2, '2026-11-29T12:00:00.000Z'), outcome: 'retryable', status_code: 503, error: 'HTTP 503' },
      TARGET,
      'delivered',
    );
    sfn.on(StartSyncExecutionCommand).resolves(succeeded(refused));
    expect(await main(['deliveries', 'resend', ID, '--aws'])).toBe(1);
    expect(output.stdout).toMatch(new RegExp(`^${ID} resent → failed \\(HTTP 503\\), execution .*: HTTP 503`));
  });

  it('refused without running anything: not delivered yet (that is a redrive), no export, access denied', async () => {
    exported(
      withDeliveryAttempt(
        classified,
        { ...attempt(1, '2025-08-13T10:30:46.500Z'), outcome: 'retryable', status_code: 503, error: 'HTTP 503' },
        TARGET,
        'retrying',
      ),
    );
    expect(await main(['deliveries', 'resend', ID, '--aws'])).toBe(1);
    expect(output.stderr).toBe(
      `webhook-gateway: ${ID} is not delivered (retrying): redrive it instead (deliveries redrive ${ID} --aws)\n`,
    );
    expect(sfn.calls()).toHaveLength(0);

    output.stderr = '';
    s3.reset();
    s3.on(GetObjectCommand).rejects(new NoSuchKey({ message: 'The specified key does not exist.', $metadata: {} }));
    expect(await main(['deliveries', 'resend', ID, '--aws'])).toBe(1);
    expect(output.stderr).toBe(
      `webhook-gateway: no export of ${ID} in s3://${BUCKET}/${exportKey(ID, 'conversation.json')}\n`,
    );

    // Without s3:ListBucket, S3 answers a missing key AccessDenied: not "access denied" alone.
    output.stderr = '';
    s3.on(GetObjectCommand).rejects(Object.assign(new Error('Access Denied'), { name: 'AccessDenied' }));
    expect(await main(['deliveries', 'resend', ID, '--aws'])).toBe(1);
    expect(output.stderr).toBe(
      `webhook-gateway: no export of ${ID} in s3://${BUCKET}/${exportKey(ID, 'conversation.json')}, or this role may not read it: S3 refused it (AccessDenied), which is also its answer for an object that does not exist to a role without s3:ListBucket on the bucket\n`,
    );

    output.stderr = '';
    exported(delivered);
    sfn.on(StartSyncExecutionCommand).rejects(
      Object.assign(
        new Error('User: arn:aws:iam::123456789012:user/ops is not authorized to perform: states:StartSyncExecution'),
        {
          name: 'AccessDeniedException',
        },
      ),
    );
    expect(await main(['deliveries', 'resend', ID, '--aws'])).toBe(1);
    expect(output.stderr.trim().split('\n')).toHaveLength(1);
    expect(output.stderr).toMatch(/^webhook-gateway: access denied: .*states:StartSyncExecution/);
    expect(sfn.commandCalls(StartSyncExecutionCommand)).toHaveLength(1);
  });
});
