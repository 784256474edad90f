import type { Budget } from './budget.ts';
import { classify } from './classifier.ts';
import {
  agentResponse,
  agentTurn,
  type ConversationRecord,
  type ConversationState,
  type DeliveryAttempt,
  type DeliveryStatus,
  elapsedMs,
  NOT_STARTED_STAGE,
  type ResponseMode,
  turnText,
  userQuery,
} from './conversation.ts';
import { buildConversationId } from './conversation-id.ts';
import { deferredStatus, failedAttemptFromCaught, isDeferral } from './delivery.ts';
import { deliveryIdFor } from './delivery-id.ts';
import { type AcceptedOutput, type ExecutionInput, errorBody } from './gateway-contract.ts';
import {
  type IdempotencyRecord,
  idempotencyKeyOf,
  requestFingerprint,
  reusedForAnotherRequest,
} from './idempotency.ts';
import { claimedSource, parseWebhookRequest } from './request.ts';
import { type InboundPolicy, OPEN_POLICY, verifyInbound } from './signatures.ts';
import { apiKeyMismatch, canonicalSource } from './source-identity.ts';
import { parseTaskError, type TaskFailure } from './task-error.ts';
import type { AgentThread } from './thread.ts';

/** Each workflow stage as a pure step over the conversation record. Handlers do the I/O around them. */

/**
 * What Validate hands the workflow's IsRequestValid choice. Every shape carries `valid`, `duplicate` and `error`,
 * so the Choice rules never test a path that is missing.
 */
export type RejectionError = 'ValidationError' | 'SignatureError' | 'IdempotencyConflict' | 'SourceMismatch';
export type ValidateResult =
  | {
      valid: true;
      duplicate: false;
      error: null;
      conversation: ConversationRecord;
      signed: boolean;
      /** Added by Validate (functions/domain/budget.ts). */
      budget?: Budget;
      /**
       * Added by Validate before the agent is invoked: what InvokeManagerAgent gives the agent as `thread` (null
       * outside a thread). Classify drops it: only the record's thread_id and thread_turn stay.
       */
      thread?: AgentThread | null;
    }
  | { valid: true; duplicate: true; error: null; conversation_id: string; response: unknown }
  | { valid: false; duplicate: false; error: RejectionError; code: string; rejection: string };

export type Rejected = Extract<ValidateResult, { valid: false }>;
export type Started = Extract<ValidateResult, { duplicate: false }>;

function rejection(
  error: RejectionError,
  code: string,
  message: string,
  extra: Record<string, unknown> = {},
): Rejected {
  return { valid: false, duplicate: false, error, code, rejection: JSON.stringify(errorBody(code, message, extra)) };
}

/** A retried request whose first conversation already answered: that answer, again. */
function replay(conversationId: string, storedResponse: string): ValidateResult {
  return {
    valid: true,
    duplicate: true,
    error: null,
    conversation_id: conversationId,
    response: JSON.parse(storedResponse),
  };
}

function stillRunning(conversationId: string): ValidateResult {
  return rejection(
    'IdempotencyConflict',
    'IDEMPOTENCY_CONFLICT',
    'A request with this Idempotency-Key is still being processed; retry in a few seconds to get its response',
    { conversation_id: conversationId },
  );
}

function keyReused(conversationId: string): ValidateResult {
  return rejection(
    'ValidationError',
    'IDEMPOTENCY_KEY_REUSED',
    'This Idempotency-Key (or webhook-id) was already used in the last 24 hours for a different request (its query, source_process, webhook_type or metadata differ): send a new request with a new key',
    { conversation_id: conversationId },
  );
}

/** What an asynchronous start answers (the gateway makes it a 202 with the status URL). */
function acceptedOutput(conversationId: string, sourceSystem: string): AcceptedOutput {
  return { accepted: { conversation_id: conversationId, source_system: sourceSystem } };
}

/**
 * A request whose key is taken: a different request under the same key is refused; a retry gets the first answer,
 * or 409 while the first conversation still runs. A retry of an asynchronous start that asks again for an
 * asynchronous answer gets the same 202 (the same conversation id and status URL), whether it still runs or not.
 */
export function answerToDuplicate(
  existing: IdempotencyRecord,
  fingerprint: string,
  request: { mode: ResponseMode; sourceSystem: string } = { mode: 'sync', sourceSystem: '' },
): ValidateResult {
  if (reusedForAnotherRequest(existing, fingerprint)) return keyReused(existing.conversation_id);
  if (request.mode === 'async' && existing.response_mode === 'async')
    return {
      valid: true,
      duplicate: true,
      error: null,
      conversation_id: existing.conversation_id,
      response: acceptedOutput(existing.conversation_id, request.sourceSystem),
    };
  return existing.status === 'completed' && existing.response
    ? replay(existing.conversation_id, existing.response)
    : stillRunning(existing.conversation_id);
}

/** The fingerprint of what a conversation's request asked (see requestFingerprint). */
export function fingerprintOf(record: ConversationRecord): string {
  return requestFingerprint({
    query: userQuery(record),
    source_process: record.metadata.source_process,
    webhook_type: record.webhook_context.requested_webhook_type,
    metadata: record.metadata.custom,
    thread_id: record.metadata.thread_id,
  });
}

/** Tests only: a fixed suffix for the conversation id (otherwise random). */
export interface IdSource {
  suffix?: string;
}

/**
 * Validate: check that the API key (if any) is the claimed source's own and the signature of the source the body
 * claims (before anything else is revealed about the request), then the request itself, then build the
 * conversation record. `apiKeySources`: SOURCE_API_KEY_IDS (API key id → canonical source).
 */
export function startConversation(
  input: ExecutionInput,
  ids: IdSource = {},
  policy: InboundPolicy = OPEN_POLICY,
  mode: ResponseMode = 'sync',
  apiKeySources: Readonly<Record<string, string>> = {},
): Started {
  const source = claimedSource(input.body);
  const keyRefused = source === null ? null : apiKeyMismatch(input.api_key_id, source, apiKeySources);
  if (keyRefused !== null) return rejection('SourceMismatch', 'SOURCE_MISMATCH', keyRefused);
  if (source !== null) {
    const trust = verifyInbound(input.body, input.headers, source, policy);
    if (!trust.ok)
      return rejection('SignatureError', 'INVALID_SIGNATURE', `Webhook signature rejected: ${trust.reason}`);
  }
  const parsed = parseWebhookRequest(input.body);
  if (!parsed.ok) return rejection('ValidationError', parsed.code, parsed.message, { details: parsed.details });
  const idempotency = idempotencyKeyOf(input.headers);
  if ('error' in idempotency) {
    return rejection('ValidationError', 'VALIDATION_ERROR', `Request validation failed: ${idempotency.error}`, {
      details: [{ field: 'Idempotency-Key', message: idempotency.error }],
    });
  }
  const signed = source !== null && Object.hasOwn(policy.secrets, source);
  const req = parsed.request;
  const sourceSystem = canonicalSource(req.source_system);
  const sourceProcess = canonicalSource(req.source_process);
  const receivedAt = new Date(input.received_at);
  const conversationId = buildConversationId({
    at: Number.isNaN(receivedAt.getTime()) ? new Date() : receivedAt,
    sourceSystem,
    sourceProcess,
    suffix: ids.suffix,
  });
  const requested = req.webhook_type ?? null;
  const custom = req.metadata ?? {};
  const deliveryId = deliveryIdFor({
    conversationId,
    sourceSystem,
    idempotencyKey: idempotency.key,
    fingerprint: requestFingerprint({
      query: req.query,
      source_process: sourceProcess,
      webhook_type: requested,
      metadata: custom,
      thread_id: req.thread_id,
    }),
  });
  return {
    valid: true,
    duplicate: false,
    error: null,
    signed,
    conversation: {
      conversation_id: conversationId,
      metadata: {
        conversation_id: conversationId,
        channel: 'webhook',
        source_system: sourceSystem,
        source_process: sourceProcess,
        request_timestamp: req.timestamp ?? null,
        received_at: input.received_at,
        request_id: input.request_id,
        source_ip: input.source_ip,
        user_agent: input.headers['user-agent'] ?? null,
        request_size_bytes: Buffer.byteLength(input.body),
        idempotency_key: idempotency.key,
        custom,
        response_mode: mode,
        thread_id: req.thread_id ?? null,
        thread_turn: null,
      },
      webhook_context: {
        source_system: sourceSystem,
        source_process: sourceProcess,
        webhook_type: null,
        requested_webhook_type: requested,
        classification_reason: null,
        delivery_status: 'pending',
        delivery_id: deliveryId,
        delivery_target: null,
      },
      conversation: {
        turns: [{ role: 'user', content: req.query, timestamp: req.timestamp ?? input.received_at }],
      },
      execution: {
        status: 'in_progress',
        started_at: input.received_at,
        completed_at: null,
        timings: { agent_ms: null, delivery_ms: null, total_ms: null },
        delivery_attempts: [],
        errors: [],
        executions: [],
      },
    },
  };
}

export function withAgentAnswer(
  record: ConversationRecord,
  payload: unknown,
  agentMs: number,
  at: Date,
): ConversationRecord {
  return {
    ...record,
    conversation: {
      turns: [...record.conversation.turns, { role: 'assistant', timestamp: at.toISOString(), data: payload }],
    },
    execution: { ...record.execution, timings: { ...record.execution.timings, agent_ms: agentMs } },
  };
}

/**
 * The pending answer (InvokeManagerAgent's result, kept on the record) recorded as the assistant turn, with the
 * agent's time from the moment the agent state was entered to `answeredAt`. A record without one is returned as is.
 */
export function withPendingAnswer(record: ConversationRecord, answeredAt: Date): ConversationRecord {
  const { pending_answer: pending, ...rest } = record;
  if (!pending) return record;
  const invoked = Date.parse(pending.invoked_at);
  const agentMs = Number.isNaN(invoked) ? 0 : Math.max(0, answeredAt.getTime() - invoked);
  return withAgentAnswer(rest, pending.answer, agentMs, answeredAt);
}

/**
 * What Classify does, for a stage that runs after it failed: the pending answer recorded, and the record
 * classified if it is not yet. A record that already went through Classify is returned as is.
 */
export function settleAnswer(record: ConversationRecord, now: Date): ConversationRecord {
  if (!record.pending_answer) return record;
  const answered = withPendingAnswer(record, now);
  return answered.webhook_context.webhook_type === null ? withClassification(answered, now) : answered;
}

export function withFailure(
  record: ConversationRecord,
  stage: string,
  failure: TaskFailure,
  at: Date,
): ConversationRecord {
  return {
    ...record,
    execution: {
      ...record.execution,
      errors: [
        ...record.execution.errors,
        { stage, error: failure.error, message: failure.message, at: at.toISOString() },
      ],
    },
  };
}

/** Classify: the type and why; `at` (when the record was classified) dates the lifecycle's CLASSIFIED event. */
export function withClassification(record: ConversationRecord, at?: Date): ConversationRecord {
  const result = classify(
    userQuery(record),
    turnText(agentTurn(record)),
    record.webhook_context.requested_webhook_type,
  );
  return {
    ...record,
    webhook_context: {
      ...record.webhook_context,
      webhook_type: result.webhook_type,
      classification_reason: result.reason,
      ...(at ? { classified_at: at.toISOString() } : {}),
    },
  };
}

export function withDeliveryStatus(record: ConversationRecord, status: DeliveryStatus): ConversationRecord {
  return { ...record, webhook_context: { ...record.webhook_context, delivery_status: status } };
}

export function withDeliveryAttempt(
  record: ConversationRecord,
  attempt: DeliveryAttempt,
  target: string | null,
  status: DeliveryStatus,
): ConversationRecord {
  const known = record.execution.delivery_attempts.some((a) => a.at === attempt.at && a.attempt === attempt.attempt);
  const attempts = known ? record.execution.delivery_attempts : [...record.execution.delivery_attempts, attempt];
  return {
    ...record,
    webhook_context: {
      ...record.webhook_context,
      delivery_status: status,
      delivery_target: target ?? record.webhook_context.delivery_target,
    },
    execution: {
      ...record.execution,
      delivery_attempts: attempts,
      timings: { ...record.execution.timings, delivery_ms: attempt.duration_ms },
    },
  };
}

/**
 * Close the record: failed when the agent failed, otherwise completed (the delivery status is reported separately).
 * Safe to re-run: a record that was already closed keeps its status, completion time and total (a redelivery
 * re-exports it).
 */
export function completeConversation(
  record: ConversationRecord,
  agentFailed: boolean,
  executionName: string | null,
  now: Date,
): ConversationRecord {
  const executions =
    executionName && !record.execution.executions.includes(executionName)
      ? [...record.execution.executions, executionName]
      : record.execution.executions;
  const closed = record.execution.completed_at !== null;
  const { status } = record.execution;
  return {
    ...record,
    execution: {
      ...record.execution,
      // A conversation whose agent failed stays failed when a redelivery re-exports it; an interrupted one stays so.
      status:
        agentFailed || (closed && status === 'failed')
          ? 'failed'
          : status === 'interrupted'
            ? 'interrupted'
            : 'completed',
      completed_at: closed ? record.execution.completed_at : now.toISOString(),
      executions,
      timings: {
        ...record.execution.timings,
        total_ms: closed ? record.execution.timings.total_ms : elapsedMs(record.execution.started_at, now),
      },
    },
  };
}

/**
 * Export's view of how the conversation ended: the agent's failure (nothing delivered), a failed delivery (the
 * attempt the Catch stored, `retrying` while the schedule will try again, `failed` when it will not), or success.
 */
export function closeConversation(
  state: ConversationState,
  executionName: string | null,
  now: Date,
): { record: ConversationRecord; agentFailed: boolean; answered: boolean } {
  const agentFailed = state.agent_error !== undefined || state.start_error !== undefined;
  let record: ConversationRecord;
  if (agentFailed) {
    // An answer refused by Classify is not kept: the conversation failed.
    const { pending_answer: _, ...unanswered } = state.conversation;
    record = state.start_error
      ? withFailure(unanswered, NOT_STARTED_STAGE, parseTaskError(state.start_error), now)
      : withFailure(unanswered, 'InvokeManagerAgent', parseTaskError(state.agent_error), now);
  } else {
    record = settleAnswer(state.conversation, now);
  }
  if (state.classify_error) record = withFailure(record, 'Classify', parseTaskError(state.classify_error), now);
  // No answer to deliver: the agent failed, or the conversation was interrupted before it answered.
  const answered = !agentFailed && agentTurn(record) !== undefined;
  if (!answered) record = withDeliveryStatus(record, 'not_attempted');
  if (state.delivery_error && isDeferral(state.delivery_error)) {
    // No attempt was made (the caller's deadline, or the receiver is held): nothing to record but that the schedule
    // will deliver it. A redelivery that was held leaves the status as it was.
    if (!state.redelivery) record = withDeliveryStatus(record, deferredStatus(state.delivery_error));
  } else if (state.delivery_error) {
    const { attempt, target } = failedAttemptFromCaught(
      state.delivery_error,
      record.execution.delivery_attempts.length + 1,
      now,
    );
    // A failed resend leaves the conversation delivered: it was, and the attempt log shows the resend's answer.
    const status =
      state.redelivery?.via === 'resend'
        ? record.webhook_context.delivery_status
        : attempt.outcome === 'permanent'
          ? 'failed'
          : (state.redelivery?.status_if_failed ?? 'retrying');
    record = withDeliveryAttempt(record, attempt, target, status);
    record = withFailure(record, 'Deliver', parseTaskError(state.delivery_error), now);
  }
  if (state.delivery_error && state.delivery_queue_error) {
    // The failed-delivery queue refused the envelope: no automatic attempt follows (deliveries redrive --all can).
    record = withDeliveryStatus(record, 'failed');
    record = withFailure(record, 'QueueFailedDelivery', parseTaskError(state.delivery_queue_error), now);
  }
  return { record: completeConversation(record, agentFailed, executionName, now), agentFailed, answered };
}

/**
 * The local gateway stopped (crash, kill) while the conversation ran, in or after `stage`: record that, and every
 * delivery attempt known to have been made, so it is closed as `interrupted` with what is known when the gateway
 * restarts (local/engine/recovery.ts).
 */
export function withInterruption(
  record: ConversationRecord,
  stage: string,
  at: Date,
  attempts: DeliveryAttempt[] = [],
): ConversationRecord {
  const known = new Set(record.execution.delivery_attempts.map((a) => a.attempt));
  const interrupted = withFailure(
    record,
    stage,
    {
      error: INTERRUPTED_ERROR,
      message: `the local gateway stopped (crash or kill) during ${stage}; the conversation was closed when it restarted`,
      payload: null,
    },
    at,
  );
  return {
    ...interrupted,
    execution: {
      ...interrupted.execution,
      status: 'interrupted',
      delivery_attempts: [...record.execution.delivery_attempts, ...attempts.filter((a) => !known.has(a.attempt))],
    },
  };
}

export const INTERRUPTED_ERROR = 'GatewayInterrupted';

/** The 200 body (docs/contract.md#post-webhook). */
export function successBody(record: ConversationRecord) {
  return {
    success: true as const,
    conversation_id: record.conversation_id,
    response: agentResponse(record),
    tracking: {
      conversation_id: record.conversation_id,
      delivery_id: record.webhook_context.delivery_id,
      webhook_type: record.webhook_context.webhook_type,
      delivery_status: record.webhook_context.delivery_status,
      processing_time_ms: record.execution.timings.total_ms,
    },
  };
}

/**
 * How the workflow fails when the agent did: `AgentTimeout` (504 TIMEOUT) when InvokeManagerAgent ran out of its
 * budget (`agentSeconds`), else `AgentError` (502 AGENT_ERROR); the body names the conversation, which was exported
 * as failed. The error name and the body are the AgentFailed state's ErrorPath and CausePath. A conversation the local
 * gateway interrupted before the agent answered (local/engine/recovery.ts) gets an INTERRUPTED body.
 */
export function agentFailure(
  record: ConversationRecord,
  agentSeconds?: number,
): { failure_error: 'AgentError' | 'AgentTimeout' | 'ConversationNotStarted'; failure_cause: string } {
  const extra = { conversation_id: record.conversation_id };
  if (record.execution.status === 'interrupted') {
    const message = `The conversation was interrupted before the agent answered: ${record.execution.errors.at(-1)?.message}`;
    return { failure_error: 'AgentError', failure_cause: JSON.stringify(errorBody('INTERRUPTED', message, extra)) };
  }
  const notStarted = record.execution.errors.findLast((e) => e.stage === NOT_STARTED_STAGE);
  if (notStarted) {
    const message = `The conversation was accepted but could not be started (${notStarted.error}: ${notStarted.message}); it was recorded as failed: send it again`;
    return {
      failure_error: 'ConversationNotStarted',
      failure_cause: JSON.stringify(errorBody('NOT_STARTED', message, extra)),
    };
  }
  const last = record.execution.errors.findLast((e) => e.stage === 'InvokeManagerAgent');
  if (last?.error === 'States.Timeout') {
    const within = agentSeconds ? ` within ${agentSeconds} s` : ' in time';
    return {
      failure_error: 'AgentTimeout',
      failure_cause: JSON.stringify(
        errorBody(
          'TIMEOUT',
          `The manager agent did not answer${within}; the conversation was recorded as failed`,
          extra,
        ),
      ),
    };
  }
  const reason = last ? `${last.error}: ${last.message}` : 'unknown error';
  return {
    failure_error: 'AgentError',
    failure_cause: JSON.stringify(errorBody('AGENT_ERROR', `The manager agent failed: ${reason}`, extra)),
  };
}
