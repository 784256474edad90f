import { unlink } from 'node:fs/promises';
import path from 'node:path';
import { readDataText, UnreadableFileError, writeFileAtomic } from '../../functions/shared/local-files.ts';
import { listDir } from '../store/json-files.ts';
import type { JournalEntry } from './journal.ts';

/**
 * The executions whose crash recovery failed, set aside so that the gateway serves (docs/operations.md, "After a
 * crash"): `<journal>/set-aside/<execution>.jsonl` holds its journal lines, `<execution>.jsonl.why.txt` why. The
 * operator retries one by moving its .jsonl back into the journal folder, or drops it by deleting it.
 */
export const SET_ASIDE_DIR = 'set-aside';

const WHY = '.why.txt';

/** Set one execution aside: its journal lines, then why (the error's stack, after when). Returns the lines' file. */
export async function setAsideExecution(
  journalDir: string,
  name: string,
  entries: JournalEntry[],
  error: unknown,
  now: Date,
): Promise<string> {
  const file = path.join(journalDir, SET_ASIDE_DIR, `${name}.jsonl`);
  await writeFileAtomic(file, `${entries.map((e) => JSON.stringify(e)).join('\n')}\n`);
  const why = (error as Error)?.stack ?? String(error);
  await writeFileAtomic(`${file}${WHY}`, `${now.toISOString()} ${why}\n`);
  return file;
}

export interface SetAsideExecution {
  execution: string;
  file: string;
  /** The first line of its .why.txt (when, and the error's message), or null when it has none. */
  why: string | null;
}

/**
 * What is still set aside: each .jsonl of the folder, with the first line of its why. A .why.txt whose .jsonl is gone
 * (moved back into the journal to retry it, or deleted to drop it) is stale and removed: before, it stayed there,
 * naming an execution the folder no longer held.
 */
export async function stillSetAside(journalDir: string): Promise<SetAsideExecution[]> {
  const dir = path.join(journalDir, SET_ASIDE_DIR);
  const names = new Set(await listDir(dir));
  for (const name of names)
    if (name.endsWith(WHY) && !names.has(name.slice(0, -WHY.length)))
      await unlink(path.join(dir, name)).catch(() => undefined);
  const kept: SetAsideExecution[] = [];
  for (const name of [...names].filter((n) => n.endsWith('.jsonl')).sort()) {
    const file = path.join(dir, name);
    const why = names.has(`${name}${WHY}`)
      ? // Read as every file of the data folder is: a FIFO there kept the start waiting for good; now it says so.
        await readDataText(`${file}${WHY}`, { maxBytes: 1024 * 1024 }).then(
          (text) => text?.split('\n')[0] ?? null,
          (error: unknown) => (error instanceof UnreadableFileError ? error.message : null),
        )
      : null;
    kept.push({ execution: name.slice(0, -'.jsonl'.length), file, why });
  }
  return kept;
}

/** The start's line about what is still set aside, each named, or null when nothing is. */
export function setAsideWarning(journalDir: string, kept: readonly SetAsideExecution[]): string | null {
  if (kept.length === 0) return null;
  const each = kept.map((k) => `${k.execution}${k.why ? ` (${k.why})` : ''}`).join('; ');
  return `webhook-gateway: ${kept.length} interrupted execution(s) set aside, their recovery failed: ${each}; in ${path.join(journalDir, SET_ASIDE_DIR)}: move an execution's .jsonl into ${journalDir} to retry it at the next start, or delete it to drop it (docs/operations.md, "After a crash")`;
}
