import { describe, expect, it } from 'vitest';
import type { ConversationRecord, DeliveryAttempt } from '../../../functions/domain/conversation.ts';
import { envelopeFromQueuedMessage } from '../../../functions/domain/failed-delivery.ts';
import {
  closeConversation,
  completeConversation,
  withAgentAnswer,
  withClassification,
  withDeliveryAttempt,
} from '../../../functions/domain/lifecycle.ts';
import { lifecycleEvents } from '../../../functions/domain/lifecycle-events.ts';
import { EVENT_TYPES } from '../../../functions/domain/observability.ts';
import { RECEIVED_AT, startedRecord } from '../../support/fixtures.ts';

const ANSWERED_AT = new Date('2025-08-13T10:30:47.000Z');
const CLASSIFIED_AT = new Date('2025-08-13T10:30:47.020Z');
const EXPORT = { state: 'Export', executionName: 'exec-1' };

function attempt(
  n: number,
  at: string,
  outcome: DeliveryAttempt['outcome'],
  extra: Partial<DeliveryAttempt> = {},
): DeliveryAttempt {
  return { attempt: n, at, duration_ms: 40, outcome, via: 'workflow', ...extra };
}

function classified(): ConversationRecord {
  return withClassification(
    withAgentAnswer(startedRecord(), { response: 'Three deals close.' }, 1800, ANSWERED_AT),
    CLASSIFIED_AT,
  );
}

const summary = (events: ReturnType<typeof lifecycleEvents>) => events.map((e) => [e.type, e.at, e.state]);

describe('lifecycle events of an exported conversation', () => {
  it('a delivered conversation: the nine-step path in order, each with its time and the state that logged it', () => {
    let r = withDeliveryAttempt(
      classified(),
      attempt(1, '2025-08-13T10:30:47.100Z', 'delivered', { status_code: 200 }),
      'https://h',
      'delivered',
    );
    r = completeConversation(r, false, 'exec-1', new Date('2025-08-13T10:30:47.300Z'));
    const events = lifecycleEvents(r, '2025-08-13T10:30:47.300Z', EXPORT);
    expect(summary(events)).toEqual([
      ['WEBHOOK_REQUEST_RECEIVED', RECEIVED_AT, 'Validate'],
      ['WEBHOOK_MANAGER_AGENT_INVOKED', '2025-08-13T10:30:45.200Z', 'InvokeManagerAgent'],
      ['WEBHOOK_MANAGER_AGENT_RESPONSE', '2025-08-13T10:30:47.000Z', 'InvokeManagerAgent'],
      ['WEBHOOK_RESPONSE_CLASSIFIED', '2025-08-13T10:30:47.020Z', 'Classify'],
      ['WEBHOOK_OUTBOUND_QUEUED', '2025-08-13T10:30:47.020Z', 'Classify'],
      ['WEBHOOK_DELIVERY_SUCCESS', '2025-08-13T10:30:47.140Z', 'Deliver'],
      ['WEBHOOK_CONVERSATION_COMPLETED', '2025-08-13T10:30:47.300Z', 'Export'],
      ['WEBHOOK_CONVERSATION_EXPORTED', '2025-08-13T10:30:47.300Z', 'Export'],
    ]);
    expect(events[2]).toMatchObject({ duration_ms: 1800 });
    expect(events[3]).toMatchObject({ webhook_type: 'deal_analysis' });
    expect(events[5]).toMatchObject({ attempt: 1, via: 'workflow', status_code: 200, duration_ms: 40 });
    expect(events[6]).toMatchObject({ status: 'completed', total_time_ms: 2300 });
    expect(events[7]).toMatchObject({ execution: 'exec-1' });
  });

  it('uses only the event types of the contract, and their times never go backwards', () => {
    let r = withDeliveryAttempt(
      classified(),
      attempt(1, '2025-08-13T10:30:47.100Z', 'retryable', { status_code: 503 }),
      'https://h',
      'retrying',
    );
    r = completeConversation(r, false, 'exec-1', new Date('2025-08-13T10:30:47.300Z'));
    r = withDeliveryAttempt(
      r,
      attempt(2, '2025-08-13T10:30:52.300Z', 'delivered', { via: 'schedule', status_code: 200 }),
      'https://h',
      'delivered',
    );
    const events = lifecycleEvents(r, '2025-08-13T10:30:52.400Z', { state: 'Export', executionName: 'redelivery-1' });
    for (const e of events) expect(EVENT_TYPES).toContain(e.type);
    const times = events.map((e) => Date.parse(e.at));
    expect(times).toEqual([...times].sort((a, b) => a - b));
  });

  it('a redelivery: the failed attempt before the completion, the scheduled one after it, then the export that wrote the document', () => {
    // Deliver's Catch hands the failed attempt to the envelope, which closes the record (as the workflow does).
    const failedAttempt = attempt(1, '2025-08-13T10:30:47.100Z', 'retryable', { status_code: 503, error: 'HTTP 503' });
    const cause = JSON.stringify({ message: 'HTTP 503', target: 'https://h', attempt: failedAttempt });
    const { conversation } = envelopeFromQueuedMessage(
      {
        kind: 'failed_delivery',
        conversation: classified(),
        delivery_error: { Error: 'DeliveryRetryableError', Cause: cause },
        execution_name: 'exec-1',
      },
      new Date('2025-08-13T10:30:47.200Z'),
    );
    const redelivered = withDeliveryAttempt(
      conversation,
      attempt(conversation.execution.delivery_attempts.length + 1, '2025-08-13T10:35:47.200Z', 'delivered', {
        via: 'schedule',
        status_code: 200,
      }),
      'https://h',
      'delivered',
    );
    const { record } = closeConversation(
      { conversation: redelivered, redelivery: { via: 'schedule', status_if_failed: 'retrying' } },
      'exec-1-redelivery-1',
      new Date('2025-08-13T10:35:47.400Z'),
    );
    const events = lifecycleEvents(record, '2025-08-13T10:35:47.400Z', {
      state: 'Export',
      executionName: 'exec-1-redelivery-1',
    });
    expect(events.map((e) => e.type).slice(5)).toEqual([
      'WEBHOOK_DELIVERY_FAILED',
      'WEBHOOK_CONVERSATION_COMPLETED',
      'WEBHOOK_DELIVERY_SUCCESS',
      'WEBHOOK_CONVERSATION_EXPORTED',
    ]);
    expect(events[5]).toMatchObject({ via: 'workflow', status_code: 503, error: 'HTTP 503' });
    expect(events[6]).toMatchObject({ at: '2025-08-13T10:30:47.200Z' });
    expect(events[7]).toMatchObject({ via: 'schedule', status_code: 200, at: '2025-08-13T10:35:47.240Z' });
    expect(events[8]).toMatchObject({ execution: 'exec-1-redelivery-1', at: '2025-08-13T10:35:47.400Z' });
  });

  it('an agent failure: invoked, then closed by ExportFailedConversation; no answer, no classification, no delivery', () => {
    const { record } = closeConversation(
      { conversation: startedRecord(), agent_error: { Error: 'AgentTimeoutError', Cause: 'no answer in 20000 ms' } },
      'exec-1',
      new Date('2025-08-13T10:31:05.000Z'),
    );
    const events = lifecycleEvents(record, '2025-08-13T10:31:05.000Z', {
      state: 'ExportFailedConversation',
      executionName: 'exec-1',
    });
    expect(summary(events)).toEqual([
      ['WEBHOOK_REQUEST_RECEIVED', RECEIVED_AT, 'Validate'],
      ['WEBHOOK_MANAGER_AGENT_INVOKED', '2025-08-13T10:31:05.000Z', 'InvokeManagerAgent'],
      ['WEBHOOK_CONVERSATION_COMPLETED', '2025-08-13T10:31:05.000Z', 'ExportFailedConversation'],
      ['WEBHOOK_CONVERSATION_EXPORTED', '2025-08-13T10:31:05.000Z', 'ExportFailedConversation'],
    ]);
    expect(events[2]).toMatchObject({ status: 'failed' });
  });

  it('a delivery deferred to the schedule: queued, completed, then delivered by the schedule', () => {
    const r = completeConversation(classified(), false, 'exec-1', new Date('2025-08-13T10:31:09.000Z'));
    const later = withDeliveryAttempt(
      r,
      attempt(1, '2025-08-13T10:31:14.000Z', 'delivered', { via: 'schedule' }),
      'https://h',
      'delivered',
    );
    const types = lifecycleEvents(later, '2025-08-13T10:31:14.100Z', EXPORT).map((e) => e.type);
    expect(types.slice(4)).toEqual([
      'WEBHOOK_OUTBOUND_QUEUED',
      'WEBHOOK_CONVERSATION_COMPLETED',
      'WEBHOOK_DELIVERY_SUCCESS',
      'WEBHOOK_CONVERSATION_EXPORTED',
    ]);
  });

  it('a record classified before classified_at was kept dates the classification at the answer', () => {
    const old = withClassification(withAgentAnswer(startedRecord(), 'Sure.', 10, ANSWERED_AT));
    expect(old.webhook_context.classified_at).toBeUndefined();
    const events = lifecycleEvents(
      completeConversation(old, false, 'x', ANSWERED_AT),
      ANSWERED_AT.toISOString(),
      EXPORT,
    );
    expect(events.find((e) => e.type === 'WEBHOOK_RESPONSE_CLASSIFIED')?.at).toBe(ANSWERED_AT.toISOString());
  });

  it('an attempt without `via` (a Catch with no payload) is placed by its time against the completion', () => {
    let r = withDeliveryAttempt(
      classified(),
      attempt(1, '2025-08-13T10:30:47.100Z', 'retryable', { via: undefined }),
      null,
      'retrying',
    );
    r = completeConversation(r, false, 'exec-1', new Date('2025-08-13T10:30:48.000Z'));
    r = withDeliveryAttempt(r, attempt(2, '2025-08-13T10:30:53.000Z', 'permanent', { via: undefined }), null, 'failed');
    const types = lifecycleEvents(r, '2025-08-13T10:30:53.100Z', EXPORT).map((e) => e.type);
    expect(types.slice(5)).toEqual([
      'WEBHOOK_DELIVERY_FAILED',
      'WEBHOOK_CONVERSATION_COMPLETED',
      'WEBHOOK_DELIVERY_FAILED',
      'WEBHOOK_CONVERSATION_EXPORTED',
    ]);
  });
});
