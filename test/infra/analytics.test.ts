import {
  AthenaClient,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  StartQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import type { Template } from 'aws-cdk-lib/assertions';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ANALYSIS_COLUMNS,
  CONVERSATIONS_COLUMNS,
  CONVERSATIONS_TABLE,
  conversationsViewSql,
  EXPORT_LINES_TABLE,
} from '../../functions/domain/analytics-table.ts';
import { athenaDescription, NAMED_QUERIES } from '../../functions/domain/named-queries.ts';
import { DEFAULT_CONFIG } from '../../infra/config.ts';
import { ATHENA_ENGINE_VERSION, analyticsDatabaseName } from '../../infra/constructs/conversation-analytics.ts';
import { ANALYTICS_FIRST_DAY, STACK_OUTPUTS } from '../../infra/webhook-gateway-stack.ts';
import { describedStack } from '../support/aws-fixtures.ts';
import { runMain } from '../support/cli.ts';
import {
  actionsOf,
  allPolicyStatements,
  cfnText,
  DELIVERY_URL_CONTEXT,
  type Json,
  logicalId,
  resourcesOf,
  type Synthesized,
  synthesize,
} from './support/synth.ts';

const athena = mockClient(AthenaClient);
const cfn = mockClient(CloudFormationClient);
/** An SDK command's name without `Command`: its IAM action in its service. */
const commandName = (command: unknown) =>
  (command as { constructor: { name: string } }).constructor.name.replace(/Command$/, '');

// The Glue database, table, view, Athena workgroup, results bucket, named queries and query policy of the stack,
// checked against what the Athena and Glue documentation require. One synthesis with the defaults, no bundling.
let synth: Synthesized;
let template: Template;
let resources: Record<string, { Type: string; Properties: Record<string, any>; DependsOn?: string[] }>;
beforeAll(() => {
  synth = synthesize({ context: DELIVERY_URL_CONTEXT });
  template = synth.template;
  resources = template.toJSON().Resources;
});
afterAll(() => synth?.cleanup());

const DATABASE = 'test_gateway';
const of = (type: string) => Object.entries(resources).filter(([, r]) => r.Type === type);
const table = (name: string) => of('AWS::Glue::Table').find(([, r]) => r.Properties.TableInput.Name === name)![1];
const exportBucket = () => `{Ref:${logicalId(template, 'AWS::S3::Bucket', 'StorageBucket')}}`;

describe('Glue database and the table over conversation-history/', () => {
  it('names the database after the stack', () => {
    expect(analyticsDatabaseName('WebhookConversationGateway')).toBe('webhook_conversation_gateway');
    // Other stack names get a hash of the exact name: Glue folds case (test/infra/stack-lifecycle.test.ts).
    expect(analyticsDatabaseName('prod-gateway')).toMatch(/^prod_gateway__[0-9a-f]{8}$/);
    const databases = of('AWS::Glue::Database');
    expect(databases.map(([, r]) => r.Properties.DatabaseInput.Name)).toEqual([DATABASE]);
  });

  it('reads every line of the day folders as JSON, malformed lines as nulls, with the analysis columns', () => {
    const t = table(EXPORT_LINES_TABLE);
    expect(t.Properties.DatabaseName).toBe(DATABASE);
    expect(t.Properties.TableInput.TableType).toBe('EXTERNAL_TABLE');
    const sd = t.Properties.TableInput.StorageDescriptor;
    expect(cfnText(sd.Location)).toBe(`s3://${exportBucket()}/conversation-history/`);
    expect(sd.InputFormat).toBe('org.apache.hadoop.mapred.TextInputFormat');
    expect(sd.SerdeInfo).toEqual({
      SerializationLibrary: 'org.openx.data.jsonserde.JsonSerDe',
      Parameters: { 'ignore.malformed.json': 'true' },
    });
    expect(sd.Columns.map((c: Json) => [(c as any).Name, (c as any).Type])).toEqual(
      ANALYSIS_COLUMNS.map((c) => [c.name, c.type]),
    );
  });

  it('projects the day partition from the YYYY/MM/DD path: no crawler, no partitions to add', () => {
    const input = table(EXPORT_LINES_TABLE).Properties.TableInput;
    expect(input.PartitionKeys).toEqual([{ Name: 'day', Type: 'string', Comment: expect.any(String) }]);
    const { 'storage.location.template': location, ...parameters } = input.Parameters;
    expect(parameters).toEqual({
      EXTERNAL: 'TRUE',
      classification: 'json',
      'projection.enabled': 'true',
      'projection.day.type': 'date',
      'projection.day.format': 'yyyy/MM/dd',
      'projection.day.range': `${ANALYTICS_FIRST_DAY},NOW`,
      'projection.day.interval': '1',
      'projection.day.interval.unit': 'DAYS',
    });
    // Every partition column appears in the template (Athena refuses the table otherwise).
    expect(cfnText(location)).toBe(`s3://${exportBucket()}/conversation-history/\${day}/`);
  });
});

describe('the conversations view', () => {
  it('is an Athena (Presto) view of the analysis.json lines, with the same columns as the local table', () => {
    const view = table(CONVERSATIONS_TABLE).Properties.TableInput;
    expect(view.TableType).toBe('VIRTUAL_VIEW');
    expect(view.Parameters).toEqual({ presto_view: 'true', comment: 'Presto View' });
    expect(view.ViewExpandedText).toBe('/* Presto View */');
    const encoded = /^\/\* Presto View: ([A-Za-z0-9+/=]+) \*\/$/.exec(view.ViewOriginalText)?.[1];
    const definition = JSON.parse(Buffer.from(encoded!, 'base64').toString('utf8'));
    expect(definition).toEqual({
      originalSql: conversationsViewSql(),
      catalog: 'awsdatacatalog',
      schema: DATABASE,
      columns: CONVERSATIONS_COLUMNS.map((c) => ({ name: c.name, type: c.type === 'bigint' ? 'bigint' : 'varchar' })),
    });
    expect(definition.originalSql).toBe(
      `SELECT ${CONVERSATIONS_COLUMNS.map((c) => c.name).join(', ')} FROM ${EXPORT_LINES_TABLE} WHERE format = 'analysis'`,
    );
    expect(view.StorageDescriptor.Columns.map((c: any) => c.Name)).toEqual(CONVERSATIONS_COLUMNS.map((c) => c.name));
  });

  it('is created after the table it reads, which is created after the database', () => {
    const id = (name: string) => Object.entries(resources).find(([, r]) => r.Properties?.TableInput?.Name === name)![0];
    expect(resources[id(CONVERSATIONS_TABLE)]!.DependsOn).toContain(id(EXPORT_LINES_TABLE));
    expect(resources[id(EXPORT_LINES_TABLE)]!.DependsOn).toContain(of('AWS::Glue::Database')[0]![0]);
  });
});

describe('Athena workgroup and results bucket', () => {
  it("enforces encrypted results in the stack's bucket, a scan limit per query and engine version 3", () => {
    const [[, wg]] = of('AWS::Athena::WorkGroup') as [[string, any]];
    expect(wg.Properties.Name).toBe('TestGateway-analytics');
    expect(wg.Properties.RecursiveDeleteOption).toBe(true);
    const config = wg.Properties.WorkGroupConfiguration;
    expect(config).toMatchObject({
      EnforceWorkGroupConfiguration: true,
      PublishCloudWatchMetricsEnabled: true,
      BytesScannedCutoffPerQuery: DEFAULT_CONFIG.analyticsScanLimitGb * 1024 ** 3,
      EngineVersion: { SelectedEngineVersion: ATHENA_ENGINE_VERSION },
    });
    expect(config.ResultConfiguration.EncryptionConfiguration).toEqual({ EncryptionOption: 'SSE_S3' });
    const results = logicalId(template, 'AWS::S3::Bucket', 'AnalyticsResultsBucket');
    expect(cfnText(config.ResultConfiguration.OutputLocation)).toBe(`s3://{Ref:${results}}/results/`);
  });

  it('keeps results in a private, encrypted, TLS-only bucket that deletes them after the configured days', () => {
    const results = logicalId(template, 'AWS::S3::Bucket', 'AnalyticsResultsBucket');
    const bucket = resources[results]!.Properties;
    expect(bucket.PublicAccessBlockConfiguration).toEqual({
      BlockPublicAcls: true,
      BlockPublicPolicy: true,
      IgnorePublicAcls: true,
      RestrictPublicBuckets: true,
    });
    expect(
      bucket.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm,
    ).toBe('AES256');
    expect(bucket.LifecycleConfiguration.Rules).toEqual([
      expect.objectContaining({ Status: 'Enabled', ExpirationInDays: DEFAULT_CONFIG.analyticsResultsExpirationDays }),
    ]);
    const tlsOnly = allPolicyStatements(template).filter(
      (s) => s.holderType === 'AWS::S3::BucketPolicy' && JSON.stringify(s.statement).includes(results),
    );
    expect(
      tlsOnly.some(
        (s) => s.statement.Effect === 'Deny' && JSON.stringify(s.statement.Condition).includes('aws:SecureTransport'),
      ),
    ).toBe(true);
  });

  it("takes the scan limit and the results' lifetime from context", () => {
    const custom = synthesize({
      context: { ...DELIVERY_URL_CONTEXT, analyticsScanLimitGb: '1', analyticsResultsExpirationDays: '7' },
    });
    try {
      const json = custom.template.toJSON().Resources as Record<string, any>;
      const wg = Object.values(json).find((r) => r.Type === 'AWS::Athena::WorkGroup');
      expect(wg.Properties.WorkGroupConfiguration.BytesScannedCutoffPerQuery).toBe(1024 ** 3);
      const results = Object.entries(json).find(
        ([id]) => id.startsWith('AnalyticsResultsBucket') && !id.includes('Policy'),
      )![1];
      expect(results.Properties.LifecycleConfiguration.Rules[0].ExpirationInDays).toBe(7);
    } finally {
      custom.cleanup();
    }
  });
});

describe('named queries', () => {
  it('saves every query of functions/domain/named-queries.ts, word for word, in the workgroup and database', () => {
    const wg = logicalId(template, 'AWS::Athena::WorkGroup', 'AnalyticsWorkGroup');
    const saved = of('AWS::Athena::NamedQuery').map(([, r]) => r.Properties);
    expect(saved.map((q) => q.Name).sort()).toEqual(NAMED_QUERIES.map((q) => q.title).sort());
    for (const query of NAMED_QUERIES) {
      const q = saved.find((s) => s.Name === query.title)!;
      expect(q.QueryString).toBe(query.sql);
      expect(q.Database).toBe(DATABASE);
      expect(q.WorkGroup).toEqual({ Ref: wg });
      // What to type for each ? in Athena's editor (test/functions/domain/named-queries.test.ts runs it as typed).
      expect(q.Description).toBe(athenaDescription(query));
    }
  });

  it('answers the three saved Logs Insights questions (docs/deploy.md#monitoring) under their titles', () => {
    const titles = of('AWS::Athena::NamedQuery').map(([, r]) => r.Properties.Name);
    expect(titles).toEqual(
      expect.arrayContaining([
        'Find All Conversations for a Source System',
        'Track Processing Performance',
        'Monitor Delivery Success Rates',
      ]),
    );
  });
});

describe("the query policy (for operators' roles)", () => {
  const statements = () =>
    allPolicyStatements(template).filter(
      (s) => s.holder === logicalId(template, 'AWS::IAM::ManagedPolicy', 'AnalyticsQueryPolicy'),
    );

  it("grants the workgroup's Athena actions, the console's lists, the stack's outputs, the two tables' definitions, the exports and the results, nothing else", () => {
    const granted = statements().map((s) => [
      actionsOf(s.statement).sort(),
      resourcesOf(s.statement)
        .map((r) => cfnText(r))
        .sort(),
    ]);
    const bucket = exportBucket().replace('{Ref:', '').replace('}', '');
    const results = logicalId(template, 'AWS::S3::Bucket', 'AnalyticsResultsBucket');
    const glue = (rest: string) => `arn:{Ref:AWS::Partition}:glue:{Ref:AWS::Region}:{Ref:AWS::AccountId}:${rest}`;
    expect(granted).toEqual([
      [
        [
          'athena:BatchGetNamedQuery',
          'athena:GetNamedQuery',
          'athena:GetQueryExecution',
          'athena:GetQueryResults',
          'athena:GetWorkGroup',
          'athena:ListNamedQueries',
          'athena:StartQueryExecution',
          'athena:StopQueryExecution',
        ],
        ['arn:{Ref:AWS::Partition}:athena:{Ref:AWS::Region}:{Ref:AWS::AccountId}:workgroup/TestGateway-analytics'],
      ],
      [
        [
          'athena:GetDatabase',
          'athena:GetTableMetadata',
          'athena:ListDataCatalogs',
          'athena:ListDatabases',
          'athena:ListEngineVersions',
          'athena:ListTableMetadata',
          'athena:ListWorkGroups',
        ],
        ['*'],
      ],
      [['cloudformation:DescribeStacks'], ['{Ref:AWS::StackId}']],
      [
        ['glue:GetDatabase', 'glue:GetPartition', 'glue:GetPartitions', 'glue:GetTable', 'glue:GetTables'],
        [
          glue('catalog'),
          glue(`database/${DATABASE}`),
          glue(`table/${DATABASE}/${EXPORT_LINES_TABLE}`),
          glue(`table/${DATABASE}/${CONVERSATIONS_TABLE}`),
        ].sort(),
      ],
      [['s3:GetObject'], [`{GetAtt:${bucket}.Arn}/conversation-history/*`]],
      [['s3:ListBucket'], [`{GetAtt:${bucket}.Arn}`]],
      [['s3:GetBucketLocation'], [`{GetAtt:${bucket}.Arn}`, `{GetAtt:${results}.Arn}`].sort()],
      [
        ['s3:AbortMultipartUpload', 's3:GetObject', 's3:ListMultipartUploadParts', 's3:PutObject'],
        [`{GetAtt:${results}.Arn}/results/*`],
      ],
      [['s3:ListBucket', 's3:ListBucketMultipartUploads'], [`{GetAtt:${results}.Arn}`]],
    ]);
    const list = statements().find(
      (s) => actionsOf(s.statement).includes('s3:ListBucket') && JSON.stringify(s.statement).includes(bucket),
    );
    expect(list!.statement.Condition).toEqual({ StringLike: { 's3:prefix': ['conversation-history/*'] } });
  });

  it('allows every call `webhook-gateway conversations query --aws` makes (SDK clients mocked)', async () => {
    cfn
      .on(DescribeStacksCommand)
      .resolves(describedStack({ AnalyticsWorkGroupName: 'TestGateway-analytics', AnalyticsDatabaseName: DATABASE }));
    athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q-1' });
    athena.on(GetQueryExecutionCommand).resolves({
      QueryExecution: { Status: { State: 'SUCCEEDED' }, StatementType: 'DML', Statistics: { DataScannedInBytes: 1 } },
    });
    athena.on(GetQueryResultsCommand).resolves({
      ResultSet: {
        ResultSetMetadata: { ColumnInfo: [{ Name: 'n', Type: 'bigint' }] },
        Rows: [{ Data: [{ VarCharValue: 'n' }] }],
      },
    });
    for (const args of [
      ['conversations', 'query', 'SELECT count(*) AS n FROM conversations', '--aws', '--stack', 'TestGateway'],
      ['conversations', 'query', '--named', 'delivery-success', '--aws', '--stack', 'TestGateway'],
    ]) {
      const result = await runMain(args);
      expect(result.code, result.stderr).toBe(0);
    }
    const calls = [
      ...cfn.calls().map((c) => `cloudformation:${commandName(c.args[0])}`),
      ...athena.calls().map((c) => `athena:${commandName(c.args[0])}`),
    ];
    expect(calls).toContain('cloudformation:DescribeStacks');
    expect(calls).toContain('athena:StartQueryExecution');
    const granted = statements().flatMap((s) => actionsOf(s.statement));
    expect([...new Set(calls)].filter((action) => !granted.includes(action))).toEqual([]);
  });

  it('is an output, with the database and workgroup the CLI reads', () => {
    const outputs = template.toJSON().Outputs as Record<string, { Value: Json }>;
    expect(outputs[STACK_OUTPUTS.analyticsDatabase]!.Value).toEqual({ Ref: of('AWS::Glue::Database')[0]![0] });
    expect(outputs[STACK_OUTPUTS.analyticsWorkGroup]!.Value).toEqual({
      Ref: logicalId(template, 'AWS::Athena::WorkGroup', 'AnalyticsWorkGroup'),
    });
    expect(outputs[STACK_OUTPUTS.analyticsQueryPolicyArn]!.Value).toEqual({
      Ref: logicalId(template, 'AWS::IAM::ManagedPolicy', 'AnalyticsQueryPolicy'),
    });
  });
});
