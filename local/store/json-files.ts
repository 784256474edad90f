import { readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { HOST_TAG_LENGTH, readJsonFile, writeFileAtomic, writerHost } from '../../functions/shared/local-files.ts';
import { isAlive } from './data-dir-lock.ts';

/** Write a file atomically (temp file + rename); `mode` applies from the first byte; a missing directory is created. */
export const writeTextAtomic = writeFileAtomic;

export async function writeJsonAtomic(file: string, value: unknown, mode?: number): Promise<void> {
  await writeTextAtomic(file, `${JSON.stringify(value, null, 2)}\n`, mode);
}

/** A JSON file's value, or null when there is none. */
export const readJson = readJsonFile;

export async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

/** `fn` of each item, at most `limit` at a time, the results in the items' order. */
export async function mapConcurrently<T, R>(items: T[], limit: number, fn: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * A copy written aside (writeFileAtomic, createExclusive): `<name>.<pid>.<hex>.tmp`, its name, writer and hex captured;
 * the hex begins with the writer's host (writerHost) when it is HOST_TAG_LENGTH + 12 digits long (12 without one: a
 * copy of a version before it).
 */
const WRITTEN_ASIDE = /^(.+)\.(\d+)\.([0-9a-f]{8,})\.tmp$/;

/** The copies kept because their writer's pid is of another host or pid namespace, already named by this process. */
const named = new Set<string>();

/**
 * Remove what a process killed in the middle of a write (kill -9, Ctrl-C twice, a power cut) left aside in `dir`: the
 * copies `<name>.<pid>.<hex>.tmp` of the files `names` (every file when not given) whose writer is gone. Never renamed
 * into place, each held a copy of what was written (a delivery secret, the conversations' questions) until the
 * retention sweep removed it a day later, or for good outside the data folder (DELIVERY_SIGNING_SECRETS_FILE). A write
 * under way of a live process (this one among them) is kept, and so is one whose pid a live process has now (the
 * sweep's day takes it). So is one written on another host, in another pid namespace (a container sharing the data
 * folder; its host tag not this process's): its pid says nothing here, alive or gone. It is named
 * once on stderr (`warn`), and the retention sweep takes it after a day. Returns how many were removed
 * (docs/operations.md, "Local history retention").
 */
export async function removeCopiesOfGoneWriters(
  dir: string,
  names?: readonly string[],
  warn: (line: string) => void = console.warn,
): Promise<number> {
  let removed = 0;
  const unknown: string[] = [];
  // A folder that cannot be listed holds nothing this could remove.
  for (const entry of await listDir(dir).catch(() => [])) {
    const aside = WRITTEN_ASIDE.exec(entry);
    if (!aside || (names && !names.includes(aside[1]!))) continue;
    const hex = aside[3]!;
    if (hex.length === HOST_TAG_LENGTH + 12 && hex.slice(0, HOST_TAG_LENGTH) !== writerHost()) {
      const file = path.join(dir, entry);
      if (!named.has(file)) unknown.push(file);
      named.add(file);
      continue;
    }
    const pid = Number(aside[2]);
    if (pid === process.pid || isAlive(pid)) continue;
    await rm(path.join(dir, entry), { force: true }).catch(() => undefined);
    removed += 1;
  }
  if (unknown.length > 0)
    warn(
      `webhook-gateway: kept ${unknown.length} cut write(s) of a process on another host or in another pid namespace (a container sharing the data folder), whose pid cannot be checked from here: ${unknown.join(', ')} (remove one once its writer is gone; in the data folder the retention sweep removes it after a day; docs/operations.md, "Local history retention")`,
    );
  return removed;
}
