import {
  CompleteMultipartUploadCommand,
  CopyObjectCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  HeadObjectCommand,
  PutObjectCommand,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { expect, it } from 'vitest';
import { useEmbeddedS3 } from '../../support/embedded-s3.ts';

/**
 * S3 encrypts every object at rest (SSE-S3, AES256, unless told otherwise) and says so on each write and read of one;
 * the embedded S3 says the same.
 * S3 refuses an encryption header on a read (x-amz-server-side-encryption, or SSE-KMS's key id, on GET or HEAD): 400,
 * since it decrypts SSE-S3 and SSE-KMS objects by itself (the AWS API reference, GetObject and HeadObject). The
 * embedded S3 answers the same, so a client that sends one finds out here, not on the deployed bucket.
 */
const BUCKET = 'sse-on-read';
const local = useEmbeddedS3(BUCKET);

it('a GET or HEAD with x-amz-server-side-encryption (or its KMS key id) is refused with 400 InvalidArgument', async () => {
  await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'a.txt', Body: 'body' }));
  const url = `${local.s3.endpoint}/${BUCKET}/a.txt`;
  for (const [name, value] of [
    ['x-amz-server-side-encryption', 'AES256'],
    ['x-amz-server-side-encryption', 'aws:kms'],
    ['x-amz-server-side-encryption-aws-kms-key-id', 'alias/exports'],
  ] as const) {
    // Before: the GET answered 200 with the body, as if the header meant something here.
    const get = await fetch(url, { headers: { [name]: value } });
    expect(get.status).toBe(400);
    const body = await get.text();
    expect(body).toContain('<Code>InvalidArgument</Code>');
    expect(body).toContain(`<Message>${name} header is not supported for this operation.</Message>`);
    expect(body).toContain(`<ArgumentName>${name}</ArgumentName>`);
    expect((await fetch(url, { method: 'HEAD', headers: { [name]: value } })).status).toBe(400);
  }
  const plain = await fetch(url);
  expect(plain.status).toBe(200);
  expect(await plain.text()).toBe('body');
});

it('PUT, GET, HEAD, a copy and each step of a multipart upload say x-amz-server-side-encryption: AES256, as S3 does', async () => {
  // Before: no such header, where S3 (which encrypts every object at rest) always sends it.
  const { client } = local;
  const Bucket = BUCKET;
  const said: (string | undefined)[] = [];
  said.push((await client.send(new PutObjectCommand({ Bucket, Key: 'b.txt', Body: 'body' }))).ServerSideEncryption);
  const get = await client.send(new GetObjectCommand({ Bucket, Key: 'b.txt' }));
  await get.Body?.transformToString();
  said.push(get.ServerSideEncryption);
  said.push(
    (await client.send(new GetObjectCommand({ Bucket, Key: 'b.txt', Range: 'bytes=0-1' }))).ServerSideEncryption,
  );
  said.push((await client.send(new HeadObjectCommand({ Bucket, Key: 'b.txt' }))).ServerSideEncryption);
  said.push(
    (await client.send(new CopyObjectCommand({ Bucket, Key: 'c.txt', CopySource: `${BUCKET}/b.txt` })))
      .ServerSideEncryption,
  );
  const upload = await client.send(new CreateMultipartUploadCommand({ Bucket, Key: 'm.txt' }));
  said.push(upload.ServerSideEncryption);
  const part = await client.send(
    new UploadPartCommand({ Bucket, Key: 'm.txt', UploadId: upload.UploadId, PartNumber: 1, Body: 'part' }),
  );
  said.push(part.ServerSideEncryption);
  const done = await client.send(
    new CompleteMultipartUploadCommand({
      Bucket,
      Key: 'm.txt',
      UploadId: upload.UploadId,
      MultipartUpload: { Parts: [{ PartNumber: 1, ETag: part.ETag }] },
    }),
  );
  said.push(done.ServerSideEncryption);
  expect(said).toEqual(Array(8).fill('AES256'));
});
