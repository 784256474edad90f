import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * docs/contract.md#get-conversationsid and Errors: an id of no conversation id's form answers 404 before source_system
 * is looked at, saying what is wrong with the id, never "of this source_system" when none was sent; a well-formed id
 * unknown to the source answers 404 naming the source that was sent. Over the local gateway's HTTP route.
 */
let world: TestWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});

const get = async (target: string) => {
  const answer = await fetch(`${world.gateway.url}${target}`);
  return { status: answer.status, body: (await answer.json()) as { error: { code: string; message: string } } };
};

describe('GET /conversations/{id}: what is wrong with what was sent', () => {
  it('an id of no conversation id’s form, without source_system: 404 saying the id is not one, naming no source', async () => {
    const { status, body } = await get('/conversations/nope');
    expect(status).toBe(404);
    expect(body.error.code).toBe('NOT_FOUND');
    expect(body.error.message).toContain('"nope": not a conversation id of this gateway');
    expect(body.error.message).toContain('webhook_<YYYYMMDD>_<HHMMSS>_<source>_<process>_<suffix>');
    expect(body.error.message).not.toContain('source_system');
  });

  it('a well-formed id: 400 without source_system, 404 naming the source sent when it has no such conversation', async () => {
    const id = 'webhook_20261129_123213_testing_phase3valid_a0ci3ntgci';
    const missing = await get(`/conversations/${id}`);
    expect(missing.status).toBe(400);
    expect(missing.body.error.code).toBe('VALIDATION_ERROR');
    const unknown = await get(`/conversations/${id}?source_system=testing_system`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.message).toContain(`No asynchronous conversation ${id} of source_system testing_system`);
  });
});
