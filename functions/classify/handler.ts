import { answerProblem } from '../domain/agent-contract.ts';
import { fullState, leanState, type WorkflowState } from '../domain/conversation.ts';
import { AgentAnswerRejected } from '../domain/errors.ts';
import { withClassification, withPendingAnswer } from '../domain/lifecycle.ts';
import { wellFormedValue } from '../domain/unicode.ts';
import { logEvent, METRIC_NAMES, recordSize, recordTime } from '../shared/events.ts';
import { stageHandler } from '../shared/powertools.ts';

/** The state as Validate left it: with what it told the IsRequestValid choice (functions/domain/intake.ts). */
type ValidatedState = WorkflowState & { valid?: boolean; duplicate?: boolean; error?: null; signed?: boolean };

export interface ClassifyInput {
  state: WorkflowState;
  /** When the workflow entered Classify (`$$.State.EnteredTime`): the moment the agent's answer arrived. */
  answered_at: string;
}

/**
 * Classify: record the agent's pending answer as the assistant turn (the agent's time: from InvokeManagerAgent's
 * entry to `answered_at`), refuse an answer the conversation cannot carry (AgentAnswerRejected: exported as failed),
 * then pick webhook_type (the request's own wins) and record why; the delivery is then queued. The state it returns
 * no longer carries the thread history Validate gave the agent.
 */
export const handler = stageHandler(
  'Classify',
  async ({ state: given, answered_at }: ClassifyInput): Promise<WorkflowState> => {
    // The thread's earlier turns were for the agent: the later states carry only the record's thread_id and turn. What
    // Validate told IsRequestValid is not carried further either (every later event of the history would log it).
    const { thread: _t, valid: _v, duplicate: _d, error: _e, signed: _s, ...rest } = given as ValidatedState;
    const state = fullState(rest);
    const now = new Date();
    const parsed = new Date(answered_at);
    const answeredAt = Number.isNaN(parsed.getTime()) ? now : parsed;
    const pending = state.conversation.pending_answer;
    let record = withPendingAnswer(state.conversation, answeredAt);
    if (pending) {
      const problem = answerProblem(pending.answer, record, state);
      if (problem) throw new AgentAnswerRejected(problem);
      const agentMs = record.execution.timings.agent_ms ?? 0;
      const size = Buffer.byteLength(JSON.stringify(pending.answer));
      recordTime(METRIC_NAMES.agentProcessingTime, agentMs);
      recordSize(METRIC_NAMES.responseSize, size);
      // Written as U+FFFD in the record (withPendingAnswer): say how many, so the change is on record.
      const { replaced } = wellFormedValue(pending.answer);
      logEvent('WEBHOOK_MANAGER_AGENT_RESPONSE', record, {
        agent_processing_time_ms: agentMs,
        response_size_bytes: size,
        ...(replaced > 0 ? { unpaired_surrogates_replaced: replaced } : {}),
      });
    }
    record = withClassification(record, now);
    logEvent('WEBHOOK_RESPONSE_CLASSIFIED', record, {
      classification_reason: record.webhook_context.classification_reason,
    });
    logEvent('WEBHOOK_OUTBOUND_QUEUED', record, { delivery_id: record.webhook_context.delivery_id });
    return leanState({ ...state, conversation: record });
  },
);
