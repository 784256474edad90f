import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { limitedClientSettings } from './request-limits.ts';

/**
 * The DynamoDB SDK and one client for the process, loaded on first use: a stage that never touches a table never
 * pays its import at cold start (measured in bench/). Endpoint from AWS_ENDPOINT_URL_DYNAMODB when set. The tracer
 * is loaded with it: the local gateway and the command line import the stores that use this module before the local
 * defaults are set, and the Powertools set-up reads POWERTOOLS_TRACE_ENABLED once, at import. Its middleware stack is
 * resolved once per command, the stores' sends given an abort signal included (signal-sends.ts; docs/performance.md).
 */
let client: DynamoDBClient | null = null;

/** `own`: a client of the caller's (the command line's, with its region); otherwise the process's. */
export async function dynamoDb(
  own?: DynamoDBClient,
): Promise<{ sdk: typeof import('./dynamodb-sdk.ts'); db: DynamoDBClient }> {
  const sdk = await import('./dynamodb-sdk.ts');
  if (own) return { sdk, db: own };
  if (!client) {
    const { tracer } = await import('../powertools.ts');
    const made = new sdk.DynamoDBClient({ ...limitedClientSettings(), cacheMiddleware: true });
    client ??= sdk.cachedSignalSends(tracer.captureAWSv3Client(made));
  }
  return { sdk, db: client };
}

/** Whether a DynamoDB call failed only because its ConditionExpression did not hold. */
export function conditionFailed(error: unknown): boolean {
  return (error as Error).name === 'ConditionalCheckFailedException';
}
