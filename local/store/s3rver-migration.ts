import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { readdir, readFile, rmdir, stat, unlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { IN_MEMORY_BODY_LIMIT, type ObjectInfo, type ObjectStore, STORED_HEADERS } from './object-store.ts';

/**
 * Data written by s3rver (the embedded S3 before this one) becomes readable once: each `<key>._S3rver_object` with
 * its `._S3rver_metadata.json` and `.md5` is moved into the store's layout under the same key, keeping its content
 * type, metadata, ETag and time; then `<root>/.layout.json` records that the directory is in the new layout. An
 * interrupted migration resumes at the next start (what was moved is gone from the old layout).
 */
const LAYOUT_FILE = '.layout.json';
const S3RVER_OBJECT = '._S3rver_object';

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

async function moveObject(store: ObjectStore, bucket: string, key: string, file: string): Promise<void> {
  const base = file.slice(0, -S3RVER_OBJECT.length);
  const metadataFile = `${base}._S3rver_metadata.json`;
  const md5File = `${file}.md5`;
  const s = await stat(file);
  const stored = JSON.parse(await readFile(metadataFile, 'utf8').catch(() => '{}')) as Record<string, string>;
  const small = s.size <= IN_MEMORY_BODY_LIMIT;
  const bytes = small ? await readFile(file) : null;
  let etag = (await readFile(md5File, 'utf8').catch(() => '')).trim().replace(/"/g, '');
  if (!/^[0-9a-f]{32}$/.test(etag)) {
    const hash = createHash('md5');
    if (bytes) hash.update(bytes);
    else for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
    etag = hash.digest('hex');
  }
  const headers = Object.fromEntries(STORED_HEADERS.filter((h) => stored[h]).map((h) => [h, stored[h]!]));
  const metadata = Object.fromEntries(
    Object.entries(stored)
      .filter(([k]) => k.startsWith('x-amz-meta-'))
      .map(([k, v]) => [k.slice(11), v]),
  );
  const info: ObjectInfo = {
    size: s.size,
    etag,
    modified: s.mtime.toISOString(),
    contentType: stored['content-type'] || 'binary/octet-stream',
    ...(Object.keys(headers).length ? { headers } : {}),
    ...(Object.keys(metadata).length ? { metadata } : {}),
  };
  await store.put(bucket, key, info, bytes ?? { file, size: s.size });
  for (const old of [file, metadataFile, md5File]) await unlink(old).catch(() => undefined);
}

/** Returns how many objects were moved (0 when the directory was already in this layout). */
export async function migrateS3rverLayout(store: ObjectStore): Promise<number> {
  const marker = path.join(store.root, LAYOUT_FILE);
  if (await exists(marker)) return 0;
  let moved = 0;
  const walk = async (bucket: string, dir: string, segments: string[]): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        await walk(bucket, file, [...segments, entry.name]);
        await rmdir(file).catch(() => undefined); // emptied by the move (or still holding objects: kept)
      } else if (entry.name.endsWith(S3RVER_OBJECT)) {
        await moveObject(store, bucket, [...segments, entry.name.slice(0, -S3RVER_OBJECT.length)].join('/'), file);
        moved += 1;
      }
    }
    // What s3rver kept beside objects (bucket configurations, metadata of objects already moved).
    for (const name of await readdir(dir))
      if (name.includes('._S3rver_')) await unlink(path.join(dir, name)).catch(() => undefined);
  };
  for (const entry of await readdir(store.root, { withFileTypes: true })) {
    if (entry.isDirectory() && !entry.name.startsWith('.'))
      await walk(entry.name, path.join(store.root, entry.name), []);
  }
  await writeFile(
    marker,
    `${JSON.stringify({ layout: 'webhook-gateway embedded S3, one file per object', version: 1, moved_from_s3rver: moved, at: new Date().toISOString() })}\n`,
  );
  return moved;
}
