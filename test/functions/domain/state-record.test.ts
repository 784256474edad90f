import { describe, expect, it } from 'vitest';
import {
  type ConversationRecord,
  fullRecord,
  fullState,
  leanRecord,
  leanState,
  withTurnTexts,
} from '../../../functions/domain/conversation.ts';
import { exportDocuments } from '../../../functions/domain/export-formats.ts';
import { envelopeFromMessage, readEnvelope, readRedeliveryOutput } from '../../../functions/domain/failed-delivery.ts';
import {
  closeConversation,
  completeConversation,
  withAgentAnswer,
  withFailure,
  withInterruption,
} from '../../../functions/domain/lifecycle.ts';
import { deliveredIn } from '../../../local/engine/redelivery.ts';
import { recordOf } from '../../../local/history/conversations.ts';
import { deliveredRecord, RECEIVED_AT, SEED_REQUEST, startedRecord } from '../../support/fixtures.ts';

/**
 * The record as the workflow's state carries it (leanRecord: its defaults and repeated fields left out, so that the
 * Express history logs fewer bytes, docs/performance.md §4) and read back whole (fullRecord): every reader gets the
 * record it would have had, and the exports are the same bytes.
 */
const AT = new Date('2025-08-13T10:30:47.000Z');
const EXPORTED_AT = '2025-08-13T10:30:50.000Z';

const threaded = startedRecord({ ...SEED_REQUEST, thread_id: 'q3-review', metadata: { team: 'emea' } });
/** Every shape a record takes on its way: fresh, answered, delivered, closed, failed, interrupted, odd requests. */
const RECORDS: Record<string, ConversationRecord> = {
  fresh: startedRecord(),
  'no request timestamp, no user agent, an Idempotency-Key': startedRecord(
    { query: 'q?', source_system: 'crm', source_process: 'nightly' },
    { input: { headers: { 'content-type': 'application/json', 'idempotency-key': 'k-1' } } },
  ),
  'in a thread, with metadata and a requested type': {
    ...threaded,
    metadata: { ...threaded.metadata, thread_turn: 2 },
    webhook_context: { ...threaded.webhook_context, requested_webhook_type: 'lead_analysis' },
  },
  answered: withAgentAnswer(startedRecord(), { response: 'Three deals.' }, 5, AT),
  delivered: deliveredRecord(startedRecord(), AT),
  'delivered and closed': completeConversation(deliveredRecord(startedRecord(), AT), false, 'exec-1', AT),
  'agent failed, closed': completeConversation(
    withFailure(startedRecord(), 'InvokeManagerAgent', { error: 'States.Timeout', message: 'late', payload: null }, AT),
    true,
    'exec-1',
    AT,
  ),
  interrupted: withInterruption(startedRecord(), 'InvokeManagerAgent', AT),
};

describe('the record in the workflow state (leanRecord) and read back (fullRecord)', () => {
  it.each(Object.entries(RECORDS))('%s: read back byte for byte, and exported as the same four files', (_, record) => {
    const lean = leanRecord(record);
    expect(JSON.stringify(fullRecord(lean))).toBe(JSON.stringify(record));
    expect(exportDocuments(fullRecord(lean), EXPORTED_AT)).toEqual(exportDocuments(record, EXPORTED_AT));
    // A second trip changes nothing either.
    expect(JSON.stringify(fullRecord(leanRecord(fullRecord(lean))))).toBe(JSON.stringify(record));
  });

  it('a fresh record leaves its nulls, empty lists and repeated fields out, and keeps what the workflow reads', () => {
    const record = startedRecord();
    const lean = leanRecord(record);
    expect(lean.metadata).not.toHaveProperty('conversation_id');
    for (const key of ['idempotency_key', 'thread_id', 'thread_turn']) expect(lean.metadata).not.toHaveProperty(key);
    for (const key of ['source_system', 'source_process', 'webhook_type', 'requested_webhook_type'])
      expect(lean.webhook_context).not.toHaveProperty(key);
    expect(lean.webhook_context).not.toHaveProperty('classification_reason');
    expect(lean.webhook_context).not.toHaveProperty('delivery_target');
    expect(lean.execution).toEqual({});
    expect(lean.metadata).not.toHaveProperty('channel');
    expect(lean.metadata).not.toHaveProperty('response_mode');
    expect(lean.conversation.turns[0]).toEqual({ role: 'user', content: SEED_REQUEST.query });
    // What InvokeManagerAgent's Parameters and the workflow's Choice states read by JSONPath stays.
    expect(lean).toMatchObject({
      conversation_id: record.conversation_id,
      metadata: { source_system: 'testing_system', source_process: 'phase3_validation', custom: {} },
      webhook_context: { delivery_status: 'pending', delivery_id: record.webhook_context.delivery_id },
    });
    expect(Buffer.byteLength(JSON.stringify(lean))).toBeLessThan(Buffer.byteLength(JSON.stringify(record)) * 0.75);
  });

  it('keeps a value that differs from what would be put back: a source of its own, a question dated otherwise', () => {
    const record = startedRecord({ query: 'q?', source_system: 'crm', source_process: 'nightly' });
    const odd: ConversationRecord = {
      ...record,
      metadata: { ...record.metadata, conversation_id: 'another', response_mode: 'async' },
      webhook_context: { ...record.webhook_context, source_system: 'other_system' },
      conversation: { turns: [{ role: 'user', content: 'q?', timestamp: '2025-01-01T00:00:00Z' }] },
      execution: {
        ...record.execution,
        started_at: '2025-01-01T00:00:01Z',
        timings: { ...record.execution.timings, agent_ms: 7 },
      },
    };
    const lean = leanRecord(odd);
    expect(lean.metadata.conversation_id).toBe('another');
    expect(lean.metadata.response_mode).toBe('async');
    expect(lean.webhook_context.source_system).toBe('other_system');
    expect(lean.conversation.turns[0]?.timestamp).toBe('2025-01-01T00:00:00Z');
    expect(lean.execution.started_at).toBe('2025-01-01T00:00:01Z');
    expect(lean.execution.timings).toEqual({ agent_ms: 7 });
    expect(JSON.stringify(fullRecord(lean))).toBe(JSON.stringify(odd));
  });

  it('a whole record (one the previous code put in a history or an envelope) reads as it is', () => {
    const record = completeConversation(deliveredRecord(startedRecord(), AT), false, 'exec-1', AT);
    expect(fullRecord(record)).toBe(record);
  });

  it('a record missing a part (a damaged or hand-made envelope) is returned as it is, not refused with a TypeError', () => {
    for (const partial of [
      { conversation_id: 'c1' },
      { conversation_id: 'c1', metadata: {}, webhook_context: {}, execution: {} },
      { conversation_id: 'c1', metadata: {}, webhook_context: {}, execution: {}, conversation: { turns: null } },
      { conversation_id: 'c1', metadata: null, webhook_context: {}, execution: {}, conversation: { turns: [] } },
    ]) {
      expect(fullRecord(partial as never)).toBe(partial);
    }
    // The retention sweep and the CLI read envelopes through readEnvelope: such an envelope reads, its record as stored.
    const envelope = { version: 1, conversation_id: 'c1', conversation: { conversation_id: 'c1' }, state: 'pending' };
    expect(readEnvelope(envelope)?.conversation).toEqual({ conversation_id: 'c1' });
  });

  it('the state: a stage works on the whole record and returns it lean, the rest of the state as it was', () => {
    const state = { conversation: startedRecord(), budget: { agent_seconds: 5, deliver_by: null, answer_by: null } };
    const lean = leanState(state);
    expect(lean.budget).toBe(state.budget);
    expect(fullState(lean)).toEqual(state);
    // A stage's work on the lean state is the same as on the whole one.
    const closed = closeConversation(fullState(lean), 'exec-1', AT).record;
    expect(closed).toEqual(closeConversation(state, 'exec-1', AT).record);
    expect(closed.execution.started_at).toBe(RECEIVED_AT);
  });

  describe('every reader of a record from the state, a history or an envelope gets it whole', () => {
    const closed = completeConversation(deliveredRecord(startedRecord(), AT), false, 'exec-1', AT);
    const failedDelivery = {
      kind: 'failed_delivery',
      delivery_error: { Error: 'DeliveryRetryableError', Cause: '{"errorMessage":"HTTP 503"}' },
      closed_at: AT.toISOString(),
      execution_name: 'exec-1',
    };

    it('a failed-delivery envelope made from QueueFailedDelivery or QueueFailedExport, and one read from the store', () => {
      const fresh = startedRecord();
      for (const message of [
        { ...failedDelivery, conversation: fresh },
        { kind: 'failed_export', conversation: closed, export_error: { Error: 'ExportError', Cause: 'S3 down' } },
      ]) {
        const whole = envelopeFromMessage(message, AT);
        const fromState = envelopeFromMessage({ ...message, conversation: leanRecord(message.conversation) }, AT);
        expect(JSON.stringify(fromState)).toBe(JSON.stringify(whole));
      }
      const stored = envelopeFromMessage({ ...failedDelivery, conversation: fresh }, AT)!;
      expect(readEnvelope({ ...stored, conversation: leanRecord(stored.conversation) })).toEqual(stored);
      expect(readEnvelope(stored)?.conversation).toBe(stored.conversation);
    });

    it("a redelivery's output (Export's record), and the record a redelivery state holds delivered", () => {
      expect(readRedeliveryOutput(leanRecord(closed))).toEqual({ record: closed });
      const exportError = { Error: 'ExportError', Cause: 'S3 down' };
      const fresh = completeConversation(startedRecord(), true, 'exec-1', AT);
      expect(readRedeliveryOutput({ conversation: leanRecord(fresh), export_error: exportError })).toEqual({
        record: fresh,
        exportError,
      });
      expect(deliveredIn({ conversation: leanRecord(closed) })).toEqual(closed);
      expect(deliveredIn({ conversation: leanRecord(startedRecord()) })).toBeNull();
    });

    it('an execution history (the local console and CLI): its last record, whole', () => {
      const execution = {
        execution_name: 'exec-1',
        state_machine: 'conversation',
        status: 'SUCCEEDED' as const,
        started_at: RECEIVED_AT,
        stopped_at: AT.toISOString(),
        input: {},
        events: [
          {
            type: 'StateExited',
            timestamp: 1,
            state: 'Validate',
            output: { conversation: leanRecord(startedRecord()) },
          },
          { type: 'StateExited', timestamp: 2, state: 'Export', result: { conversation: leanRecord(closed) } },
        ],
      };
      // With its turns' texts written out, as recordOf gives every record (withTurnTexts).
      expect(JSON.stringify(recordOf(execution))).toBe(JSON.stringify(withTurnTexts(closed)));
    });
  });
});
