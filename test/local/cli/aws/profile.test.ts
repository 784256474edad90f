import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  AthenaClient,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  StartQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import {
  CloudWatchLogsClient,
  GetQueryResultsCommand as GetLogsResultsCommand,
  StartQueryCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import { BatchGetItemCommand, DynamoDBClient, QueryCommand } from '@aws-sdk/client-dynamodb';
import { GetFunctionConfigurationCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { GetObjectCommand, NoSuchKey, S3Client } from '@aws-sdk/client-s3';
import { SFNClient, StartSyncExecutionCommand } from '@aws-sdk/client-sfn';
import { GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { DLQ_URL, deadEnvelope, describedStack, QUEUE_URL, sqsMessage } from '../../../support/aws-fixtures.ts';
import { runMain } from '../../../support/cli.ts';

/**
 * `--profile P` on every `--aws` command: each SDK client it makes signs with that profile's credentials (not the
 * environment's, not AWS_PROFILE's) and, without --region, works in that profile's region. The profile files are
 * temporary; the clients are mocked (never real AWS), and each mock asks the client it was called on what it resolved.
 */
const cfn = mockClient(CloudFormationClient);
const sqs = mockClient(SQSClient);
const athena = mockClient(AthenaClient);
const s3 = mockClient(S3Client);
const logs = mockClient(CloudWatchLogsClient);
const dynamo = mockClient(DynamoDBClient);
const lambda = mockClient(LambdaClient);
const sfn = mockClient(SFNClient);

const ID = 'webhook_20261129_123213_testing_phase3valid_a0ci3ntgci';
let dir: string;
const env = () => ({
  AWS_CONFIG_FILE: path.join(dir, 'config'),
  AWS_SHARED_CREDENTIALS_FILE: path.join(dir, 'credentials'),
  AWS_REGION: undefined,
  AWS_PROFILE: 'other',
});

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'aws-profile-'));
  writeFileSync(path.join(dir, 'config'), '[profile ops]\nregion = eu-west-1\n\n[profile other]\nregion = us-west-2\n');
  writeFileSync(
    path.join(dir, 'credentials'),
    '[ops]\naws_access_key_id = AKIAOPSPROFILE\naws_secret_access_key = ops-secret\n\n' +
      '[other]\naws_access_key_id = AKIAOTHERPROFILE\naws_secret_access_key = other-secret\n',
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** What each client was called with: service → "access key id @ region". */
let seen: Record<string, string>;
/** A command's mocked behaviour: what aws-sdk-client-mock's `on(Command)` returns, as far as this file uses it. */
interface Faked {
  callsFake(fn: (input: unknown, getClient: () => { config: object }) => unknown): unknown;
}
function recording(service: string, stub: Faked, answer: unknown): void {
  stub.callsFake(async (_input, getClient) => {
    const config = getClient().config as {
      credentials: () => Promise<{ accessKeyId: string }>;
      region: () => Promise<string>;
    };
    seen[service] = `${(await config.credentials()).accessKeyId} @ ${await config.region()}`;
    if (answer instanceof Error) throw answer;
    return answer;
  });
}

beforeEach(() => {
  seen = {};
  for (const mock of [cfn, sqs, athena, s3, logs, dynamo, lambda, sfn]) mock.reset();
  recording(
    'cloudformation',
    cfn.on(DescribeStacksCommand),
    describedStack({
      FailedDeliveryQueueUrl: QUEUE_URL,
      FailedDeliveryDeadLetterQueueUrl: DLQ_URL,
      ExportBucketName: 'prod-exports',
      ExecutionLogGroupName: '/aws/vendedlogs/states/conversation',
      AnalyticsWorkGroupName: 'wg',
      AnalyticsDatabaseName: 'db',
      DeliveriesTableName: 'deliveries',
      DeliverFunctionName: 'Deliver',
      RedeliveryStateMachineArn: 'arn:aws:states:eu-west-1:1:stateMachine:redelivery',
    }),
  );
  recording('sqs', sqs.on(ReceiveMessageCommand), {});
  sqs.on(GetQueueAttributesCommand).resolves({ Attributes: {} });
  recording('athena', athena.on(StartQueryExecutionCommand), { QueryExecutionId: 'q-1' });
  athena.on(GetQueryExecutionCommand).resolves({ QueryExecution: { Status: { State: 'SUCCEEDED' } } });
  athena.on(GetQueryResultsCommand).resolves({ ResultSet: { Rows: [], ResultSetMetadata: { ColumnInfo: [] } } });
  recording('s3', s3.on(GetObjectCommand), new NoSuchKey({ message: 'no such key', $metadata: {} }));
  recording('logs', logs.on(StartQueryCommand), { queryId: 'l-1' });
  logs.on(GetLogsResultsCommand).resolves({ status: 'Complete', results: [] });
  recording('dynamodb', dynamo.on(BatchGetItemCommand), { Responses: {} });
  recording('lambda', lambda.on(GetFunctionConfigurationCommand), { Environment: { Variables: {} } });
});

/**
 * What the SDK printed with console.warn (its multiple-credential-sources warning goes there, once per process, when
 * a profile and AWS_ACCESS_KEY_ID are both set, as test/setup.ts sets the latter for every test): nothing, ever.
 */
let warned: unknown[][];
beforeEach(() => {
  warned = [];
  vi.spyOn(console, 'warn').mockImplementation((...args: unknown[]) => void warned.push(args));
});
afterEach(() => {
  vi.restoreAllMocks();
  expect(warned).toEqual([]);
});

describe('--profile P', () => {
  it('with AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY set as well: the profile wins, silently (docs/operations.md)', async () => {
    const result = await runMain(['deliveries', 'list', '--aws', '--profile', 'ops'], {
      ...env(),
      AWS_PROFILE: undefined,
      AWS_ACCESS_KEY_ID: 'AKIAFROMENV',
      AWS_SECRET_ACCESS_KEY: 'env-secret',
    });
    expect(result.code).toBe(0);
    expect(seen).toEqual({ cloudformation: 'AKIAOPSPROFILE @ eu-west-1', sqs: 'AKIAOPSPROFILE @ eu-west-1' });
    expect(result.stderr).not.toMatch(/credential|profile|AWS_ACCESS_KEY_ID/i);
    expect(warned).toEqual([]);
  });

  it('AWS_PROFILE with AWS_ACCESS_KEY_ID set as well: the profile wins, silently', async () => {
    const result = await runMain(['deliveries', 'list', '--aws'], { ...env(), AWS_PROFILE: 'ops' });
    expect(result.code).toBe(0);
    expect(seen).toEqual({ cloudformation: 'AKIAOPSPROFILE @ eu-west-1', sqs: 'AKIAOPSPROFILE @ eu-west-1' });
    expect(warned).toEqual([]);
  });

  it.each([
    [['deliveries', 'list', '--aws', '--json'], 0, ['cloudformation', 'sqs']],
    [['conversations', 'query', 'SELECT 1', '--aws'], 0, ['cloudformation', 'athena']],
    // Neither an export nor an execution of it: exit 1, after asking S3 and the logs.
    [['conversations', 'show', ID, '--aws', '--json'], 1, ['cloudformation', 's3', 'logs']],
    [['endpoints', 'list', '--aws', '--json'], 0, ['cloudformation', 'dynamodb', 'lambda']],
  ] as const)('%j: every client signs with the profile, in its region', async (args, code, services) => {
    const result = await runMain([...args, '--profile', 'ops'], env());
    expect(result.stderr).not.toMatch(/credential|profile|region/i);
    expect(result.code).toBe(code);
    expect(seen).toEqual(Object.fromEntries(services.map((s) => [s, 'AKIAOPSPROFILE @ eu-west-1'])));
  });

  it('deliveries redrive --aws: an AWS error on one delivery names the profile and its region', async () => {
    const envelope = deadEnvelope('aaa111');
    sqs.reset();
    sqs
      .on(ReceiveMessageCommand)
      .resolvesOnce({ Messages: [sqsMessage(envelope)] })
      .resolves({});
    sfn
      .on(StartSyncExecutionCommand)
      .rejects(
        Object.assign(new Error('The security token included in the request is expired'), { name: 'ExpiredToken' }),
      );
    // Whether it was delivered meanwhile is read with the same profile, in its region (nothing delivered here).
    recording('dynamodb', dynamo.on(QueryCommand), { Items: [] });
    const result = await runMain(['deliveries', 'redrive', '--all', '--aws', '--profile', 'ops'], env());
    expect(result.code).toBe(1);
    expect(seen).toMatchObject({ dynamodb: 'AKIAOPSPROFILE @ eu-west-1', s3: 'AKIAOPSPROFILE @ eu-west-1' });
    expect(result.stderr).toBe('');
    expect(result.stdout.split('\n')[0]).toBe(
      `[1/1] ${envelope.conversation_id} → error: AWS rejected the credentials of profile "ops" (--profile) (ExpiredToken): they have expired: run "aws sso login --profile ops" if it uses SSO, else renew its keys, then try again [region eu-west-1, profile "ops"]; nothing was started: it is back in the dead-letter queue now (run the same command again)`,
    );
  });

  it('--region still wins over the profile’s region', async () => {
    const result = await runMain(['deliveries', 'list', '--aws', '--profile', 'ops', '--region', 'ap-south-1'], env());
    expect(result.code).toBe(0);
    expect(seen).toEqual({ cloudformation: 'AKIAOPSPROFILE @ ap-south-1', sqs: 'AKIAOPSPROFILE @ ap-south-1' });
  });

  it.each([
    [['deliveries', 'list', '--aws'], 'eu-west-1'],
    [['conversations', 'show', ID, '--aws'], 'eu-west-1'],
    [['endpoints', 'list', '--aws', '--region', 'ap-south-1'], 'ap-south-1'],
  ])('%j on a stack that is not in the region: names the region the profile or --region gave', async (args, region) => {
    recording(
      'cloudformation',
      cfn.on(DescribeStacksCommand),
      Object.assign(new Error('Stack with id WebhookConversationGateway does not exist'), { name: 'ValidationError' }),
    );
    const result = await runMain([...args, '--profile', 'ops'], env());
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n').at(-1)).toBe(
      `webhook-gateway: stack "WebhookConversationGateway" (the default) does not exist in ${region}: pass --stack NAME (and --region R) of a deployed webhook gateway, NAME being the context key stackName it was deployed with (cdk.json or -c stackName=…: docs/deploy.md)`,
    );
  });

  it('a profile that is in neither file: named, as the flag that gave it', async () => {
    const result = await runMain(['deliveries', 'list', '--aws', '--profile', 'nope', '--region', 'eu-west-1'], env());
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^webhook-gateway: .*profile "nope"/);
    expect(result.stdout).toBe('');
  });

  it('without --aws, or empty: refused before anything is read', async () => {
    for (const [args, message] of [
      [['deliveries', 'list', '--profile', 'ops'], '--stack, --region and --profile go with --aws'],
      [['endpoints', 'list', '--aws', '--profile', ''], '--profile needs a value'],
    ] as const) {
      const result = await runMain([...args], env());
      expect(result.code).toBe(1);
      expect(result.stderr).toBe(`webhook-gateway: ${message}\n`);
    }
    expect(seen).toEqual({});
  });

  it('the help of each --aws command offers it', async () => {
    for (const group of ['conversations', 'deliveries', 'endpoints']) {
      const help = await runMain([group, '--help']);
      // The usage line that offers --aws (a filter's line may name it too: "--aws needs --source too").
      const awsLines = help.stdout.split('\n').filter((line) => line.includes(' --aws ['));
      expect(awsLines).toHaveLength(1);
      expect(awsLines[0]).toContain('--aws [--stack NAME] [--region R] [--profile P]');
    }
  });
});
