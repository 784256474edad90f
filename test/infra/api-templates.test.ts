import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type ExecutionInput,
  type ExecutionOutcome,
  FAILURE_STATUS,
  FORWARDED_HEADERS,
  gatewayErrorResult,
  healthBody,
  httpResultForExecution,
  MAX_BODY_BYTES,
  MAX_EXECUTION_INPUT_BYTES,
  pickForwardedHeaders,
} from '../../functions/domain/gateway-contract.ts';
import { startConversation } from '../../functions/domain/intake.ts';
import {
  executionResultResponseTemplate,
  GENERIC_GATEWAY_ERROR_TEMPLATE,
  gatewayErrorTemplate,
  healthResponseTemplate,
  RETRY_AFTER_SECONDS,
  startFailedResponseTemplate,
  startSyncExecutionRequestTemplate,
} from '../../infra/api-templates.ts';
import { STATEMACHINE_DIR } from '../../local/paths.ts';
import { escapeJavaScript, type RequestContext, renderRequest, renderResponse } from './support/velocity.ts';

const ARN = 'arn:aws:states:eu-west-1:123456789012:stateMachine:Conversation';
const requestTemplate = startSyncExecutionRequestTemplate(ARN);

interface StartSyncExecutionRequest {
  stateMachineArn: string;
  name: string;
  input: string;
}

function startRequest(request: RequestContext): { request: StartSyncExecutionRequest; input: ExecutionInput } {
  const rendered = renderRequest(requestTemplate, request);
  const parsed = JSON.parse(rendered.output) as StartSyncExecutionRequest;
  return { request: parsed, input: JSON.parse(parsed.input) as ExecutionInput };
}

const lowercased = (headers: Record<string, string>) =>
  Object.fromEntries(Object.entries(headers).map(([name, value]) => [name.toLowerCase(), value]));

describe('the escapeJavaScript stand-in', () => {
  it('follows Commons Lang: single quotes and slashes escaped, non-ASCII as \\uXXXX', () => {
    expect(escapeJavaScript(`it's "x" \\ / é\n`)).toBe(`it\\'s \\"x\\" \\\\ \\/ \\u00E9\\n`);
  });
});

describe('POST /webhook request template (StartSyncExecution)', () => {
  it('forwards exactly the contract header allow-list, never authorization', () => {
    const literal = /#set\(\$allowedHeaders = \[(.*)\]\)/.exec(requestTemplate)?.[1];
    const names = JSON.parse(`[${literal ?? ''}]`) as string[];
    expect(names).toEqual([...FORWARDED_HEADERS]);
    expect(names).not.toContain('authorization');
    expect(names).not.toContain('cookie');
  });

  it('starts the state machine with the request id as execution name', () => {
    const { request } = startRequest({ body: '{}', requestId: 'a1b2c3d4-0000-4000-8000-000000000001' });
    expect(request.stateMachineArn).toBe(ARN);
    expect(request.name).toBe('a1b2c3d4-0000-4000-8000-000000000001');
  });

  const bodies: Record<string, string> = {
    'a plain request': JSON.stringify({
      query: 'What are the top 5 deals closing this quarter?',
      source_system: 'testing_system',
      source_process: 'phase3_validation',
    }),
    'single and double quotes': `{"query":"it's a \\"quoted\\" 'thing'"}`,
    'backslashes, including one before a quote': `{"query":"C:\\\\temp\\\\ and \\\\' and \\\\\\" end"}`,
    'non-ASCII and emoji': '{"query":"Umsätze für Q3 — 季度 😀"}',
    'control characters and slashes': '{"query":"line1\\nline2\\ttab </script> \\u0001"}',
    'Velocity syntax in the text': '{"query":"$context.requestId #set($x = 1) ${x} ## not a comment"}',
    'a body that is not JSON': 'not json at all: \' " \\ {',
    'an empty body': '',
    'pretty-printed JSON with raw newlines': '{\n  "query": "x",\n  "metadata": {"a": [1, 2]}\n}\n',
  };
  for (const [name, body] of Object.entries(bodies)) {
    it(`carries the raw body as a string, unchanged: ${name}`, () => {
      expect(startRequest({ body }).input.body).toBe(body);
    });
  }

  it('builds the whole execution input of the contract', () => {
    const at = Date.UTC(2025, 7, 13, 10, 30, 45, 123);
    const headers = {
      'Content-Type': 'application/json',
      'User-Agent': `crm-sync/2.1 (it's "quoted")`,
      'Webhook-Id': 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W',
      'webhook-timestamp': '1723545045',
      'Webhook-Signature': 'v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=',
      'X-Request-Id': 'caller-42',
      'Idempotency-Key': 'idem-1',
      Authorization: 'Bearer secret-token',
      Cookie: 'session=abc',
      'X-Api-Key': 'key',
      Host: 'abc.execute-api.eu-west-1.amazonaws.com',
    };
    const { input } = startRequest({
      body: '{"query":"x"}',
      headers,
      requestId: 'req-1',
      sourceIp: '198.51.100.23',
      receivedAtMs: at,
    });
    expect(input).toEqual({
      body: '{"query":"x"}',
      headers: pickForwardedHeaders(lowercased(headers)),
      request_id: 'req-1',
      source_ip: '198.51.100.23',
      api_key_id: '',
      received_at: '2025-08-13T10:30:45.123Z',
    } satisfies ExecutionInput);
    expect(JSON.stringify(input)).not.toMatch(/secret-token|session=abc|authorization|cookie/i);
  });

  it('carries the id of the API key API Gateway accepted (never the key), for Validate to bind it to its source', () => {
    expect(startRequest({ body: '{}', apiKeyId: 'a1b2c3d4e5' }).input.api_key_id).toBe('a1b2c3d4e5');
    expect(startRequest({ body: '{}', headers: { 'X-Api-Key': 'the-secret-key-value' } }).input.api_key_id).toBe('');
  });

  it('keeps the first of two spellings of one header', () => {
    const { input } = startRequest({ body: '{}', headers: { 'User-Agent': 'first', 'user-agent': 'second' } });
    expect(input.headers).toEqual({ 'user-agent': 'first' });
  });

  it('writes received_at as ISO 8601 UTC with milliseconds from the request time', () => {
    const instants = [
      Date.UTC(2025, 0, 1, 0, 0, 0, 0),
      Date.UTC(2024, 1, 29, 23, 59, 59, 999),
      Date.UTC(2025, 11, 31, 12, 5, 9, 7),
      Date.UTC(2026, 5, 15, 8, 0, 0, 450),
    ];
    for (const ms of instants) {
      expect(startRequest({ body: '{}', receivedAtMs: ms }).input.received_at).toBe(new Date(ms).toISOString());
    }
  });

  it('does not send a body over the limit: the input is refused by Step Functions, which the response maps to 413', () => {
    const body = JSON.stringify({ query: 'x'.repeat(MAX_BODY_BYTES) });
    const rendered = renderRequest(requestTemplate, { body });
    const request = JSON.parse(rendered.output) as StartSyncExecutionRequest;
    expect(rendered.output.length).toBeLessThan(1_000);
    expect(() => JSON.parse(request.input)).toThrow();
    const refused = renderResponse(startFailedResponseTemplate(), {
      __type: 'com.amazonaws.swf.service.v2.model#InvalidExecutionInput',
      message: 'Invalid State Machine Execution Input',
    });
    expect({ statusCode: refused.status, body: JSON.parse(refused.output) }).toEqual(
      gatewayErrorResult('PAYLOAD_TOO_LARGE'),
    );
  });

  it('sends a body exactly at the limit', () => {
    const body = 'x'.repeat(MAX_BODY_BYTES);
    expect(startRequest({ body }).input.body).toBe(body);
  });

  it('as contract.md and deploy.md say: a 256 KB body makes an input Step Functions refuses, a 255 KB one fits', () => {
    // A request padded to exactly `bytes` bytes, sent with the usual headers.
    const bodyOf = (bytes: number) => {
      const json = JSON.stringify({ query: 'q', source_system: 'testing_system', source_process: 'phase3_validation' });
      return `{${' '.repeat(bytes - json.length)}${json.slice(1)}`;
    };
    const headers = { 'Content-Type': 'application/json', 'User-Agent': 'curl/8.5.0' };
    // The input string as StartSyncExecution receives it, in UTF-8 bytes as Step Functions counts it.
    const inputBytes = (body: string) => Buffer.byteLength(startRequest({ body, headers }).request.input);
    // Step Functions refuses an input over its limit (ValidationException), which the start-failed response maps to 413.
    expect(inputBytes(bodyOf(256 * 1024))).toBeGreaterThan(MAX_EXECUTION_INPUT_BYTES);
    expect(inputBytes(bodyOf(255 * 1024))).toBeLessThanOrEqual(MAX_EXECUTION_INPUT_BYTES);
  });
});

describe('POST /webhook response template (the finished execution → HTTP)', () => {
  const template = executionResultResponseTemplate();
  const render = (outcome: ExecutionOutcome) => {
    const rendered = renderResponse(template, {
      executionArn: 'arn:aws:states:eu-west-1:123456789012:express:Conversation:req-1:abc',
      status: outcome.status,
      ...(outcome.output === undefined ? {} : { output: outcome.output }),
      ...(outcome.error === undefined ? {} : { error: outcome.error }),
      ...(outcome.cause === undefined ? {} : { cause: outcome.cause }),
    });
    const headers = Object.keys(rendered.headers).length > 0 ? { headers: rendered.headers } : {};
    return { statusCode: rendered.status ?? 200, body: JSON.parse(rendered.output) as unknown, ...headers };
  };

  const rejected = startConversation({
    body: '{"query":""}',
    headers: {},
    request_id: 'r',
    source_ip: '127.0.0.1',
    received_at: '2025-08-13T10:30:45.000Z',
  });
  if (rejected.valid) throw new Error('expected the Validate stage to reject an empty query');

  const outcomes: Record<string, ExecutionOutcome> = {
    SUCCEEDED: {
      status: 'SUCCEEDED',
      output: JSON.stringify({
        success: true,
        conversation_id: 'webhook_20250813_103045_testing_phase3valid_abc123',
        response: { content: "it's done" },
      }),
    },
    'FAILED with ValidationError (the Validate rejection)': {
      status: 'FAILED',
      error: 'ValidationError',
      cause: rejected.rejection,
    },
    'FAILED with AgentError': {
      status: 'FAILED',
      error: 'AgentError',
      cause: JSON.stringify({
        success: false,
        error: { code: 'AGENT_ERROR', message: "agent said 'no'", conversation_id: 'webhook_x' },
      }),
    },
    'FAILED with AgentError but a cause that is not ours': {
      status: 'FAILED',
      error: 'AgentError',
      cause: 'Lambda timed out',
    },
    'FAILED with another error': {
      status: 'FAILED',
      error: 'States.Runtime',
      cause: 'An error occurred while executing the state',
    },
    'FAILED with an error name containing a quote': { status: 'FAILED', error: `Custom'Error"x`, cause: '{}' },
    TIMED_OUT: { status: 'TIMED_OUT' },
    ABORTED: { status: 'ABORTED' },
  };
  for (const [name, outcome] of Object.entries(outcomes)) {
    it(`maps ${name} exactly as the contract does`, () => {
      expect(render(outcome)).toEqual(httpResultForExecution(outcome));
    });
  }

  for (const [error, status] of Object.entries(FAILURE_STATUS)) {
    it(`maps FAILED with ${error} to ${status} with the Fail state's public body`, () => {
      const outcome: ExecutionOutcome = {
        status: 'FAILED',
        error,
        cause: JSON.stringify({ success: false, error: { code: 'X', message: `${error}: it's "bad"` } }),
      };
      expect(render(outcome)).toEqual(httpResultForExecution(outcome));
      expect(render(outcome).statusCode).toBe(status);
    });
  }

  it('answers 503 NOT_STARTED with Retry-After when Lambda throttled Validate (ValidateThrottled of both workflows)', () => {
    for (const file of ['conversation.asl.json', 'accept.asl.json']) {
      const asl = JSON.parse(readFileSync(path.join(STATEMACHINE_DIR, file), 'utf8'));
      const { Error: error, Cause: cause } = asl.States.ValidateThrottled;
      // A request's, that is: the conversation workflow exports the run of an accepted conversation instead.
      const { Next: next } = asl.States.Validate.Catch.find((c: { ErrorEquals: string[] }) =>
        c.ErrorEquals.includes('Lambda.TooManyRequestsException'),
      );
      expect(asl.States[next].Type === 'Choice' ? asl.States[next].Default : next).toBe('ValidateThrottled');
      const rendered = render({ status: 'FAILED', error, cause });
      expect(rendered).toMatchObject({ statusCode: 503, headers: { 'retry-after': '2' } });
      expect(rendered.body).toMatchObject({ success: false, error: { code: 'NOT_STARTED' } });
    }
  });

  it('answers 503 STORAGE_UNAVAILABLE with Retry-After when Validate’s stores failed (ValidateStorageUnavailable of both workflows), as locally', () => {
    for (const file of ['conversation.asl.json', 'accept.asl.json']) {
      const asl = JSON.parse(readFileSync(path.join(STATEMACHINE_DIR, file), 'utf8'));
      const { Error: error, Cause: cause } = asl.States.ValidateStorageUnavailable;
      expect(asl.States.Validate.Catch).toContainEqual(
        expect.objectContaining({ ErrorEquals: ['StorageUnavailable'], Next: 'ValidateStorageUnavailable' }),
      );
      const outcome: ExecutionOutcome = { status: 'FAILED', error, cause };
      const rendered = render(outcome);
      expect(rendered).toEqual(httpResultForExecution(outcome)); // what the local gateway answers for it
      expect(rendered).toMatchObject({ statusCode: 503, headers: { 'retry-after': '2' } });
      expect(rendered.body).toMatchObject({ success: false, error: { code: 'STORAGE_UNAVAILABLE' } });
    }
  });

  it('tells a retry that met its key still running (409) when to ask again, as the local gateway does', () => {
    const conflict: ExecutionOutcome = {
      status: 'FAILED',
      error: 'IdempotencyConflict',
      cause: JSON.stringify({ success: false, error: { code: 'IDEMPOTENCY_CONFLICT', message: 'still running' } }),
    };
    expect(render(conflict)).toMatchObject({ statusCode: 409, headers: { 'retry-after': '2' } });
  });

  it('uses 400, 502 and 504 where the contract says', () => {
    expect(
      render(outcomes['FAILED with ValidationError (the Validate rejection)'] as ExecutionOutcome).statusCode,
    ).toBe(400);
    expect(render(outcomes['FAILED with AgentError'] as ExecutionOutcome).statusCode).toBe(502);
    expect(render(outcomes.TIMED_OUT as ExecutionOutcome).statusCode).toBe(504);
    expect(render(outcomes['FAILED with another error'] as ExecutionOutcome).statusCode).toBe(500);
  });
});

describe('POST /webhook response template when Step Functions refuses to start', () => {
  const render = (body: unknown) => {
    const rendered = renderResponse(startFailedResponseTemplate(), body);
    return { statusCode: rendered.status, body: JSON.parse(rendered.output) as unknown };
  };

  it('maps an input over the Step Functions limit to 413', () => {
    expect(
      render({
        __type: 'ValidationException',
        message: "1 validation error detected: Value at 'input' failed to satisfy constraint",
      }),
    ).toEqual(gatewayErrorResult('PAYLOAD_TOO_LARGE'));
  });

  it('maps throttling to 429 with the Retry-After the contract promises', () => {
    const throttled = { __type: 'com.amazonaws.swf.service.v2.model#ThrottlingException', message: 'Rate exceeded' };
    expect(render(throttled)).toEqual(gatewayErrorResult('RATE_LIMITED'));
    expect(renderResponse(startFailedResponseTemplate(), throttled).headers).toEqual({
      'Retry-After': String(RETRY_AFTER_SECONDS.throttled),
    });
    // The other refusals set no header.
    expect(renderResponse(startFailedResponseTemplate(), { __type: 'AccessDeniedException' }).headers).toEqual({});
  });

  it('maps anything else to 500 with the AWS error type', () => {
    expect(render({ __type: 'AccessDeniedException', Message: 'not authorized' })).toEqual(
      httpResultForExecution({ status: 'FAILED', error: 'AccessDeniedException' }),
    );
    expect(render({})).toEqual(httpResultForExecution({ status: 'FAILED' }));
  });
});

describe('API Gateway answers without the workflow', () => {
  it('GET /health returns the contract health body with the stage', () => {
    const rendered = renderResponse(healthResponseTemplate('webhook-gateway'), {});
    expect(JSON.parse(rendered.output)).toEqual(healthBody({ service: 'webhook-gateway', stage: 'prod' }));
  });

  it('gateway errors carry the contract status and body', () => {
    for (const code of [
      'NOT_FOUND',
      'METHOD_NOT_ALLOWED',
      'UNSUPPORTED_MEDIA_TYPE',
      'PAYLOAD_TOO_LARGE',
      'RATE_LIMITED',
    ] as const) {
      const { statusCode, template } = gatewayErrorTemplate(code);
      expect({ statusCode, body: JSON.parse(template) }).toEqual(gatewayErrorResult(code));
    }
  });

  it('other API Gateway errors keep the contract error shape', () => {
    const filled = GENERIC_GATEWAY_ERROR_TEMPLATE.replace('$context.error.responseType', 'ACCESS_DENIED').replace(
      '$context.error.messageString',
      JSON.stringify('Forbidden'),
    );
    expect(JSON.parse(filled)).toEqual({ success: false, error: { code: 'ACCESS_DENIED', message: 'Forbidden' } });
  });
});
