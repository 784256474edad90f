import { readdir } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import {
  AbortMultipartUploadCommand,
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  DeleteBucketMetadataTableConfigurationCommand,
  DeleteObjectAnnotationCommand,
  DeleteObjectCommand,
  DeleteObjectsCommand,
  DeleteObjectTaggingCommand,
  GetObjectCommand,
  GetObjectTaggingCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  ListObjectVersionsCommand,
  ListPartsCommand,
  PutObjectAnnotationCommand,
  PutObjectCommand,
  PutObjectTaggingCommand,
  RenameObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { describe, expect, it } from 'vitest';
import { useEmbeddedS3 } from '../../support/embedded-s3.ts';

/**
 * The embedded S3's HTTP edge against real sockets: what Node's HTTP parser refuses is answered as S3 answers it, in
 * an `<Error>` document with S3's code (what the SDKs and the AWS CLI name the error by), and nothing is stored. And
 * the edges of what it serves, as S3 answers them: ranges and conditions, what it does not implement (which touches
 * no object), conditional deletes and copies, versions of its unversioned bucket, presigned URLs' time.
 */
const BUCKET = 'edge-test';
const local = useEmbeddedS3(BUCKET, { maxAttempts: 1 });

/** Bytes sent on a connection of their own (then a FIN when `end`); everything received until the endpoint closed. */
function raw(text: string, { end = false } = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(local.s3.port, '127.0.0.1', () => (end ? socket.end(text) : socket.write(text)));
    let got = '';
    socket.on('data', (d) => (got += d));
    socket.on('close', () => resolve(got));
    socket.on('error', reject);
  });
}

/** The first answer's head and body, read up to the end of its `<Error>` document; the connection is then dropped. */
function firstAnswer(text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(local.s3.port, '127.0.0.1', () => socket.write(text));
    let got = '';
    socket.on('data', (d) => {
      got += d;
      if (got.includes('</Error>')) socket.destroy();
    });
    socket.on('close', () => resolve(got));
    socket.on('error', reject);
  });
}

const HOST = 'Host: 127.0.0.1\r\n';
const stored = async () => (await readdir(path.join(local.dir, BUCKET), { recursive: true })).sort();
/** An object's body, read with the SDK (of a version, when given). */
const text = async (Key: string, VersionId?: string) =>
  (await local.client.send(new GetObjectCommand({ Bucket: BUCKET, Key, VersionId }))).Body!.transformToString();

describe("what Node's HTTP parser refuses is answered in S3's error shape, and the connection closed", () => {
  it.each([
    ['a Content-Length that is no number', `Content-Length: ten\r\n\r\n`, /Invalid character in Content-Length/],
    [
      'Transfer-Encoding beside Content-Length',
      'Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n',
      /Transfer-Encoding can&apos;t be present with Content-Length/,
    ],
    [
      'a malformed chunk',
      'Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n',
      /Invalid character in chunk size/,
    ],
  ])('%s: 400 InvalidRequest naming the reason; nothing stored', async (_name, rest, reason) => {
    const answer = await raw(`PUT /${BUCKET}/framing.txt HTTP/1.1\r\n${HOST}${rest}`);
    expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(answer).toMatch(/\r\ncontent-type: application\/xml\r\n/);
    expect(answer).toMatch(/\r\nconnection: close\r\n/);
    expect(answer).toMatch(/<Error><Code>InvalidRequest<\/Code><Message>Malformed HTTP request: [^<]+<\/Message>/);
    expect(answer).toMatch(reason);
    expect(await stored()).toEqual([]);
  });

  it('a body its client ended (FIN) before it was whole: 400 IncompleteBody; nothing stored', async () => {
    const answer = await raw(`PUT /${BUCKET}/cut.txt HTTP/1.1\r\n${HOST}Content-Length: 10\r\n\r\nabc`, { end: true });
    expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(answer).toMatch(/<Code>IncompleteBody<\/Code>/);
    expect(await stored()).toEqual([]);
  });

  it('a method no HTTP server knows (BREW), and CONNECT: 405 MethodNotAllowed naming it', async () => {
    const brew = await raw(`BREW /${BUCKET}/pot HTTP/1.1\r\n${HOST}\r\n`);
    expect(brew).toMatch(/^HTTP\/1\.1 405 Method Not Allowed\r\n/);
    expect(brew).toMatch(/<Code>MethodNotAllowed<\/Code>.*<Method>BREW<\/Method>/);
    const tunnel = await raw(`CONNECT 127.0.0.1:443 HTTP/1.1\r\n${HOST}\r\n`);
    expect(tunnel).toMatch(/^HTTP\/1\.1 405 Method Not Allowed\r\n/);
    expect(tunnel).toMatch(/<Method>CONNECT<\/Method>/);
  });

  it('a method S3 does not serve (PATCH, OPTIONS, PUT on the service) is 405 naming it and the resource', async () => {
    const answer = async (method: string, target: string) =>
      (await fetch(`${local.s3.endpoint}${target}`, { method })).text();
    expect(await answer('PATCH', `/${BUCKET}/a.txt`)).toMatch(
      /<Code>MethodNotAllowed<\/Code>.*<Method>PATCH<\/Method><ResourceType>OBJECT<\/ResourceType>/,
    );
    expect(await answer('OPTIONS', `/${BUCKET}`)).toMatch(/<Method>OPTIONS<\/Method><ResourceType>BUCKET</);
    expect(await answer('PUT', '/')).toMatch(/<Method>PUT<\/Method><ResourceType>SERVICE</);
  });

  it('headers over 16 KB: 400 RequestHeaderSectionTooLarge, which the SDK names; nothing stored', async () => {
    const answer = await raw(`GET /${BUCKET}/big HTTP/1.1\r\n${HOST}X-Big: ${'a'.repeat(17_000)}\r\n\r\n`);
    expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(answer).toMatch(/<Code>RequestHeaderSectionTooLarge<\/Code>.*<MaxSizeAllowed>16384<\/MaxSizeAllowed>/);
    const metadata = { note: 'n'.repeat(17_000) };
    await expect(
      local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'meta.txt', Body: 'x', Metadata: metadata })),
    ).rejects.toMatchObject({ name: 'RequestHeaderSectionTooLarge', $metadata: { httpStatusCode: 400 } });
    await expect(local.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'meta.txt' }))).rejects.toMatchObject({
      name: 'NotFound',
    });
  });

  it('an HTTP/1.1 request without Host, or any with two: 400 InvalidRequest saying so; nothing stored', async () => {
    const put = `PUT /${BUCKET}/hosts.txt HTTP/1.1\r\nContent-Length: 5\r\n`;
    const none = await raw(`${put}\r\nhello`);
    expect(none).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(none).toMatch(/<Code>InvalidRequest<\/Code><Message>[^<]*must send a Host header<\/Message>/);
    const two = await raw(`${put}${HOST}Host: example.com\r\n\r\nhello`);
    expect(two).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*<Code>InvalidRequest<\/Code>.*not 2/);
    expect(await stored()).toEqual([]);
  });

  it('every such answer is inert in a browser, as every other answer of the endpoint', async () => {
    const answer = await raw(`PUT /${BUCKET}/x HTTP/1.1\r\n${HOST}Content-Length: ten\r\n\r\n`);
    expect(answer).toMatch(/\r\ncontent-security-policy: default-src 'none'; sandbox\r\n/);
    expect(answer).toMatch(/\r\nx-content-type-options: nosniff\r\n/);
  });
});

describe('Expect: 100-continue: a request refused by its headers is answered before its body is sent', () => {
  const SIX_GIB = 6 * 1024 ** 3;

  it("a PutObject over S3's 5 GiB by its Content-Length: 400 EntityTooLarge, no 100 Continue; also without Expect", async () => {
    const put = `PUT /${BUCKET}/huge.bin HTTP/1.1\r\n${HOST}Content-Length: ${SIX_GIB}\r\n`;
    for (const request of [`${put}Expect: 100-continue\r\n\r\n`, `${put}\r\nthe first bytes of six GiB`]) {
      const answer = await firstAnswer(request);
      expect(answer).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
      expect(answer).toMatch(
        /<Code>EntityTooLarge<\/Code>.*<ProposedSize>6442450944<\/ProposedSize><MaxSizeAllowed>5368709120<\/MaxSizeAllowed>/,
      );
    }
    // An aws-chunked upload is judged by its decoded length.
    const chunked = await firstAnswer(
      `PUT /${BUCKET}/huge.bin HTTP/1.1\r\n${HOST}Content-Length: 100\r\nContent-Encoding: aws-chunked\r\nx-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\r\nx-amz-decoded-content-length: ${SIX_GIB}\r\nExpect: 100-continue\r\n\r\n`,
    );
    expect(chunked).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*<Code>EntityTooLarge<\/Code>/);
    expect(await stored()).toEqual([]);
  });

  it('a body of unknown length (Transfer-Encoding: chunked): 501 NotImplemented naming the header, as S3 answers', async () => {
    const chunked = 'Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n';
    const answer = await firstAnswer(`PUT /${BUCKET}/unknown-length.txt HTTP/1.1\r\n${HOST}${chunked}`);
    expect(answer).toMatch(/^HTTP\/1\.1 501 Not Implemented\r\n/);
    expect(answer).toMatch(/<Code>NotImplemented<\/Code>.*<Header>Transfer-Encoding<\/Header>/);
    const expecting = await firstAnswer(
      `PUT /${BUCKET}/unknown-length.txt HTTP/1.1\r\n${HOST}Transfer-Encoding: chunked\r\nExpect: 100-continue\r\n\r\n`,
    );
    expect(expecting).toMatch(/^HTTP\/1\.1 501 Not Implemented\r\n/);
    expect(await stored()).toEqual([]);
  });

  it('a Transfer-Encoding other than chunked: 501 NotImplemented naming the header, as S3 answers; nothing stored', async () => {
    const awsChunked = `Connection: close\r\nContent-Encoding: aws-chunked\r\nx-amz-content-sha256: STREAMING-UNSIGNED-PAYLOAD-TRAILER\r\nx-amz-decoded-content-length: 5\r\n`;
    const inHttpChunks = (text: string) => `${text.length.toString(16)}\r\n${text}\r\n0\r\n\r\n`;
    const put = (key: string, coding: string) =>
      raw(
        `PUT /${BUCKET}/${key} HTTP/1.1\r\n${HOST}${awsChunked}Transfer-Encoding: ${coding}\r\n\r\n${inHttpChunks('5\r\nhello\r\n0\r\n\r\n')}`,
      );
    const refused = (answer: string) => {
      expect(answer).toMatch(/^HTTP\/1\.1 501 Not Implemented\r\n/);
      expect(answer).toMatch(/\r\ncontent-type: application\/xml\r\n/);
      expect(answer).toMatch(/\r\nconnection: close\r\n/);
      expect(answer).toMatch(
        /<Error><Code>NotImplemented<\/Code><Message>A header you provided implies functionality that is not implemented<\/Message><Header>Transfer-Encoding<\/Header>/,
      );
    };
    // Before: stored as if its gzip coding were not there (Node decodes chunked alone), and GET and HEAD served.
    refused(await put('gzip.txt', 'gzip, chunked'));
    const get = `GET /${BUCKET}?list-type=2 HTTP/1.1\r\n${HOST}Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n`;
    refused(await raw(get));
    const head = await raw(get.replace('GET', 'HEAD'));
    expect(head).toMatch(/^HTTP\/1\.1 501 Not Implemented\r\n/);
    expect(head).toMatch(/\r\nx-amz-error-code: NotImplemented\r\n/);
    // Before: 400 InvalidRequest "Malformed HTTP request: Request has invalid `Transfer-Encoding`" (Node's parser).
    for (const coding of ['identity', 'foo']) refused(await put(`${coding}.txt`, coding));
    expect(await stored()).toEqual([]);
    // chunked alone is the SDKs' aws-chunked upload: stored, decoded.
    expect(await put('chunked.txt', 'chunked')).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(await text('chunked.txt')).toBe('hello');
  });

  it('an Expect other than 100-continue: 501 NotImplemented naming the header, as S3 answers one it does not honour', async () => {
    // Node would answer a bare 417 with no document for the SDKs and the AWS CLI to name the error by.
    const put = await raw(
      `PUT /${BUCKET}/expecting.txt HTTP/1.1\r\n${HOST}Content-Length: 5\r\nExpect: 103-checkpoint\r\n\r\nhello`,
    );
    expect(put).toMatch(/^HTTP\/1\.1 501 Not Implemented\r\n/);
    expect(put).toMatch(/\r\ncontent-type: application\/xml\r\n/);
    expect(put).toMatch(/\r\nconnection: close\r\n/);
    expect(put).toMatch(
      /<Error><Code>NotImplemented<\/Code><Message>A header you provided implies functionality that is not implemented<\/Message><Header>Expect<\/Header>/,
    );
    const head = await raw(`HEAD /${BUCKET}/range.txt HTTP/1.1\r\n${HOST}Expect: something\r\n\r\n`);
    expect(head).toMatch(/^HTTP\/1\.1 501 Not Implemented\r\n/);
    expect(head).toMatch(/\r\nx-amz-error-code: NotImplemented\r\n/);
    expect(await stored()).not.toContain('expecting.txt');
  });

  it('a PutObject to a bucket that does not exist, or a part of an upload that does not: 404, no 100 Continue', async () => {
    const expect100 = 'Content-Length: 5\r\nExpect: 100-continue\r\n\r\n';
    const noBucket = await firstAnswer(`PUT /no-such-bucket/a.txt HTTP/1.1\r\n${HOST}${expect100}`);
    expect(noBucket).toMatch(/^HTTP\/1\.1 404 Not Found\r\n[\s\S]*<Code>NoSuchBucket<\/Code>/);
    const noUpload = await firstAnswer(
      `PUT /${BUCKET}/a.txt?partNumber=1&uploadId=nope HTTP/1.1\r\n${HOST}${expect100}`,
    );
    expect(noUpload).toMatch(/^HTTP\/1\.1 404 Not Found\r\n[\s\S]*<Code>NoSuchUpload<\/Code>/);
  });

  it('an upload the endpoint takes gets its 100, then its answer, and is stored whole', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(local.s3.port, '127.0.0.1', () =>
        socket.write(
          `PUT /${BUCKET}/continued.txt HTTP/1.1\r\n${HOST}Content-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`,
        ),
      );
      let got = '';
      socket.on('data', (d) => {
        if (!got) socket.write('hello'); // the body, after the 100
        got += d;
      });
      socket.on('close', () => resolve(got));
      socket.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
    const out = await local.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'continued.txt' }));
    expect(await out.Body!.transformToString()).toBe('hello');
  });
});

describe("user metadata over S3's 2 KB", () => {
  it('PutObject, CreateMultipartUpload and CopyObject (REPLACE) are 400 MetadataTooLarge, before the body; 2 KB is taken', async () => {
    const over = { a: 'x'.repeat(2048) }; // its name counts: 2,049 bytes
    const put = raw(
      `PUT /${BUCKET}/meta/over.txt HTTP/1.1\r\n${HOST}x-amz-meta-a: ${over.a}\r\nContent-Length: 5\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n`,
    );
    expect(await put).toMatch(
      /^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*<Code>MetadataTooLarge<\/Code>.*<Size>2049<\/Size><MaxSizeAllowed>2048<\/MaxSizeAllowed>/,
    );
    await expect(
      local.client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'meta/over.bin', Metadata: over })),
    ).rejects.toMatchObject({ name: 'MetadataTooLarge', $metadata: { httpStatusCode: 400 } });
    const fits = { a: 'x'.repeat(2047) };
    await local.client.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: 'meta/fits.txt', Body: 'hello', Metadata: fits }),
    );
    await expect(
      local.client.send(
        new CopyObjectCommand({
          Bucket: BUCKET,
          Key: 'meta/copy.txt',
          CopySource: `${BUCKET}/meta/fits.txt`,
          MetadataDirective: 'REPLACE',
          Metadata: over,
        }),
      ),
    ).rejects.toMatchObject({ name: 'MetadataTooLarge' });
    expect((await local.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'meta/fits.txt' }))).Metadata).toEqual(
      fits,
    );
    expect(await stored()).not.toContain('meta/over.txt');
    expect(await stored()).not.toContain('meta/copy.txt');
  });
});

describe('a client that goes away mid-upload leaves nothing torn', () => {
  /** Headers and `bytes` of a longer body, then a reset once they were written: the client is gone mid-body. */
  const resetAfter = (head: string, bytes: Buffer) =>
    new Promise<void>((resolve) => {
      const socket = connect(local.s3.port, '127.0.0.1', () => {
        socket.write(head);
        socket.write(bytes, () => socket.resetAndDestroy());
      });
      socket.on('close', () => resolve());
      socket.on('error', () => {});
    });
  const temporary = () => readdir(path.join(local.dir, '.tmp'));
  const MIB = 1024 * 1024;

  it('a PutObject (past the 16 MiB kept in memory) or a part: nothing stored, listed or left in .tmp; the old object kept', async () => {
    await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'torn/kept.bin', Body: 'the first version' }));
    const put = (key: string) =>
      `PUT /${BUCKET}/${key} HTTP/1.1\r\n${HOST}Content-Length: ${40 * MIB}\r\nExpect: 100-continue\r\n\r\n`;
    await resetAfter(put('torn/new.bin'), Buffer.alloc(20 * MIB, 1));
    await resetAfter(put('torn/kept.bin'), Buffer.alloc(20 * MIB, 2));
    const { UploadId } = await local.client.send(
      new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'torn/multi.bin' }),
    );
    await resetAfter(put(`torn/multi.bin?partNumber=1&uploadId=${UploadId}`), Buffer.alloc(20 * MIB, 3));
    await expect.poll(temporary).toEqual([]);
    const listed = await local.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'torn/' }));
    expect(listed.Contents?.map((o) => o.Key)).toEqual(['torn/kept.bin']);
    const kept = await local.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'torn/kept.bin' }));
    expect(await kept.Body!.transformToString()).toBe('the first version');
    const parts = await local.client.send(new ListPartsCommand({ Bucket: BUCKET, Key: 'torn/multi.bin', UploadId }));
    expect(parts.Parts ?? []).toEqual([]);
    await local.client.send(new AbortMultipartUploadCommand({ Bucket: BUCKET, Key: 'torn/multi.bin', UploadId }));
  });
});

describe('keys with odd characters, ranges and conditions, as S3 reads them', () => {
  it('%2F is a slash; unicode, spaces (trailing too), +, ?, #, %, dot segments and // are keys of their own', async () => {
    const keys = ['odd/ünï cødé ✓', 'odd/trailing  ', 'odd/ lead', 'odd/x+y', 'odd/q?x=1', 'odd/h#f', 'odd/pct%'];
    keys.push('odd/dots/../up', 'odd/./here', 'odd//double');
    for (const key of keys) await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: key }));
    for (const key of keys) {
      const out = await local.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
      expect(await out.Body!.transformToString()).toBe(key);
      const head = await local.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: key }));
      expect(head.ContentLength).toBe(Buffer.byteLength(key));
    }
    const listed = await local.client.send(new ListObjectsV2Command({ Bucket: BUCKET, Prefix: 'odd/' }));
    expect(listed.Contents?.map((o) => o.Key).sort()).toEqual([...keys].sort());
    const slash = await fetch(`${local.s3.endpoint}/${BUCKET}/odd%2Fx%2By`);
    expect([slash.status, await slash.text()]).toEqual([200, 'odd/x+y']);
    const missing = await fetch(`${local.s3.endpoint}/${BUCKET}/odd/trailing`, { method: 'HEAD' });
    expect([missing.status, missing.headers.get('x-amz-error-code')]).toEqual([404, 'NoSuchKey']);
  });

  it('Range: one range 206; several, or a malformed one, the whole object 200; past the end 416 InvalidRange with the size', async () => {
    await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'range.txt', Body: '0123456789' }));
    const get = async (range: string) => {
      const res = await fetch(`${local.s3.endpoint}/${BUCKET}/range.txt`, { headers: { range } });
      return [res.status, res.headers.get('content-range'), await res.text()];
    };
    expect(await get('bytes=2-4')).toEqual([206, 'bytes 2-4/10', '234']);
    expect(await get('bytes=8-100')).toEqual([206, 'bytes 8-9/10', '89']);
    expect(await get('bytes=0-1,3-4')).toEqual([200, null, '0123456789']);
    expect(await get('bytes=5-2')).toEqual([200, null, '0123456789']);
    expect(await get('items=0-1')).toEqual([200, null, '0123456789']);
    // As S3 answers it: the object's size in Content-Range (bytes */10) and in the document, GET and HEAD alike.
    const [status, contentRange, body] = await get('bytes=10-');
    expect([status, contentRange]).toEqual([416, 'bytes */10']);
    expect(body).toMatch(
      /<Code>InvalidRange<\/Code><Message>The requested range is not satisfiable<\/Message><RangeRequested>bytes=10-<\/RangeRequested><ActualObjectSize>10<\/ActualObjectSize>/,
    );
    expect((await get('bytes=-0')).slice(0, 2)).toEqual([416, 'bytes */10']);
    const head = await fetch(`${local.s3.endpoint}/${BUCKET}/range.txt`, {
      method: 'HEAD',
      headers: { range: 'bytes=20-' },
    });
    expect([head.status, head.headers.get('content-range'), head.headers.get('x-amz-error-code')]).toEqual([
      416,
      'bytes */10',
      'InvalidRange',
    ]);
    await expect(
      local.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'range.txt', Range: 'bytes=10-20' })),
    ).rejects.toMatchObject({ name: 'InvalidRange', $metadata: { httpStatusCode: 416 } });
  });

  it('If-None-Match 304 (GET and HEAD), If-Match another ETag 412 PreconditionFailed, before any Range', async () => {
    const { ETag } = await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'cond.txt', Body: 'abc' }));
    for (const method of ['GET', 'HEAD']) {
      const ask = (headers: Record<string, string>) =>
        fetch(`${local.s3.endpoint}/${BUCKET}/cond.txt`, { method, headers: { range: 'bytes=0-0', ...headers } });
      const notModified = await ask({ 'if-none-match': ETag! });
      expect([notModified.status, notModified.headers.get('etag')]).toEqual([304, ETag]);
      expect((await ask({ 'if-none-match': '"other"' })).status).toBe(206);
      const failed = await ask({ 'if-match': '"other"' });
      expect(failed.status).toBe(412);
      if (method === 'GET') expect(await failed.text()).toMatch(/<Code>PreconditionFailed<\/Code>.*If-Match/);
      else expect(failed.headers.get('x-amz-error-code')).toBe('PreconditionFailed');
    }
  });
});

describe('requests for what the embedded S3 does not implement touch no object: 501 NotImplemented', () => {
  it('RenameObject, Put/DeleteObjectAnnotation, DeleteBucketMetadataTableConfiguration: the object and the bucket stay', async () => {
    // Without their sub-resource known, they were a PutObject (empty, or of the annotation) and a DeleteObject or
    // DeleteBucket on the same path, answered 200 or 204.
    const Key = 'unimplemented/kept.txt';
    await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'kept' }));
    await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'unimplemented/source.txt', Body: 'source' }));
    const refused = { name: 'NotImplemented', $metadata: { httpStatusCode: 501 } };
    await expect(
      local.client.send(
        new RenameObjectCommand({ Bucket: BUCKET, Key, RenameSource: `${BUCKET}/unimplemented/source.txt` }),
      ),
    ).rejects.toMatchObject(refused);
    await expect(
      local.client.send(
        new PutObjectAnnotationCommand({ Bucket: BUCKET, Key, AnnotationName: 'note', AnnotationPayload: 'a note' }),
      ),
    ).rejects.toMatchObject(refused);
    await expect(
      local.client.send(new DeleteObjectAnnotationCommand({ Bucket: BUCKET, Key, AnnotationName: 'note' })),
    ).rejects.toMatchObject(refused);
    expect(await text(Key)).toBe('kept');
    expect(await stored()).toContain('unimplemented/source.txt');

    const empty = 'empty-bucket';
    await local.s3.store.createBucket(empty);
    await expect(
      local.client.send(new DeleteBucketMetadataTableConfigurationCommand({ Bucket: empty })),
    ).rejects.toMatchObject(refused);
    expect((await local.s3.store.listBuckets()).map((b) => b.name)).toContain(empty);
  });

  it("a PutObject appending (WriteOffsetBytes, directory buckets' only): 501 naming the header, the object kept whole", async () => {
    const Key = 'unimplemented/appended.txt';
    await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'first' }));
    await expect(
      local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: ' and more', WriteOffsetBytes: 5 })),
    ).rejects.toMatchObject({ name: 'NotImplemented', $metadata: { httpStatusCode: 501 } });
    expect(await text(Key)).toBe('first');
  });
});

describe('what the embedded S3 cannot honour is refused, never stored or read as if it were', () => {
  const refused = (header: string) => ({
    name: 'NotImplemented',
    Header: header,
    $metadata: { httpStatusCode: 501 },
  });

  it('SSE-C on a PutObject, an upload, a read or a copy: 501 naming the header; nothing stored plain, no object read without the key', async () => {
    // Before: the object "encrypted with the customer's key" was stored plain and read back without the key.
    const sseC = { SSECustomerAlgorithm: 'AES256', SSECustomerKey: 'k'.repeat(32) };
    const algorithm = refused('x-amz-server-side-encryption-customer-algorithm');
    await expect(
      local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'sse-c/secret.txt', Body: 'secret', ...sseC })),
    ).rejects.toMatchObject(algorithm);
    await expect(
      local.client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'sse-c/secret.txt', ...sseC })),
    ).rejects.toMatchObject(algorithm);
    expect(await stored()).not.toContain('sse-c/secret.txt');

    const Key = 'sse-c/plain.txt';
    await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'plain' }));
    await expect(local.client.send(new GetObjectCommand({ Bucket: BUCKET, Key, ...sseC }))).rejects.toMatchObject(
      algorithm,
    );
    await expect(local.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key, ...sseC }))).rejects.toMatchObject({
      $metadata: { httpStatusCode: 501 },
    });
    const copy = { Bucket: BUCKET, Key: 'sse-c/copy.txt', CopySource: `${BUCKET}/${Key}` };
    await expect(local.client.send(new CopyObjectCommand({ ...copy, ...sseC }))).rejects.toMatchObject(algorithm);
    await expect(
      local.client.send(
        new CopyObjectCommand({
          ...copy,
          CopySourceSSECustomerAlgorithm: 'AES256',
          CopySourceSSECustomerKey: 'k'.repeat(32),
        }),
      ),
    ).rejects.toMatchObject(refused('x-amz-copy-source-server-side-encryption-customer-algorithm'));
    expect(await stored()).not.toContain('sse-c/copy.txt');
  });
  it('a storage class other than STANDARD: 501 naming the header (one S3 has not: 400 InvalidStorageClass); nothing stored', async () => {
    // Before: stored, then listed and read as STANDARD (an archived one read without its restore).
    const Key = 'storage-class/object.txt';
    const put = (StorageClass: string) =>
      local.client.send(
        new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'body', StorageClass: StorageClass as 'STANDARD' }),
      );
    await expect(put('GLACIER')).rejects.toMatchObject(refused('x-amz-storage-class'));
    await expect(
      local.client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key, StorageClass: 'STANDARD_IA' })),
    ).rejects.toMatchObject(refused('x-amz-storage-class'));
    await expect(put('COLD')).rejects.toMatchObject({
      name: 'InvalidStorageClass',
      StorageClassRequested: 'COLD',
      $metadata: { httpStatusCode: 400 },
    });
    expect(await stored()).not.toContain(Key);
    await put('STANDARD');
    await expect(
      local.client.send(
        new CopyObjectCommand({ Bucket: BUCKET, Key, CopySource: `${BUCKET}/${Key}`, StorageClass: 'GLACIER' }),
      ),
    ).rejects.toMatchObject(refused('x-amz-storage-class'));
    expect(await text(Key)).toBe('body');
  });
  it('an Object Lock (retention or legal hold) on an object: 400 InvalidRequest, as S3 answers for a bucket without Object Lock', async () => {
    // Before: stored without the lock, so it could be overwritten or deleted the next moment.
    const Key = 'object-lock/object.txt';
    const missing = {
      name: 'InvalidRequest',
      message: 'Bucket is missing Object Lock Configuration',
      $metadata: { httpStatusCode: 400 },
    };
    const lock = { ObjectLockMode: 'COMPLIANCE', ObjectLockRetainUntilDate: new Date('2030-01-01T00:00:00Z') } as const;
    await expect(
      local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'body', ...lock })),
    ).rejects.toMatchObject(missing);
    await expect(
      local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'body', ObjectLockLegalHoldStatus: 'ON' })),
    ).rejects.toMatchObject(missing);
    await expect(
      local.client.send(new CreateMultipartUploadCommand({ Bucket: BUCKET, Key, ...lock })),
    ).rejects.toMatchObject(missing);
    expect(await stored()).not.toContain(Key);
  });
  it('a website redirect (x-amz-website-redirect-location): 501 naming the header; nothing stored without it', async () => {
    // Before: stored without it; HeadObject then gave no WebsiteRedirectLocation.
    const Key = 'redirect/page.html';
    await expect(
      local.client.send(
        new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'page', WebsiteRedirectLocation: '/other.html' }),
      ),
    ).rejects.toMatchObject(refused('x-amz-website-redirect-location'));
    expect(await stored()).not.toContain(Key);
  });
  it('SSE-KMS (aws:kms, a KMS key id): 501 naming the header; nothing stored plain; SSE-S3 (AES256) taken', async () => {
    // Before: stored plain, as if encrypted with the key.
    const Key = 'sse-kms/object.txt';
    const put = (input: object) =>
      local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'body', ...input }));
    await expect(put({ ServerSideEncryption: 'aws:kms', SSEKMSKeyId: 'alias/exports' })).rejects.toMatchObject(
      refused('x-amz-server-side-encryption'),
    );
    await expect(
      local.client.send(
        new CreateMultipartUploadCommand({ Bucket: BUCKET, Key, ServerSideEncryption: 'aws:kms:dsse' }),
      ),
    ).rejects.toMatchObject(refused('x-amz-server-side-encryption'));
    expect(await stored()).not.toContain(Key);
    await put({ ServerSideEncryption: 'AES256' });
    expect(await text(Key)).toBe('body');
  });
  it('an encryption S3 does not have (x-amz-server-side-encryption: AES128): 400 InvalidArgument; nothing stored', async () => {
    // Before: taken as if it were AES256.
    const Key = 'sse-unknown/object.txt';
    await expect(
      local.client.send(
        new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'body', ServerSideEncryption: 'AES128' as 'AES256' }),
      ),
    ).rejects.toMatchObject({
      name: 'InvalidArgument',
      message: 'The encryption method specified is not supported',
      ArgumentName: 'x-amz-server-side-encryption',
      ArgumentValue: 'AES128',
      $metadata: { httpStatusCode: 400 },
    });
    expect(await stored()).not.toContain(Key);
  });
  it('an ACL on a write: 400 AccessControlListNotSupported, as the deployed bucket (ACLs disabled) answers', async () => {
    // Before: stored without the ACL (public-read said, private kept).
    const Key = 'acl/object.txt';
    const notSupported = { name: 'AccessControlListNotSupported', $metadata: { httpStatusCode: 400 } };
    await expect(
      local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'body', ACL: 'public-read' })),
    ).rejects.toMatchObject(notSupported);
    await expect(
      local.client.send(
        new CreateMultipartUploadCommand({
          Bucket: BUCKET,
          Key,
          GrantRead: 'uri="http://acs.amazonaws.com/groups/global/AllUsers"',
        }),
      ),
    ).rejects.toMatchObject(notSupported);
    expect(await stored()).not.toContain(Key);
    await local.client.send(
      new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'body', ACL: 'bucket-owner-full-control' }),
    );
    expect(await text(Key)).toBe('body');
  });
});

describe('conditional deletes (If-Match), as S3 checks them: only the object the client saw is deleted', () => {
  it('DeleteObject or a DeleteObjects entry with an ETag since overwritten: 412 PreconditionFailed, kept; current ETag or *: deleted', async () => {
    const Key = 'conditional/export.json';
    const seen = (await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'first' }))).ETag!;
    const current = (await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'rewritten' }))).ETag!;

    await expect(
      local.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key, IfMatch: seen })),
    ).rejects.toMatchObject({ name: 'PreconditionFailed', $metadata: { httpStatusCode: 412 } });
    const batch = await local.client.send(
      new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: [{ Key, ETag: seen }] } }),
    );
    expect([batch.Deleted, batch.Errors?.map((e) => [e.Key, e.Code])]).toEqual([
      undefined,
      [[Key, 'PreconditionFailed']],
    ]);
    expect(await text(Key)).toBe('rewritten');

    await local.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key, IfMatch: current }));
    await expect(text(Key)).rejects.toMatchObject({ name: 'NoSuchKey' });
    await expect(
      local.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key, IfMatch: '*' })),
    ).rejects.toMatchObject({ name: 'NoSuchKey', $metadata: { httpStatusCode: 404 } });
    await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'again' }));
    const any = await local.client.send(
      new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: [{ Key, ETag: '*' }] } }),
    );
    expect(any.Deleted).toEqual([{ Key }]);
    await expect(text(Key)).rejects.toMatchObject({ name: 'NoSuchKey' });
  });
});

describe('conditional writes on a CopyObject destination, as on a PutObject', () => {
  it('If-None-Match * onto an existing key: 412 PreconditionFailed, the destination kept; If-Match another ETag: 412', async () => {
    const copy = (Key: string, condition: { IfNoneMatch?: string; IfMatch?: string }) =>
      local.client.send(
        new CopyObjectCommand({ Bucket: BUCKET, Key, CopySource: `${BUCKET}/copied/source.txt`, ...condition }),
      );
    await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'copied/source.txt', Body: 'source' }));
    const { ETag } = await local.client.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: 'copied/existing.txt', Body: 'existing' }),
    );
    const failed = { name: 'PreconditionFailed', $metadata: { httpStatusCode: 412 } };
    await expect(copy('copied/existing.txt', { IfNoneMatch: '*' })).rejects.toMatchObject(failed);
    await expect(copy('copied/existing.txt', { IfMatch: '"0123456789abcdef0123456789abcdef"' })).rejects.toMatchObject(
      failed,
    );
    expect(await text('copied/existing.txt')).toBe('existing');
    await copy('copied/new.txt', { IfNoneMatch: '*' });
    await copy('copied/existing.txt', { IfMatch: ETag! });
    expect([await text('copied/new.txt'), await text('copied/existing.txt')]).toEqual(['source', 'source']);
  });
});

describe('versions: the embedded bucket is not versioned (the deployed one is), each object is its one version, null', () => {
  /** A version id as the deployed bucket gives them: none of the embedded bucket's. */
  const OTHER = 'KC0WuaPTHv7At3olS.BPuH.weAJqMkKJ';
  const Key = 'versions/kept.txt';

  it('version null reads the object; another is 404 NoSuchVersion, for GetObject and HeadObject', async () => {
    await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'kept' }));
    expect(await text(Key, 'null')).toBe('kept');
    await expect(text(Key, OTHER)).rejects.toMatchObject({ name: 'NoSuchVersion', $metadata: { httpStatusCode: 404 } });
    const body = await (await fetch(`${local.s3.endpoint}/${BUCKET}/${Key}?versionId=${OTHER}`)).text();
    expect(body).toMatch(/<Code>NoSuchVersion<\/Code>.*<Key>versions\/kept\.txt<\/Key><VersionId>KC0WuaPTHv7At3olS/);
    await expect(
      local.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key, VersionId: OTHER })),
    ).rejects.toMatchObject({ $metadata: { httpStatusCode: 404 } });
    const copy = (version: string) =>
      local.client.send(
        new CopyObjectCommand({
          Bucket: BUCKET,
          Key: 'versions/copy.txt',
          CopySource: `${BUCKET}/${Key}?versionId=${version}`,
        }),
      );
    await expect(copy(OTHER)).rejects.toMatchObject({ name: 'NoSuchVersion', Key, VersionId: OTHER });
    await copy('null');
    expect(await stored()).toContain('versions/copy.txt');
  });

  it('a malformed version id: 400 InvalidArgument "Invalid version id specified", as S3 answers; nothing deleted', async () => {
    // Before: 404 NoSuchVersion for a read, 204 for a delete, as for a version S3 could have given.
    await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'kept' }));
    const invalid = {
      name: 'InvalidArgument',
      message: 'Invalid version id specified',
      ArgumentName: 'versionId',
      ArgumentValue: 'garbage',
      $metadata: { httpStatusCode: 400 },
    };
    await expect(text(Key, 'garbage')).rejects.toMatchObject(invalid);
    await expect(
      local.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key, VersionId: 'garbage' })),
    ).rejects.toMatchObject(invalid);
    await expect(
      local.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key, VersionId: 'garbage' })),
    ).rejects.toMatchObject({ $metadata: { httpStatusCode: 400 } });
    await expect(
      local.client.send(
        new CopyObjectCommand({
          Bucket: BUCKET,
          Key: 'versions/copied.txt',
          CopySource: `${BUCKET}/${Key}?versionId=garbage`,
        }),
      ),
    ).rejects.toMatchObject({ ...invalid, ArgumentName: 'x-amz-copy-source' });
    // In a DeleteObjects, as S3 answers it: that entry's error, NoSuchVersion (before: listed as deleted).
    const batch = await local.client.send(
      new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: [{ Key, VersionId: 'garbage' }] } }),
    );
    expect([batch.Deleted, batch.Errors]).toEqual([
      undefined,
      [{ Key, VersionId: 'garbage', Code: 'NoSuchVersion', Message: 'The specified version does not exist.' }],
    ]);
    expect(await text(Key)).toBe('kept');
  });

  it('DeleteObject and DeleteObjects of another version delete nothing (as S3 answers one it does not have); of null, the object', async () => {
    await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'kept' }));
    const one = await local.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key, VersionId: OTHER }));
    expect([one.$metadata.httpStatusCode, one.VersionId]).toEqual([204, OTHER]);
    const batch = await local.client.send(
      new DeleteObjectsCommand({ Bucket: BUCKET, Delete: { Objects: [{ Key, VersionId: OTHER }] } }),
    );
    expect([batch.Deleted, batch.Errors]).toEqual([[{ Key, VersionId: OTHER }], undefined]);
    expect(await text(Key)).toBe('kept');
    await local.client.send(new DeleteObjectCommand({ Bucket: BUCKET, Key, VersionId: 'null' }));
    await expect(text(Key)).rejects.toMatchObject({ name: 'NoSuchKey' });
  });

  it('ListObjectVersions lists each object once as its latest version, null, paged by key marker, with delimiters', async () => {
    const keys = ['listed/a.json', 'listed/b c.json', 'listed/d/e.json', 'listed/f.json', 'listed/g.json'];
    for (const key of keys) await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: key, Body: key }));
    const pages = [];
    let markers: { KeyMarker?: string; VersionIdMarker?: string } = {};
    do {
      const page = await local.client.send(
        new ListObjectVersionsCommand({ Bucket: BUCKET, Prefix: 'listed/', MaxKeys: 2, ...markers }),
      );
      pages.push(page);
      markers = { KeyMarker: page.NextKeyMarker, VersionIdMarker: page.NextVersionIdMarker };
    } while (pages.at(-1)!.IsTruncated);
    expect(pages.map((p) => p.Versions?.map((v) => v.Key))).toEqual([
      keys.slice(0, 2),
      keys.slice(2, 4),
      keys.slice(4),
    ]);
    const listed = pages.flatMap((p) => p.Versions!);
    expect(
      listed.every((v) => v.VersionId === 'null' && v.IsLatest === true && v.Size === Buffer.byteLength(v.Key!)),
    ).toBe(true);
    expect(pages.flatMap((p) => p.DeleteMarkers ?? [])).toEqual([]);
    const head = await local.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: keys[0] }));
    expect(listed[0]!.ETag).toBe(head.ETag);

    const rolled = await local.client.send(
      new ListObjectVersionsCommand({
        Bucket: BUCKET,
        Prefix: 'listed/',
        Delimiter: '/',
        KeyMarker: 'listed/b c.json',
      }),
    );
    expect(rolled.Versions?.map((v) => v.Key)).toEqual(['listed/f.json', 'listed/g.json']);
    expect(rolled.CommonPrefixes).toEqual([{ Prefix: 'listed/d/' }]);
    await expect(
      local.client.send(new ListObjectVersionsCommand({ Bucket: BUCKET, VersionIdMarker: 'null' })),
    ).rejects.toMatchObject({ name: 'InvalidArgument', $metadata: { httpStatusCode: 400 } });
  });
});

describe('presigned URLs: their signature is not checked, their time is, as S3 checks it', () => {
  /** A SigV4 presigned URL as `aws s3 presign` writes one (X-Amz-Date in the long ISO 8601 format), signed at `at`. */
  const presigned = (at: number, expiresIn: string) => {
    const date = new Date(at).toISOString().replace(/[-:]|\.\d{3}/g, '');
    return `${local.s3.endpoint}/${BUCKET}/presigned.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=test%2F20260101%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=${date}&X-Amz-Expires=${expiresIn}&X-Amz-SignedHeaders=host&X-Amz-Signature=${'0'.repeat(64)}`;
  };

  it('within X-Amz-Expires the object; after, 403 AccessDenied "Request has expired" with the times; over a week 400', async () => {
    await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'presigned.txt', Body: 'shared' }));
    const fresh = await fetch(presigned(Date.now() - 60_000, '3600'));
    expect([fresh.status, await fresh.text()]).toEqual([200, 'shared']);

    const expired = await fetch(presigned(Date.UTC(2026, 0, 1, 10, 0, 0), '60'));
    expect(expired.status).toBe(403);
    expect(await expired.text()).toMatch(
      /<Code>AccessDenied<\/Code><Message>Request has expired<\/Message><X-Amz-Expires>60<\/X-Amz-Expires><Expires>2026-01-01T10:01:00Z<\/Expires><ServerTime>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ<\/ServerTime>/,
    );
    const head = await fetch(presigned(Date.UTC(2026, 0, 1), '60'), { method: 'HEAD' });
    expect([head.status, head.headers.get('x-amz-error-code')]).toEqual([403, 'AccessDenied']);

    // AWS CLI v1's (SigV2): Expires in seconds since 1970.
    const v2 = (expires: number) =>
      fetch(`${local.s3.endpoint}/${BUCKET}/presigned.txt?AWSAccessKeyId=test&Signature=x&Expires=${expires}`);
    expect((await v2(Math.floor(Date.now() / 1000) + 3600)).status).toBe(200);
    expect(await (await v2(Date.UTC(2026, 0, 1) / 1000)).text()).toMatch(
      /<Code>AccessDenied<\/Code><Message>Request has expired<\/Message><Expires>2026-01-01T00:00:00Z<\/Expires>/,
    );

    const tooLong = await fetch(presigned(Date.now(), '604801'));
    expect(tooLong.status).toBe(400);
    expect(await tooLong.text()).toMatch(
      /<Code>AuthorizationQueryParametersError<\/Code><Message>X-Amz-Expires must be less than a week/,
    );
  });
});

describe('object tags are kept as S3 keeps them (before: refused with 501, GetObjectTagging answered none)', () => {
  const tagsOf = async (Key: string) =>
    (await local.client.send(new GetObjectTaggingCommand({ Bucket: BUCKET, Key }))).TagSet;
  const tagCount = async (Key: string) =>
    (await local.client.send(new GetObjectCommand({ Bucket: BUCKET, Key }))).TagCount;

  it('on a write, a multipart upload and a copy (kept, or replaced with x-amz-tagging-directive: REPLACE)', async () => {
    const Key = 'tags/object.txt';
    await local.client.send(
      new PutObjectCommand({
        Bucket: BUCKET,
        Key,
        Body: 'body',
        Tagging: 'team=rev%20ops&stage=raw+1&empty=&__proto__=x',
      }),
    );
    expect(await tagsOf(Key)).toEqual([
      { Key: 'team', Value: 'rev ops' },
      { Key: 'stage', Value: 'raw 1' },
      { Key: 'empty', Value: '' },
      { Key: '__proto__', Value: 'x' },
    ]);
    expect(await tagCount(Key)).toBe(4);

    const upload = await local.client.send(
      new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: 'tags/multipart.bin', Tagging: 'team=revops' }),
    );
    const part = await local.client.send(
      new UploadPartCommand({
        Bucket: BUCKET,
        Key: 'tags/multipart.bin',
        UploadId: upload.UploadId,
        PartNumber: 1,
        Body: 'part',
      }),
    );
    await local.client.send(
      new CompleteMultipartUploadCommand({
        Bucket: BUCKET,
        Key: 'tags/multipart.bin',
        UploadId: upload.UploadId,
        MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] },
      }),
    );
    expect(await tagsOf('tags/multipart.bin')).toEqual([{ Key: 'team', Value: 'revops' }]);

    const copy = (Key: string, input: object = {}) =>
      local.client.send(
        new CopyObjectCommand({ Bucket: BUCKET, Key, CopySource: `${BUCKET}/tags/object.txt`, ...input }),
      );
    await copy('tags/copy.txt');
    expect(await tagsOf('tags/copy.txt')).toHaveLength(4);
    await copy('tags/replaced.txt', { TaggingDirective: 'REPLACE', Tagging: 'owner=me' });
    expect(await tagsOf('tags/replaced.txt')).toEqual([{ Key: 'owner', Value: 'me' }]);
    await copy('tags/untagged.txt', { TaggingDirective: 'REPLACE' });
    expect(await tagsOf('tags/untagged.txt')).toEqual([]);
    expect(await tagCount('tags/untagged.txt')).toBeUndefined();
    await expect(copy('tags/bad.txt', { TaggingDirective: 'MERGE' })).rejects.toMatchObject({
      name: 'InvalidArgument',
      $metadata: { httpStatusCode: 400 },
    });
  });

  it('PutObjectTagging replaces them and DeleteObjectTagging removes them; the bytes, ETag and time stay', async () => {
    const Key = 'tags/retagged.txt';
    await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'body', Tagging: 'a=1' }));
    const before = await local.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key }));
    await local.client.send(
      new PutObjectTaggingCommand({ Bucket: BUCKET, Key, Tagging: { TagSet: [{ Key: 'b', Value: '2' }] } }),
    );
    expect(await tagsOf(Key)).toEqual([{ Key: 'b', Value: '2' }]);
    const after = await local.client.send(new HeadObjectCommand({ Bucket: BUCKET, Key }));
    expect([after.ETag, after.LastModified, after.ContentLength]).toEqual([
      before.ETag,
      before.LastModified,
      before.ContentLength,
    ]);
    expect(await text(Key)).toBe('body');
    await local.client.send(new DeleteObjectTaggingCommand({ Bucket: BUCKET, Key }));
    expect(await tagsOf(Key)).toEqual([]);
    expect(await text(Key)).toBe('body');
    await expect(
      local.client.send(
        new PutObjectTaggingCommand({
          Bucket: BUCKET,
          Key: 'tags/none',
          Tagging: { TagSet: [{ Key: 'a', Value: '1' }] },
        }),
      ),
    ).rejects.toMatchObject({ name: 'NoSuchKey', $metadata: { httpStatusCode: 404 } });
    await expect(
      local.client.send(new DeleteObjectTaggingCommand({ Bucket: BUCKET, Key: 'tags/none' })),
    ).rejects.toMatchObject({ name: 'NoSuchKey', $metadata: { httpStatusCode: 404 } });
    expect(await stored()).not.toContain(path.join('tags', 'none'));
  });

  it('tags S3 refuses get its 400 (too many, too long, aws:, repeated, bad characters); nothing stored or changed', async () => {
    const Key = 'tags/refused.txt';
    const put = (Tagging: string) =>
      local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'body', Tagging }));
    const many = Array.from({ length: 11 }, (_, i) => `k${i}=v`).join('&');
    await expect(put(many)).rejects.toMatchObject({
      name: 'BadRequest',
      message: 'Object tags cannot be greater than 10',
      $metadata: { httpStatusCode: 400 },
    });
    const invalidTag = (message: string) => ({ name: 'InvalidTag', message, $metadata: { httpStatusCode: 400 } });
    await expect(put(`${'k'.repeat(129)}=v`)).rejects.toMatchObject(
      invalidTag('The TagKey you have provided is too long, max 128'),
    );
    await expect(put(`k=${'v'.repeat(257)}`)).rejects.toMatchObject(
      invalidTag('The TagValue you have provided is too long, max 256'),
    );
    await expect(put('aws:owner=me')).rejects.toMatchObject(invalidTag('Your TagKey cannot be prefixed with aws:'));
    await expect(put('k=a%3Cb')).rejects.toMatchObject(invalidTag('The TagValue you have provided is invalid'));
    await expect(put('k=1&k=2')).rejects.toMatchObject({
      name: 'InvalidArgument',
      ArgumentName: 'x-amz-tagging',
      $metadata: { httpStatusCode: 400 },
    });
    expect(await stored()).not.toContain(path.join('tags', 'refused.txt'));

    await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: 'body', Tagging: 'a=1' }));
    await expect(
      local.client.send(
        new PutObjectTaggingCommand({
          Bucket: BUCKET,
          Key,
          Tagging: {
            TagSet: [
              { Key: 'k', Value: '1' },
              { Key: 'k', Value: '2' },
            ],
          },
        }),
      ),
    ).rejects.toMatchObject(invalidTag('Cannot provide multiple Tags with the same key'));
    expect(await tagsOf(Key)).toEqual([{ Key: 'a', Value: '1' }]);
  });
});
