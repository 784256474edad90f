import { ListMultipartUploadsCommand, ListPartsCommand } from '@aws-sdk/client-s3';
import { expect, it, vi } from 'vitest';
import { inProcessS3 } from '../../../local/store/in-process-s3-transport.ts';
import { ObjectStore } from '../../../local/store/object-store.ts';
import { useEmbeddedS3 } from '../../support/embedded-s3.ts';

/** Every upload.json the embedded store reads (the file that names an upload's bucket and key), and part metadata. */
const uploadReads = vi.hoisted(() => [] as string[]);
// Each read opens its file (functions/shared/local-files.ts readDataFile, Node's callback API).
vi.mock(import('node:fs'), async (original) => {
  const actual = await original();
  const open = ((file: unknown, ...rest: unknown[]) => {
    if (typeof file === 'string' && /(upload|\.\d+\.meta)\.json$/.test(file)) uploadReads.push(file);
    return (actual.open as (...args: unknown[]) => unknown)(file, ...rest);
  }) as typeof actual.open;
  return { ...actual, open, default: { ...actual, open } };
});

const BUCKET = 'uploads-test';
const local = useEmbeddedS3(BUCKET, { requestHandler: inProcessS3 });

it('a page of ListMultipartUploads reads only the uploads begun since the last listing by another process, not every upload', async () => {
  // Begun by another process on the same folder (its own store): this one learns of them from the folder.
  const other = new ObjectStore(local.s3.store.root);
  const begin = (key: string, store = other) =>
    store.createUpload({ bucket: BUCKET, key, attributes: { contentType: 'application/octet-stream' } });
  for (let i = 0; i < 40; i++) await begin(`u/${String(i).padStart(2, '0')}`);
  const page = (KeyMarker?: string) =>
    local.client.send(new ListMultipartUploadsCommand({ Bucket: BUCKET, MaxUploads: 10, KeyMarker }));

  uploadReads.length = 0;
  const first = await page();
  expect(first.Uploads?.map((u) => u.Key)).toEqual(Array.from({ length: 10 }, (_, i) => `u/0${i}`));
  expect(uploadReads.filter((f) => f.endsWith('upload.json'))).toHaveLength(40); // the first listing learns each upload's key once

  uploadReads.length = 0;
  const second = await page(first.NextKeyMarker);
  expect(second.Uploads?.map((u) => u.Key)).toEqual(Array.from({ length: 10 }, (_, i) => `u/${10 + i}`));
  expect(uploadReads).toEqual([]);

  // One begun by the other process and one aborted since: the begun one is read (and listed), the aborted one is no
  // longer listed; one begun by this store is known without a read.
  const aborted = (await page()).Uploads![0]!;
  await local.s3.store.abortUpload(aborted.UploadId!);
  await begin('u/00b');
  await begin('u/00c', local.s3.store);
  uploadReads.length = 0;
  const again = await page();
  expect(uploadReads).toHaveLength(1);
  expect(again.Uploads?.map((u) => u.Key)).toEqual([
    'u/00b',
    'u/00c',
    ...Array.from({ length: 8 }, (_, i) => `u/0${i + 1}`),
  ]);
});

it("a page of ListParts reads the metadata of its own parts only, not of every part of the upload's", async () => {
  const { s3, client } = local;
  const uploadId = await s3.store.createUpload({
    bucket: BUCKET,
    key: 'parts',
    attributes: { contentType: 'application/octet-stream' },
  });
  const modified = new Date().toISOString();
  for (let partNumber = 1; partNumber <= 30; partNumber++)
    await s3.store.putPart(uploadId, { partNumber, size: 1, etag: '0'.repeat(32), modified }, Buffer.from('x'));
  uploadReads.length = 0;
  const page = await client.send(
    new ListPartsCommand({ Bucket: BUCKET, Key: 'parts', UploadId: uploadId, MaxParts: 10, PartNumberMarker: '10' }),
  );
  expect(page.Parts?.map((p) => p.PartNumber)).toEqual(Array.from({ length: 10 }, (_, i) => 11 + i));
  expect(page.IsTruncated).toBe(true);
  expect(page.NextPartNumberMarker).toBe('20');
  // The page's 10, and the 11th that tells it is truncated (before: all 30).
  expect(uploadReads.filter((file) => /\.\d+\.meta\.json$/.test(file))).toHaveLength(11);
  const last = await client.send(
    new ListPartsCommand({ Bucket: BUCKET, Key: 'parts', UploadId: uploadId, MaxParts: 10, PartNumberMarker: '20' }),
  );
  expect(last.Parts?.map((p) => p.PartNumber)).toEqual(Array.from({ length: 10 }, (_, i) => 21 + i));
  expect(last.IsTruncated).toBe(false);
});

it("the hourly abort of day-old uploads reads the upload.json of the uploads it did not know only, not of every one's", async () => {
  const { store } = local.s3;
  const other = new ObjectStore(store.root);
  const ids: string[] = [];
  for (let i = 0; i < 30; i++)
    ids.push(await other.createUpload({ bucket: BUCKET, key: `aged/${i}`, attributes: { contentType: 'x/y' } }));
  const anHourAgo = new Date(Date.now() - 3_600_000);
  uploadReads.length = 0;
  expect(await store.abortUploadsBegunBefore(anHourAgo)).toBe(0);
  // The first run learns when each upload another process began began, once.
  expect(uploadReads.filter((file) => ids.some((id) => file.includes(id)))).toHaveLength(30);
  uploadReads.length = 0;
  expect(await store.abortUploadsBegunBefore(anHourAgo)).toBe(0);
  expect(uploadReads).toEqual([]); // before: each run read all 30 again
  // Once past the cutoff, every one is aborted, this store's own too, and none is listed any longer.
  const listed = await store.listUploads(BUCKET);
  expect(listed.map((u) => u.id)).toEqual(expect.arrayContaining(ids));
  expect(await store.abortUploadsBegunBefore(new Date(Date.now() + 60_000))).toBe(listed.length);
  expect(await store.listUploads(BUCKET)).toEqual([]);
  expect(await other.listUploads(BUCKET)).toEqual([]);
});
