/**
 * The time limits of every AWS SDK client the stages build (DynamoDB, SQS, S3, Secrets Manager, Step Functions).
 * Without them the SDK's HTTP handler waits for ever: a call that stalls holds its stage until the Lambda timeout,
 * past the synchronous caller's deadline (docs/deploy.md, "Timeouts"), and the caller gets API Gateway's own 504
 * without a conversation id although the answer was delivered and exported.
 *
 * - connection: 1 s to open the TCP (and TLS) connection; an AWS endpoint in the same region opens it in
 *   milliseconds.
 * - request: 2 s for one try, from its start to the answer's headers (`throwOnRequestTimeout`: without it the HTTP
 *   handler only logs a warning when the limit passes, and goes on waiting). DynamoDB, SQS and Secrets Manager answer
 *   in milliseconds, and so does S3 for the few KB of an export (Export's S3 writes also keep their own abort, at
 *   the budget's S3 deadline). A stage whose call waits longer by design passes its own limit (the Step Functions
 *   client's StartSyncExecution, or a ReceiveMessage that long-polls).
 * - tries: 3 (`maxAttempts`, the first included; DynamoDB's own default is 4). A try cut by the limit fails with a
 *   `TimeoutError`, which the SDK retries after at most 50, then 100 ms. A stalled call therefore fails after at
 *   most 3 × 2 s + 0.15 s ≈ 6.2 s; a throttled one waits up to 1 s, then 2 s, before its next try.
 */
const CONNECTION_TIMEOUT_MS = 1_000;
export const REQUEST_TIMEOUT_MS = 2_000;
const MAX_ATTEMPTS = 3;

/** The HTTP handler options of a client whose one try may take `requestTimeoutMs` (the SDK builds the handler). */
export function requestLimits(requestTimeoutMs = REQUEST_TIMEOUT_MS) {
  return { connectionTimeout: CONNECTION_TIMEOUT_MS, requestTimeout: requestTimeoutMs, throwOnRequestTimeout: true };
}

/**
 * The settings a stage's client is built with: the limits above and the number of tries. Spread first, so that
 * what the host injects (the local gateway's in-process S3 transport, functions/shared/clients/injected-settings.ts)
 * replaces the request handler.
 */
export function limitedClientSettings() {
  return { maxAttempts: MAX_ATTEMPTS, requestHandler: requestLimits() };
}
