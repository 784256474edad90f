import { syncBudget } from '../domain/budget.ts';
import type { ExecutionInput } from '../domain/gateway-contract.ts';
import { idempotencyPk } from '../domain/idempotency.ts';
import { answerToDuplicate, fingerprintOf, startConversation, type ValidateResult } from '../domain/lifecycle.ts';
import { SIGNATURE_REJECTED_METRIC } from '../domain/observability.ts';
import { logEvent, METRIC_NAMES, recordSize } from '../shared/events.ts';
import { idempotencyStore } from '../shared/idempotency-store.ts';
import { logger, MetricUnit, metrics, stageHandler } from '../shared/powertools.ts';
import { inboundPolicy } from '../shared/secrets.ts';
import { settings } from '../shared/settings.ts';

/** Validate: raw request → conversation record, or a rejection the workflow turns into a ValidationError. */
export const handler = stageHandler('Validate', async (input: ExecutionInput): Promise<ValidateResult> => {
  const result = startConversation(input, {}, await inboundPolicy());
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
    const fingerprint = fingerprintOf(record);
    const claim = await store.claim(
      idempotencyPk(record.metadata.source_system, key),
      record.conversation_id,
      new Date(),
      fingerprint,
    );
    if (!claim.claimed) {
      const answer = answerToDuplicate(claim.existing, fingerprint);
      logger.info('Webhook request reuses an earlier Idempotency-Key', {
        event_type: answer.valid ? 'WEBHOOK_REQUEST_REPLAYED' : 'WEBHOOK_REQUEST_REJECTED',
        code: answer.valid ? null : answer.code,
        conversation_id: claim.existing.conversation_id,
        request_id: input.request_id,
        status: claim.existing.status,
      });
      return answer;
    }
  }
  recordSize(METRIC_NAMES.requestSize, record.metadata.request_size_bytes);
  logEvent('WEBHOOK_REQUEST_RECEIVED', record, {
    request_id: input.request_id,
    request_size_bytes: record.metadata.request_size_bytes,
    signed: result.signed,
  });
  const config = settings();
  const budget = syncBudget(config, input.received_at, new Date());
  // The workflow invokes the agent next (InvokeManagerAgent, a Step Functions task: no Lambda of ours logs there).
  logEvent('WEBHOOK_MANAGER_AGENT_INVOKED', record, {
    function_name: config.agentFunctionName,
    agent_timeout_seconds: budget.agent_seconds,
  });
  return { ...result, budget };
});
