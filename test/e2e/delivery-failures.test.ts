import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { WebhookType } from '../../functions/domain/conversation.ts';
import { FileEndpointStore } from '../../functions/shared/endpoint-store.ts';
import { PROJECT_ROOT } from '../../local/paths.ts';
import { runMain } from '../support/cli.ts';
import { folderOf, SEED_REQUEST, startWorld, stateEvents, type TestWorld } from '../support/gateway.ts';

let world: TestWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});
beforeEach(() => world.receiver.reset());

describe('Deliver: Retry on transient failures, Catch to the failed-delivery store', () => {
  it('receiver 500 then 200 → retried and delivered once, with the same delivery id', async () => {
    world.receiver.reply(500, 200);
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(200);
    expect(res.body.tracking.delivery_status).toBe('delivered');
    expect(world.receiver.received.map((r) => r.status)).toEqual([500, 200]);
    const ids = new Set(world.receiver.received.map((r) => r.headers['webhook-id']));
    expect([...ids]).toEqual([res.body.tracking.delivery_id]);
    expect(
      (await stateEvents(world, res.body.conversation_id, 'Deliver')).filter((e) => e.type === 'StateRetried'),
    ).toHaveLength(1);
    const record = await world.getJson(`${folderOf(res.body.conversation_id)}conversation.json`);
    expect(record.conversation.webhook_context.delivery_status).toBe('delivered');
    expect(await world.gateway.failedDeliveries.get(res.body.conversation_id)).toBeNull();
  });

  it.each([408, 429, 503])('receiver %i is retried', async (status) => {
    world.receiver.reply(status, 200);
    const res = await world.post(SEED_REQUEST);
    expect(res.body.tracking.delivery_status).toBe('delivered');
    expect(world.receiver.received).toHaveLength(2);
  });

  it('receiver 400 → no retry, failed delivery stored as dead, export says failed, the caller still gets its answer', async () => {
    world.receiver.reply(400);
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(200);
    expect(res.body.success).toBe(true);
    expect(res.body.tracking.delivery_status).toBe('failed');
    expect(world.receiver.received).toHaveLength(1);
    expect(
      (await stateEvents(world, res.body.conversation_id, 'Deliver')).filter((e) => e.type === 'StateRetried'),
    ).toHaveLength(0);

    const envelope = await world.gateway.failedDeliveries.get(res.body.conversation_id);
    expect(envelope).toMatchObject({
      conversation_id: res.body.conversation_id,
      delivery_id: res.body.tracking.delivery_id,
      webhook_type: 'deal_analysis',
      target: `${world.receiver.url}/…`,
      state: 'dead',
      next_due_at: null,
    });
    expect(envelope!.attempts).toHaveLength(1);
    expect(envelope!.attempts[0]).toMatchObject({ status_code: 400, outcome: 'permanent' });
    expect(envelope!.conversation.conversation.turns.map((t) => t.role)).toEqual(['user', 'assistant']);

    const record = await world.getJson(`${folderOf(res.body.conversation_id)}conversation.json`);
    expect(record.conversation.webhook_context).toMatchObject({
      delivery_status: 'failed',
      delivery_target: `${world.receiver.url}/…`,
    });
    expect(record.conversation.execution.status).toBe('completed');
    expect(record.conversation.execution.delivery_attempts.at(-1)).toMatchObject({
      status_code: 400,
      outcome: 'permanent',
    });
    expect(record.conversation.execution.errors.at(-1)).toMatchObject({
      stage: 'Deliver',
      error: 'DeliveryPermanentError',
    });
  });

  it('receiver always 503 → three retries, then stored as pending for the long schedule (status retrying)', async () => {
    world.receiver.reply(503, 503, 503, 503, 503);
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(200);
    expect(res.body.tracking.delivery_status).toBe('retrying');
    expect(world.receiver.received).toHaveLength(4);
    const envelope = await world.gateway.failedDeliveries.get(res.body.conversation_id);
    expect(envelope).toMatchObject({ state: 'pending' });
    expect(Date.parse(envelope!.next_due_at!)).toBeGreaterThan(Date.now());
  });

  it('receiver unreachable → retried, stored, exported as retrying with the network error', async () => {
    const closed = await import('node:net').then(({ createServer }) => {
      const s = createServer();
      return new Promise<number>((resolve) =>
        s.listen(0, '127.0.0.1', () => {
          const port = (s.address() as { port: number }).port;
          s.close(() => resolve(port));
        }),
      );
    });
    process.env.DEAL_ANALYSIS_WEBHOOK_URL = `http://127.0.0.1:${closed}/down`;
    try {
      const res = await world.post(SEED_REQUEST);
      expect(res.status).toBe(200);
      expect(res.body.tracking.delivery_status).toBe('retrying');
      expect(
        (await stateEvents(world, res.body.conversation_id, 'Deliver')).filter((e) => e.type === 'StateRetried'),
      ).toHaveLength(3);
      const envelope = await world.gateway.failedDeliveries.get(res.body.conversation_id);
      expect(envelope).toMatchObject({ state: 'pending', target: `http://127.0.0.1:${closed}/…` });
      expect(envelope!.last_error).toMatch(/network error: ECONNREFUSED/);
      const record = await world.getJson(`${folderOf(res.body.conversation_id)}conversation.json`);
      expect(record.conversation.webhook_context.delivery_status).toBe('retrying');
      expect(record.conversation.execution.delivery_attempts.at(-1)).toMatchObject({
        outcome: 'retryable',
        via: 'workflow',
      });
    } finally {
      process.env.DEAL_ANALYSIS_WEBHOOK_URL = world.receiver.urlFor('deal_analysis');
    }
  });

  it('receiver slower than DELIVERY_TIMEOUT_MS → the attempt times out and is retried', async () => {
    world.receiver.reply({ status: 200, held: true }, 200);
    process.env.DELIVERY_TIMEOUT_MS = '1000';
    const res = await world.post(SEED_REQUEST).finally(() => {
      process.env.DELIVERY_TIMEOUT_MS = '5000';
    });
    expect(res.body.tracking.delivery_status).toBe('delivered');
    const failed = (await stateEvents(world, res.body.conversation_id, 'Deliver')).find(
      (e) => e.type === 'StateFailed',
    );
    expect(String(failed?.cause)).toMatch(/timed out after 1000 ms/);
  });

  it('no URL configured for the type → permanent failure, stored, nothing lost', async () => {
    delete process.env.GENERAL_WEBHOOK_URL;
    try {
      const res = await world.post({ ...SEED_REQUEST, query: 'Say hello' });
      expect(res.status).toBe(200);
      expect(res.body.tracking).toMatchObject({ webhook_type: 'general', delivery_status: 'failed' });
      const envelope = await world.gateway.failedDeliveries.get(res.body.conversation_id);
      expect(envelope).toMatchObject({ state: 'dead' });
      expect(envelope!.last_error).toMatch(/GENERAL_WEBHOOK_URL/);
    } finally {
      process.env.GENERAL_WEBHOOK_URL = world.receiver.urlFor('general');
    }
  });
});

describe('a conversation whose delivery failed, then was redelivered', () => {
  it('its receiver paused between two quick retries: the attempts so far are kept, and the redelivery is the third', async () => {
    const endpoints = new FileEndpointStore(path.join(world.dataDir, 'deliveries'));
    let type: WebhookType = 'general';
    // The second attempt's 503 is answered once the operator's pause is stored: the next retry finds it paused.
    const pauseFirst = () => {
      type = world.receiver.received.at(-1)!.path.split('/').at(-1) as WebhookType;
      void endpoints.configure(type, { paused: true }, new Date()).then(() => world.receiver.letGo());
    };
    world.receiver.reply(503, { status: 503, held: true, onArrival: pauseFirst });
    const res = await world.post({ ...SEED_REQUEST, query: 'paused mid-retry' });
    const id = res.body.conversation_id as string;
    expect(world.receiver.received).toHaveLength(2);
    const cli = (args: string[]) => runMain(args, { LOCAL_DATA_DIR: world.dataDir, GATEWAY_URL: world.gateway.url });
    // Before: `0 attempts`, as if nothing had been sent.
    expect((await cli(['deliveries', 'list'])).stdout).toMatch(
      new RegExp(`${id}\\s+${type}\\s+2\\s+deferred: .*paused`),
    );

    await endpoints.resume(type, new Date());
    expect((await world.gateway.redelivery.redrive(id)).status).toBe('delivered');
    const attempts = (await world.getJson(`${folderOf(id)}conversation.json`)).conversation.execution.delivery_attempts;
    // Before: 1, 2, 1 (the redelivery numbered as the first attempt again).
    expect(attempts.map((a: { attempt: number; outcome: string }) => [a.attempt, a.outcome])).toEqual([
      [1, 'retryable'],
      [2, 'retryable'],
      [3, 'delivered'],
    ]);
  });

  it('is exported with the completed_at and total_time_ms it was first exported with: closed once', async () => {
    world.receiver.reply(503, 503, 503, 503);
    const res = await world.post({ ...SEED_REQUEST, query: 'closed once, whatever redelivers it' });
    const id = res.body.conversation_id as string;
    const first = (await world.getJson(`${folderOf(id)}conversation.json`)).conversation.execution;
    expect(first.errors.map((e: { stage: string }) => e.stage)).toEqual(['Deliver']);
    expect((await world.gateway.redelivery.redrive(id)).status).toBe('delivered');
    const after = (await world.getJson(`${folderOf(id)}conversation.json`)).conversation.execution;
    // Before: the failed-delivery envelope's copy had been closed when it was queued, Export's own a few ms later, and
    // the redelivery exported the envelope's.
    expect(after.completed_at).toBe(first.completed_at);
    expect(after.timings.total_ms).toBe(first.timings.total_ms);
    expect(after.errors).toEqual(first.errors);
    expect(after.delivery_attempts).toHaveLength(first.delivery_attempts.length + 1);
  });

  it('counts in error_count each failed Deliver run, its quick retries as one, as contract.md says', async () => {
    const contract = readFileSync(path.join(PROJECT_ROOT, 'docs', 'contract.md'), 'utf8');
    expect(contract.replace(/\s+/g, ' ')).toContain(
      "whose workflow's four attempts failed and whose second redelivery then delivered it has `error_count` 2 and `delivery_attempt_count` 6",
    );
    world.receiver.reply(503, 503, 503, 503, 503);
    const res = await world.post({ ...SEED_REQUEST, query: 'four attempts, one error' });
    const id = res.body.conversation_id as string;
    const analysis = () => world.getJson(`${folderOf(id)}analysis.json`);
    expect(await analysis()).toMatchObject({ error_count: 1, delivery_attempt_count: 4 });
    expect((await world.gateway.redelivery.redrive(id)).status).not.toBe('delivered');
    expect(await analysis()).toMatchObject({
      error_count: 2,
      delivery_attempt_count: 5,
      last_error: expect.stringMatching(/^Deliver: /),
    });
    expect((await world.gateway.redelivery.redrive(id)).status).toBe('delivered');
    expect(await analysis()).toMatchObject({ error_count: 2, delivery_attempt_count: 6, delivery_status: 'delivered' });
  });
});
