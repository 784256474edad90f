import { randomBytes } from 'node:crypto';
import { Worker } from 'node:worker_threads';
import { OWNER_FILE } from '../../functions/shared/local-files.ts';

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
function makeFolder(m) {
  if (m.fresh) known.clear();
  if (known.has(m.dir)) return true;
  if (known.has(path.dirname(m.dir))) {
    try { fs.mkdirSync(m.dir, 0o700); } catch (error) {
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
function place(m) {
  try { fs.renameSync(m.tempMeta, m.meta); } catch (error) { return { stage: 'meta', error: failure(error) }; }
  try { fs.renameSync(m.tempData, m.data); } catch (error) { return { stage: 'data', error: failure(error) }; }
  return { stage: 'done' };
}
// A text file written whole aside, then renamed over the file (writeFileAtomic's contract, functions/shared/local-files.ts).
function writeText(m) {
  try {
    try {
      fs.writeFileSync(m.tmp, m.text, { mode: m.mode });
    } catch (error) {
      if (error.code !== 'ENOENT') throw error;
      fs.mkdirSync(path.dirname(m.file), { recursive: true, mode: 0o700 });
      fs.writeFileSync(m.tmp, m.text, { mode: m.mode });
    }
    fs.renameSync(m.tmp, m.file);
  } catch (error) {
    try { fs.unlinkSync(m.tmp); } catch {}
    return { stage: 'text', error: failure(error) };
  }
  return { stage: 'done' };
}
parentPort.on('message', (m) => {
  let answer;
  if (m.op === 'text') answer = writeText(m);
  else if (m.dir) {
    try {
      if (!makeFolder(m)) answer = { stage: 'link' };
    } catch (error) {
      answer = { stage: 'dir', error: failure(error) };
    }
  }
  if (!answer) {
    try {
      if (m.op === 'put') writeTemp(m);
      answer = place(m);
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
  | { stage: 'done' }
  | { stage: 'link' }
  | { stage: 'dir' | 'temp' | 'meta' | 'data' | 'text'; error: NodeJS.ErrnoException };

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

interface Pending {
  resolve: (result: PlaceResult) => void;
  reject: (error: Error) => void;
}

let worker: Worker | null = null;
let nextId = 0;
const pending = new Map<number, Pending>();

function started(): Worker {
  if (worker) return worker;
  const thread = new Worker(WORKER_SOURCE, { eval: true, execArgv: [] }); // plain CommonJS, whatever the process's flags
  thread.on('message', (answer: { id: number; stage: PlaceResult['stage']; error?: Record<string, unknown> }) => {
    const waiting = pending.get(answer.id);
    if (!waiting) return;
    pending.delete(answer.id);
    if (pending.size === 0) thread.unref();
    waiting.resolve(
      answer.error
        ? { stage: answer.stage as 'temp', error: Object.assign(new Error(String(answer.error.message)), answer.error) }
        : ({ stage: answer.stage } as PlaceResult),
    );
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

function send(message: Record<string, unknown>): Promise<PlaceResult> {
  const thread = started();
  const id = ++nextId;
  return new Promise<PlaceResult>((resolve, reject) => {
    pending.set(id, { resolve, reject });
    if (pending.size === 1) thread.ref();
    thread.postMessage({ id, ...message });
  });
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
export async function writeTextAtomicInThread(file: string, text: string, mode = OWNER_FILE): Promise<void> {
  const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const result = await send({ op: 'text', tmp, file, text, mode });
  if (result.stage !== 'done') throw 'error' in result ? result.error : new Error(`could not write ${file}`);
}

/**
 * Stop the thread: the writes under way fail with its error and the next write starts another. Tests use it to stand
 * for a thread that died.
 */
export async function stopFileWriter(): Promise<void> {
  await worker?.terminate();
}
