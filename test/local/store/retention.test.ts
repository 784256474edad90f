import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ObjectStore } from '../../../local/store/object-store.ts';
import { sweepLocalHistory } from '../../../local/store/retention.ts';

/** LOCAL_HISTORY_DAYS: what the sweep removes and what it keeps, at an injected time. */
const NOW = new Date('2026-03-31T12:00:00Z');
const DAY = 86_400_000;
const OLD_ID = 'webhook_20260201_100000_testing_phase3valid_old0000001';
const OWED_ID = 'webhook_20260201_100000_testing_phase3valid_owed000001';
const NEW_ID = 'webhook_20260330_100000_testing_phase3valid_new0000001';

/** The pid of a process that ended: the writer a kill cut. */
const GONE_PID = spawnSync(process.execPath, ['-e', '']).pid;

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'retention-'));
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

async function put(relative: string, content: unknown, mtime?: Date) {
  const file = path.join(dataDir, relative);
  await mkdir(path.dirname(file), { recursive: true });
  await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content));
  if (mtime) await utimes(file, mtime, mtime);
}

const ls = async (relative: string) => (await readdir(path.join(dataDir, relative))).sort();
const envelope = (id: string, state: string, updatedAt: string) => ({
  version: 1,
  conversation_id: id,
  conversation: { conversation_id: id },
  state,
  updated_at: updatedAt,
});

describe('the local history sweep', () => {
  it('removes histories, delivered envelopes and expired keys past the retention; keeps what is recent or owed', async () => {
    for (const id of [OLD_ID, OWED_ID, NEW_ID]) await put(`executions/${id}/x_run.json`, {});
    await put(`failed-deliveries/${OWED_ID}.json`, envelope(OWED_ID, 'dead', '2026-02-02T00:00:00Z'));
    await put(`failed-deliveries/${OLD_ID}.json`, envelope(OLD_ID, 'delivered', '2026-02-02T00:00:00Z'));
    await put(`failed-deliveries/${NEW_ID}.json`, envelope(NEW_ID, 'settled', '2026-03-30T10:00:00Z'));
    const key = (c: string) => `idempotency/${c.repeat(64)}.json`;
    await put(key('a'), { status: 'completed', expires_at: NOW.getTime() / 1000 - 1 });
    await put(key('b'), { status: 'in_progress', expires_at: NOW.getTime() / 1000 + 60 });
    // Records a crash cut while they were written aside: a day-old one goes, a fresh one may still be renamed.
    await put(`${key('c')}.0a1b2c3d4e5f.tmp`, '{"pk":', new Date(NOW.getTime() - 2 * DAY));
    await put(`${key('d')}.0a1b2c3d4e5f.tmp`, '{"pk":', new Date(NOW.getTime() - 60_000));
    await put(`status/${OLD_ID}.json`, { status: 'completed', expires_at: NOW.getTime() / 1000 - 1 });
    await put(`status/${NEW_ID}.json`, { status: 'running', expires_at: NOW.getTime() / 1000 + 60 });

    const swept = await sweepLocalHistory(
      { dataDir, idempotencyDir: path.join(dataDir, 'idempotency'), statusDir: path.join(dataDir, 'status') },
      30,
      NOW,
    );
    expect(swept).toEqual({
      histories: 1,
      envelopes: 1,
      keys: 1,
      statuses: 1,
      threads: 0,
      threadTurns: 0,
      logFiles: 0,
      uploads: 0,
      damaged: [],
    });
    expect(await ls('status')).toEqual([`${NEW_ID}.json`]);
    expect(await ls('executions')).toEqual([OWED_ID, NEW_ID].sort());
    expect(await ls('failed-deliveries')).toEqual([`${OWED_ID}.json`, `${NEW_ID}.json`].sort());
    expect(await ls('idempotency')).toEqual([`${'b'.repeat(64)}.json`, `${'d'.repeat(64)}.json.0a1b2c3d4e5f.tmp`]);
  });

  it('removes a damaged idempotency key or status (cut, emptied, no record) once last written longer ago than such a record lives, naming it; keeps a recent one', async () => {
    const key = (c: string) => `idempotency/${c.repeat(64)}.json`;
    const old = new Date(NOW.getTime() - 25 * 3_600_000); // past the 24 h a key lives after its last write
    const recent = new Date(NOW.getTime() - 23 * 3_600_000);
    await put(key('a'), '{"pk":"a","status":"comp', old); // cut by a crash mid-write (no atomic rename)
    await put(key('b'), '', old); // emptied
    await put(key('c'), { pk: 'c', status: 'completed' }, old); // no expires_at
    await put(key('d'), '{"pk":"d","status":"comp', recent); // may still be the key's: its 500 names it
    await put(`status/${OLD_ID}.json`, '{"conversation_id":', new Date(NOW.getTime() - 8 * DAY)); // past 7 days
    await put(`status/${NEW_ID}.json`, '{"conversation_id":', new Date(NOW.getTime() - 6 * DAY));

    const swept = await sweepLocalHistory(
      { dataDir, idempotencyDir: path.join(dataDir, 'idempotency'), statusDir: path.join(dataDir, 'status') },
      30,
      NOW,
    );
    // Before: each was kept for good (its expiry unreadable), and a retry with that key answered 500 STATE_UNREADABLE
    // every time, days after the key would have expired; nothing named the file until the key came again.
    expect(swept.damaged.sort()).toEqual(
      [key('a'), key('b'), key('c'), `status/${OLD_ID}.json`].map((f) => path.join(dataDir, f)).sort(),
    );
    expect(swept.keys).toBe(0);
    expect(swept.statuses).toBe(0);
    expect(await ls('idempotency')).toEqual([`${'d'.repeat(64)}.json`]);
    expect(await ls('status')).toEqual([`${NEW_ID}.json`]);
    // IDEMPOTENCY_TTL_SECONDS longer than the damaged file's age: kept.
    await put(key('e'), '', old);
    const longer = await sweepLocalHistory(
      { dataDir, idempotencyDir: path.join(dataDir, 'idempotency'), idempotencyTtlSeconds: 2 * 86_400 },
      30,
      NOW,
    );
    expect(longer.damaged).toEqual([]);
    expect(await ls('idempotency')).toEqual([`${'d'.repeat(64)}.json`, `${'e'.repeat(64)}.json`]);
  });

  it("removes a conversation's delivery attempt log with its history; keeps it while recent or owed", async () => {
    const GONE_ID = 'webhook_20260201_100000_testing_phase3valid_gone000001'; // its history swept by an earlier version
    for (const id of [OLD_ID, OWED_ID, NEW_ID]) await put(`executions/${id}/x_run.json`, {});
    for (const id of [OLD_ID, OWED_ID, NEW_ID, GONE_ID])
      await put(`deliveries/attempts/${id}.jsonl`, '{"attempt":1,"response":{"body":"the receiver\'s answer"}}\n');
    await put(`failed-deliveries/${OWED_ID}.json`, envelope(OWED_ID, 'pending', '2026-02-02T00:00:00Z'));
    const swept = await sweepLocalHistory({ dataDir, idempotencyDir: null }, 30, NOW);
    // Before: every attempt log (each receiver's answer) was kept for good, whatever LOCAL_HISTORY_DAYS said.
    expect(await ls('deliveries/attempts')).toEqual([`${OWED_ID}.jsonl`, `${NEW_ID}.jsonl`].sort());
    expect(await ls('executions')).toEqual([OWED_ID, NEW_ID].sort());
    expect(swept.histories).toBe(2);
  });

  it('forgets a thread unused for THREAD_TTL_DAYS (its folder time, pushed forward by every turn); keeps a recent one', async () => {
    await put('threads/crm/old-thread/1.json', {});
    await put('threads/crm/new-thread/1.json', {});
    await utimes(
      path.join(dataDir, 'threads/crm/old-thread'),
      new Date(NOW.getTime() - 31 * DAY),
      new Date(NOW.getTime() - 31 * DAY),
    );
    await utimes(
      path.join(dataDir, 'threads/crm/new-thread'),
      new Date(NOW.getTime() - 29 * DAY),
      new Date(NOW.getTime() - 29 * DAY),
    );
    const swept = await sweepLocalHistory(
      { dataDir, idempotencyDir: null, threadDir: path.join(dataDir, 'threads'), threadTtlDays: 30 },
      0,
      NOW,
    );
    expect(swept.threads).toBe(1);
    expect(await ls('threads/crm')).toEqual(['new-thread']);
  });

  it('drops a used thread’s turns answered longer ago than THREAD_TTL_DAYS (their file time), keeping its claims', async () => {
    for (const name of ['1.claim', '1.json', '2.claim', '2.json']) await put(`threads/crm/long-thread/${name}`, {});
    const at = (days: number) => new Date(NOW.getTime() - days * DAY);
    await utimes(path.join(dataDir, 'threads/crm/long-thread/1.json'), at(31), at(31));
    await utimes(path.join(dataDir, 'threads/crm/long-thread/2.json'), at(10), at(10));
    await utimes(path.join(dataDir, 'threads/crm/long-thread'), at(1), at(1));
    const swept = await sweepLocalHistory(
      { dataDir, idempotencyDir: null, threadDir: path.join(dataDir, 'threads'), threadTtlDays: 30 },
      0,
      NOW,
    );
    expect(swept.threads).toBe(0);
    // Counted, so the gateway prints its retention line for it (before: removed without a line).
    expect(swept.threadTurns).toBe(1);
    expect(await ls('threads/crm/long-thread')).toEqual(['1.claim', '2.claim', '2.json']);
    // The thread's last use is still the day before: the sweep did not make it look used now.
    expect((await stat(path.join(dataDir, 'threads/crm/long-thread'))).mtimeMs).toBe(at(1).getTime());
  });

  it('removes the files kill -9 cut while they were written aside (a day old, or their writer gone), whatever the retention', async () => {
    const at = (days: number) => new Date(NOW.getTime() - days * DAY);
    // As writeFileAtomic names them: `<file>.<pid>.<hex>.tmp`, each a copy of what was being written.
    const cut = [
      `status/${NEW_ID}.json.4242.0a1b2c3d4e5f.tmp`,
      `failed-deliveries/${NEW_ID}.json.4242.0a1b2c3d4e5f.tmp`,
      'deliveries/endpoints/deal_analysis.json.4242.0a1b2c3d4e5f.tmp',
      'threads/crm/used-thread/3.json.4242.0a1b2c3d4e5f.tmp',
      'gateway.json.4242.0a1b2c3d4e5f.tmp',
      'summaries/conversations.json.4242.0a1b2c3d4e5f.tmp',
      'analytics/conversations.parquet.4242.0a1b2c3d.tmp', // local/analytics/engine.ts (before: kept for good)
    ];
    // A live writer's (this process: it may still rename it), and a gone writer's, a minute old.
    const live = (file: string) => file.replace('.4242.', `.${process.pid}.`);
    const gone = (file: string) => file.replace('.4242.', `.${GONE_PID}.`);
    for (const file of cut) {
      await put(file, '{"conversation_id":', at(2));
      await put(live(file), '{"conversation_id":', at(0.5));
      await put(gone(file), '{"conversation_id":', at(1 / 1440));
    }
    // The saved entries a killed fold of the summary index moved aside are no cut write: still to fold (the next
    // listing folds them), they stay until a day old.
    const toFold = `summaries/conversations.saved.jsonl.${GONE_PID}.0a1b2c3d4e5f.tmp`;
    await put(toFold, '{"id":', at(1 / 1440));
    await put('threads/crm/used-thread/2.json', {}, at(1));
    await utimes(path.join(dataDir, 'threads/crm/used-thread'), at(1), at(1));

    await sweepLocalHistory(
      {
        dataDir,
        idempotencyDir: null,
        statusDir: path.join(dataDir, 'status'),
        threadDir: path.join(dataDir, 'threads'),
        threadTtlDays: 30,
      },
      0,
      NOW,
    );
    for (const file of cut) {
      const [dir, name] = [path.dirname(file), path.basename(file)];
      expect(await ls(dir), file).not.toContain(name);
      expect(await ls(dir), file).toContain(path.basename(live(file)));
      // Before: kept a day whoever wrote it (a delivery secret, every question of the index).
      expect(await ls(dir), file).not.toContain(path.basename(gone(file)));
    }
    expect(await ls('summaries')).toContain(path.basename(toFold));
    // The thread's last use is still the day before: removing the cut write did not make it look used now.
    expect((await stat(path.join(dataDir, 'threads/crm/used-thread'))).mtimeMs).toBe(at(1).getTime());
  });

  it('a log whose first line a full disk cut is moved aside by the first line that has a time', async () => {
    const line = (at: string) => `${JSON.stringify({ level: 'INFO', timestamp: at })}\n`;
    // The disk was full as the gateway wrote its first line; the writer ended it and went on.
    await put('logs/handlers.jsonl', `{"level":"IN\n${line('2026-03-29T09:00:00Z')}${line('2026-03-31T11:00:00Z')}`);
    await put('receiver/general.jsonl', `\n${JSON.stringify({ received_at: '2026-03-29T09:00:00Z' })}\n`);
    const swept = await sweepLocalHistory({ dataDir, idempotencyDir: null }, 30, NOW);
    // Before: no time in the first line, so the file's last change (a moment ago) decided: never a day old while the
    // gateway wrote to it, it was never moved aside and grew for good.
    expect(await ls('logs')).toEqual([`handlers.2026-03-29.${NOW.getTime()}.jsonl`]);
    expect(await ls('receiver')).toEqual([`general.2026-03-29.${NOW.getTime()}.jsonl`]);
    expect(swept.logFiles).toBe(0); // moved aside, none removed
  });

  it('moves a log aside once its first line is a day old, and drops moved logs past the retention', async () => {
    const line = (at: string) => `${JSON.stringify({ level: 'INFO', timestamp: at })}\n`;
    await put('logs/handlers.jsonl', line('2026-03-30T09:00:00Z') + line('2026-03-31T11:00:00Z'));
    await put('receiver/deal_analysis.jsonl', `${JSON.stringify({ received_at: '2026-03-31T11:00:00Z' })}\n`);
    await put(
      'logs/handlers.2026-01-01.1767312000000.jsonl',
      line('2026-01-01T00:00:00Z'),
      new Date(NOW.getTime() - 60 * DAY),
    );
    await put(
      'logs/handlers.2026-03-20.1774051200000.jsonl',
      line('2026-03-20T00:00:00Z'),
      new Date(NOW.getTime() - 10 * DAY),
    );

    const swept = await sweepLocalHistory({ dataDir, idempotencyDir: null }, 30, NOW);
    expect(swept.logFiles).toBe(1);
    expect(await ls('logs')).toEqual([
      'handlers.2026-03-20.1774051200000.jsonl',
      `handlers.2026-03-30.${NOW.getTime()}.jsonl`,
    ]);
    expect(await ls('receiver')).toEqual(['deal_analysis.jsonl']); // its first line is an hour old
  });

  it('never removes the history or envelope of a conversation whose delivery or export is still owed', async () => {
    const PENDING_ID = 'webhook_20260201_100000_testing_phase3valid_pend000001';
    const EXPORT_ID = 'webhook_20260201_100000_testing_phase3valid_expo000001';
    const UNREADABLE_ID = 'webhook_20260201_100000_testing_phase3valid_unre000001';
    const FOREIGN_ID = 'webhook_20260201_100000_testing_phase3valid_fore000001';
    const owed = [PENDING_ID, EXPORT_ID, UNREADABLE_ID, FOREIGN_ID].sort();
    for (const id of [...owed, OLD_ID]) await put(`executions/${id}/x_run.json`, {});
    const old = '2026-02-02T00:00:00Z';
    await put(`failed-deliveries/${PENDING_ID}.json`, envelope(PENDING_ID, 'pending', old));
    await put(`failed-deliveries/${EXPORT_ID}.json`, { ...envelope(EXPORT_ID, 'pending', old), owed: 'export' });
    await put(`failed-deliveries/${UNREADABLE_ID}.json`, '{"version":1,"state":"sett');
    await put(`failed-deliveries/${FOREIGN_ID}.json`, { ...envelope(FOREIGN_ID, 'settled', old), version: 2 });
    await put(`failed-deliveries/${OLD_ID}.json`, envelope(OLD_ID, 'settled', old));

    const swept = await sweepLocalHistory({ dataDir, idempotencyDir: null }, 30, NOW);
    expect(swept).toMatchObject({ histories: 1, envelopes: 1 });
    expect(await ls('executions')).toEqual(owed);
    expect(await ls('failed-deliveries')).toEqual(owed.map((id) => `${id}.json`));
  });

  it('LOCAL_HISTORY_DAYS=0 keeps every history (expired keys still go)', async () => {
    await put(`executions/${OLD_ID}/x_run.json`, {});
    const swept = await sweepLocalHistory({ dataDir, idempotencyDir: null }, 0, NOW);
    expect(swept.histories).toBe(0);
    expect(await ls('executions')).toEqual([OLD_ID]);
  });

  it('aborts the multipart uploads of the embedded S3 left incomplete for a day, as the bucket lifecycle rule on AWS', async () => {
    // Begun by another process on the folder: the sweeping store learns when each began from its upload.json.
    const writer = new ObjectStore(path.join(dataDir, 's3'));
    await writer.open();
    await writer.createBucket('exports');
    const stale = await writer.createUpload({
      bucket: 'exports',
      key: 'big/old.bin',
      attributes: { contentType: 'x' },
    });
    const fresh = await writer.createUpload({
      bucket: 'exports',
      key: 'big/new.bin',
      attributes: { contentType: 'x' },
    });
    const multipart = path.join(dataDir, 's3', '.multipart');
    // Begun 25 hours before NOW (its record says when), and one cut by a crash before its record was written.
    const record = path.join(multipart, stale, 'upload.json');
    const begun = JSON.parse(await readFile(record, 'utf8'));
    await writeFile(
      record,
      JSON.stringify({ ...begun, initiated: new Date(NOW.getTime() - 25 * 3_600_000).toISOString() }),
    );
    const cut = 'ab'.repeat(16);
    await mkdir(path.join(multipart, cut));
    await utimes(path.join(multipart, cut), new Date(NOW.getTime() - 2 * DAY), new Date(NOW.getTime() - 2 * DAY));
    await mkdir(path.join(multipart, 'not-an-upload'));
    const record2 = path.join(multipart, fresh, 'upload.json');
    await writeFile(
      record2,
      JSON.stringify({ ...begun, initiated: new Date(NOW.getTime() - 3_600_000).toISOString() }),
    );

    const objects = new ObjectStore(path.join(dataDir, 's3'));
    await objects.open();
    const swept = await sweepLocalHistory({ dataDir, idempotencyDir: null, objects }, 0, NOW);
    expect(swept.uploads).toBe(2);
    expect(await ls('s3/.multipart')).toEqual([fresh, 'not-an-upload'].sort());
  });
});
