import type { SFNClientConfig } from '@aws-sdk/client-sfn';

type RetryStrategy = Extract<NonNullable<SFNClientConfig['retryStrategy']>, { recordSuccess: unknown }>;
type RetryToken = Awaited<ReturnType<RetryStrategy['acquireInitialRetryToken']>>;

/** Tries of one call that Step Functions keeps throttling, the first included. */
export const THROTTLED_ATTEMPTS = 3;
/** The longest wait before the first retry of a throttled call; doubled before the next (full jitter). */
export const THROTTLED_DELAY_MS = 500;

/**
 * The SDK retries only the calls Step Functions throttled: a throttled StartSyncExecution started no execution, so
 * trying it again cannot deliver twice. Any other error (a timeout, a network or server error: its execution may
 * have started) is thrown at once; the schedule counts it as a failed redelivery run and tries again minutes later
 * (docs/deploy.md, "Failed deliveries on AWS"). The scheduler's client uses it, and so does the command line's
 * (`deliveries redrive | resend --aws`).
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
