import { describe, expect, it } from 'vitest';
import { useHeldDeliverWorld } from '../../support/gateway.ts';

const setup = useHeldDeliverWorld();

/**
 * Ctrl-C's "stopping: …" line (local/cli/main.ts) counted the conversation executions only: a redelivery under way
 * (the schedule's, an operator's redrive or resend), which close() waits for too, was not counted
 * (test/local/server/stopping-in-flight.test.ts has the conversations).
 */
describe('what a stop waits for: redeliveries', () => {
  it('counts a redrive under way, which close() waits for too, by its workflow’s 60 s', async () => {
    const { held, world } = setup;
    const { gateway } = world;
    const id = await setup.deadLettered();
    expect(gateway.inFlight()).toEqual({ count: 0, endsBy: null });

    held.holdNext();
    const redriveSent = Date.now();
    const redrive = gateway.redelivery.redrive(id);
    await held.reached;
    const reachedAt = Date.now();
    const inFlight = gateway.inFlight();
    held.letGo();
    // Before: 0 ("no conversation in flight"), while close() waited for it.
    expect(inFlight.count).toBe(1);
    expect(inFlight.endsBy!.getTime()).toBeGreaterThanOrEqual(redriveSent + 60_000);
    expect(inFlight.endsBy!.getTime()).toBeLessThanOrEqual(reachedAt + 60_000);

    expect((await redrive).status).toBe('delivered');
    expect(gateway.inFlight()).toEqual({ count: 0, endsBy: null });
  });
});
