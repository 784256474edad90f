import { describe, expect, it } from 'vitest';
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
});
