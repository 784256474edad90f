import { readdir } from 'node:fs/promises';
import { readJsonFile, writeFileAtomic } from '../../functions/shared/local-files.ts';

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
