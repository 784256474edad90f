import { describe, expect, it } from 'vitest';
import { answerText, type DeliveryAttempt, turnText, withTurnTexts } from '../../../functions/domain/conversation.ts';
import { isConversationId } from '../../../functions/domain/conversation-id.ts';
import { deliveryIdFor } from '../../../functions/domain/delivery-id.ts';
import {
  answerToDuplicate,
  asClaimedConversation,
  fingerprintOf,
  startConversation,
} from '../../../functions/domain/intake.ts';
import {
  agentFailure,
  closeConversation,
  completeConversation,
  MAX_ERROR_MESSAGE_CHARS,
  settleAnswer,
  successBody,
  withAgentAnswer,
  withClassification,
  withDeliveryAttempt,
  withFailure,
  withInterruption,
  withPendingAnswer,
} from '../../../functions/domain/lifecycle.ts';
import { DELIVERY_ID, executionInput, RECEIVED_AT, SEED_REQUEST, startedRecord } from '../../support/fixtures.ts';

const SEED_ID = 'webhook_20250813_103045_testing_phase3valid_abc123';
const AGENT_AT = new Date('2025-08-13T10:30:47.000Z');
const DONE_AT = new Date('2025-08-13T10:30:47.500Z');

function deliveredAttempt(overrides: Partial<DeliveryAttempt> = {}): DeliveryAttempt {
  return {
    attempt: 1,
    at: '2025-08-13T10:30:47.100Z',
    duration_ms: 230,
    status_code: 200,
    outcome: 'delivered',
    via: 'workflow',
    ...overrides,
  };
}

describe('startConversation', () => {
  it('builds the initial record from a valid request', () => {
    const request = { ...SEED_REQUEST, metadata: { crm_id: 'opp-1' } };
    const input = executionInput(request);
    const result = startConversation(input, { suffix: 'abc123' });
    expect(result).toEqual({
      valid: true,
      duplicate: false,
      error: null,
      signed: false,
      conversation: {
        conversation_id: SEED_ID,
        metadata: {
          conversation_id: SEED_ID,
          channel: 'webhook',
          source_system: 'testing_system',
          source_process: 'phase3_validation',
          request_timestamp: '2025-08-13T10:30:45Z',
          received_at: RECEIVED_AT,
          request_id: 'req-123',
          source_ip: '203.0.113.7',
          user_agent: 'vitest-agent/1.0',
          request_size_bytes: Buffer.byteLength(input.body),
          idempotency_key: null,
          custom: { crm_id: 'opp-1' },
          response_mode: 'sync',
          thread_id: null,
          thread_turn: null,
        },
        webhook_context: {
          source_system: 'testing_system',
          source_process: 'phase3_validation',
          webhook_type: null,
          requested_webhook_type: null,
          classification_reason: null,
          delivery_status: 'pending',
          delivery_id: deliveryIdFor({
            conversationId: SEED_ID,
            sourceSystem: 'testing_system',
            idempotencyKey: null,
            fingerprint: '',
          }),
          delivery_target: null,
        },
        conversation: { turns: [{ role: 'user', content: SEED_REQUEST.query, timestamp: '2025-08-13T10:30:45Z' }] },
        execution: {
          status: 'in_progress',
          started_at: RECEIVED_AT,
          completed_at: null,
          timings: { agent_ms: null, delivery_ms: null, total_ms: null },
          delivery_attempts: [],
          errors: [],
          executions: [],
        },
      },
    });
  });

  it('defaults what the minimal request leaves out', () => {
    const r = startedRecord(
      { query: '  hi  ', source_system: 'crm', source_process: 'sync' },
      { input: { headers: {} } },
    );
    expect(r.metadata.request_timestamp).toBeNull();
    expect(r.metadata.user_agent).toBeNull();
    expect(r.metadata.custom).toEqual({});
    expect(r.conversation.turns).toEqual([{ role: 'user', content: 'hi', timestamp: RECEIVED_AT }]);
  });

  it('records the requested webhook_type', () => {
    expect(
      startedRecord({ ...SEED_REQUEST, webhook_type: 'lead_analysis' }).webhook_context.requested_webhook_type,
    ).toBe('lead_analysis');
  });

  it('measures the request size in bytes', () => {
    const r = startedRecord({ ...SEED_REQUEST, query: 'Wie läuft’s? 🙂' });
    const body = JSON.stringify({ ...SEED_REQUEST, query: 'Wie läuft’s? 🙂' });
    expect(r.metadata.request_size_bytes).toBe(Buffer.byteLength(body));
    expect(r.metadata.request_size_bytes).toBeGreaterThan(body.length);
  });

  it('takes the id’s time from received_at, not from the request timestamp', () => {
    const r = startedRecord(
      { ...SEED_REQUEST, timestamp: '2020-01-01T00:00:00Z' },
      { input: { received_at: '2025-08-13T12:30:45+02:00' } },
    );
    expect(r.conversation_id).toBe(SEED_ID);
  });

  it('generates a random id suffix when none is given', () => {
    const a = startConversation(executionInput(SEED_REQUEST));
    const b = startConversation(executionInput(SEED_REQUEST));
    if (!a.valid || !b.valid) throw new Error('expected valid');
    expect(isConversationId(a.conversation.conversation_id)).toBe(true);
    expect(a.conversation.conversation_id).toMatch(/^webhook_20250813_103045_testing_phase3valid_[a-z0-9]{10}$/);
    expect(a.conversation.conversation_id).not.toBe(b.conversation.conversation_id);
  });

  it('still builds a valid id when received_at is unusable', () => {
    const r = startedRecord(undefined, { input: { received_at: 'garbage' } });
    expect(isConversationId(r.conversation_id)).toBe(true);
  });

  it('rejects an invalid request with a VALIDATION_ERROR body carrying the details', () => {
    const result = startConversation(
      executionInput({ query: ' ', source_system: '../x', source_process: 'p', extra: 1 }),
    );
    expect(result.valid).toBe(false);
    if (result.valid) return;
    expect(result.code).toBe('VALIDATION_ERROR');
    const body = JSON.parse(result.rejection);
    expect(body.success).toBe(false);
    expect(body.error.code).toBe('VALIDATION_ERROR');
    expect(body.error.message).toMatch(/^Request validation failed/);
    expect(body.error.details.map((d: { field: string }) => d.field).sort()).toEqual([
      'extra',
      'query',
      'source_system',
    ]);
  });

  it('rejects malformed JSON with INVALID_JSON', () => {
    const result = startConversation(executionInput('{"query": "truncated'));
    expect(result.valid).toBe(false);
    if (result.valid) return;
    expect(result.code).toBe('INVALID_JSON');
    expect(JSON.parse(result.rejection)).toMatchObject({
      success: false,
      error: { code: 'INVALID_JSON', details: [] },
    });
  });
});

describe('answerText', () => {
  it.each([
    ['a string', 'plain', 'plain'],
    ['response', { response: 'r', answer: 'a' }, 'r'],
    ['answer', { answer: 'a', content: 'c' }, 'a'],
    ['content', { content: 'c' }, 'c'],
    ['body', { body: 'b' }, 'b'],
    ['message', { message: 'm' }, 'm'],
    ['text', { text: 't' }, 't'],
    ['nested', { response: { data: 1, answer: { text: 'deep' } } }, 'deep'],
    ['an empty nested object falls through', { response: {}, message: 'm' }, 'm'],
    ['no text', { score: 1 }, ''],
    ['null', null, ''],
    ['a number: its JSON text', 42, '42'],
    ['a boolean: its JSON text', false, 'false'],
    ['an array: its JSON text', [1, { a: 'b' }], '[1,{"a":"b"}]'],
    ['a number or an array inside an object is not text', { response: 42, answer: [1], message: 'm' }, 'm'],
  ])('%s', (_label, payload, expected) => {
    expect(answerText(payload)).toBe(expected);
  });
});

describe('withAgentAnswer', () => {
  it('appends the assistant turn with the full payload (its text not copied beside it) and records agent_ms, without mutating the input', () => {
    const before = startedRecord();
    const snapshot = structuredClone(before);
    const payload = { response: 'Three deals close this quarter.', deals: [1, 2, 3] };
    const after = withAgentAnswer(before, payload, 1800, AGENT_AT);
    expect(after.conversation.turns).toEqual([
      before.conversation.turns[0],
      { role: 'assistant', timestamp: AGENT_AT.toISOString(), data: payload },
    ]);
    expect(turnText(after.conversation.turns[1])).toBe('Three deals close this quarter.');
    expect(withTurnTexts(after).conversation.turns[1]).toEqual({
      role: 'assistant',
      content: 'Three deals close this quarter.',
      timestamp: AGENT_AT.toISOString(),
      data: payload,
    });
    // A plain-text answer is its own text; a turn written with its content (an older record) keeps it.
    expect(turnText(withAgentAnswer(before, 'Sure.', 1, AGENT_AT).conversation.turns[1])).toBe('Sure.');
    expect(turnText({ role: 'assistant', content: 'kept', timestamp: '', data: { response: 'other' } })).toBe('kept');
    expect(after.execution.timings).toEqual({ agent_ms: 1800, delivery_ms: null, total_ms: null });
    expect(before).toEqual(snapshot);
  });
});

describe('withClassification', () => {
  it('classifies from the query', () => {
    const r = withClassification(withAgentAnswer(startedRecord(), 'Sure.', 1, AGENT_AT));
    expect(r.webhook_context.webhook_type).toBe('deal_analysis');
    expect(r.webhook_context.classification_reason).toContain('query:"deals"');
  });

  it('uses the agent’s answer', () => {
    const r = withClassification(
      withAgentAnswer(startedRecord({ ...SEED_REQUEST, query: 'Anything new?' }), 'Your MQLs doubled.', 1, AGENT_AT),
    );
    expect(r.webhook_context.webhook_type).toBe('lead_analysis');
    expect(r.webhook_context.classification_reason).toContain('answer:"mqls"');
  });

  it('lets the requested type win', () => {
    const r = withClassification(
      withAgentAnswer(startedRecord({ ...SEED_REQUEST, webhook_type: 'general' }), 'deals', 1, AGENT_AT),
    );
    expect(r.webhook_context.webhook_type).toBe('general');
    expect(r.webhook_context.classification_reason).toBe('the request asked for webhook_type general');
  });

  it('falls back to general', () => {
    const r = withClassification(startedRecord({ ...SEED_REQUEST, query: 'Hello there' }));
    expect(r.webhook_context.webhook_type).toBe('general');
  });
});

describe('withDeliveryAttempt', () => {
  it('appends the attempt, sets status, target and delivery_ms', () => {
    const r = withDeliveryAttempt(startedRecord(), deliveredAttempt(), 'https://hooks.example.com/deals', 'delivered');
    expect(r.execution.delivery_attempts).toEqual([deliveredAttempt()]);
    expect(r.webhook_context.delivery_status).toBe('delivered');
    expect(r.webhook_context.delivery_target).toBe('https://hooks.example.com/deals');
    expect(r.execution.timings.delivery_ms).toBe(230);
  });

  it('accumulates attempts in order and keeps the target when a later call has none', () => {
    let r = startedRecord();
    r = withDeliveryAttempt(
      r,
      deliveredAttempt({ attempt: 1, at: '2025-08-13T10:30:47.100Z', status_code: 503, outcome: 'retryable' }),
      'https://t',
      'retrying',
    );
    r = withDeliveryAttempt(
      r,
      deliveredAttempt({ attempt: 2, at: '2025-08-13T10:30:48.100Z', duration_ms: 99 }),
      null,
      'delivered',
    );
    expect(r.execution.delivery_attempts.map((a) => a.attempt)).toEqual([1, 2]);
    expect(r.webhook_context.delivery_target).toBe('https://t');
    expect(r.webhook_context.delivery_status).toBe('delivered');
    expect(r.execution.timings.delivery_ms).toBe(99);
  });

  it('does not record the same attempt twice (re-run safe)', () => {
    const a = deliveredAttempt({ outcome: 'permanent', status_code: 404 });
    const once = withDeliveryAttempt(startedRecord(), a, 'https://t', 'failed');
    const twice = withDeliveryAttempt(once, { ...a }, 'https://t', 'failed');
    expect(twice.execution.delivery_attempts).toHaveLength(1);
    expect(twice).toEqual(once);
  });
});

describe('withFailure', () => {
  it('appends an error entry', () => {
    const r = withFailure(
      startedRecord(),
      'InvokeManagerAgent',
      { error: 'AgentTimeoutError', message: 'late', payload: null },
      AGENT_AT,
    );
    expect(r.execution.errors).toEqual([
      { stage: 'InvokeManagerAgent', error: 'AgentTimeoutError', message: 'late', at: AGENT_AT.toISOString() },
    ]);
  });

  it("keeps at most MAX_ERROR_MESSAGE_CHARS of a message, saying how much was cut (an agent's 300 KB errorMessage)", () => {
    // Before, the whole message was kept: a 300 KB errorMessage went into the export and the caller's 502 body.
    const r = withFailure(
      startedRecord(),
      'InvokeManagerAgent',
      { error: 'BigError', message: 'e'.repeat(300_000), payload: null },
      AGENT_AT,
    );
    const kept = r.execution.errors[0]!.message;
    expect(kept).toBe(
      `${'e'.repeat(MAX_ERROR_MESSAGE_CHARS)}… (${300_000 - MAX_ERROR_MESSAGE_CHARS} more characters cut)`,
    );
    const body = agentFailure(r, 20).failure_cause;
    expect(body.length).toBeLessThan(MAX_ERROR_MESSAGE_CHARS + 300);
    // Never half a surrogate pair.
    const emoji = withFailure(
      startedRecord(),
      'InvokeManagerAgent',
      { error: 'E', message: `${'x'.repeat(MAX_ERROR_MESSAGE_CHARS - 1)}😀tail`, payload: null },
      AGENT_AT,
    );
    expect(emoji.execution.errors[0]!.message).toBe(
      `${'x'.repeat(MAX_ERROR_MESSAGE_CHARS - 1)}… (6 more characters cut)`,
    );
  });
});

describe('completeConversation', () => {
  it('completes with total time and the execution name', () => {
    const r = completeConversation(startedRecord(), false, 'exec-1', DONE_AT);
    expect(r.execution.status).toBe('completed');
    expect(r.execution.completed_at).toBe(DONE_AT.toISOString());
    expect(r.execution.timings.total_ms).toBe(2500);
    expect(r.execution.executions).toEqual(['exec-1']);
  });

  it('fails when the agent failed', () => {
    expect(completeConversation(startedRecord(), true, 'exec-1', DONE_AT).execution.status).toBe('failed');
  });

  it('a failed conversation stays failed when it is closed again (a re-export by a redelivery)', () => {
    const failed = completeConversation(startedRecord(), true, 'exec-1', DONE_AT);
    const again = completeConversation(failed, false, 'exec-1-redelivery', new Date(DONE_AT.getTime() + 60_000));
    expect(again.execution).toMatchObject({ status: 'failed', completed_at: failed.execution.completed_at });
    expect(
      completeConversation(completeConversation(startedRecord(), false, 'e', DONE_AT), false, 'r', DONE_AT).execution
        .status,
    ).toBe('completed');
  });

  it('records each execution name once and accepts no name', () => {
    let r = completeConversation(startedRecord(), false, 'exec-1', DONE_AT);
    r = completeConversation(r, false, 'exec-1', DONE_AT);
    r = completeConversation(r, false, null, DONE_AT);
    r = completeConversation(r, false, 'redrive-1', DONE_AT);
    expect(r.execution.executions).toEqual(['exec-1', 'redrive-1']);
  });

  it('never reports a negative total time', () => {
    expect(
      completeConversation(startedRecord(), false, null, new Date('2025-08-13T10:00:00Z')).execution.timings.total_ms,
    ).toBe(0);
  });
});

describe('successBody', () => {
  function finished(payload: unknown, requested?: string) {
    let r = startedRecord(requested ? { ...SEED_REQUEST, webhook_type: requested } : { ...SEED_REQUEST });
    r = withAgentAnswer(r, payload, 1800, AGENT_AT);
    r = withClassification(r);
    r = withDeliveryAttempt(r, deliveredAttempt(), 'https://t', 'delivered');
    return completeConversation(r, false, 'exec-1', DONE_AT);
  }

  it('has success, the conversation id, the agent response and tracking', () => {
    const payload = { response: 'Three deals close this quarter.', deals: [] };
    expect(successBody(finished(payload))).toEqual({
      success: true,
      conversation_id: SEED_ID,
      response: payload,
      tracking: {
        conversation_id: SEED_ID,
        delivery_id: DELIVERY_ID,
        webhook_type: 'deal_analysis',
        delivery_status: 'delivered',
        processing_time_ms: 2500,
      },
    });
  });

  it('wraps a plain-text answer as {content}', () => {
    expect(successBody(finished('plain answer')).response).toEqual({ content: 'plain answer' });
  });

  it('reports the requested type in tracking', () => {
    expect(successBody(finished('x', 'data_analysis')).tracking.webhook_type).toBe('data_analysis');
  });

  it('reports a failed delivery', () => {
    let r = withAgentAnswer(startedRecord(), 'x', 1, AGENT_AT);
    r = withDeliveryAttempt(r, deliveredAttempt({ status_code: 410, outcome: 'permanent' }), 'https://t', 'failed');
    expect(successBody(completeConversation(r, false, null, DONE_AT)).tracking.delivery_status).toBe('failed');
  });
});

describe("agentFailure (the AgentFailed state's error and cause)", () => {
  it('is AgentError with an AGENT_ERROR body naming the last agent error and the conversation', () => {
    const r = withFailure(
      startedRecord(),
      'InvokeManagerAgent',
      { error: 'KeyError', message: "'opportunities'", payload: null },
      AGENT_AT,
    );
    const failure = agentFailure(r, 20);
    expect(failure.failure_error).toBe('AgentError');
    expect(JSON.parse(failure.failure_cause)).toEqual({
      success: false,
      error: {
        code: 'AGENT_ERROR',
        message: "The manager agent failed: KeyError: 'opportunities'",
        conversation_id: SEED_ID,
      },
    });
  });

  it('is AgentTimeout with a TIMEOUT body when the agent ran out of its budget, telling a synchronous caller to ask asynchronously', () => {
    const r = withFailure(
      startedRecord(),
      'InvokeManagerAgent',
      { error: 'States.Timeout', message: '', payload: null },
      AGENT_AT,
    );
    expect(agentFailure(r, 17)).toEqual({
      failure_error: 'AgentTimeout',
      failure_cause: JSON.stringify({
        success: false,
        error: {
          code: 'TIMEOUT',
          message:
            "The manager agent did not answer within 17 s; the conversation was recorded as failed. For an agent that needs longer, send it again with 'Prefer: respond-async': 202 at once, then poll its status_url (the same Idempotency-Key starts it afresh)",
          conversation_id: SEED_ID,
        },
      }),
    });
  });

  it('tells an asynchronous conversation that timed out no more than that (it was asked asynchronously)', () => {
    const started = startedRecord();
    const r = withFailure(
      { ...started, metadata: { ...started.metadata, response_mode: 'async' } },
      'InvokeManagerAgent',
      { error: 'States.Timeout', message: '', payload: null },
      AGENT_AT,
    );
    expect(JSON.parse(agentFailure(r, 120).failure_cause).error.message).toBe(
      'The manager agent did not answer within 120 s; the conversation was recorded as failed',
    );
  });

  it('tells a conversation the local gateway interrupted around its agent that the answer was not recorded (it may have come), and to send it again', () => {
    // Cut after the agent answered, before its answer was journaled (or by a data folder that refused that line):
    // "before the agent answered" told the caller the agent had not, when it had.
    const r = withInterruption(startedRecord(), 'InvokeManagerAgent', AGENT_AT);
    expect(JSON.parse(agentFailure(r).failure_cause).error).toEqual({
      code: 'INTERRUPTED',
      message:
        "The conversation was interrupted before the agent's answer was recorded: the local gateway stopped (crash or kill) during InvokeManagerAgent; the conversation was closed when it restarted. Send it again: it runs afresh, with the same Idempotency-Key too",
      conversation_id: SEED_ID,
    });
  });

  it('says unknown error when none was recorded', () => {
    expect(JSON.parse(agentFailure(startedRecord()).failure_cause).error.message).toBe(
      'The manager agent failed: unknown error',
    );
  });
});

describe('the pending answer (InvokeManagerAgent keeps it on the record; Classify, else Deliver or Export, records it)', () => {
  const invokedAt = '2025-08-13T10:30:45.500Z';
  const pending = () => ({
    ...startedRecord(),
    pending_answer: { answer: { response: 'Top deals: Acme' }, invoked_at: invokedAt },
  });

  it("withPendingAnswer records it as the assistant turn, timed from the agent state's entry, and drops it", () => {
    const r = withPendingAnswer(pending(), AGENT_AT);
    expect(r.pending_answer).toBeUndefined();
    expect(r.conversation.turns.at(-1)).toEqual({
      role: 'assistant',
      timestamp: AGENT_AT.toISOString(),
      data: { response: 'Top deals: Acme' },
    });
    expect(turnText(r.conversation.turns.at(-1))).toBe('Top deals: Acme');
    expect(r.execution.timings.agent_ms).toBe(1_500);
    expect(withPendingAnswer(startedRecord(), AGENT_AT)).toEqual(startedRecord());
  });

  it('settleAnswer also classifies when Classify did not (it failed), and leaves a settled record alone', () => {
    const settled = settleAnswer(pending(), AGENT_AT);
    expect(settled.webhook_context.webhook_type).toBe('deal_analysis');
    expect(settled.pending_answer).toBeUndefined();
    expect(settleAnswer(settled, DONE_AT)).toBe(settled);
  });

  it('closeConversation records a pending answer and a Classify failure; drops the answer when the agent failed', () => {
    const classifyError = { Error: 'Lambda.Unknown', Cause: 'The cause could not be determined' };
    const { record } = closeConversation({ conversation: pending(), classify_error: classifyError }, 'exec-1', DONE_AT);
    expect(record.conversation.turns).toHaveLength(2);
    expect(record.execution.errors).toEqual([expect.objectContaining({ stage: 'Classify', error: 'Lambda.Unknown' })]);
    expect(record.execution.status).toBe('completed');
    const refused = closeConversation(
      { conversation: pending(), agent_error: { Error: 'AgentAnswerRejected', Cause: 'too large' } },
      'exec-1',
      DONE_AT,
    ).record;
    expect(refused.pending_answer).toBeUndefined();
    expect(refused.conversation.turns).toHaveLength(1);
    expect(refused.execution.status).toBe('failed');
  });

  it('closeConversation: a failed delivery the queue refused is failed (no automatic attempt follows), both errors kept', () => {
    const attempt = {
      attempt: 1,
      at: DONE_AT.toISOString(),
      duration_ms: 3,
      outcome: 'retryable',
      status_code: 503,
    } as const;
    const { record } = closeConversation(
      {
        conversation: settleAnswer(pending(), AGENT_AT),
        delivery_error: { Error: 'DeliveryRetryableError', Cause: JSON.stringify({ message: 'HTTP 503', attempt }) },
        delivery_queue_error: { Error: 'SQS.SqsException', Cause: 'Service Unavailable' },
      },
      'exec-1',
      DONE_AT,
    );
    expect(record.webhook_context.delivery_status).toBe('failed');
    expect(record.execution.errors.map((e) => e.stage)).toEqual(['Deliver', 'QueueFailedDelivery']);
  });
});

describe('closeConversation (what Export records)', () => {
  const at = new Date('2025-08-13T10:30:50Z');
  const answered = () => withClassification(withAgentAnswer(startedRecord(), { response: 'deals' }, 5, at));

  it('success: completed, delivery status as Deliver left it, execution named, total time set', () => {
    const delivered = withDeliveryAttempt(
      answered(),
      { attempt: 1, at: at.toISOString(), duration_ms: 9, outcome: 'delivered', status_code: 200 },
      'https://x.example/h',
      'delivered',
    );
    const { record, agentFailed } = closeConversation({ conversation: delivered }, 'exec-1', at);
    expect(agentFailed).toBe(false);
    expect(record.execution).toMatchObject({ status: 'completed', executions: ['exec-1'], errors: [] });
    expect(record.webhook_context.delivery_status).toBe('delivered');
    expect(record.execution.timings.total_ms).toBe(5000);
  });

  it('a deferred delivery (no attempt made, the caller could not wait): retrying, no attempt and no error recorded', () => {
    const Cause = JSON.stringify({ message: 'no time left', target: 'https://x.example/h' });
    const { record } = closeConversation(
      { conversation: answered(), delivery_error: { Error: 'DeliveryDeferredError', Cause } },
      'exec-1',
      at,
    );
    expect(record.webhook_context.delivery_status).toBe('retrying');
    expect(record.execution.delivery_attempts).toEqual([]);
    expect(record.execution.errors).toEqual([]);
    expect(record.execution.status).toBe('completed');
  });

  it('agent failure: failed, nothing delivered, the error recorded', () => {
    const { record, agentFailed } = closeConversation(
      { conversation: startedRecord(), agent_error: { Error: 'States.Timeout', Cause: 'did not answer' } },
      'exec-1',
      at,
    );
    expect(agentFailed).toBe(true);
    expect(record.execution.status).toBe('failed');
    expect(record.webhook_context.delivery_status).toBe('not_attempted');
    expect(record.execution.errors).toEqual([
      expect.objectContaining({ stage: 'InvokeManagerAgent', error: 'States.Timeout', message: 'did not answer' }),
    ]);
  });

  it.each([
    ['DeliveryRetryableError', 'retryable', undefined, 'retrying'],
    ['DeliveryRetryableError', 'retryable', { via: 'schedule', status_if_failed: 'failed' }, 'failed'],
    ['DeliveryPermanentError', 'permanent', undefined, 'failed'],
  ] as const)(
    'failed delivery (%s, %s, %j) → %s, with the attempt and its target',
    (name, outcome, redelivery, status) => {
      const attempt = { attempt: 1, at: at.toISOString(), duration_ms: 3, outcome, status_code: 503 } as const;
      const Cause = JSON.stringify({ message: 'HTTP 503', attempt, target: 'https://x.example/h' });
      const state = {
        conversation: answered(),
        delivery_error: { Error: name, Cause },
        ...(redelivery ? { redelivery } : {}),
      };
      const { record } = closeConversation(state, 'exec-1', at);
      expect(record.webhook_context).toMatchObject({ delivery_status: status, delivery_target: 'https://x.example/h' });
      expect(record.execution.delivery_attempts).toEqual([attempt]);
      expect(record.execution.errors.at(-1)).toMatchObject({ stage: 'Deliver', error: name });
    },
  );

  it.each(['Lambda.Unknown', 'States.Timeout'])(
    'a redelivery whose Deliver ran and ended badly (%s, no attempt carried): numbered after the last attempt',
    (name) => {
      // The envelope of the workflow's four tries carries only the last: attempt 4. Before: numbered 2 (one more than
      // the record has), a number the attempt log already has for the second try.
      const last = {
        attempt: 4,
        at: at.toISOString(),
        duration_ms: 3,
        outcome: 'retryable',
        status_code: 503,
      } as const;
      const conversation = withDeliveryAttempt(answered(), last, 'https://x.example/h', 'retrying');
      const delivery_error = { Error: name, Cause: 'The cause could not be determined' };
      const redelivery = { via: 'schedule', status_if_failed: 'retrying' } as const;
      const { record } = closeConversation({ conversation, delivery_error, redelivery }, 'exec-1-redelivery-5', at);
      expect(record.execution.delivery_attempts.map((a) => a.attempt)).toEqual([4, 5]);
    },
  );

  it.each([
    [{ via: 'schedule', status_if_failed: 'failed' }, 'retrying', 'retrying'],
    [{ via: 'redrive', status_if_failed: 'failed' }, 'failed', 'failed'],
    [{ via: 'resend', status_if_failed: 'failed' }, 'delivered', 'delivered'],
  ] as const)(
    'a redelivery (%j) whose Deliver Lambda would not run: no attempt, the status as it was (%s → %s), the refusal noted',
    (redelivery, before, after) => {
      // Before: a 0 ms attempt the receiver never got, and `failed` on the schedule's last slot.
      const earlier = {
        attempt: 1,
        at: at.toISOString(),
        duration_ms: 3,
        outcome: 'retryable',
        status_code: 503,
      } as const;
      const conversation = withDeliveryAttempt(answered(), earlier, 'https://x.example/h', before);
      const delivery_error = { Error: 'Lambda.ServiceException', Cause: 'Service unavailable' };
      const { record } = closeConversation({ conversation, delivery_error, redelivery }, 'exec-1-redelivery-2', at);
      expect(record.webhook_context.delivery_status).toBe(after);
      expect(record.execution.delivery_attempts).toEqual([earlier]);
      expect(record.execution.errors.at(-1)).toMatchObject({
        stage: 'Deliver',
        error: 'Lambda.ServiceException',
        message: 'Service unavailable',
      });
    },
  );
});

describe('asClaimedConversation (a retried Validate whose first attempt claimed the key)', () => {
  const input = executionInput(SEED_REQUEST, { headers: { 'idempotency-key': 'k-1' } });
  const first = startConversation(input, { suffix: 'first00001' });
  const retry = startConversation(input, { suffix: 'retry00002' });

  it('goes on under the conversation id the first attempt chose, with the same delivery id; the same id changes nothing', () => {
    if (!first.valid || !retry.valid) throw new Error('fixture rejected');
    const claimed = asClaimedConversation(retry, first.conversation.conversation_id);
    expect(claimed).toEqual(first);
    expect(asClaimedConversation(first, first.conversation.conversation_id)).toBe(first);
  });
});

describe('answerToDuplicate (a request whose idempotency key is taken)', () => {
  const record = startedRecord();
  const fingerprint = fingerprintOf(record);
  const taken = {
    pk: 'p',
    conversation_id: 'webhook_first',
    request_fingerprint: fingerprint,
    created_at: '',
    expires_at: 0,
  };

  it('a retry of a finished conversation gets its stored answer', () => {
    expect(
      answerToDuplicate(
        { ...taken, status: 'completed', response: '{"success":true,"conversation_id":"webhook_first"}' },
        fingerprint,
      ),
    ).toEqual({
      valid: true,
      duplicate: true,
      error: null,
      conversation_id: 'webhook_first',
      response: { success: true, conversation_id: 'webhook_first' },
    });
  });

  it('a retry while the first still runs gets 409 IDEMPOTENCY_CONFLICT', () => {
    expect(answerToDuplicate({ ...taken, status: 'in_progress' }, fingerprint)).toMatchObject({
      valid: false,
      error: 'IdempotencyConflict',
      code: 'IDEMPOTENCY_CONFLICT',
    });
  });

  it('another request under the same key is refused, running or finished; an old record without a fingerprint is trusted', () => {
    const other = fingerprintOf({ ...record, metadata: { ...record.metadata, custom: { x: 1 } } });
    expect(other).not.toBe(fingerprint);
    for (const status of ['in_progress', 'completed'] as const) {
      const answer = answerToDuplicate({ ...taken, status, response: '{}' }, other);
      expect(answer).toMatchObject({ valid: false, error: 'ValidationError', code: 'IDEMPOTENCY_KEY_REUSED' });
      expect(JSON.parse((answer as { rejection: string }).rejection).error.conversation_id).toBe('webhook_first');
    }
    const { request_fingerprint: _, ...old } = taken;
    expect(answerToDuplicate({ ...old, status: 'completed', response: '{}' }, other)).toMatchObject({
      valid: true,
      duplicate: true,
    });
  });
  it('an asynchronous retry of an asynchronous start gets the same 202 (running or not); of a synchronous one, its answer or 409', () => {
    const async = { mode: 'async' as const, sourceSystem: 'testing_system' };
    const accepted = { accepted: { conversation_id: 'webhook_first', source_system: 'testing_system' } };
    for (const status of ['in_progress', 'completed'] as const)
      expect(answerToDuplicate({ ...taken, status, response_mode: 'async' }, fingerprint, async)).toEqual({
        valid: true,
        duplicate: true,
        error: null,
        conversation_id: 'webhook_first',
        response: accepted,
      });
    expect(answerToDuplicate({ ...taken, status: 'in_progress' }, fingerprint, async)).toMatchObject({
      code: 'IDEMPOTENCY_CONFLICT',
    });
    // A synchronous retry of an asynchronous start: it cannot wait for a running one (409), gets a finished one's answer.
    expect(answerToDuplicate({ ...taken, status: 'in_progress', response_mode: 'async' }, fingerprint)).toMatchObject({
      code: 'IDEMPOTENCY_CONFLICT',
    });
    expect(
      answerToDuplicate({ ...taken, status: 'completed', response_mode: 'async', response: '{"a":1}' }, fingerprint),
    ).toMatchObject({ duplicate: true, response: { a: 1 } });
  });
});

describe('an API key bound to its source (SOURCE_API_KEY_IDS: key id → canonical source)', () => {
  const keys = { k1: 'testing_system', k2: 'crm_sync_2' };
  const start = (
    body: object,
    apiKeyId: string,
    mode: 'sync' | 'async' = 'sync',
    known: Record<string, string> = keys,
  ) => startConversation(executionInput(body, { api_key_id: apiKeyId }), {}, undefined, mode, known);

  it('lets a key post as its own source, however the body spells it', () => {
    expect(start(SEED_REQUEST, 'k1').valid).toBe(true);
    expect(start({ ...SEED_REQUEST, source_system: 'CRM.Sync-2' }, 'k2').valid).toBe(true);
    expect(start(SEED_REQUEST, 'k1', 'async').valid).toBe(true);
  });

  it('refuses, 403 SOURCE_MISMATCH, another source’s key or a key no source owns, in both modes, before the signature', () => {
    // Unsigned: were the signature checked first, this would be 401 INVALID_SIGNATURE.
    const signedOnly = { secrets: {}, requireSignature: true };
    for (const [id, message] of [
      ['k2', /belongs to source system crm_sync_2: it may only act as that source/],
      ['unknown-key', /belongs to no configured source_system/],
    ] as const) {
      for (const mode of ['sync', 'async'] as const) {
        const result = startConversation(executionInput(SEED_REQUEST, { api_key_id: id }), {}, signedOnly, mode, keys);
        expect(result).toMatchObject({ valid: false, error: 'SourceMismatch', code: 'SOURCE_MISMATCH' });
        expect(JSON.parse((result as { rejection: string }).rejection).error.message).toMatch(message);
      }
    }
  });

  it('checks nothing when no keys are configured or the request came without one', () => {
    expect(start(SEED_REQUEST, 'k2', 'sync', {}).valid).toBe(true);
    expect(start(SEED_REQUEST, '').valid).toBe(true);
  });
});
