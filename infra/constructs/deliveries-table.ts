import { RemovalPolicy } from 'aws-cdk-lib';
import { AttributeType, BillingMode, Table, TableEncryption } from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';

/**
 * The deliveries table (functions/shared/attempt-log.ts, endpoint-store.ts): one on-demand table for what the
 * deliveries need beyond the workflow's state, so that no response body ever rides in it.
 * - `conversation#<id>` / `attempt#<start>#<n>`: each delivery attempt with the receiver's answer (TTL `expires_at`,
 *   ATTEMPT_LOG_RETENTION_DAYS); Deliver puts one per attempt, Export queries them for conversation.json.
 * - `endpoint#<type>` / `endpoint`: each receiver's run-time configuration (URL, rate, pause) and health (failure
 *   streak, probe lease, disable); Deliver reads it (cached for seconds) and updates it per attempt, operators change
 *   it with `webhook-gateway endpoints … --aws`.
 * - `rate#<type>` / `<window start>`: the outbound rate's counter of one window (TTL an hour).
 * Kept when the stack is deleted (it holds the receivers' configuration); point-in-time recovery on.
 */
export class DeliveriesTable extends Construct {
  static readonly PARTITION_KEY = 'pk';
  static readonly SORT_KEY = 'sk';
  static readonly TTL_ATTRIBUTE = 'expires_at';
  readonly table: Table;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.table = new Table(this, 'Table', {
      partitionKey: { name: DeliveriesTable.PARTITION_KEY, type: AttributeType.STRING },
      sortKey: { name: DeliveriesTable.SORT_KEY, type: AttributeType.STRING },
      timeToLiveAttribute: DeliveriesTable.TTL_ATTRIBUTE,
      billingMode: BillingMode.PAY_PER_REQUEST,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      encryption: TableEncryption.AWS_MANAGED,
      removalPolicy: RemovalPolicy.RETAIN,
    });
  }
}
