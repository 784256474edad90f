import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { FolderIndex } from '../../../local/store/folder-index.ts';
import { type ListedUpload, ObjectStore } from '../../../local/store/object-store.ts';
import type { UploadPageOptions } from '../../../local/store/upload-index.ts';
import { byBytes } from '../../support/s3-listing-model.ts';

/**
 * ListMultipartUploads over more than 1,000 uploads in progress: every page equals a naive model's (every upload
 * sorted by key in UTF-8 order, then by when it began, then by id; those under the prefix after the markers; cut), and
 * a page costs what it returns: after the first listing, no page reads the upload folders' names again (they are kept:
 * local/store/folder-index.ts) unless another process began or removed an upload, which the next page lists.
 */
const reads = vi.hoisted(() => ({ multipart: 0 }));
const isMultipart = (dir: unknown) => String(dir).endsWith(`${'/'}.multipart`);
vi.mock('node:fs/promises', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs/promises')>();
  const readdir = ((dir: string, ...rest: unknown[]) => {
    if (isMultipart(dir)) reads.multipart++;
    return (fs.readdir as (...args: unknown[]) => unknown)(dir, ...rest);
  }) as typeof fs.readdir;
  return { ...fs, default: { ...fs, readdir }, readdir };
});
vi.mock('../../../local/store/file-writer.ts', async (importOriginal) => {
  const writer = await importOriginal<typeof import('../../../local/store/file-writer.ts')>();
  return {
    ...writer,
    readFolder: (dir: string) => {
      if (isMultipart(dir)) reads.multipart++;
      return writer.readFolder(dir);
    },
    censusOfFolder: (dir: string) => {
      if (isMultipart(dir)) reads.multipart++;
      return writer.censusOfFolder(dir);
    },
  };
});

const BUCKET = 'many-uploads';
const KEYS = ['a', 'b/1', 'b/2', 'b/😀', 'b/ä', 'c', 'exports/x', 'exports/y'];
let root: string;
let store: ObjectStore;
let begun: ListedUpload[];
/**
 * The store's clock for its kept folders: 3 s after the last change, so that a folder's time tells (within 2 s of it,
 * a change in the same tick of the file system's clock would not show, and each use takes the folder's census).
 */
const later = () => Date.now() + 3_000;

const order = (a: ListedUpload, b: ListedUpload) =>
  byBytes(a.key, b.key) || (a.initiated < b.initiated ? -1 : a.initiated > b.initiated ? 1 : 0) || byBytes(a.id, b.id);

/** The model: every upload of the bucket in order, under the prefix, after the markers (S3's rule), at most max. */
function model(uploads: ListedUpload[], { prefix, keyMarker, uploadIdMarker, maxUploads }: UploadPageOptions) {
  const sorted = uploads.filter((u) => u.key.startsWith(prefix)).sort(order);
  const ofMarker = sorted.filter((u) => u.key === keyMarker);
  const at = ofMarker.findIndex((u) => u.id === uploadIdMarker);
  const after = sorted.filter((u) =>
    !keyMarker
      ? true
      : byBytes(u.key, keyMarker) > 0 ||
        (uploadIdMarker !== '' && u.key === keyMarker && (at >= 0 ? ofMarker.indexOf(u) > at : u.id > uploadIdMarker)),
  );
  return { ids: after.slice(0, maxUploads).map((u) => u.id), truncated: after.length > maxUploads };
}

async function begin(by: ObjectStore, key: string): Promise<ListedUpload> {
  const id = await by.createUpload({ bucket: BUCKET, key, attributes: { contentType: 'application/octet-stream' } });
  return { id, ...(await by.getUpload(id)) };
}

/** Every page by the markers, each compared with the model. */
async function pageThrough(prefix: string, maxUploads: number): Promise<number> {
  let keyMarker = '';
  let uploadIdMarker = '';
  let pages = 0;
  for (;;) {
    const options = { prefix, keyMarker, uploadIdMarker, maxUploads };
    const page = await store.listUploads(BUCKET, options);
    expect({ ids: page.uploads.map((u) => u.id), truncated: page.truncated }).toEqual(model(begun, options));
    pages++;
    if (!page.truncated) return pages;
    const last = page.uploads.at(-1)!;
    keyMarker = last.key;
    uploadIdMarker = last.id;
  }
}

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'many-uploads-'));
  store = new ObjectStore(root, new FolderIndex(undefined, later));
  await store.open();
  await store.createBucket(BUCKET);
  begun = [];
  for (let i = 0; i < 1_200; i++) begun.push(await begin(store, KEYS[i % KEYS.length]!));
}, 120_000);
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('ListMultipartUploads over 1,200 uploads', () => {
  it('every page equals the model (prefixes, markers, page sizes), and no page reads the upload folders again', async () => {
    await store.listUploads(BUCKET, { prefix: '', keyMarker: '', uploadIdMarker: '', maxUploads: 1 });
    reads.multipart = 0;
    expect(await pageThrough('', 1_000)).toBe(2);
    expect(await pageThrough('', 97)).toBe(13);
    expect(await pageThrough('b/', 50)).toBe(12);
    expect(await pageThrough('exports/', 1_000)).toBe(1);
    // A key marker with an upload-id marker that is none of its uploads: those of the key whose id sorts after it.
    for (const uploadIdMarker of ['', '8'.repeat(32)]) {
      const options = { prefix: '', keyMarker: 'b/2', uploadIdMarker, maxUploads: 300 };
      const page = await store.listUploads(BUCKET, options);
      expect({ ids: page.uploads.map((u) => u.id), truncated: page.truncated }).toEqual(model(begun, options));
    }
    // Before: each of those 30 pages read every upload folder's name (1,200) again.
    expect(reads.multipart).toBe(0);
  });

  it("another process's uploads begun and removed show on the next page; this store's own without a read", async () => {
    const other = new ObjectStore(root);
    for (let i = 0; i < 5; i++) begun.push(await begin(other, `b/other-${i}`));
    for (const gone of begun.splice(3, 3)) await other.abortUpload(gone.id);
    expect(await pageThrough('', 500)).toBe(3);
    expect(await pageThrough('b/', 1_000)).toBe(1);

    begun.push(await begin(store, 'b/mine'));
    await store.abortUpload(begun.shift()!.id);
    reads.multipart = 0;
    expect(await pageThrough('', 500)).toBe(3);
    expect(reads.multipart).toBe(0);
  });
});
