import { describe, expect, it } from 'vitest';
import { nextAttemptNumber } from '../../../functions/domain/attempt-log.ts';
import type { DeliveryAttempt } from '../../../functions/domain/conversation.ts';
import { attemptError, failedAttemptFromCaught, holdError } from '../../../functions/domain/delivery.ts';
import {
  applyRedelivery,
  attemptsMade,
  DEFAULT_RETRY_SCHEDULE_MS,
  envelopeFromMessage,
  envelopeFromQueuedExport,
  envelopeFromQueuedMessage,
  givenUpRecord,
  isDue,
  MAX_FAILED_RUNS,
  owedBy,
  parseSchedule,
  readEnvelope,
  readRedeliveryOutput,
  redeliveryContext,
  redeliveryExecutionName,
  settleRedelivery,
  withFailedRun,
  withLoggedAttempts,
} from '../../../functions/domain/failed-delivery.ts';
import {
  closeConversation,
  completeConversation,
  withAgentAnswer,
  withClassification,
  withDeliveryAttempt,
} from '../../../functions/domain/lifecycle.ts';
import { startedRecord } from '../../support/fixtures.ts';

const NOW = new Date('2025-08-13T10:31:00Z');
const TARGET = 'https://crm.example.com/hooks/deals';

function attempt(outcome: DeliveryAttempt['outcome'], extra: Partial<DeliveryAttempt> = {}): DeliveryAttempt {
  return {
    attempt: 1,
    at: NOW.toISOString(),
    duration_ms: 12,
    outcome,
    status_code: outcome === 'permanent' ? 410 : 503,
    error: 'HTTP x',
    ...extra,
  };
}

function queued(a: DeliveryAttempt) {
  const record = withClassification(withAgentAnswer(startedRecord(), { response: 'deals' }, 5, NOW));
  const error = attemptError(a, TARGET);
  return {
    kind: 'failed_delivery' as const,
    conversation: record,
    delivery_error: { Error: error.name, Cause: error.message },
    execution_name: 'exec-1',
  };
}

describe('the Svix schedule', () => {
  it('defaults to 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h', () => {
    expect(DEFAULT_RETRY_SCHEDULE_MS).toEqual([
      5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000,
    ]);
    expect(parseSchedule(undefined)).toBe(DEFAULT_RETRY_SCHEDULE_MS);
    expect(parseSchedule('5s,5m,30m,2h,5h,10h,10h')).toEqual(DEFAULT_RETRY_SCHEDULE_MS);
  });

  it('parses bare milliseconds and rejects nonsense with the offending part', () => {
    expect(parseSchedule('1, 250, 1.5s')).toEqual([1, 250, 1500]);
    expect(() => parseSchedule('5s,soon')).toThrow(/"soon" is not a duration/);
    expect(() => parseSchedule('0.4ms')).toThrow(/"0.4ms" is no wait/);
  });
});

describe('envelopeFromQueuedMessage', () => {
  it('a retryable failure waits for the first slot, with the record closed and the attempt appended', () => {
    const envelope = envelopeFromQueuedMessage(queued(attempt('retryable')), NOW);
    expect(envelope).toMatchObject({
      state: 'pending',
      scheduled_attempts: 0,
      target: TARGET,
      webhook_type: 'deal_analysis',
      delivery_id: expect.any(String),
    });
    expect(envelope.next_due_at).toBe(new Date(NOW.getTime() + 5_000).toISOString());
    expect(envelope.conversation.webhook_context.delivery_status).toBe('retrying');
    expect(envelope.conversation.execution).toMatchObject({
      status: 'completed',
      completed_at: NOW.toISOString(),
      executions: ['exec-1'],
    });
    expect(envelope.attempts).toHaveLength(1);
  });

  it("keeps the record as the workflow's Export closes it, the Deliver failure in its errors", () => {
    for (const outcome of ['retryable', 'permanent'] as const) {
      const message = queued(attempt(outcome));
      const envelope = envelopeFromQueuedMessage(message, NOW);
      const exported = closeConversation(
        { conversation: message.conversation, delivery_error: message.delivery_error },
        'exec-1',
        NOW,
      ).record;
      // Before: the Deliver failure was missing, so the export a redelivery rewrote from it lost what the first had.
      expect(envelope.conversation.execution.errors.map((e) => e.stage)).toEqual(['Deliver']);
      expect(envelope.conversation).toEqual(exported);
    }
  });

  it('a permanent failure is dead at once', () => {
    const envelope = envelopeFromQueuedMessage(queued(attempt('permanent')), NOW);
    expect(envelope).toMatchObject({ state: 'dead', dead_reason: 'permanent', next_due_at: null });
    expect(envelope.conversation.webhook_context.delivery_status).toBe('failed');
  });

  it('Retry-After later than the slot wins', () => {
    const envelope = envelopeFromQueuedMessage(queued(attempt('retryable', { retry_after_ms: 60_000 })), NOW);
    expect(envelope.next_due_at).toBe(new Date(NOW.getTime() + 60_000).toISOString());
  });

  it('a Retry-After of a month is capped at a day', () => {
    const envelope = envelopeFromQueuedMessage(queued(attempt('retryable', { retry_after_ms: 30 * 86_400_000 })), NOW);
    expect(envelope.next_due_at).toBe(new Date(NOW.getTime() + 86_400_000).toISOString());
  });

  it('reads the attempt from the AWS Lambda error shape too', () => {
    const message = queued(attempt('retryable'));
    const aws = {
      Error: message.delivery_error.Error,
      Cause: JSON.stringify({
        errorType: message.delivery_error.Error,
        errorMessage: message.delivery_error.Cause,
        trace: [],
      }),
    };
    expect(failedAttemptFromCaught(aws, 1, NOW).target).toBe(TARGET);
    expect(envelopeFromQueuedMessage({ ...message, delivery_error: aws }, NOW).state).toBe('pending');
  });
});

describe('a delivery queued with its answer still pending (Classify failed, then Lambda did not run Deliver)', () => {
  /** The envelope QueueFailedDelivery sends then: the record as Classify left it, the answer unrecorded. */
  const throttled = (answer: unknown) => ({
    kind: 'failed_delivery' as const,
    conversation: {
      ...startedRecord(),
      pending_answer: { answer, invoked_at: new Date(NOW.getTime() - 2_000).toISOString() },
    },
    delivery_error: { Error: 'Lambda.TooManyRequestsException', Cause: 'Rate Exceeded.' },
    execution_name: 'exec-1',
  });

  it('pending for the first slot, the answer still to be checked and recorded by the redelivery’s Deliver', () => {
    for (const answer of [{ response: 'deals' }, { response: ' ' }]) {
      const env = envelopeFromQueuedMessage(throttled(answer), NOW);
      expect(env).toMatchObject({ state: 'pending' });
      expect(env.conversation.pending_answer?.answer).toEqual(answer);
    }
  });

  it('a redelivery whose Deliver refused the answer (its Export wrote the conversation failed) settles the envelope', () => {
    const env = envelopeFromQueuedMessage(queued(attempt('retryable')), NOW);
    const failed = {
      ...env.conversation,
      execution: { ...env.conversation.execution, status: 'failed' as const },
      webhook_context: { ...env.conversation.webhook_context, delivery_status: 'not_attempted' as const },
    };
    // Before: read as held back (no attempt made), and looked at again every minute for ever.
    expect(applyRedelivery(env, failed, 'schedule', NOW)).toMatchObject({ state: 'settled', next_due_at: null });
  });

  it('its redelivery with Lambda refusing Deliver: an answer the Export refuses settles it; a good one waits a minute', () => {
    const refusal = { Error: 'Lambda.TooManyRequestsException', Cause: 'Rate Exceeded.' };
    const rerun = (answer: unknown) => {
      const env = envelopeFromQueuedMessage(throttled(answer), NOW);
      const state = {
        conversation: env.conversation,
        redelivery: redeliveryContext(env, 'schedule'),
        delivery_error: refusal,
      };
      return settleRedelivery(env, closeConversation(state, 'exec-1-redelivery-1', NOW).record, 'schedule', NOW);
    };
    // Nothing to deliver (the conversation failed): settled, not a failed run coming back for ever.
    expect(rerun({ response: ' ' })).toMatchObject({ ok: true, updated: { state: 'settled', next_due_at: null } });
    // The answer is recorded now; the delivery still owed, in a minute (a failed run, no slot).
    const good = rerun({ response: 'deals' });
    if (good.ok) throw new Error('settled');
    expect(good.updated).toMatchObject({ state: 'pending', failed_runs: 1, scheduled_attempts: 0 });
    expect(good.updated!.conversation.pending_answer).toBeUndefined();
    expect(good.updated!.conversation.conversation.turns.map((t) => t.role)).toEqual(['user', 'assistant']);
  });
});

describe('a delivery Lambda would not run Deliver for in the conversation workflow (throttled, its service failing)', () => {
  const refusal = { Error: 'Lambda.ServiceException', Cause: 'Service unavailable' };
  const message = () => ({ ...queued(attempt('retryable')), delivery_error: refusal });

  it('waits for the first slot with no attempt (none was made), retrying, the refusal in the errors, as Export records it', () => {
    // Before: a 0 ms attempt 1 the receiver never got, in the envelope and the export.
    const env = envelopeFromQueuedMessage(message(), NOW);
    expect(env).toMatchObject({
      state: 'pending',
      scheduled_attempts: 0,
      attempts: [],
      next_due_at: new Date(NOW.getTime() + 5_000).toISOString(),
      last_error: 'Lambda did not run Deliver (Lambda.ServiceException: Service unavailable); no attempt was made',
    });
    expect(env.conversation.webhook_context.delivery_status).toBe('retrying');
    expect(env.conversation.execution.errors.at(-1)).toMatchObject({
      stage: 'Deliver',
      error: 'Lambda.ServiceException',
    });
    const { record } = closeConversation(
      { conversation: message().conversation, delivery_error: refusal },
      'exec-1',
      NOW,
    );
    expect(record.webhook_context.delivery_status).toBe('retrying');
    expect(record.execution.delivery_attempts).toEqual([]);
    expect(record.execution.errors).toEqual(env.conversation.execution.errors);
    // Its first redelivery is attempt 1.
    expect(nextAttemptNumber(env.conversation)).toBe(1);
  });
});

describe("a deferred delivery (no attempt was made within the caller's deadline)", () => {
  it('waits for the first slot with no attempt, its target known, and is delivered as attempt 1', () => {
    const record = withClassification(withAgentAnswer(startedRecord(), { response: 'deals' }, 5, NOW));
    const message = {
      kind: 'failed_delivery' as const,
      conversation: record,
      delivery_error: {
        Error: 'DeliveryDeferredError',
        Cause: JSON.stringify({ message: 'no time left', target: TARGET }),
      },
      execution_name: 'exec-1',
    };
    const env = envelopeFromQueuedMessage(message, NOW);
    expect(env).toMatchObject({
      state: 'pending',
      target: TARGET,
      attempts: [],
      last_error: 'deferred: no time left',
      next_due_at: new Date(NOW.getTime() + 5_000).toISOString(),
    });
    expect(env.conversation.webhook_context.delivery_status).toBe('retrying');
    expect(env.conversation.execution.completed_at).not.toBeNull();
    expect(redeliveryExecutionName(env, 'x')).toBe(`${env.conversation_id}-redelivery-1-x`);
  });

  it("held on the state's third try (the receiver paused): keeps the two attempts it carries; the next is attempt 3", () => {
    const record = withClassification(withAgentAnswer(startedRecord(), { response: 'deals' }, 5, NOW));
    const tried = [1, 2].map((n) => attempt('retryable', { attempt: n, via: 'workflow' }));
    const held = holdError('paused', 'deal_analysis is paused', TARGET, false, tried);
    const caught = { Error: held.name, Cause: JSON.stringify({ errorMessage: held.message }) };
    const env = envelopeFromQueuedMessage(
      { kind: 'failed_delivery', conversation: record, delivery_error: caught },
      NOW,
    );
    expect(env).toMatchObject({ state: 'pending', attempts: tried, last_error: 'deferred: deal_analysis is paused' });
    expect(attemptsMade(env)).toBe(2);
    expect(nextAttemptNumber(env.conversation)).toBe(3);
  });
});

describe('applyRedelivery', () => {
  const pending = () => envelopeFromQueuedMessage(queued(attempt('retryable')), NOW);
  const later = new Date(NOW.getTime() + 10_000);
  const afterAttempt = (
    env: ReturnType<typeof pending>,
    a: DeliveryAttempt,
    status: 'delivered' | 'retrying' | 'failed',
  ) => withDeliveryAttempt(env.conversation, { ...a, attempt: env.attempts.length + 1 }, TARGET, status);

  it('delivered → settled, slot counted', () => {
    const env = pending();
    const next = applyRedelivery(
      env,
      afterAttempt(env, attempt('delivered', { status_code: 200, error: undefined }), 'delivered'),
      'schedule',
      later,
    );
    expect(next).toMatchObject({ state: 'settled', next_due_at: null, scheduled_attempts: 1 });
    expect(next.attempts).toHaveLength(2);
  });

  it('retryable on the schedule → the next slot', () => {
    const env = pending();
    const next = applyRedelivery(env, afterAttempt(env, attempt('retryable'), 'retrying'), 'schedule', later);
    expect(next).toMatchObject({
      state: 'pending',
      scheduled_attempts: 1,
      next_due_at: new Date(later.getTime() + 300_000).toISOString(),
    });
  });

  it('the last slot failing → dead (exhausted)', () => {
    const env = { ...pending(), scheduled_attempts: DEFAULT_RETRY_SCHEDULE_MS.length - 1 };
    expect(redeliveryContext(env, 'schedule')).toEqual({ via: 'schedule', status_if_failed: 'failed' });
    const next = applyRedelivery(env, afterAttempt(env, attempt('retryable'), 'failed'), 'schedule', later);
    expect(next).toMatchObject({ state: 'dead', dead_reason: 'exhausted', next_due_at: null });
  });

  it('a permanent answer → dead, whatever the slot', () => {
    const env = pending();
    expect(applyRedelivery(env, afterAttempt(env, attempt('permanent'), 'failed'), 'schedule', later)).toMatchObject({
      state: 'dead',
      dead_reason: 'permanent',
    });
  });

  it('a failed operator redrive leaves the schedule as it was', () => {
    const env = pending();
    expect(redeliveryContext(env, 'redrive')).toEqual({ via: 'redrive', status_if_failed: 'retrying' });
    const next = applyRedelivery(env, afterAttempt(env, attempt('retryable'), 'retrying'), 'redrive', later);
    expect(next).toMatchObject({ state: 'pending', scheduled_attempts: 0, next_due_at: env.next_due_at });
    const dead = { ...env, state: 'dead' as const, next_due_at: null };
    expect(redeliveryContext(dead, 'redrive').status_if_failed).toBe('failed');
    expect(applyRedelivery(dead, afterAttempt(dead, attempt('retryable'), 'failed'), 'redrive', later).state).toBe(
      'dead',
    );
  });

  it('a failed redrive of a dead envelope says why it is dead now: the redrive failed, or answered permanently', () => {
    const permanent = envelopeFromQueuedMessage(queued(attempt('permanent')), NOW);
    expect(permanent).toMatchObject({ state: 'dead', dead_reason: 'permanent' });
    const retryable = applyRedelivery(
      permanent,
      afterAttempt(permanent, attempt('retryable', { error: 'HTTP 503: restarting' }), 'failed'),
      'redrive',
      later,
    );
    expect(retryable).toMatchObject({ state: 'dead', dead_reason: 'redrive_failed', next_due_at: null });
    expect(retryable.last_error).toBe('HTTP 503: restarting');
    const exhausted = { ...pending(), state: 'dead' as const, next_due_at: null, dead_reason: 'exhausted' as const };
    const again = applyRedelivery(exhausted, afterAttempt(exhausted, attempt('permanent'), 'failed'), 'redrive', later);
    expect(again).toMatchObject({ state: 'dead', dead_reason: 'permanent' });
  });
});

describe('withFailedRun (a redelivery run of the schedule that failed or could not be started)', () => {
  const pending = () => envelopeFromQueuedMessage(queued(attempt('retryable')), NOW);

  it('uses no slot: back after 1, 2, 4, then 8 minutes; the fifth failure in a row makes it dead (runs_failed)', () => {
    expect(MAX_FAILED_RUNS).toBe(5);
    let env = pending();
    const waits: number[] = [];
    for (let run = 1; run < MAX_FAILED_RUNS; run += 1) {
      env = withFailedRun(env, 'FAILED: States.Runtime', NOW);
      expect(env).toMatchObject({ state: 'pending', failed_runs: run, scheduled_attempts: 0 });
      waits.push((Date.parse(env.next_due_at!) - NOW.getTime()) / 60_000);
    }
    expect(waits).toEqual([1, 2, 4, 8]);
    expect(withFailedRun(env, 'TIMED_OUT', NOW)).toMatchObject({
      state: 'dead',
      dead_reason: 'runs_failed',
      failed_runs: 5,
      next_due_at: null,
      last_error: 'redelivery run failed: TIMED_OUT',
      updated_at: NOW.toISOString(),
    });
  });

  it('a run that succeeds starts the count again', () => {
    const env = withFailedRun(withFailedRun(pending(), 'TIMED_OUT', NOW), 'TIMED_OUT', NOW);
    const record = withDeliveryAttempt(
      env.conversation,
      { ...attempt('retryable'), attempt: env.attempts.length + 1 },
      TARGET,
      'retrying',
    );
    const next = applyRedelivery(env, record, 'schedule', NOW);
    expect(next.failed_runs).toBeUndefined();
    expect(next).toMatchObject({ state: 'pending', scheduled_attempts: 1 });
  });
});

describe('a redelivery run whose Deliver Lambda would not run (throttled, its service failing)', () => {
  const pending = () => envelopeFromQueuedMessage(queued(attempt('retryable')), NOW);
  const later = new Date(NOW.getTime() + 10_000);
  const refusal = { Error: 'Lambda.TooManyRequestsException', Cause: 'Rate Exceeded.' };
  /** The record the run's Export writes: its Deliver's Catch put Lambda's error in delivery_error. */
  const exported = (env: ReturnType<typeof pending>, via: 'schedule' | 'redrive', caught = refusal) =>
    closeConversation(
      { conversation: env.conversation, redelivery: redeliveryContext(env, via), delivery_error: caught },
      `${env.conversation_id}-redelivery-2-abc`,
      later,
    ).record;

  it('on the last slot: no attempt recorded, still retrying, the refusal noted; no slot used, back in a minute', () => {
    // Before: exported with a 0 ms attempt and `failed`, and the envelope dead (exhausted), the receiver sent nothing.
    const env = { ...pending(), scheduled_attempts: DEFAULT_RETRY_SCHEDULE_MS.length - 1 };
    const record = exported(env, 'schedule');
    expect(record.execution.delivery_attempts).toEqual(env.attempts);
    expect(record.webhook_context.delivery_status).toBe('retrying');
    expect(record.execution.errors.at(-1)).toMatchObject({
      stage: 'Deliver',
      error: 'Lambda.TooManyRequestsException',
      message: 'Rate Exceeded.',
    });
    const run = settleRedelivery(env, record, 'schedule', later);
    expect(run).toMatchObject({
      ok: false,
      error: 'Lambda did not run Deliver (Lambda.TooManyRequestsException: Rate Exceeded.); no attempt was made',
    });
    if (run.ok) throw new Error('settled');
    expect(run.updated).toMatchObject({
      state: 'pending',
      scheduled_attempts: DEFAULT_RETRY_SCHEDULE_MS.length - 1,
      failed_runs: 1,
      next_due_at: new Date(later.getTime() + 60_000).toISOString(),
      last_error: `redelivery run failed: ${run.error}`,
    });
    expect(run.updated!.attempts).toEqual(env.attempts);
    // Carrying the record as exported, so the next export keeps the refusal noted.
    expect(run.updated!.conversation).toEqual(record);
  });

  it('refusing for ever: the fifth run in a row gives it up (runs_failed), the record failed with no attempt added', () => {
    let env = pending();
    const attempts = env.attempts;
    const waits: number[] = [];
    for (let run = 1; run <= MAX_FAILED_RUNS; run += 1) {
      const settled = settleRedelivery(env, exported(env, 'schedule'), 'schedule', later);
      if (settled.ok || !settled.updated) throw new Error(`run ${run} was not counted as a failed run`);
      env = settled.updated;
      if (env.next_due_at) waits.push((Date.parse(env.next_due_at) - later.getTime()) / 60_000);
    }
    expect(waits).toEqual([1, 2, 4, 8]);
    expect(env).toMatchObject({ state: 'dead', dead_reason: 'runs_failed', failed_runs: 5, scheduled_attempts: 0 });
    const given = givenUpRecord(env)!;
    expect(given.webhook_context.delivery_status).toBe('failed');
    expect(given.execution.delivery_attempts).toEqual(attempts);
    expect(given.execution.errors.filter((e) => e.error === 'Lambda.TooManyRequestsException')).toHaveLength(5);
    expect(given.execution.errors.at(-1)).toMatchObject({
      stage: 'RedeliverySchedule',
      error: 'RedeliveryRunsFailed',
      message: expect.stringContaining('5 redelivery runs in a row failed (the last: Lambda did not run Deliver'),
    });
  });

  it("an operator's redrive refused changes nothing (a run that did not succeed); a run that attempts counts again", () => {
    const env = pending();
    expect(settleRedelivery(env, exported(env, 'redrive'), 'redrive', later)).toEqual({
      ok: false,
      error: 'Lambda did not run Deliver (Lambda.TooManyRequestsException: Rate Exceeded.); no attempt was made',
      refused: true,
    });
    const refused = settleRedelivery(env, exported(env, 'schedule'), 'schedule', later);
    if (refused.ok) throw new Error('settled');
    const record = withDeliveryAttempt(
      refused.updated!.conversation,
      { ...attempt('retryable'), attempt: env.attempts.length + 1 },
      TARGET,
      'retrying',
    );
    const next = applyRedelivery(refused.updated!, record, 'schedule', later);
    expect(next).toMatchObject({ state: 'pending', scheduled_attempts: 1 });
    expect(next.failed_runs).toBeUndefined();
  });

  it('a Deliver that ran and failed (Lambda.Unknown: it may have sent the POST) is an attempt, as before', () => {
    const env = { ...pending(), scheduled_attempts: DEFAULT_RETRY_SCHEDULE_MS.length - 1 };
    const crashed = { Error: 'Lambda.Unknown', Cause: 'The cause could not be determined' };
    const record = exported(env, 'schedule', crashed);
    expect(record.execution.delivery_attempts).toHaveLength(env.attempts.length + 1);
    expect(settleRedelivery(env, record, 'schedule', later)).toMatchObject({
      ok: true,
      updated: { state: 'dead', dead_reason: 'exhausted' },
    });
  });
});

describe('export-only envelopes (S3 refused the record at the end of the conversation)', () => {
  const delivered = () =>
    completeConversation(
      withDeliveryAttempt(
        queued(attempt('retryable')).conversation,
        attempt('delivered', { status_code: 200, error: undefined }),
        TARGET,
        'delivered',
      ),
      false,
      'exec-1',
      NOW,
    );
  const exportError = {
    Error: 'ExportError',
    Cause: 'writing s3://b/conversation-history/ failed: NoSuchBucket: gone',
  };
  const queuedExport = () => ({
    kind: 'failed_export' as const,
    conversation: delivered(),
    export_error: exportError,
    execution_name: 'exec-1',
  });

  it('owe only the export, are pending from the first slot, and keep the closed record and its attempts as they are', () => {
    const env = envelopeFromQueuedExport(queuedExport(), NOW);
    expect(env).toMatchObject({
      owed: 'export',
      state: 'pending',
      scheduled_attempts: 0,
      next_due_at: new Date(NOW.getTime() + 5_000).toISOString(),
      target: TARGET,
      last_error: 'export: ExportError: writing s3://b/conversation-history/ failed: NoSuchBucket: gone',
    });
    expect(env.conversation).toEqual(delivered());
    expect(env.attempts).toHaveLength(1);
    expect(owedBy(env)).toBe('export');
    expect(owedBy(envelopeFromQueuedMessage(queued(attempt('retryable')), NOW))).toBe('delivery');
  });

  it('run their redelivery export-only, and one that succeeded settles them (on the schedule or by redrive)', () => {
    const env = envelopeFromQueuedExport(queuedExport(), NOW);
    expect(redeliveryContext(env, 'schedule')).toEqual({
      via: 'schedule',
      status_if_failed: 'retrying',
      export_only: true,
    });
    expect(redeliveryContext(env, 'redrive').export_only).toBe(true);
    const failedAgent = { ...queuedExport(), conversation: completeConversation(startedRecord(), true, 'exec-1', NOW) };
    const agentEnv = envelopeFromQueuedExport(failedAgent, NOW);
    for (const [e, via] of [
      [env, 'schedule'],
      [env, 'redrive'],
      [agentEnv, 'schedule'],
    ] as const) {
      expect(applyRedelivery(e, e.conversation, via, NOW)).toMatchObject({ state: 'settled', next_due_at: null });
    }
  });

  it('a redelivery that delivered but could not export leaves the envelope pending, owing only the export', () => {
    const env = envelopeFromQueuedMessage(queued(attempt('retryable')), NOW);
    const record = withDeliveryAttempt(
      env.conversation,
      attempt('delivered', { attempt: 2, status_code: 200, error: undefined }),
      TARGET,
      'delivered',
    );
    const next = applyRedelivery(env, record, 'schedule', NOW, DEFAULT_RETRY_SCHEDULE_MS, exportError);
    expect(next).toMatchObject({
      state: 'pending',
      owed: 'export',
      scheduled_attempts: 1,
      next_due_at: new Date(NOW.getTime() + 300_000).toISOString(),
      last_error: 'export: ExportError: writing s3://b/conversation-history/ failed: NoSuchBucket: gone',
    });
    expect(next.attempts).toHaveLength(2);
    // Still owing the delivery: the export error changes nothing (the next redelivery re-exports anyway).
    const failedAgain = withDeliveryAttempt(env.conversation, attempt('retryable', { attempt: 2 }), TARGET, 'retrying');
    expect(applyRedelivery(env, failedAgain, 'schedule', NOW, DEFAULT_RETRY_SCHEDULE_MS, exportError)).toEqual(
      applyRedelivery(env, failedAgain, 'schedule', NOW),
    );
  });

  it('readRedeliveryOutput takes the record, or the record with the export error, and nothing else', () => {
    const record = delivered();
    expect(readRedeliveryOutput(record)).toEqual({ record });
    expect(readRedeliveryOutput({ conversation: record, export_error: exportError, response: {} })).toEqual({
      record,
      exportError,
    });
    for (const other of [null, 'x', {}, { conversation: record }, { conversation: {}, export_error: exportError }])
      expect(readRedeliveryOutput(other)).toBeNull();
  });

  it('envelopeFromMessage reads either message kind and nothing else', () => {
    expect(envelopeFromMessage(queuedExport(), NOW)?.owed).toBe('export');
    expect(envelopeFromMessage(queued(attempt('retryable')), NOW)?.owed).toBeUndefined();
    for (const other of [
      null,
      'x',
      {},
      { kind: 'failed_export', conversation: delivered() },
      { ...queuedExport(), kind: 'other' },
    ]) {
      expect(envelopeFromMessage(other, NOW)).toBeNull();
    }
  });
});

describe('attemptsMade', () => {
  it("counts the workflow's immediate retries, which the envelope keeps only as the number of the try after them", () => {
    const env = envelopeFromQueuedMessage(queued(attempt('retryable', { attempt: 4 })), NOW);
    expect(env.attempts).toHaveLength(1);
    expect(attemptsMade(env)).toBe(4);
    expect(
      attemptsMade({ attempts: [attempt('retryable', { attempt: 4 }), attempt('retryable', { attempt: 5 })] }),
    ).toBe(5);
    expect(attemptsMade({ attempts: [] })).toBe(0);
  });
});

describe('isDue and execution names', () => {
  it('only pending envelopes whose time has come are due', () => {
    const env = envelopeFromQueuedMessage(queued(attempt('retryable')), NOW);
    expect(isDue(env, NOW)).toBe(false);
    expect(isDue(env, new Date(NOW.getTime() + 5_000))).toBe(true);
    expect(isDue({ ...env, state: 'dead' }, new Date(NOW.getTime() + 5_000))).toBe(false);
  });

  it('names a redelivery after its conversation and attempt, within the 80-character limit', () => {
    const env = envelopeFromQueuedMessage(queued(attempt('retryable')), NOW);
    const name = redeliveryExecutionName(env, 'a1b2c3');
    expect(name).toBe(`${env.conversation_id}-redelivery-2-a1b2c3`);
    expect(name.length).toBeLessThanOrEqual(80);
  });
});

describe('withLoggedAttempts (the tries only the attempt log has)', () => {
  const at = (ms: number) => new Date(NOW.getTime() + ms).toISOString();
  const logged = (env: { conversation_id: string; delivery_id: string }, a: DeliveryAttempt) => ({
    ...a,
    conversation_id: env.conversation_id,
    delivery_id: env.delivery_id,
    webhook_type: 'deal_analysis',
    request: { url: TARGET, headers: {} },
    response: { status: 503, headers: {}, body: 'busy', body_truncated: false },
  });

  it('adds those the envelope lacks, short, in order, to its attempts and its record: its run is named after them', () => {
    const env = envelopeFromQueuedMessage(queued(attempt('retryable', { attempt: 1, at: at(0) })), NOW);
    const second = attempt('retryable', { attempt: 2, at: at(1_000) });
    const counted = withLoggedAttempts(env, [logged(env, env.attempts[0]!), logged(env, second)]);
    expect(counted.attempts).toEqual([env.attempts[0], second]);
    expect(counted.conversation.execution.delivery_attempts).toEqual([env.attempts[0], second]);
    expect(attemptsMade(counted)).toBe(2);
    expect(redeliveryExecutionName(counted, 'a1b2c3')).toBe(`${env.conversation_id}-redelivery-3-a1b2c3`);
    // The envelope's own attempt is kept as it is, never replaced by the log's.
    expect(counted.attempts[0]).toBe(env.attempts[0]);
  });

  it("none missing, or another conversation's: the envelope itself", () => {
    const env = envelopeFromQueuedMessage(queued(attempt('retryable', { attempt: 1, at: at(0) })), NOW);
    expect(withLoggedAttempts(env, [])).toBe(env);
    expect(withLoggedAttempts(env, [logged(env, env.attempts[0]!)])).toBe(env);
    const other = { ...logged(env, attempt('retryable', { attempt: 2, at: at(1) })), conversation_id: 'webhook_other' };
    expect(withLoggedAttempts(env, [other])).toBe(env);
  });
});

describe('readEnvelope', () => {
  it('reads a stored envelope, and the state envelopes written before the rename called delivered as settled', () => {
    const env = envelopeFromQueuedMessage(queued(attempt('retryable')), NOW);
    expect(readEnvelope(JSON.parse(JSON.stringify(env)))).toEqual(env);
    const old = { ...env, state: 'delivered', next_due_at: null };
    expect(readEnvelope(old)).toEqual({ ...env, state: 'settled', next_due_at: null });
    for (const other of [null, 'x', {}, { ...env, version: 2 }, { ...env, conversation: undefined }])
      expect(readEnvelope(other)).toBeNull();
  });
});
