import { describe, expect, it } from 'vitest';
import {
  errorBody,
  FAILURE_STATUS,
  FORWARDED_HEADERS,
  httpResultForExecution,
  MAX_BODY_BYTES,
  MAX_EXECUTION_INPUT_BYTES,
  pickForwardedHeaders,
  prefersRespondAsync,
  TIMED_OUT_STATUS,
} from '../../../functions/domain/gateway-contract.ts';
import { startConversation } from '../../../functions/domain/intake.ts';
import {
  agentFailure,
  completeConversation,
  successBody,
  withAgentAnswer,
  withFailure,
} from '../../../functions/domain/lifecycle.ts';
import { executionInput, startedRecord } from '../../support/fixtures.ts';

describe('pickForwardedHeaders', () => {
  it('copies only the allow-listed headers', () => {
    const picked = pickForwardedHeaders({
      'content-type': 'application/json',
      'user-agent': 'crm/1.0',
      'idempotency-key': 'k-1',
      'webhook-id': 'msg_1',
      'webhook-timestamp': '1723545045',
      'webhook-signature': 'v1,abc',
      'x-request-id': 'r-1',
      authorization: 'Bearer secret',
      cookie: 'session=secret',
      'proxy-authorization': 'Basic secret',
      'x-api-key': 'secret',
      'set-cookie': ['a=b', 'c=d'],
      host: 'example.com',
    });
    expect(picked).toEqual({
      'content-type': 'application/json',
      'user-agent': 'crm/1.0',
      'idempotency-key': 'k-1',
      'webhook-id': 'msg_1',
      'webhook-timestamp': '1723545045',
      'webhook-signature': 'v1,abc',
      'x-request-id': 'r-1',
    });
    expect(JSON.stringify(picked)).not.toContain('secret');
  });

  it('never forwards authorization or cookie, whatever else is sent', () => {
    expect(FORWARDED_HEADERS).not.toContain('authorization');
    expect(FORWARDED_HEADERS).not.toContain('cookie');
    const picked = pickForwardedHeaders({
      authorization: 'Bearer x',
      cookie: 'a=b',
      Authorization: 'Bearer y',
      Cookie: 'c=d',
    });
    expect(picked).toEqual({});
  });

  it('joins repeated headers and skips undefined ones', () => {
    expect(pickForwardedHeaders({ 'x-request-id': ['a', 'b'], 'user-agent': undefined })).toEqual({
      'x-request-id': 'a, b',
    });
  });

  it('keeps an empty-string value', () => {
    expect(pickForwardedHeaders({ 'idempotency-key': '' })).toEqual({ 'idempotency-key': '' });
  });
});

describe('limits', () => {
  it('refuses bodies above the 256 KiB Step Functions input limit', () => {
    expect(MAX_EXECUTION_INPUT_BYTES).toBe(256 * 1024);
    expect(MAX_BODY_BYTES).toBeLessThanOrEqual(MAX_EXECUTION_INPUT_BYTES);
  });
});

describe('errorBody', () => {
  it('has success false and the code, message and extras under error', () => {
    expect(errorBody('PAYLOAD_TOO_LARGE', 'too big', { limit_bytes: 1 })).toEqual({
      success: false,
      error: { code: 'PAYLOAD_TOO_LARGE', message: 'too big', limit_bytes: 1 },
    });
  });
});

describe('httpResultForExecution', () => {
  it('SUCCEEDED → 200 with the parsed output', () => {
    let r = startedRecord();
    r = withAgentAnswer(r, { response: 'ok' }, 5, new Date('2025-08-13T10:30:46Z'));
    r = completeConversation(r, false, 'e', new Date('2025-08-13T10:30:46Z'));
    const body = successBody(r);
    expect(httpResultForExecution({ status: 'SUCCEEDED', output: JSON.stringify(body) })).toEqual({
      statusCode: 200,
      body,
    });
  });

  it('SUCCEEDED without output → 200 with an empty object', () => {
    expect(httpResultForExecution({ status: 'SUCCEEDED' })).toEqual({ statusCode: 200, body: {} });
  });

  it('FAILED ValidationError → 400 with the body from the cause', () => {
    const rejected = startConversation(executionInput({ query: '', source_system: 'a', source_process: 'b' }));
    if (rejected.valid) throw new Error('expected a rejection');
    const result = httpResultForExecution({ status: 'FAILED', error: 'ValidationError', cause: rejected.rejection });
    expect(result.statusCode).toBe(400);
    expect(result.body).toEqual(JSON.parse(rejected.rejection));
    expect(result.body).toMatchObject({
      success: false,
      error: { code: 'VALIDATION_ERROR', details: [{ field: 'query' }] },
    });
  });

  it('FAILED ValidationError for malformed JSON → 400 INVALID_JSON', () => {
    const rejected = startConversation(executionInput('{"query":'));
    if (rejected.valid) throw new Error('expected a rejection');
    const result = httpResultForExecution({ status: 'FAILED', error: 'ValidationError', cause: rejected.rejection });
    expect(result.statusCode).toBe(400);
    expect(result.body).toMatchObject({ success: false, error: { code: 'INVALID_JSON' } });
  });

  it('FAILED AgentError → 502 with the body from the cause (conversation id included)', () => {
    let r = startedRecord();
    r = withFailure(
      r,
      'InvokeManagerAgent',
      { error: 'AgentInvocationError', message: 'Unhandled', payload: null },
      new Date(),
    );
    const failure = agentFailure(r);
    const result = httpResultForExecution({
      status: 'FAILED',
      error: failure.failure_error,
      cause: failure.failure_cause,
    });
    expect(result).toEqual({ statusCode: 502, body: JSON.parse(failure.failure_cause) });
    expect(result.body).toMatchObject({ error: { code: 'AGENT_ERROR', conversation_id: r.conversation_id } });
  });

  it('FAILED AgentTimeout → 504 TIMEOUT with the conversation id (the agent ran out of its budget)', () => {
    const r = withFailure(
      startedRecord(),
      'InvokeManagerAgent',
      { error: 'States.Timeout', message: 'States.Timeout', payload: null },
      new Date(),
    );
    const failure = agentFailure(r, 20);
    expect(failure.failure_error).toBe('AgentTimeout');
    const result = httpResultForExecution({
      status: 'FAILED',
      error: failure.failure_error,
      cause: failure.failure_cause,
    });
    expect(result.statusCode).toBe(504);
    expect(result.body).toMatchObject({
      error: {
        code: 'TIMEOUT',
        message:
          "The manager agent did not answer within 20 s; the conversation was recorded as failed. For an agent that needs longer, send it again with 'Prefer: respond-async': 202 at once, then poll its status_url (the same Idempotency-Key starts it afresh)",
        conversation_id: r.conversation_id,
      },
    });
  });

  it.each(['States.Runtime', 'ExportError', 'States.TaskFailed', 'Lambda.ServiceException', ''])(
    'FAILED with %j → 500 INTERNAL_ERROR naming the workflow error',
    (error) => {
      const result = httpResultForExecution({
        status: 'FAILED',
        error,
        cause: JSON.stringify(errorBody('VALIDATION_ERROR', 'x')),
      });
      expect(result.statusCode).toBe(500);
      // a 500 never leaks a cause, even one shaped like a public body
      expect(result.body).toEqual(
        errorBody('INTERNAL_ERROR', 'The conversation workflow failed', { workflow_error: error }),
      );
    },
  );

  it('FAILED without an error name → 500 with workflow_error Unknown', () => {
    expect(httpResultForExecution({ status: 'FAILED' })).toEqual({
      statusCode: 500,
      body: errorBody('INTERNAL_ERROR', 'The conversation workflow failed', { workflow_error: 'Unknown' }),
    });
  });

  it.each(['constructor', 'toString', '__proto__', 'hasOwnProperty', 'valueOf'])(
    'FAILED with an error named like an Object.prototype member (%s) → a numeric 500',
    (error) => {
      const result = httpResultForExecution({ status: 'FAILED', error });
      expect(result.statusCode).toBe(500);
      expect(result.body).toMatchObject({ success: false, error: { code: 'INTERNAL_ERROR', workflow_error: error } });
    },
  );

  it('ABORTED → 500', () => {
    expect(httpResultForExecution({ status: 'ABORTED' }).statusCode).toBe(500);
  });

  it('a 400/502 whose cause is not one of our bodies does not echo the cause', () => {
    for (const error of ['ValidationError', 'AgentError']) {
      const result = httpResultForExecution({ status: 'FAILED', error, cause: 'stack trace with secrets' });
      expect(result.statusCode).toBe(FAILURE_STATUS[error]);
      expect(JSON.stringify(result.body)).not.toContain('secrets');
      expect(result.body).toMatchObject({ success: false });
    }
  });

  it('TIMED_OUT → 504 TIMEOUT', () => {
    expect(TIMED_OUT_STATUS).toBe(504);
    const result = httpResultForExecution({ status: 'TIMED_OUT' });
    expect(result.statusCode).toBe(504);
    expect(result.body).toMatchObject({ success: false, error: { code: 'TIMEOUT', message: expect.any(String) } });
  });
});

describe('Prefer: respond-async (RFC 7240) and the 202', () => {
  it.each([
    ['respond-async', true],
    ['Respond-Async', true],
    ['wait=10, respond-async', true],
    ['respond-async; foo=bar', true],
    [['return=minimal', 'respond-async'], true],
    ['return=minimal', false],
    ['respond-asynchronously', false],
    ['x-respond-async', false],
    [undefined, false],
  ])('%j → %s', (prefer, expected) => {
    expect(prefersRespondAsync(prefer as string | string[] | undefined)).toBe(expected);
  });

  it('an accepted output becomes 202 with the status URL, Location and Preference-Applied', () => {
    const output = JSON.stringify({
      accepted: { conversation_id: 'webhook_20261129_123213_a_b_c', source_system: 'a' },
    });
    expect(httpResultForExecution({ status: 'SUCCEEDED', output }, 'https://api.example/prod')).toEqual({
      statusCode: 202,
      body: {
        success: true,
        conversation_id: 'webhook_20261129_123213_a_b_c',
        status_url: 'https://api.example/prod/conversations/webhook_20261129_123213_a_b_c?source_system=a',
      },
      headers: {
        'preference-applied': 'respond-async',
        location: 'https://api.example/prod/conversations/webhook_20261129_123213_a_b_c?source_system=a',
        'retry-after': '2',
      },
    });
  });

  it('a start that failed (ConversationNotStarted) is 503 with its body and when to send it again', () => {
    const cause = JSON.stringify(errorBody('NOT_STARTED', 'could not be started', { conversation_id: 'x' }));
    expect(httpResultForExecution({ status: 'FAILED', error: 'ConversationNotStarted', cause })).toEqual({
      statusCode: 503,
      body: JSON.parse(cause),
      headers: { 'retry-after': '2' },
    });
  });
});
