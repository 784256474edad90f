import { asyncBudget, type Budget, syncBudget } from '../domain/budget.ts';
import type { ResponseMode } from '../domain/conversation.ts';
import { runningStatus } from '../domain/conversation-status.ts';
import type { ExecutionInput } from '../domain/gateway-contract.ts';
import { idempotencyPk } from '../domain/idempotency.ts';
import { answerToDuplicate, fingerprintOf, startConversation, type ValidateResult } from '../domain/lifecycle.ts';
import { SIGNATURE_REJECTED_METRIC } from '../domain/observability.ts';
import { conversationStatusStore } from '../shared/conversation-status-store.ts';
import { logEvent, METRIC_NAMES, recordSize } from '../shared/events.ts';
import { idempotencyStore } from '../shared/idempotency-store.ts';
import { logger, MetricUnit, metrics, stageHandler } from '../shared/powertools.ts';
import { inboundPolicy } from '../shared/secrets.ts';
import { settings } from '../shared/settings.ts';

/**
 * What Validate is given: the execution input API Gateway (or the local server) built from a request (the
 * conversation workflow, synchronous); the same under `accept` (the accept workflow: `Prefer: respond-async`); or an
 * accepted conversation to run (`accepted`: the accept workflow's Validate result, statemachine/accept.asl.json).
 */
export type ValidateInput = ExecutionInput | { accept: ExecutionInput } | { accepted: Accepted };
type Accepted = Extract<ValidateResult, { valid: true; duplicate: false }>;

/** Validate: raw request → conversation record, or a rejection the workflow turns into its Fail state (4xx). */
export const handler = stageHandler('Validate', async (event: ValidateInput): Promise<ValidateResult> => {
  if ('accepted' in event) return runAccepted(event.accepted);
  const [input, mode]: [ExecutionInput, ResponseMode] = 'accept' in event ? [event.accept, 'async'] : [event, 'sync'];
  const config = settings();
  const result = startConversation(input, {}, await inboundPolicy(), mode, config.apiKeySources);
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
  const { source_system: source, idempotency_key: key } = record.metadata;
  const store = key ? idempotencyStore() : null;
  const pk = key && store ? idempotencyPk(source, key) : null;
  if (pk && store) {
    const fingerprint = fingerprintOf(record);
    const responseMode = mode === 'async' ? 'async' : undefined;
    const claim = await store.claim(pk, record.conversation_id, new Date(), fingerprint, responseMode);
    if (!claim.claimed) {
      const answer = answerToDuplicate(claim.existing, fingerprint, { mode, sourceSystem: source });
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
  let budget: Budget;
  if (mode === 'async') {
    budget = asyncBudget(config);
    const statuses = conversationStatusStore();
    try {
      if (!statuses) throw new Error('no status store: set STATUS_TABLE_NAME or STATUS_DIR');
      await statuses.accept(runningStatus(record.conversation_id, source, new Date()));
    } catch (error) {
      // Not accepted after all: a retry with the same key must start afresh, not find this conversation.
      if (pk && store) await store.release(pk);
      throw error;
    }
  } else {
    budget = syncBudget(config, input.received_at, new Date());
  }
  recordSize(METRIC_NAMES.requestSize, record.metadata.request_size_bytes);
  logEvent('WEBHOOK_REQUEST_RECEIVED', record, {
    request_id: input.request_id,
    request_size_bytes: record.metadata.request_size_bytes,
    signed: result.signed,
    response_mode: mode,
  });
  const started: Accepted = { ...result, budget };
  if (mode === 'sync') logAgentInvoked(started, budget);
  return started;
});

/** The run of an accepted conversation: Validate's work was done when it was accepted; the agent is invoked next. */
function runAccepted(accepted: Accepted): ValidateResult {
  if (accepted?.valid !== true || accepted.duplicate !== false || !accepted.conversation?.conversation_id)
    throw new Error('Validate: `accepted` is not an accepted conversation');
  if (accepted.budget) logAgentInvoked(accepted, accepted.budget);
  return accepted;
}

/** The workflow invokes the agent next (InvokeManagerAgent, a Step Functions task: no Lambda of ours logs there). */
function logAgentInvoked(started: Accepted, budget: Budget): void {
  logEvent('WEBHOOK_MANAGER_AGENT_INVOKED', started.conversation, {
    function_name: settings().agentFunctionName,
    agent_timeout_seconds: budget.agent_seconds,
  });
}
