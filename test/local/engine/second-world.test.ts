import { afterAll, describe, expect, it } from 'vitest';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * Two gateways, one after the other, in one process (as two `startWorld` in one test file): each conversation's
 * agent is the one its gateway was started with (AWS_ENDPOINT_URL_LAMBDA), its receiver and its exports its own.
 */
const worlds: TestWorld[] = [];
afterAll(async () => {
  for (const world of worlds) await world.close();
});

describe('a second gateway started in the same process', () => {
  it('reaches its own agent, receiver and embedded S3, not the first gateway’s', async () => {
    const first = await startWorld();
    worlds.push(first);
    const one = await first.post(SEED_REQUEST);
    expect(one.status, JSON.stringify(one.body)).toBe(200);
    expect(first.agent.invocations).toHaveLength(1);
    await first.close();
    worlds.pop();

    const second = await startWorld();
    worlds.push(second);
    const two = await second.post(SEED_REQUEST);
    // Before: 502 AGENT_ERROR (Lambda.SdkClientException: ECONNREFUSED at the first world's agent, closed).
    expect(two.status, JSON.stringify(two.body)).toBe(200);
    expect(second.agent.invocations).toHaveLength(1);
    expect(first.agent.invocations).toHaveLength(1);
    expect(two.body.tracking.delivery_status).toBe('delivered');
    expect(second.receiver.received).toHaveLength(1);
    await second.gateway.idle();
    expect((await second.listKeys()).some((key) => key.includes(two.body.conversation_id))).toBe(true);
  });
});
