import { mkdtemp, rm, utimes } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { LocalFailedDeliveryStore } from '../../../local/store/failed-delivery-store.ts';
import { pendingEnvelope, T0 } from '../../support/aws-fixtures.ts';
import { runMain } from '../../support/cli.ts';

/** Every file the stores read as JSON, by path: which envelopes a command reads. */
const reads = vi.hoisted(() => [] as string[]);
vi.mock(import('../../../local/store/json-files.ts'), async (original) =>
  (await import('../../support/read-recorder.ts')).recordReads(reads, await original()),
);

/**
 * `endpoints list` counts each receiver's queued deliveries from the envelopes' summary index
 * (`.data/summaries/failed-deliveries.json`, docs/operations.md): it read every envelope whole at each run.
 */
let dataDir: string;
let store: LocalFailedDeliveryStore;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-endpoints-reads-'));
  store = new LocalFailedDeliveryStore(dataDir);
  const anHourAgo = new Date(Date.now() - 3_600_000);
  for (let n = 0; n < 3; n++) {
    const envelope = pendingEnvelope(`ep${String(n).padStart(4, '0')}`, new Date(T0.getTime() + n * 1000));
    await store.put(envelope);
    await utimes(path.join(store.dir, `${envelope.conversation_id}.json`), anHourAgo, anHourAgo);
  }
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

const list = async () => {
  reads.length = 0;
  const listed = await runMain(['endpoints', 'list', '--json'], { LOCAL_DATA_DIR: dataDir, GATEWAY_URL: undefined });
  expect(listed.code, listed.stderr).toBe(0);
  return JSON.parse(listed.stdout) as { webhook_type: string; queued: number }[];
};

describe('endpoints list', () => {
  it('counts the queued deliveries without reading an envelope the index knows', async () => {
    await list(); // learns them
    const views = await list();
    expect(views.find((v) => v.webhook_type === 'deal_analysis')?.queued).toBe(3);
    expect(reads.filter((f) => path.dirname(f) === store.dir)).toEqual([]);
  });
});
