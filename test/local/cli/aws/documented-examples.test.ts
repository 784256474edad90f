import { readFileSync } from 'node:fs';
import {
  AthenaClient,
  GetQueryResultsCommand as GetAthenaResultsCommand,
  GetQueryExecutionCommand,
  StartQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { CloudWatchLogsClient, GetQueryResultsCommand, StartQueryCommand } from '@aws-sdk/client-cloudwatch-logs';
import { DynamoDBClient, GetItemCommand, QueryCommand } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { SFNClient, StartSyncExecutionCommand } from '@aws-sdk/client-sfn';
import { GetQueueAttributesCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { structuredJson } from '../../../../functions/domain/export-formats.ts';
import { completeConversation, withAgentAnswer, withClassification } from '../../../../functions/domain/lifecycle.ts';
import { AWS_STACK_OUTPUTS } from '../../../../local/cli/aws/stack.ts';
import { PROJECT_ROOT } from '../../../../local/paths.ts';
import { afterAttempt, deadEnvelope, describedStack, sqsMessage, succeeded } from '../../../support/aws-fixtures.ts';
import { runMain } from '../../../support/cli.ts';
import { startedRecord } from '../../../support/fixtures.ts';

/**
 * Every `--aws` command the docs show in a shell block runs as written (placeholders filled in) against a mocked
 * deployed stack: exit code 0, no refused option, no error line (never real AWS).
 */
const cfn = mockClient(CloudFormationClient);
const athena = mockClient(AthenaClient);
const s3 = mockClient(S3Client);
const logs = mockClient(CloudWatchLogsClient);
const sqs = mockClient(SQSClient);
const sfn = mockClient(SFNClient);
const dynamo = mockClient(DynamoDBClient);
const ID = 'webhook_20250813_103045_testing_phase3valid_abc123';

/** The `npx webhook-gateway … --aws` lines of the shell blocks of a document. */
function awsExamples(doc: string): string[] {
  const text = readFileSync(`${PROJECT_ROOT}/${doc}`, 'utf8');
  const blocks = [...text.matchAll(/```bash\n([\s\S]*?)```/g)].map((m) => m[1]!);
  return blocks
    .flatMap((b) => b.split('\n'))
    .map((line) => line.trim())
    .filter((line) => line.startsWith('npx webhook-gateway ') && /--aws\b/.test(line));
}

/** A documented line as the arguments a shell would pass, its placeholders and optional parts filled in. */
function argv(line: string): string[] {
  const command = line
    .replace(/\s+#.*$/, '')
    .replace(/^npx webhook-gateway /, '')
    .replace(/\[--aws\]/g, '--aws')
    .replace(/\[--stack [^\]]+\]/g, '--stack WebhookConversationGateway')
    .replace(/\[--region [^\]]+\]/g, '--region us-east-1')
    .replace(/\[--profile [^\]]+\]/g, '--profile ops')
    .replace(/<conversation_id>|<id>|\bX\b/g, ID)
    .replace('"SELECT …"', '"SELECT webhook_type, count(*) AS n FROM conversations GROUP BY 1"');
  return [...command.matchAll(/"([^"]*)"|(\S+)/g)].map((m) => m[1] ?? m[2]!);
}

beforeEach(() => {
  for (const mock of [cfn, athena, s3, logs, sqs, sfn, dynamo]) mock.reset();
  // The attempt log a redrive reads first: nothing delivered since.
  dynamo.on(QueryCommand).resolves({ Items: [] });
  // The idempotency table holds the key a `--key` example looks up, for the conversation the examples name.
  dynamo.on(GetItemCommand).resolves({ Item: { conversation_id: { S: ID } } });
  cfn
    .on(DescribeStacksCommand)
    .resolves(
      describedStack(Object.fromEntries(Object.values(AWS_STACK_OUTPUTS).map((key) => [key, `value-of-${key}`]))),
    );
  athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q-1' });
  athena
    .on(GetQueryExecutionCommand)
    .resolves({ QueryExecution: { Status: { State: 'SUCCEEDED' }, StatementType: 'DML', Statistics: {} } });
  athena.on(GetAthenaResultsCommand).resolves({
    ResultSet: {
      ResultSetMetadata: { ColumnInfo: [{ Name: 'conversation_id', Type: 'varchar' }] },
      Rows: [{ Data: [{ VarCharValue: 'conversation_id' }] }],
    },
  });
  const record = completeConversation(
    withClassification(withAgentAnswer(startedRecord(), { response: 'deals' }, 40, new Date('2025-08-13T10:30:46Z'))),
    false,
    'req-1',
    new Date('2025-08-13T10:30:47Z'),
  );
  s3.on(GetObjectCommand).resolves({
    Body: { transformToString: async () => JSON.stringify(structuredJson(record, '2025-08-13T10:30:47Z')) } as never,
  });
  logs.on(StartQueryCommand).resolves({ queryId: 'l-1' });
  logs.on(GetQueryResultsCommand).resolves({ status: 'Complete', results: [] });
  // One dead letter, of the conversation the examples name: a redrive of it delivers.
  const dead = deadEnvelope();
  expect(dead.conversation_id).toBe(ID);
  sqs
    .on(ReceiveMessageCommand)
    .resolvesOnce({ Messages: [sqsMessage(dead)] })
    .resolves({});
  sfn.on(StartSyncExecutionCommand).resolves(succeeded(afterAttempt(dead, 'delivered')));
  sqs.on(GetQueueAttributesCommand).resolves({ Attributes: {} });
});

const examples = ['docs/operations.md', 'docs/deploy.md'].flatMap((doc) => awsExamples(doc).map((line) => [doc, line]));

describe('the documented --aws commands', () => {
  it('the docs show some', () => expect(examples.length).toBeGreaterThan(10));

  it.each(examples)('%s: %s', async (_doc, line) => {
    const result = await runMain(argv(line));
    expect(result.stderr).not.toMatch(/^webhook-gateway: /m);
    expect(result.code).toBe(0);
  });
});
