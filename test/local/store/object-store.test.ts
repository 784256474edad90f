import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ObjectStore } from '../../../local/store/object-store.ts';

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'object-store-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('the embedded S3 store opened after a crash', () => {
  it('drops the half-written objects of a process that is gone at once, never those of a live one', async () => {
    const temp = path.join(root, '.tmp');
    await mkdir(temp, { recursive: true });
    // A gateway killed (kill -9) in the middle of an export's PUT, restarted at once.
    const gone = spawnSync(process.execPath, ['-e', '0']).pid!;
    const cut = `${gone}-7-0a1b2c`;
    const ours = `${process.pid}-1-0d0e0f`; // a write of this process under way
    const parent = `${process.ppid}-3-0a0b0c`; // of a live process (a command reading the same folder)
    for (const name of [cut, ours, parent]) await writeFile(path.join(temp, name), '{"conversation":');
    await new ObjectStore(root).open();
    // Before: kept until a start at least an hour later.
    expect((await readdir(temp)).sort()).toEqual([ours, parent].sort());
  });
});
