import type { Context } from 'aws-lambda';
import { msLeft } from '../../domain/budget.ts';

/**
 * The time limits of every AWS SDK client the stages build (DynamoDB, SQS, S3, Secrets Manager, Step Functions).
 * Without them the SDK's HTTP handler waits for ever: a call that stalls holds its stage until the Lambda timeout,
 * past the synchronous caller's deadline (docs/deploy.md, "Timeouts"), and the caller gets API Gateway's own 504
 * without a conversation id although the answer was delivered and exported.
 *
 * What each limit covers in @smithy/node-http-handler 4.14, the handler the SDK builds from these options (every
 * client is bundled into the functions, the DynamoDB and Secrets Manager ones in modules loaded on first use, so on
 * Lambda too this is the lockfile's version, not the runtime's: infra/stage-bundle.ts):
 * - connection: 1 s to open the TCP connection (the TLS handshake after it counts towards the request limit); an AWS
 *   endpoint in the same region opens it in milliseconds.
 * - request: 2 s for one try, from its start to the answer's status and headers (`throwOnRequestTimeout`: without it
 *   the HTTP handler only logs a warning when the limit passes, and goes on waiting). The timer stops when the
 *   headers arrive: it does not cover the body. DynamoDB, SQS and Secrets Manager answer in milliseconds, and so does
 *   S3 for the few KB of an export (Export's S3 writes also keep their own abort, at the budget's S3 deadline).
 * - silence: 2 s without a byte on the connection (`socketTimeout`, the same as the request limit), at any time of
 *   the try, the body included. This is the one that ends a try whose answer stalls after its headers: the SDK reads
 *   the body of a DynamoDB, SQS, Secrets Manager or Step Functions answer (and of an S3 PutObject's) before the call
 *   returns, within the try, so the stalled read fails the try with a `TimeoutError` as a cut try does. (The body
 *   of an S3 GetObject is read by the caller after the call: its read would fail, not be retried; no stage reads
 *   objects.) A body that keeps coming, however slowly, is not cut (AWS does not trickle).
 * - tries: 3 (`maxAttempts`, the first included; DynamoDB's own default is 4). A try cut by a limit fails with a
 *   `TimeoutError`, which the SDK retries after at most 50, then 100 ms.
 *
 * A stalled call therefore fails after at most 3 × 2 s + 0.15 s ≈ 6.2 s when nothing comes, or the answer stalls
 * right after its headers (AWS sends them with the body); at most 3 × (2 s + 2 s) + 0.15 s ≈ 12.2 s in the worst
 * case, headers just before the request limit and then silence. A throttled call waits up to 1 s, then 2 s, before
 * its next try. A stage whose call waits longer by design passes its own limit, which is also its silence limit (the
 * Step Functions client's StartSyncExecution, silent until its execution ends); a ReceiveMessage passes a longer
 * request limit per call for its long poll, but the silence limit is the client's: its wait must stay under 2 s.
 */
const CONNECTION_TIMEOUT_MS = 1_000;
export const REQUEST_TIMEOUT_MS = 2_000;
const MAX_ATTEMPTS = 3;

/**
 * The HTTP handler options of a client whose one try may wait `requestTimeoutMs` for the answer's headers, and as
 * long without a byte at any time (the SDK builds the handler).
 */
export function requestLimits(requestTimeoutMs = REQUEST_TIMEOUT_MS) {
  return {
    connectionTimeout: CONNECTION_TIMEOUT_MS,
    requestTimeout: requestTimeoutMs,
    throwOnRequestTimeout: true,
    socketTimeout: requestTimeoutMs,
  };
}

/**
 * The settings a stage's client is built with: the limits above (`requestTimeoutMs` per try; tests make it small)
 * and the number of tries. Spread first, so that what the host injects (the local gateway's in-process S3 transport,
 * functions/shared/clients/injected-settings.ts) replaces the request handler.
 */
/**
 * The longest one call of a client with these limits can take before it fails, ms: every try gets its headers just
 * before the request limit and then nothing for the silence limit, and the SDK waits 50, then 100 ms between tries.
 */
export function worstCallMs(requestTimeoutMs = REQUEST_TIMEOUT_MS, attempts = MAX_ATTEMPTS): number {
  return attempts * 2 * requestTimeoutMs + 150;
}

export function limitedClientSettings(requestTimeoutMs = REQUEST_TIMEOUT_MS) {
  return { maxAttempts: MAX_ATTEMPTS, requestHandler: requestLimits(requestTimeoutMs) };
}

/**
 * The limits above bound each call, not the conversation: with a caller waiting, a few calls in a row, each stalled
 * for ≈ 6.2 s, would pass its answer_by. This signal ends a stage's calls at a deadline of its budget
 * (functions/domain/budget.ts; `deadline` an ISO time of it), less `reserveMs` kept for what must follow them; passed
 * as `client.send(command, { abortSignal })`, it cuts a stalled call there with an `AbortError`. Undefined without a
 * deadline (an asynchronous conversation, a redelivery: nobody waits), so only the limits above apply.
 * docs/deploy.md ("Timeouts") lists which calls take it and what a cut costs.
 */
export function budgetSignal(deadline: string | null | undefined, now: Date, reserveMs = 0): AbortSignal | undefined {
  const left = msLeft(deadline, now) - reserveMs;
  if (left === Number.POSITIVE_INFINITY) return undefined;
  if (left >= 1) return AbortSignal.timeout(Math.floor(left));
  return AbortSignal.abort(new DOMException(`the budget's deadline ${deadline} has passed`, 'TimeoutError'));
}

/**
 * A stage Lambda's own timeout bounds its calls too, a caller waiting or not: killed mid-call (Sandbox.Timedout), the
 * task fails without what it would have done on a failure (Deliver: queue the delivery; Validate: free the key and
 * answer 503). Its calls end LAMBDA_TAIL_MS before it, which keeps room for the one write that follows a cut one and
 * the return; that write ends LAMBDA_RETURN_MS before it.
 */
export const LAMBDA_TAIL_MS = 1_500;
export const LAMBDA_RETURN_MS = 300;

/** When this invocation times out (ms on the clock `now` read), from its context; none outside Lambda (locally). */
export function lambdaEnd(context: Context | undefined, now: number): { endsAt?: number } {
  return context?.getRemainingTimeInMillis ? { endsAt: now + context.getRemainingTimeInMillis() } : {};
}

/** The deadline (an ISO time, for budgetSignal) `reserveMs` before `endsAt` (lambdaEnd); null: no such limit. */
export function lambdaDeadline(endsAt: number | undefined, reserveMs: number): string | null {
  return endsAt === undefined ? null : new Date(endsAt - reserveMs).toISOString();
}

/** The earlier of two deadlines (ISO times, so they compare as text); null: neither. */
export function earliest(a: string | null, b: string | null): string | null {
  if (a === null) return b;
  return b === null || a <= b ? a : b;
}

/** The deadline `ms` before `deadline` (an ISO time); null: none. */
export function deadlineBefore(deadline: string | null, ms: number): string | null {
  if (!deadline) return null;
  const at = Date.parse(deadline);
  return Number.isNaN(at) ? null : new Date(at - ms).toISOString();
}
