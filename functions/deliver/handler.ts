import type { ConversationState } from '../domain/conversation.ts';
import { buildDeliveryPayload, failedAttemptOutcome, planDelivery } from '../domain/delivery.ts';
import { settleAnswer, withDeliveryAttempt } from '../domain/lifecycle.ts';
import { DELIVERY_DEFERRED_EVENT } from '../domain/observability.ts';
import { signOutbound } from '../domain/signatures.ts';
import { logEvent, METRIC_NAMES, recordDeliveryAttempt, recordTime } from '../shared/events.ts';
import { postJson } from '../shared/http-delivery.ts';
import { logger, stageHandler } from '../shared/powertools.ts';
import { deliverySecret } from '../shared/secrets.ts';
import { settings } from '../shared/settings.ts';

export const USER_AGENT = 'revops-webhook-gateway/1.0';

/**
 * Deliver: one POST of the result to the URL configured for its type, carrying the stable delivery id. The
 * decisions are domain functions (planDelivery, failedAttemptOutcome); success returns the record, failure throws
 * the error the state machine's Retry/Catch match. A record whose answer is still pending (Classify failed) is
 * first recorded and classified here, as Classify would have.
 */
export const handler = stageHandler('Deliver', async (state: ConversationState): Promise<ConversationState> => {
  const record = settleAnswer(state.conversation, new Date());
  const deliverBy = state.budget?.deliver_by ?? null;
  const config = settings();
  const attemptNumber = record.execution.delivery_attempts.length + 1;
  const via = state.redelivery?.via ?? 'workflow';
  const plan = planDelivery(record, deliverBy, config, new Date());
  if (plan.action === 'refuse') {
    logEvent('WEBHOOK_DELIVERY_FAILED', record, { attempt: attemptNumber, via, error: plan.reason, final: true });
    throw plan.error;
  }
  if (plan.action === 'defer') {
    logger.warn('Delivery deferred to the redelivery schedule', {
      event_type: DELIVERY_DEFERRED_EVENT,
      conversation_id: record.conversation_id,
      delivery_id: record.webhook_context.delivery_id,
      attempt: attemptNumber,
      reason: plan.reason,
    });
    throw plan.error;
  }
  const { url, timeoutMs } = plan;
  const type = record.webhook_context.webhook_type ?? 'general';
  const payload = JSON.stringify(buildDeliveryPayload(record));
  const deliveryId = record.webhook_context.delivery_id;
  const secret = await deliverySecret(type);
  // Standard Webhooks headers; webhook-id is the delivery id on every attempt, so receivers can deduplicate.
  const signature = secret ? signOutbound(secret, deliveryId, new Date(), payload) : { 'webhook-id': deliveryId };
  const headers = { 'user-agent': USER_AGENT, ...signature };
  const { attempt } = await postJson(url, payload, headers, attemptNumber, timeoutMs);
  attempt.via = via;
  recordTime(METRIC_NAMES.deliveryResponseTime, attempt.duration_ms);
  recordDeliveryAttempt(type, attempt.outcome === 'delivered', attempt.duration_ms);
  if (attempt.outcome === 'delivered') {
    const delivered = withDeliveryAttempt(record, attempt, url, 'delivered');
    logEvent('WEBHOOK_DELIVERY_SUCCESS', delivered, {
      delivery_id: deliveryId,
      attempt: attemptNumber,
      via,
      status_code: attempt.status_code,
      delivery_response_time_ms: attempt.duration_ms,
    });
    return { ...state, conversation: delivered };
  }
  const failed = failedAttemptOutcome(attempt, url, { deliverBy, redelivery: state.redelivery, timeoutMs }, new Date());
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
});
