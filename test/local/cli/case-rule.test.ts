import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMain } from '../../support/cli.ts';
import { queueOwedDeliveries, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * One case rule for every value of a fixed set (docs/operations.md, "Runbook"): a webhook type, a status, a delivery
 * state are read in any case, on the command line and by the gateway's routes. Before, `conversations list --type
 * DEAL_ANALYSIS` was taken while `deliveries list --state PENDING`, `endpoints pause Deal_Analysis`, `deliveries
 * redrive --all --type DEAL_ANALYSIS` and the routes' `?state=`, `?type=` and `/local/endpoints/<type>/…` refused it.
 */
let world: TestWorld;
let owed: string[];

beforeAll(async () => {
  world = await startWorld();
  owed = await queueOwedDeliveries(world, 1); // deal_analysis paused, one delivery held
});
afterAll(async () => {
  await world?.close();
});

const cli = (args: string[]) => runMain(args, { LOCAL_DATA_DIR: world.dataDir, GATEWAY_URL: world.gateway.url });
const route = async (path: string, method = 'GET') => {
  const response = await fetch(`${world.gateway.url}${path}`, { method });
  return { status: response.status, body: (await response.json()) as any };
};

describe('one case rule', () => {
  it('the commands read a type or a state in any case', async () => {
    const listed = await cli(['deliveries', 'list', '--state', 'PENDING,Dead', '--json']);
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout).map((e: { conversation_id: string }) => e.conversation_id)).toEqual(owed);
    const planned = await cli(['deliveries', 'redrive', '--all', '--type', 'DEAL_ANALYSIS', '--dry-run', '--json']);
    expect(planned.code, planned.stderr).toBe(0);
    expect(JSON.parse(planned.stdout)).toHaveLength(1);
    const paused = await cli(['endpoints', 'pause', 'General', '--json']);
    expect(paused.code, paused.stderr).toBe(0);
    expect(JSON.parse(paused.stdout)).toMatchObject([{ webhook_type: 'general', status: 'paused' }]);
    expect((await cli(['endpoints', 'resume', 'GENERAL'])).code).toBe(0);
    // Still refused, as before: what names no type or state.
    expect((await cli(['deliveries', 'list', '--state', 'owed'])).stderr).toMatch(/--state takes pending, dead/);
    expect((await cli(['endpoints', 'pause', 'crm'])).stderr).toContain('"crm" is not a webhook type');
  });

  it("the gateway's operator routes do too", async () => {
    const all = await route('/local/deliveries?state=ALL');
    expect(all.status).toBe(200);
    expect(all.body.total).toBe(1);
    const plan = await route('/local/deliveries/plan?type=Deal_Analysis');
    expect(plan.status).toBe(200);
    expect(plan.body.count).toBe(1);
    const paused = await route('/local/endpoints/GENERAL/pause', 'POST');
    expect(paused.status).toBe(200);
    expect(paused.body).toMatchObject({ webhook_type: 'general', status: 'paused' });
    expect((await route('/local/endpoints/General/resume', 'POST')).body.status).not.toBe('paused');
    expect((await route('/local/deliveries/plan?type=crm')).status).toBe(400);
  });

  // A word that names no type, in the path of /local/endpoints/<type>/…, was 404 "No route for POST
  // /local/endpoints/crm/test." (as if the path were mistyped), while `?type=crm` and `endpoints test crm` named the
  // value and the types. Each now says the same as the CLI, 400 VALIDATION_ERROR (docs/contract.md).
  it.each(['pause', 'resume', 'test'])(
    '/local/endpoints/<not a type>/%s: 400 naming it and the types',
    async (action) => {
      const refused = await route(`/local/endpoints/crm/${action}`, 'POST');
      const words = '"crm" is not a webhook type: deal_analysis, data_analysis, lead_analysis, general';
      expect(refused).toEqual({
        status: 400,
        body: { success: false, error: { code: 'VALIDATION_ERROR', message: words } },
      });
      expect((await cli(['endpoints', action, 'crm'])).stderr).toContain(words);
      // Still 404: a path with no such action.
      expect((await route('/local/endpoints/general/nothing', 'POST')).status).toBe(404);
    },
  );
});
