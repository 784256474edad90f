import {
  AthenaClient,
  GetQueryResultsCommand as GetAthenaResultsCommand,
  GetQueryExecutionCommand,
  StartQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import {
  CloudWatchLogsClient,
  GetQueryResultsCommand,
  StartQueryCommand,
  StopQueryCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { structuredJson } from '../../../../functions/domain/export-formats.ts';
import { idempotencyPk } from '../../../../functions/domain/idempotency.ts';
import { completeConversation, withAgentAnswer, withClassification } from '../../../../functions/domain/lifecycle.ts';
import {
  executionFromLogEvents,
  executionsFromLogs,
  INSIGHTS_MAX_ROWS,
} from '../../../../local/cli/aws/conversations.ts';
import { main } from '../../../../local/cli/main.ts';
import { describedStack } from '../../../support/aws-fixtures.ts';
import { captureOutput } from '../../../support/cli.ts';
import { startedRecord } from '../../../support/fixtures.ts';

/** `conversations list | search | show --aws` against a mocked deployed stack (never real AWS). */
const cfn = mockClient(CloudFormationClient);
const s3 = mockClient(S3Client);
const logs = mockClient(CloudWatchLogsClient);
const athena = mockClient(AthenaClient);
const dynamodb = mockClient(DynamoDBClient);

const ID = 'webhook_20250813_103045_testing_phase3valid_abc123';
const SEED_QUERY = 'What are the top 5 deals closing this quarter?';
const FOLDER = `conversation-history/2025/08/13/${ID}/`;
const ARN = `arn:aws:states:us-east-1:123456789012:express:ConversationWorkflow:req-1:0a1b`;
const record = completeConversation(
  withClassification(
    withAgentAnswer(startedRecord(), { response: 'Top deals: Acme' }, 40, new Date('2025-08-13T10:30:46Z')),
  ),
  false,
  'req-1',
  new Date('2025-08-13T10:30:47Z'),
);

/** The part of an SDK stream the CLI reads. */
function body(text: string) {
  return { transformToString: async () => text } as never;
}

function logEvent(id: number, type: string, ms: number, details: Record<string, unknown> = {}) {
  return JSON.stringify({
    id: String(id),
    type,
    details,
    event_timestamp: String(Date.parse('2025-08-13T10:30:45Z') + ms),
    execution_arn: ARN,
  });
}

let output: ReturnType<typeof captureOutput>;
beforeEach(() => {
  cfn.reset();
  s3.reset();
  logs.reset();
  athena.reset();
  dynamodb.reset();
  output = captureOutput();
  cfn.on(DescribeStacksCommand).resolves(
    describedStack({
      ExportBucketName: 'prod-exports',
      ExecutionLogGroupName: '/aws/vendedlogs/states/conversation',
      AnalyticsWorkGroupName: 'WebhookConversationGateway-analytics',
      AnalyticsDatabaseName: 'webhook_conversation_gateway',
      IdempotencyTableName: 'prod-idempotency',
    }),
  );
  // Athena answers the search with the record's row (the columns searchSql selects), in one page.
  const columns = [
    'conversation_id',
    'received_at',
    'source_system',
    'source_process',
    'webhook_type',
    'status',
    'delivery_status',
    'total_time_ms',
    'query',
    'response',
    'matches',
  ];
  const types = [
    'varchar',
    'varchar',
    'varchar',
    'varchar',
    'varchar',
    'varchar',
    'varchar',
    'bigint',
    'varchar',
    'varchar',
    'bigint',
  ];
  const values = [
    ID,
    record.metadata.received_at,
    'testing_system',
    'phase3_validation',
    'deal_analysis',
    'completed',
    'pending',
    '2000',
    SEED_QUERY,
    'Top deals: Acme',
    '1',
  ];
  athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q-1' });
  athena.on(GetQueryExecutionCommand).resolves({
    QueryExecution: {
      Status: { State: 'SUCCEEDED' },
      StatementType: 'DML',
      Statistics: { DataScannedInBytes: 2_345_678 },
    },
  });
  athena.on(GetAthenaResultsCommand).resolves({
    ResultSet: {
      ResultSetMetadata: { ColumnInfo: columns.map((Name, i) => ({ Name, Type: types[i]!, Label: Name })) },
      Rows: [{ Data: columns.map((c) => ({ VarCharValue: c })) }, { Data: values.map((v) => ({ VarCharValue: v })) }],
    },
  });
  s3.on(GetObjectCommand, { Key: `${FOLDER}conversation.json` }).callsFake(() => ({
    Body: body(JSON.stringify(structuredJson(record, '2025-08-13T10:30:47Z'))),
  }));
});
afterEach(() => vi.restoreAllMocks());

describe('conversations --aws', () => {
  it("search runs one Athena query in the stack's workgroup and database, from --since, and prints the hits", async () => {
    expect(await main(['conversations', 'search', 'ACME', '--aws', '--since', '2025-08-12'])).toBe(0);
    expect(output.stdout).toMatch(
      new RegExp(
        `^${ID}\\s.*testing_system/phase3_validation\\s+deal_analysis\\s+completed\\s+pending\\s+answer\\s+Top deals: Acme`,
        'm',
      ),
    );
    const [start] = athena.commandCalls(StartQueryExecutionCommand).map((c) => c.args[0].input);
    expect(start).toMatchObject({
      WorkGroup: 'WebhookConversationGateway-analytics',
      QueryExecutionContext: { Catalog: 'AwsDataCatalog', Database: 'webhook_conversation_gateway' },
    });
    expect(start!.QueryString).toMatch(/FROM conversations\nWHERE day >= replace\(substr\(\?, 1, 10\), '-', '\/'\)/);
    // String values as SQL literals, the text lowercased, the since date as the exports spell times.
    expect(start!.ExecutionParameters).toEqual([
      "'2025-08-12T00:00:00.000Z'",
      "'2025-08-12T00:00:00.000Z'",
      "'acme'",
      "'acme'",
      "'acme'",
      "'acme'",
    ]);
    expect(output.stderr).toMatch(
      /1 exported conversations match "ACME" in the WebhookConversationGateway stack's exports \(Athena: 2\.35 MB scanned\)/,
    );
    expect(s3.commandCalls(GetObjectCommand)).toHaveLength(0);
  });

  it('list --thread: a thread started again after THREAD_TTL_DAYS lists its earlier life first, as the local list does', async () => {
    const columns = ['conversation_id', 'received_at', 'source_system', 'source_process', 'thread_id', 'thread_turn'];
    const turn = (id: string, at: string, n: number) => [id, at, 'crm', 'sync', 'q3', String(n)];
    // As Athena orders them (source, turn): the two lives interleaved.
    const rows = [
      turn('first-1', '2025-06-01T09:00:00.000Z', 1),
      turn('again-1', '2025-08-01T09:00:00.000Z', 1),
      turn('first-2', '2025-06-01T09:05:00.000Z', 2),
      turn('again-2', '2025-08-01T09:05:00.000Z', 2),
      turn('first-3', '2025-06-01T09:10:00.000Z', 3),
    ];
    athena.on(GetAthenaResultsCommand).resolves({
      ResultSet: {
        ResultSetMetadata: {
          ColumnInfo: columns.map((Name) => ({
            Name,
            Type: Name === 'thread_turn' ? 'bigint' : 'varchar',
            Label: Name,
          })),
        },
        Rows: [columns, ...rows].map((r) => ({ Data: r.map((v) => ({ VarCharValue: v })) })),
      },
    });
    expect(await main(['conversations', 'list', '--aws', '--thread', 'q3', '--since', '2025-05-01', '--json'])).toBe(0);
    // Before: first-1, again-1, first-2, again-2, first-3.
    expect((JSON.parse(output.stdout) as { conversation_id: string }[]).map((r) => r.conversation_id)).toEqual([
      'first-1',
      'first-2',
      'first-3',
      'again-1',
      'again-2',
    ]);
  });

  it('list without --since searches the last 7 days and says so', async () => {
    const before = Date.now();
    expect(await main(['conversations', 'list', '--aws', '--json'])).toBe(0);
    expect(output.stderr).toMatch(/searches the last 7 days/);
    const [start] = athena.commandCalls(StartQueryExecutionCommand).map((c) => c.args[0].input);
    const since = Date.parse(start!.ExecutionParameters![0]!.slice(1, -1));
    expect(since).toBeGreaterThanOrEqual(before - 7 * 86_400_000 - 1000);
    expect(since).toBeLessThanOrEqual(Date.now() - 7 * 86_400_000 + 1000);
    expect(start!.QueryString).not.toContain('strpos');
    // The local list's fields (local/history/conversations.ts, summarize), so one script reads both.
    expect(JSON.parse(output.stdout)).toEqual([
      {
        conversation_id: ID,
        received_at: record.metadata.received_at,
        source_system: 'testing_system',
        source_process: 'phase3_validation',
        webhook_type: 'deal_analysis',
        status: 'completed',
        delivery_status: 'pending',
        total_time_ms: 2000,
        executions: null,
        query: SEED_QUERY,
        thread_id: null,
        thread_turn: null,
        idempotency_key: null,
        webhook_id: null,
      },
    ]);
  });

  it("list --key --source finds the conversation the stack's idempotency table holds for the source's key", async () => {
    dynamodb
      .on(GetItemCommand, { Key: { pk: { S: idempotencyPk('testing_system', 'msg_2Zq8') } } })
      .resolves({ Item: { conversation_id: { S: ID } } });
    expect(
      await main(['conversations', 'list', '--aws', '--key', 'msg_2Zq8', '--source', 'Testing_System', '--json']),
    ).toBe(0);
    expect(dynamodb.commandCalls(GetItemCommand)[0]!.args[0].input).toMatchObject({ TableName: 'prod-idempotency' });
    expect(output.stderr).toContain(`"msg_2Zq8" of testing_system started ${ID} (the stack's idempotency table)`);
    // One Athena query for that conversation, from the second its id carries (not the last 7 days).
    const [start] = athena.commandCalls(StartQueryExecutionCommand).map((c) => c.args[0].input);
    expect(start!.QueryString).toContain('strpos(conversation_id, ?) > 0');
    expect(start!.ExecutionParameters).toEqual([
      "'2025-08-13T10:30:45.000Z'",
      "'2025-08-13T10:30:45.000Z'",
      `'${ID}'`,
      "'testing_system'",
      "'testing_system'",
    ]);
    expect(output.stderr).not.toMatch(/last 7 days/);
    expect(JSON.parse(output.stdout)).toEqual([
      expect.objectContaining({ conversation_id: ID, idempotency_key: 'msg_2Zq8', webhook_id: null }),
    ]);
  });

  it('show --key --source shows that conversation; a key the table does not hold, or no --source, is one clear line', async () => {
    dynamodb.on(GetItemCommand).resolves({ Item: { conversation_id: { S: ID } } });
    logs.on(StartQueryCommand).resolves({ queryId: 'q1' });
    logs.on(GetQueryResultsCommand).resolves({ status: 'Complete', results: [] });
    expect(await main(['conversations', 'show', '--aws', '--key', 'order-7', '--source', 'testing_system'])).toBe(0);
    expect(output.stdout).toContain(`conversation ${ID}`);
    expect(dynamodb.commandCalls(GetItemCommand)[0]!.args[0].input.Key).toEqual({
      pk: { S: idempotencyPk('testing_system', 'order-7') },
    });
    dynamodb.on(GetItemCommand).resolves({});
    expect(await main(['conversations', 'show', '--aws', '--key', 'order-8', '--source', 'testing_system'])).toBe(1);
    expect(output.stderr).toMatch(
      /no key "order-8" of testing_system in the WebhookConversationGateway stack's idempotency table: it keeps a key 24 hours/,
    );
    dynamodb.resetHistory();
    expect(await main(['conversations', 'list', '--aws', '--key', 'order-8'])).toBe(1);
    expect(output.stderr).toMatch(/--key with --aws needs --source with the one source system that sent it/);
    expect(dynamodb.commandCalls(GetItemCommand)).toHaveLength(0);
  });

  it('list with nothing to show says so, not that nothing matches ""', async () => {
    athena.on(GetAthenaResultsCommand).resolves({
      ResultSet: {
        ResultSetMetadata: { ColumnInfo: [{ Name: 'conversation_id', Type: 'varchar' }] },
        Rows: [{ Data: [{ VarCharValue: 'conversation_id' }] }],
      },
    });
    expect(await main(['conversations', 'list', '--aws'])).toBe(0);
    expect(output.stdout).toBe('No exported conversations in the last 7 days (use --since for more).\n');
    output.restore();
    output = captureOutput();
    expect(await main(['conversations', 'list', '--aws', '--source', 'crm', '--since', '2025-08-01'])).toBe(0);
    expect(output.stdout).toBe('No exported conversations match these filters.\n');
  });

  it('show prints the exported record and the timeline folded from the Express log group', async () => {
    logs.on(StartQueryCommand).resolvesOnce({ queryId: 'q1' }).resolvesOnce({ queryId: 'q2' });
    logs.on(GetQueryResultsCommand, { queryId: 'q1' }).resolves({
      status: 'Complete',
      results: [
        [
          { field: 'execution_arn', value: ARN },
          { field: 'count()', value: '9' },
        ],
      ],
    });
    const events = [
      logEvent(1, 'ExecutionStarted', 0),
      logEvent(2, 'TaskStateEntered', 1, { name: 'Validate' }),
      logEvent(3, 'LambdaFunctionScheduled', 2),
      logEvent(4, 'TaskStateExited', 10, { name: 'Validate' }),
      logEvent(5, 'TaskStateEntered', 11, { name: 'Deliver' }),
      logEvent(6, 'LambdaFunctionScheduled', 12),
      logEvent(7, 'LambdaFunctionFailed', 20, { error: 'DeliveryRetryableError', cause: '{"message":"HTTP 503"}' }),
      logEvent(8, 'LambdaFunctionScheduled', 1020),
      logEvent(9, 'TaskStateExited', 1040, { name: 'Deliver' }),
      logEvent(10, 'ExecutionSucceeded', 1100),
    ];
    logs
      .on(GetQueryResultsCommand, { queryId: 'q2' })
      .resolves({ status: 'Complete', results: events.map((m) => [{ field: '@message', value: m }]) });
    expect(await main(['conversations', 'show', ID, '--aws'])).toBe(0);
    expect(output.stdout).toContain(`conversation ${ID}`);
    expect(output.stdout).toContain(`s3://prod-exports/${FOLDER}`);
    expect(output.stdout).toMatch(/execution req-1 \(ConversationWorkflow\) SUCCEEDED/);
    expect(output.stdout).toMatch(/Deliver\s+\+11 ms\s+1029 ms\s+1 {2}succeeded/);
    expect(output.stdout).toMatch(/path: Validate → Deliver/);
    // One step to the execution's page in the Step Functions console (Express: read from the log group around its start).
    expect(output.stdout).toContain(
      `console: https://us-east-1.console.aws.amazon.com/states/home?region=us-east-1#/express-executions/details/${ARN}?startDate=`,
    );
    const first = logs.commandCalls(StartQueryCommand)[0]!.args[0].input;
    expect(first.queryString).toContain(`filter @message like "${ID}"`);
    expect(first.logGroupNames).toEqual(['/aws/vendedlogs/states/conversation']);
  });

  it('show of a history longer than one Logs Insights answer (10,000 rows, no next page) says it is cut', async () => {
    logs.on(StartQueryCommand).resolvesOnce({ queryId: 'q1' }).resolvesOnce({ queryId: 'q2' });
    logs.on(GetQueryResultsCommand, { queryId: 'q1' }).resolves({
      status: 'Complete',
      results: [[{ field: 'execution_arn', value: ARN }]],
    });
    const started = logEvent(1, 'ExecutionStarted', 0);
    logs.on(GetQueryResultsCommand, { queryId: 'q2' }).resolves({
      status: 'Complete',
      results: Array.from({ length: INSIGHTS_MAX_ROWS }, () => [{ field: '@message', value: started }]),
    });
    expect(await main(['conversations', 'show', ID, '--aws'])).toBe(0);
    expect(output.stderr).toContain(
      `the executions of ${ID} logged more than 10000 events: only the first 10000 are shown (Logs Insights answers no more)`,
    );
  });

  it("show of an asynchronous conversation lists its accept execution too, from the accept workflow's log group", async () => {
    cfn.on(DescribeStacksCommand).resolves(
      describedStack({
        ExportBucketName: 'prod-exports',
        ExecutionLogGroupName: '/aws/vendedlogs/states/gw-conversation',
        RedeliveryExecutionLogGroupName: '/aws/vendedlogs/states/gw-redelivery',
        AcceptExecutionLogGroupName: '/aws/vendedlogs/states/gw-accept',
      }),
    );
    const ACCEPT = 'arn:aws:states:us-east-1:123456789012:express:AcceptWorkflow:req-0:9f9f';
    logs.on(StartQueryCommand).resolvesOnce({ queryId: 'q1' }).resolvesOnce({ queryId: 'q2' });
    logs.on(GetQueryResultsCommand, { queryId: 'q1' }).resolves({
      status: 'Complete',
      results: [ACCEPT, ARN].map((arn) => [
        { field: 'execution_arn', value: arn },
        { field: 'count()', value: '3' },
      ]),
    });
    const accepted = [
      JSON.parse(logEvent(1, 'ExecutionStarted', -5)),
      JSON.parse(logEvent(2, 'TaskStateEntered', -4, { name: 'Validate' })),
      JSON.parse(logEvent(3, 'ExecutionSucceeded', -3)),
    ].map((e) => JSON.stringify({ ...e, execution_arn: ACCEPT }));
    const run = [logEvent(4, 'ExecutionStarted', 0), logEvent(5, 'ExecutionSucceeded', 10)];
    logs
      .on(GetQueryResultsCommand, { queryId: 'q2' })
      .resolves({ status: 'Complete', results: [...accepted, ...run].map((m) => [{ field: '@message', value: m }]) });
    expect(await main(['conversations', 'show', ID, '--aws'])).toBe(0);
    expect(logs.commandCalls(StartQueryCommand)).toHaveLength(2); // both queries checked below, neither skipped
    for (const call of logs.commandCalls(StartQueryCommand))
      expect(call.args[0].input.logGroupNames).toEqual([
        '/aws/vendedlogs/states/gw-conversation',
        '/aws/vendedlogs/states/gw-redelivery',
        '/aws/vendedlogs/states/gw-accept',
      ]);
    expect(output.stdout).toMatch(
      /execution req-0 \(AcceptWorkflow\) SUCCEEDED[\s\S]*execution req-1 \(ConversationWorkflow\)/,
    );
  });

  it('show says so when the history has aged out of the logs', async () => {
    logs.on(StartQueryCommand).resolves({ queryId: 'q1' });
    logs.on(GetQueryResultsCommand).resolves({ status: 'Complete', results: [] });
    expect(await main(['conversations', 'show', ID, '--aws'])).toBe(0);
    expect(output.stdout).toMatch(/No execution history for .* it may have aged out of the logs/);
    expect(output.stdout).toMatch(/The export above is the system of record/);
  });

  it('--stack or --region without --aws is refused, not run on the local data folder', async () => {
    for (const args of [
      ['conversations', 'list', '--stack', 'Prod'],
      ['conversations', 'search', 'renewal', '--region', 'eu-west-1'],
      ['conversations', 'show', ID, '--stack', 'Prod'],
    ]) {
      output.restore();
      output = captureOutput();
      expect(await main(args), args.join(' ')).toBe(1);
      expect(output.stderr).toBe('webhook-gateway: --stack, --region and --profile go with --aws\n');
      expect(output.stdout).toBe('');
    }
    expect(cfn.commandCalls(DescribeStacksCommand)).toHaveLength(0);
  });

  it('show still prints the export when the logs cannot be read (access denied, too many queries), and says why', async () => {
    logs
      .on(StartQueryCommand)
      .rejectsOnce(
        Object.assign(
          new Error('User: arn:aws:iam::123456789012:user/ops is not authorized to perform: logs:StartQuery'),
          { name: 'AccessDeniedException' },
        ),
      )
      .rejectsOnce(
        Object.assign(new Error('Account maximum query concurrency limit of [30] reached.'), {
          name: 'LimitExceededException',
        }),
      );
    expect(await main(['conversations', 'show', ID, '--aws'])).toBe(0);
    expect(output.stdout).toContain(`conversation ${ID}`);
    expect(output.stdout).toContain(`s3://prod-exports/${FOLDER}`);
    expect(output.stderr).toContain(
      `webhook-gateway: the execution history of ${ID} could not be read (access denied: User: arn:aws:iam::123456789012:user/ops is not authorized to perform: logs:StartQuery: these credentials need the stack's OperatorPolicyArn policy (docs/deploy.md#after-the-first-deploy)); the export above is the system of record\n`,
    );
    output.restore();
    output = captureOutput();
    expect(await main(['conversations', 'show', ID, '--aws', '--json'])).toBe(0);
    expect(JSON.parse(output.stdout)).toMatchObject({ conversation: { conversation_id: ID }, executions: [] });
    expect(output.stderr).toMatch(/could not be read \(.*LimitExceededException.*concurrency limit/);
  });

  it('show of a conversation never exported (its run failed before Export) prints its executions, which say why', async () => {
    s3.on(GetObjectCommand).rejects(
      Object.assign(new Error('The specified key does not exist.'), { name: 'NoSuchKey' }),
    );
    logs.on(StartQueryCommand).resolvesOnce({ queryId: 'q1' }).resolvesOnce({ queryId: 'q2' });
    logs.on(GetQueryResultsCommand, { queryId: 'q1' }).resolves({
      status: 'Complete',
      results: [[{ field: 'execution_arn', value: ARN }]],
    });
    const events = [
      logEvent(1, 'ExecutionStarted', 0),
      logEvent(2, 'TaskStateEntered', 1, { name: 'InvokeManagerAgent' }),
      logEvent(3, 'ExecutionFailed', 900, {
        error: 'States.DataLimitExceeded',
        cause: 'The state/task returned a result with a size exceeding the maximum',
      }),
    ];
    logs
      .on(GetQueryResultsCommand, { queryId: 'q2' })
      .resolves({ status: 'Complete', results: events.map((m) => [{ field: '@message', value: m }]) });
    expect(await main(['conversations', 'show', ID, '--aws'])).toBe(0);
    expect(output.stdout).toContain(
      `conversation ${ID}: no export in s3://prod-exports/${FOLDER} (still running, or its run ended before its export: the executions below say why)`,
    );
    expect(output.stdout).toMatch(/execution req-1 \(ConversationWorkflow\) FAILED/);
    expect(output.stdout).toContain('States.DataLimitExceeded');
  });

  it('show of a conversation whose export S3 refuses (AccessDenied: also its answer for a missing key without s3:ListBucket) reads its executions', async () => {
    s3.on(GetObjectCommand).rejects(Object.assign(new Error('Access Denied'), { name: 'AccessDenied' }));
    logs.on(StartQueryCommand).resolvesOnce({ queryId: 'q1' }).resolvesOnce({ queryId: 'q2' });
    logs.on(GetQueryResultsCommand, { queryId: 'q1' }).resolves({
      status: 'Complete',
      results: [[{ field: 'execution_arn', value: ARN }]],
    });
    logs.on(GetQueryResultsCommand, { queryId: 'q2' }).resolves({
      status: 'Complete',
      results: [logEvent(1, 'ExecutionStarted', 0)].map((m) => [{ field: '@message', value: m }]),
    });
    expect(await main(['conversations', 'show', ID, '--aws'])).toBe(0);
    expect(output.stdout).toContain(
      `conversation ${ID}: no export for ${ID} in s3://prod-exports/${FOLDER} (or this role may not read it: S3 refused it (AccessDenied), which is also its answer for an object that does not exist to a role without s3:ListBucket on the bucket); the executions below say how it ran`,
    );
    expect(output.stdout).toMatch(/execution req-1 \(ConversationWorkflow\)/);
    expect(output.stderr).not.toContain('access denied');
  });

  it('show of a conversation with neither an export nor an execution: one line, exit 1', async () => {
    s3.on(GetObjectCommand).rejects(
      Object.assign(new Error('The specified key does not exist.'), { name: 'NoSuchKey' }),
    );
    logs.on(StartQueryCommand).resolves({ queryId: 'q1' });
    logs.on(GetQueryResultsCommand).resolves({ status: 'Complete', results: [] });
    expect(await main(['conversations', 'show', ID, '--aws'])).toBe(1);
    expect(output.stderr).toContain(
      `\nwebhook-gateway: no export for ${ID} in s3://prod-exports/${FOLDER}, and no execution of it in /aws/vendedlogs/states/conversation\n`,
    );
    expect(output.stdout).toBe('');
  });

  it('Ctrl-C while the logs are read stops the Logs Insights query, says so, and prints nothing more', async () => {
    const before = process.listeners('SIGINT');
    logs.on(StartQueryCommand).resolves({ queryId: 'q1' });
    logs.on(StopQueryCommand).resolves({ success: true });
    // The user presses Ctrl-C while the query runs: the listeners the command added are called, as a signal would.
    logs
      .on(GetQueryResultsCommand)
      .callsFakeOnce(() => {
        for (const listener of process.listeners('SIGINT')) if (!before.includes(listener)) listener('SIGINT');
        return { status: 'Running' };
      })
      .resolves({ status: 'Cancelled' });
    expect(await main(['conversations', 'show', ID, '--aws'])).toBe(1);
    expect(logs.commandCalls(StopQueryCommand).map((c) => c.args[0].input)).toEqual([{ queryId: 'q1' }]);
    expect(output.stderr).toMatch(/Ctrl-C stops its Logs Insights query\)\n/);
    expect(output.stderr).toMatch(
      /\nwebhook-gateway: interrupted \(Ctrl-C\): its Logs Insights query q1 was stopped\n$/,
    );
    expect(output.stdout).toBe('');
    expect(process.listeners('SIGINT')).toEqual(before);
  });

  it('a Logs Insights query still running after 10 minutes is given up and stopped, and the user is told so', async () => {
    logs.on(StartQueryCommand).resolves({ queryId: 'q1' });
    logs.on(GetQueryResultsCommand).resolves({ status: 'Running' });
    logs.on(StopQueryCommand).resolves({ success: true });
    let clock = Date.parse('2025-08-13T11:00:00Z');
    const wait = { pollMs: 0, now: () => (clock += 61_000) };
    await expect(
      executionsFromLogs(new CloudWatchLogsClient({}), ['/aws/vendedlogs/states/conversation'], ID, 0, wait),
    ).rejects.toThrow(
      'the Logs Insights query did not finish within 10 minutes, so the command gave up: its Logs Insights query q1 was stopped',
    );
    expect(logs.commandCalls(GetQueryResultsCommand)).toHaveLength(10);
    expect(logs.commandCalls(StopQueryCommand).map((c) => c.args[0].input)).toEqual([{ queryId: 'q1' }]);
    // When even the stop is refused, the user learns the query ends on its own.
    logs.on(StopQueryCommand).rejects(Object.assign(new Error('denied'), { name: 'AccessDeniedException' }));
    await expect(
      executionsFromLogs(new CloudWatchLogsClient({}), ['/aws/vendedlogs/states/conversation'], ID, 0, wait),
    ).rejects.toThrow(
      'its Logs Insights query q1 could not be stopped (AccessDeniedException): it ends on its own within 60 minutes',
    );
  });

  it('a Logs Insights poll AWS refuses stops the query; the export is shown and stderr says both', async () => {
    logs.on(StartQueryCommand).resolves({ queryId: 'q1' });
    logs.on(GetQueryResultsCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    logs.on(StopQueryCommand).resolves({ success: true });
    expect(await main(['conversations', 'show', ID, '--aws'])).toBe(0);
    expect(output.stdout).toContain(`conversation ${ID}`);
    expect(output.stderr).toContain(
      `could not be read (AWS is throttling these calls (ThrottlingException: Rate exceeded (its Logs Insights query q1 was stopped)), even after retries: try again in a minute)`,
    );
    expect(logs.commandCalls(StopQueryCommand).map((c) => c.args[0].input)).toEqual([{ queryId: 'q1' }]);
  });

  it('show with an export S3 refuses: the AWS reason in the words of the other --aws errors, not the local store’s', async () => {
    logs.on(StartQueryCommand).resolves({ queryId: 'q1' });
    logs.on(GetQueryResultsCommand).resolves({ status: 'Complete', results: [] });
    s3.on(GetObjectCommand).rejects(
      Object.assign(new Error('User: ops is not authorized to perform: s3:GetObject'), { name: 'AccessDenied' }),
    );
    expect(await main(['conversations', 'show', ID, '--aws'])).toBe(1);
    expect(output.stderr.split('\n').at(-2)).toBe(
      `webhook-gateway: no export for ${ID} in s3://prod-exports/${FOLDER} (or this role may not read it: S3 refused it (AccessDenied), which is also its answer for an object that does not exist to a role without s3:ListBucket on the bucket), and no execution of it in /aws/vendedlogs/states/conversation`,
    );
    output.stderr = '';
    s3.on(GetObjectCommand).rejects(Object.assign(new Error('Throttled'), { name: 'SlowDown' }));
    expect(await main(['conversations', 'show', ID, '--aws'])).toBe(1);
    expect(output.stderr.split('\n').at(-2)).toMatch(/^webhook-gateway: AWS is throttling these calls \(SlowDown/);
    output.stderr = '';
    s3.on(GetObjectCommand).rejects(
      Object.assign(new Error('The specified bucket does not exist'), { name: 'NoSuchBucket' }),
    );
    expect(await main(['conversations', 'show', ID, '--aws'])).toBe(1);
    expect(output.stderr.split('\n').at(-2)).toBe(
      'webhook-gateway: something stack "WebhookConversationGateway" uses does not exist (NoSuchBucket: the bucket prod-exports does not exist at s3://prod-exports): was it deleted, or is --region wrong?',
    );
  });

  it('an unknown stack or missing export is one clear line', async () => {
    cfn
      .on(DescribeStacksCommand)
      .rejects(Object.assign(new Error('Stack with id Nope does not exist'), { name: 'ValidationError' }));
    expect(await main(['conversations', 'list', '--aws', '--stack', 'Nope'])).toBe(1);
    expect(output.stderr).toMatch(/^webhook-gateway: stack "Nope" does not exist/);
    expect(output.stderr.trim().split('\n')).toHaveLength(1);
  });
});

describe('helpers', () => {
  it('executionFromLogEvents reads status, error and cause of a failed execution', () => {
    const record = executionFromLogEvents(ARN, [
      JSON.parse(logEvent(1, 'ExecutionStarted', 0)),
      JSON.parse(logEvent(2, 'FailStateEntered', 5, { name: 'AgentFailed' })),
      JSON.parse(logEvent(3, 'ExecutionFailed', 6, { error: 'AgentError', cause: '{"success":false}' })),
    ]);
    expect(record).toMatchObject({
      status: 'FAILED',
      error: 'AgentError',
      cause: '{"success":false}',
      execution_name: 'req-1',
      state_machine: 'ConversationWorkflow',
    });
  });
});
