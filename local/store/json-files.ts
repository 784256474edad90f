import fs from 'node:fs';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

// Node's callback API, promisified: for small files it costs the event loop less than fs.promises (local/store/object-store.ts).
const writeFile = promisify(fs.writeFile) as (file: string, data: string, options?: { mode: number }) => Promise<void>;
const rename = promisify(fs.rename);

/**
 * Write a file atomically (temp file + rename), so a crash never leaves half a document. `mode` (e.g. 0o600 for a
 * secret) applies from the first byte: the file is never readable by others, not even for a moment. The directory is
 * created only when the write finds it missing (once per folder, not a mkdir per write).
 */
export async function writeTextAtomic(file: string, text: string, mode?: number): Promise<void> {
  const tmp = `${file}.${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2)}.tmp`;
  const options = mode === undefined ? undefined : { mode };
  try {
    await writeFile(tmp, text, options);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(tmp, text, options);
  }
  await rename(tmp, file);
}

export async function writeJsonAtomic(file: string, value: unknown, mode?: number): Promise<void> {
  await writeTextAtomic(file, `${JSON.stringify(value, null, 2)}\n`, mode);
}

export async function readJson<T>(file: string): Promise<T | null> {
  try {
    return JSON.parse(await readFile(file, 'utf8')) as T;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}

export async function listDir(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}
