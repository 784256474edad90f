import type { Budget } from './budget.ts';
import { type ConversationRecord, type ResponseMode, userQuery } from './conversation.ts';
import { buildConversationId } from './conversation-id.ts';
import { deliveryIdFor } from './delivery-id.ts';
import { type AcceptedOutput, type ExecutionInput, errorBody } from './gateway-contract.ts';
import {
  type IdempotencyRecord,
  idempotencyKeyOf,
  requestFingerprint,
  reusedForAnotherRequest,
} from './idempotency.ts';
import { claimedSource, foreignCharsetError, parseWebhookRequest } from './request.ts';
import { type InboundPolicy, OPEN_POLICY, verifyInbound } from './signatures.ts';
import { apiKeyMismatch, canonicalSource } from './source-identity.ts';
import type { AgentThread } from './thread.ts';

/**
 * Validate's step: a request (its trust, its shape, its idempotency key) becomes a conversation record, a
 * rejection, or the answer to a retry. Only Validate imports it: the inbound signature check (standardwebhooks)
 * stays out of the other stages' bundles. The later steps are in lifecycle.ts.
 */

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
    'This Idempotency-Key (or webhook-id) was already used in the last 24 hours for a different request (its query, source_process, webhook_type, metadata or thread_id differ): send a new request with a new key',
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

/**
 * The started conversation under the conversation id its key's claim holds: a later attempt of the same Validate
 * task (the workflow's Retry) goes on as the conversation its first attempt claimed the key for, not as a new one.
 * The delivery id is derived again from the same parts (a keyed request's never depends on the conversation id).
 */
export function asClaimedConversation<T extends { conversation: ConversationRecord }>(
  started: T,
  conversationId: string,
): T {
  const record = started.conversation;
  if (record.conversation_id === conversationId) return started;
  const deliveryId = deliveryIdFor({
    conversationId,
    sourceSystem: record.metadata.source_system,
    idempotencyKey: record.metadata.idempotency_key,
    fingerprint: fingerprintOf(record),
  });
  return {
    ...started,
    conversation: {
      ...record,
      conversation_id: conversationId,
      metadata: { ...record.metadata, conversation_id: conversationId },
      webhook_context: { ...record.webhook_context, delivery_id: deliveryId },
    },
  };
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
  const foreign = foreignCharsetError(input.headers['content-type'], input.body);
  if (foreign !== null) return rejection('ValidationError', 'INVALID_JSON', foreign, { details: [] });
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
