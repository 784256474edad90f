import { CfnOutput, Fn, Stack, type StackProps } from 'aws-cdk-lib';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { type GatewayConfig, resolveConfig } from './config.ts';
import { ConversationExportBucket } from './constructs/conversation-export-bucket.ts';
import { ConversationFunctions } from './constructs/conversation-functions.ts';
import { ConversationWorkflow } from './constructs/conversation-workflow.ts';
import { FailedDeliveryQueue } from './constructs/failed-delivery-queue.ts';
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
} as const;

export interface WebhookGatewayStackProps extends StackProps {
  /** Overrides of the CDK context values (see infra/config.ts for keys and defaults). */
  readonly config?: Partial<GatewayConfig>;
}

/**
 * The webhook conversation gateway: API → Express workflow → stage functions, with the export bucket and the
 * failed-delivery queue. One construct per concern; configuration from CDK context (or props).
 */
export class WebhookGatewayStack extends Stack {
  readonly config: GatewayConfig;
  readonly storage: ConversationExportBucket;
  readonly queues: FailedDeliveryQueue;
  readonly functions: ConversationFunctions;
  readonly workflow: ConversationWorkflow;
  readonly api: WebhookApi;

  constructor(scope: Construct, id: string, props: WebhookGatewayStackProps = {}) {
    super(scope, id, {
      description: 'Webhook conversation gateway: API Gateway → Express Step Functions workflow → Lambda stages, S3 export',
      ...props,
    });
    const config = resolveConfig(this.node, props.config);
    const logRetention = config.logRetentionDays as RetentionDays;
    this.config = config;

    this.storage = new ConversationExportBucket(this, 'Storage', {
      existingBucketName: config.exportBucketName || undefined,
      transitionDays: config.exportTransitionDays,
      expirationDays: config.exportExpirationDays,
    });
    this.queues = new FailedDeliveryQueue(this, 'FailedDelivery');
    this.functions = new ConversationFunctions(this, 'Functions', { config, exportBucket: this.storage.bucket });
    this.workflow = new ConversationWorkflow(this, 'Workflow', {
      functions: this.functions,
      failedDeliveryQueue: this.queues.queue,
      logRetention,
    });
    this.api = new WebhookApi(this, 'Api', {
      stateMachine: this.workflow.stateMachine,
      stageName: config.stageName,
      logRetention,
      throttlingRateLimit: config.throttlingRateLimit,
      throttlingBurstLimit: config.throttlingBurstLimit,
      createCloudWatchRole: config.createApiGatewayCloudWatchRole,
    });

    const output = (key: string, value: string, description: string) => new CfnOutput(this, key, { value, description });
    output(STACK_OUTPUTS.apiUrl, this.api.api.url, 'Base URL of the API stage');
    output(STACK_OUTPUTS.webhookUrl, this.api.webhookUrl, 'POST conversations here (Content-Type: application/json)');
    output(STACK_OUTPUTS.healthUrl, this.api.healthUrl, 'GET for a liveness check (does not run the workflow)');
    output(STACK_OUTPUTS.apiId, this.api.api.restApiId, 'REST API id');
    output(STACK_OUTPUTS.stateMachineArn, this.workflow.stateMachine.stateMachineArn, 'Express conversation workflow');
    output(STACK_OUTPUTS.executionLogGroup, this.workflow.logGroup.logGroupName, 'Execution history (level ALL, with data)');
    output(
      STACK_OUTPUTS.functionLogGroups,
      Fn.join(',', this.functions.all.map((fn) => fn.stageLogGroup.logGroupName)),
      'Stage function log groups (validate, invoke-agent, classify, deliver, export), comma-separated',
    );
    output(STACK_OUTPUTS.apiAccessLogGroup, this.api.accessLogGroup.logGroupName, 'API access log (requestId = execution name)');
    output(STACK_OUTPUTS.exportBucket, this.storage.bucket.bucketName, 'Conversation exports (conversation-history/YYYY/MM/DD/<id>/)');
    output(STACK_OUTPUTS.failedDeliveryQueueUrl, this.queues.queue.queueUrl, 'Undelivered results waiting for a redrive');
    output(STACK_OUTPUTS.failedDeliveryDeadLetterQueueUrl, this.queues.deadLetterQueue.queueUrl, 'Failed-delivery messages that kept failing');
  }
}
