/**
 * What the filters of `conversations list` and the console's thread page look at (source, type, status, receive time,
 * thread), kept per conversation in `<dataDir>/summaries/conversations.json` so that a filter that matches few
 * conversations does not parse every execution history (docs/operations.md, "Runbook"). Each entry holds the stamp
 * (inode and time) its conversation's folder and each of its histories had when the histories were read: a history
 * is written whole into that folder once its execution ended (local/store/execution-store.ts), which changes the
 * folder's time, and one edited in place by hand changes its own, so an entry whose stamp differs is read again from
 * the histories. The file is written whole (temporary file and rename), and an entry is written only once its folder
 * and histories had not changed for a second (file times are coarse): after a crash it holds
 * either stamp or none; a folder the retention sweep removed is no conversation any more, and its entry is dropped at
 * the next write. A damaged or missing file is an empty index.
 */
import { createHash } from 'node:crypto';
import type { Stats } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { ExecutionRecord } from '../engine/engine.ts';
import type { ExecutionStore } from '../store/execution-store.ts';
import { listDir, readJson, writeTextAtomic } from '../store/json-files.ts';
import type { FilterableConversation } from './conversation-filters.ts';
import { summarize } from './conversations.ts';

interface Entry {
  /** The folder's inode and time. */
  stamp: string;
  /** Its histories' names, and a digest of their inodes, times and sizes. */
  files: string[];
  files_stamp: string;
  /** Null: its histories carry no conversation record. */
  row: FilterableConversation | null;
}

function filesStamp(names: readonly string[], files: readonly (Stats | null)[]): string {
  return createHash('sha256')
    .update(names.map((n, i) => `${n}:${files[i]?.ino}:${files[i]?.mtimeMs}:${files[i]?.size}`).join('|'))
    .digest('base64url')
    .slice(0, 16);
}

const VERSION = 2;

export class SummaryIndex {
  readonly file: string;
  private entries: Promise<Map<string, Entry>> | null = null;
  private changed = false;

  constructor(private readonly executions: ExecutionStore) {
    this.file = path.join(path.dirname(executions.dir), 'summaries', 'conversations.json');
  }

  /** Read once, by whichever lookup comes first (the others wait for it). */
  private load(): Promise<Map<string, Entry>> {
    this.entries ??= readJson<{ version?: unknown; entries?: Record<string, Entry> }>(this.file)
      .catch(() => null)
      .then((stored) => new Map(stored?.version === VERSION && stored.entries ? Object.entries(stored.entries) : []));
    return this.entries;
  }

  /**
   * The filter fields of one conversation: from the index while its folder is unchanged, else from its histories,
   * which are then returned too (`executions`) for the caller to use rather than read again.
   */
  async rowOf(id: string): Promise<{ row: FilterableConversation | null; executions?: ExecutionRecord[] }>;
  /** `knownOnly`: what the index knows, without reading any history (null when it does not know it). */
  async rowOf(
    id: string,
    knownOnly: true,
  ): Promise<{ row: FilterableConversation | null; executions?: ExecutionRecord[] } | null>;
  async rowOf(
    id: string,
    knownOnly = false,
  ): Promise<{ row: FilterableConversation | null; executions?: ExecutionRecord[] } | null> {
    const entries = await this.load();
    const dir = path.join(this.executions.dir, id);
    const folder = await stat(dir, { bigint: true }).catch(() => null);
    if (!folder) return { row: null, executions: [] };
    // The folder's stamp, and each history's: a new history changes the first, one edited in place by hand its own.
    // While the folder is unchanged its histories are the ones the index names, each `stat`ed (no listing).
    const stamp = `${folder.ino}:${folder.mtimeNs}`;
    const known = entries.get(id);
    const sameFolder = known?.stamp === stamp && Array.isArray(known.files);
    if (!sameFolder && knownOnly) return null;
    const names = sameFolder ? known.files : (await listDir(dir)).filter((n) => n.endsWith('.json')).sort();
    const files = await Promise.all(names.map((n) => stat(path.join(dir, n)).catch(() => null)));
    const files_stamp = filesStamp(names, files);
    if (sameFolder && known.files_stamp === files_stamp) return { row: known.row };
    const changedAt = Math.max(Number(folder.mtimeNs / 1_000_000n), ...files.map((f) => f?.mtimeMs ?? 0));
    if (knownOnly) return null;
    const readAt = Date.now();
    const executions = await this.executions.executions(id);
    const summary = summarize(id, executions);
    const row: FilterableConversation | null = summary && {
      conversation_id: summary.conversation_id,
      received_at: summary.received_at,
      source_system: summary.source_system,
      source_process: summary.source_process,
      webhook_type: summary.webhook_type,
      status: summary.status,
      delivery_status: summary.delivery_status,
      thread_id: summary.thread_id ?? null,
      thread_turn: summary.thread_turn ?? null,
    };
    if (changedAt < readAt - 1_000) {
      entries.set(id, { stamp, files: names, files_stamp, row });
      this.changed = true;
    } else if (known) {
      entries.delete(id);
      this.changed = true;
    }
    return { row, executions };
  }

  /**
   * Keep what was learnt, for the conversations whose folders are still there. An index that cannot be written (a
   * full disk, a read-only folder) is not kept: the next listing reads those histories again.
   */
  async save(): Promise<void> {
    if (!this.changed || !this.entries) return;
    this.changed = false;
    const present = new Set(await this.executions.conversationIds());
    const kept: Record<string, Entry> = {};
    for (const [id, entry] of await this.entries) if (present.has(id)) kept[id] = entry;
    await writeTextAtomic(this.file, `${JSON.stringify({ version: VERSION, entries: kept })}\n`).catch(() => {});
  }
}
