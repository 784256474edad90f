import { readFileSync, statSync } from 'node:fs';
import { ObjectStore } from './object-store.ts';
import { migrateS3rverLayout } from './s3rver-migration.ts';

/**
 * The embedded S3's objects read straight from its directory, without HTTP: for readers that scan thousands of
 * objects on every run (the local SQL engine), where one GET per object would take seconds. The listing is the
 * store's own (object-store.ts: each object a plain file holding exactly its bytes, written by rename), so this stays
 * true to its layout; test/local/store/stored-objects.test.ts checks it against objects PUT through S3.
 */
export interface StoredObjectFile {
  key: string;
  /** Changes whenever the object is rewritten (a rewrite renames a new file into place). */
  version: string;
  /** The file holding the object's bytes. */
  file: string;
}

/**
 * Every object of `bucket` under `prefix` whose key's last segment is `name`, when given. `directory` is the store's
 * root (`<LOCAL_DATA_DIR>/s3`); a directory still in s3rver's layout (the embedded S3 before this one) is moved into
 * the store's first, as the gateway does when it starts. An absent bucket lists nothing.
 */
export async function listStoredObjects(
  directory: string,
  bucket: string,
  prefix: string,
  name?: string,
): Promise<StoredObjectFile[]> {
  const store = new ObjectStore(directory);
  if ((await store.bucketCreated(bucket)) === null) return [];
  await migrateS3rverLayout(store);
  const listed = await store.list(
    bucket,
    { prefix, delimiter: '', after: '', maxKeys: Number.MAX_SAFE_INTEGER },
    false,
  );
  const out: StoredObjectFile[] = [];
  for (const { key, file } of listed) {
    if (name !== undefined && key.slice(key.lastIndexOf('/') + 1) !== name) continue;
    try {
      const s = statSync(file, { bigint: true });
      out.push({ key, version: `${s.ino}:${s.mtimeNs}:${s.size}`, file });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error; // deleted meanwhile
    }
  }
  return out;
}

/** One stored object's text, or null when it is gone. */
export function readStoredObject(object: StoredObjectFile): string | null {
  try {
    return readFileSync(object.file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}
