import type { Context } from 'aws-lambda';
import { asyncBudget, type Budget, syncBudget } from '../domain/budget.ts';
import {
  type ConversationRecord,
  fullRecord,
  fullState,
  leanState,
  type ResponseMode,
  type StateRecord,
} from '../domain/conversation.ts';
import { runningStatus } from '../domain/conversation-status.ts';
import { type ExecutionInput, STORAGE_UNAVAILABLE_ERROR } from '../domain/gateway-contract.ts';
import { idempotencyPk, requestIdentity } from '../domain/idempotency.ts';
import {
  answerToDuplicate,
  asClaimedConversation,
  fingerprintOf,
  startConversation,
  type ValidateResult,
} from '../domain/intake.ts';
import {
  SIGNATURE_REJECTED_METRIC,
  SIGNATURE_UNCHECKED_EVENT,
  THREAD_HISTORY_UNAVAILABLE_EVENT,
} from '../domain/observability.ts';
import { type AgentThread, agentThread, threadSessionId } from '../domain/thread.ts';
import {
  budgetSignal,
  LAMBDA_RETURN_MS,
  LAMBDA_TAIL_MS,
  lambdaDeadline,
  lambdaEnd,
} from '../shared/clients/request-limits.ts';
import { conversationStatusStore } from '../shared/conversation-status-store.ts';
import { logEvent, METRIC_NAMES, recordSize } from '../shared/events.ts';
import { idempotencyStore, settleKey } from '../shared/idempotency-store.ts';
import { logger, MetricUnit, metrics, stageHandler } from '../shared/powertools.ts';
import { inboundPolicy } from '../shared/secrets.ts';
import { settings } from '../shared/settings.ts';
import { threadStore } from '../shared/thread-store.ts';

/**
 * What Validate is given: the execution input API Gateway (or the local server) built from a request (the
 * conversation workflow, synchronous); the same under `accept` (the accept workflow: `Prefer: respond-async`); or an
 * accepted conversation to run (`accepted`: the accept workflow's Validate result, statemachine/accept.asl.json); or
 * one it could neither start nor export, whose key to free (`unstarted`: its FreeUnstartedKey state).
 */
export type ValidateInput =
  | ExecutionInput
  | { accept: ExecutionInput }
  | { accepted: Carried<Accepted> }
  | { unstarted: { conversation: StateRecord } };
type Accepted = Extract<ValidateResult, { valid: true; duplicate: false }>;
/** A result as the workflow's state carries it: its record as leanRecord leaves it (functions/domain/conversation.ts). */
type Carried<T> = T extends { conversation: ConversationRecord }
  ? Omit<T, 'conversation'> & { conversation: StateRecord }
  : T;

/** Validate: raw request → conversation record, or a rejection the workflow turns into its Fail state (4xx). */
export const handler = validateOn(Date.now);

/**
 * Validate on a clock: the one a synchronous conversation's budget is counted on, from the request's `received_at`
 * (functions/domain/budget.ts). The Lambda's is the real one; the local gateway's tests inject theirs
 * (GatewayOptions.budgetClock).
 */
export function validateOn(now: () => number) {
  return stageHandler(
    'Validate',
    (event: ValidateInput, context?: Context): Promise<Carried<ValidateResult> | { freed: boolean }> =>
      'unstarted' in event
        ? freeUnstartedKey(fullRecord(event.unstarted.conversation))
        : validate(event, now, lambdaEnd(context, Date.now()).endsAt).then(carried),
  );
}

/** The result with its record as the workflow's state carries it (leanRecord). */
function carried(result: ValidateResult): Carried<ValidateResult> {
  return 'conversation' in result ? leanState(result) : result;
}

/**
 * `endsAt`: when this Lambda times out (Date.now() ms; lambdaEnd). Its AWS calls end LAMBDA_TAIL_MS before it and the
 * key's release after a failed one LAMBDA_RETURN_MS before it, so that a stalled store or secret is answered 503
 * STORAGE_UNAVAILABLE with the key freed (storageUnavailable), not killed by the timeout with the key still claimed.
 */
async function validate(
  event: Exclude<ValidateInput, { unstarted: unknown }>,
  now: () => number,
  endsAt: number | undefined,
): Promise<ValidateResult> {
  if ('accepted' in event) return runAccepted(event.accepted);
  const [input, mode]: [ExecutionInput, ResponseMode] = 'accept' in event ? [event.accept, 'async'] : [event, 'sync'];
  const config = settings();
  const cut = budgetSignal(lambdaDeadline(endsAt, LAMBDA_TAIL_MS), new Date());
  const policy = await inboundPolicy(cut).catch((error: unknown) => {
    throw storageUnavailable(error, input.request_id);
  });
  const result = startConversation(input, {}, policy, mode, config.apiKeySources);
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
  let accepted = result;
  const { source_system: source, idempotency_key: key } = result.conversation.metadata;
  // Signed, but its source has no secret to check it with: a source name misspelt in INBOUND_WEBHOOK_SECRETS (or
  // in the body) would otherwise leave its requests unchecked unnoticed (docs/security.md).
  if (!result.signed && input.headers['webhook-signature']) {
    logger.warn('Webhook request signed, but its source has no inbound secret: the signature was not checked', {
      event_type: SIGNATURE_UNCHECKED_EVENT,
      source_system: source,
      request_id: input.request_id,
      sources_with_secrets: Object.keys(policy.secrets),
    });
  }
  const store = key ? idempotencyStore() : null;
  const pk = key && store ? idempotencyPk(source, key) : null;
  // Not started after all: a retry with the same key must start afresh, not find this conversation. A claim that
  // failed may have been written (a cut call, a lost answer): the release is conditional on this conversation's id.
  const freeKey = async (conversationId: string, error: unknown): Promise<never> => {
    const keyCut = budgetSignal(lambdaDeadline(endsAt, LAMBDA_RETURN_MS), new Date());
    // A release the store refused too: the failure is the first one's; the key is held until its claim lapses.
    const unfreed =
      pk && store
        ? await settleKey(store, pk, conversationId, null, new Date(), keyCut).then(
            () => undefined,
            (settleError: Error) => `${settleError.name}: ${settleError.message}`,
          )
        : undefined;
    throw storageUnavailable(error, input.request_id, unfreed);
  };
  if (pk && store) {
    const fingerprint = fingerprintOf(result.conversation);
    const claim = await store
      .claim(
        pk,
        {
          conversationId: result.conversation.conversation_id,
          requestId: requestIdentity(input),
          fingerprint,
          ...(mode === 'async' ? { responseMode: 'async' as const } : {}),
        },
        new Date(),
        cut,
      )
      .catch((error: unknown) => freeKey(result.conversation.conversation_id, error));
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
    // Another attempt of this Validate task claimed the key already: go on as that attempt's conversation.
    accepted = asClaimedConversation(result, claim.conversation_id);
  }
  const record = accepted.conversation;
  let budget: Budget;
  let started: Accepted;
  try {
    // The turn is taken now, so a thread's conversations are numbered in the order they arrived; for this request,
    // so that a retried attempt of this task gets the turn an earlier attempt took, not the next one.
    const conversation = await withThreadTurn(record, requestIdentity(input), cut);
    if (mode === 'async') {
      budget = asyncBudget(config);
      const statuses = conversationStatusStore();
      if (!statuses) throw new Error('no status store: set STATUS_TABLE_NAME or STATUS_DIR');
      await statuses.accept(runningStatus(record.conversation_id, source, new Date()), cut);
      started = { ...accepted, conversation, budget, thread: null };
    } else {
      const thread = await agentThreadOf(conversation, cut);
      budget = syncBudget(config, input.received_at, new Date(now()));
      started = { ...accepted, conversation, budget, thread };
    }
  } catch (error) {
    return freeKey(record.conversation_id, error);
  }
  recordSize(METRIC_NAMES.requestSize, record.metadata.request_size_bytes);
  logEvent('WEBHOOK_REQUEST_RECEIVED', started.conversation, {
    request_id: input.request_id,
    request_size_bytes: record.metadata.request_size_bytes,
    signed: accepted.signed,
    response_mode: mode,
    ...(started.conversation.metadata.thread_id
      ? { thread_id: started.conversation.metadata.thread_id, thread_turn: started.conversation.metadata.thread_turn }
      : {}),
  });
  if (mode === 'sync') logAgentInvoked(started, budget);
  return started;
}

/**
 * The accept workflow's FreeUnstartedKey (statemachine/accept.asl.json): neither the conversation's start nor its
 * export worked, and ExportNotStarted could not free its Idempotency-Key, so a retry with the same key would get 409
 * (or the 202 of a conversation that never ran) until the claim lapsed. It is freed here, if it is still this
 * conversation's claim, so that the caller's "send it again" is taken at once. A failure is the state's to catch.
 */
async function freeUnstartedKey(record: ConversationRecord): Promise<{ freed: boolean }> {
  const { source_system: source, idempotency_key: key } = record.metadata;
  const store = key ? idempotencyStore() : null;
  if (!key || !store) return { freed: false };
  const outcome = await settleKey(store, idempotencyPk(source, key), record.conversation_id, null, new Date());
  return { freed: outcome.settled };
}

/**
 * The run of an accepted conversation: Validate's work was done when it was accepted; the thread's earlier turns
 * are read now (those answered while this one waited to run count too), and the agent is invoked next. Nobody waits
 * for this run and a failure here would end it unexported: a thread store that cannot be read gives the agent the
 * thread without its history (`history_unavailable`), and the event says so.
 */
async function runAccepted(given: Carried<Accepted>): Promise<ValidateResult> {
  if (given?.valid !== true || given.duplicate !== false || !given.conversation?.conversation_id)
    throw new Error('Validate: `accepted` is not an accepted conversation');
  const accepted: Accepted = fullState(given);
  let thread: AgentThread | null;
  try {
    thread = await agentThreadOf(accepted.conversation);
  } catch (error) {
    const { thread_id: threadId, thread_turn: turn, source_system: source } = accepted.conversation.metadata;
    logger.error('Thread history unavailable: the agent gets the thread without its earlier turns', {
      event_type: THREAD_HISTORY_UNAVAILABLE_EVENT,
      conversation_id: accepted.conversation.conversation_id,
      thread_id: threadId,
      thread_turn: turn,
      error: `${(error as Error).name}: ${(error as Error).message}`,
    });
    thread = threadId && turn ? unavailableHistory(source, threadId, turn) : null;
  }
  const run: Accepted = { ...accepted, thread };
  if (run.budget) logAgentInvoked(run, run.budget);
  return run;
}

/**
 * The record with its turn in its thread (unchanged outside a thread), claimed for the request `requestId`
 * (requestIdentity): every attempt of this Validate task for one request gets the same turn (ThreadStore.claimTurn).
 */
async function withThreadTurn(
  record: ConversationRecord,
  requestId: string,
  signal: AbortSignal | undefined,
): Promise<ConversationRecord> {
  const threadId = record.metadata.thread_id;
  if (!threadId) return record;
  const turn = await threadStore().claimTurn(record.metadata.source_system, threadId, requestId, new Date(), signal);
  return { ...record, metadata: { ...record.metadata, thread_turn: turn } };
}

/** What the agent is given of the conversation's thread: its earlier turns within the bounds; null outside one. */
async function agentThreadOf(record: ConversationRecord, signal?: AbortSignal): Promise<AgentThread | null> {
  const { thread_id: threadId, thread_turn: turn, source_system: source } = record.metadata;
  if (!threadId || !turn) return null;
  const { turns, unreadable } = await threadStore().earlierTurns(source, threadId, turn, new Date(), undefined, signal);
  const ref = { thread_id: threadId, session_id: threadSessionId(source, threadId), turn };
  return agentThread(ref, turns, undefined, unreadable);
}

function unavailableHistory(source: string, threadId: string, turn: number): AgentThread {
  const ref = { thread_id: threadId, session_id: threadSessionId(source, threadId), turn };
  return { ...agentThread(ref, []), history_unavailable: true };
}

/** The workflow invokes the agent next (InvokeManagerAgent, a Step Functions task: no Lambda of ours logs there). */
function logAgentInvoked(started: Accepted, budget: Budget): void {
  logEvent('WEBHOOK_MANAGER_AGENT_INVOKED', started.conversation, {
    function_name: settings().agentFunctionName,
    agent_timeout_seconds: budget.agent_seconds,
  });
}

/**
 * A failed AWS call of Validate (a store or secret that refused it after the SDK's tries, or did not answer before
 * this Lambda's deadline: an SDK error, or an AbortError or TimeoutError) as StorageUnavailable, which both workflows
 * answer 503 STORAGE_UNAVAILABLE with Retry-After (statemachine/*.asl.json, ValidateStorageUnavailable), as the local
 * gateway answers its data folder refusing (docs/contract.md#errors). Any other error is returned as it is (a 500).
 * `unfreed`: why the key's release failed too (it stays claimed until the claim lapses).
 */
function storageUnavailable(error: unknown, requestId: string, unfreed?: string): unknown {
  const { name, message, $metadata } = error as { name?: string; message?: string; $metadata?: unknown };
  if ($metadata === undefined && name !== 'AbortError' && name !== 'TimeoutError') return error;
  logger.error('Validate could not use its stores or secrets: answered 503 STORAGE_UNAVAILABLE, nothing started', {
    event_type: 'WEBHOOK_REQUEST_REJECTED',
    code: 'STORAGE_UNAVAILABLE',
    request_id: requestId,
    error: `${name}: ${message}`,
    ...(unfreed ? { key_release_error: unfreed } : {}),
  });
  return Object.assign(new Error(`${name}: ${message}`), { name: STORAGE_UNAVAILABLE_ERROR });
}
