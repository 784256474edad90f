import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';

const KEYS = { testing_system: 'key-of-testing-system-0001', 'CRM.System': 'key-of-crm-system-000000002' };
const CRM_REQUEST = { ...SEED_REQUEST, source_system: 'crm_system' };

let world: TestWorld;
beforeAll(async () => {
  world = await startWorld({
    API_KEYS: JSON.stringify(KEYS),
    // Three requests a day for crm_system: whoever sends them with its key spends them.
    RATE_LIMITS: JSON.stringify({ crm_system: { rateLimit: 100, burstLimit: 100, quotaPerDay: 3 } }),
    // A mapping set by hand does not replace the one the keys make.
    SOURCE_API_KEY_IDS: JSON.stringify({ 'local-key-testing_system': 'crm_system' }),
  });
});
afterAll(async () => {
  await world?.close();
});
beforeEach(() => {
  world.agent.reset();
  world.receiver.reset();
});

async function exportedCount(): Promise<number> {
  await world.gateway.idle();
  return (await world.listKeys()).length;
}

describe('per-source API keys (API_KEYS locally, usage plans on AWS): each key acts only as its own source', () => {
  it('no key or an unknown one → 403 INVALID_API_KEY, before any execution', async () => {
    for (const headers of [{}, { 'x-api-key': 'not-a-configured-key-at-all' }] as Record<string, string>[]) {
      const res = await world.post(SEED_REQUEST, headers);
      expect(res.status).toBe(403);
      expect(res.body).toEqual({
        success: false,
        error: { code: 'INVALID_API_KEY', message: 'Forbidden: a missing or unknown x-api-key' },
      });
    }
    expect(world.agent.invocations).toHaveLength(0);
  });

  it("another source's key → 403 SOURCE_MISMATCH, synchronous or asynchronous: no agent call, nothing exported", async () => {
    const before = await exportedCount();
    for (const prefer of [{}, { prefer: 'respond-async' }] as Record<string, string>[]) {
      const res = await world.post(SEED_REQUEST, { 'x-api-key': KEYS['CRM.System'], ...prefer });
      expect(res.status).toBe(403);
      expect(res.body).toEqual({
        success: false,
        error: {
          code: 'SOURCE_MISMATCH',
          message: 'This API key belongs to source system crm_system: it may only act as that source',
        },
      });
    }
    expect(world.agent.invocations).toHaveLength(0);
    expect(await exportedCount()).toBe(before);
  });

  it('GET /conversations/{id}: a key missing → 403 INVALID_API_KEY; another source’s → 403 SOURCE_MISMATCH; its own reads', async () => {
    const accepted = await world.post(SEED_REQUEST, { 'x-api-key': KEYS.testing_system, prefer: 'respond-async' });
    expect(accepted.status).toBe(202);
    await world.gateway.idle();
    const read = async (headers: Record<string, string>) => {
      const response = await fetch(accepted.body.status_url, { headers });
      return {
        status: response.status,
        cacheControl: response.headers.get('cache-control'),
        body: (await response.json()) as any,
      };
    };
    // Every answer of the status route is Cache-Control: no-store (contract.md), the gateway's own refusals too.
    expect(await read({})).toMatchObject({
      status: 403,
      cacheControl: 'no-store',
      body: { error: { code: 'INVALID_API_KEY' } },
    });
    expect(await read({ 'x-api-key': KEYS['CRM.System'] })).toMatchObject({
      status: 403,
      cacheControl: 'no-store',
      body: { error: { code: 'SOURCE_MISMATCH' } },
    });
    expect(await read({ 'x-api-key': KEYS.testing_system })).toMatchObject({
      status: 200,
      body: { status: 'completed', conversation_id: accepted.body.conversation_id },
    });
  });
  it("its own key → 200; a refused request spent the key's source's quota, not the named source's", async () => {
    const own = await world.post(SEED_REQUEST, { 'x-api-key': KEYS.testing_system });
    expect(own.status).toBe(200);
    expect(own.body.success).toBe(true);
    // crm_system's three requests of the day went on the refused POSTs and GET above: its key is over quota now.
    const crm = await world.post(CRM_REQUEST, { 'x-api-key': KEYS['CRM.System'] });
    expect(crm.status).toBe(429);
    expect(crm.body.error.code).toBe('RATE_LIMITED');
    expect(crm.headers.get('cache-control')).toBe('no-store');
    // Its status reads are refused the same way, and not to be kept by a cache either.
    const read = await fetch(
      `${world.gateway.url}/conversations/${own.body.conversation_id}?source_system=crm_system`,
      {
        headers: { 'x-api-key': KEYS['CRM.System'] },
      },
    );
    expect(read.status).toBe(429);
    expect(read.headers.get('cache-control')).toBe('no-store');
    expect(read.headers.get('retry-after')).toMatch(/^\d+$/);
  });
});
