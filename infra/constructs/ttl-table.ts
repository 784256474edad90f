import { CfnDeletionPolicy, type CfnResource, RemovalPolicy } from 'aws-cdk-lib';
import { BillingMode, Table, TableEncryption, type TableProps } from 'aws-cdk-lib/aws-dynamodb';
import type { Construct } from 'constructs';

/** The attribute every table of the stack expires its items by (epoch seconds). */
const TTL_ATTRIBUTE = 'expires_at';

/**
 * A DynamoDB table as every table of the stack is: on-demand, encrypted, point-in-time recovery on, TTL on
 * `expires_at`; deleted with the stack unless `removalPolicy` keeps it. A change that makes CloudFormation replace it
 * (its key schema) never deletes the old table with its items: it is left in the account (UpdateReplacePolicy
 * Retain; docs/deploy.md, "Later deploys, several stacks and deleting a stack").
 */
export function ttlTable(
  scope: Construct,
  id: string,
  keys: Pick<TableProps, 'partitionKey' | 'sortKey'>,
  removalPolicy: RemovalPolicy = RemovalPolicy.DESTROY,
): Table {
  const table = new Table(scope, id, {
    ...keys,
    timeToLiveAttribute: TTL_ATTRIBUTE,
    billingMode: BillingMode.PAY_PER_REQUEST,
    pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
    encryption: TableEncryption.AWS_MANAGED,
    removalPolicy,
  });
  (table.node.defaultChild as CfnResource).cfnOptions.updateReplacePolicy = CfnDeletionPolicy.RETAIN;
  return table;
}
