import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * GET /local/endpoints beside one damaged receiver file (a crash cut it, or a hand edit): the other receivers are
 * listed as usual and the damaged one is named with what to do, as `endpoints list` does (docs/operations.md, "After
 * a crash"), rather than the whole route failing.
 */
let world: TestWorld;
let file: string;
beforeAll(async () => {
  world = await startWorld();
  const folder = path.join(world.dataDir, 'deliveries', 'endpoints');
  await mkdir(folder, { recursive: true });
  file = path.join(folder, 'deal_analysis.json');
  await writeFile(file, '{"webhook_type": "deal_an');
});
afterAll(async () => {
  await world?.close();
});

describe('GET /local/endpoints with one damaged receiver file', () => {
  it('lists the good receivers, and names the damaged file and what to do in its row', async () => {
    const res = await fetch(`${world.gateway.url}/local/endpoints`);
    expect(res.status).toBe(200);
    const rows = (await res.json()) as { webhook_type: string; status?: string; unreadable?: string }[];
    expect(rows.map((r) => r.webhook_type)).toEqual(['deal_analysis', 'data_analysis', 'lead_analysis', 'general']);
    expect(rows.filter((r) => r.status !== undefined).map((r) => r.webhook_type)).toEqual([
      'data_analysis',
      'lead_analysis',
      'general',
    ]);
    expect(rows[0]).toEqual({
      webhook_type: 'deal_analysis',
      unreadable: expect.stringContaining(`${file} is not valid JSON`),
      queued: 0,
    });
    expect(rows[0]!.unreadable).toMatch(/delete it to start that receiver afresh/);
  });
});
