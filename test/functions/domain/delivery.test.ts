import { describe, expect, it } from 'vitest';
import type { DeliveryAttempt } from '../../../functions/domain/conversation.ts';
import {
  attemptBudget,
  attemptError,
  buildDeliveryPayload,
  deferralAfter,
  failedAttemptFromCaught,
  failedAttemptOutcome,
  failureCountsForReceiver,
  isDeferral,
  MIN_ATTEMPT_MS,
  outcomeForStatus,
  planDelivery,
  retryAfterMs,
  timedOutReason,
} from '../../../functions/domain/delivery.ts';
import {
  DeliveryDeferredError,
  DeliveryPermanentError,
  DeliveryRetryableError,
} from '../../../functions/domain/errors.ts';
import { withAgentAnswer, withClassification } from '../../../functions/domain/lifecycle.ts';
import { DELIVERY_ID, RECEIVED_AT, startedRecord } from '../../support/fixtures.ts';

const NOW = new Date('2025-08-13T10:31:00.000Z');
const TARGET = 'https://hooks.example.com/deals';

function attempt(overrides: Partial<DeliveryAttempt> = {}): DeliveryAttempt {
  return {
    attempt: 1,
    at: '2025-08-13T10:30:50.000Z',
    duration_ms: 120,
    status_code: 503,
    error: 'HTTP 503',
    outcome: 'retryable',
    ...overrides,
  };
}

/** What AWS puts in a Catch's Cause for a Node Lambda error. */
function awsCause(error: Error): string {
  return JSON.stringify({
    errorType: error.name,
    errorMessage: error.message,
    trace: [`${error.name}: ${error.message}`, '    at handler (/var/task/index.mjs:1:1)'],
  });
}

describe('outcomeForStatus', () => {
  it.each([200, 201, 202, 204, 299])('%i is delivered', (status) => {
    expect(outcomeForStatus(status)).toBe('delivered');
  });

  it.each([408, 429, 500, 502, 503, 504, 599])('%i is retryable', (status) => {
    expect(outcomeForStatus(status)).toBe('retryable');
  });

  it.each([400, 401, 403, 404, 405, 409, 410, 413, 422, 301, 302, 303, 307, 308, 100, 199, 0, 99, 600, 999])(
    '%i is permanent',
    (status) => {
      expect(outcomeForStatus(status)).toBe('permanent');
    },
  );
});

describe('attemptError', () => {
  it('is a DeliveryRetryableError for a retryable attempt, carrying the attempt as JSON', () => {
    const a = attempt();
    const error = attemptError(a, TARGET);
    expect(error).toBeInstanceOf(DeliveryRetryableError);
    expect(error).toBeInstanceOf(Error);
    expect(error.name).toBe('DeliveryRetryableError');
    expect(JSON.parse(error.message)).toEqual({ message: 'HTTP 503', attempt: a, target: TARGET });
  });

  it('is a DeliveryPermanentError for a permanent attempt', () => {
    const a = attempt({ status_code: 404, error: 'HTTP 404: no such hook', outcome: 'permanent' });
    const error = attemptError(a, TARGET);
    expect(error).toBeInstanceOf(DeliveryPermanentError);
    expect(error.name).toBe('DeliveryPermanentError');
    expect(JSON.parse(error.message).message).toBe('HTTP 404: no such hook');
  });

  it('falls back to the HTTP status when the attempt has no error text', () => {
    const { error: _none, ...noText } = attempt({ status_code: 500 });
    expect(JSON.parse(attemptError(noText, TARGET).message).message).toBe('HTTP 500');
  });

  it('treats a network failure (no status) as retryable', () => {
    const { status_code: _none, ...network } = attempt({ error: 'network error: ECONNREFUSED' });
    const error = attemptError(network, TARGET);
    expect(error.name).toBe('DeliveryRetryableError');
    expect(JSON.parse(error.message).message).toBe('network error: ECONNREFUSED');
  });
});

describe('failedAttemptFromCaught', () => {
  it.each([
    ['retryable', attempt()],
    ['permanent', attempt({ status_code: 410, error: 'HTTP 410', outcome: 'permanent' })],
  ] as const)('recovers a %s attempt from the local engine shape (Cause = the error message)', (_label, a) => {
    const error = attemptError(a, TARGET);
    const result = failedAttemptFromCaught({ Error: error.name, Cause: error.message }, 9, NOW);
    expect(result).toEqual({ attempt: a, target: TARGET });
  });

  it.each([
    ['retryable', attempt()],
    ['permanent', attempt({ status_code: 401, error: 'HTTP 401', outcome: 'permanent' })],
  ] as const)(
    'recovers a %s attempt from the AWS Lambda shape (Cause = {errorType, errorMessage, trace})',
    (_label, a) => {
      const error = attemptError(a, TARGET);
      const result = failedAttemptFromCaught({ Error: error.name, Cause: awsCause(error) }, 9, NOW);
      expect(result).toEqual({ attempt: a, target: TARGET });
    },
  );

  it('gives the same result for both engine shapes', () => {
    const error = attemptError(attempt({ attempt: 3 }), TARGET);
    expect(failedAttemptFromCaught({ Error: error.name, Cause: awsCause(error) }, 1, NOW)).toEqual(
      failedAttemptFromCaught({ Error: error.name, Cause: error.message }, 1, NOW),
    );
  });

  it('synthesises an attempt from a plain-text cause (e.g. a Lambda timeout)', () => {
    const result = failedAttemptFromCaught(
      { Error: 'States.Timeout', Cause: 'Task timed out after 10.00 seconds' },
      4,
      NOW,
    );
    expect(result).toEqual({
      target: null,
      attempt: {
        attempt: 4,
        at: NOW.toISOString(),
        duration_ms: 0,
        error: 'States.Timeout: Task timed out after 10.00 seconds',
        outcome: 'retryable',
      },
    });
  });

  it('synthesises an attempt from an AWS cause whose message is not JSON', () => {
    const cause = awsCause(new DeliveryPermanentError('no URL configured for deal_analysis'));
    const result = failedAttemptFromCaught({ Error: 'DeliveryPermanentError', Cause: cause }, 2, NOW);
    expect(result.target).toBeNull();
    expect(result.attempt).toMatchObject({
      attempt: 2,
      at: NOW.toISOString(),
      outcome: 'permanent',
      error: 'DeliveryPermanentError: no URL configured for deal_analysis',
    });
  });

  it('keeps the target even when the attempt in the payload is unusable', () => {
    const cause = JSON.stringify({ message: 'boom', attempt: 'not an attempt', target: TARGET });
    const result = failedAttemptFromCaught({ Error: 'DeliveryRetryableError', Cause: cause }, 5, NOW);
    expect(result.target).toBe(TARGET);
    expect(result.attempt).toMatchObject({ attempt: 5, outcome: 'retryable', error: 'DeliveryRetryableError: boom' });
  });

  it('handles a missing Cause and a missing caught error', () => {
    expect(failedAttemptFromCaught({ Error: 'States.TaskFailed' }, 1, NOW).attempt).toMatchObject({
      error: 'States.TaskFailed: States.TaskFailed',
      outcome: 'retryable',
    });
    expect(failedAttemptFromCaught(undefined, 1, NOW)).toEqual({
      target: null,
      attempt: {
        attempt: 1,
        at: NOW.toISOString(),
        duration_ms: 0,
        error: 'Unknown: unknown error',
        outcome: 'retryable',
      },
    });
  });
});

describe('retryAfterMs', () => {
  it('reads delay-seconds', () => {
    expect(retryAfterMs('120', NOW)).toBe(120_000);
    expect(retryAfterMs(' 5 ', NOW)).toBe(5_000);
    expect(retryAfterMs('0', NOW)).toBe(0);
  });

  it('reads an HTTP-date relative to now', () => {
    expect(retryAfterMs('Wed, 13 Aug 2025 10:31:30 GMT', NOW)).toBe(30_000);
    expect(retryAfterMs(new Date(NOW.getTime() + 90_000).toUTCString(), NOW)).toBe(90_000);
  });

  it("reads the obsolete HTTP-date formats a recipient must accept too (RFC 850's, asctime's, in GMT)", () => {
    // Before, both were no Retry-After at all: the workflow's quick retries came back sooner than the receiver said.
    expect(retryAfterMs('Wednesday, 13-Aug-25 10:31:30 GMT', NOW)).toBe(30_000);
    expect(retryAfterMs('Wed Aug 13 10:32:00 2025', NOW)).toBe(60_000);
  });

  it('caps a wait longer than a day at a day, as it is stored and said (not 1e+23 s)', () => {
    // Before, 20 digits were kept as ~1e26 ms and the deferral said "wait 1e+23 s"; the schedule alone capped it.
    const huge = retryAfterMs('99999999999999999999', NOW);
    expect(huge).toBe(86_400_000);
    expect(retryAfterMs('Fri, 13 Aug 2125 10:31:30 GMT', NOW)).toBe(86_400_000);
    expect(retryAfterMs('86399', NOW)).toBe(86_399_000);
    const slowDown = attempt({ status_code: 429, error: 'HTTP 429', retry_after_ms: huge! });
    const out = failedAttemptOutcome(slowDown, TARGET, { deliverBy: null, timeoutMs: 5_000 }, NOW);
    expect(JSON.parse(out.error.message).message).toContain('the receiver asked to wait 86400 s (Retry-After)');
  });

  it('never returns a negative delay for a date in the past', () => {
    expect(retryAfterMs('Wed, 13 Aug 2025 10:00:00 GMT', NOW)).toBe(0);
  });

  it.each([null, undefined, '', 'soon', 'in five minutes', 'NaN', '1.5', '-1', '2025-08-13'])(
    'is null for %j',
    (header) => {
      expect(retryAfterMs(header, NOW)).toBeNull();
    },
  );
});

describe('buildDeliveryPayload', () => {
  const answered = () =>
    withClassification(
      withAgentAnswer(
        startedRecord({
          query: 'What are the top 5 deals closing this quarter?',
          source_system: 'testing_system',
          source_process: 'phase3_validation',
          metadata: { crm: 'x' },
        }),
        { response: 'Three deals close this quarter.', deals: [{ id: 1 }] },
        1500,
        new Date('2025-08-13T10:30:47Z'),
      ),
    );

  it('describes the conversation', () => {
    expect(buildDeliveryPayload(answered())).toEqual({
      type: 'conversation.completed',
      delivery_id: DELIVERY_ID,
      conversation_id: 'webhook_20250813_103045_testing_phase3valid_abc123',
      webhook_type: 'deal_analysis',
      source_system: 'testing_system',
      source_process: 'phase3_validation',
      query: 'What are the top 5 deals closing this quarter?',
      response: { response: 'Three deals close this quarter.', deals: [{ id: 1 }] },
      classification_reason: expect.stringContaining('query:"deals"'),
      metadata: { crm: 'x' },
      created_at: RECEIVED_AT,
    });
  });

  it('is identical on every attempt of one delivery (same delivery_id, same bytes)', () => {
    const record = answered();
    const first = JSON.stringify(buildDeliveryPayload(record));
    const later = {
      ...record,
      execution: { ...record.execution, delivery_attempts: [attempt(), attempt({ attempt: 2 })] },
    };
    expect(JSON.stringify(buildDeliveryPayload(later))).toBe(first);
    expect(JSON.stringify(buildDeliveryPayload(answered()))).toBe(first);
    expect(buildDeliveryPayload(later).delivery_id).toBe(DELIVERY_ID);
  });

  it('wraps a plain-text answer as {content}, like the 200 body, and sends {content: ""} when there is no answer', () => {
    const record = withAgentAnswer(startedRecord(), 'Just text', 10, NOW);
    expect(buildDeliveryPayload(record).response).toEqual({ content: 'Just text' });
    const noAnswer = startedRecord();
    expect(buildDeliveryPayload(noAnswer).response).toEqual({ content: '' });
  });
});

describe("attemptBudget (the caller waits for its answer until the budget's deliver_by)", () => {
  const received = '2025-08-13T10:30:45.000Z';
  const at = (ms: number) => new Date(Date.parse(received) + ms);
  const deliverBy = at(25_000).toISOString();

  it('gives the full per-attempt timeout while there is time, and always when nobody waits (no deliver_by)', () => {
    expect(attemptBudget(deliverBy, at(1_000), 3_000)).toEqual({ timeoutMs: 3_000 });
    expect(attemptBudget(null, at(60_000), 3_000)).toEqual({ timeoutMs: 3_000 });
  });

  it('cuts the timeout to what is left of the deadline', () => {
    expect(attemptBudget(deliverBy, at(23_500), 3_000)).toEqual({ timeoutMs: 1_500 });
    expect(attemptBudget(deliverBy, at(25_000 - MIN_ATTEMPT_MS), 3_000)).toEqual({ timeoutMs: MIN_ATTEMPT_MS });
  });

  it('defers with less than MIN_ATTEMPT_MS left, or past the deadline', () => {
    for (const now of [at(25_000 - MIN_ATTEMPT_MS + 1), at(60_000)]) {
      expect(attemptBudget(deliverBy, now, 3_000)).toEqual({
        defer: expect.stringMatching(new RegExp(`no time left for a delivery attempt before ${deliverBy}`)),
      });
    }
  });

  it('isDeferral: a deferral before any attempt; one after a failed attempt carries it and is recorded like a failure', () => {
    expect(isDeferral({ Error: 'DeliveryDeferredError', Cause: JSON.stringify({ message: 'no time left' }) })).toBe(
      true,
    );
    expect(isDeferral({ Error: 'DeliveryRetryableError', Cause: '{}' })).toBe(false);
    expect(isDeferral(undefined)).toBe(false);
    const attempt: DeliveryAttempt = {
      attempt: 1,
      at: RECEIVED_AT,
      duration_ms: 1400,
      outcome: 'retryable',
      error: 'timed out after 1400 ms',
    };
    const after = deferralAfter(attempt, 'https://x.example/h', 'no time left');
    const caught = { Error: after.name, Cause: after.message };
    expect(isDeferral(caught)).toBe(false);
    expect(failedAttemptFromCaught(caught, 1, new Date())).toEqual({ attempt, target: 'https://x.example/h' });
    expect(JSON.parse(after.message).message).toBe('timed out after 1400 ms; no time left');
  });
});

describe('planDelivery (what Deliver does with a record)', () => {
  const record = () => withClassification(withAgentAnswer(startedRecord(), { response: 'top deals' }, 40, NOW));
  const urls = { deal_analysis: TARGET, data_analysis: null, lead_analysis: null, general: null };
  const config = { deliveryUrls: urls, deliveryTimeoutMs: 3_000 };
  const deliverBy = '2025-08-13T10:31:10.000Z';
  const msBeforeDue = (ms: number) => new Date(Date.parse(deliverBy) - ms);

  it("attempts the type's URL within the per-attempt timeout", () => {
    expect(planDelivery(record(), deliverBy, config, msBeforeDue(9_000))).toEqual({
      action: 'attempt',
      url: TARGET,
      timeoutMs: 3_000,
    });
  });

  it('cuts the attempt to what is left before the caller needs its answer, and defers when too little is left', () => {
    expect(planDelivery(record(), deliverBy, config, msBeforeDue(1_000))).toMatchObject({ timeoutMs: 1_000 });
    expect(planDelivery(record(), deliverBy, config, msBeforeDue(200))).toMatchObject({ action: 'defer', url: TARGET });
  });

  it('gives a redelivery (no caller waiting) the whole timeout, whatever the time', () => {
    expect(planDelivery(record(), null, config, msBeforeDue(-3_600_000))).toEqual({
      action: 'attempt',
      url: TARGET,
      timeoutMs: 3_000,
    });
  });

  it('refuses, as a permanent failure, a type without a URL or with one that may not be used', () => {
    const none = planDelivery(record(), deliverBy, { ...config, deliveryUrls: { ...urls, deal_analysis: null } }, NOW);
    expect(none).toMatchObject({ action: 'refuse', reason: 'no delivery URL configured' });
    expect((none as { error: Error }).error).toBeInstanceOf(DeliveryPermanentError);
    expect((none as { error: Error }).error.message).toContain('set DEAL_ANALYSIS_WEBHOOK_URL');
    const plain = { ...urls, deal_analysis: 'http://crm.example.com/hook' };
    const unsafe = planDelivery(record(), deliverBy, { ...config, deliveryUrls: plain }, NOW);
    expect(unsafe).toMatchObject({ action: 'refuse', reason: expect.stringMatching(/must use https/) });
    expect((unsafe as { error: Error }).error.message).toContain(
      'DEAL_ANALYSIS_WEBHOOK_URL: delivery URL must use https',
    );
  });
});

describe('failedAttemptOutcome (what a failed attempt leads to)', () => {
  const deliverBy = '2025-08-13T10:31:10.000Z';
  const msBeforeDue = (ms: number) => new Date(Date.parse(deliverBy) - ms);
  const waiting = { deliverBy, timeoutMs: 3_000 };

  it('a retryable failure while the caller waits: retried by the state, never final', () => {
    const out = failedAttemptOutcome(attempt(), TARGET, waiting, msBeforeDue(9_000));
    expect(out.final).toBe(false);
    expect(out.error).toBeInstanceOf(DeliveryRetryableError);
  });

  it('a retryable failure with no time for another try: handed to the schedule with its attempt', () => {
    const out = failedAttemptOutcome(attempt(), TARGET, waiting, msBeforeDue(4_000));
    expect(out.error).toBeInstanceOf(DeliveryDeferredError);
    expect(JSON.parse(out.error.message)).toMatchObject({ attempt: { status_code: 503 }, target: TARGET });
  });

  it('a Retry-After longer than the workflow waits: no quick retry, handed to the schedule with its attempt', () => {
    // Before, a 429 asking for 120 s was retried three more times within a few seconds.
    const slowDown = attempt({ status_code: 429, error: 'HTTP 429: slow down', retry_after_ms: 120_000 });
    const out = failedAttemptOutcome(slowDown, TARGET, waiting, msBeforeDue(20_000));
    expect(out.error).toBeInstanceOf(DeliveryDeferredError);
    expect(out.final).toBe(false);
    const deferred = JSON.parse(out.error.message);
    expect(deferred).toMatchObject({ attempt: { status_code: 429, retry_after_ms: 120_000 }, target: TARGET });
    expect(deferred.message).toContain('the receiver asked to wait 120 s (Retry-After)');
  });

  it('a Retry-After shorter than the longest workflow wait is not answered sooner either: handed to the schedule', () => {
    // Before, a 503 asking for 2 s was retried by the workflow after a full-jitter wait of 0 to 1 s (the receiver saw
    // the retry 123 ms later).
    const brief = attempt({ status_code: 503, retry_after_ms: 2_000 });
    const out = failedAttemptOutcome(brief, TARGET, waiting, msBeforeDue(20_000));
    expect(out.error).toBeInstanceOf(DeliveryDeferredError);
    expect(JSON.parse(out.error.message).message).toContain('the receiver asked to wait 2 s (Retry-After)');
    // Retry-After: 0 asks for no wait: the quick retries go on.
    const now = attempt({ status_code: 503, retry_after_ms: 0 });
    expect(failedAttemptOutcome(now, TARGET, waiting, msBeforeDue(20_000)).error).toBeInstanceOf(
      DeliveryRetryableError,
    );
  });

  it('a permanent answer is final; on a redelivery, so is the last slot', () => {
    const permanent = attempt({ status_code: 410, error: 'HTTP 410', outcome: 'permanent' });
    expect(failedAttemptOutcome(permanent, TARGET, waiting, msBeforeDue(9_000))).toMatchObject({
      final: true,
      error: expect.any(DeliveryPermanentError),
    });
    const last = {
      deliverBy: null,
      timeoutMs: 3_000,
      redelivery: { via: 'schedule' as const, status_if_failed: 'failed' as const },
    };
    expect(failedAttemptOutcome(attempt(), TARGET, last, NOW)).toMatchObject({
      final: true,
      error: expect.any(DeliveryRetryableError),
    });
    const more = { ...last, redelivery: { via: 'schedule' as const, status_if_failed: 'retrying' as const } };
    expect(failedAttemptOutcome(attempt(), TARGET, more, NOW).final).toBe(false);
  });
});

describe("failureCountsForReceiver (the circuit breaker's failure streak)", () => {
  const timedOut = (ms: number) => attempt({ status_code: undefined, error: timedOutReason(ms), duration_ms: ms });

  it("a timeout of an attempt cut below DELIVERY_TIMEOUT_MS by the caller's deadline does not count", () => {
    expect(failureCountsForReceiver(timedOut(800), 800, 3_000)).toBe(false);
    expect(failureCountsForReceiver(timedOut(2_999), 2_999, 3_000)).toBe(false);
  });

  it('a timeout with the whole DELIVERY_TIMEOUT_MS counts, and so does any other failure of a cut attempt', () => {
    expect(failureCountsForReceiver(timedOut(3_000), 3_000, 3_000)).toBe(true);
    expect(failureCountsForReceiver(attempt(), 800, 3_000)).toBe(true); // HTTP 503
    expect(failureCountsForReceiver(attempt({ status_code: 404, outcome: 'permanent' }), 800, 3_000)).toBe(true);
    const refused = attempt({ status_code: undefined, error: 'network error: ECONNREFUSED' });
    expect(failureCountsForReceiver(refused, 800, 3_000)).toBe(true);
  });

  it('a delivered attempt is no failure', () => {
    expect(
      failureCountsForReceiver(attempt({ status_code: 200, error: undefined, outcome: 'delivered' }), 800, 3_000),
    ).toBe(false);
  });
});
