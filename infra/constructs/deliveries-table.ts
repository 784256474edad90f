import { RemovalPolicy } from 'aws-cdk-lib';
import { AttributeType, type Table } from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { ttlTable } from './ttl-table.ts';

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
  readonly table: Table;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.table = ttlTable(
      this,
      'Table',
      {
        partitionKey: { name: DeliveriesTable.PARTITION_KEY, type: AttributeType.STRING },
        sortKey: { name: DeliveriesTable.SORT_KEY, type: AttributeType.STRING },
      },
      RemovalPolicy.RETAIN,
    );
  }
}
