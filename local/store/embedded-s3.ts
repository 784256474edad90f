import { HEADERS_TIMEOUT_MS, REQUEST_TIMEOUT_MS } from '../server/config.ts';
import { startFileWriter } from './file-writer.ts';
import { inProcessS3 } from './in-process-s3-transport.ts';
import { ObjectStore } from './object-store.ts';
import { isValidBucketName, S3Api } from './s3-api.ts';
import { serveS3Api } from './s3-http-server.ts';
import { migrateS3rverLayout } from './s3rver-migration.ts';

/**
 * The embedded S3: the export bucket as files under `directory` (layout: local/store/object-store.ts), served two
 * ways with the same rules: an S3 HTTP endpoint on 127.0.0.1 (the AWS CLI, SDKs, `conversations search`, the
 * console) and the in-process transport (local/store/in-process-s3-transport.ts) that the gateway gives the
 * handlers' S3 client, so Export's PUTs skip the sockets. Data written by s3rver (before) is moved into this layout
 * at the first start.
 */
export interface EmbeddedS3 {
  endpoint: string;
  port: number;
  store: ObjectStore;
  close(): Promise<void>;
}

export async function startEmbeddedS3(options: {
  directory: string;
  port: number;
  bucket: string;
  /** How long a client may take to send its headers / its whole request (408 after); the gateway's by default. */
  headersTimeoutMs?: number;
  requestTimeoutMs?: number;
}): Promise<EmbeddedS3> {
  if (!isValidBucketName(options.bucket)) {
    throw new Error(
      `bucket name "${options.bucket}" is not valid: S3 bucket names are 3 to 63 lower-case letters, digits, dots and hyphens`,
    );
  }
  const store = new ObjectStore(options.directory);
  await store.open();
  startFileWriter();
  await migrateS3rverLayout(store);
  await store.createBucket(options.bucket);
  const api = new S3Api(store);
  const http = await serveS3Api(api, {
    host: '127.0.0.1',
    port: options.port,
    headersTimeoutMs: options.headersTimeoutMs ?? HEADERS_TIMEOUT_MS,
    requestTimeoutMs: options.requestTimeoutMs ?? REQUEST_TIMEOUT_MS,
  });
  inProcessS3.attach(api);
  return {
    endpoint: `http://127.0.0.1:${http.port}`,
    port: http.port,
    store,
    async close() {
      inProcessS3.detach(api);
      await http.close();
    },
  };
}
