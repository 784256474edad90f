/**
 * The embedded S3 at scale: `objects` export files (four per conversation folder, dated folders as Export writes
 * them) PUT through the in-process transport, then listed in full over HTTP as users list them: ListObjectsV2 paged by
 * continuation token (every key once, in order), ListObjects v1 with a delimiter paged by NextMarker, and — when the
 * AWS CLI is installed — `aws s3 ls --recursive`. Runs in this process, on a temporary directory.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { ListObjectsCommand, ListObjectsV2Command, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { startEmbeddedS3 } from '../local/store/embedded-s3.ts';
import { inProcessS3 } from '../local/store/in-process-s3-transport.ts';

export interface ListingResult {
  objects: number;
  put_ms: number;
  /** CPU of this process per PUT (SDK client and store together). */
  put_cpu_ms_per_object: number;
  list_v2: { keys: number; pages: number; ms: number; in_order: boolean };
  list_v1_delimiter: { prefixes: number; pages: number; ms: number };
  aws_cli: { lines: number; ms: number } | null;
}

const BUCKET = 'listing-bench';
const FILES = ['analysis.json', 'conversation.json', 'metadata.json', 'summary.json'];

export async function measureS3Listing(objects: number, log: (line: string) => void): Promise<ListingResult> {
  const dir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-bench-s3-'));
  const s3 = await startEmbeddedS3({ directory: dir, port: 0, bucket: BUCKET });
  const config = {
    region: 'us-east-1',
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' },
  };
  const overHttp = new S3Client(config);
  const inProcess = new S3Client({ ...config, requestHandler: inProcessS3, cacheMiddleware: true });
  try {
    const body = JSON.stringify({ padding: 'x'.repeat(1800) });
    const conversations = Math.ceil(objects / FILES.length);
    const keyOf = (n: number, file: string) =>
      `conversation-history/2026/11/${String(1 + (n % 28)).padStart(2, '0')}/webhook_${String(n).padStart(7, '0')}/${file}`;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    for (let n = 0; n < conversations; n += 8) {
      const batch = Array.from({ length: Math.min(8, conversations - n) }, (_, i) => n + i);
      await Promise.all(
        batch.flatMap((c) =>
          FILES.map((file) =>
            inProcess.send(new PutObjectCommand({ Bucket: BUCKET, Key: keyOf(c, file), Body: body })),
          ),
        ),
      );
    }
    const putMs = performance.now() - t0;
    const cpu = process.cpuUsage(cpu0);
    const stored = conversations * FILES.length;

    let t = performance.now();
    let keys = 0;
    let pages = 0;
    let inOrder = true;
    let previous = '';
    let token: string | undefined;
    do {
      const page = await overHttp.send(new ListObjectsV2Command({ Bucket: BUCKET, ContinuationToken: token }));
      for (const o of page.Contents ?? []) {
        if (Buffer.compare(Buffer.from(o.Key!), Buffer.from(previous)) <= 0) inOrder = false;
        previous = o.Key!;
        keys++;
      }
      pages++;
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    const listV2 = { keys, pages, ms: Math.round(performance.now() - t), in_order: inOrder };

    t = performance.now();
    let prefixes = 0;
    let v1Pages = 0;
    let marker: string | undefined;
    do {
      const page = await overHttp.send(
        new ListObjectsCommand({
          Bucket: BUCKET,
          Prefix: 'conversation-history/2026/11/01/',
          Delimiter: '/',
          Marker: marker,
          MaxKeys: 100,
        }),
      );
      prefixes += page.CommonPrefixes?.length ?? 0;
      v1Pages++;
      marker = page.IsTruncated ? page.NextMarker : undefined;
    } while (marker);
    const listV1 = { prefixes, pages: v1Pages, ms: Math.round(performance.now() - t) };

    let awsCli: ListingResult['aws_cli'] = null;
    const aws = [
      '/usr/bin/aws',
      ...(process.env.PATH ?? '').split(path.delimiter).map((d) => path.join(d, 'aws')),
    ].find((p) => existsSync(p));
    if (aws) {
      t = performance.now();
      const { stdout } = await promisify(execFile)(
        aws,
        ['--endpoint-url', s3.endpoint, 's3', 'ls', '--recursive', `s3://${BUCKET}/`],
        {
          env: {
            PATH: process.env.PATH,
            HOME: dir,
            AWS_ACCESS_KEY_ID: 'b',
            AWS_SECRET_ACCESS_KEY: 'b',
            AWS_DEFAULT_REGION: 'us-east-1',
            AWS_EC2_METADATA_DISABLED: 'true',
            AWS_CONFIG_FILE: path.join(dir, 'none'),
            AWS_SHARED_CREDENTIALS_FILE: path.join(dir, 'none'),
          },
          maxBuffer: 256 * 1024 * 1024,
        },
      );
      awsCli = { lines: stdout.trim().split('\n').length, ms: Math.round(performance.now() - t) };
    }
    const result: ListingResult = {
      objects: stored,
      put_ms: Math.round(putMs),
      put_cpu_ms_per_object: Math.round(((cpu.user + cpu.system) / 1000 / stored) * 1000) / 1000,
      list_v2: listV2,
      list_v1_delimiter: listV1,
      aws_cli: awsCli,
    };
    log(
      `  ${stored} objects PUT in-process in ${result.put_ms} ms (${result.put_cpu_ms_per_object} ms CPU each); ListObjectsV2 over HTTP: ${keys} keys in ${pages} pages, ${listV2.ms} ms, ${inOrder ? 'in order' : 'OUT OF ORDER'}; ` +
        `v1 with delimiter: ${prefixes} prefixes in ${v1Pages} pages, ${listV1.ms} ms; aws s3 ls --recursive: ${awsCli ? `${awsCli.lines} lines, ${awsCli.ms} ms` : 'no AWS CLI installed'}`,
    );
    if (keys !== stored || !inOrder || (awsCli && awsCli.lines !== stored))
      throw new Error('the embedded S3 listed a different set of keys than was stored');
    return result;
  } finally {
    overHttp.destroy();
    inProcess.destroy();
    await s3.close();
    await rm(dir, { recursive: true, force: true });
  }
}
