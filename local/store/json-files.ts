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
