import { afterAll, describe, expect, it } from 'vitest';
import { WEBHOOK_TYPES } from '../../../functions/domain/conversation.ts';
import { DELIVERY_URL_VARIABLES } from '../../../functions/domain/delivery.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * Ctrl-C / SIGTERM (RunningGateway.close): the conversations in flight finish first. Their deliveries to the built-in
 * receiver come back to this very server, so it must still listen for them; new conversations are refused meanwhile.
 */
let world: TestWorld | undefined;
afterAll(async () => {
  await world?.close();
});

describe('a graceful stop with a conversation in flight', () => {
  it('delivers it to the built-in receiver and exports it; a new request meanwhile gets 503 STOPPING', async () => {
    const { handler: classify } = await import('../../../functions/classify/handler.ts');
    let reachedClassify!: () => void;
    const inClassify = new Promise<void>((resolve) => {
      reachedClassify = resolve;
    });
    let letGo!: () => void;
    const gate = new Promise<void>((resolve) => {
      letGo = resolve;
    });
    // Every type to the built-in receiver (an empty variable counts as unset: docs/configuration.md).
    const builtIn = Object.fromEntries(WEBHOOK_TYPES.map((t) => [DELIVERY_URL_VARIABLES[t], '']));
    world = await startWorld(builtIn, {
      stageOverrides: {
        // The conversation is held after its agent answered, until the stop has begun.
        classify: async (input) => {
          reachedClassify();
          await gate;
          return classify(input as never);
        },
      },
    });
    const { gateway } = world;
    const answer = world.post(SEED_REQUEST);
    await inClassify;

    const stopped = gateway.close();
    const refused = await fetch(`${gateway.url}/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(SEED_REQUEST),
    });
    expect(refused.status).toBe(503);
    expect(refused.headers.get('retry-after')).toBe('5');
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('STOPPING');
    expect((await fetch(`${gateway.url}/health`)).status).toBe(503);

    letGo();
    const { status, body } = await answer;
    await stopped;
    // Before, the listener was closed first: the delivery failed with ECONNREFUSED and went to the schedule.
    expect(status).toBe(200);
    expect(body.tracking.delivery_status).toBe('delivered');
    expect(gateway.receiver.byType(body.tracking.webhook_type)).toHaveLength(1);
    expect(await gateway.failedDeliveries.list()).toEqual([]);
  });
});
