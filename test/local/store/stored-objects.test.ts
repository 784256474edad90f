import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DeleteObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type EmbeddedS3, startEmbeddedS3 } from '../../../local/store/embedded-s3.ts';
import { s3Client } from '../../../local/store/export-bucket.ts';
import { listStoredObjects, readStoredObject } from '../../../local/store/stored-objects.ts';

/**
 * The embedded store read from its directory must agree with what was PUT through S3: whoever replaces the store
 * finds out here when this module no longer knows its layout.
 */
let dir: string;
let s3: EmbeddedS3;
let client: S3Client;
const BUCKET = 'stored-objects-test';

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'stored-objects-'));
  s3 = await startEmbeddedS3({ directory: dir, port: 0, bucket: BUCKET });
  client = s3Client(s3.endpoint, {});
});
afterAll(async () => {
  client?.destroy();
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
});

const put = (Key: string, Body: string) => client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body }));

describe('listStoredObjects', () => {
  it('lists the objects PUT through S3 under a prefix, by name, and reads their bytes', async () => {
    await put('conversation-history/2026/11/29/webhook_a/analysis.json', '{"a":1}\n');
    await put('conversation-history/2026/11/29/webhook_a/summary.json', '{}\n');
    await put('conversation-history/2026/11/30/webhook_b/analysis.json', '{"b":2}\n');
    await put('elsewhere/analysis.json', '{}');
    const listed = await listStoredObjects(dir, BUCKET, 'conversation-history/', 'analysis.json');
    expect(listed.map((o) => o.key).sort()).toEqual([
      'conversation-history/2026/11/29/webhook_a/analysis.json',
      'conversation-history/2026/11/30/webhook_b/analysis.json',
    ]);
    const a = listed.find((o) => o.key.includes('webhook_a'))!;
    expect(readStoredObject(a)).toBe('{"a":1}\n');
    expect((await listStoredObjects(dir, BUCKET, 'conversation-history/')).map((o) => o.key)).toHaveLength(3);
  });

  it('with a depth, looks the name up in the folders that deep only (the same objects, read faster)', async () => {
    await put('conversation-history/2026/11/29/webhook_a/deeper/analysis.json', '{}');
    await put('conversation-history/2026/11/analysis.json', '{}');
    const byDepth = await listStoredObjects(dir, BUCKET, 'conversation-history/', 'analysis.json', 4);
    expect(byDepth.map((o) => o.key).sort()).toEqual([
      'conversation-history/2026/11/29/webhook_a/analysis.json',
      'conversation-history/2026/11/30/webhook_b/analysis.json',
    ]);
    const all = await listStoredObjects(dir, BUCKET, 'conversation-history/', 'analysis.json');
    expect(all).toHaveLength(4);
    expect(byDepth).toEqual(all.filter((o) => o.key.split('/').length === 6));
  });

  it('gives a rewritten object a new version, and forgets a deleted one', async () => {
    const key = 'conversation-history/2026/12/01/webhook_c/analysis.json';
    await put(key, '{"v":1}\n');
    const [before] = await listStoredObjects(dir, BUCKET, 'conversation-history/2026/12/');
    await put(key, '{"v":22}\n');
    const [after] = await listStoredObjects(dir, BUCKET, 'conversation-history/2026/12/');
    expect(after!.version).not.toBe(before!.version);
    expect(readStoredObject(after!)).toBe('{"v":22}\n');
    await client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: key }));
    expect(await listStoredObjects(dir, BUCKET, 'conversation-history/2026/12/')).toEqual([]);
    expect(readStoredObject(after!)).toBeNull();
  });

  it('lists nothing for a bucket or prefix that does not exist', async () => {
    expect(await listStoredObjects(dir, 'no-such-bucket', 'conversation-history/')).toEqual([]);
    expect(await listStoredObjects(dir, BUCKET, 'conversation-history/1999/')).toEqual([]);
  });
});
