import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readdir, rm, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { writerHost } from '../../../functions/shared/writers.ts';
import { ObjectStore } from '../../../local/store/object-store.ts';
import { openFilesUnder } from '../../support/open-files.ts';
import { anotherHost } from '../../support/pid-namespaces.ts';

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

  it('judges those of another pid namespace (a container sharing the folder) by their age alone', async () => {
    const temp = path.join(root, '.tmp');
    await mkdir(temp, { recursive: true });
    const other = anotherHost();
    const GONE = 99_999_999; // above any pid_max: no process of this namespace has it
    // A container's gateway writing an export now: its pid is not alive here, or is this process's (pids from 1).
    const containers = [`${GONE}@${other}-7-0a1b2c`, `${process.pid}@${other}-2-0a1b2c`];
    const goneHere = `${GONE}@${writerHost()}-1-0d0e0f`; // this namespace's, its writer gone
    const oldContainer = `${GONE}@${other}-9-0a1b2c`; // a container's, two hours old: its writer stopped long ago
    const mine = path.basename(new ObjectStore(root).tempPath());
    for (const name of [...containers, goneHere, oldContainer, mine]) await writeFile(path.join(temp, name), '{');
    const twoHoursAgo = new Date(Date.now() - 7_200_000);
    await utimes(path.join(temp, oldContainer), twoHoursAgo, twoHoursAgo);
    await new ObjectStore(root).open();
    // Before: the container's write under way was removed at once (its pid not alive here).
    expect((await readdir(temp)).sort()).toEqual([...containers, mine].sort());
    expect(mine).toMatch(new RegExp(`^${process.pid}@${writerHost()}-[0-9a-f]{12}$`));
  });
});

describe('an object read for its info alone (a HEAD, its tags, the s3rver move checked)', () => {
  it('leaves no file open, close() called or not, small or streamed; a full read still serves the bytes', async () => {
    const store = new ObjectStore(root);
    await store.open();
    await store.createBucket('b');
    const small = Buffer.from('{"n":1}');
    const big = Buffer.alloc(300 * 1024, 'b'); // above what is read whole: streamed from its open file
    for (const [key, bytes] of [
      ['small.json', small],
      ['big.bin', big],
    ] as const) {
      const info = {
        size: bytes.length,
        etag: '0'.repeat(32),
        modified: new Date(0).toISOString(),
        contentType: 'x/y',
      };
      await store.put('b', key, info, bytes);
    }
    for (let n = 0; n < 20; n++) {
      expect((await store.get('b', 'small.json', true))?.info.size).toBe(small.length);
      expect((await store.get('b', 'big.bin', true))?.info.size).toBe(big.length);
    }
    // Before: 40 files open under the data folder until garbage collection closed them (Node warned for each).
    expect(openFilesUnder(root)).toEqual([]);
    const read = (await store.get('b', 'big.bin'))!;
    const chunks: Buffer[] = [];
    for await (const chunk of read.body() as AsyncIterable<Buffer>) chunks.push(chunk);
    expect(Buffer.concat(chunks).equals(big)).toBe(true);
    expect(openFilesUnder(root)).toEqual([]);
  });
});
