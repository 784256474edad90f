import {
  AthenaClient,
  GetQueryResultsCommand as GetAthenaResultsCommand,
  GetQueryExecutionCommand,
  StartQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { CloudWatchLogsClient, GetQueryResultsCommand, StartQueryCommand } from '@aws-sdk/client-cloudwatch-logs';
import {
  BatchGetItemCommand,
  DynamoDBClient,
  GetItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { GetFunctionConfigurationCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SFNClient, StartSyncExecutionCommand } from '@aws-sdk/client-sfn';
import { GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { Template } from 'aws-cdk-lib/assertions';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConversationRecord } from '../../functions/domain/conversation.ts';
import { structuredJson } from '../../functions/domain/export-formats.ts';
import { AWS_STACK_OUTPUTS } from '../../local/cli/aws/stack.ts';
import { afterAttempt, deadEnvelope, describedStack, sqsMessage, succeeded } from '../support/aws-fixtures.ts';
import { runMain } from '../support/cli.ts';
import { startReceiver, type TestReceiver } from '../support/servers.ts';
import { cfnText, type Json, type Statement, type Synthesized, synthesize } from './support/synth.ts';

/**
 * The OperatorPolicyArn policy (infra/constructs/operator-policy.ts) against what the `--aws` commands call: every
 * subcommand the usage names with `--aws` runs against mocked AWS clients (never real AWS), and each SDK command it
 * sends must be an action the operator policy grants on the resource it names (or, for Athena, the analytics query
 * policy grants); the operator policy grants nothing that no command calls.
 */
const STACK = 'WebhookConversationGateway';
const ID = 'webhook_20250813_103045_testing_phase3valid_abc123';

/** The IAM service prefix of each SDK client the commands use. */
const mocks = {
  cloudformation: mockClient(CloudFormationClient),
  athena: mockClient(AthenaClient),
  s3: mockClient(S3Client),
  logs: mockClient(CloudWatchLogsClient),
  sqs: mockClient(SQSClient),
  states: mockClient(SFNClient),
  dynamodb: mockClient(DynamoDBClient),
  lambda: mockClient(LambdaClient),
  secretsmanager: mockClient(SecretsManagerClient),
};

/** Batch commands are authorized as their single-message action (SQS API reference). */
const BATCH_ACTIONS: Record<string, string> = {
  'sqs:ChangeMessageVisibilityBatch': 'sqs:ChangeMessageVisibility',
  'sqs:DeleteMessageBatch': 'sqs:DeleteMessage',
  'sqs:SendMessageBatch': 'sqs:SendMessage',
};

/** Actions the operator policy grants that no command sends, and why. */
const GRANTED_NOT_SENT: Record<string, string> = {
  's3:ListBucket': 'S3 then answers a missing export NoSuchKey rather than AccessDenied',
};

interface Sent {
  action: string;
  /** The stack outputs the request names (their output keys). */
  outputs: string[];
  command: string;
}

/** Every SDK command sent since the last reset, as its IAM action and the stack outputs its input names. */
function sent(): Sent[] {
  return Object.entries(mocks).flatMap(([service, mock]) =>
    mock.calls().map((call) => {
      const command = call.args[0] as { constructor: { name: string }; input: unknown };
      const action = `${service}:${command.constructor.name.replace(/Command$/, '')}`;
      const outputs = [...JSON.stringify(command.input).matchAll(/out-([A-Za-z]+)/g)].map((m) => m[1]!);
      return { action: BATCH_ACTIONS[action] ?? action, outputs, command: JSON.stringify(command.input) };
    }),
  );
}

function record(delivered: boolean): ConversationRecord {
  const envelope = deadEnvelope();
  return delivered ? afterAttempt(envelope, 'delivered') : envelope.conversation;
}

function exported(conversation: ConversationRecord) {
  return {
    Body: {
      transformToString: async () => JSON.stringify(structuredJson(conversation, '2025-08-13T10:30:47Z')),
    } as never,
  };
}

/** A deployed stack with one dead letter, whose redrive delivers; reset before each command. */
function deployedStack(): void {
  for (const mock of Object.values(mocks)) mock.reset();
  mocks.cloudformation
    .on(DescribeStacksCommand)
    .resolves(describedStack(Object.fromEntries(Object.values(AWS_STACK_OUTPUTS).map((key) => [key, `out-${key}`]))));
  mocks.athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q-1' });
  mocks.athena
    .on(GetQueryExecutionCommand)
    .resolves({ QueryExecution: { Status: { State: 'SUCCEEDED' }, StatementType: 'DML', Statistics: {} } });
  mocks.athena.on(GetAthenaResultsCommand).resolves({
    ResultSet: {
      ResultSetMetadata: { ColumnInfo: [{ Name: 'conversation_id', Type: 'varchar' }] },
      Rows: [{ Data: [{ VarCharValue: 'conversation_id' }] }],
    },
  });
  mocks.logs.on(StartQueryCommand).resolves({ queryId: 'l-1' });
  mocks.logs.on(GetQueryResultsCommand).resolves({ status: 'Complete', results: [] });
  mocks.s3.on(GetObjectCommand).resolves(exported(record(false)));
  mocks.dynamodb.on(QueryCommand).resolves({ Items: [] });
  mocks.dynamodb.on(BatchGetItemCommand).resolves({ Responses: {} });
  mocks.dynamodb.on(UpdateItemCommand).resolves({ Attributes: { pk: { S: 'endpoint#deal_analysis' } } });
  mocks.lambda.on(GetFunctionConfigurationCommand).resolves({ Environment: { Variables: {} } });
  mocks.secretsmanager.on(GetSecretValueCommand).resolves({ SecretString: '{}' });
  mocks.sqs.on(GetQueueAttributesCommand).resolves({ Attributes: {} });
  const dead = deadEnvelope();
  mocks.sqs
    .on(ReceiveMessageCommand)
    .resolvesOnce({ Messages: [sqsMessage(dead)] })
    .resolves({});
  mocks.states.on(StartSyncExecutionCommand).resolves(succeeded(afterAttempt(dead, 'delivered')));
}

/** The idempotency table holds the source's key, naming the conversation it started. */
const keyFound = () => mocks.dynamodb.on(GetItemCommand).resolves({ Item: { conversation_id: { S: ID } } });

/** Each `--aws` subcommand as an operator runs it, with what its mocked stack must hold for it to do its work. */
const COMMANDS: { argv: string[]; setup?: () => void }[] = [
  { argv: ['conversations', 'show', ID] },
  { argv: ['conversations', 'list', '--since', '2025-08-01'] },
  { argv: ['conversations', 'show', '--key', 'msg_1', '--source', 'crm'], setup: keyFound },
  { argv: ['conversations', 'list', '--key', 'msg_1', '--source', 'crm'], setup: keyFound },
  { argv: ['conversations', 'search', 'deals', '--since', '2025-08-01'] },
  { argv: ['conversations', 'query', 'SELECT conversation_id FROM conversations'] },
  { argv: ['deliveries', 'list'] },
  { argv: ['deliveries', 'redrive', '--all', '--dry-run'] },
  { argv: ['deliveries', 'redrive', ID] },
  { argv: ['deliveries', 'redrive', '--all', '--since', '2025-08-01T00:00:00Z'] },
  {
    argv: ['deliveries', 'resend', ID],
    setup: () => {
      const delivered = record(true);
      mocks.s3.on(GetObjectCommand).resolves(exported(delivered));
      const again = { ...deadEnvelope(), conversation: delivered, attempts: delivered.execution.delivery_attempts };
      mocks.states.on(StartSyncExecutionCommand).resolves(succeeded(afterAttempt(again, 'delivered')));
    },
  },
  { argv: ['endpoints', 'list'] },
  {
    argv: [
      'endpoints',
      'set',
      'deal_analysis',
      '--url',
      'https://crm.example.com/hooks/deals',
      '--rate',
      '5/s',
      '--secret',
      'whsec_bmV3bmV3bmV3bmV3bmV3bmV3',
    ],
  },
  { argv: ['endpoints', 'pause', 'deal_analysis'] },
  { argv: ['endpoints', 'resume', 'deal_analysis'] },
  {
    argv: ['endpoints', 'test', 'deal_analysis'],
    // The receiver the Delivers use is on this machine: the test delivery is POSTed there, never off the machine.
    setup: () => mocks.dynamodb.on(GetItemCommand).resolves({ Item: { url: { S: receiver.urlFor('deals') } } }),
  },
];

/**
 * Paths the runs above never take, whose calls the policy must allow too: a Logs Insights
 * query that fails midway is stopped (logs:StopQuery); a redrive that fails again puts the envelope back in the
 * dead-letter queue with the new attempt (sqs:SendMessage).
 */
const FAILURE_PATHS: { argv: string[]; setup: () => void; sends: string }[] = [
  {
    argv: ['conversations', 'show', ID],
    setup: () => mocks.logs.on(GetQueryResultsCommand).rejects(Object.assign(new Error('denied'), { name: 'X' })),
    sends: 'logs:StopQuery',
  },
  {
    argv: ['deliveries', 'redrive', ID],
    setup: () =>
      mocks.states.on(StartSyncExecutionCommand).resolves(succeeded(afterAttempt(deadEnvelope(), 'retryable'))),
    sends: 'sqs:SendMessage',
  },
];

let synthesized: Synthesized;
let template: Template;
let receiver: TestReceiver;
beforeAll(async () => {
  synthesized = synthesize({ stackName: STACK });
  template = synthesized.template;
  receiver = await startReceiver();
});
afterAll(async () => {
  synthesized?.cleanup();
  await receiver?.close();
});

function managedPolicy(prefix: string): Statement[] {
  const [policy] = Object.entries(template.findResources('AWS::IAM::ManagedPolicy')).filter(([id]) =>
    id.startsWith(prefix),
  );
  expect(policy, `a managed policy ${prefix}…`).toBeDefined();
  return (policy![1] as { Properties: { PolicyDocument: { Statement: Statement[] } } }).Properties.PolicyDocument
    .Statement;
}

const actionsOf = (s: Statement) => (Array.isArray(s.Action) ? s.Action : [s.Action]);

/** The logical id a stack output's value refers to (its Ref or GetAtt). */
function outputResource(outputKey: string): string {
  const value = cfnText((template.toJSON().Outputs as Record<string, { Value: Json }>)[outputKey]!.Value);
  const id = /\{(?:Ref|GetAtt):([A-Za-z0-9]+)/.exec(value)?.[1];
  expect(id, `output ${outputKey} names a resource of the stack`).toBeDefined();
  return id!;
}

/** Run every command, `--aws` on the stack: each must do its work (exit code 0, no error line). */
async function sentByEveryCommand(): Promise<Sent[]> {
  const all: Sent[] = [];
  const run = async ({ argv, setup }: { argv: string[]; setup?: () => void }) => {
    deployedStack();
    setup?.();
    const result = await runMain([...argv, '--aws', '--stack', STACK, '--region', 'us-east-1']);
    all.push(...sent());
    return result;
  };
  for (const command of COMMANDS) {
    const result = await run(command);
    expect(result.stderr, command.argv.join(' ')).not.toMatch(/^webhook-gateway: /m);
    expect(result.code, `${command.argv.join(' ')}: ${result.stdout}${result.stderr}`).toBe(0);
  }
  for (const path of FAILURE_PATHS) {
    await run(path);
    expect(sent().map((c) => c.action)).toContain(path.sends);
  }
  return all;
}

describe('the operator policy', () => {
  it('runs every --aws subcommand the usage names', async () => {
    const usage = (await runMain(['help'])).stdout;
    const named = [...usage.matchAll(/^ {2}(\w+) ([\w|]+) … --aws/gm)].flatMap(([, command, subs]) =>
      subs!.split('|').map((sub) => `${command} ${sub}`),
    );
    expect(named.length).toBeGreaterThanOrEqual(11);
    const run = new Set(COMMANDS.map(({ argv }) => `${argv[0]} ${argv[1]}`));
    expect(named.filter((c) => !run.has(c))).toEqual([]);
  });

  it('grants every action the commands send, on the resources they name', async () => {
    const operator = managedPolicy('OperatorPolicy');
    const analytics = managedPolicy('AnalyticsQueryPolicy');
    const calls = await sentByEveryCommand();
    expect(calls.length).toBeGreaterThan(30);
    const missing: string[] = [];
    for (const call of calls) {
      const granting = operator.filter((s) => s.Effect === 'Allow' && actionsOf(s).includes(call.action));
      if (call.action.startsWith('athena:')) {
        // The analytics query policy's own tests (analytics.test.ts) check its resources.
        if (!analytics.some((s) => actionsOf(s).includes(call.action))) missing.push(`${call.action} (analytics)`);
        continue;
      }
      // Every resource the request names must be one a granting statement names.
      const resources = call.outputs.map(outputResource);
      const ok = granting.some(
        (s) => cfnText(s.Resource) === '*' || resources.every((id) => cfnText(s.Resource).includes(id)),
      );
      if (!ok || granting.length === 0) missing.push(`${call.action} on ${resources.join(', ') || '(the stack)'}`);
    }
    expect([...new Set(missing)]).toEqual([]);

    // And nothing more: each action granted is one a command sends (or is listed with its reason).
    const sentActions = new Set(calls.map((c) => c.action));
    const granted = operator.flatMap(actionsOf);
    expect(granted.filter((a) => !sentActions.has(a) && !(a in GRANTED_NOT_SENT))).toEqual([]);
  });

  it('is a stack output', () => {
    const outputs = template.toJSON().Outputs as Record<string, { Value: Json }>;
    expect(cfnText(outputs.OperatorPolicyArn?.Value)).toMatch(/^\{Ref:OperatorPolicy[A-Z0-9]+\}$/);
  });
});
