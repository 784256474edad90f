import { readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { readJsonFile, writeFileAtomic, writeFileAtomicSync } from '../../functions/shared/local-files.ts';
import { asideWriter, writerState } from '../../functions/shared/writers.ts';

/** Write a file atomically (temp file + rename); `mode` applies from the first byte; a missing directory is created. */
export const writeTextAtomic = writeFileAtomic;

export async function writeJsonAtomic(file: string, value: unknown, mode?: number): Promise<void> {
  await writeTextAtomic(file, jsonFileText(value), mode);
}

/** writeJsonAtomic at once, in this turn of the event loop (writeFileAtomicSync: for a write a timer must not overtake). */
export function writeJsonAtomicSync(file: string, value: unknown): void {
  writeFileAtomicSync(file, jsonFileText(value));
}

/** A JSON file's text: indented, with a final newline. */
const jsonFileText = (value: unknown) => `${JSON.stringify(value, null, 2)}\n`;

/**
 * JSON text of `value` with every `webhook-signature` field's value `[redacted]` (an inbound request's signature: the
 * journal's lines, the execution history). Serialized without a replacer first: V8's fast path, where a replacer
 * function is a call per key and value (the journal's lines and the history took ~3.7 % of the event loop under load,
 * docs/performance.md, perf23); only a text that holds such a key is serialized again with it. A JSON text holds
 * `"webhook-signature":` only as a key: inside a string its quotes would be escaped.
 */
export function stringifyRedacted(value: unknown): string {
  const text = JSON.stringify(value);
  return text?.includes('"webhook-signature":') ? JSON.stringify(value, redactSignature) : text;
}

const redactSignature = (key: string, value: unknown) => (key === 'webhook-signature' ? '[redacted]' : value);

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

/** A copy written aside (writeFileAtomic, createExclusive): `<name>.<pid>.<hex>.tmp`, its name, writer and hex captured. */
const WRITTEN_ASIDE = /^(.+)\.(\d+)\.([0-9a-f]{8,})\.tmp$/;

/** How long a copy of a writer in another pid namespace is kept: as long as the retention sweep keeps any (retention.ts). */
const FOREIGN_KEPT_MS = 86_400_000;

/** The copies kept because their writer's pid is of another host or pid namespace, already named by this process. */
const named = new Set<string>();

/**
 * Remove what a process killed in the middle of a write (kill -9, Ctrl-C twice, a power cut) left aside in `dir`: the
 * copies `<name>.<pid>.<hex>.tmp` of the files `names` (every file when not given) whose writer is gone. Never renamed
 * into place, each held a copy of what was written (a delivery secret, the conversations' questions) until the
 * retention sweep removed it a day later, or for good outside the data folder (DELIVERY_SIGNING_SECRETS_FILE). A write
 * under way of a live process (this one among them) is kept, and so is one whose pid a live process has now (the
 * sweep's day takes it). One written on another host, in another pid namespace (a container sharing the data folder,
 * or this container before its restart; its host tag not this process's) is judged by its age alone
 * (functions/shared/writers.ts): its pid says nothing here, alive or gone. It is kept a day, named once on stderr
 * (`warn`), then removed. Returns how many were removed (docs/operations.md, "Local history retention").
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
    const file = path.join(dir, entry);
    const writer = asideWriter(aside[2]!, aside[3]!);
    let state = writerState(writer);
    if (state === 'fresh') {
      const written = await stat(file).catch(() => null);
      if (written === null) continue; // gone meanwhile
      state = writerState(writer, { ms: Date.now() - written.mtimeMs, staleMs: FOREIGN_KEPT_MS });
    }
    if (state === 'fresh') {
      if (!named.has(file)) unknown.push(file);
      named.add(file);
      continue;
    }
    if (state === 'this process' || state === 'alive') continue;
    await rm(file, { force: true }).catch(() => undefined);
    removed += 1;
  }
  if (unknown.length > 0)
    warn(
      `webhook-gateway: kept ${unknown.length} cut write(s) of a process on another host or in another pid namespace (a container sharing the data folder, or this one before its restart), whose pid cannot be checked from here: ${unknown.join(', ')} (removed once a day old; remove one sooner once its writer is gone; docs/operations.md, "Processes in other containers")`,
    );
  return removed;
}
