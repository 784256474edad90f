import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FolderIndex } from '../../../local/store/folder-index.ts';
import { type ObjectInfo, ObjectStore } from '../../../local/store/object-store.ts';

/**
 * A kept folder (local/store/folder-index.ts) the store keeps writing into while it is listed: the census (the file
 * thread reading every name of the folder: ~110 ms at 100,000 entries) is taken only when the folder may have changed
 * otherwise. The store's own writes are told by the folder's times the file thread reads around each (file-writer.ts),
 * so a listing between them takes none; a file put there by anything else still shows at the next listing, and once
 * the folder's time is 2 s old a census settles what a change in the same tick could have hidden.
 */
const census = vi.hoisted(() => ({ taken: 0 }));
vi.mock('../../../local/store/file-writer.ts', async (importOriginal) => {
  const writer = await importOriginal<typeof import('../../../local/store/file-writer.ts')>();
  return {
    ...writer,
    censusOfFolder: (dir: string) => {
      census.taken++;
      return writer.censusOfFolder(dir);
    },
  };
});

const BUCKET = 'census';
const info = (size: number): ObjectInfo => ({
  size,
  etag: '0'.repeat(32),
  modified: new Date(0).toISOString(),
  contentType: 'text/plain',
});
let root: string;
let store: ObjectStore;
/** The folder index's clock: the real one plus `offset`. */
let offset = 0;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'folder-census-'));
  offset = 0;
  store = new ObjectStore(root, new FolderIndex(10, () => Date.now() + offset));
  await store.open();
  await store.createBucket(BUCKET);
  for (let i = 0; i < 20; i++)
    await store.put(BUCKET, `big/k-${String(i).padStart(3, '0')}`, info(1), Buffer.from('x'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

const keys = async () =>
  (await store.list(BUCKET, { prefix: 'big/', delimiter: '', after: '', maxKeys: 1000 })).objects.map((o) => o.key);

describe('a kept folder the store keeps writing into, listed meanwhile', () => {
  it('takes no census for the store’s own writes; before, one every 2 s it was listed', async () => {
    // Read and kept 5 s ago (by its clock): its last census is older than 2 s at each listing below.
    offset = -5_000;
    expect(await keys()).toHaveLength(20);
    offset = 0;
    census.taken = 0;
    for (let i = 20; i < 40; i++) {
      await store.put(BUCKET, `big/k-${String(i).padStart(3, '0')}`, info(1), Buffer.from('x'));
      expect(await keys()).toHaveLength(i + 1);
    }
    expect(census.taken).toBe(0);
    // Once its time is 2 s old, one census settles it (a change in the same tick as the store's would show there).
    offset = 3_000;
    expect(await keys()).toHaveLength(40);
    expect(census.taken).toBe(1);
    expect(await keys()).toHaveLength(40);
    expect(census.taken).toBe(1);
  });

  it('a folder of conversation folders, each export making one: no census for those either', async () => {
    const folders = async () =>
      (await store.list(BUCKET, { prefix: 'day/', delimiter: '/', after: '', maxKeys: 1000 })).prefixes;
    for (let i = 0; i < 20; i++)
      await store.put(BUCKET, `day/c-${String(i).padStart(3, '0')}/a.json`, info(1), Buffer.from('x'));
    offset = -5_000;
    expect(await folders()).toHaveLength(20);
    offset = 0;
    census.taken = 0;
    for (let i = 20; i < 30; i++) {
      // Each conversation's folder made by the file thread (in the kept folder), then more documents written into it.
      for (const doc of ['a.json', 'b.json'])
        await store.put(BUCKET, `day/c-${String(i).padStart(3, '0')}/${doc}`, info(1), Buffer.from('x'));
      expect(await folders()).toHaveLength(i + 1);
    }
    expect(census.taken).toBe(0);
  });

  it('a file put there by hand between two of the store’s writes shows at the next listing', async () => {
    offset = -5_000;
    expect(await keys()).toHaveLength(20);
    offset = 0;
    await store.put(BUCKET, 'big/k-100', info(1), Buffer.from('x'));
    expect(await keys()).toHaveLength(21);
    await writeFile(path.join(root, BUCKET, 'big', 'by-hand'), 'copied in');
    await store.put(BUCKET, 'big/k-101', info(1), Buffer.from('x'));
    expect(await keys()).toContain('big/by-hand');
  });

  it('a file put there by hand after the store’s last write shows at the next listing', async () => {
    expect(await keys()).toHaveLength(20);
    await store.put(BUCKET, 'big/k-100', info(1), Buffer.from('x'));
    expect(await keys()).toHaveLength(21);
    await writeFile(path.join(root, BUCKET, 'big', 'by-hand'), 'copied in');
    offset = 3_000; // its time moved on by a tick at least; a census tells
    expect(await keys()).toContain('big/by-hand');
  });
});
