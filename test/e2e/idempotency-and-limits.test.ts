import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { folderOf, SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';

let world: TestWorld;
/** The rate limits' clock: it stands still unless a test moves it, so no token refills while requests run. */
const clock = Date.parse('2026-06-01T12:00:00Z');
beforeAll(async () => {
  world = await startWorld(
    { RATE_LIMITS: JSON.stringify({ limited_source: { rateLimit: 1, burstLimit: 2, quotaPerDay: 1000 } }) },
    { rateLimitClock: () => clock },
  );
});
afterAll(async () => {
  await world?.close();
});
beforeEach(() => {
  world.agent.reset();
  world.receiver.reset();
});

const key = () => `order-${Math.random().toString(36).slice(2)}`;

describe('Idempotency-Key: a retried request gets the first answer, not a second conversation', () => {
  it('the same key within 24 h returns the first response: same conversation id, one agent call, one delivery, one export', async () => {
    const k = key();
    const first = await world.post(SEED_REQUEST, { 'idempotency-key': k });
    expect(first.status).toBe(200);
    const objects = (await world.listKeys()).length;
    const again = await world.post(SEED_REQUEST, { 'idempotency-key': k });
    expect(again.status).toBe(200);
    expect(again.body).toEqual(first.body);
    expect(world.agent.invocations).toHaveLength(1);
    expect(world.receiver.received).toHaveLength(1);
    expect((await world.listKeys()).length).toBe(objects);
    expect(await world.listKeys(folderOf(first.body.conversation_id))).toHaveLength(4);
  });

  it('the inbound webhook-id works as the key when there is no Idempotency-Key', async () => {
    const id = `msg_${key()}`;
    const first = await world.post(SEED_REQUEST, { 'webhook-id': id });
    const again = await world.post(SEED_REQUEST, { 'webhook-id': id });
    expect(again.body.conversation_id).toBe(first.body.conversation_id);
    expect(world.agent.invocations).toHaveLength(1);
  });

  it('a retry that re-stamps its timestamp or reorders its metadata is still the same request', async () => {
    const k = key();
    const first = await world.post(
      { ...SEED_REQUEST, metadata: { a: 1, b: { c: 2, d: 3 } } },
      { 'idempotency-key': k },
    );
    const again = await world.post(
      { ...SEED_REQUEST, timestamp: '2025-08-13T10:31:50Z', metadata: { b: { d: 3, c: 2 }, a: 1 } },
      { 'idempotency-key': k },
    );
    expect(again.status).toBe(200);
    expect(again.body.conversation_id).toBe(first.body.conversation_id);
    expect(world.agent.invocations).toHaveLength(1);
  });

  it.each([
    ['query', { query: 'Which leads should we call first?' }],
    ['source_process', { source_process: 'another_process' }],
    ['metadata', { metadata: { account: 'ACME' } }],
    ['webhook_type', { webhook_type: 'general' }],
    ['thread_id', { thread_id: 'another-thread' }],
  ])('the same key for a different request (%s) → 400 IDEMPOTENCY_KEY_REUSED, nothing runs', async (field, change) => {
    const k = key();
    const first = await world.post(SEED_REQUEST, { 'idempotency-key': k });
    const objects = (await world.listKeys()).length;
    const other = await world.post({ ...SEED_REQUEST, ...change }, { 'idempotency-key': k });
    expect(other.status).toBe(400);
    expect(other.body).toMatchObject({
      success: false,
      error: {
        code: 'IDEMPOTENCY_KEY_REUSED',
        message: expect.stringMatching(/already used .* for a different request/),
        conversation_id: first.body.conversation_id,
      },
    });
    expect(other.body.error.message).toContain(field); // the message names every part that must match
    expect(world.agent.invocations).toHaveLength(1);
    expect(world.receiver.received).toHaveLength(1);
    expect((await world.listKeys()).length).toBe(objects);
    // The first request's retry still gets its answer.
    expect((await world.post(SEED_REQUEST, { 'idempotency-key': k })).body).toEqual(first.body);
  });

  it('two concurrent duplicates produce one conversation (the other gets 409 or the same answer)', async () => {
    // The agent answers only once one of them was refused: the other's run is under way all along (before: an answer
    // 200 ms late, which a loaded machine could let finish before the second request came).
    world.agent.behave((req) => ({ held: true, payload: { response: `Answer to: ${String(req.query)}` } }));
    const k = key();
    const both = [
      world.post(SEED_REQUEST, { 'idempotency-key': k }),
      world.post(SEED_REQUEST, { 'idempotency-key': k }),
    ] as const;
    expect((await Promise.race(both)).status).toBe(409);
    world.agent.letGo();
    const [a, b] = await Promise.all(both);
    expect(world.agent.invocations).toHaveLength(1);
    expect(world.receiver.received).toHaveLength(1);
    const statuses = [a.status, b.status].sort();
    expect(statuses).toEqual([200, 409]);
    const conflict = a.status === 409 ? a : b;
    expect(conflict.body.error.code).toBe('IDEMPOTENCY_CONFLICT');
    // When to ask again for the answer (the agent may take its whole budget), as API Gateway's template says too.
    expect(conflict.headers.get('retry-after')).toBe('2');
    const winner = a.status === 200 ? a : b;
    expect(conflict.body.error.conversation_id).toBe(winner.body.conversation_id);
    const later = await world.post(SEED_REQUEST, { 'idempotency-key': k });
    expect(later.body.conversation_id).toBe(winner.body.conversation_id);
  });

  it('keys are per source: the same key from another source is a new conversation', async () => {
    const k = key();
    const a = await world.post(SEED_REQUEST, { 'idempotency-key': k });
    const b = await world.post({ ...SEED_REQUEST, source_system: 'other_system' }, { 'idempotency-key': k });
    expect(b.body.conversation_id).not.toBe(a.body.conversation_id);
    expect(world.agent.invocations).toHaveLength(2);
  });

  it('after an agent failure the key is freed, so the retry really runs again', async () => {
    const k = key();
    world.agent.behave(() => ({ functionError: 'Unhandled', payload: { errorType: 'Boom', errorMessage: 'down' } }));
    expect((await world.post(SEED_REQUEST, { 'idempotency-key': k })).status).toBe(502);
    world.agent.reset();
    const retry = await world.post(SEED_REQUEST, { 'idempotency-key': k });
    expect(retry.status).toBe(200);
    expect(world.agent.invocations).toHaveLength(1);
  });

  it('an unusable key is a 400 naming the header', async () => {
    const res = await world.post(SEED_REQUEST, { 'idempotency-key': 'x'.repeat(300) });
    expect(res.status).toBe(400);
    expect(res.body.error.details).toEqual([
      { field: 'Idempotency-Key', message: expect.stringMatching(/1 to 255 visible ASCII/) },
    ]);
  });

  it('without a key, identical requests are separate conversations', async () => {
    const a = await world.post(SEED_REQUEST);
    const b = await world.post(SEED_REQUEST);
    expect(a.body.conversation_id).not.toBe(b.body.conversation_id);
  });
});

describe('per-source rate limits (RATE_LIMITS, as the API Gateway usage plans)', () => {
  it('past the burst → 429 RATE_LIMITED with Retry-After; other sources are not affected; no conversation runs', async () => {
    const limited = { ...SEED_REQUEST, source_system: 'limited_source' };
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await world.post(limited));
    expect(results.map((r) => r.status)).toEqual([200, 200, 429, 429]);
    const refused = results[2]!;
    expect(refused.body).toMatchObject({ success: false, error: { code: 'RATE_LIMITED' } });
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(world.agent.invocations).toHaveLength(2);
    expect((await world.post(SEED_REQUEST)).status).toBe(200);
  });
});
