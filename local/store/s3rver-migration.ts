import { createHash } from 'node:crypto';
import { type FileHandle, lstat, open, readdir, rmdir, stat, unlink } from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import {
  createExclusive,
  keepTouched,
  lockText,
  notRegularFile,
  oneAtATime,
  openFlags,
  readDataFile,
  readDataText,
  removeStaleLock,
  UnreadableFileError,
  writeFileAtomic,
} from '../../functions/shared/local-files.ts';
import { stampedWriter, writerStamp, writerState } from '../../functions/shared/writers.ts';
import { IN_MEMORY_BODY_LIMIT, type ObjectInfo, type ObjectStore, STORED_HEADERS } from './object-store.ts';

/**
 * Data written by s3rver (the embedded S3 before this one) becomes readable once: each `<key>._S3rver_object` with
 * its `._S3rver_metadata.json` and `.md5` is moved into the store's layout under the same key, keeping its content
 * type, metadata, ETag and time; then `<root>/.layout.json` records that the directory is in the new layout. An
 * interrupted migration resumes at the next start (what was moved is gone from the old layout).
 *
 * Two processes may find the old layout at once (`npm start` and a command reading the bucket, stored-objects.ts):
 * each read an object the other had just moved, and either failed on it (its start or command ended with ENOENT) or
 * moved it again without its metadata (its type and metadata lost). One migrates at a time, under
 * `<root>/.layout.json.lock` (its process id and host; one left by a process that is gone is taken over at once, one
 * of another pid namespace, or naming a live pid of this one (reused), once its holder stopped touching it for
 * STALE_MS: functions/shared/writers.ts), and each
 * looks for `.layout.json` again once it holds it: the others find the migration done.
 */
const LAYOUT_FILE = '.layout.json';
const WAIT_MS = 20;
/** The migrating process touches its lock this often; one of another pid namespace untouched for STALE_MS is gone. */
const FRESH_MS = 10_000;
const STALE_MS = 30_000;
const S3RVER_OBJECT = '._S3rver_object';

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

/**
 * A file of the old layout that is no regular file s3rver wrote (a FIFO, a link to a device: put there by hand), said
 * at the start: nothing is read from it (read, a FIFO waited for a writer for good, a link to /dev/zero filled memory),
 * and the migration goes on with the rest (docs/operations.md, "After a crash").
 */
function skipped(error: UnreadableFileError, what: string): void {
  console.warn(`webhook-gateway: ${error.message}: not read by the move of the s3rver layout; ${what}`);
}

/**
 * A large object of the old layout (beyond what is read whole), opened once as the data folder's one reader opens
 * (readDataFile, functions/shared/local-files.ts: no link followed, no FIFO waited on) and kept open when its fstat
 * finds a regular file: its MD5 and the moved copy are read from that handle. Null when it is gone. Before, the file
 * found a regular one by lstat was opened again by its path to be hashed, and again to be copied: swapped meanwhile for
 * a FIFO, the start waited for a writer for good; for a link, its target was moved in.
 */
async function openObject(file: string): Promise<{ handle: FileHandle; size: number; mtime: Date } | null> {
  let handle: FileHandle;
  try {
    handle = await open(file, openFlags());
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return null;
    if (code === 'ELOOP')
      throw new UnreadableFileError(file, 'it is a symbolic link, which the gateway never makes', 'a regular file');
    throw error;
  }
  try {
    const s = await handle.stat();
    if (!s.isFile()) throw new UnreadableFileError(file, notRegularFile(s).split(', not a')[0]!, 'a regular file');
    return { handle, size: s.size, mtime: s.mtime };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

/** A metadata or md5 file s3rver kept beside an object, or null when there is none or it is no regular file. */
async function besideText(file: string, key: string): Promise<string | null> {
  return readDataText(file, { maxBytes: 1024 * 1024 }).catch((error: unknown) => {
    if (!(error instanceof UnreadableFileError)) return null; // unreadable: the object is moved without it, as before
    skipped(error, `the object ${key} was moved without it (no content type, no metadata)`);
    return null;
  });
}

async function moveObject(
  store: ObjectStore,
  bucket: string,
  key: string,
  file: string,
  left: Set<string>,
): Promise<boolean> {
  const base = file.slice(0, -S3RVER_OBJECT.length);
  const metadataFile = `${base}._S3rver_metadata.json`;
  const md5File = `${file}.md5`;
  const s = await lstat(file).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null; // moved meanwhile (an earlier version's migration running beside)
    throw error;
  });
  if (s === null) return false;
  let bytes: Buffer | null = null;
  // A large object: opened once, hashed and moved from that handle (openObject).
  let opened: { handle: FileHandle; size: number; mtime: Date } | null = null;
  try {
    // Not a regular file (lstat: a link is not followed): refused by the one reader, unread, left where it is.
    if (!s.isFile() || s.size <= IN_MEMORY_BODY_LIMIT)
      bytes = await readDataFile(file, { maxBytes: IN_MEMORY_BODY_LIMIT });
    else opened = await openObject(file);
  } catch (error) {
    if (!(error instanceof UnreadableFileError)) throw error;
    skipped(error, 'left where it is, no object moved from it: remove it');
    for (const old of [file, metadataFile, md5File]) left.add(old);
    return false;
  }
  if (bytes === null && opened === null) return false; // moved meanwhile
  try {
    const stored = JSON.parse((await besideText(metadataFile, key)) ?? '{}') as Record<string, string>;
    let etag = ((await besideText(md5File, key)) ?? '').trim().replace(/"/g, '');
    const size = opened ? opened.size : s.size;
    // The bytes of the object as opened, no further than the size its handle had (it may grow meanwhile).
    const bytesOf = (handle: FileHandle) =>
      size > 0 ? handle.createReadStream({ start: 0, end: size - 1, autoClose: false }) : Readable.from([]);
    if (!/^[0-9a-f]{32}$/.test(etag)) {
      const hash = createHash('md5');
      if (bytes) hash.update(bytes);
      else for await (const chunk of bytesOf(opened!.handle)) hash.update(chunk as Buffer);
      etag = hash.digest('hex');
    }
    const headers = Object.fromEntries(STORED_HEADERS.filter((h) => stored[h]).map((h) => [h, stored[h]!]));
    const metadata = Object.fromEntries(
      Object.entries(stored)
        .filter(([k]) => k.startsWith('x-amz-meta-'))
        .map(([k, v]) => [k.slice(11), v]),
    );
    const info: ObjectInfo = {
      size,
      etag,
      modified: (opened ? opened.mtime : s.mtime).toISOString(),
      contentType: stored['content-type'] || 'binary/octet-stream',
      ...(Object.keys(headers).length ? { headers } : {}),
      ...(Object.keys(metadata).length ? { metadata } : {}),
    };
    await store.put(bucket, key, info, bytes ?? bytesOf(opened!.handle));
  } finally {
    await opened?.handle.close();
  }
  for (const old of [file, metadataFile, md5File]) await unlink(old).catch(() => undefined);
  return true;
}

/** Returns how many objects were moved (0 when the directory was already in this layout). */
export async function migrateS3rverLayout(store: ObjectStore): Promise<number> {
  const marker = path.join(store.root, LAYOUT_FILE);
  if (await exists(marker)) return 0;
  // One at a time in this process (the gateway's embedded S3 and its console's listings), then across processes.
  return oneAtATime(marker, async () => {
    const lock = `${marker}.lock`;
    const mine = writerStamp();
    for (;;) {
      if (await exists(marker)) return 0;
      if (await createExclusive(lock, mine, 0o600)) break;
      // One that is no lock the gateway made (a FIFO, a device link) stops the start, naming it (lockText).
      const [text, written] = await Promise.all([lockText(lock), stat(lock).catch(() => null)]);
      if (text === null || written === null) continue; // released meanwhile
      const holder = stampedWriter(text);
      const age = { ms: Date.now() - written.mtimeMs, staleMs: STALE_MS };
      const judged = holder && holder.pid > 0 ? writerState(holder, age) : 'gone';
      // A migrating holder touches its lock every FRESH_MS: one of this namespace untouched for STALE_MS whose pid is
      // alive is another process that got a killed migrator's pid (a restart reuses pids). Before, it was waited on
      // for good: every command reading the bucket, and the start, hung.
      const state = judged === 'alive' && age.ms > STALE_MS ? 'stale' : judged;
      // Held by a live process: it is migrating (for as long as that takes; in another pid namespace, while it
      // touches its lock). Gone, no pid, or this process's id (a process before it that had it): taken over at once.
      if (state === 'alive' || state === 'fresh') {
        await new Promise((resolve) => setTimeout(resolve, WAIT_MS));
        continue;
      }
      const taken = await removeStaleLock(lock, text, state === 'stale' ? STALE_MS : undefined);
      if (!taken) await new Promise((resolve) => setTimeout(resolve, WAIT_MS));
    }
    const fresh = keepTouched(lock, mine, FRESH_MS);
    try {
      return (await exists(marker)) ? 0 : await migrate(store, marker);
    } finally {
      await fresh.stop();
      if ((await lockText(lock).catch(() => null)) === mine) await unlink(lock).catch(() => undefined);
    }
  });
}

async function migrate(store: ObjectStore, marker: string): Promise<number> {
  let moved = 0;
  /** The files of objects not moved (no regular file: moveObject), kept where they are for their operator to see. */
  const left = new Set<string>();
  const walk = async (bucket: string, dir: string, segments: string[]): Promise<void> => {
    for (const entry of await readdir(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) {
        await walk(bucket, file, [...segments, entry.name]);
        await rmdir(file).catch(() => undefined); // emptied by the move (or still holding objects: kept)
      } else if (entry.name.endsWith(S3RVER_OBJECT)) {
        const key = [...segments, entry.name.slice(0, -S3RVER_OBJECT.length)].join('/');
        if (await moveObject(store, bucket, key, file, left)) moved += 1;
      }
    }
    // What s3rver kept beside objects (bucket configurations, metadata of objects already moved).
    for (const name of await readdir(dir))
      if (name.includes('._S3rver_') && !left.has(path.join(dir, name)))
        await unlink(path.join(dir, name)).catch(() => undefined);
  };
  for (const entry of await readdir(store.root, { withFileTypes: true })) {
    if (entry.isDirectory() && !entry.name.startsWith('.'))
      await walk(entry.name, path.join(store.root, entry.name), []);
  }
  await writeFileAtomic(
    marker,
    `${JSON.stringify({ layout: 'webhook-gateway embedded S3, one file per object', version: 1, moved_from_s3rver: moved, at: new Date().toISOString() })}\n`,
  );
  return moved;
}
