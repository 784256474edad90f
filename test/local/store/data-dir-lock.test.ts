import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DataDirInUseError, lockDataDir } from '../../../local/store/data-dir-lock.ts';

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'data-dir-lock-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});
const pidFile = () => path.join(dir, 'gateway.pid');

describe('one gateway per LOCAL_DATA_DIR', () => {
  it('a live gateway holds it: a second start is refused with its pid', async () => {
    await writeFile(pidFile(), String(process.ppid)); // a live process that is not this one
    await expect(lockDataDir(dir)).rejects.toThrow(DataDirInUseError);
    await expect(lockDataDir(dir)).rejects.toThrow(`another gateway (pid ${process.ppid}) is using ${dir}`);
  });

  it('one left by a killed gateway is taken over (the journal recovers what it left); released on stop', async () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    await writeFile(pidFile(), String(dead));
    const lock = await lockDataDir(dir);
    expect(await readFile(pidFile(), 'utf8')).toBe(String(process.pid));
    await lock.release();
    await expect(stat(pidFile())).rejects.toThrow(/ENOENT/);
  });
});
