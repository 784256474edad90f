import { Annotations, Duration, Validations } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { Rule, Schedule } from 'aws-cdk-lib/aws-events';
import { LambdaFunction } from 'aws-cdk-lib/aws-events-targets';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { EXPORT_PREFIX } from '../../functions/domain/export-formats.ts';
import { bucketObjectsFinding } from '../nag-findings.ts';
import { exportKeyStatement } from './conversation-export-bucket.ts';
import { StageFunction } from './stage-function.ts';

/**
 * The scheduler's Lambda timeout: the longest one sweep of the failed-delivery queue may take (it stops receiving
 * when less than one batch's redeliveries would fit). The queue's default visibility timeout is longer
 * (webhook-gateway-stack.ts), and the scheduler hides what it receives until its sweep is over, so two sweeps that
 * overlap (up to five, one started every minute) never work on the same envelope.
 */
export const REDELIVERY_SCHEDULER_TIMEOUT = Duration.minutes(5);
/** How often the schedule looks for due deliveries. */
const REDELIVERY_SWEEP_RATE = Duration.minutes(1);

export interface RedeliverySchedulerProps {
  readonly failedDeliveryQueue: IQueue;
  readonly deadLetterQueue: IQueue;
  readonly redeliveryStateMachine: IStateMachine;
  /** REDELIVERY_SCHEDULE, e.g. "5s,5m,30m,2h,5h,10h,10h". */
  readonly schedule: string;
  readonly logRetention: RetentionDays;
  readonly logLevel: string;
  /**
   * The deliveries table and its variables (conversation-functions.ts deliveriesVariables): the schedule reads the
   * receivers (a paused, disabled or failing one holds its deliveries back) and publishes their states as metrics.
   */
  readonly deliveriesTable: ITable;
  readonly deliveriesVariables: Record<string, string>;
  /**
   * Where users read a conversation: a delivery the schedule gives up because its runs kept failing is written there
   * by the scheduler itself (functions/shared/given-up.ts), as no run reached Export.
   */
  readonly exportBucket: IBucket;
  /** The customer-managed key an existing export bucket encrypts with (context exportBucketKmsKeyArn), if any. */
  readonly exportKeyArn?: string;
  readonly enableConversationExport: boolean;
  readonly statusTable: ITable;
  /** Reserved concurrency (context redeliverySchedulerConcurrency); 0 or absent: none. */
  readonly reservedConcurrency?: number;
}

/**
 * The automatic redelivery schedule on AWS: `functions/redelivery-scheduler/handler.ts`, run every minute by an
 * EventBridge rule (an event that cannot run within a minute is dropped rather than piling up). Runs may overlap:
 * a received envelope stays hidden from the others, and each run redelivers at most one batch of 10 at a time.
 * No reserved concurrency unless asked for (Lambda keeps 100 of an account's executions unreserved, and a new account
 * may have a quota of 10: reserving any fails the deploy there); redeliverySchedulerConcurrency 1 makes it one run at
 * a time, a run due while the previous one works being throttled, then dropped (docs/deploy.md, "Failed deliveries
 * on AWS"). Each run receives the failed-delivery
 * envelopes, starts the redelivery workflow (StartSyncExecution) for those that are due, puts updated envelopes
 * back on the queue and moves exhausted or permanently failed ones to the dead-letter queue; it reads the receivers'
 * state and the attempt log in the deliveries table (never writes them), claims each conversation it redelivers there
 * (one redelivery in flight at a time), writes the export and status of a delivery it gives up because its runs kept
 * failing, and publishes the receivers' state as the Webhook.endpoint_* metrics. Nothing else.
 */
export class RedeliveryScheduler extends Construct {
  readonly function: StageFunction;
  readonly rule: Rule;

  constructor(scope: Construct, id: string, props: RedeliverySchedulerProps) {
    super(scope, id);
    this.function = new StageFunction(this, 'Function', {
      stage: 'redelivery-scheduler',
      description: 'Redelivery schedule: start the redelivery workflow for each failed delivery that is due',
      timeout: REDELIVERY_SCHEDULER_TIMEOUT,
      reservedConcurrentExecutions: props.reservedConcurrency || undefined,
      retryAttempts: 0,
      maxEventAge: REDELIVERY_SWEEP_RATE,
      logRetention: props.logRetention,
      logLevel: props.logLevel,
      environment: {
        FAILED_DELIVERY_QUEUE_URL: props.failedDeliveryQueue.queueUrl,
        FAILED_DELIVERY_DLQ_URL: props.deadLetterQueue.queueUrl,
        REDELIVERY_STATE_MACHINE_ARN: props.redeliveryStateMachine.stateMachineArn,
        REDELIVERY_SCHEDULE: props.schedule,
        CONVERSATION_EXPORT_S3_BUCKET: props.exportBucket.bucketName,
        ENABLE_CONVERSATION_EXPORT: String(props.enableConversationExport),
        STATUS_TABLE_NAME: props.statusTable.tableName,
        ...props.deliveriesVariables,
      },
    });
    if (props.reservedConcurrency) {
      // Lambda refuses a reservation that leaves fewer than 100 executions unreserved (or, below that, the whole
      // quota): on a new account the deploy fails there and rolls back (docs/deploy.md, Configuration).
      Annotations.of(this).addWarningV2(
        'webhook-gateway:reserved-concurrency',
        `redeliverySchedulerConcurrency ${props.reservedConcurrency} reserves Lambda concurrency: the deploy fails ("decreases account's UnreservedConcurrentExecution below its minimum value") unless the account's concurrent-executions quota leaves at least 100 unreserved after it; new accounts may have 10 (aws lambda get-account-settings shows yours).`,
      );
    }
    const fn = this.function;
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: [
          'sqs:ReceiveMessage',
          'sqs:DeleteMessage',
          'sqs:ChangeMessageVisibility',
          'sqs:SendMessage',
          'sqs:GetQueueAttributes',
        ],
        resources: [props.failedDeliveryQueue.queueArn],
      }),
    );
    fn.addToRolePolicy(
      new PolicyStatement({ actions: ['sqs:SendMessage'], resources: [props.deadLetterQueue.queueArn] }),
    );
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['states:StartSyncExecution'],
        resources: [props.redeliveryStateMachine.stateMachineArn],
      }),
    );
    fn.addToRolePolicy(
      new PolicyStatement({
        // The receivers (GetItem), and a conversation's attempt log (Query) before it is redelivered: a copy of an
        // envelope whose conversation another copy delivered is dropped.
        actions: ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query'],
        resources: [props.deliveriesTable.tableArn],
      }),
    );
    fn.addToRolePolicy(
      new PolicyStatement({
        // Its claim on a conversation's redelivery (functions/shared/redelivery-claim.ts: one in flight at a time,
        // whatever copies of its envelope overlapping runs took), beside the attempt log: never a receiver's item.
        actions: ['dynamodb:PutItem', 'dynamodb:DeleteItem'],
        resources: [props.deliveriesTable.tableArn],
        conditions: { 'ForAllValues:StringLike': { 'dynamodb:LeadingKeys': ['conversation#*'] } },
      }),
    );
    // A delivery given up after its runs kept failing: its export files and its status's delivery (a conditional
    // UpdateItem that never creates an item), as Export writes them.
    fn.addToRolePolicy(
      new PolicyStatement({
        actions: ['s3:PutObject'],
        resources: [props.exportBucket.arnForObjects(`${EXPORT_PREFIX}/*`)],
      }),
    );
    const exportKey = exportKeyStatement(props.exportKeyArn, 'write');
    if (exportKey) fn.addToRolePolicy(exportKey);
    fn.addToRolePolicy(
      new PolicyStatement({ actions: ['dynamodb:UpdateItem'], resources: [props.statusTable.tableArn] }),
    );
    if (fn.role) {
      Validations.of(fn.role).acknowledge({
        id: `AwsSolutions-IAM5[Resource::${bucketObjectsFinding(props.exportBucket, `${EXPORT_PREFIX}/*`)}]`,
        reason: `The scheduler writes a given-up delivery's export folder, as Export does: s3:PutObject is limited to the ${EXPORT_PREFIX}/ prefix of the export bucket, the narrowest fixed scope.`,
      });
    }
    // Queues encrypted with a customer-managed key need the key too (the stack's own use SSE-SQS: no key policy).
    for (const key of [props.failedDeliveryQueue.encryptionMasterKey, props.deadLetterQueue.encryptionMasterKey]) {
      key?.grant(fn, 'kms:Decrypt', 'kms:GenerateDataKey');
    }

    this.rule = new Rule(this, 'Schedule', {
      description: 'Every minute: redeliver the failed deliveries that are due',
      schedule: Schedule.rate(REDELIVERY_SWEEP_RATE),
      // A missed minute is made up by the next one: no EventBridge retries.
      targets: [new LambdaFunction(fn, { retryAttempts: 0 })],
    });
  }
}
