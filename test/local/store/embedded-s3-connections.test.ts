import { rename, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import path from 'node:path';
import { CopyObjectCommand, GetObjectCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { useEmbeddedS3 } from '../../support/embedded-s3.ts';
import { openFilesUnder } from '../../support/open-files.ts';

/**
 * Clients of the embedded S3 that close their side early. Readers of an export that go away while it is sent: the object's file is closed with the connection, and the
 * embedded S3 (in the gateway's process under `npm start`) goes on serving. Node's own answer to such a client is
 * no error: what could be lost is a file left open (descriptors run out for everyone, and Node says it will throw
 * on a file closed by garbage collection).
 */
const BUCKET = 'connections';
const local = useEmbeddedS3(BUCKET, { maxAttempts: 1 });
const KEY = 'conversation-history/2026/12/03/big/conversation.json';
/** Past the 256 KB read whole: streamed from its open file. */
const BIG = Buffer.alloc(8 * 1024 * 1024, 'a');

/**
 * What Node says when garbage collection closes a file left open (`Closing file descriptor N on garbage collection`):
 * a file these tests find closed must have been closed by the embedded S3, not by the collector.
 */
const collected: string[] = [];
const onWarning = (warning: Error) => {
  if (/on garbage collection/.test(warning.message)) collected.push(warning.message);
};
beforeAll(() => {
  process.on('warning', onWarning);
});
afterAll(() => {
  process.off('warning', onWarning);
  expect(collected).toEqual([]);
});

/** The files of the bucket this process has open now. */
const openObjectFiles = () => openFilesUnder(path.join(local.dir, BUCKET));

/** `text` sent on a connection that reads nothing back and is reset once `until` says so. */
function sendAndDrop(text: string, until: (received: number) => boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = connect(local.s3.port, '127.0.0.1', () => socket.write(text));
    let received = 0;
    socket.on('data', (chunk) => {
      received += chunk.length;
      socket.pause(); // a slow reader: the server's writes back up
      if (until(received)) socket.resetAndDestroy();
      else setImmediate(() => socket.resume());
    });
    socket.on('close', () => resolve());
    socket.on('error', reject);
  });
}

const GET = `GET /${BUCKET}/${KEY} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;

describe.skipIf(process.platform !== 'linux')('a reader of a large object that goes away', () => {
  it('pipelined GETs dropped while the first is sent: every file closed, the next reader served', async () => {
    await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: KEY, Body: BIG }));
    expect(openObjectFiles()).toEqual([]);
    // The second and third answers wait behind the first (HTTP/1.1 pipelining): each has its file open. Before, Node
    // left them waiting for good once the client had gone, their files open until garbage collection.
    await sendAndDrop(GET + GET + GET, (received) => received > 256 * 1024);
    await expect.poll(openObjectFiles, { timeout: 5_000 }).toEqual([]);
    const read = await local.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: KEY }));
    expect((await read.Body!.transformToByteArray()).length).toBe(BIG.length);
  });

  it('a HEAD, a range read and a GET pipelined, cut off mid-range: every file closed, the object unchanged', async () => {
    await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: KEY, Body: BIG }));
    const head = `HEAD /${BUCKET}/${KEY} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`;
    const range = `GET /${BUCKET}/${KEY} HTTP/1.1\r\nHost: 127.0.0.1\r\nRange: bytes=1000-7000000\r\n\r\n`;
    await sendAndDrop(head + range + GET, (received) => received > 64 * 1024);
    await expect.poll(openObjectFiles, { timeout: 5_000 }).toEqual([]);
    const read = await local.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: KEY, Range: 'bytes=0-9' }));
    expect(await read.Body!.transformToString()).toBe('aaaaaaaaaa');
  });
});

/** `text` sent, then the client's side closed (FIN) while it reads on; everything received until the server closed. */
function sendAndHalfClose(text: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect(local.s3.port, '127.0.0.1', () => socket.end(text));
    const chunks: Buffer[] = [];
    socket.on('data', (chunk) => chunks.push(chunk));
    socket.on('close', () => resolve(Buffer.concat(chunks)));
    socket.on('error', reject);
  });
}

describe('a client that closes its side after its request (FIN), still reading', () => {
  it('gets its answer whole, then the connection is closed: a GET, a large GET, a listing', async () => {
    await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'small.txt', Body: 'hello' }));
    await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: KEY, Body: BIG }));
    // Before: nothing at all (Node ended the connection at the client's FIN, before the answer was ready).
    const small = (await sendAndHalfClose(`GET /${BUCKET}/small.txt HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)).toString();
    expect(small).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(small.endsWith('\r\n\r\nhello')).toBe(true);
    const big = await sendAndHalfClose(GET);
    expect(big.toString('latin1', 0, 17)).toBe('HTTP/1.1 200 OK\r\n');
    expect(big.length - big.indexOf('\r\n\r\n') - 4).toBe(BIG.length);
    const listing = (
      await sendAndHalfClose(`GET /${BUCKET}?list-type=2 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`)
    ).toString();
    expect(listing).toMatch(/^HTTP\/1\.1 200 OK\r\n[\s\S]*<Key>small\.txt<\/Key>[\s\S]*<\/ListBucketResult>$/);
    await expect.poll(openObjectFiles, { timeout: 5_000 }).toEqual([]);
  });
});

describe('a copy the disk refuses', () => {
  it('its temporary file cannot be made (s3/.tmp is a file): 500 InternalError, the source file closed, the copy absent', async () => {
    await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: KEY, Body: BIG }));
    const tmp = path.join(local.dir, '.tmp');
    await rename(tmp, `${tmp}.aside`);
    await writeFile(tmp, 'not a folder');
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      await expect(
        local.client.send(
          new CopyObjectCommand({
            Bucket: BUCKET,
            Key: 'copy.json',
            CopySource: `${BUCKET}/${encodeURIComponent(KEY)}`,
          }),
        ),
      ).rejects.toMatchObject({ name: 'InternalError', $metadata: { httpStatusCode: 500 } });
      expect(String(stderr.mock.calls.at(-1)?.[0])).toMatch(
        /^embedded S3: PUT \/connections\/copy\.json: Error: ENOTDIR/,
      );
    } finally {
      stderr.mockRestore();
      await rm(tmp);
      await rename(`${tmp}.aside`, tmp);
    }
    // Before, the source's file stayed open until garbage collection.
    await expect.poll(openObjectFiles, { timeout: 5_000 }).toEqual([]);
    await expect(local.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'copy.json' }))).rejects.toMatchObject({
      name: 'NoSuchKey',
    });
  });
});
