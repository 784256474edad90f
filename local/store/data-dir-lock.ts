/**
 * One gateway per LOCAL_DATA_DIR: two would recover each other's conversations in flight from the journal and
 * redeliver each other's envelopes. The running gateway holds `<dataDir>/gateway.pid`, which names it from the moment
 * it exists (createExclusive); a start that finds it held by a live process is refused, one left by a killed gateway
 * takes it over at once (the journal then recovers what it left).
 */
import { mkdir, readFile, rmdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { createExclusive } from '../../functions/shared/local-files.ts';

export class DataDirInUseError extends Error {}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // alive, someone else's
  }
}

/** How long a takeover may take before another start counts it abandoned (its process killed in the middle). */
const TAKEOVER_STALE_MS = 10_000;
const WAIT_MS = 20;

const holderOf = async (file: string) => Number.parseInt(await readFile(file, 'utf8').catch(() => ''), 10);

/**
 * The pid file left by `dead` is removed, by one start at a time: several starts at once after a crash (a service
 * manager and a shell) would otherwise each remove it and write its own, and run side by side. The one holding
 * `gateway.pid.takeover` removes the file only while it still names `dead`; whoever then creates it first holds the
 * folder, and the others find that live holder.
 */
async function removeLeftBy(file: string, dead: number): Promise<void> {
  const takeover = `${file}.takeover`;
  try {
    await mkdir(takeover);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const age = await stat(takeover).then(
      (s) => Date.now() - s.mtimeMs,
      () => 0,
    );
    if (age > TAKEOVER_STALE_MS) await rmdir(takeover).catch(() => undefined);
    await new Promise((resolve) => setTimeout(resolve, WAIT_MS));
    return;
  }
  try {
    if (Object.is(await holderOf(file), dead))
      await unlink(file).catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'ENOENT') throw error;
      });
  } finally {
    await rmdir(takeover).catch(() => undefined);
  }
}

export async function lockDataDir(dataDir: string): Promise<{ release(): Promise<void> }> {
  const file = path.join(dataDir, 'gateway.pid');
  const mine = String(process.pid);
  for (;;) {
    if (await createExclusive(file, mine, 0o600)) break;
    const holder = await holderOf(file);
    if (holder > 0 && holder !== process.pid && isAlive(holder))
      throw new DataDirInUseError(
        `another gateway (pid ${holder}) is using ${dataDir}: stop it, or give this one its own LOCAL_DATA_DIR (if no gateway runs, delete ${file})`,
      );
    // Dead, or no pid at all (empty: an earlier version's start killed between creating the file and writing its
    // pid; this one never leaves it empty): taken over at once. Gone meanwhile (NaN too): removeLeftBy leaves it.
    await removeLeftBy(file, holder);
  }
  return {
    async release() {
      if ((await readFile(file, 'utf8').catch(() => '')) === mine) await unlink(file).catch(() => undefined);
    },
  };
}
