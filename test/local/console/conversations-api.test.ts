import { utimes } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startGateway } from '../../../local/server/gateway.ts';
import { runMain } from '../../support/cli.ts';
import { NO_WAIT, queueOwedDeliveries, startWorld, type TestWorld } from '../../support/gateway.ts';

/** Every file the stores read as JSON, by path: which envelopes a console request reads. */
const reads = vi.hoisted(() => [] as string[]);
vi.mock(import('../../../local/store/json-files.ts'), async (original) =>
  (await import('../../support/read-recorder.ts')).recordReads(reads, await original()),
);

/**
 * `GET /console/api/conversations` answers the newest `limit` conversations and owed deliveries (100 by default,
 * `?limit=N` for another number) with how many deliveries are owed in all, and the console's list neither it nor the
 * page reads each owed envelope again at every view (docs/operations.md). At 13,500 envelopes it answered every one
 * of them with its record (megabytes), read again at each view.
 */
const OWED = 5;
let world: TestWorld;
const owed: string[] = [];

beforeAll(async () => {
  world = await startWorld();
  owed.push(...(await queueOwedDeliveries(world, OWED)).toReversed()); // newest first
});
afterAll(async () => {
  await world?.close();
});

const api = async (query = '') => {
  const response = await fetch(`${world.gateway.url}/console/api/conversations${query}`);
  return { status: response.status, body: (await response.json()) as any };
};
const envelopeReads = () => reads.filter((f) => path.dirname(f) === path.join(world.dataDir, 'failed-deliveries'));

describe('GET /console/api/conversations', () => {
  it('answers the newest 100 by default, with how many deliveries are owed', async () => {
    const { status, body } = await api();
    expect(status).toBe(200);
    expect(body.conversations.map((c: { conversation_id: string }) => c.conversation_id)).toEqual(owed);
    expect(body.failed_deliveries.map((e: { conversation_id: string }) => e.conversation_id)).toEqual(owed);
    expect(body.failed_deliveries_total).toBe(OWED);
  });

  it('?limit=N answers the newest N of each, and the total', async () => {
    const { status, body } = await api('?limit=2');
    expect(status).toBe(200);
    expect(body.conversations.map((c: { conversation_id: string }) => c.conversation_id)).toEqual(owed.slice(0, 2));
    expect(body.failed_deliveries.map((e: { conversation_id: string }) => e.conversation_id)).toEqual(owed.slice(0, 2));
    expect(body.failed_deliveries_total).toBe(OWED);
  });

  it('refuses a limit that is not a whole number from 1 to 1000', async () => {
    for (const bad of ['0', '-1', 'ten', '1001', '2.5']) {
      const { status, body } = await api(`?limit=${bad}`);
      expect(status, bad).toBe(400);
      expect(body.error.code).toBe('INVALID_LIMIT');
    }
    // Before, the first counted: 200 with one row of each.
    const twice = await api('?limit=1&limit=0');
    expect(twice.status).toBe(400);
    expect(twice.body.error).toEqual({ code: 'INVALID_LIMIT', message: 'limit takes one value, got 2' });
  });

  it('reads no envelope again while none changed, for the API and for the list page', async () => {
    // Unchanged for an hour: an envelope changed within the last second is read again once it is a second old (file
    // times are coarse), which a slow machine's calls below would otherwise see as a read.
    const anHourAgo = new Date(Date.now() - 3_600_000);
    for (const id of owed)
      await utimes(path.join(world.dataDir, 'failed-deliveries', `${id}.json`), anHourAgo, anHourAgo);
    await api();
    reads.length = 0;
    await api();
    const page = await fetch(`${world.gateway.url}/console`);
    expect(page.status).toBe(200);
    expect(await page.text()).toContain(owed[0]);
    expect(envelopeReads()).toEqual([]);
  });
});

describe('the first view after a start', () => {
  it('reads only the envelopes it shows: the others are chosen and counted from the summary index', async () => {
    // Written an hour ago (the index keeps only files unchanged for a second), and indexed by a command.
    const anHourAgo = new Date(Date.now() - 3_600_000);
    for (const id of owed)
      await utimes(path.join(world.dataDir, 'failed-deliveries', `${id}.json`), anHourAgo, anHourAgo);
    expect((await runMain(['deliveries', 'list'], { LOCAL_DATA_DIR: world.dataDir })).code).toBe(0);
    await world.gateway.close();
    world.gateway = await startGateway({ port: 0, s3Port: 0, dataDir: world.dataDir, retryIntervalOverrides: NO_WAIT });
    reads.length = 0;
    const { status, body } = await api('?limit=1');
    expect(status).toBe(200);
    expect(body.failed_deliveries.map((e: { conversation_id: string }) => e.conversation_id)).toEqual(owed.slice(0, 1));
    expect(body.failed_deliveries_total).toBe(OWED);
    expect(envelopeReads()).toEqual([path.join(world.dataDir, 'failed-deliveries', `${owed[0]}.json`)]);
  });
});
