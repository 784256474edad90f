import { mkdirSync, statSync } from 'node:fs';
import { chmod, stat } from 'node:fs/promises';
import path from 'node:path';

/**
 * Local state is its owner's (docs/security.md): the data folder holds requests, answers, keys and secrets, and the
 * files inside it are only as private as it is. A new folder is made 0700; one found open to others (made by a
 * version before this one, by `mkdir` with the usual umask, by a command run before the first start) is put back to
 * 0700 — unless it is a shared folder (sticky, like /tmp) or someone else's, which only a warning can fix.
 */
export type DataDirMode =
  | { state: 'private' }
  /** It was open to others (`mode`, octal) and is now 0700. */
  | { state: 'fixed'; mode: string }
  /** It is open to others (`mode`) and was left so: a shared folder, or another user's. */
  | { state: 'shared'; mode: string };

const OWNER_ONLY = 0o700;

export async function ownerOnlyDataDir(dir: string): Promise<DataDirMode> {
  makeDataDir(dir);
  const info = await stat(dir);
  const mode = (info.mode & 0o7777).toString(8).padStart(4, '0');
  if ((info.mode & 0o077) === 0) return { state: 'private' };
  const sticky = (info.mode & 0o1000) !== 0;
  const mine = process.getuid === undefined || info.uid === process.getuid();
  if (sticky || !mine) return { state: 'shared', mode };
  await chmod(dir, OWNER_ONLY);
  return { state: 'fixed', mode };
}

/** The start's line about the data folder's mode, or null when it was private already. */
export function dataDirModeWarning(dir: string, result: DataDirMode): string | null {
  if (result.state === 'fixed')
    return `webhook-gateway: ${dir} was readable by others (mode ${result.mode}); it is now 0700 (owner only)`;
  if (result.state === 'shared')
    return `webhook-gateway: ${dir} is open to other users (mode ${result.mode}) and is not yours to close: its conversations, answers and keys can be read by them; set LOCAL_DATA_DIR to a folder of your own`;
  return null;
}

/**
 * The data folder made (0700) if missing, each missing folder above it too, one mkdir each: Node's recursive mkdir
 * loops for ever where a folder's mkdir says ENOENT while the folder above it is there (`LOCAL_DATA_DIR=/proc/x`:
 * thousands of mkdir a second, no end). Here that, a file in the way, a folder this user cannot write or a read-only
 * file system is one error (the system's, on the folder that refused), for the command to say.
 */
export function makeDataDir(dir: string): void {
  try {
    mkdirSync(dir, OWNER_ONLY);
    return;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST' && isFolder(dir)) return;
    if (code !== 'ENOENT' || path.dirname(dir) === dir) throw error;
  }
  makeDataDir(path.dirname(dir));
  try {
    mkdirSync(dir, OWNER_ONLY);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST' && isFolder(dir)) return;
    throw error;
  }
}

function isFolder(dir: string): boolean {
  try {
    return statSync(dir).isDirectory();
  } catch {
    return false;
  }
}
