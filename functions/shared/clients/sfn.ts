import { SFNClient } from '@aws-sdk/client-sfn';
import { tracer } from '../powertools.ts';
import { REQUEST_TIMEOUT_MS, requestLimits } from './request-limits.ts';
import { THROTTLED_ATTEMPTS, THROTTLED_DELAY_MS, throttlingOnlyRetry } from './throttling-retry.ts';

/**
 * The longest a StartSyncExecution may wait for its answer, ms: it answers when the redelivery workflow ends, which
 * times out at 60 s (`TimeoutSeconds` of statemachine/redelivery.asl.json), plus the usual limit of one call for
 * starting it and answering. A try cut by this limit is not retried (its execution may have started).
 */
export const START_SYNC_EXECUTION_TIMEOUT_MS = 60_000 + REQUEST_TIMEOUT_MS;

/**
 * The longest one StartSyncExecution can take before it returns or fails, ms: its throttled tries' waits, then one
 * try whose headers come just before START_SYNC_EXECUTION_TIMEOUT_MS and whose body is silent as long again.
 */
export const START_SYNC_EXECUTION_WORST_MS =
  THROTTLED_DELAY_MS * (2 ** (THROTTLED_ATTEMPTS - 1) - 1) + 2 * START_SYNC_EXECUTION_TIMEOUT_MS;

/**
 * Endpoint from AWS_ENDPOINT_URL_SFN when set (SDK convention). Starts redelivery executions (StartSyncExecution),
 * retrying only when throttled (throttlingOnlyRetry): a retried call whose first try did start its execution would
 * deliver twice. Time-limited (request-limits.ts) with START_SYNC_EXECUTION_TIMEOUT_MS per try, which is also its
 * silence limit: the call is silent until its execution ends.
 */
export const sfn = tracer.captureAWSv3Client(
  new SFNClient({
    retryStrategy: throttlingOnlyRetry(),
    requestHandler: requestLimits(START_SYNC_EXECUTION_TIMEOUT_MS),
  }),
);
