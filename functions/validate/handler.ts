import { randomUUID } from 'node:crypto';
import type { ExecutionInput } from '../domain/gateway-contract.ts';
import { startConversation, type ValidateResult } from '../domain/lifecycle.ts';
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
    if (result.error === 'SignatureError') metrics.addMetric('Webhook.signature_rejected', MetricUnit.Count, 1);
    return result;
  }
  const record = result.conversation;
  recordSize(METRIC_NAMES.requestSize, record.metadata.request_size_bytes);
  logEvent('WEBHOOK_REQUEST_RECEIVED', record, {
    request_id: input.request_id,
    request_size_bytes: record.metadata.request_size_bytes,
    signed: result.signed,
  });
  return result;
});
