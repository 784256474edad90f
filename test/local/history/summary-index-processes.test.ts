import { rmSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { parseFilter } from '../../../local/history/conversation-filters.ts';
import { listConversations } from '../../../local/history/listing.ts';
import { SummaryIndex } from '../../../local/history/summary-index.ts';
import { ExecutionStore } from '../../../local/store/execution-store.ts';
import { ageHistories, saveKeyedHistory } from '../../support/history-reads.ts';
import { anotherHost } from '../../support/pid-namespaces.ts';

/**
 * The summary index (`summaries/conversations.json`) has several writers on one data folder: the running gateway (its
 * console's listings, its fold of the saved entries) and each command (`conversations list|show --key`). Each kept
 * what it loaded and wrote it whole: a gateway that loaded the index before a `--key` filled it (reading every
 * history: 68 s at 54,000 conversations) wrote it back without what the command learnt, and the next `--key` read
 * every history again. Each writer now merges what another wrote since it read it (docs/operations.md, "Runbook").
 */
const COUNT = 12;
let dataDir: string;
let store: ExecutionStore;
const ids: string[] = [];

const saveHistory = (target: ExecutionStore, n: number) => saveKeyedHistory(target, n, 'mp');

/** A `--key` lookup as the command makes it, with an index of its own: how many histories it read. */
async function lookUpKey(key: string): Promise<{ ids: string[]; read: number }> {
  let read = 0;
  const listing = await listConversations(store, new SummaryIndex(store), parseFilter({ key }), 50, null, (p) => {
    read = p.read;
  });
  return { ids: listing.rows.map((r) => r.conversation_id), read };
}

const indexFile = () => path.join(dataDir, 'summaries', 'conversations.json');

/** The index as an earlier version wrote it: every entry without the request's keys. */
async function indexOfEarlierVersion(): Promise<void> {
  await rm(path.join(dataDir, 'summaries'), { recursive: true, force: true });
  await listConversations(store, new SummaryIndex(store), parseFilter({}), 1_000);
  const stored = JSON.parse(await readFile(indexFile(), 'utf8'));
  for (const entry of Object.values(stored.entries) as { row: Record<string, unknown> }[]) {
    delete entry.row.idempotency_key;
    delete entry.row.webhook_id;
  }
  await writeFile(indexFile(), JSON.stringify(stored));
}

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-index-processes-'));
  store = new ExecutionStore(dataDir);
  for (let n = 0; n < COUNT; n++) ids.push(await saveHistory(store, n));
  await ageHistories(store, ids);
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('a gateway and a command writing the summary index of one data folder', () => {
  for (const how of ['a console listing', 'the fold of its saved entries'] as const)
    it(`the entries a --key filled survive the gateway's write (${how}): the next --key reads no history`, async () => {
      await indexOfEarlierVersion();
      // The gateway loaded the index before the command ran (its console listed, or it saved a history).
      const gateway: ExecutionStore = new ExecutionStore(dataDir, {
        onSaved: (id, file, record) => SummaryIndex.of(gateway).recordSaved(id, file, record),
      });
      const index = SummaryIndex.of(gateway);
      await index.rowOf(ids[0]!, true);

      const first = await lookUpKey('msg_3');
      expect(first).toEqual({ ids: [ids[3]], read: COUNT });

      // Then it saves a new history, and writes its index: a console listing a while later (which finds that
      // history's entry settled), or the fold of the saved entries once their file is large.
      const later = await saveHistory(gateway, COUNT);
      if (how === 'a console listing') {
        await ageHistories(store, [later]);
        await listConversations(gateway, index, parseFilter({}), 1);
      } else await index.forgetRemoved();

      // Before: the gateway's write put back the entries without keys, and this read every history again.
      expect(await lookUpKey('msg_5')).toEqual({ ids: [ids[5]], read: 0 });
      expect(await lookUpKey(`msg_${COUNT}`)).toEqual({ ids: [later], read: 0 });
      await rm(path.join(store.dir, later), { recursive: true, force: true });
    });

  it("the gateway's next listing by key finds what a --key filled: it reads no history", async () => {
    await indexOfEarlierVersion();
    const gateway = new ExecutionStore(dataDir);
    const index = SummaryIndex.of(gateway);
    await index.rowOf(ids[0]!, true);
    expect(await lookUpKey('msg_4')).toEqual({ ids: [ids[4]], read: COUNT });
    // The console's list with ?key= (its index loaded before the command ran). Before: it read every history again.
    let read = -1;
    const listing = await listConversations(gateway, index, parseFilter({ key: 'msg_9' }), 50, null, (p) => {
      read = p.read;
    });
    expect(listing.rows.map((r) => r.conversation_id)).toEqual([ids[9]]);
    expect(read).toBe(0);
  });

  it('two commands filling the index at once keep both their entries', async () => {
    await rm(path.join(dataDir, 'summaries'), { recursive: true, force: true });
    const [one, other] = [new SummaryIndex(store), new SummaryIndex(store)];
    // Each loaded the (missing) index, then read the histories of its half.
    for (const [n, id] of ids.entries()) await (n % 2 === 0 ? one : other).rowOf(id);
    await Promise.all([one.save(), other.save()]);
    const stored = JSON.parse(await readFile(indexFile(), 'utf8'));
    expect(Object.keys(stored.entries).sort()).toEqual([...ids].sort());
  });

  it('a write a killed gateway left under way (its lock, its temporary file) holds up no later one', async () => {
    await indexOfEarlierVersion();
    // Killed between taking the index's lock and renaming its write into place.
    await writeFile(`${indexFile()}.lock`, '999999999.0badc0de');
    await writeFile(`${indexFile()}.999999999.0badc0de0bad.tmp`, '{"version":2,"entries":{');
    expect(await lookUpKey('msg_2')).toEqual({ ids: [ids[2]], read: COUNT });
    expect(await lookUpKey('msg_2')).toEqual({ ids: [ids[2]], read: 0 });
    expect((await readdir(path.join(dataDir, 'summaries'))).filter((n) => n.endsWith('.lock'))).toEqual([]);
  });

  it('the entries a gateway killed during its fold had moved aside are read, not their histories, and removed', async () => {
    await rm(path.join(dataDir, 'summaries'), { recursive: true, force: true });
    const gateway: ExecutionStore = new ExecutionStore(dataDir, {
      onSaved: (id, file, record) => SummaryIndex.of(gateway).recordSaved(id, file, record),
    });
    const later = await saveHistory(gateway, COUNT + 1);
    // Killed between moving the saved entries aside and writing the index (fold).
    const saved = path.join(dataDir, 'summaries', 'conversations.saved.jsonl');
    const aside = `${saved}.999999999.0badc0de0bad.tmp`;
    await rename(saved, aside);
    // Before: its history was read again (and the file left for the retention sweep, a day later).
    expect(await lookUpKey(`msg_${COUNT + 1}`)).toEqual({ ids: [later], read: COUNT });
    expect(await readdir(path.join(dataDir, 'summaries'))).toEqual(['conversations.json']);
    expect(await lookUpKey(`msg_${COUNT + 1}`)).toEqual({ ids: [later], read: 0 });
    await rm(path.join(store.dir, later), { recursive: true, force: true });
  });

  it("the entries another pid namespace's gateway moved aside are its own until an hour old, then read and removed", async () => {
    await rm(path.join(dataDir, 'summaries'), { recursive: true, force: true });
    const gateway: ExecutionStore = new ExecutionStore(dataDir, {
      onSaved: (id, file, record) => SummaryIndex.of(gateway).recordSaved(id, file, record),
    });
    const later = await saveHistory(gateway, COUNT + 2);
    try {
      // A gateway in a container (its pid there this process's own: pids from 1) moved them aside for its fold.
      const saved = path.join(dataDir, 'summaries', 'conversations.saved.jsonl');
      const other = anotherHost();
      const aside = `${saved}.${process.pid}.${other}0badc0de0bad.tmp`;
      await rename(saved, aside);
      // Its fold is under way: the file is left to it, and the history read instead. Before: taken for this process's
      // own (its pid) and removed while that gateway still folded it.
      expect(await lookUpKey(`msg_${COUNT + 2}`)).toEqual({ ids: [later], read: COUNT + 1 });
      expect((await readdir(path.join(dataDir, 'summaries'))).sort()).toEqual(
        ['conversations.json', path.basename(aside)].sort(),
      );
      // An hour later it is still there: that gateway was killed in the middle. Its entries are read, then it goes.
      await rm(indexFile());
      vi.useFakeTimers({ toFake: ['Date'] });
      try {
        vi.setSystemTime(Date.now() + 3_600_001);
        expect(await lookUpKey(`msg_${COUNT + 2}`)).toEqual({ ids: [later], read: COUNT });
      } finally {
        vi.useRealTimers();
      }
      expect(await readdir(path.join(dataDir, 'summaries'))).toEqual(['conversations.json']);
    } finally {
      await rm(path.join(store.dir, later), { recursive: true, force: true });
    }
  });

  it('a listing under way while the sweep removes folders lists none of them, nor writes their entries back', async () => {
    await indexOfEarlierVersion();
    const gateway = new ExecutionStore(dataDir);
    const [first, second] = [ids[COUNT - 2]!, ids[1]!];
    // A command's listing loaded the index (both entries in it, without keys: it reads every history to fill them) and
    // is under way when the gateway's sweep removes two old conversations and drops their entries (its fold), which
    // ends before the command writes what it learnt.
    const command = new SummaryIndex(store);
    let swept: Promise<unknown> = Promise.resolve();
    const write = command.save.bind(command);
    command.save = async () => {
      await swept;
      await write();
    };
    const { rows, damaged } = await listConversations(store, command, parseFilter({ key: 'msg_1' }), 50, null, (p) => {
      if (p.looked !== 1) return;
      for (const id of [first, second]) rmSync(path.join(store.dir, id), { recursive: true });
      swept = SummaryIndex.of(gateway).forgetRemoved();
    });
    // The operator sees no row of them (its key's conversation is gone) and no damaged history; no entry (which holds
    // its question) outlives the sweep, and the command's keys are kept.
    expect(rows).toEqual([]);
    expect(damaged).toEqual([]);
    const stored = JSON.parse(await readFile(indexFile(), 'utf8'));
    expect(Object.keys(stored.entries).sort()).toEqual(ids.filter((id) => id !== first && id !== second).sort());
    expect(await lookUpKey('msg_3')).toEqual({ ids: [ids[3]], read: 0 });
  });
});
