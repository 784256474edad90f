import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rawGet } from '../../support/browser.ts';
import { queueOwedDeliveries, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * A conversation owed to a paused receiver offered Redrive as "delivers it now through
 * statemachine/redelivery.asl.json" (a delivered one Resend as "delivers it once more"), though a paused (or
 * disabled) receiver holds an operator's redrive and resend too: pressed, nothing was attempted. Now the button's
 * note says so, since when (as `deliveries redrive` says it) and where to resume it; once resumed it says "delivers it
 * now".
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

const note = async (button: 'redrive' | 'resend') => {
  const page = await rawGet(`${world.gateway.url}/console/conversations/${id}`);
  expect(page.status).toBe(200);
  expect(page.body).toContain(`id="${button}"`);
  return new RegExp(`<small id="${button}-note">(.*?)</small>`, 's').exec(page.body)?.[1]?.replace(/<[^>]+>/g, '');
};
const redriveNote = () => note('redrive');

describe("a conversation page's Redrive of a delivery its receiver holds", () => {
  it('says the redrive (or resend) is held too while the receiver is paused, and delivers now once resumed', async () => {
    expect(await redriveNote()).toMatch(
      /^deal_analysis is paused since \S+ \(\d+s ago\): a redrive is held back too, nothing attempted, until it is resumed on the Endpoints page$/,
    );
    expect((await rawGet(`${world.gateway.url}/local/endpoints/deal_analysis/resume`, {}, 'POST')).status).toBe(200);
    expect(await redriveNote()).toBe('delivers it now through statemachine/redelivery.asl.json');

    // Delivered, then its receiver paused: a Resend is held back too, and says so.
    const redriven = await rawGet(`${world.gateway.url}/local/deliveries/${id}/redrive`, {}, 'POST');
    expect(JSON.parse(redriven.body).status).toBe('delivered');
    expect(await note('resend')).toMatch(/^delivers it once more under the same webhook-id \S+$/);
    expect((await rawGet(`${world.gateway.url}/local/endpoints/deal_analysis/pause`, {}, 'POST')).status).toBe(200);
    expect(await note('resend')).toMatch(
      /^deal_analysis is paused since \S+ \(\d+s ago\): a resend is held back too, nothing attempted, until it is resumed on the Endpoints page$/,
    );
  });
});
