import { msLeft } from './budget.ts';
import type { ConversationRecord, DeliveryAttempt, RedeliveryContext, WebhookType } from './conversation.ts';
import { agentResponse, userQuery } from './conversation.ts';
import type { HoldReason } from './endpoints.ts';
import { DeliveryDeferredError, DeliveryPermanentError, DeliveryRetryableError } from './errors.ts';
import { type CaughtError, parseTaskError } from './task-error.ts';

/** Environment variable holding each type's outbound webhook URL (docs/configuration.md). */
export const DELIVERY_URL_VARIABLES: Record<WebhookType, string> = {
  deal_analysis: 'DEAL_ANALYSIS_WEBHOOK_URL',
  data_analysis: 'DATA_ANALYSIS_WEBHOOK_URL',
  lead_analysis: 'LEAD_ANALYSIS_WEBHOOK_URL',
  general: 'GENERAL_WEBHOOK_URL',
};

/**
 * Delivery URLs come only from configuration, and must be HTTPS; plain HTTP is allowed to loopback only (the local
 * receiver, tests). Returns why a URL is refused, or null when it may be used.
 */
export function unsafeDeliveryUrl(url: string): string | null {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return `"${url}" is not a URL`;
  }
  if (parsed.username || parsed.password) return 'delivery URLs must not carry credentials';
  if (parsed.protocol === 'https:') return null;
  const host = parsed.hostname.replace(/^\[|\]$/g, '');
  const loopback = host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
  if (parsed.protocol === 'http:' && loopback) return null;
  return `delivery URL must use https (plain http only to loopback): ${parsed.protocol}//${parsed.host}`;
}

/** The User-Agent of every delivery, and of a test delivery. */
export const USER_AGENT = 'revops-webhook-gateway/1.0';

/** The JSON document POSTed to the receiver. Identical on every attempt of one delivery. */
export function buildDeliveryPayload(record: ConversationRecord) {
  return {
    type: 'conversation.completed',
    delivery_id: record.webhook_context.delivery_id,
    conversation_id: record.conversation_id,
    webhook_type: record.webhook_context.webhook_type,
    source_system: record.webhook_context.source_system,
    source_process: record.webhook_context.source_process,
    query: userQuery(record),
    response: agentResponse(record),
    classification_reason: record.webhook_context.classification_reason,
    metadata: record.metadata.custom,
    created_at: record.metadata.received_at,
  };
}

/**
 * A test delivery (`webhook-gateway endpoints test <type>`, docs/contract.md#test-deliveries): the shape of a
 * conversation's, marked `"test": true` (and the header `webhook-test: true`), with a sample question and answer. It is
 * no conversation: its `conversation_id` is null, and nothing keeps it.
 */
export function buildTestDeliveryPayload(type: WebhookType, deliveryId: string, now: Date) {
  return {
    type: 'conversation.completed',
    test: true,
    delivery_id: deliveryId,
    conversation_id: null,
    webhook_type: type,
    source_system: 'webhook-gateway',
    source_process: 'endpoints_test',
    query: 'A test delivery: is this receiver reachable, and does it verify the signature?',
    response: { response: 'This is a test delivery from webhook-gateway endpoints test, not an agent answer.' },
    classification_reason: 'a test delivery',
    metadata: {},
    created_at: now.toISOString(),
  };
}

export type AttemptOutcome = DeliveryAttempt['outcome'];

/** The statuses HTTP has (RFC 9110 §15: three digits, the first 1 to 5); any other is a broken receiver's. */
export function isHttpStatus(status: number): boolean {
  return Number.isInteger(status) && status >= 100 && status <= 599;
}

/**
 * 2xx delivered; 408, 429 and 5xx retryable; every other status (other 4xx, 3xx: redirects are not followed, 1xx)
 * permanent, and so is one outside 100–599: no HTTP status at all, from a broken receiver whose operator must fix it
 * (docs/contract.md, "Deliveries"). Before, 600 and above were retried as 5xx and 099 was permanent as any other.
 */
export function outcomeForStatus(status: number): AttemptOutcome {
  if (!isHttpStatus(status)) return 'permanent';
  if (status >= 200 && status < 300) return 'delivered';
  if (status === 408 || status === 429 || status >= 500) return 'retryable';
  return 'permanent';
}

/** A failed attempt as the error the state machine's Retry/Catch matches. The message carries the attempt as JSON. */
export function attemptError(
  attempt: DeliveryAttempt,
  target: string,
): DeliveryRetryableError | DeliveryPermanentError {
  const text = JSON.stringify({ message: attempt.error ?? `HTTP ${attempt.status_code}`, attempt, target });
  return attempt.outcome === 'permanent' ? new DeliveryPermanentError(text) : new DeliveryRetryableError(text);
}

/** An attempt with less time than this is not worth starting. */
export const MIN_ATTEMPT_MS = 500;

/**
 * How long the next in-workflow attempt may take: the configured per-attempt timeout, cut to what is left until
 * `deliverBy` (the budget's deliver_by: the caller is waiting; null when nobody is); or, with less than
 * MIN_ATTEMPT_MS left, why no attempt is made now (what is left goes to the redelivery schedule). Deliver asks with
 * `now` the moment the POST starts, after any wait for the receiver's rate, so no attempt ends after `deliverBy`.
 */
export function attemptBudget(
  deliverBy: string | null,
  now: Date,
  timeoutMs: number,
): { timeoutMs: number } | { defer: string } {
  const remaining = msLeft(deliverBy, now);
  if (!(remaining >= MIN_ATTEMPT_MS)) {
    return {
      defer: `no time left for a delivery attempt before ${deliverBy}, when the caller's answer is due (a slow agent, or a wait for the receiver's rate): queued for the redelivery schedule`,
    };
  }
  return { timeoutMs: Math.min(timeoutMs, Math.floor(remaining)) };
}

const TIMED_OUT = 'timed out after';

/** How an attempt that ran out of its timeout is recorded (its `error`; functions/shared/http-delivery.ts writes it). */
export function timedOutReason(timeoutMs: number): string {
  return `${TIMED_OUT} ${timeoutMs} ms`;
}

/**
 * Whether a failed attempt counts towards its receiver's failure streak (the circuit breaker,
 * docs/operations.md#receivers). Every failure does except a timeout of an attempt whose timeout was cut below the
 * configured DELIVERY_TIMEOUT_MS (`deliveryTimeoutMs`) by the caller's deadline: a healthy receiver may need longer
 * than that attempt was given. Such an attempt is still an attempt (the attempt log, the record, the retries).
 */
export function failureCountsForReceiver(
  attempt: DeliveryAttempt,
  timeoutMs: number,
  deliveryTimeoutMs: number,
): boolean {
  if (attempt.outcome === 'delivered') return false;
  const timedOut = attempt.status_code === undefined && (attempt.error ?? '').startsWith(TIMED_OUT);
  return !(timedOut && timeoutMs < deliveryTimeoutMs);
}

/** Deliver's Retry waits at most this long between attempts (MaxDelaySeconds of statemachine/conversation.asl.json). */
export const MAX_RETRY_WAIT_MS = 4_000;

/**
 * Deliver's Catch holds a deferral made before any attempt of this execution (a slow agent): there is no attempt
 * to record. A deferral after a failed attempt carries that attempt and is recorded like any failed attempt.
 */
export function isDeferral(caught: CaughtError | undefined): boolean {
  return caught?.Error === 'DeliveryDeferredError' && !parseTaskError(caught).payload?.attempt;
}

/**
 * The errors Step Functions raises when Lambda would not run a function (it was throttled, or the Lambda service or
 * the call to it failed): the list of the Validate state's Retry in statemachine/conversation.asl.json, which AWS
 * advises retrying. Any other error of the Deliver state is Deliver's own (DeliveryRetryableError, …) or a run of it
 * that ended badly (Lambda.Unknown, States.Timeout), which may have sent the POST. Rarely one of these comes after
 * the function ran (a service error after it, a client timeout): what its POST did is then in the attempt log, which
 * the export and the schedule read (a delivered one is not sent again), not in the state.
 */
export const LAMBDA_REFUSALS: readonly string[] = [
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.ClientExecutionTimeoutException',
  'Lambda.TooManyRequestsException',
];

/** Whether an error name is Lambda's refusal to run the function (LAMBDA_REFUSALS): Deliver made no attempt. */
export function isLambdaRefusal(error: string | undefined): boolean {
  return error !== undefined && LAMBDA_REFUSALS.includes(error);
}

/**
 * The delivery status a deferral leaves (no attempt by this Deliver): `queued` when Deliver said nothing was attempted
 * for the conversation yet (a receiver held by its circuit breaker, a pause, its rate or the caller's deadline),
 * `retrying` otherwise (earlier attempts failed; deferrals that say nothing, like a crash recovery's).
 */
export function deferredStatus(caught: CaughtError | undefined): 'queued' | 'retrying' {
  return parseTaskError(caught).payload?.status === 'queued' ? 'queued' : 'retrying';
}

/**
 * What a conversation interrupted before its delivery ended hands the failed-delivery store (local recovery): a
 * deferral with no attempt of its own — the attempts known are already in the record — so the redelivery schedule
 * delivers it under the same delivery id.
 */
export function interruptedDelivery(target: string | null, reason: string): CaughtError {
  return {
    Error: 'DeliveryDeferredError',
    Cause: JSON.stringify({ message: `${reason}: handed to the redelivery schedule`, target }),
  };
}

/** After a retryable attempt, with no time left for another one (after the longest Retry wait) within the deadline. */
export function deferralAfter(attempt: DeliveryAttempt, target: string, reason: string): DeliveryDeferredError {
  return new DeliveryDeferredError(
    JSON.stringify({ message: `${attempt.error ?? `HTTP ${attempt.status_code}`}; ${reason}`, attempt, target }),
  );
}

/** What Deliver reads of the settings (functions/shared/settings.ts). */
export interface DeliverySettings {
  deliveryUrls: Record<WebhookType, string | null>;
  deliveryTimeoutMs: number;
}

/**
 * What Deliver does with a record: refuse (no URL, or one that may not be used: a permanent failure, no attempt),
 * defer (the caller waits until `deliverBy` and too little of that is left for an attempt: the schedule takes it),
 * or attempt `url` within `timeoutMs` (cut to what is left before `deliverBy`). A redelivery has no `deliverBy`.
 */
export type DeliveryPlan =
  | { action: 'refuse'; reason: string; error: DeliveryPermanentError }
  | { action: 'defer'; reason: string; url: string }
  | { action: 'attempt'; url: string; timeoutMs: number };

export function planDelivery(
  record: ConversationRecord,
  deliverBy: string | null,
  config: DeliverySettings,
  now: Date,
): DeliveryPlan {
  const type = record.webhook_context.webhook_type ?? 'general';
  const variable = DELIVERY_URL_VARIABLES[type];
  const url = config.deliveryUrls[type];
  if (!url) {
    const message = `no delivery URL configured for ${type}: set ${variable} (or: webhook-gateway endpoints set ${type} --url …)`;
    return {
      action: 'refuse',
      reason: 'no delivery URL configured',
      error: new DeliveryPermanentError(JSON.stringify({ message })),
    };
  }
  const unsafe = unsafeDeliveryUrl(url);
  if (unsafe)
    return {
      action: 'refuse',
      reason: unsafe,
      error: new DeliveryPermanentError(JSON.stringify({ message: `${variable}: ${unsafe}` })),
    };
  if (!deliverBy) return { action: 'attempt', url, timeoutMs: config.deliveryTimeoutMs };
  // The caller is waiting: never start an attempt it cannot wait for.
  const budget = attemptBudget(deliverBy, now, config.deliveryTimeoutMs);
  if ('defer' in budget) return { action: 'defer', reason: budget.defer, url };
  return { action: 'attempt', url, timeoutMs: budget.timeoutMs };
}

/** Nothing was attempted yet for this conversation: no attempt recorded, and this is not a retry of the state. */
export function firstTry(record: ConversationRecord, retryCount: number): boolean {
  return retryCount === 0 && record.execution.delivery_attempts.length === 0;
}

/**
 * A delivery handed to the redelivery schedule without an attempt: the caller's deadline, or a receiver that is
 * paused, disabled, failing or at its rate (functions/domain/endpoints.ts). The workflow queues it; the delivery
 * status is `queued` when nothing was attempted for the conversation yet (deferredStatus). Held on a retry of the
 * state, it carries the attempts its earlier tries made (`earlier`: the state does not keep them), so the record
 * keeps them and the next attempt is numbered after them (withDeferredAttempts).
 */
export function holdError(
  reason: HoldReason,
  message: string,
  target: string | null,
  first: boolean,
  earlier: readonly DeliveryAttempt[] = [],
) {
  const status = first ? 'queued' : 'retrying';
  return new DeliveryDeferredError(
    JSON.stringify({ message, target, hold: reason, status, ...(earlier.length > 0 ? { attempts: earlier } : {}) }),
  );
}

/** The record with the attempts a deferral carries (holdError's `earlier`) that it does not have yet. */
export function withDeferredAttempts(record: ConversationRecord, caught: CaughtError | undefined): ConversationRecord {
  const carried = parseTaskError(caught).payload?.attempts;
  if (!Array.isArray(carried)) return record;
  const known = record.execution.delivery_attempts;
  const added = carried.filter(
    (a: DeliveryAttempt | null): a is DeliveryAttempt =>
      typeof a?.attempt === 'number' && typeof a.at === 'string' && !known.some((k) => k.attempt === a.attempt),
  );
  if (added.length === 0) return record;
  return { ...record, execution: { ...record.execution, delivery_attempts: [...known, ...added] } };
}

/**
 * A failed attempt → the error for the state machine's Retry/Catch, and whether it is final (no automatic attempt
 * follows: a permanent answer, or the redelivery's last slot). While the caller waits a retryable failure is never
 * final, but when the next try would not fit before `deliverBy` after the longest Retry wait, it is handed to the
 * schedule now (a deferral carrying the attempt).
 */
export function failedAttemptOutcome(
  attempt: DeliveryAttempt,
  url: string,
  context: {
    deliverBy: string | null;
    redelivery?: RedeliveryContext | undefined;
    timeoutMs: number;
    /** The receiver is failing (or this was its probe): no in-workflow retry, the schedule takes it at once. */
    failing?: string | undefined;
  },
  now: Date,
): { error: DeliveryRetryableError | DeliveryPermanentError | DeliveryDeferredError; final: boolean } {
  const final = attempt.outcome === 'permanent' || context.redelivery?.status_if_failed === 'failed';
  if (context.failing && attempt.outcome === 'retryable' && !context.redelivery)
    return { error: deferralAfter(attempt, url, context.failing), final };
  // The receiver asked to be left alone for a while (Retry-After on a 429 or 503): no quick retry against its word.
  // The workflow's next wait is a random part (full jitter) of at most 1, 2 or 4 s, so even a Retry-After of 2 s
  // would be answered sooner; the schedule tries again when it said (failed-delivery.ts, dueAt).
  const retryAfter = attempt.outcome === 'retryable' && !context.redelivery ? (attempt.retry_after_ms ?? 0) : 0;
  if (retryAfter > 0)
    return {
      error: deferralAfter(
        attempt,
        url,
        `the receiver asked to wait ${Math.ceil(retryAfter / 1000)} s (Retry-After): no more retries here, queued for the redelivery schedule`,
      ),
      final,
    };
  if (context.deliverBy && attempt.outcome === 'retryable') {
    const next = attemptBudget(context.deliverBy, new Date(now.getTime() + MAX_RETRY_WAIT_MS), context.timeoutMs);
    if ('defer' in next) return { error: deferralAfter(attempt, url, next.defer), final };
  }
  return { error: attemptError(attempt, url), final };
}

/** The last attempt and its target, recovered from what Deliver's Catch stored (either engine). */
export function failedAttemptFromCaught(
  caught: CaughtError | undefined,
  attemptNumber: number,
  now: Date,
): { attempt: DeliveryAttempt; target: string | null } {
  const failure = parseTaskError(caught);
  const attempt = failure.payload?.attempt as DeliveryAttempt | undefined;
  const target = typeof failure.payload?.target === 'string' ? failure.payload.target : null;
  if (attempt && typeof attempt.at === 'string') return { attempt, target };
  return {
    target,
    attempt: {
      attempt: attemptNumber,
      at: now.toISOString(),
      duration_ms: 0,
      error: `${failure.error}: ${failure.message}`,
      outcome: failure.error === 'DeliveryPermanentError' ? 'permanent' : 'retryable',
    },
  };
}

/** A receiver's Retry-After is honoured up to a day (well inside the queue's retention); a longer one reads as that. */
export const MAX_RETRY_AFTER_MS = 86_400_000;

/**
 * Parse a Retry-After header (seconds or HTTP date) into milliseconds from `now`, at most MAX_RETRY_AFTER_MS: what is
 * stored (the attempt's retry_after_ms) and said is the wait the gateway keeps, never the receiver's 20 digits.
 */
export function retryAfterMs(header: string | null | undefined, now: Date): number | null {
  const ms = retryAfterAsSent(header, now);
  return ms === null ? null : Math.min(ms, MAX_RETRY_AFTER_MS);
}

function retryAfterAsSent(header: string | null | undefined, now: Date): number | null {
  if (!header) return null;
  const trimmed = header.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  // Otherwise only an HTTP-date in one of the three formats RFC 9110 (5.6.7) has a recipient accept:
  // "Wed, 21 Oct 2015 07:28:00 GMT", the obsolete "Wednesday, 21-Oct-15 07:28:00 GMT" and asctime's
  // "Wed Oct 21 07:28:00 2015" (GMT, though it does not say so: read as such, not in the local zone).
  const dated =
    /^[A-Za-z]{3}, \d{2} [A-Za-z]{3} \d{4} \d{2}:\d{2}:\d{2} GMT$/.test(trimmed) ||
    /^[A-Za-z]{6,9}, \d{2}-[A-Za-z]{3}-\d{2} \d{2}:\d{2}:\d{2} GMT$/.test(trimmed);
  const asctime = /^[A-Za-z]{3} [A-Za-z]{3} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/.test(trimmed);
  if (!dated && !asctime) return null;
  const at = Date.parse(asctime ? `${trimmed} GMT` : trimmed);
  return Number.isNaN(at) ? null : Math.max(0, at - now.getTime());
}
