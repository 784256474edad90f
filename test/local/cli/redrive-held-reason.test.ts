import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMain } from '../../support/cli.ts';
import { failOneDelivery, queueOwedDeliveries, startWorld, type TestWorld } from '../../support/gateway.ts';

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

  it('says a dead-lettered delivery or a resend held back is not tried again by itself once the receiver is resumed', async () => {
    // Before, both said only "nothing is attempted until it is resumed": the operator resumed the receiver and waited,
    // but neither is on the schedule, so nothing came.
    const env = { LOCAL_DATA_DIR: world.dataDir, GATEWAY_URL: world.gateway.url };
    const endpoint = `${world.gateway.url}/local/endpoints/deal_analysis`;
    expect((await fetch(`${endpoint}/resume`, { method: 'POST' })).status).toBe(200);
    await failOneDelivery(world);
    const listed = (await (await fetch(`${world.gateway.url}/local/deliveries?state=dead`)).json()) as {
      deliveries: { conversation_id: string }[];
    };
    const dead = listed.deliveries[0]!.conversation_id;
    expect((await fetch(`${endpoint}/pause`, { method: 'POST' })).status).toBe(200);

    const redrive = await runMain(['deliveries', 'redrive', dead], env);
    expect(redrive.code, redrive.stderr).toBe(1);
    expect(redrive.stdout).toMatch(
      new RegExp(
        `^\\[1/1\\] ${dead} → held \\(execution \\S+\\): its receiver held it back: deal_analysis is paused since \\S+Z \\(\\d+s ago\\): nothing is attempted until it is resumed; a dead-lettered delivery is not tried again by itself: run this again then$`,
        'm',
      ),
    );

    expect((await fetch(`${endpoint}/resume`, { method: 'POST' })).status).toBe(200);
    expect((await runMain(['deliveries', 'redrive', dead], env)).code).toBe(0);
    expect((await fetch(`${endpoint}/pause`, { method: 'POST' })).status).toBe(200);
    const resend = await fetch(`${world.gateway.url}/local/deliveries/${dead}/resend`, { method: 'POST' });
    expect(await resend.json()).toMatchObject({
      status: 'held',
      held_by: expect.stringMatching(
        /: nothing is attempted until it is resumed; a resend is not tried again by itself/,
      ),
    });
  });
});
