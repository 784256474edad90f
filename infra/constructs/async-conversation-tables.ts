import { AttributeType, type Table } from 'aws-cdk-lib/aws-dynamodb';
import { Construct } from 'constructs';
import { ttlTable } from './ttl-table.ts';

/**
 * What conversations that outlive one HTTP request keep between requests (docs/contract.md#asynchronous-start-prefer-respond-async,
 * #threads), one DynamoDB table each:
 * - `status`: one item per asynchronous conversation (`conversation_id`): Validate writes `running` when it accepts
 *   it, Export the end and the caller's body once, GET /conversations/{id} reads it (one consistent GetItem). Kept 7
 *   days. A small record rather than the export: the export exists only once the conversation ended (no `running`),
 *   Express executions cannot be described by API, and a GetItem answers in single-digit milliseconds for
 *   $0.125 per million reads against an S3 GET's tens of milliseconds for $0.40 per million (docs/deploy.md).
 * - `threads`: the turns of threads (functions/shared/thread-store.ts): partition `thread` (`<source>/<thread_id>`),
 *   sort `turn` (0: the counter Validate increments; n: the answered turn Export writes), read newest first by one
 *   Query. Kept THREAD_TTL_DAYS after the thread's last use.
 */
export class AsyncConversationTables extends Construct {
  readonly status: Table;
  readonly threads: Table;

  constructor(scope: Construct, id: string) {
    super(scope, id);
    this.status = ttlTable(this, 'Status', {
      partitionKey: { name: 'conversation_id', type: AttributeType.STRING },
    });
    this.threads = ttlTable(this, 'Threads', {
      partitionKey: { name: 'thread', type: AttributeType.STRING },
      sortKey: { name: 'turn', type: AttributeType.NUMBER },
    });
  }
}
