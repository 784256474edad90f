import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileEndpointStore } from '../../../functions/shared/endpoint-store.ts';
import { rawGet } from '../../support/browser.ts';
import { startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * The Endpoints page said since when a receiver was paused ("since <time>") but showed a receiver the circuit breaker
 * disabled as "disabled" alone, while `endpoints list` says "disabled since <time> (<age> ago)". Now the page says
 * both as the CLI does, with how long ago.
 */
let world: TestWorld;
const DAY = 86_400_000;

beforeAll(async () => {
  world = await startWorld();
  // Failing since two days ago, disabled by the failure a day later (a policy of one failure and one day).
  const store = new FileEndpointStore(path.join(world.dataDir, 'deliveries'));
  const policy = { failureThreshold: 1, disableAfterMs: DAY };
  for (const ago of [2 * DAY, DAY])
    await store.recordFailure('data_analysis', 'HTTP 503', new Date(Date.now() - ago), policy);
  await store.configure('general', { paused: true }, new Date(Date.now() - 3 * 3_600_000));
  // A 429 asking for 10 minutes: every delivery of the type waits until then.
  await store.recordFailure(
    'lead_analysis',
    'HTTP 429',
    new Date(),
    { ...policy, failureThreshold: 5 },
    undefined,
    600_000,
  );
});
afterAll(async () => {
  await world?.close();
});

describe('the Endpoints page of a disabled and a paused receiver', () => {
  it('says since when each is so, and how long ago, as endpoints list does', async () => {
    const page = await rawGet(`${world.gateway.url}/console/endpoints`);
    expect(page.status).toBe(200);
    const state = (type: string) =>
      new RegExp(`<tr data-type="${type}" data-state="(\\w+)">\\s*<td class="type">\\w+</td><td[^>]*>(.*?)</td>`, 's')
        .exec(page.body)
        ?.slice(1)
        .map((s) => s.replace(/<[^>]+>/g, ''));
    expect(state('data_analysis')).toEqual(['disabled', expect.stringMatching(/^disabled since \S+Z \(24h ago\)$/)]);
    expect(state('general')).toEqual(['paused', expect.stringMatching(/^paused since \S+Z \(3h ago\)$/)]);
    expect(state('deal_analysis')).toEqual(['healthy', 'healthy']);
    // Before: "healthy" alone, while the receiver's Retry-After held every delivery of its type.
    expect(state('lead_analysis')).toEqual([
      'healthy',
      expect.stringMatching(
        /^healthy lead_analysis asked for nothing before \S+Z \(in 10m; its Retry-After\): the next send is allowed then$/,
      ),
    ]);
  });
});
