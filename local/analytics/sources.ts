import path from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { EXPORT_PREFIX } from '../../functions/domain/export-formats.ts';
import { type ExportBucket, mapLimit, openExportBucket, readText, s3Client } from '../store/export-bucket.ts';
import { localExportBucket } from '../store/gateway-runtime.ts';
import { listDir } from '../store/json-files.ts';
import { listStoredObjects, readStoredObject, type StoredObjectFile } from '../store/stored-objects.ts';

/**
 * Where the local SQL engine finds the exported `analysis.json` documents: a listing with a version per object (so an
 * unchanged export is not read again) and the objects' text. Two adapters: the embedded store's directory (the
 * default: read from disk, no HTTP), and any S3 endpoint (AWS_ENDPOINT_URL_S3 pointing at another S3).
 */
export interface AnalysisObject {
  key: string;
  version: string;
  /** When it was last written (epoch ms), when the source says: a document that is not JSON is told as being written only
   * within moments of that (engine.ts). */
  modified?: number;
  /** The file holding it (the embedded store's), named to the operator when it is damaged. */
  file?: string;
}

export interface AnalysisSource {
  /** Where the exports are, for messages. */
  readonly location: string;
  /** Every analysis.json; with `fromDay` (`YYYY/MM/DD`), only those of that day folder and the later ones. */
  list(fromDay?: string | null): Promise<AnalysisObject[]>;
  /** The objects' texts, in the order asked; null for one that is gone. */
  read(objects: AnalysisObject[]): Promise<(string | null)[]>;
  close(): Promise<void>;
}

const ANALYSIS_FILE = 'analysis.json';

/** The embedded store's files under `<dataDir>/s3`. */
export function storeDirectorySource(dataDir: string, bucket: string): AnalysisSource {
  const directory = path.join(dataDir, 's3');
  let files = new Map<string, StoredObjectFile>();
  return {
    location: `s3://${bucket} (files under ${path.join(directory, bucket)})`,
    async list(fromDay) {
      // conversation-history/YYYY/MM/DD/<conversation_id>/analysis.json: four folders below the prefix; from a day,
      // only the day folders from it on are walked (one below them).
      const objects = fromDay
        ? (
            await Promise.all(
              (
                await dayFolders(path.join(directory, bucket, EXPORT_PREFIX))
              )
                .filter((day) => day >= fromDay)
                .map((day) => listStoredObjects(directory, bucket, `${EXPORT_PREFIX}/${day}/`, ANALYSIS_FILE, 1)),
            )
          ).flat()
        : await listStoredObjects(directory, bucket, `${EXPORT_PREFIX}/`, ANALYSIS_FILE, 4);
      files = new Map(objects.map((o) => [o.key, o]));
      return objects.map(({ key, version, modified, file }) => ({ key, version, modified, file }));
    },
    async read(objects) {
      return objects.map((o) => {
        const stored = files.get(o.key);
        return stored ? readStoredObject(stored) : null;
      });
    },
    async close() {},
  };
}

/** The `YYYY/MM/DD` day folders under `conversation-history/` of the embedded store's directory. */
async function dayFolders(root: string): Promise<string[]> {
  const below = async (dir: string, pattern: RegExp) => (await listDir(dir)).filter((n) => pattern.test(n));
  const days: string[] = [];
  for (const year of await below(root, /^\d{4}$/))
    for (const month of await below(path.join(root, year), /^\d{2}$/))
      for (const day of await below(path.join(root, year, month), /^\d{2}$/)) days.push(`${year}/${month}/${day}`);
  return days;
}

/**
 * Any S3 endpoint: one paged listing of conversation-history/, from `fromDay` on starting after the folders before it
 * (StartAfter `conversation-history/<fromDay>/`: the day folders sort by date); one GET per new or changed object.
 */
export function s3Source(bucket: ExportBucket): AnalysisSource {
  return {
    location: `s3://${bucket.bucket} at ${bucket.endpoint}`,
    async list(fromDay) {
      if (bucket.via === 'empty') return [];
      const objects: AnalysisObject[] = [];
      let token: string | undefined;
      do {
        const page = await bucket.client.send(
          new ListObjectsV2Command({
            Bucket: bucket.bucket,
            Prefix: `${EXPORT_PREFIX}/`,
            StartAfter: fromDay ? `${EXPORT_PREFIX}/${fromDay}/` : undefined,
            ContinuationToken: token,
          }),
        );
        for (const o of page.Contents ?? []) {
          if (o.Key?.endsWith(`/${ANALYSIS_FILE}`))
            objects.push({
              key: o.Key,
              version: `${o.ETag ?? ''}:${o.LastModified?.getTime() ?? ''}`,
              modified: o.LastModified?.getTime(),
            });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return objects;
    },
    read(objects) {
      return mapLimit(objects, 16, (o) => readText(bucket, o.key));
    },
    close: () => bucket.close(),
  };
}

/** The exports of a gateway running in this process: its embedded store's files, or the S3 endpoint it exports to. */
export function gatewayAnalysisSource(options: {
  dataDir: string;
  bucket: string;
  embedded: boolean;
  endpoint: string;
  env: NodeJS.ProcessEnv;
}): AnalysisSource {
  if (options.embedded) return storeDirectorySource(options.dataDir, options.bucket);
  const client = s3Client(options.endpoint, options.env);
  return s3Source({
    client,
    bucket: options.bucket,
    endpoint: options.endpoint,
    via: 'running',
    close: async () => client.destroy(),
  });
}

/**
 * The source for a command run on this machine: the embedded store's directory (the bucket of the running gateway
 * when CONVERSATION_EXPORT_S3_BUCKET is not set), unless AWS_ENDPOINT_URL_S3 names
 * another S3, which is then read through the S3 protocol.
 */
export async function openAnalysisSource(
  dataDir: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<AnalysisSource> {
  if (!env.AWS_ENDPOINT_URL_S3) return storeDirectorySource(dataDir, await localExportBucket(dataDir, env));
  return s3Source(await openExportBucket(dataDir, env.AWS_ENDPOINT_URL_S3, env));
}
