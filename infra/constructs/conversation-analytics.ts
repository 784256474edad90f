import { createHash } from 'node:crypto';
import { Duration, RemovalPolicy, Stack, Validations } from 'aws-cdk-lib';
import { CfnNamedQuery, CfnWorkGroup } from 'aws-cdk-lib/aws-athena';
import { CfnDatabase, CfnTable } from 'aws-cdk-lib/aws-glue';
import { ManagedPolicy, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import { BlockPublicAccess, Bucket, BucketEncryption, type IBucket, ObjectOwnership } from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import {
  ANALYSIS_COLUMNS,
  CONVERSATIONS_COLUMNS,
  CONVERSATIONS_TABLE,
  conversationsViewSql,
  ENGINE_TYPES,
  EXPORT_LINES_TABLE,
  PARTITION_COLUMN,
} from '../../functions/domain/analytics-table.ts';
import { EXPORT_PREFIX } from '../../functions/domain/export-formats.ts';
import { athenaDescription, NAMED_QUERIES } from '../../functions/domain/named-queries.ts';
import { bucketObjectsFinding } from '../nag-findings.ts';
import { exportKeyStatement } from './conversation-export-bucket.ts';

export interface ConversationAnalyticsProps {
  /** The export bucket (conversation-history/YYYY/MM/DD/<conversation_id>/analysis.json). */
  readonly exportBucket: IBucket;
  /** The customer-managed key an existing export bucket encrypts with (context exportBucketKmsKeyArn), if any. */
  readonly exportKeyArn?: string;
  /** Glue database name: lowercase letters, digits and underscores. */
  readonly databaseName: string;
  /** Construct id of the database (analyticsDatabaseId); `Database` by default. */
  readonly databaseId?: string;
  /** Athena workgroup name. */
  readonly workGroupName: string;
  /** Queries that would scan more than this are cancelled by Athena (and cost at most this much). */
  readonly bytesScannedCutoffPerQuery: number;
  /** Days Athena's result files are kept. */
  readonly resultsExpirationDays: number;
  /** First day folder the table projects (YYYY/MM/DD); exports before it are not seen. */
  readonly firstDay: string;
}

/**
 * Stack names whose snake_case form names no other stack: a capital first, then letters and digits with no two
 * capitals in a row (`WebhookConversationGateway`, `GatewayStaging2`). Each `_` of their form stands for exactly one
 * capital, so the stack name can be read back from it.
 */
const READABLE_STACK_NAME = /^[A-Z](?![A-Z])(?:[a-z0-9]|[A-Z](?![A-Z]))*$/;

/**
 * A Glue database name for a stack, unique in the account and region as the stack name is (docs/deploy.md, "Later
 * deploys, several stacks and deleting a stack"). Glue folds names to lowercase and allows only letters, digits and
 * `_`, so `Gateway-Staging`, `gateway-staging` and `GatewayStaging` would all be `gateway_staging`: only a readable
 * stack name (READABLE_STACK_NAME) gets its plain snake_case form (`WebhookConversationGateway` →
 * `webhook_conversation_gateway`); any other gets that form, `__` (which a readable name never has) and a hash of the
 * exact stack name.
 */
export function analyticsDatabaseName(stackName: string): string {
  const snake = stackName
    .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/^_+|_+$/g, '');
  if (READABLE_STACK_NAME.test(stackName)) return snake;
  return `${snake}__${createHash('sha256').update(stackName).digest('hex').slice(0, 8)}`;
}

/**
 * Construct id of the Glue database. It changes with the naming rule of analyticsDatabaseName: a stack deployed
 * before that rule under a name that is not readable had the plain form. Glue's UpdateDatabase finds a database by
 * its current name and CloudFormation documents no rename, so under a new logical id the database is created anew
 * under the new name (its tables with it) and the old one deleted afterwards, which CloudFormation does document.
 */
export const analyticsDatabaseId = (stackName: string) =>
  READABLE_STACK_NAME.test(stackName) ? 'Database' : 'UniqueDatabase';

/** Athena's limit on a workgroup name (CreateWorkGroup: 1-128 characters). */
const MAX_WORKGROUP_NAME = 128;

/**
 * The analytics workgroup of a stack: `<stack>-analytics`; a stack name too long for that (CloudFormation allows
 * 128 characters) is cut and followed by a hash of the whole name, so that two long stack names stay two workgroups.
 */
export function analyticsWorkGroupName(stackName: string): string {
  const name = `${stackName}-analytics`;
  if (name.length <= MAX_WORKGROUP_NAME) return name;
  const hash = createHash('sha256').update(stackName).digest('hex').slice(0, 8);
  return `${stackName.slice(0, MAX_WORKGROUP_NAME - '-analytics'.length - hash.length - 1)}-${hash}-analytics`;
}

/** Athena engine version 3 (Trino): the SQL the named queries are written and tested for. */
export const ATHENA_ENGINE_VERSION = 'Athena engine version 3';
const JSON_SERDE = 'org.openx.data.jsonserde.JsonSerDe';

/** The `/* Presto View: <base64 JSON> *\/` text Athena keeps a view's definition in (its Glue table's ViewOriginalText). */
function prestoViewText(database: string, sql: string): string {
  const definition = {
    originalSql: sql,
    catalog: 'awsdatacatalog',
    schema: database,
    columns: CONVERSATIONS_COLUMNS.map((c) => ({ name: c.name, type: ENGINE_TYPES[c.type].trino })),
  };
  return `/* Presto View: ${Buffer.from(JSON.stringify(definition)).toString('base64')} */`;
}

const glueColumns = (columns: readonly { name: string; type: 'string' | 'bigint'; description: string }[]) =>
  columns.map((c) => ({ name: c.name, type: ENGINE_TYPES[c.type].glue, comment: c.description }));

/**
 * SQL over every exported conversation, on Athena: a Glue database; a table over `conversation-history/` that reads
 * every line of the day folders as JSON (partition projection on the date path, so no crawler and no partitions to
 * add); the `conversations` view of the analysis.json lines (one row per conversation, the columns of
 * functions/domain/analytics-table.ts); an Athena workgroup that enforces an encrypted, expiring results bucket and a
 * scan limit per query; the named queries of functions/domain/named-queries.ts; and a managed policy with exactly
 * what running them needs, for operators' roles.
 */
export class ConversationAnalytics extends Construct {
  readonly database: CfnDatabase;
  readonly exportLinesTable: CfnTable;
  readonly conversationsView: CfnTable;
  readonly workGroup: CfnWorkGroup;
  readonly resultsBucket: Bucket;
  readonly namedQueries: CfnNamedQuery[];
  readonly queryPolicy: ManagedPolicy;

  constructor(scope: Construct, id: string, props: ConversationAnalyticsProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const { exportBucket, databaseName } = props;
    if (!/^[a-z0-9_]{1,255}$/.test(databaseName))
      throw new Error(`Glue database name "${databaseName}": use lowercase letters, digits and _`);
    if (!/^\d{4}\/\d{2}\/\d{2}$/.test(props.firstDay)) throw new Error(`firstDay "${props.firstDay}": use YYYY/MM/DD`);

    this.database = new CfnDatabase(this, props.databaseId ?? 'Database', {
      catalogId: stack.account,
      databaseInput: {
        name: databaseName,
        description: `Exported conversations of ${stack.stackName} (query the ${CONVERSATIONS_TABLE} view)`,
      },
    });

    const day = PARTITION_COLUMN.name;
    const root = `s3://${exportBucket.bucketName}/${EXPORT_PREFIX}/`;
    this.exportLinesTable = new CfnTable(this, 'ExportLinesTable', {
      catalogId: stack.account,
      databaseName,
      tableInput: {
        name: EXPORT_LINES_TABLE,
        description: `Every line of every export file under ${EXPORT_PREFIX}/ (lines that are not one JSON object read as nulls); query the ${CONVERSATIONS_TABLE} view instead`,
        tableType: 'EXTERNAL_TABLE',
        parameters: {
          EXTERNAL: 'TRUE',
          classification: 'json',
          'projection.enabled': 'true',
          [`projection.${day}.type`]: 'date',
          [`projection.${day}.format`]: 'yyyy/MM/dd',
          [`projection.${day}.range`]: `${props.firstDay},NOW`,
          [`projection.${day}.interval`]: '1',
          [`projection.${day}.interval.unit`]: 'DAYS',
          'storage.location.template': `${root}\${${day}}/`,
        },
        partitionKeys: glueColumns([PARTITION_COLUMN]),
        storageDescriptor: {
          columns: glueColumns(ANALYSIS_COLUMNS),
          location: root,
          inputFormat: 'org.apache.hadoop.mapred.TextInputFormat',
          outputFormat: 'org.apache.hadoop.hive.ql.io.HiveIgnoreKeyTextOutputFormat',
          // The day folders also hold conversation.json and metadata.json (pretty-printed) and summary.json: their
          // lines read as rows of nulls instead of failing the query, and the view keeps only analysis.json's line.
          serdeInfo: { serializationLibrary: JSON_SERDE, parameters: { 'ignore.malformed.json': 'true' } },
        },
      },
    });
    this.exportLinesTable.addResourceDependency(this.database);

    this.conversationsView = new CfnTable(this, 'ConversationsView', {
      catalogId: stack.account,
      databaseName,
      tableInput: {
        name: CONVERSATIONS_TABLE,
        description:
          'One row per exported conversation (its analysis.json); the same columns as the local DuckDB table',
        tableType: 'VIRTUAL_VIEW',
        parameters: { presto_view: 'true', comment: 'Presto View' },
        viewOriginalText: prestoViewText(databaseName, conversationsViewSql()),
        viewExpandedText: '/* Presto View */',
        partitionKeys: [],
        storageDescriptor: { columns: glueColumns(CONVERSATIONS_COLUMNS), serdeInfo: {} },
      },
    });
    this.conversationsView.addResourceDependency(this.exportLinesTable);

    this.resultsBucket = new Bucket(this, 'ResultsBucket', {
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      encryption: BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      removalPolicy: RemovalPolicy.RETAIN,
      lifecycleRules: [
        {
          id: 'query-results',
          expiration: Duration.days(props.resultsExpirationDays),
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
      ],
    });
    this.resultsBucket.policy?.applyRemovalPolicy(RemovalPolicy.RETAIN); // kept with the bucket: TLS-only
    Validations.of(this.resultsBucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason:
        'Holds only Athena result files, written by Athena for queries already recorded in the workgroup history and CloudTrail, and deleted by the lifecycle rule; an access-log bucket would log the logs.',
    });

    this.workGroup = new CfnWorkGroup(this, 'WorkGroup', {
      name: props.workGroupName,
      description: `SQL over the exported conversations of ${stack.stackName}`,
      state: 'ENABLED',
      recursiveDeleteOption: true,
      workGroupConfiguration: {
        enforceWorkGroupConfiguration: true,
        publishCloudWatchMetricsEnabled: true,
        bytesScannedCutoffPerQuery: props.bytesScannedCutoffPerQuery,
        engineVersion: { selectedEngineVersion: ATHENA_ENGINE_VERSION },
        resultConfiguration: {
          outputLocation: `s3://${this.resultsBucket.bucketName}/results/`,
          encryptionConfiguration: { encryptionOption: 'SSE_S3' },
          expectedBucketOwner: stack.account,
        },
      },
    });

    this.namedQueries = NAMED_QUERIES.map((query) => {
      const named = new CfnNamedQuery(this, `Query-${query.id}`, {
        name: query.title,
        description: athenaDescription(query),
        database: databaseName,
        workGroup: this.workGroup.ref,
        queryString: query.sql,
      });
      named.addResourceDependency(this.database);
      return named;
    });

    this.queryPolicy = new ManagedPolicy(this, 'QueryPolicy', {
      description: `Run SQL over the exported conversations of ${stack.stackName} in the ${props.workGroupName} workgroup (attach to operators' roles)`,
      statements: this.queryStatements(props),
    });
    Validations.of(this.queryPolicy).acknowledge(
      {
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          "Athena's console lists engine versions, workgroups, catalogs, databases and table definitions before a query: those list actions have no resource-level permissions. They show names and definitions, never data.",
      },
      {
        id: `AwsSolutions-IAM5[Resource::${bucketObjectsFinding(exportBucket, `${EXPORT_PREFIX}/*`)}]`,
        reason: `Athena reads every export file of the day folders a query selects: s3:GetObject is limited to the ${EXPORT_PREFIX}/ prefix of the export bucket, whose keys are generated per conversation.`,
      },
      {
        id: `AwsSolutions-IAM5[Resource::${bucketObjectsFinding(this.resultsBucket, 'results/*')}]`,
        reason:
          'Athena writes one result file per query under a generated name: access is limited to the results/ prefix of the bucket this construct creates for them.',
      },
    );
  }

  private queryStatements(props: ConversationAnalyticsProps): PolicyStatement[] {
    const stack = Stack.of(this);
    const glue = (resource: string, resourceName?: string) =>
      stack.formatArn({ service: 'glue', resource, resourceName });
    return [
      new PolicyStatement({
        sid: 'RunQueriesInTheWorkGroup',
        actions: [
          'athena:StartQueryExecution',
          'athena:GetQueryExecution',
          'athena:GetQueryResults',
          'athena:StopQueryExecution',
          'athena:GetWorkGroup',
          'athena:ListNamedQueries',
          'athena:GetNamedQuery',
          'athena:BatchGetNamedQuery',
        ],
        resources: [stack.formatArn({ service: 'athena', resource: 'workgroup', resourceName: props.workGroupName })],
      }),
      // What Athena's console lists before it lets one pick the workgroup, database and table: these actions take no
      // resource of their own (AWS's example policy for one workgroup grants them on "*"). They list names and
      // table definitions, never data.
      new PolicyStatement({
        sid: 'BrowseInTheAthenaConsole',
        actions: [
          'athena:ListEngineVersions',
          'athena:ListWorkGroups',
          'athena:ListDataCatalogs',
          'athena:ListDatabases',
          'athena:GetDatabase',
          'athena:ListTableMetadata',
          'athena:GetTableMetadata',
        ],
        resources: ['*'],
      }),
      // `webhook-gateway conversations query --aws` finds the workgroup and database in the stack's outputs.
      new PolicyStatement({
        sid: 'ReadTheStackOutputs',
        actions: ['cloudformation:DescribeStacks'],
        resources: [stack.stackId],
      }),
      new PolicyStatement({
        sid: 'ReadTheTableDefinitions',
        actions: ['glue:GetDatabase', 'glue:GetTable', 'glue:GetTables', 'glue:GetPartition', 'glue:GetPartitions'],
        resources: [
          glue('catalog'),
          glue('database', props.databaseName),
          glue('table', `${props.databaseName}/${EXPORT_LINES_TABLE}`),
          glue('table', `${props.databaseName}/${CONVERSATIONS_TABLE}`),
        ],
      }),
      new PolicyStatement({
        sid: 'ReadTheExports',
        actions: ['s3:GetObject'],
        resources: [props.exportBucket.arnForObjects(`${EXPORT_PREFIX}/*`)],
      }),
      new PolicyStatement({
        sid: 'ListTheExports',
        actions: ['s3:ListBucket'],
        resources: [props.exportBucket.bucketArn],
        conditions: { StringLike: { 's3:prefix': [`${EXPORT_PREFIX}/*`] } },
      }),
      new PolicyStatement({
        sid: 'LocateTheBuckets',
        actions: ['s3:GetBucketLocation'],
        resources: [props.exportBucket.bucketArn, this.resultsBucket.bucketArn],
      }),
      new PolicyStatement({
        sid: 'WriteAndReadQueryResults',
        actions: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
        resources: [this.resultsBucket.arnForObjects('results/*')],
      }),
      new PolicyStatement({
        sid: 'FindQueryResults',
        actions: ['s3:ListBucket', 's3:ListBucketMultipartUploads'],
        resources: [this.resultsBucket.bucketArn],
      }),
      // Athena reads the exports with the caller's permissions: under a customer-managed key, S3 decrypts them with it.
      ...[exportKeyStatement(props.exportKeyArn, 'read')].filter((s) => s !== undefined),
    ];
  }
}
