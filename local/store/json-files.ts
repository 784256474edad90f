import fs from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

interface WriteCalls {
  writeFile(file: string, data: string, options?: { mode: number }): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  mkdir(dir: string, options: { recursive: true }): Promise<unknown>;
}
/**
 * Small documents are written with synchronous calls: a few page-cache system calls cost less than the round trips
 * through libuv's thread pool (local/store/object-store.ts). Large ones with Node's callback API, promisified (it
 * costs the event loop less than fs.promises), so a big document never holds the event loop for long.
 */
const SMALL_CALLS: WriteCalls = {
  writeFile: async (file, data, options) => fs.writeFileSync(file, data, options),
  rename: async (from, to) => fs.renameSync(from, to),
  mkdir: async (dir, options) => fs.mkdirSync(dir, options),
};
const LARGE_CALLS: WriteCalls = {
  writeFile: promisify(fs.writeFile) as WriteCalls['writeFile'],
  rename: promisify(fs.rename),
  mkdir: promisify(fs.mkdir) as WriteCalls['mkdir'],
};
/** Up to this many characters (at most 3 bytes each), a document is small. */
const SMALL_TEXT = 256 * 1024;

/**
 * Write a file atomically (temp file + rename), so a crash never leaves half a document. `mode` (e.g. 0o600 for a
 * secret) applies from the first byte: the file is never readable by others, not even for a moment. The directory is
 * created only when the write finds it missing (once per folder, not a mkdir per write).
 */
export async function writeTextAtomic(file: string, text: string, mode?: number): Promise<void> {
  const tmp = `${file}.${process.pid}.${Date.now()}.${Math.random().toString(36).slice(2)}.tmp`;
  const options = mode === undefined ? undefined : { mode };
  const calls = text.length <= SMALL_TEXT ? SMALL_CALLS : LARGE_CALLS;
  try {
    await calls.writeFile(tmp, text, options);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    await calls.mkdir(path.dirname(file), { recursive: true });
    await calls.writeFile(tmp, text, options);
  }
  await calls.rename(tmp, file);
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
