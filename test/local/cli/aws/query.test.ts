import {
  AthenaClient,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  type QueryExecutionState,
  StartQueryExecutionCommand,
  StopQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { namedQuery } from '../../../../functions/domain/named-queries.ts';
import { AthenaQueryError, athenaLiteral, runAthenaQuery } from '../../../../local/cli/aws/athena.ts';
import { describedStack } from '../../../support/aws-fixtures.ts';
import { runMain } from '../../../support/cli.ts';

/** `conversations query --aws`: the same SQL on Athena (mocked: never real AWS). */
const athena = mockClient(AthenaClient);
const cfn = mockClient(CloudFormationClient);
const TARGET = { workGroup: 'Gw-analytics', database: 'gw' };

function execution(State: QueryExecutionState, scanned = 0, StatementType = 'DML', reason?: string) {
  return {
    QueryExecution: {
      Status: { State, ...(reason ? { StateChangeReason: reason } : {}) },
      StatementType,
      Statistics: { DataScannedInBytes: scanned },
    },
  } as never;
}

const page = (columns: [string, string][], rows: (string | undefined)[][], header: boolean, NextToken?: string) => ({
  ResultSet: {
    ResultSetMetadata: { ColumnInfo: columns.map(([Name, Type]) => ({ Name, Type })) },
    Rows: [
      ...(header ? [{ Data: columns.map(([n]) => ({ VarCharValue: n })) }] : []),
      ...rows.map((r) => ({ Data: r.map((v) => (v === undefined ? {} : { VarCharValue: v })) })),
    ],
  },
  NextToken,
});

beforeEach(() => {
  athena.reset();
  cfn.reset();
  cfn.on(DescribeStacksCommand).resolves(
    describedStack({
      AnalyticsWorkGroupName: 'WebhookConversationGateway-analytics',
      AnalyticsDatabaseName: 'webhook_conversation_gateway',
    }),
  );
});
afterEach(() => athena.reset());

describe('runAthenaQuery', () => {
  it('starts the query in the workgroup and database, reports each state with the bytes scanned, reads every page', async () => {
    athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q-1' });
    athena
      .on(GetQueryExecutionCommand)
      .resolvesOnce(execution('QUEUED'))
      .resolvesOnce(execution('RUNNING', 1_000_000))
      .resolves(execution('SUCCEEDED', 2_000_000));
    const columns: [string, string][] = [
      ['webhook_type', 'varchar'],
      ['n', 'bigint'],
      ['share', 'double'],
    ];
    athena
      .on(GetQueryResultsCommand, { QueryExecutionId: 'q-1', NextToken: undefined })
      .resolves(page(columns, [['deal_analysis', '3', '0.75']], true, 'next'))
      .on(GetQueryResultsCommand, { QueryExecutionId: 'q-1', NextToken: 'next' })
      .resolves(page(columns, [[undefined, '1', '0.25']], false));
    const seen: string[] = [];
    let clock = 0;
    const run = await runAthenaQuery(
      new AthenaClient({}),
      TARGET,
      { sql: 'SELECT …', params: ["it's"] },
      { pollMs: 0, now: () => (clock += 100), onProgress: (p) => seen.push(`${p.state} ${p.scannedBytes}`) },
    );
    expect(athena.commandCalls(StartQueryExecutionCommand)[0]!.args[0].input).toEqual({
      QueryString: 'SELECT …',
      WorkGroup: 'Gw-analytics',
      QueryExecutionContext: { Catalog: 'AwsDataCatalog', Database: 'gw' },
      ExecutionParameters: ["'it''s'"],
    });
    expect(seen).toEqual(['QUEUED 0', 'RUNNING 1000000', 'SUCCEEDED 2000000']);
    expect(run.rows).toEqual([
      { webhook_type: 'deal_analysis', n: 3, share: 0.75 },
      { webhook_type: null, n: 1, share: 0.25 },
    ]);
    expect(run).toMatchObject({
      queryExecutionId: 'q-1',
      scannedBytes: 2_000_000,
      columns: [
        { name: 'webhook_type', type: 'varchar' },
        { name: 'n', type: 'bigint' },
        { name: 'share', type: 'double' },
      ],
    });
  });

  it('keeps every column of a result that names two alike (a self-join), under a name of its own', async () => {
    athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q-dup' });
    athena.on(GetQueryExecutionCommand).resolves(execution('SUCCEEDED'));
    const columns: [string, string][] = [
      ['status', 'varchar'],
      ['status', 'varchar'],
    ];
    athena.on(GetQueryResultsCommand).resolves(page(columns, [['completed', 'failed']], true));
    const run = await runAthenaQuery(
      new AthenaClient({}),
      TARGET,
      { sql: 'SELECT a.status, b.status …' },
      { pollMs: 0 },
    );
    expect(run.columns.map((c) => c.name)).toEqual(['status', 'status_1']);
    expect(run.rows).toEqual([{ status: 'completed', status_1: 'failed' }]);
  });

  it('keeps the first row of a statement that is not a SELECT (it has no header row)', async () => {
    athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q-2' });
    athena.on(GetQueryExecutionCommand).resolves(execution('SUCCEEDED', 0, 'UTILITY'));
    athena.on(GetQueryResultsCommand).resolves(page([['tab_name', 'string']], [['conversations']], false));
    const run = await runAthenaQuery(new AthenaClient({}), TARGET, { sql: 'SHOW TABLES' }, { pollMs: 0 });
    expect(run.rows).toEqual([{ tab_name: 'conversations' }]);
    expect(athena.commandCalls(StartQueryExecutionCommand)[0]!.args[0].input.ExecutionParameters).toBeUndefined();
  });

  it("a failed or cancelled query is an error with Athena's reason", async () => {
    athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q-3' });
    athena
      .on(GetQueryExecutionCommand)
      .resolves(execution('FAILED', 0, 'DML', "COLUMN_NOT_FOUND: line 1:8: Column 'nope' cannot be resolved"));
    await expect(runAthenaQuery(new AthenaClient({}), TARGET, { sql: 'SELECT nope' }, { pollMs: 0 })).rejects.toThrow(
      new AthenaQueryError("Athena query q-3 FAILED: COLUMN_NOT_FOUND: line 1:8: Column 'nope' cannot be resolved"),
    );
  });

  it("writes Athena's reason as text: a value it quotes from a conversation cannot drive the terminal", async () => {
    athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q-esc' });
    athena
      .on(GetQueryExecutionCommand)
      .resolves(execution('FAILED', 0, 'DML', "INVALID_CAST_ARGUMENT: Cannot cast '\x1b[2J\x1b]0;pwned\x07' to INT"));
    await expect(runAthenaQuery(new AthenaClient({}), TARGET, { sql: 'SELECT …' }, { pollMs: 0 })).rejects.toThrow(
      new AthenaQueryError(
        "Athena query q-esc FAILED: INVALID_CAST_ARGUMENT: Cannot cast '\\u001b[2J\\u001b]0;pwned\\u0007' to INT",
      ),
    );
  });

  it('stops the query in Athena when the caller gives up (Ctrl-C)', async () => {
    athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q-4' });
    const abort = new AbortController();
    athena.on(GetQueryExecutionCommand).callsFake(() => {
      abort.abort();
      return execution('RUNNING');
    });
    athena.on(StopQueryExecutionCommand).resolves({});
    await expect(
      runAthenaQuery(new AthenaClient({}), TARGET, { sql: 'SELECT 1' }, { pollMs: 0, signal: abort.signal }),
    ).rejects.toThrow(/stopped query q-4/);
    expect(athena.commandCalls(StopQueryExecutionCommand)[0]!.args[0].input).toEqual({ QueryExecutionId: 'q-4' });
  });

  it('a poll AWS refuses (throttled past the retries) stops the query in Athena, and the error line says so', async () => {
    athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q-5' });
    athena
      .on(GetQueryExecutionCommand)
      .resolvesOnce(execution('RUNNING'))
      .rejects(Object.assign(new Error('Rate exceeded'), { name: 'TooManyRequestsException' }));
    athena.on(StopQueryExecutionCommand).resolves({});
    const result = await runMain(['conversations', 'query', 'SELECT 1', '--aws']);
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr.trim().split('\n').at(-1)).toBe(
      'webhook-gateway: AWS is throttling these calls (TooManyRequestsException: Rate exceeded (its Athena query q-5 was stopped)), even after retries: try again in a minute',
    );
    expect(athena.commandCalls(StopQueryExecutionCommand).map((c) => c.args[0].input)).toEqual([
      { QueryExecutionId: 'q-5' },
    ]);
  });

  it('quotes values as SQL string literals', () => {
    expect(athenaLiteral("O'Brien")).toBe("'O''Brien'");
    expect(athenaLiteral('2026-11-28T00:00:00.000Z')).toBe("'2026-11-28T00:00:00.000Z'");
  });
});

describe('conversations query --aws', () => {
  beforeEach(() => {
    athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q-9' });
    athena.on(GetQueryExecutionCommand).resolves(execution('SUCCEEDED', 12_345_678));
    athena.on(GetQueryResultsCommand).resolves(
      page(
        [
          ['webhook_type', 'varchar'],
          ['n', 'bigint'],
        ],
        [
          ['deal_analysis', '2'],
          ['general', '1'],
        ],
        true,
      ),
    );
  });

  it("runs the SQL unchanged in the stack's workgroup and prints the rows as the local engine does", async () => {
    const sql = 'SELECT webhook_type, count(*) AS n FROM conversations GROUP BY 1';
    const result = await runMain(['conversations', 'query', sql, '--aws', '--json']);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual([
      { webhook_type: 'deal_analysis', n: 2 },
      { webhook_type: 'general', n: 1 },
    ]);
    expect(athena.commandCalls(StartQueryExecutionCommand)[0]!.args[0].input).toMatchObject({
      QueryString: sql,
      WorkGroup: 'WebhookConversationGateway-analytics',
      QueryExecutionContext: { Database: 'webhook_conversation_gateway' },
    });
    expect(result.stderr).toMatch(/athena: SUCCEEDED \d+\.\d s, 12 MB scanned/);
    expect(result.stderr).toMatch(/2 row\(s\) · 12 MB scanned · Athena query q-9/);
  });

  it("--csv neutralises a sender's formula in Athena's text columns, not its numbers, dates or timestamps", async () => {
    athena.on(GetQueryResultsCommand).resolves(
      page(
        [
          ['query', 'varchar'],
          ['n', 'bigint'],
          ['x', 'decimal(10,2)'],
          ['day', 'date'],
          ['at', 'timestamp(3)'],
        ],
        [
          ['=HYPERLINK("http://x","y")', '-5', '-1.50', '2026-12-03', '2026-12-03 10:00:00.000'],
          ['-2+3', '-9223372036854775808', '-0.25', '2026-12-04', '2026-12-04 10:00:00.000'],
        ],
        true,
      ),
    );
    const result = await runMain(['conversations', 'query', 'SELECT …', '--aws', '--csv']);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toBe(
      [
        'query,n,x,day,at',
        `"'=HYPERLINK(""http://x"",""y"")",-5,-1.5,2026-12-03,2026-12-03 10:00:00.000`,
        `"'-2+3",-9223372036854775808,-0.25,2026-12-04,2026-12-04 10:00:00.000`,
        '',
      ].join('\r\n'),
    );
  });

  it('--json gives a DECIMAL a double cannot hold digit for digit as its text, as a BIGINT past 2^53', async () => {
    athena.on(GetQueryResultsCommand).resolves(
      page(
        [
          ['big', 'decimal(38,3)'],
          ['small', 'decimal(3,2)'],
          ['id', 'bigint'],
        ],
        [['12345678901234567890.123', '1.10', '9007199254740993']],
        true,
      ),
    );
    const result = await runMain(['conversations', 'query', 'SELECT …', '--aws', '--json']);
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual([
      { big: '12345678901234567890.123', small: 1.1, id: '9007199254740993' },
    ]);
  });

  it('runs a named query with its parameters as literals', async () => {
    const result = await runMain([
      'conversations',
      'query',
      '--named',
      'delivery-success',
      '--param',
      'since=2026-11-01',
      '--aws',
    ]);
    expect(result.code, result.stderr).toBe(0);
    const input = athena.commandCalls(StartQueryExecutionCommand)[0]!.args[0].input;
    expect(input.QueryString).toBe(namedQuery('delivery-success')!.sql);
    expect(input.ExecutionParameters).toEqual(["'2026-11-01T00:00:00.000Z'", "'2026-11-01T00:00:00.000Z'"]);
    expect(result.stdout).toMatch(/^webhook_type\s+n\n-+\s+-+\ndeal_analysis\s+2\ngeneral\s+1\n$/);
  });

  it('a query Athena failed or cancelled: its reason on one line, exit 1', async () => {
    athena
      .on(GetQueryExecutionCommand)
      .resolvesOnce(
        execution(
          'FAILED',
          0,
          'DML',
          "SYNTAX_ERROR: line 1:8: Column 'nope' cannot be resolved\n\nSELECT nope\n       ^",
        ),
      )
      .resolves(execution('CANCELLED', 0, 'DML', 'Query cancelled by user'));
    const failed = await runMain(['conversations', 'query', 'SELECT nope', '--aws']);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toContain(
      "\nwebhook-gateway: Athena query q-9 FAILED: SYNTAX_ERROR: line 1:8: Column 'nope' cannot be resolved SELECT nope ^\n",
    );
    expect(failed.stdout).toBe('');
    const cancelled = await runMain(['conversations', 'query', 'SELECT 1', '--aws', '--json']);
    expect(cancelled.code).toBe(1);
    expect(cancelled.stderr).toMatch(/\nwebhook-gateway: Athena query q-9 CANCELLED: Query cancelled by user\n$/);
    expect(cancelled.stdout).toBe('');
  });

  it('a query Athena failed for a permission (Glue, the exports): its reason, then the policy that grants it', async () => {
    athena
      .on(GetQueryExecutionCommand)
      .resolves(
        execution(
          'FAILED',
          0,
          'DML',
          'Permission denied on S3 path: s3://prod-exports/analysis/2026/12/01. User: arn:aws:sts::123456789012:assumed-role/ops/me is not authorized to perform: s3:GetObject',
        ),
      );
    const failed = await runMain(['conversations', 'query', 'SELECT 1', '--aws']);
    expect(failed.code).toBe(1);
    expect(failed.stderr.trim().split('\n').at(-1)).toBe(
      "webhook-gateway: Athena query q-9 FAILED: Permission denied on S3 path: s3://prod-exports/analysis/2026/12/01. User: arn:aws:sts::123456789012:assumed-role/ops/me is not authorized to perform: s3:GetObject: these credentials need the stack's AnalyticsQueryPolicyArn policy (docs/deploy.md#after-the-first-deploy), and kms:Decrypt on the key of an export bucket of your own encrypted with one",
    );
  });

  it('a workgroup that does not exist (deleted by hand): said so, with the output and context key that name it', async () => {
    athena.on(StartQueryExecutionCommand).rejects(
      Object.assign(new Error('WorkGroup WebhookConversationGateway-analytics is not found.'), {
        name: 'InvalidRequestException',
        AthenaErrorCode: 'INVALID_INPUT',
      }),
    );
    for (const args of [
      ['conversations', 'query', 'SELECT 1', '--aws', '--region', 'eu-west-1'],
      ['conversations', 'search', 'renewal', '--aws', '--region', 'eu-west-1', '--json'],
    ]) {
      const result = await runMain(args);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr.trim().split('\n').at(-1)).toBe(
        'webhook-gateway: the Athena workgroup "WebhookConversationGateway-analytics" does not exist in eu-west-1: it is the AnalyticsWorkGroupName output of stack "WebhookConversationGateway" (named <stackName>-analytics after the context key stackName); was it deleted outside CloudFormation? docs/deploy.md ("SQL over the exports") says how to create it again',
      );
    }
    expect(athena.commandCalls(GetQueryExecutionCommand)).toHaveLength(0);
  });

  it('a role without the analytics policy is told to attach AnalyticsQueryPolicyArn, not only "access denied"', async () => {
    athena
      .on(StartQueryExecutionCommand)
      .rejects(
        Object.assign(
          new Error(
            'User: arn:aws:iam::123456789012:user/ops is not authorized to perform: athena:StartQueryExecution on resource: arn:aws:athena:eu-west-1:123456789012:workgroup/WebhookConversationGateway-analytics because no identity-based policy allows the athena:StartQueryExecution action',
          ),
          { name: 'AccessDeniedException' },
        ),
      );
    const result = await runMain(['conversations', 'query', 'SELECT 1', '--aws', '--region', 'eu-west-1']);
    expect(result.code).toBe(1);
    expect(result.stderr.trim().split('\n').at(-1)).toMatch(
      /^webhook-gateway: access denied: User: .* athena:StartQueryExecution action: these credentials need the stack's AnalyticsQueryPolicyArn policy \(docs\/deploy\.md#after-the-first-deploy\)$/,
    );
  });

  it('a stack deployed before the analytics resources says what is missing, in one line', async () => {
    cfn.on(DescribeStacksCommand).resolves(describedStack({}, 'Old'));
    const result = await runMain(['conversations', 'query', 'SELECT 1', '--aws', '--stack', 'Old']);
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      'webhook-gateway: stack "Old" has no AnalyticsWorkGroupName output: is it a webhook gateway stack, deployed from this version?\n',
    );
    expect(athena.commandCalls(StartQueryExecutionCommand)).toHaveLength(0);
  });
});
