import { createHash, type Hash, randomBytes } from 'node:crypto';
import fs, { type BigIntStats } from 'node:fs';
import {
  type FileHandle,
  lstat,
  mkdir,
  open,
  readdir,
  realpath,
  rename,
  rm,
  rmdir,
  stat,
  unlink,
  writeFile,
} from 'node:fs/promises';
import path from 'node:path';
import { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { OWNER_DIR, OWNER_FILE, openFlags, readDataText } from '../../functions/shared/local-files.ts';
import { processTempName, stampedWriter, writerState } from '../../functions/shared/writers.ts';
import {
  describeListed,
  type FolderTimes,
  type ListedInfo,
  type PlaceResult,
  placeObjectFiles,
  putObjectFiles,
} from './file-writer.ts';
import {
  compareKeys,
  decodeSegment,
  type FolderEntry,
  FolderIndex,
  lowerBound,
  pastPrefix,
  stillAt,
} from './folder-index.ts';
import { mapConcurrently } from './json-files.ts';
import type { ChecksumAlgorithm } from './s3-checksums.ts';
import { invalidArgument, noSuchBucket, noSuchKey, noSuchUpload, S3Error } from './s3-errors.ts';
import type { Tags } from './s3-tagging.ts';
import { UploadIndex, type UploadPageOptions } from './upload-index.ts';

/**
 * The embedded S3's objects as plain files under one directory (LOCAL_DATA_DIR/s3):
 *
 *   <root>/<bucket>/                         a bucket
 *   <root>/<bucket>/<a>/<b>/<c>              the object with key `a/b/c`: exactly its bytes
 *   <root>/<bucket>/<a>/<b>/.<c>.meta.json   what S3 keeps beside them: size, ETag, time, content type, metadata,
 *                                            checksum (and the inode of the bytes it describes)
 *   <root>/.multipart/<upload id>/           a multipart upload in progress: upload.json, then <n> and .<n>.meta.json
 *   <root>/.tmp/                             files being written; each is renamed into place when complete
 *   <root>/.layout.json                      this layout's version (an s3rver directory is migrated once)
 *
 * A key's segments between slashes are directories and, for the last one, the file; each is named as written,
 * except `%`, control characters, `\ : * ? " < > |`, a leading `.` and a trailing `.` or space, written `%XX`, and
 * an empty segment, written `%`. So `.`-names are never objects, and a key cannot be both an object and the folder
 * of other keys (`a` and `a/b`): S3 allows that, this store refuses the second write with 409 KeyConflict.
 *
 * A write replaces the metadata, then the bytes, each with a rename, one writer per key at a time: a reader never
 * sees half of either. Each metadata file names the inode of its bytes; should a crash fall between the two renames,
 * readers see that they do not match and describe the bytes from the file itself. Nothing is cached between calls
 * beyond which directories exist and, for listings, the key order of folders of 1,000 entries or more (folder-index.ts:
 * told of this store's changes, and checked against the folder's time, or its census where the time cannot tell, for
 * anyone else's, so a file put there by hand is listed); all of it in memory, read again from the files after a restart. Another process may read the same
 * directory.
 *
 * Nothing outside the root is ever served, listed, written or deleted: a symbolic link under it (to /etc/passwd, to
 * another folder) is no object and no folder of keys. Reads open the bytes without following a link and check that
 * the key's folder is where its path says (no link on the way); writes and deletes through such a folder are refused
 * with 403 AccessDenied; listings walk real folders only. The root itself may be a link (a data folder on another disk).
 */
export { decodeSegment };

const MULTIPART_DIR = '.multipart';
const TEMP_DIR = '.tmp';
/** How long a temporary file of a live writer (or of another pid namespace's) is kept: none is written that long. */
const TEMP_KEPT_MS = 3_600_000;
/** Bodies up to this size are kept in memory on their way to the file; beyond, received into a temporary file. */
export const IN_MEMORY_BODY_LIMIT = 16 * 1024 * 1024;
/** Objects up to this size are read whole by a GET. */
const READ_WHOLE = 256 * 1024;
/** File name bytes most file systems allow. */
const NAME_MAX = 255;
const MIN_PART_SIZE = 5 * 1024 * 1024;
const DEFAULT_CONTENT_TYPE = 'binary/octet-stream';
/** The standard headers S3 keeps with an object and returns on GET/HEAD (ObjectInfo.headers). */
export const STORED_HEADERS = [
  'cache-control',
  'content-disposition',
  'content-encoding',
  'content-language',
  'expires',
];

export interface ObjectInfo {
  size: number;
  /** Hex MD5 of the bytes, or S3's `<hex>-<parts>` after a multipart upload; without the quotes. */
  etag: string;
  /** ISO 8601, milliseconds. */
  modified: string;
  contentType: string;
  /** Cache-Control, Content-Disposition, Content-Encoding, Content-Language, Expires (lower-case names). */
  headers?: Record<string, string>;
  /** User metadata (x-amz-meta-<name>), names lower-case without the prefix. */
  metadata?: Record<string, string>;
  checksum?: { algorithm: ChecksumAlgorithm; value: string };
  /** After a multipart upload: how many parts. */
  parts?: number;
  /** And each one's size, in order (what GetObject's partNumber reads); absent in objects completed before. */
  partSizes?: number[];
  /** Object tags (s3-tagging.ts), given at upload or by PutObjectTagging; kept by a copy unless replaced. */
  tags?: Tags;
}

/** What describes an object apart from its bytes (given at upload, kept by a copy unless replaced). */
export type ObjectAttributes = Pick<ObjectInfo, 'contentType' | 'headers' | 'metadata' | 'tags'>;

/** A received body: in memory, or in a temporary file of the store (consumed by the write). */
export type Body = Buffer | { file: string; size: number };

export interface StoredObject {
  info: ObjectInfo;
  /** The bytes `start..end` (inclusive), or all: from memory when small, else streamed from the open file. */
  body(start?: number, end?: number): Buffer | Readable;
  /** Call when the body is not read (304, errors); a head-only read has closed its file already. */
  close(): Promise<void>;
}

export interface ListOptions {
  prefix: string;
  delimiter: string;
  /** Only keys (and common prefixes) after this one: StartAfter, a continuation token's key, or a v1 marker. */
  after: string;
  maxKeys: number;
}

export interface ListPage {
  objects: { key: string; info: ListedInfo }[];
  prefixes: string[];
  truncated: boolean;
  /** The last key or common prefix of the page: where the next page starts. */
  last?: string;
}

export interface UploadInfo {
  bucket: string;
  key: string;
  initiated: string;
  attributes: ObjectAttributes;
  checksumAlgorithm?: ChecksumAlgorithm;
}

/** An upload in progress as ListMultipartUploads lists it. */
export type ListedUpload = UploadInfo & { id: string };

export interface PartInfo {
  partNumber: number;
  size: number;
  etag: string;
  modified: string;
  checksum?: { algorithm: ChecksumAlgorithm; value: string };
}

/** Checked under the key's write lock against what is stored now (If-Match, If-None-Match). */
export type WriteCondition = (current: ObjectInfo | null) => void;

// biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what file names must not hold raw
const UNSAFE_IN_NAMES = /[%\\:*?"<>|\u0000-\u001f\u007f]/g;
const hex2 = (c: string) => `%${c.charCodeAt(0).toString(16).toUpperCase().padStart(2, '0')}`;

export function encodeSegment(segment: string): string {
  if (segment === '') return '%';
  let name = segment.replace(UNSAFE_IN_NAMES, hex2);
  if (name.startsWith('.')) name = `%2E${name.slice(1)}`;
  if (name.endsWith('.') || name.endsWith(' ')) name = name.slice(0, -1) + hex2(name.at(-1)!);
  return name;
}

const errorCode = (error: unknown) => (error as NodeJS.ErrnoException).code ?? '';
const isMissing = (error: unknown) => ['ENOENT', 'ENOTDIR'].includes(errorCode(error));
const metaName = (name: string) => `.${name}.meta.json`;

const keyConflict = (key: string) =>
  new S3Error(
    'KeyConflict',
    409,
    `The embedded S3 keeps keys as file paths: "${key}" cannot be stored beside a key that is its folder or lies in it ("a" and "a/b"). S3 allows both; this local store does not.`,
    { Key: key },
  );

/** A write or delete whose key's folder is a symbolic link under the store (it would reach outside). */
const throughLink = (key: string) =>
  new S3Error(
    'AccessDenied',
    403,
    `The embedded S3 keeps objects under its data folder only: the folder of "${key}" is (or passes through) a symbolic link`,
    { Key: key },
  );

interface Location {
  dir: string;
  data: string;
  meta: string;
}

type Source = Buffer | (Readable | { file: string; start: number; end: number })[];

/** The body of an object read for its info alone (`get(…, headOnly)`): its file is closed already. */
const headOnlyBody = (): never => {
  throw new Error('an object read for its info alone (headOnly) has no body');
};
/** An object's metadata file: small, a regular file only (a FIFO or a link to /dev/zero is none: local-files.ts). */
const META_READ = { maxBytes: 1024 * 1024 };
const readMeta = (file: string) => readDataText(file, META_READ).catch(() => null);

export class ObjectStore {
  private readonly knownDirs = new Set<string>();
  private readonly knownBuckets = new Set<string>();
  private readonly uploadHeads = new UploadIndex<ListedUpload>();
  /**
   * The upload folders' list (folder-index.ts) the heads were last made true to, and the uploads then unreadable (being
   * begun by another process): a listing reads the folder's names again only when that list was read again.
   */
  private uploadsSeen: FolderEntry[] | null = null;
  private readonly uploadsUnread = new Set<string>();
  private readonly writing = new Map<string, Promise<unknown>>();

  /**
   * `folders`: each folder's entries in key order for listings, those of large folders kept between them
   * (folder-index.ts); told of every change made here.
   */
  constructor(
    readonly root: string,
    private readonly folders = new FolderIndex(),
  ) {}

  /**
   * Create the directories; drop temporary files an interrupted process left behind: at once when the process that
   * wrote one (its name begins with `<pid>@<host>`) is gone, else once older than an hour; one of another pid
   * namespace (a container sharing the data folder, or this one before its restart) by that age alone
   * (functions/shared/writers.ts). Before, a gateway restarted after kill -9 kept its predecessor's half-written
   * objects (copies of exports) until a start an hour later.
   */
  async open(): Promise<void> {
    await mkdir(path.join(this.root, TEMP_DIR), { recursive: true, mode: OWNER_DIR });
    for (const name of await readdir(path.join(this.root, TEMP_DIR))) {
      const file = path.join(this.root, TEMP_DIR, name);
      const s = await stat(file).catch(() => null);
      if (!s) continue;
      const writer = stampedWriter(name);
      const age = { ms: Date.now() - s.mtimeMs, staleMs: TEMP_KEPT_MS };
      const state = writer && writer.pid > 0 ? writerState(writer, age) : 'fresh';
      if (state === 'gone' || age.ms > TEMP_KEPT_MS) await rm(file, { force: true });
    }
  }

  /** The root as the system names it (links resolved), once. */
  private realRoot: Promise<string> | null = null;

  private resolvedRoot(): Promise<string> {
    this.realRoot ??= realpath(this.root);
    return this.realRoot;
  }

  /**
   * Whether a folder under the root is reached without a symbolic link: the real path of it, or of its nearest
   * ancestor that exists, is the root's followed by its own path (so a folder a write is about to make is checked
   * before anything is made through a link).
   */
  private async confined(dir: string): Promise<boolean> {
    for (let at = dir; ; at = path.dirname(at)) {
      const relative = path.relative(this.root, at);
      if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative)) return true;
      const real = await realpath(at).catch((error: unknown) => {
        if (isMissing(error)) return null;
        throw error;
      });
      if (real !== null) return real === path.join(await this.resolvedRoot(), relative);
    }
  }

  tempPath(): string {
    return path.join(this.root, TEMP_DIR, processTempName());
  }

  // Buckets

  private bucketDir(bucket: string): string {
    return path.join(this.root, bucket);
  }

  async bucketCreated(bucket: string): Promise<Date | null> {
    const s = await lstat(this.bucketDir(bucket)).catch(() => null); // a link is no bucket (it leads out of the root)
    if (!s?.isDirectory()) {
      this.knownBuckets.delete(bucket);
      return null;
    }
    this.knownBuckets.add(bucket);
    return s.birthtime.getTime() > 0 ? s.birthtime : s.mtime;
  }

  async assertBucket(bucket: string): Promise<void> {
    if (this.knownBuckets.has(bucket)) return;
    if (!(await this.bucketCreated(bucket))) throw noSuchBucket(bucket);
  }

  /** false when it already existed. */
  async createBucket(bucket: string): Promise<boolean> {
    try {
      await mkdir(this.bucketDir(bucket), OWNER_DIR);
      this.knownBuckets.add(bucket);
      return true;
    } catch (error) {
      if (errorCode(error) === 'EEXIST') return false;
      throw error;
    }
  }

  async listBuckets(): Promise<{ name: string; created: Date }[]> {
    const out: { name: string; created: Date }[] = [];
    for (const entry of await readdir(this.root, { withFileTypes: true })) {
      if (!entry.isDirectory() || entry.name.startsWith('.')) continue;
      const created = await this.bucketCreated(entry.name);
      if (created) out.push({ name: entry.name, created });
    }
    return out.sort((a, b) => compareKeys(a.name, b.name));
  }

  async deleteBucket(bucket: string): Promise<void> {
    await this.assertBucket(bucket);
    if (await this.holdsObjects(this.bucketDir(bucket))) {
      throw new S3Error('BucketNotEmpty', 409, 'The bucket you tried to delete is not empty', { BucketName: bucket });
    }
    for (const upload of await this.listUploads(bucket)) await this.removeUpload(upload.id);
    this.knownBuckets.delete(bucket);
    this.folders.forget(this.bucketDir(bucket));
    for (const dir of this.knownDirs) if (dir.startsWith(this.bucketDir(bucket) + path.sep)) this.knownDirs.delete(dir);
    await rm(this.bucketDir(bucket), { recursive: true, force: true });
  }

  // Objects

  private locate(bucket: string, key: string): Location {
    const names = key.split('/').map(encodeSegment);
    for (const name of names) {
      if (Buffer.byteLength(metaName(name)) > NAME_MAX) {
        throw new S3Error(
          'KeyTooLongError',
          400,
          `Your key is too long: the embedded S3 keeps each part of a key between slashes as a file name of at most ${NAME_MAX - 11} bytes`,
        );
      }
    }
    return locationOf(path.join(this.bucketDir(bucket), ...names));
  }

  /** The file holding a key's bytes (whether or not it exists). */
  dataFile(bucket: string, key: string): string {
    return this.locate(bucket, key).data;
  }

  /**
   * Store an object; `condition` is checked against the current one first, under the key's write lock. A body in a
   * file is removed after; one given as a stream (read from a handle its caller opened: s3rver-migration.ts) is read
   * to its end.
   */
  async put(
    bucket: string,
    key: string,
    info: ObjectInfo,
    body: Body | Readable,
    condition?: WriteCondition,
  ): Promise<ObjectInfo> {
    await this.assertBucket(bucket);
    const at = this.locate(bucket, key);
    try {
      await this.exclusive(at.data, async () => {
        if (condition) condition(await this.infoOf(at));
        const source =
          Buffer.isBuffer(body) || body instanceof Readable ? body : { file: body.file, start: 0, end: body.size - 1 };
        await this.write(at, info, Buffer.isBuffer(source) ? source : [source], key, bucket);
      });
    } finally {
      if (!Buffer.isBuffer(body) && !(body instanceof Readable)) await rm(body.file, { force: true });
    }
    return info;
  }

  /** The object, or null when there is none. `headOnly`: its info alone, no file kept open, no body to read. */
  async get(bucket: string, key: string, headOnly = false): Promise<StoredObject | null> {
    return this.read(this.locate(bucket, key), headOnly);
  }

  /** Delete an object; `condition` (a conditional delete's If-Match) is checked first, under the key's write lock. */
  async delete(bucket: string, key: string, condition?: WriteCondition): Promise<void> {
    const at = this.locate(bucket, key);
    if (!(await this.confined(at.dir))) throw throughLink(key);
    await this.exclusive(at.data, async () => {
      if (condition) condition(await this.infoOf(at));
      try {
        await unlink(at.data);
        this.folders.removed(at.dir, path.basename(at.data));
      } catch (error) {
        const code = errorCode(error);
        const folder = code === 'EISDIR' || (code === 'EPERM' && (await stat(at.data)).isDirectory());
        if (code === 'ENOTDIR' || folder) return; // under an object, or a folder of other keys: no such object
        if (code !== 'ENOENT') throw error;
      }
      await rm(at.meta, { force: true }); // with the bytes gone (or never there), their metadata goes too
    });
    await this.pruneEmptyDirs(at.dir, this.bucketDir(bucket));
  }

  /**
   * Replace an object's tags (none: `undefined`), its bytes and the rest of its metadata unchanged: the metadata file
   * is written beside and renamed over the old one, under the key's write lock. 404 NoSuchKey when there is none.
   */
  async setTags(bucket: string, key: string, tags: Tags | undefined): Promise<ObjectInfo> {
    await this.assertBucket(bucket);
    const at = this.locate(bucket, key);
    if (!(await this.confined(at.dir))) throw noSuchKey(key);
    return this.exclusive(at.data, async () => {
      const s = await lstat(at.data, { bigint: true }).catch(() => null);
      const current = s?.isFile() ? await this.infoOf(at) : null;
      if (!s || !current) throw noSuchKey(key);
      const { tags: _, ...info } = current;
      const tagged: ObjectInfo = tags ? { ...info, tags } : info;
      const temp = `${this.tempPath()}.meta`;
      try {
        await files.writeFile(temp, JSON.stringify({ ...tagged, ino: String(s.ino) }), { mode: OWNER_FILE });
        await rename(temp, at.meta);
      } catch (error) {
        await rm(temp, { force: true });
        throw error;
      }
      return tagged;
    });
  }

  /**
   * A copy of an object opened with get(): its bytes with its own time and the given attributes (the source's, or
   * those that replace them: none of the source's kept); `condition` is checked against the object it replaces first,
   * under the key's write lock.
   */
  async copy(
    source: StoredObject,
    bucket: string,
    key: string,
    attributes: ObjectAttributes,
    condition?: WriteCondition,
  ): Promise<ObjectInfo> {
    await this.assertBucket(bucket);
    const at = this.locate(bucket, key);
    const { size, etag, checksum, parts } = source.info;
    const info: ObjectInfo = {
      size,
      etag,
      ...(checksum ? { checksum } : {}),
      ...attributes,
      modified: new Date().toISOString(),
    };
    return this.exclusive(at.data, async () => {
      if (condition) condition(await this.infoOf(at));
      const body = source.body();
      // The copy is one object, not a multipart one, as S3 makes it: of a multipart source, its ETag is the bytes' MD5.
      const md5 = parts ? createHash('md5') : undefined;
      try {
        return await this.write(at, info, Buffer.isBuffer(body) ? body : [body], key, bucket, md5);
      } finally {
        // Read to its end it is closed already; a write that failed before reading it (its temporary file refused)
        // left the source's file open until garbage collection.
        if (!Buffer.isBuffer(body)) body.destroy();
      }
    });
  }

  /**
   * One page of keys in S3's order, with common prefixes rolled up: the walk enters only the directories that can
   * hold the page, so a page costs what it returns. `withInfo: false` leaves out the metadata (file paths only).
   */
  async list(bucket: string, options: ListOptions): Promise<ListPage>;
  async list(bucket: string, options: ListOptions, withInfo: false): Promise<{ key: string; file: string }[]>;
  async list(
    bucket: string,
    options: ListOptions,
    withInfo = true,
  ): Promise<ListPage | { key: string; file: string }[]> {
    const { prefix, delimiter, after, maxKeys } = options;
    const found: ({ key: string; file: string } | { prefix: string })[] = [];
    let truncated = false;
    let lastPrefix: string | null = null;
    /** Add an item; true when the page was already full (the listing is truncated and stops). */
    const add = (item: { key: string; file: string } | { prefix: string }) => {
      if (found.length >= maxKeys) {
        truncated = true;
        return true;
      }
      found.push(item);
      return false;
    };
    /** The common prefix a key or folder lists as (it holds the delimiter after the prefix), else null. */
    const commonOf = (keyOrFolder: string): string | null => {
      const at = delimiter ? keyOrFolder.indexOf(delimiter, prefix.length) : -1;
      return at < 0 ? null : keyOrFolder.slice(0, at + delimiter.length);
    };
    /** Whether a common prefix is still to list on this page (not the last one listed, and after the start). */
    const unlisted = (common: string) => common !== lastPrefix && !(after && compareKeys(common, after) <= 0);
    /** The first key this listing can return (the prefix, or the key it starts after). */
    const from = compareKeys(after, prefix) >= 0 ? after : prefix;
    const visit = async (dir: string, base: string): Promise<boolean> => {
      const entries = await this.folders.entries(dir);
      // Straight to the first entry that can hold a key of the page (a folder whose keys include it sorts before it).
      let i = 0;
      if (from.startsWith(base)) {
        const start = from.slice(base.length);
        i = lowerBound(entries, start);
        if (i > 0 && entries[i - 1]!.dir && start.startsWith(entries[i - 1]!.order)) i -= 1;
      } else if (compareKeys(from, base) > 0) return false;
      for (; i < entries.length; i++) {
        const entry = entries[i]!;
        const name = base + entry.order; // a folder's ends with `/`
        if (entry.dir) {
          if (!name.startsWith(prefix) && !prefix.startsWith(name)) {
            if (compareKeys(name, prefix) > 0) return true;
            continue;
          }
          if (after && compareKeys(name, after) < 0 && !after.startsWith(name)) continue;
          const common = name.startsWith(prefix) ? commonOf(name) : null;
          if (common !== null) {
            // Every key below rolls up into the same common prefix: listed once, if the folder holds an object.
            if (unlisted(common)) {
              const holds = await this.holdsObjects(path.join(dir, entry.name));
              i = stillAt(entries, i, entry); // a kept folder's list may have changed meanwhile
              if (!holds) continue;
              if (add({ prefix: common })) return true;
              lastPrefix = common;
            }
            i = skipRolledUp(entries, i, common, base);
            continue;
          }
          if (await visit(path.join(dir, entry.name), name)) return true;
          i = stillAt(entries, i, entry);
        } else {
          if (!name.startsWith(prefix)) {
            if (compareKeys(name, prefix) > 0) return true;
            continue;
          }
          if (after && compareKeys(name, after) <= 0) continue;
          const common = commonOf(name);
          if (common === null) {
            if (add({ key: name, file: path.join(dir, entry.name) })) return true;
            continue;
          }
          if (unlisted(common)) {
            if (add({ prefix: common })) return true;
            lastPrefix = common;
          }
          i = skipRolledUp(entries, i, common, base);
        }
      }
      return false;
    };

    await this.assertBucket(bucket);
    if (maxKeys > 0) {
      const known = prefix.slice(0, prefix.lastIndexOf('/') + 1);
      const start = known
        ? path.join(this.bucketDir(bucket), ...known.slice(0, -1).split('/').map(encodeSegment))
        : this.bucketDir(bucket);
      // The walk enters real folders only; the prefix's folder must be one too (not a link out of the root).
      if (await this.confined(start)) await visit(start, known);
    }
    if (!withInfo) return found.filter((f) => 'key' in f);

    const objects = found.flatMap((item) => ('key' in item ? [locationOf(item.file)] : []));
    const infos: (ListedInfo | 'bytes' | null)[] = await describeListed(objects);
    // Bytes without metadata that names them (written by hand, or a crash between two renames): described here.
    const unnamed = infos.flatMap((info, i) => (info === 'bytes' ? [i] : []));
    await mapConcurrently(unnamed, 32, async (i) => {
      infos[i] = await this.infoOf(objects[i]!);
    });
    const page: ListPage = { objects: [], prefixes: [], truncated };
    let object = 0;
    for (const item of found) {
      if ('prefix' in item) page.prefixes.push(item.prefix);
      else {
        const info = infos[object++];
        if (info && info !== 'bytes') page.objects.push({ key: item.key, info }); // null: deleted meanwhile
      }
    }
    const lastItem = found.at(-1);
    if (lastItem) page.last = 'key' in lastItem ? lastItem.key : lastItem.prefix;
    return page;
  }

  // Multipart uploads

  private uploadDir(uploadId: string): string {
    if (!/^[0-9a-f]{32}$/.test(uploadId)) throw noSuchUpload(uploadId);
    return path.join(this.root, MULTIPART_DIR, uploadId);
  }

  private partLocation(uploadId: string, partNumber: number): Location {
    return locationOf(path.join(this.uploadDir(uploadId), String(partNumber)));
  }

  async createUpload(upload: Omit<UploadInfo, 'initiated'>): Promise<string> {
    await this.assertBucket(upload.bucket);
    this.locate(upload.bucket, upload.key); // KeyTooLongError now rather than at the end
    const uploadId = randomBytes(16).toString('hex');
    const dir = this.uploadDir(uploadId);
    await mkdir(dir, { recursive: true, mode: OWNER_DIR });
    const begun: UploadInfo = { ...upload, initiated: new Date().toISOString() };
    await writeFile(path.join(dir, 'upload.json'), JSON.stringify(begun), { mode: OWNER_FILE });
    this.folders.added(path.dirname(dir), uploadId, true);
    this.uploadHeads.add({ id: uploadId, ...begun });
    return uploadId;
  }

  async getUpload(uploadId: string): Promise<UploadInfo> {
    try {
      const text = await readDataText(path.join(this.uploadDir(uploadId), 'upload.json'), META_READ);
      if (text === null) throw noSuchUpload(uploadId);
      return JSON.parse(text) as UploadInfo;
    } catch (error) {
      if (isMissing(error) || error instanceof SyntaxError) throw noSuchUpload(uploadId);
      throw error;
    }
  }

  async putPart(uploadId: string, part: PartInfo, body: Body): Promise<void> {
    try {
      await this.getUpload(uploadId);
      const info: ObjectInfo = {
        size: part.size,
        etag: part.etag,
        modified: part.modified,
        contentType: DEFAULT_CONTENT_TYPE,
        ...(part.checksum ? { checksum: part.checksum } : {}),
      };
      const at = this.partLocation(uploadId, part.partNumber);
      await this.exclusive(at.data, () =>
        this.write(at, info, Buffer.isBuffer(body) ? body : [{ file: body.file, start: 0, end: body.size - 1 }]),
      );
    } finally {
      if (!Buffer.isBuffer(body)) await rm(body.file, { force: true });
    }
  }

  /**
   * The upload's parts in order: those after part `after`, at most `max` (a page of ListParts reads the metadata of
   * its own parts only: before, every part's, 10,000 at most, for each page).
   */
  async listParts(uploadId: string, after = 0, max = Number.POSITIVE_INFINITY): Promise<PartInfo[]> {
    await this.getUpload(uploadId);
    const numbers = (await readdir(this.uploadDir(uploadId)))
      .filter((name) => /^\d+$/.test(name))
      .map(Number)
      .filter((n) => n > after);
    const parts: PartInfo[] = [];
    for (const partNumber of numbers.sort((a, b) => a - b)) {
      if (parts.length >= max) break;
      const part = await this.read(this.partLocation(uploadId, partNumber), true);
      await part?.close();
      if (part)
        parts.push({
          partNumber,
          size: part.info.size,
          etag: part.info.etag,
          modified: part.info.modified,
          ...(part.info.checksum ? { checksum: part.info.checksum } : {}),
        });
    }
    return parts;
  }

  /**
   * The bucket's uploads in listing order, all of them, or one page of ListMultipartUploads (upload-index.ts: kept in
   * order, so a page reads its own uploads only). Each upload's upload.json is read once (it is written once, as the
   * upload begins) and kept by id while its folder is there. The upload folders' names are kept too (folder-index.ts,
   * told of each upload this store begins or removes, which it puts in its place itself): a page reads them again
   * only when that list was read again (another process began or removed one: the folder's time, or its census, says
   * so), and then reads the files of the uploads it did not know only. Before, each page read every upload folder's
   * name and compared them all with those kept.
   */
  async listUploads(bucket: string): Promise<ListedUpload[]>;
  async listUploads(bucket: string, page: UploadPageOptions): Promise<{ uploads: ListedUpload[]; truncated: boolean }>;
  async listUploads(
    bucket: string,
    page?: UploadPageOptions,
  ): Promise<ListedUpload[] | { uploads: ListedUpload[]; truncated: boolean }> {
    await this.refreshUploads();
    return page ? this.uploadHeads.page(bucket, page) : this.uploadHeads.ofBucket(bucket);
  }

  /**
   * The kept uploads brought up to date with the multipart folder (listUploads, above): those gone taken out, those
   * not known read; an upload whose upload.json cannot be read (being written, or cut by a crash) is left in
   * uploadsUnread, to be read again next time.
   */
  private async refreshUploads(): Promise<void> {
    const entries = await this.folders.entries(path.join(this.root, MULTIPART_DIR));
    let unread: string[] = [...this.uploadsUnread];
    if (entries !== this.uploadsSeen) {
      const names = new Set(entries.map((e) => e.name));
      for (const id of [...this.uploadHeads.ids()]) if (!names.has(id)) this.uploadHeads.remove(id);
      unread = [...names].filter((id) => /^[0-9a-f]{32}$/.test(id) && !this.uploadHeads.has(id));
      this.uploadsSeen = entries;
    }
    this.uploadsUnread.clear();
    await mapConcurrently(unread, 32, async (id) => {
      // One being written (or cut by a crash as it began) is read again by the next listing.
      const upload = await this.getUpload(id).catch(() => null);
      if (upload) this.uploadHeads.add({ id, ...upload });
      else this.uploadsUnread.add(id);
    });
  }

  /** Remove an upload's folder, and the upload from the kept lists. */
  private async removeUpload(uploadId: string): Promise<void> {
    await rm(this.uploadDir(uploadId), { recursive: true, force: true });
    this.folders.removed(path.join(this.root, MULTIPART_DIR), uploadId);
    this.uploadHeads.remove(uploadId);
    this.uploadsUnread.delete(uploadId);
  }

  /** Assemble the listed parts (ascending, each but the last ≥ 5 MiB, ETags as uploaded) into the object. */
  async completeUpload(
    uploadId: string,
    requested: { partNumber: number; etag: string }[],
    condition?: WriteCondition,
  ): Promise<{ upload: UploadInfo; info: ObjectInfo }> {
    const upload = await this.getUpload(uploadId);
    await this.assertBucket(upload.bucket);
    if (requested.length === 0) throw new S3Error('MalformedXML', 400, 'You must specify at least one part');
    const stored = new Map((await this.listParts(uploadId)).map((p) => [p.partNumber, p]));
    const ranges: { file: string; start: number; end: number }[] = [];
    const md5s: Buffer[] = [];
    let size = 0;
    let previous = 0;
    for (const [i, want] of requested.entries()) {
      if (want.partNumber <= previous)
        throw new S3Error(
          'InvalidPartOrder',
          400,
          'The list of parts was not in ascending order. The parts list must be specified in order by part number.',
        );
      previous = want.partNumber;
      const part = stored.get(want.partNumber);
      if (!part || part.etag !== want.etag.replace(/"/g, '')) {
        throw new S3Error(
          'InvalidPart',
          400,
          "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
          { UploadId: uploadId, PartNumber: String(want.partNumber), ETag: want.etag },
        );
      }
      if (i < requested.length - 1 && part.size < MIN_PART_SIZE) {
        throw new S3Error(
          'EntityTooSmall',
          400,
          'Your proposed upload is smaller than the minimum allowed object size.',
          {
            ProposedSize: String(part.size),
            MinSizeAllowed: String(MIN_PART_SIZE),
            PartNumber: String(part.partNumber),
            ETag: part.etag,
          },
        );
      }
      ranges.push({ file: this.partLocation(uploadId, part.partNumber).data, start: 0, end: part.size - 1 });
      md5s.push(Buffer.from(part.etag, 'hex'));
      size += part.size;
    }
    const info: ObjectInfo = {
      ...upload.attributes,
      size,
      etag: `${createHash('md5').update(Buffer.concat(md5s)).digest('hex')}-${requested.length}`,
      modified: new Date().toISOString(),
      parts: requested.length,
      partSizes: ranges.map((r) => r.end - r.start + 1),
    };
    const at = this.locate(upload.bucket, upload.key);
    // Under the key's write lock, as an abort is: of several completions of one upload at once (a retry overlapping
    // its first try), one assembles it and removes it; the others then find it gone (NoSuchUpload). Before, they read
    // parts the first was removing (ENOENT: a 500).
    await this.exclusive(at.data, async () => {
      await this.getUpload(uploadId);
      if (condition) condition(await this.infoOf(at));
      await this.write(at, info, ranges, upload.key, upload.bucket);
      await this.removeUpload(uploadId);
    });
    return { upload, info };
  }

  /**
   * Abort the multipart uploads begun before `cutoff` and never completed, as the AWS bucket's lifecycle rule does
   * after a day (infra/constructs/conversation-export-bucket.ts): their parts would otherwise stay on disk for ever.
   * An upload whose upload.json is unreadable (cut by a crash as it began) goes by its folder's time. Returns how many.
   * When each began is the kept uploads' (refreshUploads): before, each run (hourly, local/server/gateway.ts) read
   * every upload's upload.json again.
   */
  async abortUploadsBegunBefore(cutoff: Date): Promise<number> {
    await this.refreshUploads();
    const due = [...this.uploadHeads.all()].filter((u) => Date.parse(u.initiated) < cutoff.getTime()).map((u) => u.id);
    for (const id of [...this.uploadsUnread]) {
      const folderTime = (await stat(this.uploadDir(id)).catch(() => null))?.mtimeMs ?? Number.POSITIVE_INFINITY;
      if (folderTime < cutoff.getTime()) due.push(id);
    }
    for (const id of due) await this.removeUpload(id);
    return due.length;
  }

  async abortUpload(uploadId: string): Promise<void> {
    const upload = await this.getUpload(uploadId);
    await this.exclusive(this.locate(upload.bucket, upload.key).data, async () => {
      await this.getUpload(uploadId);
      await this.removeUpload(uploadId);
    });
  }

  // Files

  /** One write (or delete) of a key at a time in this process, so metadata and bytes always pair up. */
  private async exclusive<T>(file: string, fn: () => Promise<T>): Promise<T> {
    const before = this.writing.get(file);
    const run = before ? before.catch(() => undefined).then(fn) : fn();
    this.writing.set(file, run);
    try {
      return await run;
    } finally {
      if (this.writing.get(file) === run) this.writing.delete(file);
    }
  }

  /** What S3 knows of an object without opening its bytes (listings, write conditions); null when there is none. */
  private async infoOf(at: Location): Promise<ObjectInfo | null> {
    const [s, metaText] = await Promise.all([
      lstat(at.data, { bigint: true }).catch((error: unknown) => {
        if (isMissing(error)) return null;
        throw error;
      }),
      readMeta(at.meta),
    ]);
    if (!s?.isFile()) return null; // a folder of other keys, or a link (listings walk real folders only)
    return storedInfo(metaText, s) ?? this.describeFile(at.data);
  }

  /**
   * Bytes without metadata that names them, described from themselves: opened once as the data folder's one reader
   * opens (readDataFile, functions/shared/local-files.ts: no link followed, no FIFO waited on), and described from that
   * handle's fstat and bytes, at most its size. Before, the file found a regular one by lstat was opened again by its
   * path: swapped meanwhile for a link, a FIFO or a device, its target was hashed, or the read waited for a writer.
   * Null when it is gone or no regular file by then.
   */
  private async describeFile(file: string): Promise<ObjectInfo | null> {
    let handle: FileHandle;
    try {
      handle = await open(file, openFlags());
    } catch (error) {
      if (isMissing(error) || errorCode(error) === 'ELOOP') return null;
      throw error;
    }
    try {
      const s = await handle.stat({ bigint: true });
      if (!s.isFile()) return null;
      const size = Number(s.size);
      return await describe(size ? handle.createReadStream({ start: 0, end: size - 1, autoClose: false }) : [], s);
    } finally {
      await handle.close();
    }
  }

  /**
   * Bytes to a temporary file, metadata (with their inode) to another, then both renamed into place. The file writer's
   * thread does it (file-writer.ts), making the key's folder first when it is not known to exist; a streamed or
   * multipart body is written here, then placed there. With `md5`, the ETag is the bytes' MD5, hashed as they are
   * written. Returns the metadata written.
   */
  private async write(
    at: Location,
    info: ObjectInfo,
    source: Source,
    key?: string,
    bucket?: string,
    md5?: Hash,
  ): Promise<ObjectInfo> {
    const temp = this.tempPath();
    const objectFiles = { tempData: temp, tempMeta: `${temp}.meta`, data: at.data, meta: at.meta };
    const folder = async (fresh = false) =>
      this.knownDirs.has(at.dir)
        ? undefined
        : { dir: at.dir, root: this.root, realRoot: await this.resolvedRoot(), fresh };
    try {
      let result: PlaceResult;
      if (Buffer.isBuffer(source)) {
        if (md5) info = { ...info, etag: md5.update(source).digest('hex') };
        result = await putObjectFiles(objectFiles, source, JSON.stringify(info), await folder());
      } else {
        const ino = await writeBytes(objectFiles.tempData, source, md5);
        if (md5) info = { ...info, etag: md5.digest('hex') };
        await files.writeFile(objectFiles.tempMeta, JSON.stringify({ ...info, ino }), { mode: OWNER_FILE });
        result = await placeObjectFiles(objectFiles, await folder());
      }
      // A concurrent delete may have removed the key's folder: make it again.
      for (let attempt = 0; result.stage === 'meta' && errorCode(result.error) === 'ENOENT' && attempt < 3; attempt++) {
        this.knownDirs.delete(at.dir);
        if (bucket) this.knownBuckets.delete(bucket);
        if (bucket) await this.assertBucket(bucket); // the bucket itself is never created by a write
        result = await placeObjectFiles(objectFiles, await folder(true));
      }
      if (result.stage === 'link') throw throughLink(key ?? path.relative(this.root, at.dir));
      if (result.stage === 'dir' && key && ['EEXIST', 'ENOTDIR'].includes(errorCode(result.error))) {
        throw keyConflict(key); // an object is in the way
      }
      if (result.stage === 'data' && ['EISDIR', 'ENOTEMPTY', 'EEXIST', 'EPERM'].includes(errorCode(result.error))) {
        await rm(at.meta, { force: true });
        throw key ? keyConflict(key) : result.error; // a folder of other keys has this name
      }
      if (result.stage !== 'done') throw result.error;
      this.rememberDir(at.dir);
      if (bucket) this.listed(bucket, at, result.times);
      return info;
    } catch (error) {
      await rm(objectFiles.tempData, { force: true });
      await rm(objectFiles.tempMeta, { force: true });
      throw error;
    }
  }

  /**
   * Tell the listings' folder index of an object written: it, and every folder on its way (the writer made them), with
   * the times of the folders the writer changed (file-writer.ts, FolderTimes).
   */
  private listed(bucket: string, at: Location, times: FolderTimes[] = []): void {
    const names = path.relative(this.bucketDir(bucket), at.data).split(path.sep);
    let dir = this.bucketDir(bucket);
    for (const [i, name] of names.entries()) {
      this.folders.added(
        dir,
        name,
        i < names.length - 1,
        times.find((t) => t[0] === dir),
      );
      dir = path.join(dir, name);
    }
  }

  private rememberDir(dir: string): void {
    if (this.knownDirs.has(dir)) return;
    if (this.knownDirs.size > 10_000) this.knownDirs.clear();
    this.knownDirs.add(dir);
  }

  private async pruneEmptyDirs(dir: string, stopAt: string): Promise<void> {
    while (dir.length > stopAt.length && dir.startsWith(stopAt)) {
      try {
        await rmdir(dir);
      } catch {
        return; // not empty (or already gone)
      }
      this.knownDirs.delete(dir);
      this.folders.removed(path.dirname(dir), path.basename(dir));
      this.folders.forget(dir);
      dir = path.dirname(dir);
    }
  }

  /** Open an object: its bytes (read whole when small) and their metadata, or a description made from the bytes. */
  private async read(at: Location, headOnly: boolean): Promise<StoredObject | null> {
    let handle: FileHandle;
    try {
      // A link is no object: not followed (ELOOP), and its folder must be reached without one.
      handle = await open(at.data, openFlags()); // a FIFO is not waited on: it is no object (below)
    } catch (error) {
      if (isMissing(error) || errorCode(error) === 'ELOOP') return null;
      throw error;
    }
    if (!(await this.confined(at.dir).catch(() => false))) {
      await handle.close();
      return null;
    }
    try {
      const [s, metaText] = await Promise.all([handle.stat({ bigint: true }), readMeta(at.meta)]);
      if (!s.isFile()) {
        await handle.close();
        return null; // a folder of other keys
      }
      const size = Number(s.size);
      const info =
        storedInfo(metaText, s) ?? (await describe(handle.createReadStream({ start: 0, autoClose: false }), s));
      if (headOnly) {
        // Closed now: a caller after the info alone (a HEAD, the tags, a command) may never call close(), and the
        // file was left open until garbage collection (test/local/store/object-store.test.ts).
        await handle.close();
        return { info, body: headOnlyBody, close: async () => undefined };
      }
      if (size <= READ_WHOLE) {
        const bytes = Buffer.alloc(size);
        let read = 0;
        while (read < size) {
          const { bytesRead } = await handle.read(bytes, read, size - read, read);
          if (bytesRead === 0) break;
          read += bytesRead;
        }
        await handle.close();
        const whole = bytes.subarray(0, read);
        return {
          info,
          body: (start = 0, end = info.size - 1) => whole.subarray(start, end + 1),
          close: async () => undefined,
        };
      }
      let handleOpen = true;
      return {
        info,
        body(start = 0, end = info.size - 1) {
          handleOpen = false; // the stream closes it
          return handle.createReadStream({ start, end });
        },
        async close() {
          if (handleOpen) {
            handleOpen = false;
            await handle.close();
          }
        },
      };
    } catch (error) {
      await handle.close().catch(() => undefined);
      throw error;
    }
  }

  private async holdsObjects(dir: string): Promise<boolean> {
    const entries = await this.folders.entries(dir);
    if (entries.some((e) => !e.dir)) return true;
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i]!;
      if (await this.holdsObjects(path.join(dir, entry.name))) return true;
      i = stillAt(entries, i, entry); // a kept folder's list may have changed meanwhile
    }
    return false;
  }
}

/**
 * The last entry of a folder's (from the `i`th) whose keys all roll up into `common`, a common prefix just listed or
 * listed before: a listing goes on after it, never reading the keys it rolls up one by one.
 */
function skipRolledUp(entries: FolderEntry[], i: number, common: string, base: string): number {
  if (common.length <= base.length) return entries.length - 1;
  return Math.max(i, pastPrefix(entries, common.slice(base.length)) - 1);
}

/**
 * The write path's file calls: Node's callback API, promisified. Per object written (bytes, metadata, two renames)
 * they cost the event loop about a third less than fs.promises, whose FileHandle and promise machinery weigh more
 * than the system calls themselves for files of a few KB; synchronous calls would cost less still on an idle disk,
 * but stall the event loop whenever the disk is busy (measured; docs/performance.md).
 */
const files = {
  open: promisify(fs.open),
  write: promisify(fs.write) as (
    fd: number,
    data: Uint8Array,
    offset: number,
    length: number,
    position: number,
  ) => Promise<unknown>,
  fstat: promisify(fs.fstat) as (fd: number, options: { bigint: true }) => Promise<BigIntStats>,
  close: promisify(fs.close),
  writeFile: promisify(fs.writeFile) as (file: string, data: string, options: { mode: number }) => Promise<void>,
};

/** Write the bytes and return the file's inode (what its metadata will name). */
async function writeBytes(file: string, source: Source, md5?: Hash): Promise<string> {
  const fd = await files.open(file, 'w', OWNER_FILE);
  try {
    let position = 0;
    for (const part of Buffer.isBuffer(source) ? [source] : source) {
      if (Buffer.isBuffer(part)) {
        md5?.update(part);
        if (part.length > 0) await files.write(fd, part, 0, part.length, position);
        position += part.length;
        continue;
      }
      if ('file' in part && part.end < part.start) continue;
      for await (const chunk of 'file' in part
        ? fs.createReadStream(part.file, { start: part.start, end: part.end })
        : part) {
        const data = chunk as Buffer;
        md5?.update(data);
        await files.write(fd, data, 0, data.length, position);
        position += data.length;
      }
    }
    return String((await files.fstat(fd, { bigint: true })).ino);
  } finally {
    await files.close(fd);
  }
}

/** The stored description of an object's bytes, when it names them (same inode, same size); else null. */
function storedInfo(metaText: string | null, s: { ino: bigint | string; size: bigint | number }): ObjectInfo | null {
  if (!metaText) return null;
  try {
    const { ino, ...info } = JSON.parse(metaText) as ObjectInfo & { ino?: string };
    return ino === String(s.ino) && info.size === Number(s.size) ? info : null;
  } catch {
    return null; // unreadable: the bytes are described from the file
  }
}

/** Bytes without metadata (written by hand, or a crash between the two renames): their MD5, size and time. */
async function describe(bytes: AsyncIterable<unknown> | Iterable<unknown>, s: BigIntStats): Promise<ObjectInfo> {
  const hash = createHash('md5');
  for await (const chunk of bytes) hash.update(chunk as Buffer);
  return {
    size: Number(s.size),
    etag: hash.digest('hex'),
    modified: new Date(Number(s.mtimeMs)).toISOString(),
    contentType: DEFAULT_CONTENT_TYPE,
  };
}

/** Where an object's metadata is, from the file of its bytes. */
function locationOf(data: string): Location {
  const dir = path.dirname(data);
  return { dir, data, meta: path.join(dir, metaName(path.basename(data))) };
}

export function assertPartNumber(value: string | null): number {
  const n = Number(value);
  if (!value || !/^\d+$/.test(value) || n < 1 || n > 10_000)
    throw invalidArgument('Part number must be an integer between 1 and 10000, inclusive', 'partNumber', value ?? '');
  return n;
}
