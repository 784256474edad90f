import { Annotations, ArnFormat, Duration, Stack, Validations } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import { StringParameter } from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { WEBHOOK_TYPES } from '../../functions/domain/conversation.ts';
import { STATUS_FUNCTION_TIMEOUT_MS } from '../../functions/domain/conversation-status.ts';
import { DELIVERY_URL_VARIABLES } from '../../functions/domain/delivery.ts';
import { EXPORT_PREFIX } from '../../functions/domain/export-formats.ts';
import { type GatewayConfig, ssmParameterName, VALIDATE_FUNCTION_TIMEOUT_MS } from '../config.ts';
import { bucketObjectsFinding } from '../nag-findings.ts';
import { exportKeyStatement } from './conversation-export-bucket.ts';
import { StageFunction, timeoutAround } from './stage-function.ts';

export interface ConversationFunctionsProps {
  readonly config: GatewayConfig;
  readonly exportBucket: IBucket;
  /** `{"<source_system>": "whsec_…" | [new, old]}`: Validate verifies inbound signatures with it. */
  readonly inboundSecrets: ISecret;
  /** `{"<webhook_type>": "whsec_…"}`: Deliver signs deliveries with it. */
  readonly deliverySecrets: ISecret;
  /** Idempotency keys: Validate claims them, Export completes or releases them. */
  readonly idempotencyTable: ITable;
  /** Statuses of asynchronous conversations: Validate writes `running`, Export the end, the status route reads. */
  readonly statusTable: ITable;
  /** Turns of threads: Validate takes a turn and reads the earlier ones, Export keeps the answered turn. */
  readonly threadTable: ITable;
  /** Attempt log and receivers (deliveries-table.ts): Deliver writes them, Export reads the log. */
  readonly deliveriesTable: ITable;
}

/**
 * The four stage functions of the conversation workflow, each with only the permissions and variables its stage
 * needs: Validate may read the inbound signing secrets, claim idempotency keys, write a `running` status and take
 * and read a thread's turns; Deliver gets the four outbound URLs, may read the delivery signing secrets and keeps
 * the attempt log and the receivers' state in the deliveries table; Export may put objects under
 * conversation-history/, read the attempt log, complete or release idempotency keys, finish a status and keep a
 * thread's turn. Nothing else. The agent is invoked by the state machine itself (conversation-workflow.ts). Beside
 * them, the status route's function (GET /conversations/{id}) may read the inbound secrets and get status items.
 */
export class ConversationFunctions extends Construct {
  readonly validate: StageFunction;
  readonly classify: StageFunction;
  readonly deliver: StageFunction;
  readonly export: StageFunction;
  readonly status: StageFunction;

  constructor(scope: Construct, id: string, props: ConversationFunctionsProps) {
    super(scope, id);
    const { config } = props;
    const common = { logRetention: config.logRetentionDays as RetentionDays, logLevel: config.logLevel };

    this.validate = new StageFunction(this, 'Validate', {
      ...common,
      stage: 'validate',
      description: 'Validate: parse and check the webhook request, build the conversation id and record',
      timeout: Duration.millis(VALIDATE_FUNCTION_TIMEOUT_MS),
      environment: {
        INBOUND_WEBHOOK_SECRETS_ARN: props.inboundSecrets.secretArn,
        REQUIRE_SIGNED_WEBHOOKS: String(config.requireSignedWebhooks),
        IDEMPOTENCY_TABLE_NAME: props.idempotencyTable.tableName,
        // The budget (functions/domain/budget.ts) and the WEBHOOK_MANAGER_AGENT_INVOKED line.
        RESPONSE_TIMEOUT_MS: String(config.apiIntegrationTimeoutMs),
        MANAGER_AGENT_TIMEOUT_MS: String(config.agentTimeoutMs),
        MANAGER_AGENT_FUNCTION_NAME: config.agentFunctionName,
        ASYNC_AGENT_TIMEOUT_MS: String(config.asyncAgentTimeoutMs),
        DELIVERY_TIMEOUT_MS: String(config.deliveryTimeoutMs),
        STATUS_TABLE_NAME: props.statusTable.tableName,
        THREAD_TABLE_NAME: props.threadTable.tableName,
        THREAD_TTL_DAYS: String(config.threadTtlDays),
      },
    });
    allow(this.validate, ['secretsmanager:GetSecretValue'], [props.inboundSecrets.secretArn]);
    // Claim a key (PutItem; a failed condition returns the claim it met, no GetItem), and free it when the
    // conversation cannot start.
    allow(this.validate, ['dynamodb:PutItem', 'dynamodb:DeleteItem'], [props.idempotencyTable.tableArn]);
    allow(this.validate, ['dynamodb:PutItem'], [props.statusTable.tableArn]);
    // Claim a turn (UpdateItem; PutItem of turn 1 over an expired counter) and read the earlier turns.
    allow(this.validate, ['dynamodb:UpdateItem', 'dynamodb:PutItem', 'dynamodb:Query'], [props.threadTable.tableArn]);

    this.classify = new StageFunction(this, 'Classify', {
      ...common,
      stage: 'classify',
      description: 'Classify: decide the webhook type of the answer and record why',
      timeout: Duration.seconds(10),
    });

    this.deliver = new StageFunction(this, 'Deliver', {
      ...common,
      stage: 'deliver',
      description: "Deliver: one signed POST of the result to its type's outbound webhook",
      timeout: timeoutAround(config.deliveryTimeoutMs),
      environment: {
        ...this.deliveryUrlVariables(config),
        DELIVERY_TIMEOUT_MS: String(config.deliveryTimeoutMs),
        DELIVERY_SIGNING_SECRETS_ARN: props.deliverySecrets.secretArn,
        ...deliveriesVariables(config, props.deliveriesTable),
      },
    });
    allow(this.deliver, ['secretsmanager:GetSecretValue'], [props.deliverySecrets.secretArn]);
    // Query: a retry held (a paused receiver, the caller's deadline) reads the attempts of the tries before it.
    allow(
      this.deliver,
      ['dynamodb:PutItem', 'dynamodb:GetItem', 'dynamodb:UpdateItem', 'dynamodb:Query'],
      [props.deliveriesTable.tableArn],
    );

    this.export = new StageFunction(this, 'Export', {
      ...common,
      stage: 'export',
      description: 'Export: write the conversation record to S3 in four formats',
      timeout: Duration.seconds(30),
      environment: {
        CONVERSATION_EXPORT_S3_BUCKET: props.exportBucket.bucketName,
        ENABLE_CONVERSATION_EXPORT: String(config.enableConversationExport),
        IDEMPOTENCY_TABLE_NAME: props.idempotencyTable.tableName,
        STATUS_TABLE_NAME: props.statusTable.tableName,
        THREAD_TABLE_NAME: props.threadTable.tableName,
        THREAD_TTL_DAYS: String(config.threadTtlDays),
        ...deliveriesVariables(config, props.deliveriesTable),
      },
    });
    allow(this.export, ['dynamodb:Query'], [props.deliveriesTable.tableArn]);
    // Complete (UpdateItem) or free (DeleteItem) the conversation's own key.
    allow(this.export, ['dynamodb:UpdateItem', 'dynamodb:DeleteItem'], [props.idempotencyTable.tableArn]);
    allow(this.export, ['dynamodb:UpdateItem'], [props.statusTable.tableArn]);
    allow(this.export, ['dynamodb:PutItem'], [props.threadTable.tableArn]);
    this.export.addToRolePolicy(
      new PolicyStatement({
        actions: ['s3:PutObject'],
        resources: [props.exportBucket.arnForObjects(`${EXPORT_PREFIX}/*`)],
      }),
    );
    // An existing bucket encrypting with a customer-managed key: each PUT needs a data key of it.
    const exportKey = exportKeyStatement(config.exportBucketKmsKeyArn, 'write');
    if (exportKey) this.export.addToRolePolicy(exportKey);
    this.status = this.statusFunction(props, common);
    if (this.export.role) {
      Validations.of(this.export.role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${bucketObjectsFinding(props.exportBucket, `${EXPORT_PREFIX}/*`)}]`,
        reason: `Export writes one folder per conversation with generated keys: s3:PutObject is limited to the ${EXPORT_PREFIX}/ prefix of the export bucket, the narrowest fixed scope.`,
      });
    }
  }

  /**
   * The status route's function for `GET /conversations/{id}`; the stack adds `SOURCE_API_KEY_IDS` (which source
   * each API key belongs to) once the keys exist.
   */
  private statusFunction(props: ConversationFunctionsProps, common: { logRetention: RetentionDays; logLevel: string }) {
    const fn = new StageFunction(this, 'ConversationStatus', {
      ...common,
      stage: 'conversation-status',
      description: 'GET /conversations/{id}: the status of an asynchronous conversation, to its own source only',
      timeout: Duration.millis(STATUS_FUNCTION_TIMEOUT_MS),
      environment: {
        INBOUND_WEBHOOK_SECRETS_ARN: props.inboundSecrets.secretArn,
        REQUIRE_SIGNED_WEBHOOKS: String(props.config.requireSignedWebhooks),
        STATUS_TABLE_NAME: props.statusTable.tableName,
      },
    });
    allow(fn, ['secretsmanager:GetSecretValue'], [props.inboundSecrets.secretArn]);
    allow(fn, ['dynamodb:GetItem'], [props.statusTable.tableArn]);
    return fn;
  }

  /** In workflow order. */
  get all(): StageFunction[] {
    return [this.validate, this.classify, this.deliver, this.export];
  }

  private deliveryUrlVariables(config: GatewayConfig): Record<string, string> {
    const variables: Record<string, string> = {};
    for (const type of WEBHOOK_TYPES) {
      const value = config.deliveryUrls[type];
      const parameter = ssmParameterName(value);
      if (parameter) {
        // Resolved by CloudFormation at deploy time (a String parameter; change it, then redeploy).
        variables[DELIVERY_URL_VARIABLES[type]] = StringParameter.valueForStringParameter(this, parameter);
        continue;
      }
      if (value && !value.startsWith('https://')) {
        Annotations.of(this).addWarningV2(
          `webhook-gateway:insecure-delivery-url:${type}`,
          `The ${type} delivery URL is not https: ${value}`,
        );
      }
      variables[DELIVERY_URL_VARIABLES[type]] = value;
    }
    return variables;
  }
}

/** Where the deliveries table is and the circuit breaker's policy (functions/shared/settings.ts). */
export function deliveriesVariables(config: GatewayConfig, table: ITable): Record<string, string> {
  return {
    DELIVERIES_TABLE_NAME: table.tableName,
    ENDPOINT_FAILURE_THRESHOLD: String(config.endpointFailureThreshold),
    ENDPOINT_DISABLE_AFTER_DAYS: String(config.endpointDisableAfterDays),
    ATTEMPT_LOG_RETENTION_DAYS: String(config.attemptLogRetentionDays),
  };
}

function allow(fn: StageFunction, actions: string[], resources: string[]): void {
  fn.addToRolePolicy(new PolicyStatement({ actions, resources }));
}

/** The agent as an IAM resource: a full ARN as given, else this account's and region's function (or alias). */
export function agentFunctionArn(scope: Construct, nameOrArn: string): string {
  if (nameOrArn.startsWith('arn:')) return nameOrArn;
  return Stack.of(scope).formatArn({
    service: 'lambda',
    resource: 'function',
    resourceName: nameOrArn,
    arnFormat: ArnFormat.COLON_RESOURCE_NAME,
  });
}
