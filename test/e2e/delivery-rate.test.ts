import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FileEndpointStore } from '../../functions/shared/endpoint-store.ts';
import { runMain } from '../support/cli.ts';
import { type ManualClock, manualClock, SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';

/**
 * A receiver's outbound rate (docs/operations.md#receivers) through the running local gateway. Deliver counts the
 * rate's windows on the world's clock, which stands still unless a delivery waits for the next window (its `sleep`
 * moves it on at once): which window each attempt took its token in is the gateway's own decision, not the machine's
 * speed.
 */
let world: TestWorld;
let clock: ManualClock;
beforeAll(async () => {
  clock = manualClock();
  world = await startWorld({}, { budgetClock: clock });
});
afterAll(async () => {
  vi.restoreAllMocks();
  await world?.close();
});

const cli = (args: string[]) =>
  runMain(args, { LOCAL_DATA_DIR: world.dataDir, GATEWAY_URL: world.gateway.url, NO_COLOR: '1' });

async function dealEndpoint() {
  const listed = JSON.parse((await cli(['endpoints', 'list', '--json'])).stdout);
  return listed.find((v: any) => v.webhook_type === 'deal_analysis');
}

describe('the outbound rate per type: a burst reaches the receiver no faster than the rate', () => {
  it('endpoints set --rate 2/s: a burst of 8 is attempted at most 2 per second, none lost', async () => {
    const N = 2;
    const set = await cli(['endpoints', 'set', 'deal_analysis', '--rate', `${N}/s`]);
    expect(set.code, set.stderr).toBe(0);
    expect((await dealEndpoint()).rate_per_second).toBe(N);
    const queuedBefore = (await dealEndpoint()).queued;
    // The tokens the rate granted and refused, with the clock's time of each (restored after the file).
    const tokens = vi.spyOn(FileEndpointStore.prototype, 'takeToken');

    const answers = await Promise.all(Array.from({ length: 8 }, () => world.post(SEED_REQUEST)));
    const statuses = answers.map((r) => r.body.tracking.delivery_status as string);
    const delivered = statuses.filter((s) => s === 'delivered').length;
    const queued = statuses.filter((s) => s === 'queued').length;
    expect(delivered + queued, statuses.join()).toBe(8);
    expect(world.receiver.received).toHaveLength(delivered);
    // Each attempt took a token; those granted fall at most N in any second of the clock the rate is counted on
    // (without the rate all 8 are attempted in the first). Some waited for a later second: a delivery over the rate
    // waits at most 2 s, then is queued.
    const granted = tokens.mock.calls.filter((_, i) => {
      const result = tokens.mock.settledResults[i];
      return result?.type === 'fulfilled' && result.value.ok;
    });
    expect(granted).toHaveLength(delivered);
    const perSecond = new Map<number, number>();
    for (const [, , now] of granted) {
      const second = Math.floor(now.getTime() / 1_000);
      perSecond.set(second, (perSecond.get(second) ?? 0) + 1);
    }
    expect(Math.max(...perSecond.values())).toBeLessThanOrEqual(N);
    expect(perSecond.size).toBeGreaterThan(1);
    // Nothing is lost: any queued wait in the failed-delivery store for the schedule.
    expect((await dealEndpoint()).queued).toBe(queuedBefore + queued);
  });

  it('a delivery the rate cannot fit within 2 s is queued without an attempt, kept for the schedule', async () => {
    // One a 4 s window: the second delivery of a window would wait 4 s, more than a delivery over the rate may.
    const set = await cli(['endpoints', 'set', 'deal_analysis', '--rate', '0.25/s']);
    expect(set.code, set.stderr).toBe(0);
    clock.advance(4_000 - (clock.now() % 4_000));
    const queuedBefore = (await dealEndpoint()).queued;
    world.receiver.reset();

    const first = await world.post(SEED_REQUEST);
    const second = await world.post(SEED_REQUEST);
    expect([first, second].map((r) => r.body.tracking.delivery_status)).toEqual(['delivered', 'queued']);
    expect(world.receiver.received).toHaveLength(1);
    expect((await dealEndpoint()).queued).toBe(queuedBefore + 1);
    const shown = await cli(['conversations', 'show', second.body.conversation_id, '--json']);
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout).delivery_attempts).toEqual([]);
  });
});
