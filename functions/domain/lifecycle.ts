import { answerProblem, MAX_AGENT_ANSWER_DEPTH, nestedDeeperThan } from './agent-contract.ts';
import { nextAttemptNumber } from './attempt-log.ts';
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
  turnText,
  userQuery,
} from './conversation.ts';
import {
  deferredStatus,
  failedAttemptFromCaught,
  isDeferral,
  isLambdaRefusal,
  withDeferredAttempts,
} from './delivery.ts';
import { errorBody } from './gateway-contract.ts';
import { parseTaskError, type TaskFailure } from './task-error.ts';
import { wellFormedText, wellFormedValue } from './unicode.ts';

/**
 * Each workflow stage after Validate as a pure step over the conversation record; handlers do the I/O around them.
 * Validate's step, from a request to a record, is in intake.ts.
 */

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
  // Unpaired surrogates as U+FFFD (docs/contract.md#the-manager-agent), in the caller's response, the delivery, the
  // thread and the exports alike; an answer nested too deep to read recursively is refused by Classify as it is.
  const answer = nestedDeeperThan(pending.answer, MAX_AGENT_ANSWER_DEPTH)
    ? pending.answer
    : wellFormedValue(pending.answer).value;
  return withAgentAnswer(rest, answer, agentMs, answeredAt);
}

/**
 * Why the conversation cannot carry the answer still pending on `state` (null when it can, or none is pending): the
 * check Classify makes (answerProblem), for Deliver when Classify failed or timed out, so that an answer Classify would
 * have refused (empty, too deep, too large) is refused there too (AgentAnswerRejected: 502, exported as failed), never
 * delivered nor answered 200 (statemachine/conversation.asl.json, Deliver's Catch).
 */
export function pendingAnswerProblem(state: ConversationState, now: Date): string | null {
  const pending = state.conversation.pending_answer;
  if (!pending) return null;
  // What the later states carry: no thread history (Classify drops it), the answer recorded as the assistant turn.
  const { thread: _, ...carried } = state;
  return answerProblem(pending.answer, withPendingAnswer(state.conversation, now), carried);
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
        { stage, error: failure.error, message: keptMessage(failure.message), at: at.toISOString() },
      ],
    },
  };
}

/**
 * The most of an error's message the record keeps (and the caller's error body repeats, docs/contract.md "The
 * manager agent"): an agent's errorMessage may be as large as its whole answer may be, and the error travels in the
 * workflow's state, the export and the HTTP answer.
 */
export const MAX_ERROR_MESSAGE_CHARS = 2_000;

function keptMessage(given: string): string {
  // An agent's errorMessage is its text: unpaired surrogates as U+FFFD, as in its answer.
  const message = wellFormedText(given);
  if (message.length <= MAX_ERROR_MESSAGE_CHARS) return message;
  let end = MAX_ERROR_MESSAGE_CHARS;
  const last = message.charCodeAt(end - 1);
  if (last >= 0xd800 && last <= 0xdbff) end -= 1; // not half a surrogate pair
  return `${message.slice(0, end)}… (${message.length - end} more characters cut)`;
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

/** When a conversation whose delivery failed is closed: the time DeliveryFailed noted, else `now`. */
export function closingTime(failedAt: string | undefined, now: Date): Date {
  const at = failedAt === undefined ? Number.NaN : Date.parse(failedAt);
  return Number.isNaN(at) ? now : new Date(at);
}

/**
 * Export's view of how the conversation ended: the agent's failure (nothing delivered), a failed delivery (the
 * attempt the Catch stored, `retrying` while the schedule will try again, `failed` when it will not), or success. A
 * Deliver that Lambda would not run records no attempt: the refusal only, in the errors.
 */
export function closeConversation(
  state: ConversationState,
  executionName: string | null,
  at: Date,
): { record: ConversationRecord; agentFailed: boolean; answered: boolean; refused: string | null } {
  // A failed delivery closes it when it failed (DeliveryFailed), as its failed-delivery envelope does.
  const now = closingTime(state.delivery_failed?.at, at);
  // An answer still pending that Classify would have refused (Classify failed, then Lambda did not run Deliver, which
  // checks it too) is refused here as well: the conversation failed, as if Classify had refused it.
  const refused = state.agent_error || state.start_error ? null : pendingAnswerProblem(state, now);
  const agentFailed = state.agent_error !== undefined || state.start_error !== undefined || refused !== null;
  let record: ConversationRecord;
  if (agentFailed) {
    // An answer refused by Classify is not kept: the conversation failed.
    const { pending_answer: _, ...unanswered } = state.conversation;
    record = state.start_error
      ? withFailure(unanswered, NOT_STARTED_STAGE, parseTaskError(state.start_error), now)
      : withFailure(
          unanswered,
          'InvokeManagerAgent',
          // Recorded as Classify's refusal is (its error name).
          refused
            ? { error: 'AgentAnswerRejected', message: refused, payload: null }
            : parseTaskError(state.agent_error),
          now,
        );
  } else {
    record = settleAnswer(state.conversation, now);
  }
  if (state.classify_error) record = withFailure(record, 'Classify', parseTaskError(state.classify_error), now);
  // No answer to deliver: the agent failed, or the conversation was interrupted before it answered.
  const answered = !agentFailed && agentTurn(record) !== undefined;
  if (!answered) record = withDeliveryStatus(record, 'not_attempted');
  if (agentFailed && state.delivery_error) {
    // Nothing was delivered (there was no answer to deliver): why Deliver failed is kept, not an attempt.
    record = withFailure(record, 'Deliver', parseTaskError(state.delivery_error), now);
  } else if (state.delivery_error && isDeferral(state.delivery_error)) {
    // No attempt was made (the caller's deadline, or the receiver is held): nothing to record but the attempts of the
    // state's earlier tries, if any, and that the schedule will deliver it. A redelivery that was held leaves the
    // status as it was.
    record = withDeferredAttempts(record, state.delivery_error);
    if (!state.redelivery) record = withDeliveryStatus(record, deferredStatus(state.delivery_error));
  } else if (state.delivery_error && isLambdaRefusal(state.delivery_error.Error)) {
    // Lambda did not run Deliver (throttled, its service failing): no attempt was made, so none is recorded; the
    // refusal is noted in the errors. The conversation's delivery is queued (`retrying`, as its envelope says:
    // envelopeFromQueuedMessage); a redelivery's status stays as it was, and the schedule counts its run as a failed
    // one, using no slot (failed-delivery.ts, deliverRefused).
    record = withFailure(record, 'Deliver', parseTaskError(state.delivery_error), now);
    if (!state.redelivery) record = withDeliveryStatus(record, 'retrying');
  } else if (state.delivery_error) {
    // A Deliver that ran and ended badly (Lambda.Unknown, States.Timeout: it may have POSTed) carries no attempt: it
    // is recorded numbered after the record's last, as Deliver numbered it (not after how many the record has: an
    // envelope of a workflow's retries carries only the last one, attempt 4, and `2` would repeat a logged number).
    const { attempt, target } = failedAttemptFromCaught(state.delivery_error, nextAttemptNumber(record), now);
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
  if (!agentFailed && state.delivery_error && state.delivery_queue_error) {
    // The failed-delivery queue refused the envelope: no automatic attempt follows. Export logs it (alarm
    // DeliveriesUnqueued); `deliveries resend` delivers it (deliveryNeverQueued).
    record = withDeliveryStatus(record, 'failed');
    record = withFailure(record, 'QueueFailedDelivery', parseTaskError(state.delivery_queue_error), now);
  }
  return { record: completeConversation(record, agentFailed, executionName, now), agentFailed, answered, refused };
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
  why = 'the local gateway stopped (crash or kill)',
): ConversationRecord {
  const known = new Set(record.execution.delivery_attempts.map((a) => a.attempt));
  const interrupted = withFailure(
    record,
    stage,
    {
      error: INTERRUPTED_ERROR,
      message: `${why} during ${stage}; the conversation was closed when it restarted`,
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

/** What a synchronous caller whose agent ran out of time is told to do instead (docs/contract.md#errors). */
const SLOW_AGENT_HINT =
  ". For an agent that needs longer, send it again with 'Prefer: respond-async': 202 at once, then poll its status_url (the same Idempotency-Key starts it afresh)";

/**
 * How the workflow fails when the agent did: `AgentTimeout` (504 TIMEOUT) when InvokeManagerAgent ran out of its
 * budget (`agentSeconds`), else `AgentError` (502 AGENT_ERROR); the body names the conversation, which was exported
 * as failed. The error name and the body are the AgentFailed state's ErrorPath and CausePath. A conversation the local
 * gateway interrupted before the agent's answer was recorded (local/engine/recovery.ts) gets an INTERRUPTED body.
 */
export function agentFailure(
  record: ConversationRecord,
  agentSeconds?: number,
): { failure_error: 'AgentError' | 'AgentTimeout' | 'ConversationNotStarted'; failure_cause: string } {
  const extra = { conversation_id: record.conversation_id };
  if (record.execution.status === 'interrupted') {
    // Cut after the agent answered too, before its answer was recorded: the caller is not told the agent had not.
    const message = `The conversation was interrupted before the agent's answer was recorded: ${record.execution.errors.at(-1)?.message}. Send it again: it runs afresh, with the same Idempotency-Key too`;
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
    // A synchronous caller cannot poll this conversation (GET /conversations/{id} knows asynchronous ones only), and
    // the same request sent again times out again: it is told how an agent this slow is asked (docs/contract.md).
    const hint = record.metadata.response_mode === 'async' ? '' : SLOW_AGENT_HINT;
    return {
      failure_error: 'AgentTimeout',
      failure_cause: JSON.stringify(
        errorBody(
          'TIMEOUT',
          `The manager agent did not answer${within}; the conversation was recorded as failed${hint}`,
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
