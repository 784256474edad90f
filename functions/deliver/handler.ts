import type { ConversationState } from '../domain/conversation.ts';
import {
  attemptBudget,
  attemptError,
  buildDeliveryPayload,
  DELIVERY_URL_VARIABLES,
  deferralAfter,
  MAX_RETRY_WAIT_MS,
  unsafeDeliveryUrl,
} from '../domain/delivery.ts';
import { DeliveryDeferredError, DeliveryPermanentError } from '../domain/errors.ts';
import { settleAnswer, withDeliveryAttempt } from '../domain/lifecycle.ts';
import { DELIVERY_DEFERRED_EVENT } from '../domain/observability.ts';
import { signOutbound } from '../domain/signatures.ts';
import { logEvent, METRIC_NAMES, recordTime } from '../shared/events.ts';
import { postJson } from '../shared/http-delivery.ts';
import { logger, stageHandler } from '../shared/powertools.ts';
import { deliverySecret } from '../shared/secrets.ts';
import { settings } from '../shared/settings.ts';

export const USER_AGENT = 'revops-webhook-gateway/1.0';

/**
 * Deliver: one POST of the result to the URL configured for its type, carrying the stable delivery id.
 * Success returns the record; failure throws DeliveryRetryableError or DeliveryPermanentError and the state
 * machine's Retry/Catch decide what happens next. A record whose answer is still pending (Classify failed) is
 * first recorded and classified here, as Classify would have.
 */
export const handler = stageHandler('Deliver', async (state: ConversationState): Promise<ConversationState> => {
  const record = settleAnswer(state.conversation, new Date());
  const deliverBy = state.budget?.deliver_by ?? null;
  const type = record.webhook_context.webhook_type ?? 'general';
  const config = settings();
  const url = config.deliveryUrls[type];
  const attemptNumber = record.execution.delivery_attempts.length + 1;
  const via = state.redelivery?.via ?? 'workflow';
  if (!url) {
    logEvent('WEBHOOK_DELIVERY_FAILED', record, {
      attempt: attemptNumber,
      via,
      error: 'no delivery URL configured',
      final: true,
    });
    throw new DeliveryPermanentError(
      JSON.stringify({ message: `no delivery URL configured for ${type}: set ${DELIVERY_URL_VARIABLES[type]}` }),
    );
  }
  const unsafe = unsafeDeliveryUrl(url);
  if (unsafe) {
    logEvent('WEBHOOK_DELIVERY_FAILED', record, { attempt: attemptNumber, via, error: unsafe, final: true });
    throw new DeliveryPermanentError(JSON.stringify({ message: `${DELIVERY_URL_VARIABLES[type]}: ${unsafe}` }));
  }
  let timeoutMs = config.deliveryTimeoutMs;
  if (deliverBy) {
    // The caller is waiting: never start an attempt it cannot wait for.
    const budget = attemptBudget(deliverBy, new Date(), timeoutMs);
    if ('defer' in budget) {
      logger.warn('Delivery deferred to the redelivery schedule', {
        event_type: DELIVERY_DEFERRED_EVENT,
        conversation_id: record.conversation_id,
        delivery_id: record.webhook_context.delivery_id,
        attempt: attemptNumber,
        reason: budget.defer,
      });
      throw new DeliveryDeferredError(JSON.stringify({ message: budget.defer, target: url }));
    }
    timeoutMs = budget.timeoutMs;
  }
  const payload = JSON.stringify(buildDeliveryPayload(record));
  const deliveryId = record.webhook_context.delivery_id;
  const secret = await deliverySecret(type);
  // Standard Webhooks headers; webhook-id is the delivery id on every attempt, so receivers can deduplicate.
  const signature = secret ? signOutbound(secret, deliveryId, new Date(), payload) : { 'webhook-id': deliveryId };
  const { attempt } = await postJson(
    url,
    payload,
    { 'user-agent': USER_AGENT, ...signature },
    attemptNumber,
    timeoutMs,
  );
  attempt.via = via;
  recordTime(METRIC_NAMES.deliveryResponseTime, attempt.duration_ms);
  if (attempt.outcome === 'delivered') {
    const delivered = withDeliveryAttempt(record, attempt, url, 'delivered');
    logEvent('WEBHOOK_DELIVERY_SUCCESS', delivered, {
      delivery_id: record.webhook_context.delivery_id,
      attempt: attemptNumber,
      via,
      status_code: attempt.status_code,
      delivery_response_time_ms: attempt.duration_ms,
    });
    return { ...state, conversation: delivered };
  }
  logEvent('WEBHOOK_DELIVERY_FAILED', record, {
    delivery_id: record.webhook_context.delivery_id,
    attempt: attemptNumber,
    via,
    status_code: attempt.status_code ?? null,
    error: attempt.error,
    retryable: attempt.outcome === 'retryable',
    // Final when no automatic attempt follows. Inside the conversation workflow a retryable failure never is:
    // the state's Retry or, after it, the schedule tries again.
    final: attempt.outcome === 'permanent' || state.redelivery?.status_if_failed === 'failed',
    delivery_response_time_ms: attempt.duration_ms,
  });
  if (deliverBy && attempt.outcome === 'retryable') {
    // Would the next try still fit in the caller's deadline after the longest Retry wait? If not, hand over now.
    const next = attemptBudget(deliverBy, new Date(Date.now() + MAX_RETRY_WAIT_MS), timeoutMs);
    if ('defer' in next) throw deferralAfter(attempt, url, next.defer);
  }
  throw attemptError(attempt, url);
});
