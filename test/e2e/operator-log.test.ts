import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RequestSummary } from '../../local/server/config.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';

const KEY = 'key-of-testing-system-0001';
/** What the operator log (npm start) prints, one summary a line. */
const operatorLog: RequestSummary[] = [];

let world: TestWorld;
beforeAll(async () => {
  world = await startWorld(
    {
      API_KEYS: JSON.stringify({ testing_system: KEY }),
      RATE_LIMITS: JSON.stringify({ testing_system: { rateLimit: 1, burstLimit: 1 } }),
    },
    // No token refills while the test runs.
    { rateLimitClock: () => 0, onExecution: (summary) => operatorLog.push(summary) },
  );
});
afterAll(async () => {
  await world?.close();
});

describe('the operator log (docs/operations.md, "The operator log"): one line per POST /webhook', () => {
  it('also for what is refused before any execution: API key, media type, size, rate', async () => {
    const sent = [
      await world.post(SEED_REQUEST),
      await world.post(SEED_REQUEST, { 'x-api-key': KEY, 'content-type': 'text/plain' }),
      await world.post({ ...SEED_REQUEST, query: 'x'.repeat(300_000) }, { 'x-api-key': KEY }),
      await world.post(SEED_REQUEST, { 'x-api-key': KEY }),
      await world.post(SEED_REQUEST, { 'x-api-key': KEY }),
    ];
    expect(sent.map((res) => res.status)).toEqual([403, 415, 413, 200, 429]);
    await world.gateway.idle();
    expect(operatorLog.map((line) => [line.http_status, line.detail.split(':')[0]])).toEqual([
      [403, 'INVALID_API_KEY'],
      [415, 'UNSUPPORTED_MEDIA_TYPE'],
      [413, 'PAYLOAD_TOO_LARGE'],
      [200, 'deal_analysis delivered'],
      [429, 'RATE_LIMITED'],
    ]);
    expect(operatorLog.filter((line) => line.http_status !== 200).map((line) => line.conversation_id)).toEqual([
      null,
      null,
      null,
      null,
    ]);
  });
});
