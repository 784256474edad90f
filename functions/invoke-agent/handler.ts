import { InvokeCommand, type InvokeCommandOutput } from '@aws-sdk/client-lambda';
import type { ConversationState } from '../domain/conversation.ts';
import { userQuery } from '../domain/conversation.ts';
import { AgentInvocationError, AgentTimeoutError } from '../domain/errors.ts';
import { withAgentAnswer } from '../domain/lifecycle.ts';
import { lambda } from '../shared/clients/lambda.ts';
import { logEvent, METRIC_NAMES, recordSize, recordTime } from '../shared/events.ts';
import { stageHandler } from '../shared/powertools.ts';
import { settings } from '../shared/settings.ts';

/**
 * The answer travels in the workflow's state (text and structured data) and Step Functions caps a state at 256 KB:
 * a larger answer would fail the execution with States.DataLimitExceeded and lose the record. Refuse it here
 * instead, so the conversation is exported as failed with the reason.
 */
export const MAX_AGENT_ANSWER_BYTES = 96 * 1024;
/**
 * The whole state once the answer is in it (the answer is kept as text and as data, beside a query of up to
 * 60 KB and 16 KB of metadata): at most this, leaving room under Step Functions' 256 KB for the classification,
 * the delivery attempts and errors the later states add.
 */
export const MAX_STATE_BYTES_WITH_ANSWER = 232 * 1024;

/** InvokeManagerAgent: one Invoke of MANAGER_AGENT_FUNCTION_NAME, timed; FunctionError and timeout become named errors. */
export const handler = stageHandler(
  'InvokeManagerAgent',
  async (state: ConversationState): Promise<ConversationState> => {
    const record = state.conversation;
    const { agentFunctionName: functionName, agentTimeoutMs: timeoutMs } = settings();
    const request = {
      query: userQuery(record),
      conversation_id: record.conversation_id,
      source_system: record.metadata.source_system,
      source_process: record.metadata.source_process,
      metadata: record.metadata.custom,
    };
    logEvent('WEBHOOK_MANAGER_AGENT_INVOKED', record, { function_name: functionName });
    const started = performance.now();
    let out: InvokeCommandOutput;
    try {
      out = await lambda.send(new InvokeCommand({ FunctionName: functionName, Payload: JSON.stringify(request) }), {
        abortSignal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      const e = error as Error;
      if (e.name === 'AbortError' || e.name === 'TimeoutError') {
        throw new AgentTimeoutError(`manager agent ${functionName} did not answer within ${timeoutMs} ms`);
      }
      // The SDK already retried throttling and 5xx (maxAttempts); what is left is the agent's failure.
      throw new AgentInvocationError(`invoking manager agent ${functionName} failed: ${e.name}: ${e.message}`);
    }
    const agentMs = Math.round(performance.now() - started);
    const text = out.Payload ? Buffer.from(out.Payload).toString('utf8') : '';
    if (!out.FunctionError && Buffer.byteLength(text) > MAX_AGENT_ANSWER_BYTES) {
      throw new AgentInvocationError(
        `manager agent ${functionName} answered ${Buffer.byteLength(text)} bytes, more than the ${MAX_AGENT_ANSWER_BYTES} a conversation can carry`,
      );
    }
    let payload: unknown = text;
    try {
      payload = text ? JSON.parse(text) : null;
    } catch {
      // a plain-text answer is still an answer
    }
    if (out.FunctionError) {
      const p = (payload ?? {}) as { errorType?: string; errorMessage?: string };
      throw new AgentInvocationError(
        `manager agent ${functionName} failed (${out.FunctionError}): ${p.errorType ?? 'Error'}: ${p.errorMessage ?? text.slice(0, 500)}`,
      );
    }
    if (payload === null || payload === '')
      throw new AgentInvocationError(`manager agent ${functionName} returned an empty answer`);
    recordTime(METRIC_NAMES.agentProcessingTime, agentMs);
    recordSize(METRIC_NAMES.responseSize, Buffer.byteLength(text));
    const updated = withAgentAnswer(record, payload, agentMs, new Date());
    const stateBytes = Buffer.byteLength(JSON.stringify({ ...state, conversation: updated }));
    if (stateBytes > MAX_STATE_BYTES_WITH_ANSWER) {
      throw new AgentInvocationError(
        `manager agent ${functionName} answered ${Buffer.byteLength(text)} bytes, which makes this conversation ${stateBytes} bytes, more than the ${MAX_STATE_BYTES_WITH_ANSWER} a workflow state can carry`,
      );
    }
    logEvent('WEBHOOK_MANAGER_AGENT_RESPONSE', updated, {
      agent_processing_time_ms: agentMs,
      response_size_bytes: Buffer.byteLength(text),
    });
    return { ...state, conversation: updated };
  },
);
