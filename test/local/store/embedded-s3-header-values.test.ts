import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { IN_PROCESS_S3_CLIENT_SETTINGS } from '../../../local/store/in-process-s3-transport.ts';
import { useEmbeddedS3 } from '../../support/embedded-s3.ts';

/**
 * Header values no HTTP answer can carry (a character past ISO-8859-1, a line break): Node refuses to write them.
 * Before, the embedded S3's answer then failed with no answer at all (the connection dropped) and no line; now the
 * request is refused as S3 refuses it, what the handlers write through the in-process door is refused as a socket
 * would refuse it, and what cannot be sent anyway is a 500 with its line on stderr. The endpoint goes on serving.
 */
const BUCKET = 'header-values';
const local = useEmbeddedS3(BUCKET, { maxAttempts: 1 });
const url = (key: string, query = '') => `${local.s3.endpoint}/${BUCKET}/${key}${query}`;

afterEach(() => {
  vi.restoreAllMocks();
});

describe('response-* overrides', () => {
  it('past ISO-8859-1 or with a line break: 400 InvalidArgument naming the parameter, as S3 answers', async () => {
    await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'a.json', Body: '{"a":1}' }));
    const disposition = 'attachment; filename="2026–12.json"'; // an en dash, U+2013
    const refused = await fetch(url('a.json', `?response-content-disposition=${encodeURIComponent(disposition)}`));
    expect(refused.status).toBe(400);
    expect(await refused.text()).toContain(
      '<Code>InvalidArgument</Code><Message>Header value cannot be represented using ISO-8859-1.</Message><ArgumentName>response-content-disposition</ArgumentName>',
    );
    const injected = await fetch(url('a.json', '?response-content-type=text%2Fplain%0D%0AX-Injected%3A%201'));
    expect(injected.status).toBe(400);
    expect(injected.headers.get('x-injected')).toBeNull();
    expect(await injected.text()).toContain('<ArgumentName>response-content-type</ArgumentName>');
    // Latin-1 is taken, and the object is served as before.
    const latin = await fetch(url('a.json', `?response-content-disposition=${encodeURIComponent('inline; é')}`));
    expect(latin.status).toBe(200);
    expect(await latin.text()).toBe('{"a":1}');
  });
});

describe('what the handlers write through the in-process door', () => {
  it('a header value a socket could not carry is refused, as the SDK over HTTP refuses it; nothing stored', async () => {
    const inProcess = new S3Client({ region: 'us-east-1', forcePathStyle: true, ...IN_PROCESS_S3_CLIENT_SETTINGS });
    const put = (ContentDisposition: string) =>
      inProcess.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'b.json', Body: '{}', ContentDisposition }));
    await expect(put('attachment; filename="2026–12.json"')).rejects.toMatchObject({ code: 'ERR_INVALID_CHAR' });
    await expect(local.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'b.json' }))).rejects.toMatchObject({
      name: 'NoSuchKey',
    });
    await put('attachment; filename="2026-12.json"');
    const read = await fetch(url('b.json'));
    expect(read.headers.get('content-disposition')).toBe('attachment; filename="2026-12.json"');
  });
});

describe('an answer Node cannot write anyway', () => {
  it('a stored header past ISO-8859-1 (its metadata file edited): 500 InternalError and a line, not a dropped connection', async () => {
    const big = Buffer.alloc(1024 * 1024, 'c'); // streamed from its file: the file is closed too
    await local.client.send(
      new PutObjectCommand({ Bucket: BUCKET, Key: 'c.json', Body: big, ContentDisposition: 'inline' }),
    );
    const meta = path.join(local.dir, BUCKET, '.c.json.meta.json');
    await writeFile(meta, (await readFile(meta, 'utf8')).replace('"inline"', '"inline; 2026–12"'));
    const lines: string[] = [];
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => {
      lines.push(String(chunk));
      return true;
    });
    const answer = await fetch(url('c.json'));
    expect(answer.status).toBe(500);
    expect(await answer.text()).toContain('<Code>InternalError</Code>');
    expect(lines.join('')).toMatch(
      /^embedded S3: GET \/header-values\/c\.json: TypeError: Invalid character in header content \["content-disposition"\]/,
    );
    vi.restoreAllMocks();
    // The endpoint goes on serving the other objects.
    expect(await (await fetch(url('b.json'))).text()).toBe('{}');
  });
});
