import { DynamoDBClient, GetItemCommand } from '@aws-sdk/client-dynamodb';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { handler, type StatusHttpEvent } from '../../../functions/conversation-status/handler.ts';

/**
 * docs/contract.md#get-conversationsid: "Always `Cache-Control: no-store`" — the refusals too (400 without a source,
 * 404 for an id that cannot exist), so a cache between poller and API never keeps an answer of the status route.
 */
const event = (conversationId: string, query: Record<string, string> | null): StatusHttpEvent => ({
  pathParameters: { conversation_id: conversationId },
  queryStringParameters: query,
  headers: {},
});

describe('GET /conversations/{id}: every answer is no-store', () => {
  it.each([
    ['no source_system (400)', event('webhook_20261129_123213_testing_phase3valid_a0ci3ntgci', null), 400],
    [
      'a malformed source_system (400)',
      event('webhook_20261129_123213_testing_phase3valid_a0ci3ntgci', { source_system: 'a b' }),
      400,
    ],
    ['an id that cannot exist (404)', event('nope', { source_system: 'crm' }), 404],
    [
      'an unknown id (404)',
      event('webhook_20261129_123213_testing_phase3valid_a0ci3ntgci', { source_system: 'crm' }),
      404,
    ],
  ])('%s', async (_, request, status) => {
    const answer = await handler(request);
    expect(answer.statusCode).toBe(status);
    expect(answer.headers['cache-control']).toBe('no-store');
    // As the local gateway's routes answer JSON (local/server/http.ts): the status route is the same on AWS and here.
    expect(answer.headers['content-type']).toBe('application/json; charset=utf-8');
  });

  it('an id of no conversation id’s form without source_system: 404 saying so, naming no source_system', async () => {
    const answer = await handler(event('nope', null));
    expect(answer.statusCode).toBe(404);
    const { error } = JSON.parse(answer.body) as { error: { code: string; message: string } };
    expect(error.code).toBe('NOT_FOUND');
    expect(error.message).toContain('"nope": not a conversation id of this gateway');
    expect(error.message).not.toContain('source_system');
  });
});

/**
 * docs/contract.md, Errors: a status read that cannot answer in time gets API Gateway's 504 `TIMEOUT` shape, naming the
 * route, never the 502 a Lambda killed by its own timeout (10 s, under API Gateway's 29 s) would leave: its clients
 * (a DynamoDB GetItem, the inbound secrets) may each take longer than that at worst. Time is Vitest's fake clock.
 */
describe('GET /conversations/{id}: a read too slow for the function, or failed', () => {
  const dynamo = mockClient(DynamoDBClient);
  const saved = { ...process.env };
  beforeEach(() => {
    dynamo.reset();
    process.env.STATUS_TABLE_NAME = 'statuses';
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
    process.env = { ...saved };
  });
  const context = (remainingMs: number) =>
    ({
      awsRequestId: 'req-1',
      functionName: 'status',
      getRemainingTimeInMillis: () => remainingMs,
    }) as unknown as Context;

  it('answers 504 TIMEOUT itself, no-store, a second before its Lambda timeout', async () => {
    // The status table does not answer.
    dynamo.on(GetItemCommand).callsFake(() => new Promise(() => undefined));
    let answer: Awaited<ReturnType<typeof handler>> | undefined;
    void handler(
      event('webhook_20261129_123213_testing_phase3valid_a0ci3ntgci', { source_system: 'crm' }),
      context(10_000),
    ).then((a) => {
      answer = a;
    });
    await vi.advanceTimersByTimeAsync(8_900);
    expect(answer).toBeUndefined();
    await vi.advanceTimersByTimeAsync(100);
    expect(answer).toEqual({
      statusCode: 504,
      // When to ask again, as API Gateway's own timeout says.
      headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'retry-after': '2' },
      body: JSON.stringify({
        success: false,
        error: {
          code: 'TIMEOUT',
          message:
            'GET /conversations/{conversation_id} did not answer in time (a read it needs was slow): the status may be asked again in a moment',
        },
      }),
    });
  });

  it('a read that fails (the table throttled) answers 503 STORAGE_UNAVAILABLE, Retry-After, no-store: not a bare 502', async () => {
    // Thrown out of the Lambda, it would reach the poller as API Gateway's 502 "Internal server error", no Retry-After.
    dynamo
      .on(GetItemCommand)
      .rejects(
        Object.assign(new Error('Rate of requests exceeds the allowed throughput'), { name: 'ThrottlingException' }),
      );
    const answer = await handler(
      event('webhook_20261129_123213_testing_phase3valid_a0ci3ntgci', { source_system: 'crm' }),
      context(10_000),
    );
    expect(answer).toEqual({
      statusCode: 503,
      headers: { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', 'retry-after': '2' },
      body: JSON.stringify({
        success: false,
        error: {
          code: 'STORAGE_UNAVAILABLE',
          message:
            'GET /conversations/{conversation_id} could not read the status just now (a read it needs failed): ask again after Retry-After',
        },
      }),
    });
  });

  it('a read in time answers as usual', async () => {
    dynamo.on(GetItemCommand).resolves({});
    const answer = await handler(
      event('webhook_20261129_123213_testing_phase3valid_a0ci3ntgci', { source_system: 'crm' }),
      context(10_000),
    );
    expect(answer.statusCode).toBe(404);
  });
});
