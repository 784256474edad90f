import { mkdtemp, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FolderIndex } from '../../../local/store/folder-index.ts';
import { type ListOptions, type ObjectInfo, ObjectStore } from '../../../local/store/object-store.ts';
import { byBytes, type ListedItem, listingModel } from '../../support/s3-listing-model.ts';

/**
 * Listings of large folders, which the store keeps in memory between pages (local/store/folder-index.ts): every page
 * equals a naive model's (every key sorted by UTF-8 bytes, filtered, rolled up, cut), whether the folder is kept
 * (all folders here: the index kept from 0 entries) or read each time; writes and deletes between pages show as S3's
 * do; a file copied in by hand shows; a restart lists the same from the files. Timing is in bench/s3-big-folder.ts.
 */
const BUCKET = 'big-folder';
const FLAT = Array.from({ length: 2_400 }, (_, i) => `flat/k-${String(i * 7).padStart(5, '0')}`);
const AWKWARD = ['flat/k-00070 x', 'flat/k-00070.', 'flat/ä', 'flat/😀', 'flat/\uE000', 'flat/k%41', 'flat/.hidden'];
const NESTED = ['flat/sub-a/1', 'flat/sub-a/2', 'flat/sub-b/x/y', 'flat/k-0/deep', 'other/z', 'a', 'flatter'];

type Item = ListedItem;

function model(keys: Iterable<string>, { prefix, delimiter, after, maxKeys }: ListOptions) {
  const items = listingModel(keys, prefix, delimiter, after);
  return { items: items.slice(0, maxKeys), truncated: items.length > maxKeys };
}

const info = (size: number): ObjectInfo => ({
  size,
  etag: '0'.repeat(32),
  modified: new Date(0).toISOString(),
  contentType: 'text/plain',
});

async function page(store: ObjectStore, options: ListOptions) {
  const listed = await store.list(BUCKET, options);
  const items: Item[] = [
    ...listed.objects.map((o) => ({ key: o.key })),
    ...listed.prefixes.map((prefix) => ({ prefix })),
  ].sort((a, b) => byBytes('key' in a ? a.key : a.prefix, 'key' in b ? b.key : b.prefix));
  return { items, truncated: listed.truncated, last: listed.last };
}

let root: string;
beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'big-folder-listing-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function storeWith(keys: string[], folders?: FolderIndex) {
  const store = new ObjectStore(root, folders);
  await store.open();
  await store.createBucket(BUCKET);
  for (let i = 0; i < keys.length; i += 50)
    await Promise.all(keys.slice(i, i + 50).map((key) => store.put(BUCKET, key, info(1), Buffer.from('x'))));
  return store;
}

/** 1,200 keys in `flat/`, the folder last changed an hour ago, and a clock a minute ahead: its reads are not racy. */
async function quietFolder() {
  const later = Date.now() + 60_000;
  const store = await storeWith(FLAT.slice(0, 1_200), new FolderIndex(0, () => later));
  const folder = path.join(root, BUCKET, 'flat');
  await utimes(folder, new Date(0), new Date(Date.now() - 3_600_000));
  return { store, folder };
}

describe('a listing of a folder of thousands of keys', () => {
  it.each([
    ['kept between listings', () => new FolderIndex(0)],
    ['read at each listing', () => new FolderIndex(Number.POSITIVE_INFINITY)],
  ])(
    'pages exactly as the model, the folder %s',
    async (_, folders) => {
      const keys = [...FLAT, ...AWKWARD, ...NESTED];
      const store = await storeWith(keys, folders());
      for (const prefix of ['', 'flat/', 'flat/k-01', 'flat/sub', 'flat/k-0/']) {
        for (const delimiter of ['', '/', '-', '0']) {
          for (const start of ['', 'flat/k-00070', 'flat/sub-a/', 'flat/k-08', 'flat/k-0/deep', 'zzz']) {
            for (const maxKeys of [333, 1000]) {
              let after = start;
              const all: Item[] = [];
              for (;;) {
                const got = await page(store, { prefix, delimiter, after, maxKeys });
                const want = model(keys, { prefix, delimiter, after, maxKeys });
                expect(got.items, `${prefix} ${delimiter} after ${after} max ${maxKeys}`).toEqual(want.items);
                expect(got.truncated).toBe(want.truncated);
                all.push(...got.items);
                if (!got.truncated) break;
                after = got.last!;
              }
              expect(all).toEqual(model(keys, { prefix, delimiter, after: start, maxKeys: 1e9 }).items);
            }
          }
        }
      }
    },
    120_000, // about 1,200 pages, each with its model: over 30 s at load 14; the limit only catches a hang
  );

  it('shows writes and deletes made between its pages as S3 does: a key after the last one listed comes later', async () => {
    const keys = new Set([...FLAT, ...NESTED]);
    const store = await storeWith([...keys], new FolderIndex(0));
    const options = { prefix: 'flat/', delimiter: '/', maxKeys: 400 };
    let after = '';
    let round = 0;
    const listed: string[] = [];
    for (;;) {
      const got = await page(store, { ...options, after });
      expect(got.items).toEqual(model(keys, { ...options, after }).items);
      listed.push(...got.items.map((i) => ('key' in i ? i.key : i.prefix)));
      if (!got.truncated) break;
      after = got.last!;
      round++;
      // Between pages: a key before the position (never listed now), keys after it (listed later), a folder made, and
      // keys after it deleted (never listed), one of them a folder's only key (its folder goes too).
      const added = [
        `flat/k-0000${round}a`,
        `flat/k-${String((round + 1) * 2_800 + 700).padStart(5, '0')}b`,
        `flat/sub-c${round}/x`,
      ];
      const deleted = [
        `flat/k-${String((round + 2) * 2_800 + 7).padStart(5, '0')}`,
        ...(round === 1 ? ['flat/sub-b/x/y'] : []),
      ];
      await Promise.all([
        ...added.map((key) => store.put(BUCKET, key, info(1), Buffer.from('x'))),
        ...deleted.map((key) => store.delete(BUCKET, key)),
      ]);
      for (const key of added) keys.add(key);
      for (const key of deleted) keys.delete(key);
    }
    expect(listed).toContain('flat/k-06300b');
    expect(listed).not.toContain('flat/k-00001a');
    expect(listed).not.toContain('flat/k-08407');
    expect(listed).not.toContain('flat/sub-b/');
    expect(listed).toContain('flat/sub-c3/');
    expect(listed).toEqual([...new Set(listed)]);
  });

  it('shows a file copied into the folder by hand, even one that leaves the folder its time (the same clock tick)', async () => {
    const store = await storeWith(FLAT.slice(0, 1_200), new FolderIndex(0));
    const folder = path.join(root, BUCKET, 'flat');
    const options = { prefix: 'flat/', delimiter: '', after: 'flat/k-08300', maxKeys: 10 };
    expect((await page(store, options)).items.map((i) => 'key' in i && i.key)).not.toContain('flat/k-08300-by-hand');
    await writeFile(path.join(folder, 'k-08300-by-hand'), 'copied in');
    expect((await page(store, options)).items[0]).toEqual({ key: 'flat/k-08300-by-hand' });
    // Read within the file system's clock tick of its last change, then changed in the same tick: still seen.
    const before = await stat(folder);
    await writeFile(path.join(folder, 'k-08300-by-hand-2'), 'copied in');
    await utimes(folder, before.atime, before.mtime);
    expect((await page(store, options)).items[1]).toEqual({ key: 'flat/k-08300-by-hand-2' });
  });

  it('a folder read long after its last change is kept; a change by hand is seen by its time', async () => {
    const { store, folder } = await quietFolder();
    const options = { prefix: 'flat/', delimiter: '', after: 'flat/k-08300', maxKeys: 10 };
    await page(store, options);
    await writeFile(path.join(folder, 'k-08300-by-hand'), 'copied in');
    expect((await page(store, options)).items[0]).toEqual({ key: 'flat/k-08300-by-hand' });
    await rm(path.join(folder, 'k-08300-by-hand'));
    expect((await page(store, options)).items[0]).toEqual({ key: 'flat/k-08302' });
  });

  it("lists the store's own writes and deletes at once, though the folder's time may not show them", async () => {
    const { store, folder } = await quietFolder();
    const options = { prefix: 'flat/', delimiter: '/', after: 'flat/k-08300', maxKeys: 3 };
    await page(store, options);
    const time = await stat(folder);
    await store.put(BUCKET, 'flat/k-08300-put', info(1), Buffer.from('x'));
    await store.put(BUCKET, 'flat/k-08301/in-a-folder', info(1), Buffer.from('x'));
    await store.delete(BUCKET, 'flat/k-08302');
    await utimes(folder, time.atime, time.mtime); // as if within the same tick of the file system's clock
    expect((await page(store, options)).items).toEqual([
      { key: 'flat/k-08300-put' },
      { prefix: 'flat/k-08301/' },
      { key: 'flat/k-08309' },
    ]);
  });

  it('after a restart, lists the same from the files', async () => {
    const keys = [...FLAT, ...NESTED];
    const first = await storeWith(keys, new FolderIndex(0));
    const options = { prefix: 'flat/', delimiter: '/', after: 'flat/k-05000', maxKeys: 500 };
    const before = await page(first, options);
    await first.delete(BUCKET, 'flat/k-05005');
    const restarted = new ObjectStore(root, new FolderIndex(0));
    await restarted.open();
    const after = await page(restarted, options);
    expect(after.items).toEqual([
      ...before.items.filter((i) => !('key' in i && i.key === 'flat/k-05005')),
      { key: 'flat/k-08505' },
    ]);
    expect(after.items).toEqual(
      model(
        keys.filter((k) => k !== 'flat/k-05005'),
        options,
      ).items,
    );
  });
});
