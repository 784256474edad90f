/**
 * One redelivery of a conversation in flight at a time on AWS. The failed-delivery queue may hold two copies of one
 * envelope (SQS delivers a message at least once; a run that sent a message's replacement could not delete it), and
 * scheduler runs overlap: without a claim, two runs that each received a copy would both start the redelivery
 * workflow before either's Deliver logged its attempt, and the receiver would get the delivery twice at once. Before
 * starting one, the scheduler claims the conversation with a conditional PutItem in the deliveries table
 * (`conversation#<id>` / `redelivery`, beside its attempt log): a claim taken by another run and not yet ended refuses
 * it, and that copy waits until the claim ends (docs/deploy.md, "Failed deliveries on AWS"). A claim ends by itself
 * (REDELIVERY_CLAIM_MS: a run that crashed, or whose execution may still be running, holds nothing for good); a run
 * whose execution ended ends its claim at once.
 */
import { randomUUID } from 'node:crypto';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DELIVERY_TIMEOUT_LIMITS_MS } from '../domain/budget.ts';
import { conditionFailed, dynamoDb } from './clients/dynamodb.ts';
import { worstCallMs } from './clients/request-limits.ts';
import { START_SYNC_EXECUTION_WORST_MS } from './clients/sfn.ts';
import { settings } from './settings.ts';

/**
 * How long a claim holds, ms: from the claim, the attempt-log read (worstCallMs), then the StartSyncExecution until it
 * returns or fails at worst (START_SYNC_EXECUTION_WORST_MS: by then the execution has ended, its TimeoutSeconds is
 * 60 s), and a Deliver invocation that outlives its timed-out execution (its Lambda timeout: the longest
 * DELIVERY_TIMEOUT_MS and 5 s, infra/constructs/stage-function.ts timeoutAround). Rounded up to whole minutes.
 */
export const REDELIVERY_CLAIM_MS =
  Math.ceil((worstCallMs() + START_SYNC_EXECUTION_WORST_MS + DELIVERY_TIMEOUT_LIMITS_MS.max + 5_000) / 60_000) * 60_000;

/** The claim's item is removed by the table's TTL this long after it ended. */
const CLAIM_ITEM_TTL_S = 86_400;

export type RedeliveryClaim = { held: true; release(): Promise<void> } | { held: false; until: Date };

export class DynamoRedeliveryClaims {
  constructor(
    private readonly table: string,
    private readonly client?: DynamoDBClient,
    private readonly leaseMs = REDELIVERY_CLAIM_MS,
  ) {}

  /**
   * Claim the conversation's redelivery until now + the lease, unless another claim holds it still: then when that
   * one ends. Errors other than the condition are thrown (the envelope is then left as it was taken).
   */
  async claim(conversationId: string, now: Date): Promise<RedeliveryClaim> {
    const { sdk, db } = await dynamoDb(this.client);
    const holder = randomUUID();
    const until = now.getTime() + this.leaseMs;
    const key = { pk: { S: `conversation#${conversationId}` }, sk: { S: 'redelivery' } };
    try {
      await db.send(
        new sdk.PutItemCommand({
          TableName: this.table,
          Item: {
            ...key,
            holder: { S: holder },
            lease_until: { N: String(until) },
            expires_at: { N: String(Math.ceil(until / 1000) + CLAIM_ITEM_TTL_S) },
          },
          ConditionExpression: 'attribute_not_exists(pk) OR lease_until <= :now',
          ExpressionAttributeValues: { ':now': { N: String(now.getTime()) } },
          ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
        }),
      );
    } catch (error) {
      if (!conditionFailed(error)) throw error;
      const held = Number((error as { Item?: Record<string, { N?: string }> }).Item?.lease_until?.N);
      return { held: false, until: new Date(Number.isFinite(held) && held > now.getTime() ? held : until) };
    }
    return {
      held: true,
      release: async () => {
        try {
          await db.send(
            new sdk.DeleteItemCommand({
              TableName: this.table,
              Key: key,
              ConditionExpression: 'holder = :holder',
              ExpressionAttributeValues: { ':holder': { S: holder } },
            }),
          );
        } catch (error) {
          // Already taken over (it had ended): nothing of ours to end.
          if (!conditionFailed(error)) throw error;
        }
      },
    };
  }
}

/** The claims of the configured deliveries table, or null without one (locally: one schedule, no copies). */
export function redeliveryClaims(): DynamoRedeliveryClaims | null {
  const { deliveriesTableName } = settings();
  return deliveriesTableName ? new DynamoRedeliveryClaims(deliveriesTableName) : null;
}
