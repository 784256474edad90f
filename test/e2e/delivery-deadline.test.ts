import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import {
  folderOf,
  type ManualClock,
  manualClock,
  SEED_REQUEST,
  startWorld,
  stateEvents,
  type TestWorld,
} from '../support/gateway.ts';

/**
 * RESPONSE_TIMEOUT_MS is how long the caller waits; Validate's budget ends deliveries 4 s before it (1 s margin, 3 s
 * for Export and its fallback: functions/domain/budget.ts), so 4800 → deliveries end at 800 ms, 5500 → at 1500 ms.
 * The budget is counted on a clock that moves only when a test says time passed (the agent's or the receiver's), so
 * the time a delivery has left is the one the test set, however busy the machine: before, it was counted on the real
 * clock, and a loaded machine's slower run-up to Deliver shrank it below what the test expected.
 */
let world: TestWorld;
let clock: ManualClock;
beforeAll(async () => {
  clock = manualClock();
  world = await startWorld({}, { budgetClock: clock });
});
afterAll(async () => {
  await world?.close();
});
beforeEach(() => world.receiver.reset());

const withEnv = async <T>(env: Record<string, string>, fn: () => Promise<T>): Promise<T> => {
  const before = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  try {
    return await fn();
  } finally {
    for (const [k, v] of Object.entries(before)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    world.agent.reset();
  }
};

describe('the caller waits (RESPONSE_TIMEOUT_MS): in-workflow attempts never outlast the budget', () => {
  it('a slow agent leaves no time: no attempt, the answer comes back queued, and the schedule delivers it as attempt 1', async () => {
    // The agent answers 700 ms after the request arrived: 100 ms before deliveries end, less than an attempt needs.
    world.agent.behave(() => {
      clock.advance(700);
      return { payload: { response: 'Top deals closing this quarter: Acme.' } };
    });
    const res = await withEnv({ RESPONSE_TIMEOUT_MS: '4800' }, () => world.post(SEED_REQUEST));
    expect(res.status).toBe(200);
    expect(res.body.tracking.delivery_status).toBe('queued');
    expect(world.receiver.received).toHaveLength(0);
    const id = res.body.conversation_id as string;
    expect((await stateEvents(world, id, 'Deliver')).filter((e) => e.type === 'StateRetried')).toHaveLength(0);
    const envelope = (await world.gateway.failedDeliveries.get(id))!;
    expect(envelope).toMatchObject({
      state: 'pending',
      attempts: [],
      target: `${world.receiver.url}/…`,
    });
    expect(envelope.last_error).toMatch(
      /^deferred: no time left for a delivery attempt before \S+Z, when the caller's answer is due/,
    );
    const exported = await world.getJson(`${folderOf(id)}conversation.json`);
    expect(exported.conversation.webhook_context.delivery_status).toBe('queued');
    expect(exported.conversation.execution.delivery_attempts).toEqual([]);

    expect((await world.gateway.redelivery.redrive(id)).status).toBe('delivered');
    expect(world.receiver.received).toHaveLength(1);
    const after = await world.getJson(`${folderOf(id)}conversation.json`);
    expect(after.conversation.execution.delivery_attempts).toMatchObject([
      { attempt: 1, outcome: 'delivered', via: 'redrive' },
    ]);
    // The redrive's delivery comes after the completion, and the redelivery workflow's Export wrote this document.
    expect(after.conversation.execution.events.map((e: { type: string }) => e.type).slice(4)).toEqual([
      'WEBHOOK_OUTBOUND_QUEUED',
      'WEBHOOK_CONVERSATION_COMPLETED',
      'WEBHOOK_DELIVERY_SUCCESS',
      'WEBHOOK_CONVERSATION_EXPORTED',
    ]);
    expect(after.conversation.execution.events.at(-1).execution).toMatch(new RegExp(`^${id}-redelivery-`));
  });

  it("a slow receiver: the attempt's timeout is cut to the time left, and what remains goes to the schedule", async () => {
    // The agent answers at once; the receiver holds the attempt past its timeout (it answers only once reset or
    // closed), which uses up the 1500 ms left.
    world.receiver.reply({ status: 200, held: true, onArrival: () => clock.advance(1500) });
    const res = await withEnv({ RESPONSE_TIMEOUT_MS: '5500', DELIVERY_TIMEOUT_MS: '5000' }, () =>
      world.post(SEED_REQUEST),
    );
    expect(res.status).toBe(200);
    expect(res.body.tracking.delivery_status).toBe('retrying');
    expect(world.receiver.received).toHaveLength(1);
    const envelope = (await world.gateway.failedDeliveries.get(res.body.conversation_id))!;
    expect(envelope.attempts).toHaveLength(1);
    // Not DELIVERY_TIMEOUT_MS (5000): what was left before deliveries end, 1500 ms after the request arrived.
    expect(envelope.attempts[0]!.error).toBe('timed out after 1500 ms');
    expect(envelope.last_error).toMatch(/timed out after 1500 ms/);
  });
});
