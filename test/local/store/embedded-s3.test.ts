import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, readFile, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateBucketCommand,
  CreateMultipartUploadCommand,
  DeleteBucketCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  HeadBucketCommand,
  HeadObjectCommand,
  ListBucketsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { type EmbeddedS3, startEmbeddedS3 } from '../../../local/store/embedded-s3.ts';
import { inProcessS3 } from '../../../local/store/in-process-s3-transport.ts';

/**
 * The embedded S3 through the AWS SDK, both ways in: over HTTP (what the CLI, `conversations search` and other
 * processes use) and through the in-process transport (what the gateway's handlers use). Same store, same rules.
 */
const BUCKET = 'embedded-test';
let dir: string;
let s3: EmbeddedS3;
let overHttp: S3Client;
let inProcess: S3Client;

const md5 = (data: string | Buffer) => createHash('md5').update(data).digest('hex');
const clientFor = (endpoint: string, extra: object = {}) =>
  new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    ...extra,
  });

async function text(client: S3Client, key: string, extra: object = {}) {
  const out = await client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, ...extra }));
  return { out, body: await out.Body!.transformToString() };
}

beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'embedded-s3-'));
  s3 = await startEmbeddedS3({ directory: dir, port: 0, bucket: BUCKET });
  overHttp = clientFor(s3.endpoint);
  inProcess = clientFor(s3.endpoint, { requestHandler: inProcessS3 });
});
afterAll(async () => {
  overHttp?.destroy();
  inProcess?.destroy();
  await s3?.close();
  await rm(dir, { recursive: true, force: true });
});

describe('one store behind both doors', () => {
  it('what the in-process transport writes, HTTP reads (and the other way round), with the same ETag and metadata', async () => {
    await inProcess.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: 'both/in.json',
        Body: '{"via":"in-process"}',
        ContentType: 'application/json',
        Metadata: { source: 'handler' },
      }),
    );
    await overHttp.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: 'both/http.json',
        Body: '{"via":"http"}',
        ContentType: 'application/json',
      }),
    );

    const viaHttp = await text(overHttp, 'both/in.json');
    expect(viaHttp.body).toBe('{"via":"in-process"}');
    expect(viaHttp.out).toMatchObject({
      ContentType: 'application/json',
      Metadata: { source: 'handler' },
      ETag: `"${md5('{"via":"in-process"}')}"`,
    });
    expect((await text(inProcess, 'both/http.json')).body).toBe('{"via":"http"}');

    const listed = async (c: S3Client) =>
      (await c.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'both/' }))).Contents?.map((o) => [
        o.Key,
        o.ETag,
        o.Size,
      ]);
    expect(await listed(overHttp)).toEqual(await listed(inProcess));
    expect(await listed(overHttp)).toHaveLength(2);

    await inProcess.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'both/http.json' }));
    await expect(overHttp.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'both/http.json' }))).rejects.toMatchObject(
      { name: 'NotFound' },
    );
  });

  it('keeps each object as a plain file holding exactly its bytes, under its key', async () => {
    await inProcess.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'plain/2026/analysis.json', Body: '{"a":1}\n' }));
    expect(await readFile(path.join(dir, BUCKET, 'plain', '2026', 'analysis.json'), 'utf8')).toBe('{"a":1}\n');
    expect(s3.store.dataFile(BUCKET, 'plain/2026/analysis.json')).toBe(
      path.join(dir, BUCKET, 'plain', '2026', 'analysis.json'),
    );
  });

  it('answers NoSuchKey / NoSuchBucket / NotFound as S3 does', async () => {
    for (const c of [overHttp, inProcess]) {
      await expect(c.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'missing' }))).rejects.toMatchObject({
        name: 'NoSuchKey',
        $metadata: { httpStatusCode: 404 },
      });
      await expect(c.send(new GetObjectCommand({ Bucket: 'missing-bucket', Key: 'x' }))).rejects.toMatchObject({
        name: 'NoSuchBucket',
      });
      await expect(
        c.send(new PutObjectCommand({ Bucket: 'missing-bucket', Key: 'x', Body: 'x' })),
      ).rejects.toMatchObject({ name: 'NoSuchBucket' });
      await expect(c.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'missing' }))).rejects.toMatchObject({
        name: 'NotFound',
        $metadata: { httpStatusCode: 404 },
      });
    }
  });
});

describe('uploads', () => {
  it('a stream body arrives aws-chunked with its CRC32 in the trailer, and is stored whole', async () => {
    const chunks = [Buffer.alloc(70_000, 'a'), Buffer.alloc(10, 'b')];
    await overHttp.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: 'stream/one', Body: Readable.from(chunks), ContentLength: 70_010 }),
    );
    const { out, body } = await text(overHttp, 'stream/one', { ChecksumMode: 'ENABLED' });
    expect(body).toBe('a'.repeat(70_000) + 'b'.repeat(10));
    expect(out.ChecksumCRC32).toBeTruthy(); // returned, and checked by the SDK while reading
  });

  it.each(['CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'] as const)('checks and keeps a %s checksum', async (algorithm) => {
    const put = new PutObjectCommand({
      Bucket: BUCKET,
      Key: `sum/${algorithm}`,
      Body: 'checksummed body',
      ChecksumAlgorithm: algorithm,
    });
    // The checksum the SDK computed and sent: the one the store must give back (before: any value passed).
    let sent: string | undefined;
    put.middlewareStack.add(
      (next) => async (args) => {
        sent = (args.request as { headers: Record<string, string> }).headers[
          `x-amz-checksum-${algorithm.toLowerCase()}`
        ];
        return next(args);
      },
      { step: 'finalizeRequest' },
    );
    await inProcess.send(put);
    const head = await overHttp.send(
      new HeadObjectCommand({ Bucket: BUCKET, Key: `sum/${algorithm}`, ChecksumMode: 'ENABLED' }),
    );
    expect(sent).toMatch(/^[A-Za-z0-9+/]+=*$/);
    expect(head[`Checksum${algorithm}`]).toBe(sent);
    // A listing names it too (read from the object's metadata by the file thread: file-writer.ts, describeListed).
    const listed = await overHttp.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `sum/${algorithm}` }));
    const second = (d: Date | undefined) => Math.floor(d!.getTime() / 1000); // HEAD's is an HTTP date, to the second
    expect(listed.Contents?.map((o) => [o.Key, o.ChecksumAlgorithm, o.Size, o.ETag, second(o.LastModified)])).toEqual([
      [`sum/${algorithm}`, [algorithm], 16, head.ETag, second(head.LastModified)],
    ]);
  });

  it('refuses a body that does not match its checksum or Content-MD5 (400 BadDigest) and stores nothing', async () => {
    const put = (headers: Record<string, string>) =>
      fetch(`${s3.endpoint}/${BUCKET}/sum/bad`, { method: 'PUT', headers, body: 'hello' });
    const wrongCrc = await put({ 'x-amz-checksum-crc32': 'AAAAAA==' });
    expect(wrongCrc.status).toBe(400);
    expect(await wrongCrc.text()).toMatch(/<Code>BadDigest<\/Code>.*CRC32/);
    const wrongMd5 = await put({ 'content-md5': Buffer.from(md5('other'), 'hex').toString('base64') });
    expect(wrongMd5.status).toBe(400);
    await expect(overHttp.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'sum/bad' }))).rejects.toMatchObject({
      name: 'NotFound',
    });
  });

  it('a truncated aws-chunked body is refused, not stored', async () => {
    const res = await fetch(`${s3.endpoint}/${BUCKET}/chunked/short`, {
      method: 'PUT',
      headers: {
        'content-encoding': 'aws-chunked',
        'x-amz-content-sha256': 'STREAMING-UNSIGNED-PAYLOAD-TRAILER',
        'x-amz-decoded-content-length': '10',
      },
      body: '5\r\nhello\r\n',
    });
    expect(res.status).toBe(400);
    expect(await res.text()).toMatch(/IncompleteBody/);
    await expect(overHttp.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'chunked/short' }))).rejects.toMatchObject({
      name: 'NotFound',
    });
  });

  it('multipart: one upload completed by several requests at once (a retry overlapping its first try) is completed once; the others get NoSuchUpload, not a 500', async () => {
    const key = 'multi/raced.bin';
    const once = clientFor(s3.endpoint, { maxAttempts: 1 });
    const { UploadId } = await once.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key }));
    const part = await once.send(
      new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: 1, Body: 'whole' }),
    );
    const complete = new CompleteMultipartUploadCommand({
      Bucket: BUCKET,
      Key: key,
      UploadId,
      MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] },
    });
    const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    let answers: PromiseSettledResult<unknown>[];
    let errorLines: number;
    try {
      answers = await Promise.allSettled([1, 2, 3].map(() => once.send(complete)));
      errorLines = printed.mock.calls.length;
    } finally {
      printed.mockRestore();
    }
    // Before: the later ones assembled it again from the parts the first was removing: a second 200, or, once the
    // removal had begun, ENOENT (a 500 InternalError and an error line).
    expect(answers.filter((a) => a.status === 'fulfilled')).toHaveLength(1);
    expect(answers.flatMap((a) => (a.status === 'rejected' ? [(a.reason as { name: string }).name] : []))).toEqual([
      'NoSuchUpload',
      'NoSuchUpload',
    ]);
    expect(errorLines).toBe(0);
    expect((await text(once, key)).body).toBe('whole');
    once.destroy();
  });

  it('multipart: parts of ≥ 5 MiB assemble into one object with the multipart ETag; a small middle part is refused', async () => {
    const key = 'multi/big.bin';
    const first = Buffer.alloc(5 * 1024 * 1024, 7);
    const { UploadId } = await overHttp.send(
      new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: key, ContentType: 'application/x-test' }),
    );
    const p1 = await overHttp.send(
      new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: 1, Body: first }),
    );
    const p2 = await overHttp.send(
      new UploadPartCommand({ Bucket: BUCKET, Key: key, UploadId, PartNumber: 2, Body: 'tail' }),
    );
    const done = await overHttp.send(
      new CompleteMultipartUploadCommand({
        Bucket: BUCKET,
        Key: key,
        UploadId,
        MultipartUpload: {
          Parts: [
            { PartNumber: 1, ETag: p1.ETag },
            { PartNumber: 2, ETag: p2.ETag },
          ],
        },
      }),
    );
    const expected = md5(Buffer.concat([Buffer.from(md5(first), 'hex'), Buffer.from(md5('tail'), 'hex')]));
    expect(done.ETag).toBe(`"${expected}-2"`);
    const got = await overHttp.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, Range: 'bytes=5242878-5242883' }));
    expect(got.ContentRange).toBe('bytes 5242878-5242883/5242884');
    expect(Buffer.from(await got.Body!.transformToByteArray())).toEqual(Buffer.from([7, 7, ...Buffer.from('tail')]));
    expect(got.ContentType).toBe('application/x-test');

    // One part by its number, as S3 serves it (before: 501 NotImplemented, the part sizes were not kept).
    const second = await overHttp.send(new GetObjectCommand({ Bucket: BUCKET, Key: key, PartNumber: 2 }));
    expect([second.$metadata.httpStatusCode, second.ContentRange, second.ContentLength, second.PartsCount]).toEqual([
      206,
      'bytes 5242880-5242883/5242884',
      4,
      2,
    ]);
    expect([await second.Body!.transformToString(), second.ETag]).toEqual(['tail', done.ETag]);
    const head = await overHttp.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key, PartNumber: 1 }));
    expect([head.$metadata.httpStatusCode, head.ContentLength, head.ContentRange, head.PartsCount]).toEqual([
      206,
      5242880,
      'bytes 0-5242879/5242884',
      2,
    ]);
    const part = (Key: string, PartNumber: number, Range?: string) =>
      overHttp.send(new GetObjectCommand({ Bucket: BUCKET, Key, PartNumber, Range }));
    await expect(part(key, 3)).rejects.toMatchObject({
      name: 'InvalidPartNumber',
      PartNumberRequested: '3',
      ActualPartCount: '2',
      $metadata: { httpStatusCode: 416 },
    });
    await expect(part(key, 1, 'bytes=0-1')).rejects.toMatchObject({
      name: 'InvalidRequest',
      $metadata: { httpStatusCode: 400 },
    });
    await overHttp.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'multi/plain.txt', Body: 'plain' }));
    expect(await (await part('multi/plain.txt', 1)).Body!.transformToString()).toBe('plain');
    await expect(part('multi/plain.txt', 2)).rejects.toMatchObject({
      name: 'InvalidPartNumber',
      $metadata: { httpStatusCode: 416 },
    });

    const small = await overHttp.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'multi/small' }));
    const s1 = await overHttp.send(
      new UploadPartCommand({
        Bucket: BUCKET,
        Key: 'multi/small',
        UploadId: small.UploadId,
        PartNumber: 1,
        Body: 'tiny',
      }),
    );
    const s2 = await overHttp.send(
      new UploadPartCommand({
        Bucket: BUCKET,
        Key: 'multi/small',
        UploadId: small.UploadId,
        PartNumber: 2,
        Body: 'tiny',
      }),
    );
    await expect(
      overHttp.send(
        new CompleteMultipartUploadCommand({
          Bucket: BUCKET,
          Key: 'multi/small',
          UploadId: small.UploadId,
          MultipartUpload: {
            Parts: [
              { PartNumber: 1, ETag: s1.ETag },
              { PartNumber: 2, ETag: s2.ETag },
            ],
          },
        }),
      ),
    ).rejects.toMatchObject({ name: 'EntityTooSmall' });
  });

  it('CopyObject of a multipart object makes one object, as S3 does: the MD5 of its bytes as ETag, no parts', async () => {
    // Before: the copy kept the source's "<hex>-2" ETag and its parts (part 1 served as the first 5 MiB).
    const whole = Buffer.concat([Buffer.alloc(5 * 1024 * 1024, 7), Buffer.from('tail')]);
    const copied = await overHttp.send(
      new CopyObjectCommand({ Bucket: BUCKET, Key: 'multi/copy.bin', CopySource: `${BUCKET}/multi/big.bin` }),
    );
    expect(copied.CopyObjectResult?.ETag).toBe(`"${md5(whole)}"`);
    const head = await overHttp.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'multi/copy.bin', PartNumber: 1 }));
    expect([head.$metadata.httpStatusCode, head.ETag, head.ContentLength, head.PartsCount]).toEqual([
      200,
      `"${md5(whole)}"`,
      whole.length,
      undefined,
    ]);
    const read = await inProcess.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'multi/copy.bin' }));
    expect(md5(Buffer.from(await read.Body!.transformToByteArray()))).toBe(md5(whole));
  });

  it('partNumber on a multipart object completed before part sizes were kept: its one part, or the whole object as part 1', async () => {
    // Before: 501 NotImplemented for one of several parts (and before that for one part too). Now one of several is
    // served as S3 serves an object not uploaded in parts (no parts count: a client reading by parts reads it whole).
    const complete = async (Key: string, bodies: Buffer[]) => {
      const { UploadId } = await overHttp.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key }));
      const Parts = [];
      for (const [i, Body] of bodies.entries()) {
        const { ETag } = await overHttp.send(
          new UploadPartCommand({ Bucket: BUCKET, Key, UploadId, PartNumber: i + 1, Body }),
        );
        Parts.push({ PartNumber: i + 1, ETag });
      }
      await overHttp.send(
        new CompleteMultipartUploadCommand({ Bucket: BUCKET, Key, UploadId, MultipartUpload: { Parts } }),
      );
      // As an earlier version stored it: the same metadata without the part sizes.
      const meta = path.join(dir, BUCKET, 'legacy', `.${Key.slice('legacy/'.length)}.meta.json`);
      const { partSizes: _, ...info } = JSON.parse(await readFile(meta, 'utf8'));
      await writeFile(meta, JSON.stringify(info));
    };
    await complete('legacy/one.bin', [Buffer.from('only part')]);
    const one = await overHttp.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'legacy/one.bin', PartNumber: 1 }));
    expect([one.$metadata.httpStatusCode, one.ContentRange, one.PartsCount]).toEqual([206, 'bytes 0-8/9', 1]);
    expect(await one.Body!.transformToString()).toBe('only part');
    const whole = Buffer.concat([Buffer.alloc(5 * 1024 * 1024, 1), Buffer.from('tail')]);
    await complete('legacy/two.bin', [whole.subarray(0, 5 * 1024 * 1024), whole.subarray(5 * 1024 * 1024)]);
    const head = await overHttp.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'legacy/two.bin', PartNumber: 1 }));
    expect([head.$metadata.httpStatusCode, head.ContentLength, head.PartsCount, head.ETag]).toEqual([
      200,
      whole.length,
      undefined,
      expect.stringMatching(/-2"$/),
    ]);
    const first = await overHttp.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'legacy/two.bin', PartNumber: 1 }));
    expect([first.$metadata.httpStatusCode, first.ContentRange, first.PartsCount]).toEqual([200, undefined, undefined]);
    expect(md5(Buffer.from(await first.Body!.transformToByteArray()))).toBe(md5(whole));
    for (const PartNumber of [2, 3]) {
      await expect(
        overHttp.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'legacy/two.bin', PartNumber })),
      ).rejects.toMatchObject({ name: 'InvalidPartNumber', $metadata: { httpStatusCode: 416 } });
    }
    const raw = await fetch(`${s3.endpoint}/${BUCKET}/legacy/two.bin?partNumber=2`);
    expect([raw.status, await raw.text()]).toEqual([
      416,
      expect.stringContaining('<ActualPartCount>1</ActualPartCount>'),
    ]);
  });

  it('a key cannot be both an object and the folder of other keys: 409 KeyConflict, the first one kept', async () => {
    await inProcess.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'conflict/a', Body: 'object a' }));
    await expect(
      inProcess.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'conflict/a/b', Body: 'x' })),
    ).rejects.toMatchObject({ name: 'KeyConflict', $metadata: { httpStatusCode: 409 } });
    await inProcess.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'conflict/c/d', Body: 'object c/d' }));
    await expect(
      overHttp.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'conflict/c', Body: 'x' })),
    ).rejects.toMatchObject({ name: 'KeyConflict' });
    expect((await text(overHttp, 'conflict/a')).body).toBe('object a');
    expect((await text(overHttp, 'conflict/c/d')).body).toBe('object c/d');
    await expect(overHttp.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'conflict/c' }))).rejects.toMatchObject({
      name: 'NotFound',
    });
  });

  it('keys of one new folder written at once all land; with an object in the way, each write names its own key', async () => {
    const keys = ['burst/2026/12/01/c1/conversation.json', 'burst/2026/12/01/c1/metadata.json'];
    keys.push('burst/2026/12/01/c1/summary.json', 'burst/2026/12/01/c1/analysis.json');
    await Promise.all(keys.map((Key) => inProcess.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: Key }))));
    for (const key of keys) expect((await text(overHttp, key)).body).toBe(key);
    await inProcess.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'burst/blocked', Body: 'in the way' }));
    const blocked = ['burst/blocked/one.json', 'burst/blocked/two.json'];
    const results = await Promise.allSettled(
      blocked.map((Key) => inProcess.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'x' }))),
    );
    expect(results.map((r) => r.status === 'rejected' && (r.reason as Error).name)).toEqual([
      'KeyConflict',
      'KeyConflict',
    ]);
    for (const [i, key] of blocked.entries())
      expect(((results[i] as PromiseRejectedResult).reason as Error).message).toContain(`"${key}"`);
  });

  it('a key segment too long for a file name is 400 KeyTooLongError', async () => {
    await expect(
      inProcess.send(new PutObjectCommand({ Bucket: BUCKET, Key: `long/${'x'.repeat(250)}`, Body: 'x' })),
    ).rejects.toMatchObject({ name: 'KeyTooLongError' });
  });
});

describe('reads, conditions, copies, deletes', () => {
  beforeAll(async () => {
    await inProcess.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: 'read/doc.txt', Body: '0123456789', ContentType: 'text/plain' }),
    );
  });

  it('Range gives 206 with Content-Range; a range past the end is 416 InvalidRange', async () => {
    const { out, body } = await text(overHttp, 'read/doc.txt', { Range: 'bytes=-3' });
    expect([body, out.ContentRange, out.$metadata.httpStatusCode]).toEqual(['789', 'bytes 7-9/10', 206]);
    await expect(
      overHttp.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'read/doc.txt', Range: 'bytes=10-' })),
    ).rejects.toMatchObject({ name: 'InvalidRange', $metadata: { httpStatusCode: 416 } });
  });

  it('If-None-Match gives 304, If-Match with another ETag 412; a conditional create of an existing key is 412', async () => {
    const etag = `"${md5('0123456789')}"`;
    const notModified = await fetch(`${s3.endpoint}/${BUCKET}/read/doc.txt`, { headers: { 'if-none-match': etag } });
    expect(notModified.status).toBe(304);
    await expect(
      overHttp.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'read/doc.txt', IfMatch: '"other"' })),
    ).rejects.toMatchObject({ $metadata: { httpStatusCode: 412 } });
    await expect(
      inProcess.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'read/doc.txt', Body: 'replaced', IfNoneMatch: '*' })),
    ).rejects.toMatchObject({ name: 'PreconditionFailed' });
    await inProcess.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: 'read/created-once', Body: 'first', IfNoneMatch: '*' }),
    );
    expect((await text(overHttp, 'read/doc.txt')).body).toBe('0123456789');
  });

  it('CopyObject keeps or replaces the metadata; copying onto itself unchanged is 400 InvalidRequest', async () => {
    await overHttp.send(
      new CopyObjectCommand({ Bucket: BUCKET, Key: 'read/copy.txt', CopySource: `${BUCKET}/read/doc.txt` }),
    );
    expect((await text(inProcess, 'read/copy.txt')).out.ContentType).toBe('text/plain');
    await overHttp.send(
      new CopyObjectCommand({
        Bucket: BUCKET,
        Key: 'read/copy.txt',
        CopySource: `${BUCKET}/read/copy.txt`,
        MetadataDirective: 'REPLACE',
        ContentType: 'text/csv',
      }),
    );
    const copied = await text(inProcess, 'read/copy.txt');
    expect([copied.body, copied.out.ContentType]).toEqual(['0123456789', 'text/csv']);
    await expect(
      overHttp.send(
        new CopyObjectCommand({ Bucket: BUCKET, Key: 'read/copy.txt', CopySource: `${BUCKET}/read/copy.txt` }),
      ),
    ).rejects.toMatchObject({ name: 'InvalidRequest' });
  });

  it("CopyObject with MetadataDirective REPLACE keeps none of the source's Cache-Control or x-amz-meta-*", async () => {
    // Before: the copy kept the source's Cache-Control and metadata the request had not given.
    await overHttp.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key: 'read/described.txt',
        Body: 'body',
        CacheControl: 'max-age=60',
        Metadata: { team: 'revops' },
      }),
    );
    await overHttp.send(
      new CopyObjectCommand({
        Bucket: BUCKET,
        Key: 'read/redescribed.txt',
        CopySource: `${BUCKET}/read/described.txt`,
        MetadataDirective: 'REPLACE',
        ContentType: 'text/plain',
        Metadata: { stage: 'raw' },
      }),
    );
    const copied = await overHttp.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'read/redescribed.txt' }));
    expect([copied.ContentType, copied.CacheControl, copied.Metadata]).toEqual([
      'text/plain',
      undefined,
      { stage: 'raw' },
    ]);
  });

  it('DeleteObjects reports each key; a malformed document is 400 MalformedXML', async () => {
    const out = await overHttp.send(
      new DeleteObjectsCommand({
        Bucket: BUCKET,
        Delete: { Objects: [{ Key: 'read/copy.txt' }, { Key: 'read/never-there' }] },
      }),
    );
    expect(out.Deleted?.map((d) => d.Key).sort()).toEqual(['read/copy.txt', 'read/never-there']);
    const bad = await fetch(`${s3.endpoint}/${BUCKET}?delete`, {
      method: 'POST',
      body: '<Delete><Object><Key>x</Key></Delete>',
    });
    expect(bad.status).toBe(400);
    expect(await bad.text()).toMatch(/MalformedXML/);
    const entity = await fetch(`${s3.endpoint}/${BUCKET}?delete`, {
      method: 'POST',
      body: '<!DOCTYPE d [<!ENTITY e "x">]><Delete><Object><Key>&e;</Key></Object></Delete>',
    });
    expect(entity.status).toBe(400);
  });

  it('serves <bucket>.localhost virtual-hosted requests; refuses what it does not implement with 501', async () => {
    const body = await new Promise<string>((resolve, reject) => {
      const url = new URL(s3.endpoint);
      request(
        {
          host: url.hostname,
          port: url.port,
          path: '/read/doc.txt',
          headers: { host: `${BUCKET}.localhost:${url.port}` },
        },
        (res) => {
          let data = '';
          res.on('data', (d) => (data += d));
          res.on('end', () => resolve(data));
        },
      )
        .on('error', reject)
        .end();
    });
    expect(body).toBe('0123456789');
    const acl = await fetch(`${s3.endpoint}/${BUCKET}?acl`);
    expect(acl.status).toBe(501);
    expect(await acl.text()).toMatch(/NotImplemented/);
  });

  it('answers local clients only: a foreign Host (DNS rebinding), a cross-site Origin or a page of another local server gets 403', async () => {
    const url = new URL(s3.endpoint);
    const status = (headers: Record<string, string>, method = 'GET') =>
      new Promise<number>((resolve, reject) => {
        request({ host: url.hostname, port: url.port, method, path: `/${BUCKET}/read/doc.txt`, headers }, (res) => {
          res.resume();
          resolve(res.statusCode!);
        })
          .on('error', reject)
          .end();
      });
    expect(await status({ host: `attacker.example:${url.port}` })).toBe(403);
    expect(await status({ host: `127.0.0.1:${url.port}`, origin: 'https://attacker.example' }, 'DELETE')).toBe(403);
    // A dev server's page on this machine is another site too; only a page of the endpoint itself may send a request.
    expect(await status({ host: `127.0.0.1:${url.port}`, origin: 'http://localhost:9999' }, 'DELETE')).toBe(403);
    expect(await status({ host: `127.0.0.1:${url.port}`, origin: `http://127.0.0.1:${Number(url.port) + 1}` })).toBe(
      403,
    );
    expect(await status({ host: `127.0.0.1:${url.port}`, origin: `http://127.0.0.1:${url.port}` })).toBe(200);
    expect(await status({ host: `localhost:${url.port}` })).toBe(200);
    expect((await text(overHttp, 'read/doc.txt')).body).toBe('0123456789');
  });

  it('says why it refused: the Host it was sent to, or the page that sent it (not "Host …" for a page of a dev server)', async () => {
    // Before: one message for both, "answers local clients only (Host 127.0.0.1, localhost or <bucket>.localhost)",
    // which sent the developer of a page on http://localhost:5173 looking at a Host that was right.
    const url = new URL(s3.endpoint);
    const refusal = (headers: Record<string, string>) =>
      new Promise<string>((resolve, reject) => {
        request({ host: url.hostname, port: url.port, path: `/${BUCKET}/read/doc.txt`, headers }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve(`${res.statusCode} ${/<Message>(.*)<\/Message>/.exec(body)?.[1]}`));
        })
          .on('error', reject)
          .end();
      });
    expect(await refusal({ host: `127.0.0.1:${url.port}`, origin: 'http://localhost:5173' })).toBe(
      `403 The embedded S3 answers local clients only: from a browser, pages of its own origin (http://127.0.0.1:${url.port}) only, not a page of &quot;http://localhost:5173&quot;.`,
    );
    expect(await refusal({ host: `attacker.example:${url.port}` })).toBe(
      `403 The embedded S3 answers local clients only: requests addressed to 127.0.0.1, localhost, &lt;bucket&gt;.localhost or [::1], not to &quot;attacker.example:${url.port}&quot;.`,
    );
  });

  it('a symbolic link under the bucket leads nowhere: not served, listed, written through or deleted through', async () => {
    const outside = await mkdtemp(path.join(tmpdir(), 'embedded-s3-outside-'));
    try {
      await writeFile(path.join(outside, 'passwd'), 'root:x:0:0');
      await mkdir(path.join(outside, 'folder'));
      await writeFile(path.join(outside, 'folder', 'secret.txt'), 'outside');
      await mkdir(path.join(dir, BUCKET, 'links'), { recursive: true });
      await symlink(path.join(outside, 'passwd'), path.join(dir, BUCKET, 'links', 'passwd'));
      await symlink(path.join(outside, 'folder'), path.join(dir, BUCKET, 'links', 'folder'));
      await overHttp.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'links/real.txt', Body: 'inside' }));
      const code = (p: Promise<unknown>) =>
        p.then(
          () => 'ok',
          (e: { name: string }) => e.name,
        );

      for (const client of [overHttp, inProcess]) {
        for (const key of ['links/passwd', 'links/folder/secret.txt']) {
          expect(await code(client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key })))).toBe('NoSuchKey');
          expect(await code(client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key })))).toBe('NotFound');
          expect(
            await code(
              client.send(new CopyObjectCommand({ Bucket: BUCKET, Key: 'copied', CopySource: `${BUCKET}/${key}` })),
            ),
          ).toBe('NoSuchKey');
        }
        for (const Prefix of ['links/', 'links/folder/']) {
          const listed = await client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix }));
          expect((listed.Contents ?? []).map((o) => o.Key)).toEqual(Prefix === 'links/' ? ['links/real.txt'] : []);
        }
        expect(
          await code(client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'links/folder/new.txt', Body: 'x' }))),
        ).toBe('AccessDenied');
        expect(
          await code(client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'links/folder/sub/new.txt', Body: 'x' }))),
        ).toBe('AccessDenied');
        expect(
          await code(client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: 'links/folder/secret.txt' }))),
        ).toBe('AccessDenied');
      }
      // Nothing outside was read, written, made or deleted.
      expect(await readdir(path.join(outside, 'folder'))).toEqual(['secret.txt']);
      expect(await readFile(path.join(outside, 'folder', 'secret.txt'), 'utf8')).toBe('outside');
      expect((await text(overHttp, 'links/real.txt')).body).toBe('inside');
    } finally {
      await rm(path.join(dir, BUCKET, 'links'), { recursive: true, force: true });
      await rm(outside, { recursive: true, force: true });
    }
  });

  it('a request target that names no bucket (//[, //key) is 400 InvalidURI, not a bucket listing', async () => {
    for (const target of ['//[', '//read/doc.txt']) {
      const res = await fetch(`${s3.endpoint}${target}`);
      expect(res.status).toBe(400);
      expect(await res.text()).toMatch(/<Code>InvalidURI<\/Code>/);
    }
    expect((await fetch(`${s3.endpoint}/`)).status).toBe(200);
  });

  it('cuts slow clients off with 400 RequestTimeout (which the SDKs retry): headers or a body not sent in time', async () => {
    const slowDir = await mkdtemp(path.join(tmpdir(), 'embedded-s3-slow-'));
    const slow = await startEmbeddedS3({
      directory: slowDir,
      port: 0,
      bucket: BUCKET,
      headersTimeoutMs: 300,
      requestTimeoutMs: 600,
    });
    const printed = vi.spyOn(process.stderr, 'write');
    const raw = (text: string) =>
      new Promise<string>((resolve, reject) => {
        const socket = connect(slow.port, '127.0.0.1', () => socket.write(text));
        let got = '';
        socket.on('data', (d) => (got += d));
        socket.on('close', () => resolve(got));
        socket.on('error', reject);
      });
    try {
      // Each waits for the store to close the connection, with no bound of its own: without the limits set above
      // Node's own (60 s for the headers, 300 s for the request) would close it only after this test's 30 s.
      const timedOut = /^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*<Error><Code>RequestTimeout<\/Code>/;
      expect(await raw('GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n')).toMatch(timedOut);
      const put = `PUT /${BUCKET}/slow.txt HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\nabc`;
      expect(await raw(put)).toMatch(timedOut);
      expect(await readdir(path.join(slowDir, BUCKET))).toEqual([]); // nothing stored
      // A cut-off client is its own failure, not the store's: no InternalError stack on stderr.
      expect(printed.mock.calls.map(([text]) => String(text)).filter((t) => t.includes('embedded S3'))).toEqual([]);
    } finally {
      printed.mockRestore();
      await slow.close();
      await rm(slowDir, { recursive: true, force: true });
    }
  });

  it('buckets: list, create (bad names refused), head, delete only when empty', async () => {
    await overHttp.send(new CreateBucketCommand({ Bucket: 'second-bucket' }));
    expect((await overHttp.send(new ListBucketsCommand({}))).Buckets?.map((b) => b.Name)).toEqual([
      BUCKET,
      'second-bucket',
    ]);
    await expect(overHttp.send(new CreateBucketCommand({ Bucket: 'Bad_Name' }))).rejects.toMatchObject({
      name: 'InvalidBucketName',
    });
    // With Object Lock, which the embedded S3 has not: refused, not created without it (before: created, 200).
    await expect(
      overHttp.send(new CreateBucketCommand({ Bucket: 'locked-bucket', ObjectLockEnabledForBucket: true })),
    ).rejects.toMatchObject({
      name: 'NotImplemented',
      Header: 'x-amz-bucket-object-lock-enabled',
      $metadata: { httpStatusCode: 501 },
    });
    expect((await overHttp.send(new ListBucketsCommand({}))).Buckets?.map((b) => b.Name)).not.toContain(
      'locked-bucket',
    );
    await overHttp.send(new HeadBucketCommand({ Bucket: 'second-bucket' }));
    await overHttp.send(new PutObjectCommand({ Bucket: 'second-bucket', Key: 'k', Body: 'x' }));
    await expect(overHttp.send(new DeleteBucketCommand({ Bucket: 'second-bucket' }))).rejects.toMatchObject({
      name: 'BucketNotEmpty',
    });
    await overHttp.send(new DeleteObjectCommand({ Bucket: 'second-bucket', Key: 'k' }));
    await overHttp.send(new DeleteBucketCommand({ Bucket: 'second-bucket' }));
    await expect(overHttp.send(new HeadBucketCommand({ Bucket: 'second-bucket' }))).rejects.toMatchObject({
      $metadata: { httpStatusCode: 404 },
    });
  });
});

describe('on disk across restarts', () => {
  it('a restarted embedded S3 serves what the previous one stored', async () => {
    const restartDir = await mkdtemp(path.join(tmpdir(), 'embedded-s3-restart-'));
    try {
      const first = await startEmbeddedS3({ directory: restartDir, port: 0, bucket: BUCKET });
      const c1 = clientFor(first.endpoint);
      await c1.send(
        new PutObjectCommand({
          Bucket: BUCKET,
          Key: 'kept/one.json',
          Body: '{"n":1}',
          ContentType: 'application/json',
          Metadata: { a: 'b' },
        }),
      );
      c1.destroy();
      await first.close();

      const second = await startEmbeddedS3({ directory: restartDir, port: 0, bucket: BUCKET });
      const c2 = clientFor(second.endpoint);
      const got = await c2.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'kept/one.json' }));
      expect(await got.Body!.transformToString()).toBe('{"n":1}');
      expect(got).toMatchObject({ ContentType: 'application/json', Metadata: { a: 'b' }, ETag: `"${md5('{"n":1}')}"` });
      c2.destroy();
      await second.close();
    } finally {
      await rm(restartDir, { recursive: true, force: true });
    }
  });

  it('after a crash between the two renames of a write, the bytes are described from the file itself', async () => {
    await inProcess.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: 'crash/x.json', Body: 'old bytes', ContentType: 'application/json' }),
    );
    // The metadata of the old bytes stays; new bytes took the file's place (another inode).
    const file = s3.store.dataFile(BUCKET, 'crash/x.json');
    await writeFile(`${file}.new`, 'new bytes!');
    await rename(`${file}.new`, file);
    const { out, body } = await text(overHttp, 'crash/x.json');
    expect([body, out.ETag, out.ContentLength]).toEqual(['new bytes!', `"${md5('new bytes!')}"`, 10]);
    const listed = await overHttp.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'crash/' }));
    expect(listed.Contents?.map((o) => [o.Key, o.ETag, o.Size])).toEqual([
      ['crash/x.json', `"${md5('new bytes!')}"`, 10],
    ]);
  });

  it('data written by s3rver is moved into this layout once, keeping type, metadata and ETag', async () => {
    const oldDir = await mkdtemp(path.join(tmpdir(), 'embedded-s3-s3rver-'));
    try {
      const folder = path.join(oldDir, BUCKET, 'conversation-history', '2026', '11', '29', 'webhook_x');
      await mkdir(folder, { recursive: true });
      const base = path.join(folder, 'conversation.json');
      await writeFile(`${base}._S3rver_object`, '{"old":true}');
      await writeFile(
        `${base}._S3rver_metadata.json`,
        JSON.stringify({ 'content-type': 'application/json', 'x-amz-meta-origin': 's3rver' }),
      );
      await writeFile(`${base}._S3rver_object.md5`, md5('{"old":true}'));

      const migrated = await startEmbeddedS3({ directory: oldDir, port: 0, bucket: BUCKET });
      const c = clientFor(migrated.endpoint);
      const key = 'conversation-history/2026/11/29/webhook_x/conversation.json';
      const got = await c.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
      expect(await got.Body!.transformToString()).toBe('{"old":true}');
      expect(got).toMatchObject({
        ContentType: 'application/json',
        Metadata: { origin: 's3rver' },
        ETag: `"${md5('{"old":true}')}"`,
      });
      expect((await readdir(folder)).filter((f) => !f.startsWith('.'))).toEqual(['conversation.json']);
      expect(JSON.parse(await readFile(path.join(oldDir, '.layout.json'), 'utf8'))).toMatchObject({
        version: 1,
        moved_from_s3rver: 1,
      });
      c.destroy();
      await migrated.close();
      const before = (await stat(base)).mtimeMs;
      const again = await startEmbeddedS3({ directory: oldDir, port: 0, bucket: BUCKET });
      await again.close();
      expect((await stat(base)).mtimeMs).toBe(before);
    } finally {
      await rm(oldDir, { recursive: true, force: true });
    }
  });
});
