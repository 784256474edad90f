import type { Context } from 'aws-lambda';
import { type LoggedAttempt, loggedRequestHeaders, nextAttemptNumber, shortAttempt } from '../domain/attempt-log.ts';
import { msLeft } from '../domain/budget.ts';
import {
  type ConversationRecord,
  type DeliveryAttempt,
  fullState,
  leanState,
  type WebhookType,
  type WorkflowState,
} from '../domain/conversation.ts';
import {
  attemptBudget,
  buildDeliveryPayload,
  failedAttemptOutcome,
  firstTry,
  holdError,
  planDelivery,
  USER_AGENT,
} from '../domain/delivery.ts';
import { shownDeliveryUrl } from '../domain/delivery-url.ts';
import type { Gate, HoldReason } from '../domain/endpoints.ts';
import { AgentAnswerRejected } from '../domain/errors.ts';
import { pendingAnswerProblem, settleAnswer, withDeliveryAttempt } from '../domain/lifecycle.ts';
import { DELIVERY_DEFERRED_EVENT } from '../domain/observability.ts';
import { signOutbound } from '../domain/signatures.ts';
import { attemptLog } from '../shared/attempt-log.ts';
import {
  budgetSignal,
  earliest,
  LAMBDA_RETURN_MS,
  LAMBDA_TAIL_MS,
  lambdaDeadline,
  lambdaEnd,
} from '../shared/clients/request-limits.ts';
import { type EndpointStore, endpointStore } from '../shared/endpoint-store.ts';
import { logEvent, METRIC_NAMES, recordDeliveryAttempt, recordDeliveryQueued, recordTime } from '../shared/events.ts';
import { postJson } from '../shared/http-delivery.ts';
import { logger, stageHandler } from '../shared/powertools.ts';
import { admitDelivery, type RateClock, REAL_CLOCK, readEndpoint, recordHealth } from '../shared/receivers.ts';
import { deliverySecrets } from '../shared/secrets.ts';
import { settings } from '../shared/settings.ts';

/** Deliver's Parameters in both workflows: the state, the state's retry count, the execution's name. */
export interface DeliverInput {
  state: WorkflowState;
  /** `$$.State.RetryCount`: how many times this Deliver state was retried (numbers each attempt). */
  retry_count?: number;
  /** `$$.Execution.Name`: kept with each attempt in the attempt log. */
  execution_name?: string;
}

/** What Deliver takes from the outside world besides its settings; tests replace them (no real wait, no real POST). */
export interface DeliverDeps {
  /** The clock, and the wait for the receiver's outbound rate. */
  clock: RateClock;
  /** When this invocation's Lambda times out (ms on `clock`, from its context); undefined: no such limit (locally). */
  endsAt?: number;
  /** The receivers' run-time state (functions/shared/endpoint-store.ts); null: none configured. */
  store: EndpointStore | null;
  post: typeof postJson;
}

/**
 * Deliver: one POST of the result to its type's receiver, carrying the stable delivery id (webhook-id) and one
 * signature per active secret. Before it, the receiver's run-time state decides (functions/domain/endpoints.ts, through functions/shared/receivers.ts): its
 * URL (an operator's or the deployed one), whether it is held (paused, disabled, failing, or its local file damaged:
 * the delivery is queued for the schedule without an attempt, or a failing receiver's one probe is made), and its
 * outbound rate. Every attempt goes to the attempt log with what the receiver answered, and counts for the
 * receiver's health (except a timeout of an attempt the caller's deadline cut short). Success returns the record; failure throws the error the state
 * machine's Retry/Catch match. A record whose answer is still pending (Classify failed) is first recorded and
 * classified here, as Classify would have. With a caller waiting, every AWS call here (the receivers' store, the
 * signing secrets, the attempt log) also ends by deliver_by, and with or without one before this Lambda's timeout
 * (LAMBDA_TAIL_MS; docs/deploy.md, "Timeouts").
 */
export const handler = deliverOn(REAL_CLOCK);

/**
 * Deliver on a clock: the one it reads the time left before deliver_by with and waits for the receiver's rate on. The
 * Lambda's is the real one; the local gateway's tests inject theirs (GatewayOptions.budgetClock).
 */
export function deliverOn(clock: RateClock) {
  return stageHandler('Deliver', (input: DeliverInput, context?: Context) =>
    deliver(input, {
      clock,
      store: endpointStore(),
      post: postJson,
      ...lambdaEnd(context, clock.now()),
    }),
  );
}

/** The handler's work, with what it takes from the outside world passed in. */
export async function deliver(input: DeliverInput, deps: DeliverDeps): Promise<WorkflowState> {
  const state = fullState(input.state);
  const { clock, store } = deps;
  const now = () => new Date(clock.now());
  const retryCount = input.retry_count ?? 0;
  // Classify failed or timed out: the answer is checked here as it would have been (ExportFailedConversation).
  const problem = pendingAnswerProblem(state, now());
  if (problem) throw new AgentAnswerRejected(problem);
  const record = settleAnswer(state.conversation, now());
  const type: WebhookType = record.webhook_context.webhook_type ?? 'general';
  const deliverBy = state.budget?.deliver_by ?? null;
  const config = settings();
  const via = state.redelivery?.via ?? 'workflow';
  // Every call before the attempt ends by deliver_by (a caller waiting) and before this Lambda's end, less its tail
  // (LAMBDA_TAIL_MS); an attempt that would end later is not started: killed mid-POST, the task would fail, its Catch
  // queue the delivery, and the receiver perhaps get it twice.
  const lambdaBy = lambdaDeadline(deps.endsAt, LAMBDA_TAIL_MS);
  const callsBy = earliest(deliverBy, lambdaBy);
  const cut = budgetSignal(callsBy, now());
  const attemptNumber = state.redelivery
    ? await redeliveryAttemptNumber(record, retryCount, cut)
    : nextAttemptNumber(record, retryCount);
  const read = store ? await readEndpoint(store, type, cut) : null;
  const endpoint = read && 'unreadable' in read ? null : read;
  const deliveryUrls = endpoint?.config.url
    ? { ...config.deliveryUrls, [type]: endpoint.config.url }
    : config.deliveryUrls;
  const plan = planDelivery(record, deliverBy, { ...config, deliveryUrls }, now());
  if (plan.action === 'refuse') {
    logEvent('WEBHOOK_DELIVERY_FAILED', record, { attempt: attemptNumber, via, error: plan.reason, final: true });
    throw plan.error;
  }
  const queuedHere = (reason: HoldReason, message: string) => {
    logger.warn('Delivery queued for the redelivery schedule without an attempt', {
      event_type: DELIVERY_DEFERRED_EVENT,
      conversation_id: record.conversation_id,
      delivery_id: record.webhook_context.delivery_id,
      webhook_type: type,
      attempt: attemptNumber,
      via,
      hold: reason,
      reason: message,
    });
    recordDeliveryQueued(type);
  };
  const { url } = plan;
  // What is recorded of the URL (attempt log, record, errors: execution history and CloudWatch): its origin only, as
  // its path or query may hold the receiver's credential (docs/security.md, "Delivery URLs outside configuration").
  const shown = shownDeliveryUrl(url);
  const hold = async (reason: HoldReason, message: string, target: string | null = shown) => {
    queuedHere(reason, message);
    const earlier = retryCount > 0 ? await attemptsOfThisRun(record, attemptNumber, cut) : [];
    return holdError(reason, message, target, firstTry(record, retryCount), earlier);
  };
  if (plan.action === 'defer') throw await hold('deadline', plan.reason);
  // Its local file is damaged: it may be paused, or at another URL, so nothing is sent (where to is unknown).
  if (read && 'unreadable' in read) throw await hold('unreadable', read.unreadable, null);
  // A call before the attempt that deliver_by cut: no time is left for it, so the schedule takes it.
  const cutShort = async (error: unknown): Promise<never> => {
    if (!cut?.aborted) throw error;
    throw await hold(
      'deadline',
      `no time left for a delivery attempt before ${callsBy === deliverBy ? `${deliverBy}, when the caller's answer is due` : `${callsBy}, this Deliver Lambda's timeout less ${LAMBDA_TAIL_MS} ms`} (an AWS call was cut at it: ${(error as Error).name}): queued for the redelivery schedule`,
    );
  };

  const gate: Gate =
    store && endpoint
      ? await admitDelivery(store, endpoint, {
          via,
          policy: config.breaker,
          timeoutMs: plan.timeoutMs,
          deliverBy,
          clock,
          signal: cut,
        }).catch(cutShort)
      : { action: 'attempt' };
  if (gate.action === 'hold') throw await hold(gate.reason, gate.message);
  // The receiver's rate may have made it wait: the attempt gets the time left now, so it never ends after deliver_by
  // (docs/deploy.md, "Timeouts"); too little left, and the schedule takes it as when the agent was slow.
  const budget = attemptBudget(deliverBy, now(), config.deliveryTimeoutMs);
  if ('defer' in budget) throw await hold('deadline', budget.defer);
  const { timeoutMs } = budget;

  const payload = JSON.stringify(buildDeliveryPayload(record));
  const deliveryId = record.webhook_context.delivery_id;
  const secrets = await deliverySecrets(type, cut, endpoint?.config.secrets_fingerprint).catch(cutShort);
  // Standard Webhooks headers; webhook-id is the delivery id on every attempt, so receivers can deduplicate.
  const signature =
    secrets.length > 0 ? signOutbound(secrets, deliveryId, now(), payload) : { 'webhook-id': deliveryId };
  const headers = { 'user-agent': USER_AGENT, ...signature };
  const lambdaLeft = Math.floor(msLeft(lambdaBy, now()));
  if (lambdaLeft < timeoutMs)
    throw await hold(
      'deadline',
      `this Deliver Lambda has ${Math.max(0, lambdaLeft)} ms left before its timeout (less ${LAMBDA_TAIL_MS} ms), not the attempt's ${timeoutMs} ms (its AWS calls were slow): queued for the redelivery schedule rather than cut off mid-POST`,
    );
  const { attempt, response } = await deps.post(url, payload, headers, attemptNumber, timeoutMs);
  const writesBy = lambdaDeadline(deps.endsAt, LAMBDA_RETURN_MS);
  const writesCut = budgetSignal(earliest(deliverBy, writesBy), now());
  attempt.via = via;
  recordTime(METRIC_NAMES.deliveryResponseTime, attempt.duration_ms);
  recordDeliveryAttempt(type, attempt.outcome === 'delivered', attempt.duration_ms);
  const entry: LoggedAttempt = {
    ...attempt,
    conversation_id: record.conversation_id,
    delivery_id: deliveryId,
    webhook_type: type,
    ...(input.execution_name ? { execution_name: input.execution_name } : {}),
    request: { url: shown, headers: loggedRequestHeaders({ 'content-type': 'application/json', ...headers }) },
    response,
  };
  const [, nowFailing] = await Promise.all([
    keepInLog(entry, writesCut),
    store && endpoint
      ? recordHealth(
          store,
          endpoint,
          attempt,
          config.breaker,
          { timeoutMs, deliveryTimeoutMs: config.deliveryTimeoutMs },
          writesCut,
        )
      : null,
  ]);

  if (attempt.outcome === 'delivered') {
    const delivered = withDeliveryAttempt(record, attempt, shown, 'delivered');
    logEvent('WEBHOOK_DELIVERY_SUCCESS', delivered, {
      delivery_id: deliveryId,
      attempt: attemptNumber,
      via,
      status_code: attempt.status_code,
      delivery_response_time_ms: attempt.duration_ms,
    });
    return leanState({ ...state, conversation: delivered });
  }
  const failing =
    gate.action === 'probe'
      ? `${type} is failing and this probe failed too: queued for the redelivery schedule`
      : nowFailing
        ? `${type} is failing (${config.breaker.failureThreshold} consecutive failures): no more retries here, queued for the redelivery schedule`
        : undefined;
  const failed = failedAttemptOutcome(
    attempt,
    shown,
    { deliverBy, redelivery: state.redelivery, timeoutMs, failing },
    now(),
  );
  logEvent('WEBHOOK_DELIVERY_FAILED', record, {
    delivery_id: deliveryId,
    attempt: attemptNumber,
    via,
    status_code: attempt.status_code ?? null,
    error: attempt.error,
    retryable: attempt.outcome === 'retryable',
    final: failed.final,
    delivery_response_time_ms: attempt.duration_ms,
  });
  throw failed.error;
}

/**
 * A redelivery's attempt number: after every attempt of this delivery, the record's and the attempt log's. The record
 * a redelivery carries may not know all the log has: tries of the conversation's Deliver before Lambda refused a
 * retry (the refusal's envelope has none of them), or an attempt of a Deliver that Lambda failed after it ran (in the
 * log, not in the state). Numbered from the record alone, the redelivery would repeat one of those numbers. Only
 * redeliveries read the log here: the conversation workflow's first try has no earlier attempt, and its retries are
 * numbered by the state's RetryCount. A log that cannot be read numbers it from the record, as before.
 */
async function redeliveryAttemptNumber(
  record: ConversationRecord,
  retryCount: number,
  signal: AbortSignal | undefined,
): Promise<number> {
  const logged = await loggedAttempts(record, signal, 'the redelivery is numbered from its record alone');
  const last = logged.reduce((max, a) => Math.max(max, a.attempt), 0);
  return Math.max(nextAttemptNumber(record, retryCount), last + 1 + Math.max(0, retryCount));
}

/**
 * The attempts the earlier tries of this Deliver state made (its Retry; the state does not keep them), as the attempt
 * log has them: the ones numbered after the record's and before `next`. A log that cannot be read gives none.
 */
async function attemptsOfThisRun(
  record: ConversationRecord,
  next: number,
  signal: AbortSignal | undefined,
): Promise<DeliveryAttempt[]> {
  const first = nextAttemptNumber(record);
  const logged = await loggedAttempts(record, signal, 'the delivery is queued without its earlier attempts');
  return logged.filter((a) => a.attempt >= first && a.attempt < next).map(shortAttempt);
}

/**
 * The attempt log's entries of this conversation; a log that cannot be read gives none, with a warning saying what
 * that costs (`unread`).
 */
async function loggedAttempts(
  record: ConversationRecord,
  signal: AbortSignal | undefined,
  unread: string,
): Promise<LoggedAttempt[]> {
  try {
    const logged = (await attemptLog()?.list(record.conversation_id, signal)) ?? [];
    return logged.filter((a) => a.conversation_id === record.conversation_id);
  } catch (error) {
    logger.warn(`The attempt log could not be read: ${unread}`, {
      conversation_id: record.conversation_id,
      error: `${(error as Error).name}: ${(error as Error).message}`,
    });
    return [];
  }
}

/**
 * Append to the attempt log; a log that refuses it, or does not take it by deliver_by (`signal`), costs the detail
 * (the record keeps the short attempt), not the delivery.
 */
async function keepInLog(entry: LoggedAttempt, signal: AbortSignal | undefined): Promise<void> {
  const log = attemptLog();
  if (!log) return;
  try {
    await log.append(entry, signal);
  } catch (error) {
    logger.warn('The delivery attempt could not be written to the attempt log', {
      conversation_id: entry.conversation_id,
      attempt: entry.attempt,
      error: `${(error as Error).name}: ${(error as Error).message}`,
    });
  }
}
