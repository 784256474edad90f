import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { lstat, mkdir, mkdtemp, readdir, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { IN_MEMORY_BODY_LIMIT, ObjectStore } from '../../../local/store/object-store.ts';
import { migrateS3rverLayout } from '../../../local/store/s3rver-migration.ts';

/**
 * A file of the data folder swapped for something else between the store's look at it (lstat) and its read of it: a
 * link to a file outside the data folder, or a FIFO. What the store hashes is what it opened once, without following
 * a link or waiting on a FIFO (the data folder's one reader's rule: functions/shared/local-files.ts, readDataFile).
 * The hook runs right after lstat answered for the file it names.
 */
const hooks = vi.hoisted(() => ({ afterLstat: null as null | { file: string; swap: () => Promise<void> } }));
vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  const lstat = (async (file: string, ...rest: unknown[]) => {
    const s = await (fs.lstat as (...args: unknown[]) => Promise<unknown>)(file, ...rest);
    const hook = hooks.afterLstat;
    if (hook && String(file) === hook.file) {
      hooks.afterLstat = null;
      await hook.swap();
    }
    return s;
  }) as typeof fs.lstat;
  return { ...fs, default: { ...fs, lstat }, lstat };
});

const BUCKET = 'swapped';
const SECRET = 'not an object: a file outside the data folder\n';
const md5 = (text: string | Buffer) => createHash('md5').update(text).digest('hex');
let root: string;
let outside: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'swapped-files-'));
  outside = await mkdtemp(path.join(tmpdir(), 'swapped-files-outside-'));
  await writeFile(path.join(outside, 'secret.txt'), SECRET);
});
afterEach(async () => {
  hooks.afterLstat = null;
  await rm(root, { recursive: true, force: true });
  await rm(outside, { recursive: true, force: true });
});

const toLink = (file: string) => async () => {
  await unlink(file);
  await symlink(path.join(outside, 'secret.txt'), file);
};
const toFifo = (file: string) => async () => {
  await unlink(file);
  expect(spawnSync('mkfifo', [file]).status).toBe(0);
};

describe('bytes without metadata, swapped between the look and the read', () => {
  async function storeWithBareObject() {
    const store = new ObjectStore(root);
    await store.open();
    await store.createBucket(BUCKET);
    // Bytes written by hand (no metadata beside them): a listing describes them from the bytes.
    const file = store.dataFile(BUCKET, 'by-hand.txt');
    await writeFile(file, 'written by hand');
    return { store, file };
  }

  it('a regular file stays described from its bytes', async () => {
    const { store } = await storeWithBareObject();
    const page = await store.list(BUCKET, { prefix: '', delimiter: '', after: '', maxKeys: 10 });
    expect(page.objects.map((o) => [o.key, o.info.etag, o.info.size])).toEqual([
      ['by-hand.txt', md5('written by hand'), 15],
    ]);
  });

  it('swapped for a link out of the data folder: not listed; before, the target was hashed and its ETag listed', async () => {
    const { store, file } = await storeWithBareObject();
    hooks.afterLstat = { file, swap: toLink(file) };
    const page = await store.list(BUCKET, { prefix: '', delimiter: '', after: '', maxKeys: 10 });
    expect(hooks.afterLstat).toBeNull(); // the swap happened between the look and the read
    expect(page.objects).toEqual([]);
  });

  it('swapped for a FIFO: not listed, and nothing waits for a writer (before, the listing never answered)', async () => {
    const { store, file } = await storeWithBareObject();
    hooks.afterLstat = { file, swap: toFifo(file) };
    const page = await store.list(BUCKET, { prefix: '', delimiter: '', after: '', maxKeys: 10 });
    expect(hooks.afterLstat).toBeNull();
    expect(page.objects).toEqual([]);
  });
});

describe('a large object of the s3rver layout without its .md5, swapped before it is hashed', () => {
  async function oldLayout() {
    const folder = path.join(root, BUCKET, 'exports');
    await mkdir(folder, { recursive: true });
    const file = path.join(folder, 'large.bin._S3rver_object');
    // Above what is read whole: hashed from the file (s3rver-migration.ts, md5OfFile).
    await writeFile(file, Buffer.alloc(IN_MEMORY_BODY_LIMIT + 1, 7));
    const store = new ObjectStore(root);
    await store.open();
    return { folder, file, store };
  }

  it('a regular file is moved with the MD5 of its bytes', async () => {
    const { store } = await oldLayout();
    expect(await migrateS3rverLayout(store)).toBe(1);
    const moved = await store.get(BUCKET, 'exports/large.bin', true);
    await moved?.close();
    expect(moved?.info).toMatchObject({
      size: IN_MEMORY_BODY_LIMIT + 1,
      etag: md5(Buffer.alloc(IN_MEMORY_BODY_LIMIT + 1, 7)),
    });
  });

  const cases = [
    ['a link out of the data folder', toLink, 'hashed'],
    ['a FIFO', toFifo, 'hashed'],
    // With its .md5 beside it nothing is hashed: before, the copy opened the file by its path again.
    ['a link out of the data folder', toLink, 'with its .md5'],
    ['a FIFO', toFifo, 'with its .md5'],
  ] as const;
  for (const [what, swap, md5File] of cases) {
    it(`${md5File}, swapped for ${what}: not read, left where it is and named; before, its target was moved in (a FIFO: the start hung)`, async () => {
      const { folder, file, store } = await oldLayout();
      if (md5File === 'with its .md5') await writeFile(`${file}.md5`, `"${'a'.repeat(32)}"`);
      hooks.afterLstat = { file, swap: swap(file) };
      const warned: string[] = [];
      const warn = vi.spyOn(console, 'warn').mockImplementation((line: string) => void warned.push(line));
      try {
        expect(await migrateS3rverLayout(store)).toBe(0);
      } finally {
        warn.mockRestore();
      }
      expect(hooks.afterLstat).toBeNull();
      expect(await store.get(BUCKET, 'exports/large.bin', true)).toBeNull();
      const kind = what === 'a FIFO' ? 'a FIFO (a named pipe)' : 'a symbolic link, which the gateway never makes';
      expect(warned).toEqual([
        `webhook-gateway: ${file} is not a regular file (it is ${kind}): not read by the move of the s3rver layout; left where it is, no object moved from it: remove it`,
      ]);
      expect(await readdir(folder)).toContain('large.bin._S3rver_object');
      if (md5File === 'with its .md5') expect(await readdir(folder)).toContain('large.bin._S3rver_object.md5');
      const left = await lstat(file);
      expect(what === 'a FIFO' ? left.isFIFO() : left.isSymbolicLink()).toBe(true);
    });
  }
});
