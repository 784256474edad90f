import { describe, expect, it } from 'vitest';
import {
  LOGGED_BODY_BYTES,
  type LoggedAttempt,
  loggedBody,
  loggedRequestHeaders,
  loggedResponseHeaders,
  nextAttemptNumber,
  withAttemptLog,
} from '../../../functions/domain/attempt-log.ts';
import type { ConversationRecord, DeliveryAttempt } from '../../../functions/domain/conversation.ts';
import { startedRecord } from '../../support/fixtures.ts';

const ID = 'webhook_20250813_103045_testing_phase3valid_abc123';

function logged(attempt: number, at: string, status: number | null, extra: Partial<LoggedAttempt> = {}): LoggedAttempt {
  return {
    conversation_id: ID,
    delivery_id: 'd-1',
    webhook_type: 'deal_analysis',
    attempt,
    at,
    duration_ms: 12,
    outcome: status === 200 ? 'delivered' : 'retryable',
    ...(status ? { status_code: status } : { error: 'network error: ECONNREFUSED' }),
    via: 'workflow',
    request: { url: 'https://crm.example/hook', headers: { 'webhook-id': 'd-1' } },
    response: status ? { status, headers: {}, body: `body ${attempt}`, body_truncated: false } : null,
    ...extra,
  };
}

describe('what an attempt keeps of the request and the answer', () => {
  it('request headers: lowercase, never the signature or credentials', () => {
    expect(
      loggedRequestHeaders({
        'Content-Type': 'application/json',
        'webhook-id': 'd-1',
        'webhook-timestamp': '1',
        'webhook-signature': 'v1,secret',
        Authorization: 'Bearer x',
      }),
    ).toEqual({ 'content-type': 'application/json', 'webhook-id': 'd-1', 'webhook-timestamp': '1' });
  });

  it('response headers: only the ones that say what the receiver did, each cut at 512 characters', () => {
    const kept = loggedResponseHeaders([
      ['Content-Type', 'text/plain'],
      ['Retry-After', '30'],
      ['X-Request-Id', 'r-9'],
      ['Set-Cookie', 'session=1'],
      ['Server', 'x'.repeat(600)],
    ]);
    expect(kept).toEqual({
      'content-type': 'text/plain',
      'retry-after': '30',
      'x-request-id': 'r-9',
      server: 'x'.repeat(512),
    });
  });

  it('the body: the first 4 KB, never half a UTF-8 character, and says when it was cut', () => {
    expect(loggedBody(Buffer.from('{"error":"down"}'))).toEqual({ body: '{"error":"down"}', body_truncated: false });
    const long = Buffer.from(`${'a'.repeat(LOGGED_BODY_BYTES - 1)}€ and more`);
    const cut = loggedBody(long);
    expect(cut.body_truncated).toBe(true);
    expect(cut.body).toBe('a'.repeat(LOGGED_BODY_BYTES - 1));
    expect(Buffer.byteLength(cut.body)).toBeLessThanOrEqual(LOGGED_BODY_BYTES);
  });
});

describe('withAttemptLog: the record with every attempt the log kept', () => {
  const record = (attempts: DeliveryAttempt[]): ConversationRecord => {
    const r = startedRecord();
    return { ...r, conversation_id: ID, execution: { ...r.execution, delivery_attempts: attempts } };
  };

  it("adds the in-workflow retries Step Functions' Retry forgets, with what each receiver answered, in order", () => {
    const last = logged(3, '2025-08-13T10:30:48.000Z', 200);
    const { conversation_id: _c, delivery_id: _d, webhook_type: _w, request: _q, response: _r, ...short } = last;
    const merged = withAttemptLog(record([short]), [
      logged(1, '2025-08-13T10:30:46.000Z', 500),
      logged(2, '2025-08-13T10:30:47.000Z', null),
      last,
    ]);
    expect(merged.execution.delivery_attempts.map((a) => [a.attempt, a.response?.status ?? null])).toEqual([
      [1, 500],
      [2, null],
      [3, 200],
    ]);
    expect(merged.execution.delivery_attempts[0]).toMatchObject({ response: { body: 'body 1' } });
    expect(merged.execution.delivery_attempts[0]).not.toHaveProperty('conversation_id');
  });

  it('keeps an attempt the log does not have (recorded before the log existed, or its write failed)', () => {
    const old: DeliveryAttempt = { attempt: 1, at: '2025-08-13T10:30:46.000Z', duration_ms: 5, outcome: 'retryable' };
    const merged = withAttemptLog(record([old]), [logged(2, '2025-08-13T10:35:00.000Z', 200)]);
    expect(merged.execution.delivery_attempts.map((a) => a.attempt)).toEqual([1, 2]);
    expect(merged.execution.delivery_attempts[0]).toEqual(old);
  });

  it('ignores entries of another conversation, and returns the record itself when the log is empty', () => {
    const r = record([]);
    expect(withAttemptLog(r, [])).toBe(r);
    expect(
      withAttemptLog(r, [logged(1, '2025-08-13T10:30:46.000Z', 200, { conversation_id: 'webhook_other' })]).execution
        .delivery_attempts,
    ).toEqual([]);
  });

  it('numbers attempts after the last one the record knows, counting this state’s retries', () => {
    expect(nextAttemptNumber(record([]))).toBe(1);
    expect(nextAttemptNumber(record([]), 2)).toBe(3);
    const known = record([{ attempt: 4, at: 'x', duration_ms: 1, outcome: 'retryable' }]);
    expect(nextAttemptNumber(known)).toBe(5);
  });
});
