import { describe, expect, it } from 'vitest';
import { parseTaskError } from '../../../functions/domain/task-error.ts';

function awsCause(errorType: string, errorMessage: string): string {
  return JSON.stringify({
    errorType,
    errorMessage,
    trace: [`${errorType}: ${errorMessage}`, '    at Runtime.handler (file:///var/task/index.mjs:1:1)'],
  });
}

describe('parseTaskError', () => {
  it('returns Unknown for a missing caught error', () => {
    expect(parseTaskError(undefined)).toEqual({ error: 'Unknown', message: 'unknown error', payload: null });
  });

  it('local engine: a plain message is the message', () => {
    expect(parseTaskError({ Error: 'AgentInvocationError', Cause: 'agent returned FunctionError Unhandled' })).toEqual({
      error: 'AgentInvocationError',
      message: 'agent returned FunctionError Unhandled',
      payload: null,
    });
  });

  it('AWS: the errorMessage inside the JSON cause is the message', () => {
    expect(
      parseTaskError({
        Error: 'AgentInvocationError',
        Cause: awsCause('AgentInvocationError', 'agent returned FunctionError Unhandled'),
      }),
    ).toEqual({
      error: 'AgentInvocationError',
      message: 'agent returned FunctionError Unhandled',
      payload: null,
    });
  });

  it('local engine: a JSON message becomes the payload, its message field the message', () => {
    const text = JSON.stringify({ message: 'HTTP 503', attempt: { attempt: 1 }, target: 'https://x' });
    expect(parseTaskError({ Error: 'DeliveryRetryableError', Cause: text })).toEqual({
      error: 'DeliveryRetryableError',
      message: 'HTTP 503',
      payload: { message: 'HTTP 503', attempt: { attempt: 1 }, target: 'https://x' },
    });
  });

  it('AWS: a JSON errorMessage becomes the payload, the same as locally', () => {
    const text = JSON.stringify({ message: 'HTTP 503', attempt: { attempt: 1 }, target: 'https://x' });
    const aws = parseTaskError({ Error: 'DeliveryRetryableError', Cause: awsCause('DeliveryRetryableError', text) });
    const local = parseTaskError({ Error: 'DeliveryRetryableError', Cause: text });
    expect(aws).toEqual(local);
    expect(aws.payload).toEqual(JSON.parse(text));
  });

  it('keeps the whole JSON text as the message when the payload has no message field', () => {
    const text = JSON.stringify({ code: 42 });
    expect(parseTaskError({ Error: 'E', Cause: text })).toEqual({ error: 'E', message: text, payload: { code: 42 } });
  });

  it('falls back to the error name for a missing or empty cause', () => {
    expect(parseTaskError({ Error: 'States.Timeout' })).toEqual({
      error: 'States.Timeout',
      message: 'States.Timeout',
      payload: null,
    });
    expect(parseTaskError({ Error: 'States.Timeout', Cause: '' })).toEqual({
      error: 'States.Timeout',
      message: 'States.Timeout',
      payload: null,
    });
  });

  it.each([
    ['a JSON array', '[1,2]'],
    ['a JSON string', '"quoted"'],
    ['a JSON number', '42'],
    ['JSON null', 'null'],
  ])('does not treat %s as a payload', (_label, cause) => {
    const result = parseTaskError({ Error: 'E', Cause: cause });
    expect(result.payload).toBeNull();
    expect(result.error).toBe('E');
  });

  it('ignores an AWS-looking cause whose errorMessage is not a string', () => {
    const cause = JSON.stringify({ errorType: 'E', errorMessage: 5 });
    const result = parseTaskError({ Error: 'E', Cause: cause });
    expect(result.message).toBe(cause);
    expect(result.payload).toEqual({ errorType: 'E', errorMessage: 5 });
  });

  it('AWS: an errorMessage whose JSON cause Step Functions cut at 32,768 characters is still the message', () => {
    const long = `${'é"\\'.repeat(12_000)}end`;
    const cut = awsCause('Big', long).slice(0, 32_768);
    const message = parseTaskError({ Error: 'Big', Cause: cut }).message;
    expect(message.length).toBeGreaterThan(19_000); // each `é"\\` takes 5 characters of JSON text
    expect(long.startsWith(message)).toBe(true);
    // Cut inside an escape: the escape is dropped, not shown as `\`.
    for (let end = 36; end < 46; end++) {
      const part = parseTaskError({ Error: 'Big', Cause: awsCause('Big', long).slice(0, end) }).message;
      expect(long.startsWith(part), part).toBe(true);
    }
    // Cut in the trace: the whole errorMessage.
    const inTrace = JSON.stringify({ errorType: 'Big', errorMessage: 'short', trace: ['t'.repeat(40_000)] });
    expect(parseTaskError({ Error: 'Big', Cause: inTrace.slice(0, 32_768) }).message).toBe('short');
    // Any other text that is not JSON stays the message.
    expect(parseTaskError({ Error: 'E', Cause: '{"message": "x"' }).message).toBe('{"message": "x"');
  });
});
