import {
  type ConversationRecord,
  fullRecord,
  type StateRecord,
  userQuery,
  withTurnTexts,
} from '../../functions/domain/conversation.ts';
import { KEY_PATTERN } from '../../functions/domain/idempotency.ts';
import { INTERRUPTED_ERROR } from '../../functions/domain/lifecycle.ts';
import type { ExecutionRecord } from '../engine/engine.ts';
import type { FilterableConversation } from './conversation-filters.ts';

/**
 * The latest conversation record an execution produced: the last state result, output or input that carries one
 * (Export's output is only the caller's response; its result, the task's own output, has the closed record), whole
 * (fullRecord: the state carries it without its defaults) and with its turns' texts written out as an export has them.
 */
export function recordOf(execution: ExecutionRecord): ConversationRecord | null {
  for (let i = execution.events.length - 1; i >= 0; i--) {
    const event = execution.events[i]!;
    for (const data of [event.result, event.output, event.input]) {
      const candidate = data as { conversation?: StateRecord; state?: { conversation?: StateRecord } } | undefined;
      const record = candidate?.conversation ?? candidate?.state?.conversation;
      if (record?.conversation_id) return withTurnTexts(fullRecord(record));
    }
  }
  return null;
}

/** A row of `conversations list`: what the filters look at, and a little more. */
export interface ConversationSummary extends FilterableConversation {
  idempotency_key: string | null;
  webhook_id: string | null;
  total_time_ms: number | null;
  executions: number;
  query: string;
  recovered: boolean;
}

/**
 * The latest record any of a conversation's executions carries (the original and every redelivery). An execution
 * that FAILED with its record still `in_progress` was failed by an error no Catch handles (States.DataLimitExceeded:
 * docs/contract.md#the-manager-agent): nothing will close, deliver or export it, so its record is shown `failed`,
 * with that error, and a delivery still `pending` as `not_attempted`.
 */
export function latestRecord(executions: ExecutionRecord[]): ConversationRecord | null {
  for (const execution of [...executions].reverse()) {
    const record = recordOf(execution);
    if (record) return execution.status === 'FAILED' ? endedUnclosed(record, execution) : record;
  }
  return null;
}

function endedUnclosed(record: ConversationRecord, execution: ExecutionRecord): ConversationRecord {
  if (record.execution.status !== 'in_progress') return record;
  const stage = execution.events.findLast((e) => e.type === 'StateEntered')?.state ?? 'unknown';
  const context = record.webhook_context;
  return {
    ...record,
    execution: {
      ...record.execution,
      status: 'failed',
      errors: [
        ...record.execution.errors,
        { stage, error: execution.error ?? 'Unknown', message: execution.cause ?? '', at: execution.stopped_at },
      ],
    },
    webhook_context: {
      ...context,
      delivery_status: context.delivery_status === 'pending' ? 'not_attempted' : context.delivery_status,
    },
  };
}

/**
 * The inbound `webhook-id` a conversation's request carried (trimmed), from the execution input that holds the
 * request's headers (the conversation workflow's, or the accept workflow's for an asynchronous start), or null.
 */
export function inboundWebhookId(executions: readonly ExecutionRecord[]): string | null {
  for (const execution of executions) {
    const id = (execution.input as { headers?: Record<string, unknown> } | null)?.headers?.['webhook-id'];
    if (typeof id === 'string' && KEY_PATTERN.test(id.trim())) return id.trim();
  }
  return null;
}

export function summarize(conversationId: string, executions: ExecutionRecord[]): ConversationSummary | null {
  const latest = executions.at(-1);
  const record = latestRecord(executions);
  if (!latest || !record) return null;
  return {
    conversation_id: conversationId,
    received_at: record.metadata.received_at,
    source_system: record.metadata.source_system,
    source_process: record.metadata.source_process,
    webhook_type: record.webhook_context.webhook_type,
    // RUNNING: a run still under way (engine/running.ts) shows its record's status, as an accepted one does.
    status:
      latest.status === 'SUCCEEDED' || latest.status === 'FAILED' || latest.status === 'RUNNING'
        ? record.execution.status
        : latest.status.toLowerCase(),
    delivery_status: record.webhook_context.delivery_status,
    total_time_ms: record.execution.timings.total_ms,
    executions: executions.length,
    query: userQuery(record),
    thread_id: record.metadata.thread_id ?? null,
    thread_turn: record.metadata.thread_turn ?? null,
    idempotency_key: record.metadata.idempotency_key ?? null,
    webhook_id: inboundWebhookId(executions),
    recovered: recoveredAfterStop(executions),
  };
}

/**
 * Whether a stop of the gateway cut one of the conversation's executions and the next start's recovery finished it
 * (local/engine/recovery.ts): resumed (its history has ExecutionResumed), started again (`restart`), or closed with the
 * cut state marked GatewayInterrupted.
 */
export function recoveredAfterStop(executions: readonly ExecutionRecord[]): boolean {
  return executions.some(
    (execution) =>
      execution.restart !== undefined ||
      execution.events.some((e) => e.type === 'ExecutionResumed' || e.error === INTERRUPTED_ERROR),
  );
}
