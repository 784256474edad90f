import { SFNClient, type SFNClientConfig } from '@aws-sdk/client-sfn';
import { tracer } from '../powertools.ts';
import { REQUEST_TIMEOUT_MS, requestLimits } from './request-limits.ts';

type RetryStrategy = Extract<NonNullable<SFNClientConfig['retryStrategy']>, { recordSuccess: unknown }>;
type RetryToken = Awaited<ReturnType<RetryStrategy['acquireInitialRetryToken']>>;

/** Tries of one call that Step Functions keeps throttling, the first included. */
const THROTTLED_ATTEMPTS = 3;
/** The longest wait before the first retry of a throttled call; doubled before the next (full jitter). */
const THROTTLED_DELAY_MS = 500;

/**
 * The SDK retries only the calls Step Functions throttled: a throttled StartSyncExecution started no execution, so
 * trying it again cannot deliver twice. Any other error (a timeout, a network or server error: its execution may
 * have started) is thrown at once; the schedule counts it as a failed redelivery run and tries again minutes later
 * (docs/deploy.md, "Failed deliveries on AWS").
 */
export function throttlingOnlyRetry(attempts = THROTTLED_ATTEMPTS, random: () => number = Math.random): RetryStrategy {
  const token = (retries: number, delayMs: number): RetryToken => ({
    getRetryCount: () => retries,
    getRetryDelay: () => delayMs,
  });
  return {
    acquireInitialRetryToken: async () => token(0, 0),
    refreshRetryTokenForRetry: async (previous, info) => {
      const retries = previous.getRetryCount() + 1;
      if (info.errorType !== 'THROTTLING' || retries >= attempts) throw info.error ?? new Error('not retried');
      return token(retries, Math.round(random() * THROTTLED_DELAY_MS * 2 ** (retries - 1)));
    },
    recordSuccess: () => {},
  };
}

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
