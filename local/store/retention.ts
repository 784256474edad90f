import { statSync, unlinkSync } from 'node:fs';
import { open, rename, rm, stat, utimes } from 'node:fs/promises';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { isConversationId } from '../../functions/domain/conversation-id.ts';
import { STATUS_TTL_SECONDS } from '../../functions/domain/conversation-status.ts';
import { type FailedDeliveryEnvelope, readEnvelope } from '../../functions/domain/failed-delivery.ts';
import { type IdempotencyRecord, IN_PROGRESS_TTL_SECONDS } from '../../functions/domain/idempotency.ts';
import { openFlags, readDataFileSync, withThreadFolder } from '../../functions/shared/local-files.ts';
import { DEFAULTS } from '../../functions/shared/settings.ts';
import { idTimeMs } from '../history/conversation-filters.ts';
import { LocalFailedDeliveryStore } from './failed-delivery-store.ts';
import { listDir, readJson, removeCopiesOfGoneWriters, writeTextAtomic } from './json-files.ts';

/**
 * Local history retention (LOCAL_HISTORY_DAYS, default 30; 0 keeps everything; docs/operations.md, "Local history
 * retention"). The running gateway sweeps at start and every hour:
 * - each conversation's execution history (`executions/<id>/`, and its attempt log `deliveries/attempts/<id>.jsonl`)
 *   once the conversation is older than that, unless its
 *   delivery is still owed (a pending or dead envelope: an operator may still want to see and redrive it; an
 *   envelope the sweep cannot read counts as owed);
 * - failed-delivery envelopes settled (nothing owed any more) longer ago than that;
 * - idempotency keys past their expiry (24 h: they answer nothing any more), and the status records of asynchronous
 *   conversations past theirs (7 days: GET /conversations/{id} answers 404 for them anyway), the threads unused
 *   for THREAD_TTL_DAYS (the folder's time is pushed forward by every turn) and the turns answered longer ago than
 *   that (the file's time: DynamoDB's TTL on each item on AWS);
 *   a key's or status's file that holds no record (damaged) once last written longer ago than such a record lives;
 * - the handlers' log and the built-in receiver's files: each is moved aside to `<name>.<first day>.jsonl` once its
 *   first line is a day old (the writers go on in a fresh file, nothing is lost), and the moved files go when their
 *   last line is older than the retention.
 * - the embedded S3's multipart uploads begun a day ago and never completed, as the bucket's lifecycle rule on AWS;
 * - the files a crash cut while they were written aside (a day old), whatever the retention.
 * The exports in the bucket are the archive and are never swept (on AWS the bucket's lifecycle rules apply).
 */
export interface RetentionPaths {
  dataDir: string;
  idempotencyDir: string | null;
  /** IDEMPOTENCY_TTL_SECONDS (default 24 h): how long after its last write a damaged key's file is removed. */
  idempotencyTtlSeconds?: number;
  statusDir?: string | null;
  /** THREAD_DIR and THREAD_TTL_DAYS (functions/shared/thread-store.ts). */
  threadDir?: string | null;
  threadTtlDays?: number;
  /** The embedded S3's store, when this gateway runs it: its multipart uploads left incomplete for a day are aborted. */
  objects?: { abortUploadsBegunBefore(cutoff: Date): Promise<number> } | null;
  /** The gateway's failed-delivery store (its summaries are kept in memory); by default one of `dataDir`. */
  failedDeliveries?: LocalFailedDeliveryStore;
  /**
   * Told once histories were removed: the conversation summary index drops their entries, which hold each one's
   * question (local/history/summary-index.ts), so nothing of them outlives the retention. True once it wrote the index
   * without them.
   */
  historiesRemoved?: () => Promise<boolean>;
}

export interface SweepResult {
  histories: number;
  envelopes: number;
  keys: number;
  statuses: number;
  threads: number;
  /** Turns of threads still in use answered longer ago than THREAD_TTL_DAYS. */
  threadTurns: number;
  logFiles: number;
  uploads: number;
  /**
   * Idempotency keys and status records that held no record (damaged: cut, emptied, not JSON) and were last written
   * longer ago than such a record lives, removed: their files, so that the sweep's line names them.
   */
  damaged: string[];
}

export const DEFAULT_HISTORY_DAYS = 30;
const DAY_MS = 86_400_000;

const isMissing = (error: unknown) => (error as NodeJS.ErrnoException).code === 'ENOENT';

async function firstLineTime(file: string): Promise<number | null> {
  // Not through a link, never waiting on a FIFO, and only a regular file's (local-files.ts): one that is not has no
  // first line, and its age decides.
  const handle = await open(file, openFlags()).catch((error: NodeJS.ErrnoException) => {
    if (isMissing(error) || error.code === 'ELOOP') return null;
    throw error;
  });
  if (!handle) return null;
  let text = '';
  try {
    if (!(await handle.stat()).isFile()) return null;
    const bytes = Buffer.alloc(65_536);
    const { bytesRead } = await handle.read(bytes, 0, bytes.length, 0);
    text = bytes.subarray(0, bytesRead).toString('utf8');
  } finally {
    await handle.close();
  }
  // The first line that has a time: one a full disk cut (the writers then end it and go on: log-sink.ts, appendLine)
  // or an empty one is passed over. Taken as the file's age, its time of last change never let a file still written
  // to be moved aside, and it grew for good.
  const lines = text.split('\n');
  if (!text.endsWith('\n')) lines.pop(); // the last one may be cut by the 64 KB read
  for (const text of lines) {
    let line: { timestamp?: unknown; received_at?: unknown; _aws?: { Timestamp?: unknown } };
    try {
      line = JSON.parse(text);
    } catch {
      continue;
    }
    const at = line?.timestamp ?? line?.received_at ?? line?._aws?.Timestamp;
    const ms = typeof at === 'number' ? at : Date.parse(String(at));
    if (!Number.isNaN(ms)) return ms;
  }
  return null; // no line with a time: the file's age decides below
}

/** Move an append-only .jsonl aside once its first line is a day old; drop the moved ones past the cutoff. */
async function rotateJsonl(file: string, now: number, cutoff: number): Promise<number> {
  const dir = path.dirname(file);
  const base = path.basename(file, '.jsonl');
  let removed = 0;
  try {
    const first = (await firstLineTime(file)) ?? (await stat(file)).mtimeMs;
    if (now - first >= DAY_MS) {
      const day = new Date(first).toISOString().slice(0, 10);
      await rename(file, path.join(dir, `${base}.${day}.${now}.jsonl`));
    }
  } catch (error) {
    if (!isMissing(error)) throw error;
  }
  const moved = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\.\\d{4}-\\d{2}-\\d{2}\\.\\d+\\.jsonl$`);
  for (const name of (await listDir(dir)).filter((n) => moved.test(n))) {
    const rotated = path.join(dir, name);
    if ((await stat(rotated)).mtimeMs < cutoff) {
      await rm(rotated, { force: true });
      removed += 1;
    }
  }
  return removed;
}

async function mtimeMs(file: string): Promise<number> {
  try {
    return (await stat(file)).mtimeMs;
  } catch (error) {
    if (isMissing(error)) return Number.POSITIVE_INFINITY;
    throw error;
  }
}

/** What writeFileAtomic (functions/shared/local-files.ts) writes aside, `<file>.<pid>.<hex>.tmp`, then renames. */
const WRITTEN_ASIDE = /\.\d+\.[0-9a-f]+\.tmp$/;

/**
 * Files a crash (kill -9, a power cut) cut while they were written aside: renamed into place within moments when
 * the write goes on, so a day-old one never will be. Each holds a copy of what was being written (a status with its
 * answer, an envelope with its conversation), which would otherwise outlive every retention. Those whose writer is
 * gone (named by its pid) go at once, at this start, not a day later: of the files `names` only, when given.
 */
async function removeCutWrites(dir: string, now: number, names?: readonly string[]): Promise<number> {
  let removed = await removeCopiesOfGoneWriters(dir, names);
  for (const name of (await listDir(dir)).filter((n) => WRITTEN_ASIDE.test(n))) {
    const file = path.join(dir, name);
    if ((await mtimeMs(file)) < now - DAY_MS) {
      await rm(file, { force: true });
      removed += 1;
    }
  }
  return removed;
}

/**
 * An idempotency key or a status record (both carry `expires_at`, epoch seconds): `expired` (removed) once past it;
 * `damaged` (removed) when the file holds no such record (cut by a crash mid-write on a file system without atomic
 * rename, emptied, not JSON, no `expires_at`) and was last written longer ago than `lifetimeS`: whatever it held had
 * expired by then, since a record expires at most that long after its last write. Before, such a file was kept for
 * good, so the key's every retry was answered 500 STATE_UNREADABLE (the status route 500, not 404) long after the
 * key would have expired. null: kept (not expired, damaged but recent, being written, gone, or no regular file).
 */
function sweptRecord(file: string, now: number, lifetimeS: number): 'expired' | 'damaged' | null {
  let text: string | null;
  try {
    text = readDataFileSync(file)?.toString('utf8') ?? null;
  } catch {
    return null; // no regular file, or refused: each read of it names it
  }
  if (text === null) return null; // already gone
  let expiresAt: unknown;
  try {
    expiresAt = (JSON.parse(text) as Partial<Pick<IdempotencyRecord, 'expires_at'>> | null)?.expires_at;
  } catch {
    expiresAt = undefined;
  }
  try {
    if (typeof expiresAt === 'number' && Number.isFinite(expiresAt)) {
      if (!(expiresAt * 1000 <= now)) return null;
      unlinkSync(file);
      return 'expired';
    }
    if (!(statSync(file).mtimeMs + lifetimeS * 1000 <= now)) return null;
    unlinkSync(file);
    return 'damaged';
  } catch {
    return null; // gone meanwhile
  }
}

/**
 * Whether a conversation's delivery (or export) may still be owed: its envelope is pending or dead, or exists but
 * cannot be read as one (being repaired, written by a newer version): only a missing or settled envelope lets its
 * history go.
 */
async function deliveryMayBeOwed(envelopeFile: string): Promise<boolean> {
  let stored: unknown;
  try {
    stored = await readJson<unknown>(envelopeFile);
  } catch {
    return true;
  }
  return stored !== null && readEnvelope(stored)?.state !== 'settled';
}

/**
 * Made before the sweep removes a history and removed once the summary index was written without them: a sweep killed
 * (or whose index write failed) in between leaves it, and the next sweep has the index drop them, though it finds no
 * history to remove.
 */
const FORGET_PENDING = path.join('summaries', 'histories-removed.pending');

export async function sweepLocalHistory(paths: RetentionPaths, days: number, now: Date): Promise<SweepResult> {
  const result: SweepResult = {
    histories: 0,
    envelopes: 0,
    keys: 0,
    statuses: 0,
    threads: 0,
    threadTurns: 0,
    logFiles: 0,
    uploads: 0,
    damaged: [],
  };
  const t = now.getTime();
  if (days > 0) {
    const cutoff = t - days * DAY_MS;
    const envelopesDir = path.join(paths.dataDir, 'failed-deliveries');
    const executionsDir = path.join(paths.dataDir, 'executions');
    // A conversation's history is its executions' folder and its delivery attempt log (functions/shared/attempt-log.ts:
    // each attempt with the receiver's answer, merged into its export): the log was never swept, and kept every
    // receiver's answers for good. One whose folder is gone already (swept by an earlier version) goes too.
    const attemptsDir = path.join(paths.dataDir, 'deliveries', 'attempts');
    const attemptLogs = new Set(
      (await listDir(attemptsDir)).map((n) => n.replace(/\.jsonl$/, '')).filter(isConversationId),
    );
    const folders = (await listDir(executionsDir)).filter(isConversationId);
    const forgetPending = path.join(paths.dataDir, FORGET_PENDING);
    let forget = paths.historiesRemoved !== undefined && (await mtimeMs(forgetPending)) !== Number.POSITIVE_INFINITY;
    for (const id of new Set([...folders, ...attemptLogs])) {
      if (!(idTimeMs(id) < cutoff)) continue;
      if (await deliveryMayBeOwed(path.join(envelopesDir, `${id}.json`))) continue;
      if (!forget && paths.historiesRemoved) {
        // Best effort: a summaries folder that refuses it holds the sweep back no more than it did before.
        await writeTextAtomic(forgetPending, '').catch(() => undefined);
        forget = true;
      }
      await rm(path.join(executionsDir, id), { recursive: true, force: true });
      if (attemptLogs.has(id)) await rm(path.join(attemptsDir, `${id}.jsonl`), { force: true });
      result.histories += 1;
    }
    if (forget && (await paths.historiesRemoved!())) await rm(forgetPending, { force: true });
    // Chosen by the envelopes' summaries (the store's summary index): only those settled long enough ago are read
    // again, to be sure before they go; every envelope was read at each sweep, at every start among them.
    const { summaries } = await (paths.failedDeliveries ?? new LocalFailedDeliveryStore(paths.dataDir)).summaries();
    for (const summary of summaries) {
      if (summary.state !== 'settled' || !(Date.parse(summary.updated_at) < cutoff)) continue;
      const file = path.join(envelopesDir, `${summary.conversation_id}.json`);
      const envelope: FailedDeliveryEnvelope | null = readEnvelope(await readJson<unknown>(file).catch(() => null));
      if (envelope?.state === 'settled' && Date.parse(envelope.updated_at) < cutoff) {
        await rm(file, { force: true });
        result.envelopes += 1;
      }
    }
    const logs = [path.join(paths.dataDir, 'logs', 'handlers.jsonl')];
    const receiverDir = path.join(paths.dataDir, 'receiver');
    for (const name of await listDir(receiverDir))
      if (/^[A-Za-z0-9_]+\.jsonl$/.test(name)) logs.push(path.join(receiverDir, name));
    for (const file of logs) result.logFiles += await rotateJsonl(file, t, cutoff);
  }
  if (paths.idempotencyDir) {
    for (const name of await listDir(paths.idempotencyDir)) {
      const file = path.join(paths.idempotencyDir, name);
      // Read and delete in one synchronous step: no claim of this process can slip in between and be deleted.
      if (/^[0-9a-f]{64}\.json$/.test(name)) {
        const swept = sweptRecord(
          file,
          t,
          Math.max(paths.idempotencyTtlSeconds ?? DEFAULTS.idempotencyTtlSeconds, IN_PROGRESS_TTL_SECONDS),
        );
        if (swept === 'expired') result.keys += 1;
        if (swept === 'damaged') result.damaged.push(file);
      }
      // A record being written aside is linked or renamed into place within moments: a day-old one was cut by a crash.
      if (/^[0-9a-f]{64}\.json\.[0-9a-f]+\.tmp$/.test(name) && (await mtimeMs(file)) < t - DAY_MS)
        await rm(file, { force: true });
      await nextTurn();
    }
  }
  // The summary index's (local/history/summary-index.ts): its saved entries that a killed fold moved aside are not
  // a cut write but entries still to fold (the next listing or fold takes them, then removes them).
  await removeCutWrites(path.join(paths.dataDir, 'summaries'), t, [
    'conversations.json',
    'conversations.json.lock',
    path.basename(FORGET_PENDING),
  ]);
  for (const dir of [
    paths.dataDir,
    path.join(paths.dataDir, 'failed-deliveries'),
    path.join(paths.dataDir, 'deliveries', 'endpoints'),
    // The SQL table's cache (local/analytics/engine.ts), written aside as `<file>.<pid>.<hex>.tmp` too: one a killed
    // gateway or a `conversations query` stopped with Ctrl-C left (megabytes: every conversation's row) stayed for
    // good.
    path.join(paths.dataDir, 'analytics'),
    ...(paths.statusDir ? [paths.statusDir] : []),
  ])
    await removeCutWrites(dir, t);
  if (paths.statusDir) {
    for (const name of (await listDir(paths.statusDir)).filter((n) => isConversationId(n.replace(/\.json$/, '')))) {
      const file = path.join(paths.statusDir, name);
      const swept = sweptRecord(file, t, STATUS_TTL_SECONDS);
      if (swept === 'expired') result.statuses += 1;
      if (swept === 'damaged') result.damaged.push(file);
      await nextTurn();
    }
  }
  if (paths.threadDir && paths.threadTtlDays) {
    const unusedSince = t - paths.threadTtlDays * DAY_MS;
    for (const source of await listDir(paths.threadDir)) {
      for (const thread of await listDir(path.join(paths.threadDir, source))) {
        const folder = path.join(paths.threadDir, source, thread);
        // Looked at and swept with no turn claimed or recorded meanwhile: a thread seen unused, then claimed (its
        // folder made new again), was removed with the new turn's claim (the turn then failed, or was lost).
        await withThreadFolder(folder, async () => {
          const folderStat = await stat(folder).catch(() => null);
          const used = folderStat?.mtimeMs ?? Number.POSITIVE_INFINITY;
          if (used < unusedSince) {
            await rm(folder, { recursive: true, force: true });
            result.threads += 1;
            return;
          }
          // A thread in use keeps only the turns answered within THREAD_TTL_DAYS, as each turn's TTL on AWS.
          // Removing one would make the folder look used now: its time (the thread's last use) is put back.
          let removed = (await removeCutWrites(folder, t)) > 0;
          for (const name of (await listDir(folder)).filter((n) => /^\d+\.json$/.test(n))) {
            const turn = path.join(folder, name);
            const answered = (await stat(turn).catch(() => null))?.mtimeMs ?? Number.POSITIVE_INFINITY;
            if (answered < unusedSince) {
              await rm(turn, { force: true });
              result.threadTurns += 1;
              removed = true;
            }
          }
          if (removed && folderStat) await utimes(folder, folderStat.atime, folderStat.mtime);
        });
      }
    }
  }
  if (paths.objects) result.uploads = await paths.objects.abortUploadsBegunBefore(new Date(t - DAY_MS));
  return result;
}
