import { Stack, Validations } from 'aws-cdk-lib';
import type { ITable } from 'aws-cdk-lib/aws-dynamodb';
import { ManagedPolicy, PolicyStatement } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { ILogGroup } from 'aws-cdk-lib/aws-logs';
import type { IBucket } from 'aws-cdk-lib/aws-s3';
import type { ISecret } from 'aws-cdk-lib/aws-secretsmanager';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { EXPORT_PREFIX } from '../../functions/domain/export-formats.ts';
import { bucketObjectsFinding } from '../nag-findings.ts';
import { exportKeyStatement } from './conversation-export-bucket.ts';

export interface OperatorPolicyProps {
  readonly deadLetterQueue: IQueue;
  readonly failedDeliveryQueue: IQueue;
  readonly redeliveryStateMachine: IStateMachine;
  readonly exportBucket: IBucket;
  /** The customer-managed key an existing export bucket encrypts with (context exportBucketKmsKeyArn), if any. */
  readonly exportKeyArn?: string;
  /** The Express workflows' execution log groups (`conversations show --aws` reads them with Logs Insights). */
  readonly executionLogGroups: readonly ILogGroup[];
  readonly deliveriesTable: ITable;
  /** `conversations list | show --key … --aws` read a source's key in it. */
  readonly idempotencyTable: ITable;
  readonly deliverFunction: IFunction;
  readonly deliverySecret: ISecret;
}

/**
 * The managed policy an operator's role needs for the `--aws` commands of the command-line tool
 * (docs/operations.md), with each action on the resource of this stack it is called on and nothing more:
 * `deliveries list | redrive | resend`, `conversations show` (and `list | show --key`), `endpoints list | set | pause | resume`. The commands
 * that run SQL on Athena (`conversations list | search | query`) need the analytics query policy as well
 * (ConversationAnalytics). test/infra/operator-policy.test.ts runs every command against mocked AWS clients and
 * fails when one calls an action neither policy grants, or when this one grants an action no command calls.
 */
export class OperatorPolicy extends Construct {
  readonly policy: ManagedPolicy;

  constructor(scope: Construct, id: string, props: OperatorPolicyProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const exports = props.exportBucket.arnForObjects(`${EXPORT_PREFIX}/*`);
    this.policy = new ManagedPolicy(this, 'Policy', {
      description: `Run the webhook-gateway --aws commands on ${stack.stackName} (attach to operators' roles; add the analytics query policy for conversations list, search and query)`,
      statements: [
        new PolicyStatement({
          sid: 'ReadTheStackOutputs',
          actions: ['cloudformation:DescribeStacks'],
          resources: [stack.stackId],
        }),
        new PolicyStatement({
          sid: 'ListAndRedriveDeadLetters',
          actions: [
            'sqs:ReceiveMessage',
            'sqs:ChangeMessageVisibility',
            'sqs:SendMessage',
            'sqs:DeleteMessage',
            'sqs:GetQueueAttributes',
          ],
          resources: [props.deadLetterQueue.queueArn],
        }),
        new PolicyStatement({
          sid: 'CountTheSchedule',
          actions: ['sqs:GetQueueAttributes'],
          resources: [props.failedDeliveryQueue.queueArn],
        }),
        new PolicyStatement({
          sid: 'RunTheRedeliveryWorkflow',
          actions: ['states:StartSyncExecution'],
          resources: [props.redeliveryStateMachine.stateMachineArn],
        }),
        new PolicyStatement({
          sid: 'ReadTheExports',
          actions: ['s3:GetObject'],
          resources: [exports],
        }),
        // Not called by a command: with it S3 answers a missing export NoSuchKey instead of AccessDenied, so
        // `conversations show` and `deliveries resend` can say "no export" (docs/deploy.md, Configuration).
        new PolicyStatement({
          sid: 'TellAMissingExport',
          actions: ['s3:ListBucket'],
          resources: [props.exportBucket.bucketArn],
        }),
        new PolicyStatement({
          sid: 'QueryTheExecutionLogs',
          actions: ['logs:StartQuery'],
          // The log groups' ARNs with their trailing `:*`, the form an IAM policy names a log group by.
          resources: props.executionLogGroups.map((group) => group.logGroupArn),
        }),
        new PolicyStatement({
          sid: 'ReadAndStopTheQueries',
          actions: ['logs:GetQueryResults', 'logs:StopQuery'],
          resources: ['*'],
        }),
        new PolicyStatement({
          sid: 'AttemptLogClaimsAndReceivers',
          actions: [
            'dynamodb:Query',
            // One receiver's item, read by `endpoints test <type> --aws` (the URL its test delivery goes to).
            'dynamodb:GetItem',
            'dynamodb:BatchGetItem',
            'dynamodb:PutItem',
            'dynamodb:UpdateItem',
            'dynamodb:DeleteItem',
          ],
          resources: [props.deliveriesTable.tableArn],
        }),
        new PolicyStatement({
          sid: 'FindAConversationByItsKey',
          actions: ['dynamodb:GetItem'],
          resources: [props.idempotencyTable.tableArn],
        }),
        new PolicyStatement({
          sid: 'ReadTheDeployedReceivers',
          actions: ['lambda:GetFunctionConfiguration'],
          resources: [props.deliverFunction.functionArn],
        }),
        new PolicyStatement({
          sid: 'RotateDeliverySecrets',
          actions: ['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue'],
          resources: [props.deliverySecret.secretArn],
        }),
      ],
    });
    // conversations show and deliveries resend read conversation.json: under a customer-managed key, S3 decrypts
    // it with the caller's permission.
    const exportKey = exportKeyStatement(props.exportKeyArn, 'read');
    if (exportKey) this.policy.addStatements(exportKey);
    Validations.of(this.policy).acknowledge(
      {
        id: 'AwsSolutions-IAM5[Resource::*]',
        reason:
          "logs:GetQueryResults and logs:StopQuery name a query id, not a log group: CloudWatch Logs has no resource-level permission for them. The query itself is started only on the stack's execution log groups.",
      },
      {
        id: `AwsSolutions-IAM5[Resource::${bucketObjectsFinding(props.exportBucket, `${EXPORT_PREFIX}/*`)}]`,
        reason: `conversations show and deliveries resend read a conversation's conversation.json, whose key is generated per conversation: s3:GetObject is limited to the ${EXPORT_PREFIX}/ prefix of the export bucket.`,
      },
    );
  }
}
