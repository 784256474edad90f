import type { ConversationRecord, DeliveryAttempt } from './conversation.ts';
import { agentTurn, NOT_STARTED_STAGE } from './conversation.ts';
import type { EventType } from './observability.ts';

/**
 * A conversation's lifecycle as the event types of docs/contract.md#logs, for `conversation.json` (`execution.events`). Derived at
 * export time from what the record already holds — receive time, the agent's answer and timing, the classification,
 * every delivery attempt (redeliveries included) and the completion — so the workflow's state stays as small as it
 * was. In causal order: the request, the agent, the classification, the deliveries inside the conversation workflow,
 * the completion, the redeliveries after it, and the export that wrote this document.
 */
export interface LifecycleEvent {
  type: EventType;
  /** ISO 8601 UTC. */
  at: string;
  /** The workflow state that logged it. */
  state: string;
  webhook_type?: string | null;
  attempt?: number;
  via?: NonNullable<DeliveryAttempt['via']>;
  status_code?: number;
  error?: string;
  duration_ms?: number;
  status?: string;
  total_time_ms?: number | null;
  /** The execution whose Export wrote this document. */
  execution?: string | null;
}

/** Who writes the export: the workflow state (Export, or ExportFailedConversation when the agent failed) and its execution. */
export interface ExportOrigin {
  state: string;
  executionName: string | null;
}

const AGENT_STATE = 'InvokeManagerAgent';

function isoMinus(iso: string, ms: number | null): string {
  const t = Date.parse(iso);
  return Number.isNaN(t) || ms === null ? iso : new Date(t - ms).toISOString();
}

/** When an attempt's outcome was known: its start plus its duration. */
export function attemptEnd(a: DeliveryAttempt): string {
  const t = Date.parse(a.at);
  return Number.isNaN(t) ? a.at : new Date(t + a.duration_ms).toISOString();
}

function deliveryEvent(a: DeliveryAttempt): LifecycleEvent {
  return {
    type: a.outcome === 'delivered' ? 'WEBHOOK_DELIVERY_SUCCESS' : 'WEBHOOK_DELIVERY_FAILED',
    at: attemptEnd(a),
    state: 'Deliver',
    attempt: a.attempt,
    via: a.via ?? 'workflow',
    ...(a.status_code !== undefined ? { status_code: a.status_code } : {}),
    ...(a.error !== undefined ? { error: a.error } : {}),
    duration_ms: a.duration_ms,
  };
}

/** An attempt made inside the conversation workflow (before it closed), as opposed to a redelivery after it. */
function beforeCompletion(a: DeliveryAttempt, completedAt: string | null): boolean {
  if (a.via) return a.via === 'workflow';
  return completedAt === null || attemptEnd(a) <= completedAt;
}

export function lifecycleEvents(
  record: ConversationRecord,
  exportedAt: string,
  origin: ExportOrigin,
): LifecycleEvent[] {
  const { metadata, webhook_context: wc, execution } = record;
  const events: LifecycleEvent[] = [{ type: 'WEBHOOK_REQUEST_RECEIVED', at: metadata.received_at, state: 'Validate' }];

  const answer = agentTurn(record);
  const agentError = execution.errors.find((e) => e.stage === AGENT_STATE);
  if (answer) {
    events.push(
      {
        type: 'WEBHOOK_MANAGER_AGENT_INVOKED',
        at: isoMinus(answer.timestamp, execution.timings.agent_ms),
        state: AGENT_STATE,
      },
      {
        type: 'WEBHOOK_MANAGER_AGENT_RESPONSE',
        at: answer.timestamp,
        state: AGENT_STATE,
        duration_ms: execution.timings.agent_ms ?? undefined,
      },
    );
  } else if (agentError) {
    // The failure was recorded when the conversation closed, right after it; how long the agent took is known only
    // when the record carries it.
    events.push({
      type: 'WEBHOOK_MANAGER_AGENT_INVOKED',
      at: isoMinus(agentError.at, execution.timings.agent_ms),
      state: AGENT_STATE,
    });
  }

  if (wc.webhook_type !== null && !agentError) {
    const at = wc.classified_at ?? answer?.timestamp ?? metadata.received_at;
    events.push(
      { type: 'WEBHOOK_RESPONSE_CLASSIFIED', at, state: 'Classify', webhook_type: wc.webhook_type },
      { type: 'WEBHOOK_OUTBOUND_QUEUED', at, state: 'Classify', webhook_type: wc.webhook_type },
    );
  }

  const attempts = execution.delivery_attempts;
  const inWorkflow = attempts.filter((a) => beforeCompletion(a, execution.completed_at));
  const redeliveries = attempts.filter((a) => !beforeCompletion(a, execution.completed_at));
  events.push(...inWorkflow.map(deliveryEvent));

  if (execution.completed_at !== null) {
    events.push({
      type: 'WEBHOOK_CONVERSATION_COMPLETED',
      at: execution.completed_at,
      state: execution.errors.some((e) => e.stage === NOT_STARTED_STAGE)
        ? 'ExportNotStarted'
        : agentError
          ? 'ExportFailedConversation'
          : 'Export',
      status: execution.status,
      total_time_ms: execution.timings.total_ms,
    });
  }
  events.push(...redeliveries.map(deliveryEvent));
  events.push({
    type: 'WEBHOOK_CONVERSATION_EXPORTED',
    at: exportedAt,
    state: origin.state,
    execution: origin.executionName,
  });
  return events;
}
