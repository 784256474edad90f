/**
 * One gateway per LOCAL_DATA_DIR: two would recover each other's conversations in flight from the journal and
 * redeliver each other's envelopes. The running gateway holds `<dataDir>/gateway.pid`; a start that finds it held by
 * a live process is refused, one left by a killed gateway takes it over (the journal then recovers what it left).
 */
import { open, readFile, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';

export class DataDirInUseError extends Error {}

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // alive, someone else's
  }
}

export async function lockDataDir(dataDir: string): Promise<{ release(): Promise<void> }> {
  const file = path.join(dataDir, 'gateway.pid');
  const mine = String(process.pid);
  try {
    const handle = await open(file, 'wx', 0o600);
    await handle.writeFile(mine);
    await handle.close();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    const holder = Number.parseInt(await readFile(file, 'utf8').catch(() => ''), 10);
    if (holder > 0 && holder !== process.pid && isAlive(holder))
      throw new DataDirInUseError(
        `another gateway (pid ${holder}) is using ${dataDir}: stop it, or give this one its own LOCAL_DATA_DIR (if no gateway runs, delete ${file})`,
      );
    await writeFile(file, mine, { mode: 0o600 });
  }
  return {
    async release() {
      if ((await readFile(file, 'utf8').catch(() => '')) === mine) await unlink(file).catch(() => undefined);
    },
  };
}
