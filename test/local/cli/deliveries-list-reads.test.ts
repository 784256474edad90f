import { mkdtemp, rm, utimes, writeFile } from 'node:fs/promises';
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
 * `deliveries list` reads only the envelopes it shows: the others are chosen and counted from the summary index
 * (`.data/summaries/failed-deliveries.json`, docs/operations.md), each file read again only once it changed. It read
 * every envelope to show the newest 50 (7.2 s at 54,000 of them).
 */
let dataDir: string;
let store: LocalFailedDeliveryStore;
/** 6 pending envelopes, newest first. */
const newestFirst: string[] = [];
const DAMAGED = 'webhook_20250813_103000_crm_sync_damaged0.json';

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-deliveries-reads-'));
  store = new LocalFailedDeliveryStore(dataDir);
  for (let n = 0; n < 6; n++) {
    const envelope = pendingEnvelope(`rd${String(n).padStart(4, '0')}`, new Date(T0.getTime() + n * 1000));
    await store.put(envelope);
    newestFirst.unshift(envelope.conversation_id);
  }
  await writeFile(path.join(store.dir, DAMAGED), '{"version": 1, "conv');
  // Written an hour ago: the index keeps what it learns only of files unchanged for a second (file times are coarse).
  const anHourAgo = new Date(Date.now() - 3_600_000);
  for (const id of newestFirst) await utimes(path.join(store.dir, `${id}.json`), anHourAgo, anHourAgo);
  await utimes(path.join(store.dir, DAMAGED), anHourAgo, anHourAgo);
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

const envelopesRead = () => reads.filter((f) => path.dirname(f) === store.dir).map((f) => path.basename(f, '.json'));
const idsIn = (stdout: string) => stdout.split('\n').flatMap((l) => (/^webhook_\S+/.exec(l) ?? []).slice(0, 1));
const list = async (...args: string[]) => {
  reads.length = 0;
  const listed = await runMain(['deliveries', 'list', ...args], { LOCAL_DATA_DIR: dataDir });
  expect(listed.code, listed.stderr).toBe(0);
  return listed;
};

describe('deliveries list reads only what it shows', () => {
  it('reads the shown envelopes only, once the index knows the others; counts and names the rest', async () => {
    const first = await list('--limit', '2');
    expect(idsIn(first.stdout)).toEqual(newestFirst.slice(0, 2));
    const again = await list('--limit', '2');
    expect(idsIn(again.stdout)).toEqual(newestFirst.slice(0, 2));
    expect(envelopesRead().sort()).toEqual(newestFirst.slice(0, 2).sort());
    expect(again.stdout.trimEnd().split('\n').at(-1)).toBe('(4 older not shown; use --limit)');
    // The damaged file is still named, from what the index learnt of it.
    expect(again.stderr).toContain(`(${path.basename(DAMAGED, '.json')})`);
    const json = await list('--json', '--limit', '3');
    expect(JSON.parse(json.stdout).map((e: { conversation_id: string }) => e.conversation_id)).toEqual(
      newestFirst.slice(0, 3),
    );
    expect(envelopesRead().sort()).toEqual(newestFirst.slice(0, 3).sort());
  });

  it('sees an envelope edited in place (by hand) at the next list', async () => {
    const oldest = newestFirst.at(-1)!;
    const file = path.join(store.dir, `${oldest}.json`);
    const settled = { ...(await store.get(oldest))!, state: 'settled', next_due_at: null };
    await writeFile(file, JSON.stringify(settled));
    const listed = await list('--limit', '2');
    expect(listed.stdout.trimEnd().split('\n').at(-1)).toBe('(3 older not shown; use --limit)');
    expect(envelopesRead()).toContain(oldest);
  });
});
