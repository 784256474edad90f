import { GetObjectCommand, PutObjectCommand, type S3ServiceException } from '@aws-sdk/client-s3';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { useEmbeddedS3 } from '../../support/embedded-s3.ts';

/**
 * The embedded S3's data folder refusing a write or a read (full, over its quota, read-only, its permissions, the
 * process out of file descriptors): 503 ServiceUnavailable, as the gateway answers its own callers
 * (STORAGE_UNAVAILABLE), the message saying what was refused and never a path; one line on stderr names the folder.
 * Before: 500 InternalError, "We encountered an internal error", and a stack on stderr. A bug is still 500.
 */
const BUCKET = 'disk-refusals';
const local = useEmbeddedS3(BUCKET, { maxAttempts: 2 });

/** A refusal as Node gives it (code, system call, the file in the message). */
const refusal = (code: string, syscall: string, text: string) =>
  Object.assign(new Error(`${code}: ${text}, ${syscall} '${local.dir}/${BUCKET}/a/b.json'`), { code, syscall });

let stderr: { mock: { calls: unknown[][] } };
afterEach(() => {
  vi.restoreAllMocks();
});
const said = () => stderr.mock.calls.map(([line]) => String(line)).join('');

describe('a data folder refusing the embedded S3', () => {
  it.each([
    [
      'ENOSPC',
      'write',
      'no space left on device',
      'cannot write its data folder (ENOSPC: no space left on its device)',
    ],
    ['EDQUOT', 'write', 'disk quota exceeded', 'cannot write its data folder (EDQUOT: over its disk quota)'],
    ['EROFS', 'open', 'read-only file system', 'cannot write its data folder (EROFS: on a read-only file system)'],
    ['EACCES', 'open', 'permission denied', 'cannot open a file of its data folder (EACCES: permission denied)'],
    [
      'EMFILE',
      'open',
      'too many open files',
      'cannot open a file of its data folder (EMFILE: too many open files in the gateway process)',
    ],
  ])(
    'a PUT refused with %s: 503 ServiceUnavailable through the SDK (which retried it), no Retry-After, nothing stored',
    async (code, syscall, text, message) => {
      stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
      const put = vi.spyOn(local.s3.store, 'put').mockRejectedValue(refusal(code, syscall, text));
      const error = (await local.client
        .send(new PutObjectCommand({ Bucket: BUCKET, Key: 'a/b.json', Body: '{}' }))
        .catch((e: unknown) => e)) as S3ServiceException;
      expect(error.name).toBe('ServiceUnavailable');
      expect(error.message).toBe(`The embedded S3 ${message}: please try again once it can.`);
      expect(error.$metadata.httpStatusCode).toBe(503);
      expect(error.$metadata.attempts).toBe(2); // the SDK retries a 503, as it does S3's
      expect(put).toHaveBeenCalledTimes(2);

      const res = await fetch(`${local.s3.endpoint}/${BUCKET}/a/b.json`, { method: 'PUT', body: '{}' });
      expect(res.status).toBe(503);
      // None, as S3 sends none: the SDK waited on it (5 s) before each retry, holding the gateway's Export that long.
      expect(res.headers.get('retry-after')).toBeNull();
      const body = await res.text();
      expect(body).toContain('<Code>ServiceUnavailable</Code>');
      expect(body).not.toContain(local.dir); // the client is not told the operator's paths
      // The operator's line: the folder and the system's message, no stack.
      expect(said()).toContain(
        `webhook-gateway: embedded S3 PUT /${BUCKET}/a/b.json: the data folder ${local.dir} refused a`,
      );
      expect(said()).toContain(`(${code}: ${text}, ${syscall} '${local.dir}/${BUCKET}/a/b.json')`);
      expect(said()).not.toMatch(/\n\s+at /);

      put.mockRestore();
      await local.client.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'a/b.json', Body: '{"ok":1}' }));
      const got = await local.client.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'a/b.json' }));
      expect(await got.Body!.transformToString()).toBe('{"ok":1}');
    },
  );

  it('a GET whose file may not be read: 503 saying it cannot read; a HEAD the same status', async () => {
    stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    vi.spyOn(local.s3.store, 'get').mockRejectedValue(refusal('EACCES', 'read', 'permission denied'));
    const error = (await local.client
      .send(new GetObjectCommand({ Bucket: BUCKET, Key: 'a/b.json' }))
      .catch((e: unknown) => e)) as S3ServiceException;
    expect(error.name).toBe('ServiceUnavailable');
    expect(error.message).toContain('cannot read its data folder (EACCES: permission denied)');
    const head = await fetch(`${local.s3.endpoint}/${BUCKET}/a/b.json`, { method: 'HEAD' });
    expect(head.status).toBe(503);
    expect(head.headers.get('x-amz-error-code')).toBe('ServiceUnavailable');
  });

  it('a failure of the embedded S3 itself (a bug): still 500 InternalError, its stack on stderr', async () => {
    stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    vi.spyOn(local.s3.store, 'put').mockRejectedValue(new TypeError('x is not a function'));
    const res = await fetch(`${local.s3.endpoint}/${BUCKET}/a/c.json`, { method: 'PUT', body: '{}' });
    expect(res.status).toBe(500);
    expect(await res.text()).toContain('<Code>InternalError</Code>');
    expect(said()).toContain('TypeError: x is not a function');
  });
});
