import { SFNClient } from '@aws-sdk/client-sfn';
import { tracer } from '../powertools.ts';

/**
 * Endpoint from AWS_ENDPOINT_URL_SFN when set (SDK convention). Starts redelivery executions (StartSyncExecution):
 * one attempt only, since a retried call whose first try did start its execution would deliver twice. The message
 * stays in the queue and the next sweep tries again instead.
 */
export const sfn = tracer.captureAWSv3Client(new SFNClient({ maxAttempts: 1 }));
