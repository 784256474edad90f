import { mkdtemp, readdir, rename, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FileEndpointStore } from '../../../functions/shared/endpoint-store.ts';
import { endpointGate, runSchedule } from '../../../functions/shared/redelivery.ts';
import { LocalFailedDeliveryStore } from '../../../local/store/failed-delivery-store.ts';
import { readJson } from '../../../local/store/json-files.ts';
import { pendingEnvelope, T0 } from '../../support/aws-fixtures.ts';

vi.mock('../../../local/store/json-files.ts', async (importOriginal) => {
  const original = await importOriginal<typeof import('../../../local/store/json-files.ts')>();
  return { ...original, readJson: vi.fn(original.readJson) };
});

/**
 * The schedule runs every second (REDELIVERY_POLL_MS) over a store that keeps every settled and dead envelope: a run
 * must cost what is due, not what is stored (docs/performance.md).
 */
let dataDir: string;
let store: LocalFailedDeliveryStore;
beforeEach(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'failed-delivery-store-'));
  store = new LocalFailedDeliveryStore(dataDir);
  vi.mocked(readJson).mockClear();
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

const NOW = new Date(T0.getTime() + 86_400_000);
const log = { info: () => {}, warn: () => {}, error: () => {} };
const envelopeReads = () =>
  vi.mocked(readJson).mock.calls.filter(([file]) => String(file).startsWith(store.dir)).length;

async function seed(counts: { due: number; notDue: number; settled: number }) {
  let n = 0;
  const suffix = () => `s${(n++).toString(36).padStart(5, '0')}`;
  for (let i = 0; i < counts.due; i++)
    await store.put(pendingEnvelope(suffix(), T0, { next_due_at: new Date(NOW.getTime() - 1000).toISOString() }));
  for (let i = 0; i < counts.notDue; i++)
    await store.put(pendingEnvelope(suffix(), T0, { next_due_at: new Date(NOW.getTime() + 3_600_000).toISOString() }));
  for (let i = 0; i < counts.settled; i++)
    await store.put(pendingEnvelope(suffix(), T0, { state: 'settled', next_due_at: null }));
}

/**
 * Every stored envelope made an hour old, as a store's files are between runs: the store reads a file changed within a
 * second of a look again once it is a second old (file times are coarse), so two runs right after the writes would
 * read them again whenever they straddled that second (a loaded machine).
 */
async function settleFiles() {
  const hourAgo = new Date(Date.now() - 3_600_000);
  for (const name of await readdir(store.dir)) await utimes(path.join(store.dir, name), hourAgo, hourAgo);
}

async function run(redelivered: string[] = []) {
  return runSchedule(
    store,
    async (envelope) => {
      redelivered.push(envelope.conversation_id);
      return { ok: false, status: 'FAILED', error: 'not in this test' };
    },
    { remainingMs: () => Number.POSITIVE_INFINITY, reserveMs: 0, minHoldSeconds: 0, log, now: () => NOW },
  );
}

describe('the local failed-delivery store under the schedule', () => {
  it('a run reads each stored envelope at most once, then only the due ones it hands out', async () => {
    await seed({ due: 35, notDue: 40, settled: 60 });
    const redelivered: string[] = [];
    const summary = await run(redelivered);
    // 135 heads read once, and the 35 due envelopes again as they are taken (4 batches of 10, not 4 scans of 135).
    expect(envelopeReads()).toBeLessThanOrEqual(135 + 35);
    expect(redelivered).toHaveLength(35);
    expect(new Set(redelivered).size).toBe(35);
    expect(summary.received).toBe(35);
  });

  it("a paused receiver's due deliveries are not read run after run, and go once it is resumed", async () => {
    const endpoints = new FileEndpointStore(path.join(dataDir, 'deliveries'));
    await endpoints.configure('deal_analysis', { paused: true }, T0);
    const due = new Date(NOW.getTime() - 1000).toISOString();
    for (let i = 0; i < 20; i++) await store.put(pendingEnvelope(`held${i}`, T0, { next_due_at: due }));
    for (let i = 0; i < 3; i++)
      await store.put(pendingEnvelope(`free${i}`, T0, { next_due_at: due, webhook_type: 'general' }));
    await settleFiles();
    const policy = { failureThreshold: 5, disableAfterMs: 0 };
    const gated = (redelivered: string[]) =>
      runSchedule(
        store,
        async (envelope) => {
          redelivered.push(envelope.conversation_id);
          return { ok: false, status: 'FAILED', error: 'not in this test' };
        },
        {
          remainingMs: () => Number.POSITIVE_INFINITY,
          reserveMs: 0,
          minHoldSeconds: 0,
          log,
          now: () => NOW,
          gate: endpointGate(endpoints, policy),
        },
      );
    const first: string[] = [];
    await gated(first);
    expect(first).toHaveLength(3); // the general ones; their failed runs come back in a minute
    vi.mocked(readJson).mockClear();
    const second: string[] = [];
    await gated(second);
    expect(second).toEqual([]);
    // The general ones' files changed (their failed runs were stored): their heads are read again, the held ones not.
    const heldReads = vi.mocked(readJson).mock.calls.filter(([file]) => String(file).includes('held'));
    expect(heldReads).toEqual([]);
    await endpoints.resume('deal_analysis', T0);
    const resumed: string[] = [];
    await gated(resumed);
    expect(resumed).toHaveLength(20);
  });

  it('a run with nothing new due reads no envelope: unchanged files are known by their stat', async () => {
    await seed({ due: 0, notDue: 40, settled: 60 });
    await settleFiles(); // on a loaded machine the two runs straddled that second (6 files read again)
    await run();
    vi.mocked(readJson).mockClear();
    const summary = await run();
    expect(envelopeReads()).toBe(0);
    expect(summary.received).toBe(0);
  });

  it('an envelope rewritten on disk by another process or a hand is read again and taken when it became due', async () => {
    await seed({ due: 0, notDue: 3, settled: 0 });
    await run();
    const [first] = await store.list();
    const file = path.join(store.dir, `${first!.conversation_id}.json`);
    // As a command (or an editor) saves it: a new file renamed over the old one.
    await writeFile(
      `${file}.tmp`,
      JSON.stringify({ ...first, next_due_at: new Date(NOW.getTime() - 1).toISOString() }),
    );
    await rename(`${file}.tmp`, file);
    const redelivered: string[] = [];
    await run(redelivered);
    expect(redelivered).toEqual([first!.conversation_id]);
  });
});

describe('listing the local failed-delivery store', () => {
  it('reads a few envelopes at a time, not every file at once (thousands of open files end in EMFILE)', async () => {
    await seed({ due: 0, notDue: 50, settled: 50 });
    const original = vi.mocked(readJson).getMockImplementation()!;
    let inFlight = 0;
    let most = 0;
    vi.mocked(readJson).mockImplementation(async (file) => {
      most = Math.max(most, ++inFlight);
      try {
        return await original(file);
      } finally {
        inFlight -= 1;
      }
    });
    try {
      expect(await store.list()).toHaveLength(100);
    } finally {
      vi.mocked(readJson).mockImplementation(original);
    }
    expect(most).toBeLessThanOrEqual(32);
  });
});
