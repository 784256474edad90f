import { mkdtemp, rename, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ListMultipartUploadsCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { type FolderEntry, FolderIndex } from '../../../local/store/folder-index.ts';
import { type ObjectInfo, ObjectStore } from '../../../local/store/object-store.ts';
import { S3Api } from '../../../local/store/s3-api.ts';
import { type S3HttpServer, serveS3Api } from '../../../local/store/s3-http-server.ts';
import { byBytes, type ListedItem, listingModel } from '../../support/s3-listing-model.ts';

/**
 * The embedded S3's kept folders (local/store/folder-index.ts) through its real HTTP endpoint and the AWS SDK, every
 * page compared with the listing model: a listing under way while the folder it reads changes (the kept list is
 * changed in place); a change by a second writer that the folder's time cannot show; pages of ListMultipartUploads (kept in order: a page reads its own uploads, sorts nothing). Time is
 * the index's injected clock; the pause is a gate in the index, never a sleep.
 */
const BUCKET = 'big-folder-http';

/** A folder index that holds the first read of one folder until the test opens the gate. */
class GatedFolders extends FolderIndex {
  private gate: { dir: string; reached: () => void; open: Promise<void> } | undefined;

  /** Hold the next read of `dir`: `reached` resolves when a listing is held there; `open()` lets it go on. */
  hold(dir: string) {
    let reached!: () => void;
    let open!: () => void;
    const held = new Promise<void>((resolve) => {
      reached = resolve;
    });
    this.gate = { dir, reached, open: new Promise<void>((resolve) => (open = resolve)) };
    return { reached: held, open };
  }

  override async entries(dir: string): Promise<FolderEntry[]> {
    const gate = this.gate;
    if (gate?.dir === dir) {
      this.gate = undefined;
      gate.reached();
      await gate.open;
    }
    return super.entries(dir);
  }
}

const info: ObjectInfo = { size: 1, etag: '0'.repeat(32), modified: new Date(0).toISOString(), contentType: 'x/y' };

let root: string;
let store: ObjectStore;
let folders: GatedFolders;
let http: S3HttpServer;
let client: S3Client;
/** The folder index's clock (the real one when undefined). */
let now: number | undefined;

beforeEach(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'big-folder-http-'));
  now = undefined;
  folders = new GatedFolders(0, () => now ?? Date.now()); // every folder kept, as one of 1,000 entries or more is
  store = new ObjectStore(root, folders);
  await store.open();
  await store.createBucket(BUCKET);
  http = await serveS3Api(new S3Api(store), {
    host: '127.0.0.1',
    port: 0,
    headersTimeoutMs: 60_000,
    requestTimeoutMs: 300_000,
  });
  client = new S3Client({
    region: 'us-east-1',
    endpoint: `http://127.0.0.1:${http.port}`,
    forcePathStyle: true,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
  });
});
afterEach(async () => {
  client.destroy();
  await http.close();
  await rm(root, { recursive: true, force: true });
});

const put = (key: string) => store.put(BUCKET, key, info, Buffer.from('x'));

async function listed(prefix: string, delimiter: string, maxKeys = 1000): Promise<ListedItem[]> {
  const page = await client.send(
    new ListObjectsV2Command({ Bucket: BUCKET, Prefix: prefix, Delimiter: delimiter || undefined, MaxKeys: maxKeys }),
  );
  return [
    ...(page.Contents ?? []).map((o) => ({ key: o.Key! })),
    ...(page.CommonPrefixes ?? []).map((p) => ({ prefix: p.Prefix! })),
  ].sort((a, b) => Buffer.compare(Buffer.from(nameOf(a)), Buffer.from(nameOf(b))));
}
const nameOf = (item: ListedItem) => ('key' in item ? item.key : item.prefix);

describe('a kept folder changed while a listing reads it', () => {
  it.each([
    ['rolled up by a delimiter', '/'],
    ['walked into', ''],
  ])('lists each key once and skips none, a subfolder %s', async (_, delimiter) => {
    const keys = new Set(Array.from({ length: 300 }, (_, i) => `flat/k-${String(i).padStart(5, '0')}`));
    keys.add('flat/k-00150-sub/x');
    for (const key of keys) await put(key);
    // Held where it reads the subfolder: keys written and deleted before its place and after it meanwhile.
    const gate = folders.hold(path.join(root, BUCKET, 'flat', 'k-00150-sub'));
    const listing = listed('flat/', delimiter);
    await gate.reached;
    const before = new Set(keys);
    const added = ['flat/k-00010a', 'flat/k-00020a', 'flat/k-00200a'];
    const deleted = ['flat/k-00030', 'flat/k-00040', 'flat/k-00050', 'flat/k-00151', 'flat/k-00250'];
    for (const key of added) {
      await put(key);
      keys.add(key);
    }
    for (const key of deleted) {
      await store.delete(BUCKET, key);
      keys.delete(key);
    }
    gate.open();
    const got = await listing;
    // Up to its place as the folder was (less the keys deleted since: the page reads each key's metadata last), after
    // it as the folder is.
    const at = delimiter ? 'flat/k-00150-sub/' : 'flat/k-00150-sub/x';
    const upTo = listingModel(before, 'flat/', delimiter, '').filter(
      (i) => nameOf(i) <= at && !deleted.includes(nameOf(i)),
    );
    expect(got).toEqual([...upTo, ...listingModel(keys, 'flat/', delimiter, at)]);
    expect(got.map(nameOf)).toContain('flat/k-00200a');
    expect(got.map(nameOf)).not.toContain('flat/k-00151');
    expect(await listed('flat/', delimiter)).toEqual(listingModel(keys, 'flat/', delimiter, ''));
    // A key written into the kept folder changes its list in place (before: a copy of all of it per key).
    const list = await folders.entries(path.join(root, BUCKET, 'flat'));
    await put('flat/k-00100b');
    expect(await folders.entries(path.join(root, BUCKET, 'flat'))).toBe(list);
    const at100 = list.findIndex((e) => e.name === 'k-00100');
    expect(list.map((e) => e.name).slice(at100, at100 + 3)).toEqual(['k-00100', 'k-00100b', 'k-00101']);
  });
});

describe('a kept folder changed by a second writer', () => {
  it("lists a key another process wrote after one of the store's, though the folder's time shows the store's only", async () => {
    const keys = new Set(Array.from({ length: 300 }, (_, i) => `flat/k-${String(i).padStart(5, '0')}`));
    for (const key of keys) await put(key);
    const folder = path.join(root, BUCKET, 'flat');
    await utimes(folder, new Date(0), new Date(Date.now() - 3_600_000));
    now = Date.now() + 60_000; // the folder last changed long before: its time alone tells of any change
    expect(await listed('flat/', '/')).toEqual(listingModel(keys, 'flat/', '/', ''));
    // Each round: a PUT through the endpoint, then a second writer's change in the same tick of the folder's clock (its
    // time left as the PUT left it): a key written, then one renamed (as many entries as before). Before: never listed.
    const byHand: (() => Promise<{ added: string; removed?: string }>)[] = [
      async () => {
        await writeFile(path.join(folder, 'k-00100-other'), 'by another process');
        return { added: 'flat/k-00100-other' };
      },
      async () => {
        await rename(path.join(folder, 'k-00200'), path.join(folder, 'k-00200-renamed'));
        return { added: 'flat/k-00200-renamed', removed: 'flat/k-00200' };
      },
    ];
    for (const [round, change] of byHand.entries()) {
      const key = `flat/k-0005${round}-put`;
      await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: 'x' }));
      keys.add(key);
      const time = await stat(folder);
      const { added, removed } = await change();
      await utimes(folder, time.atime, time.mtime);
      if (removed) keys.delete(removed); // gone from the page at once: its bytes are not found as the page reads them
      // A folder the store keeps changing has its census taken at most every 2 s (the file thread's time): within
      // them, the store's own changes are listed; the other process's from the next census on.
      expect(await listed('flat/', '/'), `round ${round}, within 2 s`).toEqual(listingModel(keys, 'flat/', '/', ''));
      now = now! + 2_000;
      keys.add(added);
      expect(await listed('flat/', '/'), `round ${round}`).toEqual(listingModel(keys, 'flat/', '/', ''));
    }
    // The census (the file thread's hashes of the names) agrees with the list's (the event loop's), awkward names too:
    // after the store's own writes, the kept list is found true and kept, not read again.
    for (const key of ['flat/ä', 'flat/😀', 'flat/\uE000', 'flat/k%41', 'flat/.hidden', 'flat/x ', 'flat/sub/y']) {
      await put(key);
      keys.add(key);
    }
    const list = await folders.entries(folder);
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'flat/last', Body: 'x' }));
    keys.add('flat/last');
    now = now! + 2_000;
    expect(await listed('flat/', '')).toEqual(listingModel(keys, 'flat/', '', ''));
    expect(await folders.entries(folder)).toBe(list);
  });
});

type Upload = { key: string; id: string; initiated: string };

/** What S3 lists of `uploads`, naively: sorted by key, then the time each began, filtered, after the markers. */
function uploadsModel(uploads: Upload[], prefix: string, keyMarker: string, uploadIdMarker: string): Upload[] {
  const sorted = uploads
    .filter((u) => u.key.startsWith(prefix))
    .sort(
      (a, b) =>
        byBytes(a.key, b.key) ||
        (a.initiated < b.initiated ? -1 : a.initiated > b.initiated ? 1 : 0) ||
        byBytes(a.id, b.id),
    );
  if (!keyMarker) return sorted;
  const at = uploadIdMarker ? sorted.findIndex((u) => u.key === keyMarker && u.id === uploadIdMarker) : -1;
  if (at >= 0) return sorted.slice(at + 1);
  return sorted.filter(
    (u) => byBytes(u.key, keyMarker) > 0 || (uploadIdMarker !== '' && u.key === keyMarker && u.id > uploadIdMarker),
  );
}

describe('ListMultipartUploads', () => {
  it('pages exactly as the model, markers and prefixes, uploads begun and aborted between pages', async () => {
    const uploads: Upload[] = [];
    const begin = async (key: string) => {
      const id = await store.createUpload({ bucket: BUCKET, key, attributes: { contentType: 'x/y' } });
      uploads.push({ key, id, initiated: (await store.getUpload(id)).initiated });
    };
    for (let i = 0; i < 60; i++) await begin(`u/${String((i * 37) % 50).padStart(2, '0')}`); // some keys twice
    for (const key of ['v/ä', 'v/😀', 'v/\uE000', 'w']) await begin(key);
    const page = async (prefix: string, KeyMarker: string, UploadIdMarker: string, MaxUploads: number) => {
      const got = await client.send(
        new ListMultipartUploadsCommand({
          Bucket: BUCKET,
          Prefix: prefix || undefined,
          KeyMarker: KeyMarker || undefined,
          UploadIdMarker: UploadIdMarker || undefined,
          MaxUploads,
        }),
      );
      return {
        uploads: (got.Uploads ?? []).map((u) => ({ key: u.Key!, id: u.UploadId! })),
        truncated: got.IsTruncated === true,
        next: [got.NextKeyMarker ?? '', got.NextUploadIdMarker ?? ''] as const,
      };
    };
    const want = (prefix: string, keyMarker: string, uploadIdMarker: string) =>
      uploadsModel(uploads, prefix, keyMarker, uploadIdMarker).map(({ key, id }) => ({ key, id }));
    for (const prefix of ['', 'u/', 'u/1', 'v/', 'zz']) {
      for (const max of [1, 7, 1000]) {
        let [keyMarker, uploadIdMarker] = ['', ''];
        for (let round = 0; ; round++) {
          const got = await page(prefix, keyMarker, uploadIdMarker, max);
          const all = want(prefix, keyMarker, uploadIdMarker);
          expect(got.uploads, `${prefix} ${keyMarker} ${uploadIdMarker} ${max}`).toEqual(all.slice(0, max));
          expect(got.truncated).toBe(all.length > max);
          if (!got.truncated) break;
          [keyMarker, uploadIdMarker] = got.next;
          if (round % 3 === 1) {
            // Between pages: one begun after the place (listed later), one before it (not), the next one aborted.
            await begin(`${keyMarker}-later`);
            await begin('a-before');
            const next = want(prefix, keyMarker, uploadIdMarker)[0];
            if (next) {
              await store.abortUpload(next.id);
              uploads.splice(
                uploads.findIndex((u) => u.id === next.id),
                1,
              );
            }
          }
        }
      }
    }
    // A key marker alone, and an upload-id marker that is none of the key's uploads (those of the key after it by id).
    const key = uploads.find((u) => uploads.filter((v) => v.key === u.key).length > 1)!.key;
    const twice = want('u/', '', '').filter((u) => u.key === key);
    for (const marker of ['', '0', twice[0]!.id, twice[1]!.id, 'f'.repeat(32)]) {
      expect((await page('u/', key, marker, 5)).uploads).toEqual(want('u/', key, marker).slice(0, 5));
    }
    // A page sorts none of the uploads (before: all of them, for each page).
    const sort = Array.prototype.sort;
    const sorted: number[] = [];
    const spy = vi.spyOn(Array.prototype, 'sort').mockImplementation(function (this: unknown[], compare) {
      sorted.push(this.length);
      return sort.call(this, compare);
    });
    try {
      await page('u/', 'u/20', '', 5);
    } finally {
      spy.mockRestore();
    }
    expect(sorted.filter((n) => n >= 50)).toEqual([]);
  });
});
