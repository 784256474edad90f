import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { S3Client, type S3ClientConfig } from '@aws-sdk/client-s3';
import { afterAll, beforeAll } from 'vitest';
import { type EmbeddedS3, startEmbeddedS3 } from '../../local/store/embedded-s3.ts';

export interface TestEmbeddedS3 {
  /** The temporary folder the store keeps its files in (the bucket's objects under `<dir>/<bucket>/`). */
  dir: string;
  s3: EmbeddedS3;
  /** An SDK client for it (over HTTP unless `clientOptions` give another `requestHandler`), any credentials. */
  client: S3Client;
}

/**
 * One embedded S3 for a test file, with `bucket`, on a port of its own over a temporary folder: started before the
 * file's tests, closed (with the client) and its folder removed after them. Its fields are set once they started.
 */
export function useEmbeddedS3(bucket: string, clientOptions: Partial<S3ClientConfig> = {}): TestEmbeddedS3 {
  const local = {} as TestEmbeddedS3;
  beforeAll(async () => {
    local.dir = await mkdtemp(path.join(tmpdir(), `embedded-s3-${bucket}-`));
    local.s3 = await startEmbeddedS3({ directory: local.dir, port: 0, bucket });
    local.client = new S3Client({
      region: 'us-east-1',
      endpoint: local.s3.endpoint,
      forcePathStyle: true,
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      ...clientOptions,
    });
  });
  afterAll(async () => {
    local.client?.destroy();
    await local.s3?.close();
    if (local.dir) await rm(local.dir, { recursive: true, force: true });
  });
  return local;
}
