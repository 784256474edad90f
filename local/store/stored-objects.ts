import { type Dirent, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { readDataFileSync } from '../../functions/shared/local-files.ts';
import { decodeSegment, encodeSegment, ObjectStore } from './object-store.ts';
import { migrateS3rverLayout } from './s3rver-migration.ts';

/**
 * The embedded S3's objects read straight from its directory, without HTTP: for readers that scan thousands of
 * objects on every run (the local SQL engine), where one GET per object would take seconds. It relies on the store's
 * layout (object-store.ts: each object a plain file holding exactly its bytes at its key's path, segments named with
 * encodeSegment, rewritten by rename; `.`-names are the store's own), and walks only what it needs in no particular
 * order, which costs a tenth of a full S3-ordered listing. test/local/store/stored-objects.test.ts checks it against
 * objects PUT through S3.
 */
export interface StoredObjectFile {
  key: string;
  /** Changes whenever the object is rewritten (a rewrite renames a new file into place). */
  version: string;
  /** The file holding the object's bytes. */
  file: string;
  /** Its mtime (epoch ms). */
  modified: number;
}

/** Folders and files a walk takes in one go before it lets other work run. */
const YIELD_EVERY = 250;

/**
 * Every object of `bucket` under `prefix` (a folder prefix ending in `/`, or '') whose key's last segment is `name`,
 * when given. With `depth` too, only the objects exactly that many folders below the prefix are wanted
 * (`conversation-history/` + YYYY/MM/DD/<id>/ is 4): the last folders are not read, their `name` file is looked up.
 * `directory` is the store's root (`<LOCAL_DATA_DIR>/s3`); a directory still in s3rver's layout (the embedded S3
 * before this one) is moved into the store's first, as the gateway does when it starts. An absent bucket or prefix
 * lists nothing.
 */
export async function listStoredObjects(
  directory: string,
  bucket: string,
  prefix: string,
  name?: string,
  depth?: number,
): Promise<StoredObjectFile[]> {
  const store = new ObjectStore(directory);
  if ((await store.bucketCreated(bucket)) === null) return [];
  await migrateS3rverLayout(store);
  const wanted = name === undefined ? null : encodeSegment(name);
  const out: StoredObjectFile[] = [];
  const add = (file: string, key: string) => {
    try {
      const s = statSync(file);
      if (s.isFile()) out.push({ key, version: `${s.ino}:${s.mtimeMs}:${s.size}`, file, modified: s.mtimeMs });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') throw error; // gone meanwhile, or not there
    }
  };
  // The walk is synchronous (a tenth of the cost of the same walk awaiting each call) but lets the process's other
  // work run every YIELD_EVERY entries: in the gateway, a console page listing 50,000 exports holds no request up.
  let sinceYield = 0;
  const step = async () => {
    if (++sinceYield < YIELD_EVERY) return;
    sinceYield = 0;
    await nextTurn();
  };
  const walk = async (dir: string, keyPrefix: string, level: number): Promise<void> => {
    await step();
    if (wanted !== null && depth !== undefined && level === depth) {
      add(path.join(dir, wanted), `${keyPrefix}${name}`);
      return;
    }
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR')
        return;
      throw error;
    }
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue; // the store's metadata, temporary and multipart files
      await step();
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        await walk(file, `${keyPrefix}${decodeSegment(entry.name)}/`, level + 1);
        continue;
      }
      if (entry.isFile() && (wanted === null || entry.name === wanted) && depth === undefined)
        add(file, `${keyPrefix}${decodeSegment(entry.name)}`);
    }
  };
  const folders = prefix.split('/').filter(Boolean);
  await walk(path.join(directory, bucket, ...folders.map(encodeSegment)), folders.map((f) => `${f}/`).join(''), 0);
  return out;
}

/** One stored object's text, or null when it is gone. */
export function readStoredObject(object: StoredObjectFile): string | null {
  // Capped, a regular file only: a FIFO or a link to /dev/zero in the bucket's folder is refused, naming it.
  return readDataFileSync(object.file)?.toString('utf8') ?? null;
}
