import { readdirSync, readlinkSync } from 'node:fs';

/** The files this process has open under `dir` (from /proc/self/fd): what a leak leaves for garbage collection. */
export function openFilesUnder(dir: string): string[] {
  const open: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(`${dir}/`)) open.push(target);
    } catch {
      // closed meanwhile
    }
  }
  return open;
}
