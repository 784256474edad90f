import { Worker } from 'node:worker_threads';
import { OWNER_DIR, OWNER_FILE } from '../../functions/shared/local-files.ts';
import { asideName } from '../../functions/shared/writers.ts';
import type { ChecksumAlgorithm } from './s3-checksums.ts';

/**
 * The gateway's per-conversation file writes (the embedded S3's objects, the execution history), done by one worker
 * thread with synchronous file calls (docs/performance.md, "What limits it"). An object written from the event loop
 * cost it about nine asynchronous file calls (open, write, fstat, close; the metadata's open, write, close; two
 * renames), each a trip to the thread pool and a promise back; here it costs one message each way, and a busy disk
 * stalls this thread, not the gateway. What a file holds, and when it is renamed into place, is as before.
 *
 * The thread runs plain JavaScript (no loader is needed under tsx, vitest or a bundle). It keeps the process alive
 * only while a write is under way; should it die, the writes in flight fail with its error and the next write starts
 * another.
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const fs = require('node:fs');
const path = require('node:path');
const failure = (error) => ({ message: error.message, code: error.code, errno: error.errno, syscall: error.syscall, path: error.path });
// Folders this thread made or found real (not links), each at most 10,000; a write that found its folder gone asks
// again with \`fresh\`.
const known = new Set();
const remember = (dir) => { if (known.size > 10000) known.clear(); known.add(dir); };
// A folder's time (ns) just before and just after this thread changed it (FolderTimes: a listing's kept folder trusts
// its time again when nothing else changed it between); none when it could not be read.
const timeOf = (dir) => { try { return String(fs.statSync(dir, { bigint: true }).mtimeNs); } catch { return ''; } };
function changing(times, dir, change) {
  const before = timeOf(dir);
  change();
  const after = timeOf(dir);
  if (before && after) times.push([dir, before, after]);
}
// The check ObjectStore.confined makes: the folder, or its nearest ancestor that exists, is where its path says.
function confined(m) {
  for (let at = m.dir; ; at = path.dirname(at)) {
    const relative = path.relative(m.root, at);
    if (relative === '' || relative.startsWith('..') || path.isAbsolute(relative)) return true;
    let real;
    try { real = fs.realpathSync.native(at); } catch (error) {
      if (error.code === 'ENOENT' || error.code === 'ENOTDIR') continue;
      throw error;
    }
    return real === path.join(m.realRoot, relative);
  }
}
// Files 0600 and folders 0700, whatever the umask (OWNER_FILE, OWNER_DIR: functions/shared/local-files.ts).
// Make a key's folder. Under a folder known to be real, a new folder made here is real too: one mkdir, and an
// existing one is checked not to be a link (or an object in the way).
function makeFolder(m, times) {
  if (m.fresh) known.clear();
  if (known.has(m.dir)) return true;
  if (known.has(path.dirname(m.dir))) {
    try { changing(times, path.dirname(m.dir), () => fs.mkdirSync(m.dir, 0o700)); } catch (error) {
      if (error.code !== 'EEXIST') throw error;
      const s = fs.lstatSync(m.dir);
      if (s.isSymbolicLink()) return false;
      if (!s.isDirectory()) throw error;
    }
  } else {
    if (!confined(m)) return false;
    fs.mkdirSync(m.dir, { recursive: true, mode: 0o700 });
    for (let at = path.dirname(m.dir); path.relative(m.root, at) !== '' && at !== path.dirname(at); at = path.dirname(at)) remember(at);
  }
  remember(m.dir);
  return true;
}
function writeTemp(m) {
  let fd;
  try {
    fd = fs.openSync(m.tempData, 'w', 0o600);
    for (let at = 0; at < m.bytes.length; ) at += fs.writeSync(fd, m.bytes, at, m.bytes.length - at, at);
    const ino = String(fs.fstatSync(fd, { bigint: true }).ino);
    fs.closeSync(fd);
    fd = undefined;
    fs.writeFileSync(m.tempMeta, m.infoJson.slice(0, -1) + ',"ino":' + JSON.stringify(ino) + '}', { mode: 0o600 });
  } catch (error) {
    if (fd !== undefined) try { fs.closeSync(fd); } catch {}
    for (const file of [m.tempData, m.tempMeta]) try { fs.unlinkSync(file); } catch {}
    throw error;
  }
}
function place(m, times) {
  const dir = path.dirname(m.data);
  const before = timeOf(dir);
  try { fs.renameSync(m.tempMeta, m.meta); } catch (error) { return { stage: 'meta', error: failure(error) }; }
  try { fs.renameSync(m.tempData, m.data); } catch (error) { return { stage: 'data', error: failure(error) }; }
  const after = timeOf(dir);
  if (before && after) times.push([dir, before, after]);
  return { stage: 'done', times };
}
// A text file written whole aside, then renamed over the file (writeFileAtomic's contract, functions/shared/local-files.ts).
// Its folder is made first (a history's is new with its conversation: one mkdir, where a first open failed before it),
// and made again should it go meanwhile.
function writeText(m) {
  const dir = path.dirname(m.file);
  let made = false;
  try {
    // Its failure (a file in the folder's place) is the write's to tell, as the system gives it.
    try { made = fs.mkdirSync(dir, { recursive: true, mode: 0o700 }) !== undefined; } catch {}
    try {
      fs.writeFileSync(m.tmp, m.text, { mode: m.mode });
    } catch (error) {
      if (error.code !== 'ENOENT') throw error;
      made = false;
      fs.mkdirSync(dir, { recursive: true, mode: 0o700 });
      fs.writeFileSync(m.tmp, m.text, { mode: m.mode });
    }
    fs.renameSync(m.tmp, m.file);
  } catch (error) {
    try { fs.unlinkSync(m.tmp); } catch {}
    return { stage: 'text', error: failure(error) };
  }
  return m.report ? { stage: 'done', folder: folderState(dir, m.report, made && m.file) } : { stage: 'done' };
}
// The folder a text was just written into (WrittenFolder): its inode and time, the names ending in the suffix asked, in
// order, and each one's inode, time and size (null: gone meanwhile); none when the folder cannot be read. \`alone\`: the
// text's file, in a folder this call made: only the gateway holding the data folder writes there, by this thread, so
// the file is all it holds (not read: one system call where a listing took four).
function folderState(dir, suffix, alone) {
  try {
    const s = fs.statSync(dir, { bigint: true });
    if (alone) {
      const name = path.basename(alone);
      if (!name.endsWith(suffix)) return { stamp: s.ino + ':' + s.mtimeNs, names: [], files: [] };
      const f = fs.statSync(alone, { throwIfNoEntry: false });
      if (f) return { stamp: s.ino + ':' + s.mtimeNs, names: [name], files: [{ ino: f.ino, mtimeMs: f.mtimeMs, size: f.size }] };
    }
    const names = fs.readdirSync(dir).filter((n) => n.endsWith(suffix)).sort();
    const files = names.map((n) => {
      try { const f = fs.statSync(path.join(dir, n)); return { ino: f.ino, mtimeMs: f.mtimeMs, size: f.size }; } catch { return null; }
    });
    return { stamp: s.ino + ':' + s.mtimeNs, names, files };
  } catch { return undefined; }
}
// appendLineNamed (below), here: files whose last append failed (the next begins with a newline), and files this
// thread found ending a line (or empty) at its first append to them.
const cutFiles = new Set();
const endsChecked = new Set();
function appendNamed(m) {
  try {
    for (let tries = 0; tries < 4; tries++) {
      let fd;
      try { fd = fs.openSync(m.file, 'a+', m.mode); } catch (error) {
        if (error.code !== 'ENOENT') throw error;
        fs.mkdirSync(path.dirname(m.file), { recursive: true, mode: m.dirMode });
        fd = fs.openSync(m.file, 'a+', m.mode);
      }
      if (m.hold && tries === 0) {
        const gate = new Int32Array(m.hold);
        Atomics.store(gate, 0, 1);
        Atomics.notify(gate, 0);
        Atomics.wait(gate, 0, 1);
      }
      try {
        let cut = cutFiles.has(m.file);
        if (!cut && !endsChecked.has(m.file)) {
          const { size } = fs.fstatSync(fd);
          const last = Buffer.alloc(1);
          cut = size > 0 && fs.readSync(fd, last, 0, 1, size - 1) === 1 && last[0] !== 0x0a;
          endsChecked.add(m.file);
        }
        const bytes = Buffer.from(cut ? '\\n' + m.line : m.line);
        try {
          for (let at = 0; at < bytes.length; ) at += fs.writeSync(fd, bytes, at, bytes.length - at);
        } catch (error) {
          cutFiles.add(m.file);
          throw error;
        }
        cutFiles.delete(m.file);
        // Still open: its inode cannot be reused meanwhile by a file of that name.
        const written = fs.fstatSync(fd);
        let named = null;
        try { named = fs.statSync(m.file); } catch {}
        if (named && named.ino === written.ino && named.dev === written.dev) break;
      } finally {
        fs.closeSync(fd);
      }
    }
  } catch (error) {
    return { stage: 'text', error: failure(error) };
  }
  return { stage: 'done' };
}
// What a listing needs of each object (describeListed): its bytes' file (none, or no file: 'x'), and from its metadata
// file, when that names those bytes (the same inode and size: 'o'), their size, ETag, time and checksum; else 'b' (the
// bytes are described from themselves). The metadata is read into one buffer (open, read, close: no stat) and parsed
// here, and only those fields go back, in flat lists, where the event loop parsed each file's whole text before.
// As readDataFile reads (functions/shared/local-files.ts): never waiting on a FIFO (it held this one thread, and every
// write with it), not through a link, and no more than 64 KB (more than any metadata the store writes: such a file,
// a device's endless bytes among them, is none, and the bytes are described from themselves).
const META_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0) | (fs.constants.O_NOFOLLOW ?? 0);
const metaBuffer = Buffer.allocUnsafe(64 * 1024);
function readMeta(file) {
  let fd;
  try { fd = fs.openSync(file, META_FLAGS); } catch { return null; }
  try {
    let n = 0;
    for (;;) {
      const read = fs.readSync(fd, metaBuffer, n, metaBuffer.length - n, null);
      if (read === 0) return metaBuffer.toString('utf8', 0, n);
      n += read;
      if (n === metaBuffer.length) return null;
    }
  } catch { return null; } finally { fs.closeSync(fd); }
}
function describe(m) {
  const out = { stage: 'done', states: '', sizes: [], etags: [], modified: [], checksums: [], errors: {} };
  for (const [i, [data, meta]] of m.files.entries()) {
    let s;
    try { s = fs.lstatSync(data, { bigint: true }); } catch (error) {
      if (error.code === 'ENOENT' || error.code === 'ENOTDIR') out.states += 'x';
      else { out.states += 'e'; out.errors[i] = failure(error); }
      continue;
    }
    if (!s.isFile()) { out.states += 'x'; continue; }
    let info = null;
    const text = readMeta(meta);
    try { info = text === null ? null : JSON.parse(text); } catch {}
    if (!info || info.ino !== String(s.ino) || info.size !== Number(s.size)) { out.states += 'b'; continue; }
    out.states += 'o';
    out.sizes.push(info.size);
    out.etags.push(info.etag);
    out.modified.push(info.modified);
    out.checksums.push(info.checksum ? info.checksum.algorithm + ' ' + info.checksum.value : '');
  }
  return out;
}
// A folder's objects and subfolders for a listing (readFolder): names and kinds, in S3's key order (compareKeys and
// decodeSegment of folder-index.ts), the store's .-files left out.
const decode = (name) => name === '%' ? '' : name.replace(/%([0-9A-F]{2})/g, (_, h) => String.fromCharCode(Number.parseInt(h, 16)));
function compare(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i), y = b.charCodeAt(i);
    if (x !== y) return x >= 0xd800 && y >= 0xd800 && x <= 0xdfff !== y <= 0xdfff ? (x <= 0xdfff ? 1 : -1) : x - y;
  }
  return a.length - b.length;
}
// The folder's census (folderSum of folder-index.ts): how many objects and subfolders, and two sums of their names'
// hashes, which any name added, removed or renamed changes.
function hashInto(sum, name, dir) {
  let a = 0x811c9dc5, b = 0x9747b28c;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995) ^ (b >>> 15);
  }
  if (dir) { a = Math.imul(a ^ 0x2f, 0x01000193); b = Math.imul(b ^ 0x2f, 0x5bd1e995) ^ (b >>> 15); }
  sum.a = (sum.a + (a >>> 0)) >>> 0;
  sum.b = (sum.b + (b >>> 0)) >>> 0;
}
function folder(m) {
  let dirents;
  try { dirents = fs.readdirSync(m.dir, { withFileTypes: true }); } catch (error) { return { stage: 'dir', error: failure(error) }; }
  const entries = [];
  const sum = { count: 0, a: 0, b: 0 };
  for (const d of dirents) {
    if (d.name.startsWith('.')) continue;
    const dir = d.isDirectory();
    if (!dir && !d.isFile()) continue;
    sum.count++;
    hashInto(sum, d.name, dir);
    if (m.census) continue;
    const order = decode(d.name);
    entries.push(dir ? { name: d.name, order: order + '/', dir: '1' } : { name: d.name, order, dir: '0' });
  }
  if (m.census) return { stage: 'done', sum };
  entries.sort((a, b) => compare(a.order, b.order));
  return { stage: 'done', names: entries.map((e) => e.name).join('\\n'), dirs: entries.map((e) => e.dir).join(''), sum };
}
parentPort.on('message', (m) => {
  let answer;
  const times = [];
  if (m.op === 'text') answer = writeText(m);
  else if (m.op === 'append') answer = appendNamed(m);
  else if (m.op === 'describe') answer = describe(m);
  else if (m.op === 'folder') answer = folder(m);
  else if (m.dir) {
    try {
      if (!makeFolder(m, times)) answer = { stage: 'link' };
    } catch (error) {
      answer = { stage: 'dir', error: failure(error) };
    }
  }
  if (!answer) {
    try {
      if (m.op === 'put') writeTemp(m);
      answer = place(m, times);
    } catch (error) {
      answer = { stage: 'temp', error: failure(error) };
    }
  }
  parentPort.postMessage({ id: m.id, ...answer });
});
`;

/**
 * What a write did: placed (`done`); refused because the key's folder passes through a symbolic link (`link`); or the
 * step that failed with the system's error: making the folder, writing the temporary files, renaming either.
 */
export type PlaceResult =
  | { stage: 'done'; times?: FolderTimes[] }
  | { stage: 'link' }
  | { stage: 'dir' | 'temp' | 'meta' | 'data' | 'text'; error: NodeJS.ErrnoException };

/**
 * A folder the thread changed (a folder made in it, an object renamed into it) and its time (mtimeNs) just before and
 * just after: folder-index.ts trusts a kept folder's time again when each change of the store's began at the time the
 * one before left (nothing else changed it between).
 */
export type FolderTimes = [dir: string, before: string, after: string];

/** A key's folder to make first (with its parents), once checked to be under `root` without a link on the way. */
export interface KeyFolder {
  dir: string;
  root: string;
  /** The root with its links resolved. */
  realRoot: string;
  /** Check again even folders the writer made before (one was found gone). */
  fresh?: boolean;
}

export interface ObjectFiles {
  /** The temporary files (bytes, metadata) and where they go. */
  tempData: string;
  tempMeta: string;
  data: string;
  meta: string;
}

interface Answer {
  id: number;
  stage: PlaceResult['stage'];
  error?: Record<string, unknown>;
  states?: string;
  sizes?: number[];
  etags?: string[];
  modified?: string[];
  checksums?: string[];
  errors?: Record<number, Record<string, unknown>>;
  names?: string;
  dirs?: string;
  sum?: FolderSum;
  times?: FolderTimes[];
  folder?: WrittenFolder;
}

interface Pending {
  resolve: (answer: Answer) => void;
  reject: (error: Error) => void;
}

let worker: Worker | null = null;
let nextId = 0;
const pending = new Map<number, Pending>();

function started(): Worker {
  if (worker) return worker;
  const thread = new Worker(WORKER_SOURCE, { eval: true, execArgv: [] }); // plain CommonJS, whatever the process's flags
  thread.on('message', (answer: Answer) => {
    const waiting = pending.get(answer.id);
    if (!waiting) return;
    pending.delete(answer.id);
    if (pending.size === 0) thread.unref();
    waiting.resolve(answer);
  });
  const fail = (error: Error) => {
    if (worker === thread) worker = null;
    for (const [id, waiting] of pending) {
      pending.delete(id);
      waiting.reject(error);
    }
  };
  thread.on('error', fail);
  thread.on('exit', (code) => fail(new Error(`the embedded S3's file writer stopped (exit code ${code})`)));
  thread.unref();
  worker = thread;
  return thread;
}

const systemError = (error: Record<string, unknown>) =>
  Object.assign(new Error(String(error.message)), error) as NodeJS.ErrnoException;

function ask(message: Record<string, unknown>): Promise<Answer> {
  const thread = started();
  const id = ++nextId;
  return new Promise<Answer>((resolve, reject) => {
    pending.set(id, { resolve, reject });
    if (pending.size === 1) thread.ref();
    thread.postMessage({ id, ...message });
  });
}

async function send(message: Record<string, unknown>): Promise<PlaceResult> {
  const answer = await ask(message);
  if (answer.error) return { stage: answer.stage as 'temp', error: systemError(answer.error) };
  return answer.stage === 'done' && answer.times?.length
    ? { stage: 'done', times: answer.times }
    : ({ stage: answer.stage } as PlaceResult);
}

/**
 * A folder's objects and subfolders (their file names as stored, and whether each is a folder), in S3's key order,
 * the store's `.`-files left out: read and sorted by the thread, for a folder of thousands of entries, where reading
 * and sorting 100,000 on the event loop held it for ~300 ms. The system's error is thrown (ENOENT: no folder).
 */
export async function readFolder(dir: string): Promise<{ entries: { name: string; dir: boolean }[]; sum: FolderSum }> {
  const answer = await ask({ op: 'folder', dir });
  if (answer.error) throw systemError(answer.error);
  const sum = answer.sum!;
  if (!answer.names) return { entries: [], sum };
  // File names hold no newline: the store writes control characters %XX (object-store.ts, encodeSegment).
  return { entries: answer.names.split('\n').map((name, i) => ({ name, dir: answer.dirs![i] === '1' })), sum };
}

/**
 * How many objects and subfolders a folder holds, and the sums of their names' hashes (folder-index.ts, folderSum):
 * read by the thread, names neither sorted nor sent, so checking a kept folder of 100,000 entries against its files
 * costs the event loop one message. The system's error is thrown.
 */
export async function censusOfFolder(dir: string): Promise<FolderSum> {
  const answer = await ask({ op: 'folder', dir, census: true });
  if (answer.error) throw systemError(answer.error);
  return answer.sum!;
}

/** A folder's census: its entries (objects and subfolders) and two sums of their names' hashes, each mod 2^32. */
export interface FolderSum {
  count: number;
  a: number;
  b: number;
}

/** What a listing shows of an object (ListObjects, ListObjectVersions). */
export interface ListedInfo {
  size: number;
  etag: string;
  modified: string;
  checksum?: { algorithm: ChecksumAlgorithm; value: string };
}

/**
 * For a page of a listing: what it shows of each object, from its metadata when that names its bytes' file; `bytes`
 * when it does not (none, or unreadable, or of other bytes: written by hand, or a crash between two renames), to be
 * described from the bytes; null when the bytes' file is gone or no file. Read and parsed by the thread with
 * synchronous calls (a page of 1,000 objects in one message each way, where 2,000 calls through the thread pool took
 * the event loop ~200 ms, and each metadata file's text parsed here ~1 ms more). The system's error for a file is
 * thrown.
 */
export async function describeListed(
  files: { data: string; meta: string }[],
): Promise<(ListedInfo | 'bytes' | null)[]> {
  const answer = await ask({ op: 'describe', files: files.map((f) => [f.data, f.meta]) });
  const out: (ListedInfo | 'bytes' | null)[] = [];
  let o = 0;
  for (const [i, state] of [...(answer.states ?? '')].entries()) {
    if (state === 'e') throw systemError(answer.errors![i]!);
    if (state === 'x') out.push(null);
    else if (state === 'b') out.push('bytes');
    else {
      const checksum = answer.checksums![o]!;
      const at = checksum.indexOf(' ');
      out.push({
        size: answer.sizes![o]!,
        etag: answer.etags![o]!,
        modified: answer.modified![o]!,
        ...(checksum
          ? { checksum: { algorithm: checksum.slice(0, at) as ChecksumAlgorithm, value: checksum.slice(at + 1) } }
          : {}),
      });
      o++;
    }
  }
  return out;
}

/**
 * Make the key's folder when given, write `bytes` and their metadata (`infoJson`, a JSON object to which the bytes'
 * inode is added) to the temporary files, then rename the metadata and the bytes into place. A failure while writing
 * removes both temporary files.
 */
export function putObjectFiles(
  files: ObjectFiles,
  bytes: Buffer,
  infoJson: string,
  folder?: KeyFolder,
): Promise<PlaceResult> {
  if (!infoJson.startsWith('{') || !infoJson.endsWith('}') || infoJson === '{}') {
    throw new Error('putObjectFiles: the metadata must be a non-empty JSON object');
  }
  return send({ op: 'put', ...files, bytes, infoJson, ...folder });
}

/** Make the key's folder when given, then rename the temporary metadata and the bytes into place. */
export function placeObjectFiles(files: ObjectFiles, folder?: KeyFolder): Promise<PlaceResult> {
  return send({ op: 'place', ...files, ...folder });
}

/** Start the thread now, so that the first write does not wait for it (tens of milliseconds on a busy machine). */
export function startFileWriter(): void {
  started();
}

/**
 * writeFileAtomic (functions/shared/local-files.ts) done by the thread: `text` written whole to a file of its own
 * beside `file` (its folder made, owner-only, when missing), then renamed over it; nothing is left aside on a failure,
 * which is thrown as the system gave it.
 */
export async function writeTextAtomicInThread(
  file: string,
  text: string,
  mode = OWNER_FILE,
  report?: string,
): Promise<WrittenFolder | undefined> {
  const tmp = asideName(file);
  const answer = await ask({ op: 'text', tmp, file, text, mode, report });
  if (answer.error) throw systemError(answer.error);
  return answer.folder;
}

/**
 * The folder a text was just written into, as the thread found it after the rename (writeTextAtomicInThread's
 * `report`, the suffix of the names wanted): the folder's inode and time in ns (`<ino>:<mtimeNs>`), those names in
 * sorted order, and each one's inode, time and size (null: gone meanwhile). The summary index's entry of a saved
 * history is made of it (local/history/summary-index.ts): three file calls fewer on the event loop per history.
 */
export interface WrittenFolder {
  stamp: string;
  names: string[];
  files: ({ ino: number; mtimeMs: number; size: number } | null)[];
}

/**
 * One line added to a file that another process may move aside to read it and remove it (the summary index's saved
 * entries: local/history/summary-index.ts), by the thread (one message where the event loop made five file calls): a
 * line written into the file after it was moved (opened before, written after) is written again, into the file now
 * of that name, until it lands in the file that still has the name (a few times at most: a file system whose names
 * never showed the inode an open gave would fill the disk). A line may thus be in both: its reader takes it twice.
 * A file an earlier process left ending in a line cut short (killed in the middle of a write, a power cut) gets a
 * newline before this thread's first line, which it would otherwise continue; so does the line after an append that
 * failed (a full disk may have written part of it). `mode` applies to a new file, `dirMode` to its folder, made only
 * when missing. The system's error is thrown.
 */
export async function appendLineNamed(
  file: string,
  line: string,
  mode = OWNER_FILE,
  dirMode = OWNER_DIR,
): Promise<void> {
  const hold = heldAppend;
  heldAppend = undefined;
  const answer = await ask({ op: 'append', file, line, mode, dirMode, hold });
  if (answer.error) throw systemError(answer.error);
}

let heldAppend: SharedArrayBuffer | undefined;

/**
 * For tests that run something between the open and the write of an append (another process moving the file aside):
 * the next appendLineNamed's thread stops once the file is open (`opened`) until `go()`.
 */
export function holdNextAppend(): { opened: Promise<void>; go: () => void } {
  const buffer = new SharedArrayBuffer(4);
  const gate = new Int32Array(buffer);
  heldAppend = buffer;
  // Atomics.waitAsync: in Node since 16, not in TypeScript's lib before es2024.
  const { waitAsync } = Atomics as unknown as {
    waitAsync: (at: Int32Array, index: number, value: number) => { async: boolean; value: Promise<string> | string };
  };
  const waiting = waitAsync(gate, 0, 0);
  return {
    opened: waiting.async ? (waiting.value as Promise<string>).then(() => undefined) : Promise.resolve(),
    go: () => {
      Atomics.store(gate, 0, 2);
      Atomics.notify(gate, 0);
    },
  };
}

/**
 * Stop the thread: the writes under way fail with its error and the next write starts another. Tests use it to stand
 * for a thread that died.
 */
export async function stopFileWriter(): Promise<void> {
  await worker?.terminate();
}
