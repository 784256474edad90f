/**
 * One gateway per LOCAL_DATA_DIR: two would recover each other's conversations in flight from the journal and
 * redeliver each other's envelopes. The running gateway holds `<dataDir>/gateway.pid`, which names it from the moment
 * it exists (createExclusive); a start that finds it held by a live process is refused, one left by a killed gateway
 * takes it over at once (the journal then recovers what it left).
 */
import { readFile, rmdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { createExclusive, removeStaleLock } from '../../functions/shared/local-files.ts';

export class DataDirInUseError extends Error {}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // alive, someone else's
  }
}

const WAIT_MS = 20;

/** The pid file's text, or null when it is gone. */
const textOf = (file: string) =>
  readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null;
    throw error;
  });

export async function lockDataDir(dataDir: string): Promise<{ release(): Promise<void> }> {
  const file = path.join(dataDir, 'gateway.pid');
  const mine = String(process.pid);
  for (;;) {
    if (await createExclusive(file, mine, 0o600)) break;
    const text = await textOf(file);
    if (text === null) continue; // gone meanwhile
    const holder = Number.parseInt(text, 10);
    if (holder > 0 && holder !== process.pid && isAlive(holder))
      throw new DataDirInUseError(
        `another gateway (pid ${holder}) is using ${dataDir}: stop it, or give this one its own LOCAL_DATA_DIR (if no gateway runs, delete ${file})`,
      );
    // Dead, or no pid at all (empty: an earlier version's start killed between creating the file and writing its
    // pid; this one never leaves it empty): taken over at once, by one start of several at once (removeStaleLock
    // removes it only as it was read; whoever then creates it first holds the folder, and the others find that live
    // holder). A start killed in the middle of its takeover keeps no other waiting: its claim names a dead process.
    if (!(await removeStaleLock(file, text))) await new Promise((resolve) => setTimeout(resolve, WAIT_MS));
  }
  // An earlier version took over with a folder beside the file: one a start killed in the middle left goes now.
  await rmdir(`${file}.takeover`).catch(() => undefined);
  return {
    async release() {
      if ((await readFile(file, 'utf8').catch(() => '')) === mine) await unlink(file).catch(() => undefined);
    },
  };
}
