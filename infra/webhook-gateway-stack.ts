import { CfnOutput, Duration, Fn, Stack, type StackProps } from 'aws-cdk-lib';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { type GatewayConfig, missingDeliveryUrlKeys, OBSERVABILITY_PROFILES, resolveConfig } from './config.ts';
import { AcceptWorkflow } from './constructs/accept-workflow.ts';
import { AsyncConversationTables } from './constructs/async-conversation-tables.ts';
import {
  analyticsDatabaseId,
  analyticsDatabaseName,
  analyticsWorkGroupName,
  ConversationAnalytics,
} from './constructs/conversation-analytics.ts';
import { ConversationExportBucket } from './constructs/conversation-export-bucket.ts';
import { ConversationFunctions, deliveriesVariables } from './constructs/conversation-functions.ts';
import { ConversationWorkflow } from './constructs/conversation-workflow.ts';
import { DeliveriesTable } from './constructs/deliveries-table.ts';
import { DeliveryUrlGuard } from './constructs/delivery-url-guard.ts';
import { FailedDeliveryQueue } from './constructs/failed-delivery-queue.ts';
import { GatewayAlarms } from './constructs/gateway-alarms.ts';
import { IdempotencyTable } from './constructs/idempotency-table.ts';
import { OperationsDashboard } from './constructs/operations-dashboard.ts';
import { OperatorPolicy } from './constructs/operator-policy.ts';
import { REDELIVERY_SCHEDULER_TIMEOUT, RedeliveryScheduler } from './constructs/redelivery-scheduler.ts';
import { RedeliveryWorkflow } from './constructs/redelivery-workflow.ts';
import { SavedQueries } from './constructs/saved-queries.ts';
import { SigningSecrets } from './constructs/signing-secrets.ts';
import { SourceRateLimits } from './constructs/source-rate-limits.ts';
import { TraceSampling } from './constructs/trace-sampling.ts';
import { WebhookApi } from './constructs/webhook-api.ts';

/** Output keys of the stack (the command-line tool reads them with `--aws --stack NAME`). */
export const STACK_OUTPUTS = {
  apiUrl: 'ApiUrl',
  webhookUrl: 'WebhookUrl',
  healthUrl: 'HealthUrl',
  apiId: 'RestApiId',
  stateMachineArn: 'StateMachineArn',
  executionLogGroup: 'ExecutionLogGroupName',
  functionLogGroups: 'FunctionLogGroupNames',
  apiAccessLogGroup: 'ApiAccessLogGroupName',
  exportBucket: 'ExportBucketName',
  failedDeliveryQueueUrl: 'FailedDeliveryQueueUrl',
  failedDeliveryDeadLetterQueueUrl: 'FailedDeliveryDeadLetterQueueUrl',
  redeliveryStateMachineArn: 'RedeliveryStateMachineArn',
  redeliveryExecutionLogGroup: 'RedeliveryExecutionLogGroupName',
  redeliverySchedulerLogGroup: 'RedeliverySchedulerLogGroupName',
  inboundWebhookSecretsArn: 'InboundWebhookSecretsArn',
  deliverySigningSecretsArn: 'DeliverySigningSecretsArn',
  idempotencyTable: 'IdempotencyTableName',
  statusTable: 'StatusTableName',
  threadTable: 'ThreadTableName',
  acceptStateMachineArn: 'AcceptStateMachineArn',
  acceptExecutionLogGroup: 'AcceptExecutionLogGroupName',
  statusLogGroup: 'StatusLogGroupName',
  statusUrlTemplate: 'StatusUrlTemplate',
  deliveriesTable: 'DeliveriesTableName',
  deliverFunction: 'DeliverFunctionName',
  dashboard: 'DashboardName',
  analyticsDatabase: 'AnalyticsDatabaseName',
  analyticsWorkGroup: 'AnalyticsWorkGroupName',
  analyticsQueryPolicyArn: 'AnalyticsQueryPolicyArn',
  operatorPolicyArn: 'OperatorPolicyArn',
  /** Only with context sourceRateLimits. */
  sourceApiKeyIds: 'SourceApiKeyIds',
  /** Only with context alarmEmail. */
  alarmTopicArn: 'AlarmTopicArn',
} as const;

/** Outputs that exist only when their feature is configured. */
export const OPTIONAL_STACK_OUTPUTS: readonly string[] = [
  STACK_OUTPUTS.sourceApiKeyIds,
  STACK_OUTPUTS.alarmTopicArn,
  STACK_OUTPUTS.apiAccessLogGroup,
];

/** The first export day the Athena table projects (exports older than it are not queried). */
export const ANALYTICS_FIRST_DAY = '2025/01/01';

export interface WebhookGatewayStackProps extends StackProps {
  /** Overrides of the CDK context values (see infra/config.ts for keys and defaults). */
  readonly config?: Partial<GatewayConfig>;
}

/**
 * The webhook conversation gateway: API → Express conversation workflow → stage functions, with the export bucket,
 * the failed-delivery queue and its redelivery schedule (scheduler → Express redelivery workflow), the signing
 * secrets and idempotency table, per-source rate limits, and the dashboard, alarms and saved queries to run it.
 * One construct per concern; configuration from CDK context (or props).
 */
export class WebhookGatewayStack extends Stack {
  readonly config: GatewayConfig;
  readonly storage: ConversationExportBucket;
  readonly secrets: SigningSecrets;
  readonly idempotency: IdempotencyTable;
  readonly asyncTables: AsyncConversationTables;
  readonly accept: AcceptWorkflow;
  readonly deliveries: DeliveriesTable;
  readonly queues: FailedDeliveryQueue;
  readonly functions: ConversationFunctions;
  readonly workflow: ConversationWorkflow;
  readonly redelivery: RedeliveryWorkflow;
  readonly scheduler: RedeliveryScheduler;
  readonly api: WebhookApi;
  readonly rateLimits: SourceRateLimits;
  readonly traceSampling: TraceSampling;
  readonly observabilityProfile: GatewayConfig['observabilityProfile'];
  readonly alarms: GatewayAlarms;
  readonly dashboard: OperationsDashboard;
  readonly queries: SavedQueries;
  readonly analytics: ConversationAnalytics;
  readonly operatorPolicy: OperatorPolicy;

  constructor(scope: Construct, id: string, props: WebhookGatewayStackProps = {}) {
    super(scope, id, {
      description:
        'Webhook conversation gateway: API Gateway → Express Step Functions workflow → Lambda stages, S3 export',
      ...props,
    });
    const config = resolveConfig(this.node, props.config);
    const observability = OBSERVABILITY_PROFILES[config.observabilityProfile];
    this.observabilityProfile = config.observabilityProfile;
    const logRetention = config.logRetentionDays as RetentionDays;
    this.config = config;

    this.storage = new ConversationExportBucket(this, 'Storage', {
      existingBucketName: config.exportBucketName || undefined,
      transitionDays: config.exportTransitionDays,
      expirationDays: config.exportExpirationDays,
    });
    new DeliveryUrlGuard(this, 'DeliveryUrlGuard', {
      missing: missingDeliveryUrlKeys(config),
      allowed: config.allowMissingDeliveryUrls,
    });
    this.secrets = new SigningSecrets(this, 'SigningSecrets');
    this.idempotency = new IdempotencyTable(this, 'Idempotency');
    this.asyncTables = new AsyncConversationTables(this, 'AsyncConversations');
    this.deliveries = new DeliveriesTable(this, 'Deliveries');
    // By default a received message stays hidden for longer than a whole scheduler run (the scheduler itself asks
    // for less per receive, still more than one redelivery execution).
    this.queues = new FailedDeliveryQueue(this, 'FailedDelivery', {
      visibilityTimeout: REDELIVERY_SCHEDULER_TIMEOUT.plus(Duration.minutes(1)),
    });
    this.functions = new ConversationFunctions(this, 'Functions', {
      config,
      exportBucket: this.storage.bucket,
      inboundSecrets: this.secrets.inbound,
      deliverySecrets: this.secrets.delivery,
      idempotencyTable: this.idempotency.table,
      statusTable: this.asyncTables.status,
      threadTable: this.asyncTables.threads,
      deliveriesTable: this.deliveries.table,
    });
    this.workflow = new ConversationWorkflow(this, 'Workflow', {
      functions: this.functions,
      failedDeliveryQueue: this.queues.queue,
      logRetention,
      agentFunctionName: config.agentFunctionName,
      includeExecutionData: observability.includeExecutionData,
    });
    this.redelivery = new RedeliveryWorkflow(this, 'Redelivery', {
      functions: this.functions,
      logRetention,
      includeExecutionData: observability.includeExecutionData,
    });
    this.accept = new AcceptWorkflow(this, 'Accept', {
      functions: this.functions,
      conversationStateMachine: this.workflow.stateMachine,
      logRetention,
      includeExecutionData: observability.includeExecutionData,
    });
    this.scheduler = new RedeliveryScheduler(this, 'RedeliveryScheduler', {
      failedDeliveryQueue: this.queues.queue,
      deadLetterQueue: this.queues.deadLetterQueue,
      redeliveryStateMachine: this.redelivery.stateMachine,
      schedule: config.redeliverySchedule,
      deliveriesTable: this.deliveries.table,
      deliveriesVariables: deliveriesVariables(config, this.deliveries.table),
      exportBucket: this.storage.bucket,
      exportKeyArn: config.exportBucketKmsKeyArn || undefined,
      enableConversationExport: config.enableConversationExport,
      statusTable: this.asyncTables.status,
      logRetention,
      logLevel: config.logLevel,
      reservedConcurrency: config.redeliverySchedulerConcurrency,
    });
    this.api = new WebhookApi(this, 'Api', {
      stateMachine: this.workflow.stateMachine,
      acceptStateMachine: this.accept.stateMachine,
      statusFunction: this.functions.status,
      stageName: config.stageName,
      logRetention,
      throttlingRateLimit: config.throttlingRateLimit,
      throttlingBurstLimit: config.throttlingBurstLimit,
      restApiName: this.stackName,
      logging: config.apiLogging,
      createCloudWatchRole: config.createApiGatewayCloudWatchRole,
      integrationTimeout: Duration.millis(config.apiIntegrationTimeoutMs),
      apiKeyRequired: Object.keys(config.sourceRateLimits).length > 0,
    });
    this.traceSampling = new TraceSampling(this, 'TraceSampling', {
      apiServiceName: `${this.api.api.restApiName}/${config.stageName}`,
      fixedRate: observability.traceSampleRate,
    });
    this.rateLimits = new SourceRateLimits(this, 'RateLimits', { api: this.api.api, limits: config.sourceRateLimits });
    // Each key may only act as its own source (Validate and the status route refuse another: 403 SOURCE_MISMATCH).
    const apiKeyIds = this.rateLimits.sourceApiKeyIds;
    if (apiKeyIds)
      for (const fn of [this.functions.validate, this.functions.status])
        fn.addEnvironment('SOURCE_API_KEY_IDS', apiKeyIds);

    this.alarms = new GatewayAlarms(this, 'Alarms', {
      conversationStateMachine: this.workflow.stateMachine,
      conversationExecutionLog: this.workflow.logGroup,
      acceptStateMachine: this.accept.stateMachine,
      acceptExecutionLog: this.accept.logGroup,
      redeliveryStateMachine: this.redelivery.stateMachine,
      exportFunctionLog: this.functions.export.stageLogGroup,
      deadLetterQueue: this.queues.deadLetterQueue,
      redeliveryScheduler: this.scheduler.function,
      agentP99AlarmMs: config.agentP99AlarmMs,
      deliveryFailureAlarmCount: config.deliveryFailureAlarmCount,
      alarmEmail: config.alarmEmail,
    });
    this.dashboard = new OperationsDashboard(this, 'Dashboard', {
      conversationStateMachine: this.workflow.stateMachine,
      acceptStateMachine: this.accept.stateMachine,
      redeliveryStateMachine: this.redelivery.stateMachine,
      failedDeliveryQueue: this.queues.queue,
      deadLetterQueue: this.queues.deadLetterQueue,
      alarms: this.alarms.all,
      agentP99AlarmMs: config.agentP99AlarmMs,
    });
    this.queries = new SavedQueries(this, 'Queries', { logGroups: this.functions.all.map((fn) => fn.stageLogGroup) });
    this.analytics = new ConversationAnalytics(this, 'Analytics', {
      exportBucket: this.storage.bucket,
      exportKeyArn: config.exportBucketKmsKeyArn || undefined,
      databaseName: analyticsDatabaseName(this.stackName),
      databaseId: analyticsDatabaseId(this.stackName),
      workGroupName: analyticsWorkGroupName(this.stackName),
      bytesScannedCutoffPerQuery: config.analyticsScanLimitGb * 1024 ** 3,
      resultsExpirationDays: config.analyticsResultsExpirationDays,
      firstDay: ANALYTICS_FIRST_DAY,
    });
    this.operatorPolicy = new OperatorPolicy(this, 'Operator', {
      deadLetterQueue: this.queues.deadLetterQueue,
      failedDeliveryQueue: this.queues.queue,
      redeliveryStateMachine: this.redelivery.stateMachine,
      exportBucket: this.storage.bucket,
      exportKeyArn: config.exportBucketKmsKeyArn || undefined,
      executionLogGroups: [this.workflow.logGroup, this.redelivery.logGroup, this.accept.logGroup],
      deliveriesTable: this.deliveries.table,
      idempotencyTable: this.idempotency.table,
      deliverFunction: this.functions.deliver,
      deliverySecret: this.secrets.delivery,
    });

    this.addOutputs();
  }

  private addOutputs(): void {
    const output = (key: string, value: string, description: string) =>
      new CfnOutput(this, key, { value, description });
    output(STACK_OUTPUTS.apiUrl, this.api.api.url, 'Base URL of the API stage');
    output(STACK_OUTPUTS.webhookUrl, this.api.webhookUrl, 'POST conversations here (Content-Type: application/json)');
    output(STACK_OUTPUTS.healthUrl, this.api.healthUrl, 'GET for a liveness check (does not run the workflow)');
    output(STACK_OUTPUTS.apiId, this.api.api.restApiId, 'REST API id');
    output(STACK_OUTPUTS.stateMachineArn, this.workflow.stateMachine.stateMachineArn, 'Express conversation workflow');
    output(
      STACK_OUTPUTS.executionLogGroup,
      this.workflow.logGroup.logGroupName,
      `Execution history (level ALL, ${OBSERVABILITY_PROFILES[this.observabilityProfile].includeExecutionData ? 'with' : 'without'} data)`,
    );
    output(
      STACK_OUTPUTS.functionLogGroups,
      Fn.join(
        ',',
        this.functions.all.map((fn) => fn.stageLogGroup.logGroupName),
      ),
      'Stage function log groups (validate, classify, deliver, export), comma-separated',
    );
    if (this.api.accessLogGroup) {
      output(
        STACK_OUTPUTS.apiAccessLogGroup,
        this.api.accessLogGroup.logGroupName,
        'API access log (requestId = execution name)',
      );
    }
    output(
      STACK_OUTPUTS.exportBucket,
      this.storage.bucket.bucketName,
      'Conversation exports (conversation-history/YYYY/MM/DD/<id>/)',
    );
    output(
      STACK_OUTPUTS.failedDeliveryQueueUrl,
      this.queues.queue.queueUrl,
      'Undelivered results waiting for a redelivery',
    );
    output(
      STACK_OUTPUTS.failedDeliveryDeadLetterQueueUrl,
      this.queues.deadLetterQueue.queueUrl,
      'Failed deliveries given up on (alarm FailedDeliveryDeadLetters)',
    );
    output(
      STACK_OUTPUTS.redeliveryStateMachineArn,
      this.redelivery.stateMachine.stateMachineArn,
      'Express redelivery workflow (Deliver → Export); not reachable from the API',
    );
    output(
      STACK_OUTPUTS.redeliveryExecutionLogGroup,
      this.redelivery.logGroup.logGroupName,
      'Redelivery execution history (level ALL, with data)',
    );
    output(
      STACK_OUTPUTS.redeliverySchedulerLogGroup,
      this.scheduler.function.stageLogGroup.logGroupName,
      'Redelivery scheduler log',
    );
    output(
      STACK_OUTPUTS.inboundWebhookSecretsArn,
      this.secrets.inbound.secretArn,
      'Put {"<source_system>": "whsec_…"} here after deploy',
    );
    output(
      STACK_OUTPUTS.deliverySigningSecretsArn,
      this.secrets.delivery.secretArn,
      'Put {"<webhook_type>": "whsec_…"} here after deploy',
    );
    output(
      STACK_OUTPUTS.idempotencyTable,
      this.idempotency.table.tableName,
      'Idempotency keys of POST /webhook (TTL expires_at)',
    );
    output(
      STACK_OUTPUTS.statusTable,
      this.asyncTables.status.tableName,
      'Statuses of asynchronous conversations (7 days)',
    );
    output(STACK_OUTPUTS.threadTable, this.asyncTables.threads.tableName, 'Turns of threads (TTL threadTtlDays)');
    output(
      STACK_OUTPUTS.acceptStateMachineArn,
      this.accept.stateMachine.stateMachineArn,
      'Express accept workflow (POST /webhook with Prefer: respond-async)',
    );
    output(
      STACK_OUTPUTS.acceptExecutionLogGroup,
      this.accept.logGroup.logGroupName,
      'Accept execution history (level ALL, with data)',
    );
    output(
      STACK_OUTPUTS.statusLogGroup,
      this.functions.status.stageLogGroup.logGroupName,
      'The status route function log (WEBHOOK_STATUS_REJECTED lines)',
    );
    output(
      STACK_OUTPUTS.statusUrlTemplate,
      this.api.api.urlForPath('/conversations/{conversation_id}'),
      'GET with ?source_system=<source> (the 202 of an asynchronous start gives the full URL)',
    );
    output(
      STACK_OUTPUTS.deliveriesTable,
      this.deliveries.table.tableName,
      'Delivery attempt log and receivers (webhook-gateway endpoints --aws)',
    );
    output(
      STACK_OUTPUTS.deliverFunction,
      this.functions.deliver.functionName,
      "Deliver: its *_WEBHOOK_URL variables are the receivers' deployed URLs",
    );
    output(STACK_OUTPUTS.dashboard, this.dashboard.dashboard.dashboardName, 'CloudWatch dashboard');
    output(
      STACK_OUTPUTS.analyticsDatabase,
      this.analytics.database.ref,
      'Glue database of the conversations view (SQL over every export)',
    );
    output(STACK_OUTPUTS.analyticsWorkGroup, this.analytics.workGroup.ref, 'Athena workgroup with the named queries');
    output(
      STACK_OUTPUTS.analyticsQueryPolicyArn,
      this.analytics.queryPolicy.managedPolicyArn,
      'Attach to the roles that run the named queries',
    );
    output(
      STACK_OUTPUTS.operatorPolicyArn,
      this.operatorPolicy.policy.managedPolicyArn,
      'Attach to the roles that run the webhook-gateway --aws commands (with AnalyticsQueryPolicyArn for SQL)',
    );
    const keys = Object.entries(this.rateLimits.apiKeys);
    if (keys.length > 0) {
      output(
        STACK_OUTPUTS.sourceApiKeyIds,
        Fn.join(
          ',',
          keys.map(([source, key]) => `${source}=${key.keyId}`),
        ),
        'source_system=API key id, comma-separated (values: aws apigateway get-api-key --api-key ID --include-value)',
      );
    }
    if (this.alarms.topic) output(STACK_OUTPUTS.alarmTopicArn, this.alarms.topic.topicArn, 'SNS topic of the alarms');
  }
}
