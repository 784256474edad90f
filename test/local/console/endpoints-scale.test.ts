import { readdir, utimes } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { readJson } from '../../../local/store/json-files.ts';
import { pendingEnvelope, T0 } from '../../support/aws-fixtures.ts';
import { startWorld, type TestWorld } from '../../support/gateway.ts';

vi.mock('../../../local/store/json-files.ts', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../../local/store/json-files.ts')>();
  return { ...original, readJson: vi.fn(original.readJson) };
});

/**
 * The receivers' queued counts (the console's Endpoints page, each conversation page, `GET /local/endpoints`) come
 * from the failed-delivery store's heads, kept while the files are unchanged: a view reads no envelope that every
 * earlier view read (docs/operations.md#receivers).
 */
let world: TestWorld;
beforeAll(async () => {
  world = await startWorld({ REDELIVERY_POLL_MS: '0' });
  for (let n = 0; n < 60; n++)
    await world.gateway.failedDeliveries.put(
      pendingEnvelope(`q${String(n).padStart(5, '0')}`, T0, { state: n % 2 ? 'settled' : 'dead', next_due_at: null }),
    );
  // Written a minute ago: a file changed within the second before a look is read again at the next look once it has
  // settled (local/store/failed-delivery-store.ts), so on a machine slow enough to pass that second between the views,
  // the views below read them again, rightly.
  const { dir } = world.gateway.failedDeliveries;
  const before = new Date(Date.now() - 60_000);
  for (const name of await readdir(dir)) await utimes(path.join(dir, name), before, before);
  await utimes(dir, before, before);
});
afterAll(async () => {
  await world?.close();
});

const envelopeReads = () =>
  vi.mocked(readJson).mock.calls.filter(([file]) => String(file).startsWith(world.gateway.failedDeliveries.dir)).length;

describe('the receivers with many failed-delivery envelopes stored', () => {
  it('a second view of the Endpoints page reads no envelope, and counts the 30 owed ones', async () => {
    const first = await fetch(`${world.gateway.url}/console/endpoints`);
    expect(first.status).toBe(200);
    vi.mocked(readJson).mockClear();
    const again = await fetch(`${world.gateway.url}/console/endpoints`);
    expect(again.status).toBe(200);
    expect(envelopeReads()).toBe(0);
    const views = (await (await fetch(`${world.gateway.url}/local/endpoints`)).json()) as {
      webhook_type: string;
      queued: number;
    }[];
    expect(views.find((v) => v.webhook_type === 'deal_analysis')?.queued).toBe(30);
    expect(envelopeReads()).toBe(0);
  });
});
