/**
 * What the filters of `conversations list` and the console's thread page look at (source, type, status, receive time,
 * thread, the request's Idempotency-Key and inbound webhook-id), kept per conversation in
 * `<dataDir>/summaries/conversations.json` so that a filter that matches few conversations does not parse every
 * execution history (docs/operations.md, "Runbook"). Each entry holds the stamp
 * (inode and time) its conversation's folder and each of its histories had when the histories were read: a history
 * is written whole into that folder once its execution ended (local/store/execution-store.ts), which changes the
 * folder's time, and one edited in place by hand changes its own, so an entry whose stamp differs is read again from
 * the histories. The file is written whole (temporary file and rename) under its lock, with what another process (the
 * gateway, a command) wrote to it since this one read it merged in, and an entry is written only once its folder
 * and histories had not changed for a second (file times are coarse): after a crash it holds
 * either stamp or none; a folder the retention sweep removed is no conversation any more, and its entry is dropped at
 * the next write. A damaged or missing file is an empty index.
 *
 * The running gateway writes each conversation's entry as it saves a history (recordSaved: it has the record in hand),
 * one line appended to `<dataDir>/summaries/conversations.saved.jsonl`, which the next write of the index folds in:
 * a first listing reads only the histories saved without one (an older data folder, a crash between the two writes).
 * That write moves the file aside, reads it and removes it once the index holds it; the gateway's next lines start a
 * new file, and one it wrote into the moved file meanwhile it writes again (appendLineNamed): none is lost.
 * Such an entry is written within a second of its folder's change, so its stamp alone proves nothing (another history
 * saved within the same tick keeps the folder's time): it stands once its folder's history names and their stamps
 * are those it holds (a listing of the folder, no history read), and is kept as a settled one once they are a second
 * old.
 */
import { createHash } from 'node:crypto';
import type { Stats } from 'node:fs';
import { mkdir, open, rename, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { maskSecrets } from '../../functions/domain/secret-masking.ts';
import { type LockWait, oneAtATime, openFlags, withFileLock } from '../../functions/shared/local-files.ts';
import { asideName, asideWriter, writerState } from '../../functions/shared/writers.ts';
import type { ExecutionRecord } from '../engine/engine.ts';
import type { ExecutionStore } from '../store/execution-store.ts';
import { appendLineNamed, type WrittenFolder } from '../store/file-writer.ts';
import { listDir, readJson, removeCopiesOfGoneWriters, writeTextAtomic } from '../store/json-files.ts';
import type { FilterableConversation } from './conversation-filters.ts';
import { type ConversationSummary, summarize } from './conversations.ts';

interface Entry {
  /** The folder's inode and time. */
  stamp: string;
  /** Its histories' names, and a digest of their inodes, times and sizes. */
  files: string[];
  files_stamp: string;
  /** Null: its histories carry no conversation record. */
  row: FilterableConversation | null;
  /** The rest of its `conversations list` row, when its question is short enough to keep (else its histories are read). */
  listed?: Listed;
  /** Written by the gateway as it saved a history: stands once the folder's names and stamps are found the same. */
  verify?: true;
}

function filesStamp(
  names: readonly string[],
  files: readonly (Pick<Stats, 'ino' | 'mtimeMs' | 'size'> | null)[],
): string {
  return createHash('sha256')
    .update(names.map((n, i) => `${n}:${files[i]?.ino}:${files[i]?.mtimeMs}:${files[i]?.size}`).join('|'))
    .digest('base64url')
    .slice(0, 16);
}

/** What a row of `conversations list` shows beyond the filter fields (ConversationSummary). */
interface Listed {
  total_time_ms: number | null;
  executions: number;
  query: string;
}

/** A longer question is not kept in the index: a listing that shows it reads its history. */
const MAX_KEPT_QUERY = 2_000;

const sameNames = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((n, i) => n === b[i]);

/**
 * The filter fields of a row, in the index's order. Its request's keys are absent from an entry of an earlier
 * version: a listing that shows it, or looks for a key, reads its histories (and keepListed adds them).
 */
function filterFields(row: FilterableConversation): FilterableConversation {
  return {
    conversation_id: row.conversation_id,
    received_at: row.received_at,
    source_system: row.source_system,
    source_process: row.source_process,
    webhook_type: row.webhook_type,
    status: row.status,
    delivery_status: row.delivery_status,
    thread_id: row.thread_id ?? null,
    thread_turn: row.thread_turn ?? null,
    recovered: row.recovered ?? false,
    ...(row.webhook_id !== undefined && { idempotency_key: row.idempotency_key ?? null, webhook_id: row.webhook_id }),
  };
}

/** The filter fields of a conversation's histories (null: none carries a record), and the rest of its list row. */
function rowOfExecutions(
  id: string,
  executions: ExecutionRecord[],
): { row: FilterableConversation | null; listed?: Listed } {
  const summary = summarize(id, executions);
  if (!summary) return { row: null };
  const row = filterFields(summary);
  const { total_time_ms, executions: count, query } = summary;
  return query.length > MAX_KEPT_QUERY ? { row } : { row, listed: { total_time_ms, executions: count, query } };
}

/** The `conversations list` row of an entry, in summarize's order (conversations.ts), when the index holds it all. */
function summaryOf(entry: Entry): ConversationSummary | undefined {
  const { row, listed } = entry;
  if (!row || !listed || row.webhook_id === undefined) return undefined;
  return {
    conversation_id: row.conversation_id,
    received_at: row.received_at,
    source_system: row.source_system,
    source_process: row.source_process,
    webhook_type: row.webhook_type,
    status: row.status,
    delivery_status: row.delivery_status,
    total_time_ms: listed.total_time_ms,
    executions: listed.executions,
    query: listed.query,
    thread_id: row.thread_id ?? null,
    thread_turn: row.thread_turn ?? null,
    idempotency_key: row.idempotency_key ?? null,
    webhook_id: row.webhook_id,
    recovered: row.recovered ?? false,
  };
}

/** What the index answers of one conversation: its filter fields, its whole list row when known, else its histories. */
type Lookup = { row: FilterableConversation | null; summary?: ConversationSummary; executions?: ExecutionRecord[] };

/** 3: entries say whether a stop cut the conversation and recovery finished it (`recovered`); older ones are read again. */
const VERSION = 3;
/** The saved entries' file is folded into the index by the gateway itself once it is this large. */
const FOLD_SAVED_AT_BYTES = 8 * 1024 * 1024;
/** The saved entries a fold moved aside (fold), named by the process that did (its pid, then its host tag). */
const SAVED_ASIDE = /^conversations\.saved\.jsonl\.(\d+)\.([0-9a-f]+)\.tmp$/;
/** Saved entries another pid namespace's process moved aside are its own until this old (no save takes that long). */
const SAVED_ASIDE_STALE_MS = 3_600_000;

/** The folder's time an entry's stamp holds (`<inode>:<mtimeNs>`), in nanoseconds; -1 for none. */
function stampTime(entry: Entry): bigint {
  const ns = /:(\d+)$/.exec(String(entry.stamp))?.[1];
  return ns === undefined ? -1n : BigInt(ns);
}

/** What an entry knows beyond the filter fields: the request's keys, then its whole row, then that it is settled. */
const knows = (entry: Entry) =>
  (entry.row?.webhook_id !== undefined ? 4 : 0) + (entry.listed ? 2 : 0) + (entry.verify ? 0 : 1);

/**
 * Of another process's entry of a conversation and this one's, whether the other's is to be kept: it is of the folder's
 * later state, or of the same state and knows more (a `--key` filled an earlier version's entry with the keys).
 */
function isBetter(theirs: Entry, mine: Entry | undefined): boolean {
  if (!mine) return true;
  const [t, m] = [stampTime(theirs), stampTime(mine)];
  return t !== m ? t > m : knows(theirs) > knows(mine);
}

/**
 * The most of an index file read (each is rebuilt when it cannot be read, as a damaged one is): a
 * conversation's entry is a few KB; a string of 512 MB is a RangeError.
 */
const MAX_INDEX_BYTES = 256 * 1024 * 1024;

/** The entries of the index file; a missing or damaged one, or one of another version, holds none. */
async function readStored(file: string): Promise<Record<string, Entry>> {
  const stored = await readJson<{ version?: unknown; entries?: Record<string, Entry> }>(file, {
    maxBytes: MAX_INDEX_BYTES,
  }).catch(() => null);
  return stored?.version === VERSION && stored.entries ? stored.entries : {};
}

/** The index file as a write left it (inode, time, size), or null when there is none. */
const fileStamp = (file: string) =>
  stat(file, { bigint: true }).then(
    (s) => `${s.ino}:${s.mtimeNs}:${s.size}`,
    () => null,
  );

/** A saved entries' file as read: its inode and size, and its text (past what an earlier read of it had read). */
interface SavedRead {
  ino: number;
  size: number;
  text: string;
}

/** A saved entries' file (null: none), past the bytes `before` read of it when it is the same file (its inode). */
async function readSaved(file: string, before: SavedRead | null = null): Promise<SavedRead | null> {
  // Not a regular file of at most MAX_INDEX_BYTES (a FIFO, a link to /dev/zero): none, as a damaged one is.
  const handle = await open(file, openFlags()).catch(() => null);
  if (!handle) return null;
  try {
    const { ino, size } = await handle.stat().then((s) => (s.isFile() ? s : { ino: 0, size: Infinity }));
    if (size > MAX_INDEX_BYTES) return null;
    const bytes = await handle.readFile();
    const from = before?.ino === ino && before.size <= bytes.length ? before.size : 0;
    return { ino, size: bytes.length, text: bytes.subarray(from).toString('utf8') };
  } catch {
    return null;
  } finally {
    await handle.close();
  }
}

/**
 * The saved entries' lines merged into `entries`: each a whole entry, kept unless `entries` holds a better one
 * (isBetter: a later line is of the folder's later state); a line cut short by a crash is none, and one of `known` (this
 * process appended it: its entry is in `entries`, or a later one) is taken off it. Whether any was kept.
 */
function mergeSaved(entries: Map<string, Entry>, text: string | undefined, known?: Set<string>): boolean {
  let kept = false;
  for (const line of text?.split('\n') ?? []) {
    if (line === '' || known?.delete(line)) continue;
    try {
      const { v, id, entry } = JSON.parse(line) as { v?: unknown; id?: unknown; entry?: Entry };
      if (v !== VERSION || typeof id !== 'string' || !entry || typeof entry.stamp !== 'string') continue;
      if (!isBetter(entry, entries.get(id))) continue;
      entries.set(id, entry);
      kept = true;
    } catch {}
  }
  return kept;
}

/** A history's folder as recordSaved wants it (WrittenFolder), read with the event loop's file calls. */
async function folderNow(dir: string): Promise<WrittenFolder> {
  const folder = await stat(dir, { bigint: true });
  const names = (await listDir(dir)).filter((n) => n.endsWith('.json')).sort();
  const files = await Promise.all(names.map((n) => stat(path.join(dir, n)).catch(() => null)));
  return { stamp: `${folder.ino}:${folder.mtimeNs}`, names, files };
}

/** One index per history store in a process: the gateway's saves and its console's lookups share it. */
const indexes = new WeakMap<ExecutionStore, SummaryIndex>();

/** A write of the index that failed is tried again after this long, then twice as long each time, up to RETRY_MAX_MS. */
const RETRY_FIRST_MS = 1_000;
const RETRY_MAX_MS = 60_000;

/**
 * How long a listing (a console page, `conversations list`) waits for the index's lock at most before it answers: what
 * it learnt is written later (the running gateway's retry, the next listing), never waited on for the 11 s a lock of
 * another pid namespace may be (functions/shared/local-files.ts); another process's write holds it a second or two.
 */
export const LISTING_LOCK_WAIT_MS = 2_000;

/** How the running gateway's index tries a failed write again, and where it says so. */
export interface WriteRetry {
  /** `retry` run in `ms` (a timer that keeps no process up); returns what cancels it. */
  later: (retry: () => Promise<void>, ms: number) => () => void;
  /** The operator's line (stderr), once when a write fails, once when one succeeds again. */
  warn: (line: string) => void;
}

const TIMER: WriteRetry = {
  later: (retry, ms) => {
    const timer = setTimeout(retry, ms).unref();
    return () => clearTimeout(timer);
  },
  warn: (line) => console.warn(line),
};

export class SummaryIndex {
  readonly file: string;
  /** The entries the gateway appended as it saved histories, one JSON line each (folded into `file` at its write). */
  readonly savedFile: string;
  private entries: Promise<Map<string, Entry>> | null = null;
  private changed = false;
  /** How large `savedFile` is known to be: what the load read, and what this process appended since. */
  private savedBytes = 0;
  private savedSizeKnown = false;
  /** The gateway's fold of the saved entries under way, if any. */
  private folding: Promise<void> | null = null;
  /** The saved entries' file as the load read it (inode, bytes): a write that moves it aside reads only what follows. */
  private loadedSaved: SavedRead | null = null;
  /** The lines this process appended to the saved entries and no write has read back yet (their entries are known). */
  private appended = new Set<string>();
  /** The index file as this process last read or wrote it (fileStamp): another process wrote it since if it differs. */
  private seen: string | null = null;

  /** Why the last write of the index failed (the system's message), or null: the last one succeeded, or none failed. */
  unwritten: string | null = null;
  /** The wait before the next retry of a failed write (0: none failed), and whether one is due. */
  private retryMs = 0;
  /** What cancels the retry due, if one is. */
  private retryDue: (() => void) | null = null;
  /** Set by close(): the gateway stopped, nothing more is written (its data folder may be gone). */
  private closed = false;
  /** Whether a write of this process looked for the copies of the index a killed writer left aside (save). */
  private asideSwept = false;

  /** `retry`: a failed write is tried again (the running gateway's); without, the next listing's write tries again. */
  constructor(
    private readonly executions: ExecutionStore,
    private readonly retry?: WriteRetry,
  ) {
    this.file = path.join(path.dirname(executions.dir), 'summaries', 'conversations.json');
    this.savedFile = path.join(path.dirname(executions.dir), 'summaries', 'conversations.saved.jsonl');
  }

  /** The running gateway's (its saves and its console's): a failed write is tried again, said on stderr (`retry`). */
  static of(executions: ExecutionStore, retry: WriteRetry = TIMER): SummaryIndex {
    let index = indexes.get(executions);
    if (!index) {
      index = new SummaryIndex(executions, retry);
      indexes.set(executions, index);
    }
    return index;
  }

  /** Read once, by whichever lookup comes first (the others wait for it): the index, then the saved entries. */
  private load(): Promise<Map<string, Entry>> {
    this.entries ??= (async () => {
      this.seen = await fileStamp(this.file);
      const entries = new Map(Object.entries(await readStored(this.file)));
      // A write a killed process left under way: its saved entries moved aside, not yet in the index (save). Removed
      // at the next write: they hold questions too.
      const aside = await this.movedAside();
      if (aside.length > 0) this.changed = true;
      for (const file of aside) if (mergeSaved(entries, (await readSaved(file))?.text)) this.changed = true;
      const saved = await readSaved(this.savedFile);
      this.loadedSaved = saved;
      this.savedBytes = saved?.size ?? 0;
      this.savedSizeKnown = true;
      if (mergeSaved(entries, saved?.text)) this.changed = true;
      return entries;
    })();
    return this.entries;
  }

  /**
   * What another process (a command, the gateway) wrote to the index since this one read it, merged in (isBetter): the
   * running gateway's listings find what a `--key` filled, rather than read every history again. Read only when the
   * file changed.
   */
  private async catchUp(entries: Map<string, Entry>): Promise<void> {
    const now = await fileStamp(this.file);
    if (now === this.seen) return;
    this.seen = now;
    for (const [id, entry] of Object.entries(await readStored(this.file)))
      if (typeof entry?.stamp === 'string' && isBetter(entry, entries.get(id))) entries.set(id, entry);
  }

  /** Before a listing: what another process wrote since this one read the index (catchUp), once it has read it. */
  async refresh(): Promise<void> {
    if (this.entries) await this.catchUp(await this.entries);
  }

  /**
   * The filter fields of one conversation: from the index while its folder is unchanged (with its whole list row,
   * `summary`, when the index holds it), else from its histories, which are then returned too (`executions`) for the
   * caller to use rather than read again.
   */
  async rowOf(id: string): Promise<Lookup>;
  /** `knownOnly`: what the index knows, without reading any history (null when it does not know it). */
  async rowOf(id: string, knownOnly: true): Promise<Lookup | null>;
  async rowOf(id: string, knownOnly = false): Promise<Lookup | null> {
    const entries = await this.load();
    const dir = path.join(this.executions.dir, id);
    const folder = await stat(dir, { bigint: true }).catch(() => null);
    if (!folder) return { row: null, executions: [] };
    // The folder's stamp, and each history's: a new history changes the first, one edited in place by hand its own.
    // While the folder is unchanged its histories are the ones the index names, each `stat`ed (no listing); an entry
    // the gateway wrote as it saved a history (`verify`), or one whose folder changed, is compared with the folder's
    // names: the same names with the same stamps are the same histories (none is read).
    const stamp = `${folder.ino}:${folder.mtimeNs}`;
    const known = entries.get(id);
    const trusted = known?.stamp === stamp && Array.isArray(known.files) && !known.verify;
    const names = trusted ? known.files : (await listDir(dir)).filter((n) => n.endsWith('.json')).sort();
    const files = await Promise.all(names.map((n) => stat(path.join(dir, n)).catch(() => null)));
    const files_stamp = filesStamp(names, files);
    const changedAt = Math.max(Number(folder.mtimeNs / 1_000_000n), ...files.map((f) => f?.mtimeMs ?? 0));
    if (known && Array.isArray(known.files) && sameNames(known.files, names) && known.files_stamp === files_stamp) {
      // Found the same: kept as a settled entry once nothing in the folder changed for a second.
      if (!trusted && changedAt < Date.now() - 1_000) {
        entries.set(id, { ...known, stamp, files: names, files_stamp, verify: undefined });
        this.changed = true;
      }
      return { row: known.row, summary: summaryOf(known) };
    }
    if (knownOnly) return null;
    const readAt = Date.now();
    const { executions, complete, clean } = await this.executions.executionsChecked(id);
    const { row, listed } = rowOfExecutions(id, executions);
    // A history the system refused to read is read again next time: its file does not change when the refusal ends.
    if (complete && changedAt < readAt - 1_000) {
      // A damaged history among them: the rest of its row is not kept (a listing that shows it names that file).
      entries.set(id, { stamp, files: names, files_stamp, row, ...(clean && listed && { listed }) });
      this.changed = true;
    } else if (known) {
      entries.delete(id);
      this.changed = true;
    }
    return { row, executions };
  }

  /**
   * Of `ids`, those that may be turns of `sourceSystem`'s thread `threadId`: those whose entry says so, and those the
   * index does not know (or knows without a record). A conversation's source and thread are its request's and never
   * change: an entry of another source or thread rules it out, however old, with no look at its folder.
   */
  async mayBeOfThread(ids: readonly string[], sourceSystem: string, threadId: string): Promise<string[]> {
    const entries = await this.load();
    return ids.filter((id) => {
      const row = entries.get(id)?.row;
      return !row || (row.source_system === sourceSystem && row.thread_id === threadId);
    });
  }

  /**
   * The rest of a row its caller read from the histories, kept in the entry that lacked it (one written by an earlier
   * version holds the filter fields only, without the request's keys) when the entry's filter fields are those of the
   * row: the next listing that shows it, or looks for a key, reads no history.
   */
  async keepListed(id: string, summary: ConversationSummary): Promise<void> {
    const entry = (await this.load()).get(id);
    const keysKnown = entry?.row?.webhook_id !== undefined;
    if (!entry?.row || (keysKnown && (entry.listed || summary.query.length > MAX_KEPT_QUERY))) return;
    const known = filterFields({ ...summary, idempotency_key: undefined, webhook_id: undefined });
    if (JSON.stringify(known) !== JSON.stringify(filterFields({ ...entry.row, webhook_id: undefined }))) return;
    entry.row = filterFields(summary);
    const { total_time_ms, executions, query } = summary;
    if (!entry.listed && query.length <= MAX_KEPT_QUERY) entry.listed = { total_time_ms, executions, query };
    this.changed = true;
  }

  /**
   * The entry of a conversation whose history `file` (of `record`) was just saved, appended to the saved entries (the
   * execution store calls it after each save, one conversation's at a time, in order). Its other histories, if any,
   * are read; this one is not. A failure only leaves the entry out: the next listing reads the histories. `written`:
   * the folder as the file thread found it just after the write (local/store/file-writer.ts), else it is read here.
   */
  async recordSaved(
    conversationId: string,
    file: string,
    record: ExecutionRecord,
    written?: WrittenFolder,
  ): Promise<void> {
    if (this.closed) return;
    const dir = path.dirname(file);
    await oneAtATime(`summary-index:${dir}`, async () => {
      const { stamp, names, files } = written ?? (await folderNow(dir));
      const { executions, clean } =
        names.length === 1 && names[0] === path.basename(file)
          ? { executions: [record], clean: true }
          : await this.executions.executionsChecked(conversationId);
      // As saved: the history's text is masked (execution-store.ts), so its fields are too.
      const { row, listed } = JSON.parse(maskSecrets(JSON.stringify(rowOfExecutions(conversationId, executions)))) as {
        row: FilterableConversation | null;
        listed?: Listed;
      };
      const entry: Entry = {
        stamp,
        files: names,
        files_stamp: filesStamp(names, files),
        row,
        ...(clean && listed && { listed }),
        verify: true,
      };
      const text = JSON.stringify({ v: VERSION, id: conversationId, entry });
      const line = `${text}\n`;
      if (this.entries) {
        (await this.entries).set(conversationId, entry);
        this.appended.add(text);
      }
      await appendLineNamed(this.savedFile, line, 0o600, 0o700); // by the file thread: one message, no file call here
      // Its size is known from the load, or learnt at this process's first append (a file earlier runs left counts too).
      if (this.savedSizeKnown) this.savedBytes += Buffer.byteLength(line);
      else this.savedBytes = (await stat(this.savedFile).catch(() => null))?.size ?? 0;
      this.savedSizeKnown = true;
      if (this.savedBytes > FOLD_SAVED_AT_BYTES) await this.forgetRemoved();
    }).catch(() => {});
  }

  /** The gateway's own fold of the saved entries, once their file is large (one at a time): a write of the index. */
  private async fold(): Promise<void> {
    await this.load();
    this.changed = true;
    await this.save();
  }

  /**
   * Drop the entries of the conversations whose folders the retention sweep removed, from the index and the saved
   * entries alike (they hold each one's question: none outlives the retention). True once the index was written
   * without them; false when its write failed (it is tried again: `failed`).
   */
  async forgetRemoved(): Promise<boolean> {
    this.folding ??= this.fold().finally(() => {
      this.folding = null;
    });
    await this.folding;
    return this.unwritten === null;
  }

  /**
   * The saved entries' files that a write moved aside and did not remove: this process's own (a write that failed,
   * or is under way), and those of a process that is gone (killed in the middle). A live process's are its own; so
   * are those of another pid namespace's process (a container sharing the data folder) until an hour old
   * (functions/shared/writers.ts).
   */
  private async movedAside(): Promise<string[]> {
    const dir = path.dirname(this.savedFile);
    const taken: string[] = [];
    // A folder the index may not list (its permissions changed) holds none it can read: the listing goes on.
    for (const name of await listDir(dir).catch(() => [])) {
      const aside = SAVED_ASIDE.exec(name);
      if (!aside || !(Number(aside[1]) > 0)) continue;
      const file = path.join(dir, name);
      const writer = asideWriter(aside[1]!, aside[2]!);
      let state = writerState(writer);
      if (state === 'fresh') {
        const written = await stat(file).catch(() => null);
        // Moved aside when its ctime says (a rename changes it; its mtime is its last line's).
        const age = written ? { ms: Date.now() - written.ctimeMs, staleMs: SAVED_ASIDE_STALE_MS } : undefined;
        state = writerState(writer, age);
      }
      if (state === 'this process' || state === 'gone' || state === 'stale') taken.push(file);
    }
    return taken;
  }

  /**
   * The saved entries moved aside (the gateway appends the next ones to a new file) and read into `entries`, with
   * those a killed process left aside: the files to remove once the index holds them. Nothing is removed that was not
   * read: a line the gateway wrote into the file after it was moved, it writes again (appendLineNamed).
   */
  private async takeSaved(entries: Map<string, Entry>): Promise<string[]> {
    const aside = asideName(this.savedFile);
    if (
      await rename(this.savedFile, aside).then(
        () => true,
        () => false,
      )
    )
      this.savedBytes = 0;
    const files = await this.movedAside();
    for (const file of files)
      mergeSaved(entries, (await readSaved(file, file === aside ? this.loadedSaved : null))?.text, this.appended);
    this.loadedSaved = null;
    // Those not found were taken by another process's write, or are in the new file: not kept for good.
    this.appended.clear();
    return files;
  }

  /**
   * A write that failed (a full disk, a read-only or refused folder, a lock held too long): kept in `unwritten`; the
   * running gateway says so once and tries again by itself, RETRY_FIRST_MS later, then less and less often.
   */
  private failed(why: string): void {
    const first = this.unwritten === null;
    this.unwritten = why;
    if (!this.retry) return;
    if (first)
      this.retry.warn(
        `webhook-gateway: the summary index ${this.file} cannot be written (${why}): tried again in ${RETRY_FIRST_MS / 1000} s, then up to every ${RETRY_MAX_MS / 1000} s; listings read the histories it lacks meanwhile`,
      );
    if (this.retryDue || this.closed) return;
    this.retryMs = Math.min(RETRY_MAX_MS, this.retryMs * 2 || RETRY_FIRST_MS);
    this.retryDue = this.retry.later(() => {
      this.retryDue = null;
      return this.save().catch(() => {});
    }, this.retryMs);
  }

  /**
   * The gateway's close: the retry due is cancelled, and nothing is written from now on (a retry, a listing still
   * under way): a write after it recreated `summaries/` in a data folder deleted after the gateway stopped.
   */
  close(): void {
    this.closed = true;
    this.retryDue?.();
    this.retryDue = null;
  }

  /**
   * Keep what was learnt, for the conversations whose folders are still there, and fold the saved entries in (their
   * file is moved aside and read, and removed once the index holds them; the gateway starts a new one meanwhile).
   * Another process (the gateway, a command) may have written the index since this one read it: what it wrote is
   * merged in first (isBetter), so that neither drops the other's entries (a `--key` that filled the index took
   * minutes on a large data folder). Merged and written out before the file's lock is taken (tens of megabytes at
   * 54,000 conversations); under it, it is written only if no process wrote the file since that merge, else merged
   * again (and the folders listed again: one the retention sweep removed meanwhile is gone from both writes). An index
   * that cannot be written (a full disk, a read-only folder, a lock held too long) is not kept: the next listing reads
   * those histories again, and writes it (the running gateway's tries again by itself: failed). `wait`: how long its
   * lock is waited for at most (a listing's: LISTING_LOCK_WAIT_MS); an index not written then is written later, the
   * same way.
   */
  async save(wait?: LockWait): Promise<void> {
    if (!this.changed || !this.entries || this.closed) return;
    this.changed = false;
    const entries = await this.entries;
    const taken = await this.takeSaved(entries);
    const merged = async () => {
      await this.catchUp(entries);
      const present = new Set(await this.executions.conversationIds());
      const kept: Record<string, Entry> = {};
      for (const [id, entry] of entries) if (present.has(id)) kept[id] = entry;
      return { text: `${JSON.stringify({ version: VERSION, entries: kept })}\n`, of: this.seen };
    };
    let index = await merged();
    // Its lock is made in the index's folder (owner-only, as the data folder: docs/security.md).
    await mkdir(path.dirname(this.file), { recursive: true, mode: 0o700 }).catch(() => {});
    const failure = await withFileLock(
      this.file,
      async () => {
        // The first write of this process removes the copy a killed one left aside (`conversations list` killed as it
        // wrote the index: every conversation's question), not a gateway's start a day later. Not the saved entries a
        // killed fold moved aside: those are folded (takeSaved), then removed.
        if (!this.asideSwept) {
          this.asideSwept = true;
          const name = path.basename(this.file);
          await removeCopiesOfGoneWriters(path.dirname(this.file), [name, `${name}.lock`]);
        }
        if ((await fileStamp(this.file)) !== index.of) index = await merged();
        await writeTextAtomic(this.file, index.text);
        this.seen = await fileStamp(this.file);
      },
      wait,
    ).then(
      () => null,
      (error: unknown) => (error instanceof Error ? error.message : String(error)),
    );
    if (failure !== null) {
      this.changed = true; // what it learnt is written by the next listing, or the retry
      this.failed(failure);
      return;
    }
    if (this.unwritten !== null && this.retry)
      this.retry.warn(`webhook-gateway: the summary index ${this.file} is written again`);
    this.unwritten = null;
    this.retryMs = 0;
    for (const file of taken) await unlink(file).catch(() => {});
  }
}
