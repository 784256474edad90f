import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LocalFailedDeliveryStore } from '../../../local/store/failed-delivery-store.ts';
import { pendingEnvelope, T0 } from '../../support/aws-fixtures.ts';
import { startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * `GET /local/deliveries` and the recover plan (`GET /local/deliveries/plan`) answer the newest (the plan: the oldest)
 * 50 deliveries unless `?limit=N` (1 to 1000) says otherwise, with how many there are in all and how many were not
 * shown (docs/operations.md): they answered every envelope (each with its record: 17 MB at 7,500 of them) or every
 * planned row.
 */
const OWED = 53;
let world: TestWorld;
/** The pending envelopes, oldest first. */
const oldestFirst: string[] = [];

beforeAll(async () => {
  world = await startWorld();
  const store = new LocalFailedDeliveryStore(world.dataDir);
  for (let n = 0; n < OWED; n++) {
    const envelope = pendingEnvelope(`op${String(n).padStart(4, '0')}`, new Date(T0.getTime() + n * 1000));
    await store.put(envelope);
    oldestFirst.push(envelope.conversation_id);
  }
  await store.put({ ...pendingEnvelope('op9999settled', T0), state: 'settled', next_due_at: null });
});
afterAll(async () => {
  await world?.close();
});

const get = async (pathname: string) => {
  const response = await fetch(`${world.gateway.url}${pathname}`);
  return { status: response.status, body: (await response.json()) as any };
};
const ids = (rows: { conversation_id: string }[]) => rows.map((r) => r.conversation_id);

describe('GET /local/deliveries', () => {
  it('answers the newest 50 owed by default, with the total and how many were not shown', async () => {
    const { status, body } = await get('/local/deliveries');
    expect(status).toBe(200);
    expect(ids(body.deliveries)).toEqual(oldestFirst.toReversed().slice(0, 50));
    expect(body.total).toBe(OWED);
    expect(body.not_shown).toBe(3);
  });

  it('?limit=N and ?state= choose how many and which', async () => {
    const two = await get('/local/deliveries?limit=2');
    expect(ids(two.body.deliveries)).toEqual(oldestFirst.toReversed().slice(0, 2));
    expect(two.body).toMatchObject({ total: OWED, not_shown: OWED - 2 });
    const all = await get('/local/deliveries?state=all&limit=1000');
    expect(all.body.deliveries).toHaveLength(OWED + 1);
    expect(all.body.not_shown).toBe(0);
    for (const bad of ['/local/deliveries?limit=0', '/local/deliveries?limit=1001', '/local/deliveries?state=gone'])
      expect((await get(bad)).status, bad).toBe(400);
  });
});

describe('GET /local/deliveries/plan', () => {
  it('counts every planned delivery and lists the oldest 50, or ?limit=N', async () => {
    const plan = await get('/local/deliveries/plan');
    expect(plan.status).toBe(200);
    expect(plan.body.count).toBe(OWED);
    expect(ids(plan.body.deliveries)).toEqual(oldestFirst.slice(0, 50));
    expect(plan.body.not_shown).toBe(3);
    expect(plan.body.deliveries[0]).toEqual({
      conversation_id: oldestFirst[0],
      webhook_type: 'deal_analysis',
      state: 'pending',
      attempts: 1,
      created_at: T0.toISOString(),
    });
    const one = await get('/local/deliveries/plan?limit=1');
    expect(one.body).toMatchObject({ count: OWED, not_shown: OWED - 1 });
    expect(ids(one.body.deliveries)).toEqual(oldestFirst.slice(0, 1));
    expect((await get('/local/deliveries/plan?limit=ten')).status).toBe(400);
  });
});

describe('a parameter the route does not take, or one given twice', () => {
  // Before, each was ignored: a mistyped ?typ= planned and recovered every type, and <id>/redrive?dry_run=1 redrove.
  it('is refused with 400 and the parameters the route takes, and nothing is redriven', async () => {
    const refused = async (method: string, pathname: string) => {
      const response = await fetch(`${world.gateway.url}${pathname}`, { method });
      return { status: response.status, body: (await response.json()) as any };
    };
    expect(await refused('GET', '/local/deliveries/plan?typ=data_analysis')).toEqual({
      status: 400,
      body: {
        success: false,
        error: {
          code: 'VALIDATION_ERROR',
          message: 'unknown parameter "typ": this route takes since, type, limit',
        },
      },
    });
    expect((await refused('POST', '/local/deliveries/redrive?typ=data_analysis')).body.error.message).toBe(
      'unknown parameter "typ": this route takes since, type, limit',
    );
    expect((await refused('POST', `/local/deliveries/${oldestFirst[0]}/redrive?dry_run=1`)).body.error.message).toBe(
      'unknown parameter "dry_run": this route takes none',
    );
    expect((await refused('POST', '/local/endpoints/deal_analysis/pause?until=tomorrow')).status).toBe(400);
    expect((await refused('GET', '/local/deliveries?stat=settled')).body.error.message).toBe(
      'unknown parameter "stat": this route takes state, limit',
    );
    expect((await refused('GET', '/local/deliveries?limit=1&limit=0')).body.error.message).toBe(
      'limit takes one value, got 2',
    );
    const plan = await get('/local/deliveries/plan');
    expect(plan.body.count).toBe(OWED);
    expect((await get('/local/endpoints')).body[0]).toMatchObject({ webhook_type: 'deal_analysis', paused_at: null });
  });
});
