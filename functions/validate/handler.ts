import { randomUUID } from 'node:crypto';
import type { ExecutionInput } from '../domain/gateway-contract.ts';
import { idempotencyPk, requestFingerprint, reusedForAnotherRequest } from '../domain/idempotency.ts';
import { userQuery } from '../domain/conversation.ts';
import { SIGNATURE_REJECTED_METRIC } from '../domain/observability.ts';
import { keyReused, replay, startConversation, stillRunning, type ValidateResult } from '../domain/lifecycle.ts';
import { idempotencyStore } from '../shared/idempotency-store.ts';
import { logEvent, METRIC_NAMES, recordSize } from '../shared/events.ts';
import { logger, metrics, MetricUnit, stageHandler } from '../shared/powertools.ts';
import { inboundPolicy } from '../shared/secrets.ts';

/** Validate: raw request → conversation record, or a rejection the workflow turns into a ValidationError. */
export const handler = stageHandler('Validate', async (input: ExecutionInput): Promise<ValidateResult> => {
  const result = startConversation(input, { deliveryId: randomUUID() }, await inboundPolicy());
  if (!result.valid) {
    // The reason, never the signature or the body: those stay out of the logs.
    logger.warn('Webhook request rejected', {
      event_type: 'WEBHOOK_REQUEST_REJECTED',
      code: result.code,
      request_id: input.request_id,
      reason: JSON.parse(result.rejection).error.message,
    });
    if (result.error === 'SignatureError') metrics.addMetric(SIGNATURE_REJECTED_METRIC, MetricUnit.Count, 1);
    return result;
  }
  const record = result.conversation;
  const key = record.metadata.idempotency_key;
  const store = key ? idempotencyStore() : null;
  if (key && store) {
    const fingerprint = requestFingerprint({
      query: userQuery(record),
      source_process: record.metadata.source_process,
      webhook_type: record.webhook_context.requested_webhook_type,
      metadata: record.metadata.custom,
    });
    const claim = await store.claim(idempotencyPk(record.metadata.source_system, key), record.conversation_id, new Date(), fingerprint);
    if (!claim.claimed) {
      const { existing } = claim;
      if (reusedForAnotherRequest(existing, fingerprint)) {
        logger.warn('Webhook request rejected', {
          event_type: 'WEBHOOK_REQUEST_REJECTED',
          code: 'IDEMPOTENCY_KEY_REUSED',
          request_id: input.request_id,
          conversation_id: existing.conversation_id,
          reason: 'the Idempotency-Key was first used for a different request',
        });
        return keyReused(existing.conversation_id);
      }
      logger.info('Webhook request is a retry of an earlier one', {
        event_type: 'WEBHOOK_REQUEST_REPLAYED',
        conversation_id: existing.conversation_id,
        request_id: input.request_id,
        status: existing.status,
      });
      return existing.status === 'completed' && existing.response ? replay(existing.conversation_id, existing.response) : stillRunning(existing.conversation_id);
    }
  }
  recordSize(METRIC_NAMES.requestSize, record.metadata.request_size_bytes);
  logEvent('WEBHOOK_REQUEST_RECEIVED', record, {
    request_id: input.request_id,
    request_size_bytes: record.metadata.request_size_bytes,
    signed: result.signed,
  });
  return result;
});
