import { type Dirent, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * The embedded S3's objects read straight from its directory, without HTTP: for readers that scan thousands of
 * objects on every run (the local SQL engine), where one GET per object would take seconds. Kept beside the store
 * because it knows the store's file layout (s3rver: `<directory>/<bucket>/<key>._S3rver_object`); whoever changes the
 * store keeps this true, and test/local/store/stored-objects.test.ts checks it against objects PUT through S3.
 */
export interface StoredObject {
  key: string;
  /** Changes whenever the object is rewritten. */
  version: string;
  /** The file holding the object's bytes. */
  file: string;
}

const OBJECT_SUFFIX = '._S3rver_object';

/**
 * Every object of `bucket` under `prefix` (a folder prefix ending in `/`) whose key's last segment is `name`, when
 * given. `directory` is the store's root (`<LOCAL_DATA_DIR>/s3`). An absent bucket or prefix lists nothing.
 */
export function listStoredObjects(directory: string, bucket: string, prefix: string, name?: string): StoredObject[] {
  const root = path.join(directory, bucket);
  const out: StoredObject[] = [];
  const walk = (dir: string, keyPrefix: string) => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    for (const entry of entries) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        walk(file, `${keyPrefix}${entry.name}/`);
        continue;
      }
      if (!entry.name.endsWith(OBJECT_SUFFIX)) continue;
      const last = entry.name.slice(0, -OBJECT_SUFFIX.length);
      if (name !== undefined && last !== name) continue;
      try {
        const s = statSync(file, { bigint: true });
        out.push({ key: `${keyPrefix}${last}`, version: `${s.mtimeNs}:${s.size}`, file });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error; // deleted meanwhile
      }
    }
  };
  walk(path.join(root, ...prefix.split('/').filter(Boolean)), prefix);
  return out;
}

/** One stored object's text, or null when it is gone. */
export function readStoredObject(object: StoredObject): string | null {
  try {
    return readFileSync(object.file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
}
