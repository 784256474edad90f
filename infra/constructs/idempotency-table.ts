import { AttributeType, type Table } from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { ttlTable } from './ttl-table.ts';

/**
 * Idempotent retries of POST /webhook: one item per (source_system, Idempotency-Key or webhook-id), keyed by their
 * hash (`pk`). Validate claims a key (conditional PutItem; GetItem to read the first conversation's answer),
 * Export completes it (UpdateItem) or releases it (DeleteItem). Items expire through DynamoDB TTL on `expires_at`
 * (epoch seconds; 24 h by default). On-demand, encrypted, point-in-time recovery on; the items are short-lived
 * request bookkeeping, so the table is deleted with the stack.
 */
export class IdempotencyTable extends Construct {
  static readonly PARTITION_KEY = 'pk';
  readonly table: Table;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.table = ttlTable(this, 'Table', {
      partitionKey: { name: IdempotencyTable.PARTITION_KEY, type: AttributeType.STRING },
    });
  }
}
