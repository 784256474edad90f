import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMain } from '../../support/cli.ts';
import { queueOwedDeliveries, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * `deliveries redrive` of a delivery its receiver held back said "(paused, disabled or at its rate: webhook-gateway
 * endpoints list)": which one, the operator had to look up. Now it names it, as the console's Redrive does (the same
 * code, functions/domain/endpoints.ts heldBackReason), and the gateway's answer (--json) has it as held_by.
 */
let world: TestWorld;
let id: string;

beforeAll(async () => {
  world = await startWorld();
  [id] = (await queueOwedDeliveries(world, 1)) as [string];
});
afterAll(async () => {
  await world?.close();
});

describe('deliveries redrive held back by a paused receiver', () => {
  it("says it is paused and since when; the gateway's answer has it as held_by", async () => {
    const env = { LOCAL_DATA_DIR: world.dataDir, GATEWAY_URL: world.gateway.url };
    const result = await runMain(['deliveries', 'redrive', id], env);
    expect(result.code, result.stderr).toBe(1);
    expect(result.stdout).toMatch(
      new RegExp(
        `^\\[1/1\\] ${id} → held \\(execution \\S+\\): its receiver held it back: deal_analysis is paused since \\S+Z \\(\\d+s ago\\): nothing is attempted until it is resumed$`,
        'm',
      ),
    );
    // The gateway's answer, which the CLI prints with --json and the console's Redrive reads.
    const answer = await fetch(`${world.gateway.url}/local/deliveries/${id}/redrive`, { method: 'POST' });
    expect(await answer.json()).toMatchObject({
      status: 'held',
      held_by: expect.stringMatching(/^deal_analysis is paused since \S+Z \(\d+s ago\): nothing is attempted/),
    });
  });
});
