import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import path from 'node:path';
import { GetObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { DEFAULTS, settings } from '../../functions/shared/settings.ts';
import { type EmbeddedS3, startEmbeddedS3 } from './embedded-s3.ts';

/**
 * The export bucket, read through the S3 protocol as any client would at the S3 endpoint the user named
 * (AWS_ENDPOINT_URL_S3), or — when nothing answers at that loopback endpoint — a temporary embedded S3 over the
 * same `<LOCAL_DATA_DIR>/s3` directory, stopped again by close().
 */
export interface ExportBucket {
  client: S3Client;
  bucket: string;
  endpoint: string;
  /** How it was reached, for the user: the running gateway's S3, a temporary one, or nothing to read. */
  via: 'running' | 'temporary' | 'empty';
  close(): Promise<void>;
}

export class ExportBucketError extends Error {}

export function s3Client(endpoint: string, env: NodeJS.ProcessEnv = process.env): S3Client {
  const credentials =
    env.AWS_ACCESS_KEY_ID || env.AWS_PROFILE ? undefined : { accessKeyId: 'local', secretAccessKey: 'local' };
  return new S3Client({
    endpoint,
    forcePathStyle: true,
    region: env.AWS_REGION || 'us-east-1',
    credentials,
    maxAttempts: 2,
  });
}

/** Whether something accepts TCP connections at the endpoint's host and port. */
function answers(endpoint: string, timeoutMs = 1000): Promise<boolean> {
  const url = new URL(endpoint);
  const port = Number(url.port || (url.protocol === 'https:' ? 443 : 80));
  return new Promise((resolve) => {
    const socket = connect({ host: url.hostname.replace(/^\[|\]$/g, ''), port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

const isLoopback = (endpoint: string) =>
  ['127.0.0.1', 'localhost', '[::1]', '::1'].includes(new URL(endpoint).hostname);

export async function openExportBucket(
  dataDir: string,
  s3Endpoint: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ExportBucket> {
  const bucket = settings(env).exportBucket ?? DEFAULTS.exportBucket;
  const endpoint = s3Endpoint.replace(/\/$/, '');
  if (!/^https?:\/\//.test(endpoint))
    throw new ExportBucketError(`AWS_ENDPOINT_URL_S3 must be an http(s) URL, got "${endpoint}"`);
  if (await answers(endpoint)) {
    const client = s3Client(endpoint, env);
    return { client, bucket, endpoint, via: 'running', close: async () => client.destroy() };
  }
  if (!isLoopback(endpoint))
    throw new ExportBucketError(`nothing answers at ${endpoint} (AWS_ENDPOINT_URL_S3): is that S3 endpoint up?`);
  const directory = path.join(dataDir, 's3');
  if (!existsSync(path.join(directory, bucket))) {
    const client = s3Client(endpoint, env);
    return { client, bucket, endpoint: directory, via: 'empty', close: async () => client.destroy() };
  }
  let s3: EmbeddedS3;
  try {
    s3 = await startEmbeddedS3({ directory, port: 0, bucket });
  } catch (error) {
    throw new ExportBucketError(
      `could not start a temporary embedded S3 over ${directory}: ${(error as Error).message}`,
    );
  }
  const client = s3Client(s3.endpoint, env);
  return {
    client,
    bucket,
    endpoint: s3.endpoint,
    via: 'temporary',
    async close() {
      client.destroy();
      await s3.close();
    },
  };
}

function explain(error: unknown, what: string, b: ExportBucket): ExportBucketError {
  const e = error as Error & { name?: string; $metadata?: { httpStatusCode?: number } };
  // A deployed stack's bucket (s3://…, the `--aws` commands) is no variable of the local gateway's.
  const deployed = b.endpoint.startsWith('s3://');
  const explained =
    e.name === 'NoSuchBucket'
      ? new ExportBucketError(
          `the bucket ${b.bucket} does not exist at ${b.endpoint}${deployed ? '' : ' (CONVERSATION_EXPORT_S3_BUCKET)'}`,
        )
      : new ExportBucketError(`could not ${what} at ${b.endpoint}: ${e.name ?? 'Error'}: ${e.message}`);
  // The SDK's error name stays, so that the `--aws` commands tell it as they tell AWS's other refusals
  // (local/cli/aws/errors.ts: access denied, throttled, missing).
  if (e.name) explained.name = e.name;
  return explained;
}

/** One object's text, or null when it does not exist. */
export async function readText(b: ExportBucket, key: string): Promise<string | null> {
  if (b.via === 'empty') return null;
  try {
    const out = await b.client.send(new GetObjectCommand({ Bucket: b.bucket, Key: key }));
    return (await out.Body?.transformToString('utf8')) ?? '';
  } catch (error) {
    const name = (error as Error).name;
    if (name === 'NoSuchKey' || name === 'NotFound') return null;
    throw explain(error, `read s3://${b.bucket}/${key}`, b);
  }
}

/** Map with at most `limit` calls in flight; results keep the input order. */
export async function mapLimit<T, R>(
  items: T[],
  limit: number,
  fn: (item: T, index: number) => Promise<R>,
): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      results[i] = await fn(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}
