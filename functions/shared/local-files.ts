import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { link, mkdir, rm, stat, utimes } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { asideTag, stampedWriter, type WriterState, writerStamp, writerState } from './writers.ts';

// Node's callback API, promisified: for small files it costs the event loop less than fs.promises (local/store/object-store.ts).
const writeFile = promisify(fs.writeFile) as (file: string, data: string, options?: { mode: number }) => Promise<void>;
const rename = promisify(fs.rename);
const appendFile = promisify(fs.appendFile) as (
  file: string,
  data: string,
  options?: { mode: number },
) => Promise<void>;

/**
 * Every file the gateway and its commands write under the data folder is its owner's alone, and so is every folder
 * (docs/security.md): the modes given when each is made, whatever the umask (which can only take bits away). A file
 * written aside and renamed keeps the mode it was made with.
 */
export const OWNER_FILE = 0o600;
export const OWNER_DIR = 0o700;

/**
 * What the local adapters of functions/shared (the endpoint store's files) share: JSON read and written atomically,
 * and a lock for a read-modify-write.
 */

/**
 * A local file that is not what it should hold (docs/operations.md, "After a crash"): not JSON (cut short by a crash
 * or a full disk, edited by hand), or JSON of another shape (`what` says what it should be). A SyntaxError, as
 * JSON.parse's, named `UnreadableFileError` (the error a workflow that met one fails with), that names its file, so
 * whoever reads the message knows which one to mend or delete.
 */
export class UnreadableFileError extends SyntaxError {
  override name = 'UnreadableFileError';
  constructor(
    readonly file: string,
    readonly reason: string,
    what = 'valid JSON',
  ) {
    super(`${file} is not ${what} (${reason})`);
  }
}

/**
 * The system's refusal to read `file` (a permission, a folder in its place), said as a read of that file: Node's own
 * says `open`, or (EISDIR) names no file at all. Code and system call kept, so the gateway tells a refused read from a
 * refused write (local/server/storage-failure.ts).
 */
function readRefused(error: NodeJS.ErrnoException, file: string): NodeJS.ErrnoException {
  if (typeof error.code !== 'string') return error;
  const why = error.message.slice(error.message.indexOf(': ') + 2).split(', ')[0];
  return Object.assign(new Error(`${error.code}: ${why}, read '${file}'`), {
    code: error.code,
    errno: error.errno,
    syscall: 'read',
    path: file,
  });
}

/**
 * The most the stores read of one of their files: far above any record they write (a conversation's state is at most
 * 256 KB, an execution history a few MB), far below what would stall the process (a string of 512 MB is a RangeError).
 */
const MAX_RECORD_FILE_BYTES = 32 * 1024 * 1024;

export interface DataFileRead {
  /** Above this many bytes the file is refused (MAX_RECORD_FILE_BYTES unless said). */
  maxBytes?: number;
  /**
   * Whether a symbolic link is read through: only for a file an operator may keep anywhere (the delivery secrets
   * file). The stores write their own files whole and rename them into place, never as a link: one found there was put
   * by hand (`ln -sf /dev/zero …`), and is refused.
   */
  followLinks?: boolean;
}

/**
 * A delivery secrets file may be a link (kept elsewhere, mounted by a secrets manager: DELIVERY_SIGNING_SECRETS_FILE):
 * followed, unlike the data folder's own files, and read only when it leads to a regular file of at most 1 MB.
 */
export const SECRETS_READ: DataFileRead = { followLinks: true, maxBytes: 1024 * 1024 };

const O_NOFOLLOW = fs.constants.O_NOFOLLOW ?? 0;
// A FIFO opened for reading without it waits for a writer, holding one of libuv's four threads: four such opens
// stalled every file operation of the gateway.
const O_NONBLOCK = fs.constants.O_NONBLOCK ?? 0;
/** How readDataFile opens a file: never waiting on a FIFO, never through a link unless `followLinks`. */
export const openFlags = (followLinks?: boolean) => fs.constants.O_RDONLY | O_NONBLOCK | (followLinks ? 0 : O_NOFOLLOW);

/** What a file that is not a regular one is, said to its operator. */
function kindOf(s: fs.Stats | fs.BigIntStats): string {
  if (s.isCharacterDevice()) return 'a character device (such as /dev/zero, /dev/full or /dev/urandom)';
  if (s.isBlockDevice()) return 'a block device';
  if (s.isFIFO()) return 'a FIFO (a named pipe)';
  if (s.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * Why a file that should be a regular one is not, and what to do, one wording for a folder and for anything else in its
 * place (a FIFO, a device, a socket): `it is a FIFO (a named pipe), not a regular file; remove it`.
 */
export const notRegularFile = (s: fs.Stats | fs.BigIntStats) =>
  `it is ${s.isDirectory() ? 'a folder' : kindOf(s)}, not a regular file; remove it`;

const MB = 1024 * 1024;
const sized = (bytes: number) => (bytes % MB === 0 ? `${bytes / MB} MB` : `${bytes} bytes`);

/**
 * What the open handle `fd` of `file` is refused for, as the error its reader throws, or null when it is a regular file
 * of at most `maxBytes`: a folder is Node's EISDIR as a read of it (the stores' messages for a folder where a file
 * should be: local/store/damaged-files.ts), anything else not a regular file (a device, a FIFO, a socket) or too large
 * an UnreadableFileError naming it, so it is told as a damaged file is (docs/operations.md, "After a crash").
 */
function refusal(file: string, s: fs.Stats, maxBytes: number): Error | null {
  if (s.isDirectory())
    return Object.assign(new Error(`EISDIR: illegal operation on a directory, read '${file}'`), {
      code: 'EISDIR',
      errno: -21,
      syscall: 'read',
      path: file,
    });
  if (!s.isFile()) return new UnreadableFileError(file, `it is ${kindOf(s)}`, 'a regular file');
  if (s.size > maxBytes) return tooLarge(file, s.size, maxBytes);
  return null;
}

const tooLarge = (file: string, size: number, maxBytes: number) =>
  new UnreadableFileError(file, `it holds ${size} bytes or more`, `a file of at most ${sized(maxBytes)}`);

/** Open's refusal of a link (O_NOFOLLOW: ELOOP), said as such; any other error as a refused read (readRefused). */
function openRefused(error: NodeJS.ErrnoException, file: string): Error {
  if (error.code === 'ELOOP')
    return new UnreadableFileError(file, 'it is a symbolic link, which the gateway never makes', 'a regular file');
  return readRefused(error, file);
}

const fsOpen = promisify(fs.open);
const fsFstat = promisify(fs.fstat);
const fsRead = promisify(fs.read);
const fsClose = promisify(fs.close);

/**
 * The bytes of a file of the data folder, or null when there is none: opened without waiting (a FIFO), not through a
 * link (unless `followLinks`), and read only when the open handle is a regular file of at most `maxBytes` (one fstat
 * of it, no second look: what is checked is what is read), and never past that, should it grow meanwhile. Before, a
 * link to /dev/zero was read until the process died (a RangeError after 512 MB), and a FIFO until a writer came. The
 * one reader of the local stores, the commands and the console.
 */
export async function readDataFile(file: string, options: DataFileRead = {}): Promise<Buffer | null> {
  const maxBytes = options.maxBytes ?? MAX_RECORD_FILE_BYTES;
  let fd: number;
  try {
    fd = await fsOpen(file, openFlags(options.followLinks));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw openRefused(error as NodeJS.ErrnoException, file);
  }
  try {
    const s = await fsFstat(fd);
    const refused = refusal(file, s, maxBytes);
    if (refused) throw refused;
    return await readAll(file, s.size, maxBytes, async (buffer, at) => {
      return (await fsRead(fd, buffer, at, buffer.length - at, null)).bytesRead;
    });
  } catch (error) {
    throw error instanceof UnreadableFileError ? error : readRefused(error as NodeJS.ErrnoException, file);
  } finally {
    await fsClose(fd).catch(() => undefined);
  }
}

/** readDataFile, synchronously (the idempotency store's claims: functions/shared/idempotency-store.ts). */
export function readDataFileSync(file: string, options: DataFileRead = {}): Buffer | null {
  const maxBytes = options.maxBytes ?? MAX_RECORD_FILE_BYTES;
  let fd: number;
  try {
    fd = fs.openSync(file, openFlags(options.followLinks));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw openRefused(error as NodeJS.ErrnoException, file);
  }
  try {
    const s = fs.fstatSync(fd);
    const refused = refusal(file, s, maxBytes);
    if (refused) throw refused;
    let buffer: Buffer = Buffer.allocUnsafe(Math.min(s.size, maxBytes) + 1);
    let length = 0;
    for (;;) {
      const wanted = buffer.length - length;
      const n = fs.readSync(fd, buffer, length, wanted, null);
      length += n;
      if (n < wanted) return buffer.subarray(0, length); // the end (readAll)
      if (length > maxBytes) throw tooLarge(file, length, maxBytes);
      if (length === buffer.length) buffer = grown(buffer, maxBytes);
    }
  } catch (error) {
    throw error instanceof UnreadableFileError ? error : readRefused(error as NodeJS.ErrnoException, file);
  } finally {
    fs.closeSync(fd);
  }
}

/** A buffer twice as large (at most one byte more than `maxBytes`: enough to tell a file too large), `buffer` in it. */
function grown(buffer: Buffer, maxBytes: number): Buffer {
  const next = Buffer.allocUnsafe(Math.min(buffer.length * 2, maxBytes + 1));
  buffer.copy(next);
  return next;
}

/**
 * Read until the end, `size` (the fstat's) bytes expected; refused past `maxBytes` (it grew meanwhile). The handle is a
 * regular file (refusal), whose read returns fewer bytes than asked only at its end: a file that did not grow is read
 * in one call (the buffer holds a byte more than it), not in two, the second one returning 0 (docs/performance.md).
 */
async function readAll(
  file: string,
  size: number,
  maxBytes: number,
  read: (buffer: Buffer, at: number) => Promise<number>,
): Promise<Buffer> {
  let buffer: Buffer = Buffer.allocUnsafe(Math.min(size, maxBytes) + 1);
  let length = 0;
  for (;;) {
    const wanted = buffer.length - length;
    const n = await read(buffer, length);
    length += n;
    if (n < wanted) return buffer.subarray(0, length);
    if (length > maxBytes) throw tooLarge(file, length, maxBytes);
    if (length === buffer.length) buffer = grown(buffer, maxBytes);
  }
}

/** readDataFile as UTF-8 text. */
export async function readDataText(file: string, options?: DataFileRead): Promise<string | null> {
  return (await readDataFile(file, options))?.toString('utf8') ?? null;
}

/**
 * A JSON file's value, or null when there is none; one that is not JSON (or a bare null) is an UnreadableFileError.
 * `read`: how its text is read (readDataTextKept of kept-files.ts for a file read at every use).
 */
export async function readJsonFile<T>(
  file: string,
  options?: DataFileRead,
  read: typeof readDataText = readDataText,
): Promise<T | null> {
  const text = await read(file, options);
  if (text === null) return null;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UnreadableFileError(file, (error as Error).message);
  }
  // No store writes a bare null: read as "no file", it would pass a damaged file for a missing one.
  if (value === null) throw new UnreadableFileError(file, 'it holds null');
  return value as T;
}

/**
 * Where `file` is written before it is renamed (or linked) into place: `<file>.<pid>.<host><random>.tmp`, its writer's
 * host tag beside its pid, so that a sweep run in another container sharing the data folder (its pids another
 * namespace's) does not take that pid for one of its own (functions/shared/writers.ts, local/store/json-files.ts).
 */
function asideOf(file: string): string {
  return `${file}.${asideTag()}${randomBytes(6).toString('hex')}.tmp`;
}

/**
 * Written whole to a temporary file of its own (two writes of one file at once never share one), then renamed over
 * it: a crash or a reader never sees half a document. `mode` (owner only unless said: OWNER_FILE) applies from the
 * first byte. The directory is created only when the write finds it missing (once per folder, not a mkdir per write).
 * The one atomic write of the local stores (local/store/json-files.ts too).
 */
export async function writeFileAtomic(file: string, text: string, mode = OWNER_FILE): Promise<void> {
  const tmp = asideOf(file);
  const options = { mode };
  try {
    try {
      await writeFile(tmp, text, options);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      // Owner-only, like the data folder (docs/security.md): a command run before the first start may make it.
      await mkdir(path.dirname(file), { recursive: true, mode: OWNER_DIR });
      await writeFile(tmp, text, options);
    }
    await rename(tmp, file);
  } catch (error) {
    // A write that failed (a full disk cut it, a folder is where the file should be) leaves nothing aside: each retry
    // left another copy (of a status, an envelope, a secret), which held the disk's last bytes for a day.
    await rm(tmp, { force: true }).catch(() => undefined);
    throw error;
  }
}

/**
 * writeFileAtomic done at once, in this turn of the event loop (the file written aside, then renamed over it): for a
 * write that a timer must not overtake. Through libuv's file threads a write is four round trips (open, write, close,
 * rename), each waiting for a thread and then for this process's turn, which a loaded machine gave out late; a timer
 * that came due meanwhile ran first (timers run before finished file calls in each turn of the loop). Used where a
 * state's TimeoutSeconds stands around the write (the local failed-delivery store: QueueFailedDelivery's 1 s).
 */
export function writeFileAtomicSync(file: string, text: string, mode = OWNER_FILE): void {
  const tmp = asideOf(file);
  try {
    try {
      fs.writeFileSync(tmp, text, { mode });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      fs.mkdirSync(path.dirname(file), { recursive: true, mode: OWNER_DIR });
      fs.writeFileSync(tmp, text, { mode });
    }
    fs.renameSync(tmp, file);
  } catch (error) {
    // As writeFileAtomic: a write that failed leaves nothing aside.
    fs.rmSync(tmp, { force: true });
    throw error;
  }
}

/** Files whose last append failed (ENOSPC: a full disk may have put down part of its line). */
const cutFiles = new Set<string>();

/**
 * One line added to a log file (O_APPEND, one write(2): concurrent appends never interleave inside a line). `mode`
 * applies to a new file, `dirMode` to its directory, which is created only when the append finds it missing (not a
 * mkdir per line). After an append that failed (a full disk may have written part of its line), the next one begins
 * with a newline, so that it starts a line of its own: continuing the cut one, it was unreadable too (as the journal
 * and the handlers' log do: local/engine/journal.ts, local/server/log-sink.ts).
 */
export async function appendLine(file: string, line: string, mode = OWNER_FILE, dirMode = OWNER_DIR): Promise<void> {
  const options = { mode };
  const text = cutFiles.has(file) ? `\n${line}` : line;
  try {
    try {
      await appendFile(file, text, options);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      await mkdir(path.dirname(file), { recursive: true, mode: dirMode });
      await appendFile(file, text, options);
    }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') cutFiles.add(file);
    throw error;
  }
  cutFiles.delete(file);
}

/**
 * Create `file` holding `text`, unless it exists (then false): written whole aside first (as writeFileAtomic does),
 * then linked into place, so no one ever finds it empty — not while it is written, nor after a crash in the middle
 * (what a crash leaves aside, `<file>.<pid>.<hex>.tmp`, is no lock; the retention sweep removes it). The lock files
 * (withFileLock, local/store/data-dir-lock.ts) are made with it.
 */
export async function createExclusive(file: string, text: string, mode: number): Promise<boolean> {
  const aside = asideOf(file);
  try {
    await writeFile(aside, text, { mode });
    return await link(aside, file).then(
      () => true,
      (error: NodeJS.ErrnoException) => {
        if (error.code === 'EEXIST') return false;
        throw error;
      },
    );
  } finally {
    await rm(aside, { force: true });
  }
}

/**
 * Remove the lock `file` left by a process that is gone (or, given `olderThanMs`, one still older than that: a live
 * holder stuck), only while it still holds `seen` (what its caller read):
 * true once it is done (removed, or found changed: another process took it over meanwhile), false while another
 * process is removing it (the caller waits a moment, then looks again). Of several processes finding it at once, one
 * removes it: each must first create a claim on that lock as it was (`<file>.<holder>.0.tmp`, createExclusive), and
 * nobody else removes a lock holding `seen` meanwhile (its holder is gone), so it cannot be replaced between the look
 * and the removal. Removed with a plain `rm`, a second remover deleted the lock the first had just taken, and both
 * held it. A claim left by a process killed in the middle (it names that process) is removed the same way, at once:
 * nobody waits on a dead process's claim. One left after its lock went is no lock (the retention sweep removes it).
 */
export async function removeStaleLock(file: string, seen: string, olderThanMs?: number): Promise<boolean> {
  const claim = `${file}.${seen.replace(/\D/g, '').slice(0, 12) || '0'}.0.tmp`;
  if (!(await createExclusive(claim, writerStamp(), 0o600))) {
    const holder = await lockText(claim);
    if (holder === null) return false; // gone meanwhile: look again
    const age = await stat(claim).then(
      (s) => Date.now() - s.mtimeMs,
      () => 0,
    );
    // A claim left by a killed process (or stuck past STALE_MS) goes as a stale lock does; then look again.
    if (age > STALE_MS || holderGone(holderState(holder, age))) await removeStaleLock(claim, holder);
    return false;
  }
  try {
    // Judged stale by its age alone (`olderThanMs`: its holder alive), it is judged again under the claim: a holder
    // stuck for a while that touched its lock since the look is at work again, and keeps it (the caller looks again).
    if (olderThanMs !== undefined && !(await olderThan(file, olderThanMs))) return false;
    if ((await lockText(file).catch(() => null)) === seen) await rm(file, { force: true });
    return true;
  } finally {
    await rm(claim, { force: true });
  }
}

/**
 * The text of a lock or of a claim on one (at most a process id and a tag), or null when there is none or it cannot be
 * read now (a refused read: not known to be stale). Read as every file of the data folder is (readDataText): before, a
 * FIFO there was read until a writer came (holding one of libuv's four file threads, and every change of that file
 * for good), a link to /dev/zero until the process died. Anything but a regular file of at most 1 KB there was not
 * made by the gateway (createExclusive makes each whole): an UnreadableFileError naming it and what to do, at once,
 * not a wait of GIVE_UP_MS for a holder that is not there (docs/operations.md, "After a crash").
 */
export async function lockText(file: string): Promise<string | null> {
  try {
    return await readDataText(file, { maxBytes: 1024 });
  } catch (error) {
    const why =
      error instanceof UnreadableFileError
        ? error.reason
        : (error as NodeJS.ErrnoException).code === 'EISDIR'
          ? 'it is a folder'
          : null;
    if (why === null) return null;
    throw new UnreadableFileError(file, `${why}; remove it, then try again`, 'a lock the gateway made');
  }
}

/** Whether `file` was last changed more than `ms` ago (one that is gone is). */
async function olderThan(file: string, ms: number): Promise<boolean> {
  return stat(file).then(
    (s) => Date.now() - s.mtimeMs > ms,
    () => true,
  );
}

/** Owner-only: it may hold a receiver's URL. */
export async function writeJsonFileAtomic(file: string, value: unknown): Promise<void> {
  await writeFileAtomic(file, `${JSON.stringify(value, null, 2)}\n`, 0o600);
}

/**
 * A read-modify-write of a local file that several processes may change (the running gateway and the command line):
 * one holder at a time within the process (a promise chain per file) and across processes (a `<file>.lock` created
 * exclusively, holding its process id, host tag and a tag of its own from the moment it exists: createExclusive). A
 * lock left by a killed process is taken over: at once when the process it names is gone (a gateway restarted after
 * kill -9 does not wait on its own predecessor) or it names none (empty: made by an earlier version, killed before it
 * wrote its id), else once older than STALE_MS. A live holder keeps its lock fresh (its mtime touched every FRESH_MS
 * while `fn` runs: a slow disk, a long read-modify-write), so only a dead or hung holder's lock ever gets that old. A
 * lock taken in another pid namespace (a gateway in a container, the commands on the host: its host tag not this
 * process's) is judged by that age alone: its pid says nothing here (docs/operations.md, "Processes in other
 * containers"); before, a live holder there whose pid was free here lost its lock at once, and two processes changed
 * the file at once.
 */
const STALE_MS = 10_000;
const FRESH_MS = STALE_MS / 3;
const WAIT_MS = 5;
const GIVE_UP_MS = 5_000;
/** How long past STALE_MS a lock of another pid namespace is waited on (it is taken over once stale). */
const FOREIGN_MARGIN_MS = 1_000;
/** How long past FRESH_MS a live holder may leave its lock untouched (a busy machine) before it is judged not to hold it. */
const UNTOUCHED_MARGIN_MS = 1_000;

const chains = new Map<string, Promise<unknown>>();

/**
 * A change refused because another process held the file's lock all the while its caller would wait: nothing was
 * changed, and it can be made again. `code` EBUSY, so that whoever answers it says the data folder is busy (503
 * STORAGE_UNAVAILABLE with Retry-After, the console's 503 page, a command's one line: local/server/storage-failure.ts).
 */
export class LockBusyError extends Error {
  override name = 'LockBusyError';
  readonly code = 'EBUSY';
  readonly syscall = 'open';
  /** What held the change up, without what it means for the caller ("nothing was changed"). */
  readonly held: string;
  constructor(
    readonly path: string,
    waitedMs: number,
  ) {
    const held = `${path} is held by another process for more than ${Math.round(waitedMs)} ms`;
    super(`${held}: nothing was changed; try again`);
    this.held = held;
  }
}

/** How long a caller waits for a lock, at most: its deadline's abort (a delivery's), or a time (ms, the Date clock). */
export interface LockWait {
  /** The caller's deadline (Deliver's: functions/shared/clients/request-limits.ts) ends the wait. */
  signal?: AbortSignal | undefined;
  /**
   * When the caller stops waiting (a console page's, a command's bound): before the 11 s a lock of another pid
   * namespace may be waited on, never after.
   */
  until?: number | undefined;
  /**
   * Told once when the wait goes on past GIVE_UP_MS for a lock of another pid namespace (`foreign`), or for one that
   * names a live process here which has not touched it as a holder does (`untouched`: a pid reused after a restart):
   * the lock, its holder's pid, how long it is waited for at most, and which (a command says so on stderr: it is no
   * hang).
   */
  notice?: ((lock: string, pid: number, waitMs: number, kind: 'foreign' | 'untouched') => void) | undefined;
}

/**
 * What became of the process a lock's text names (functions/shared/writers.ts: by its pid when it was taken in this pid
 * namespace or by an earlier version, by the lock's `ageMs` when in another). A lock is never empty while held
 * (createExclusive): an empty one's holder is gone. Unreadable, or no process id: not known to be gone ('fresh': judged
 * by its age alone).
 */
function holderState(text: string, ageMs: number): WriterState {
  if (text === '') return 'gone';
  const holder = stampedWriter(text);
  if (!holder || !(holder.pid > 0)) return 'fresh';
  return writerState(holder, { ms: ageMs, staleMs: STALE_MS });
}

/**
 * Gone by its pid (or this process, which holds no lock outside its chain: an earlier process that had its id), at
 * once; one of another pid namespace is judged by its age alone, as any lock older than STALE_MS is (re-judged under
 * the claim: removeStaleLock's `olderThanMs`, since its holder may touch it meanwhile).
 */
const holderGone = (state: WriterState) => state === 'gone' || state === 'this process';

/**
 * Take the lock; its text is this holder's own: `<pid>@<host>` (holderState reads it; an earlier version's parseInt
 * reads the pid), then a random tag, so that a takeover judged on an earlier holder's lock (its text read then) never
 * removes a later one of the same process.
 */
async function acquire(lock: string, wait: LockWait = {}): Promise<string> {
  const mine = `${writerStamp()}.${randomBytes(4).toString('hex')}`;
  const started = Date.now();
  const until = wait.until ?? Number.POSITIVE_INFINITY;
  let giveUpAt = Math.min(started + GIVE_UP_MS, until);
  const foreignSeen = new Set<string>();
  const untouchedSeen = new Set<string>();
  for (;;) {
    wait.signal?.throwIfAborted();
    if (await createExclusive(lock, mine, 0o600)) return mine;
    const age = await stat(lock).then(
      (s) => Date.now() - s.mtimeMs,
      () => 0,
    );
    const text = await lockText(lock);
    const state = text === null ? 'fresh' : holderState(text, age);
    const gone = text !== null && holderGone(state);
    if (text !== null && (gone || age > STALE_MS) && (await removeStaleLock(lock, text, gone ? undefined : STALE_MS)))
      continue;
    // A holder of another pid namespace is known to be gone only once its lock is stale: the wait for it lasts until
    // then (from its lock's age when first seen) and FOREIGN_MARGIN_MS more. Before, a container's writer killed while
    // holding it got every change of the next 10 s refused after 5 s, though its lock was taken over at 10 s.
    if (text !== null && state === 'fresh' && stampedWriter(text)?.host && !foreignSeen.has(text)) {
      foreignSeen.add(text);
      giveUpAt = Math.min(Math.max(giveUpAt, Date.now() - age + STALE_MS + FOREIGN_MARGIN_MS), until);
      wait.notice?.(lock, stampedWriter(text)?.pid ?? 0, giveUpAt - Date.now(), 'foreign');
    }
    // A lock of this pid namespace naming a live process that has not touched it for longer than a holder lets pass
    // (FRESH_MS, and a margin for a busy machine): its pid is most likely another process's now (pid 1 after a
    // container's restart, a pid reused after a crash), and the lock is taken over once stale. Waited for until then
    // as a foreign one is; before, the change was refused after GIVE_UP_MS with "try again", and again each time
    // until the lock was 10 s old.
    if (text !== null && state === 'alive' && age > FRESH_MS + UNTOUCHED_MARGIN_MS && !untouchedSeen.has(text)) {
      untouchedSeen.add(text);
      giveUpAt = Math.min(Math.max(giveUpAt, Date.now() - age + STALE_MS + FOREIGN_MARGIN_MS), until);
      wait.notice?.(lock, stampedWriter(text)?.pid ?? 0, giveUpAt - Date.now(), 'untouched');
    }
    // Refused: nothing was changed, and the change can be made again (docs/operations.md, "Processes in other
    // containers").
    if (Date.now() > giveUpAt) throw new LockBusyError(lock, giveUpAt - started);
    await new Promise((resolve) => setTimeout(resolve, WAIT_MS));
  }
}

/**
 * The lock given back: removed only while it is still this holder's (it holds the text this holder wrote). One that
 * aged past STALE_MS while `fn` ran may have been taken over by another process meanwhile: a plain `rm` deleted that
 * process's lock, and a third then took it while the second still changed the file. Removed as a stale lock is
 * (removeStaleLock, under a claim on it as this holder wrote it), so a takeover under way and this release never both
 * act on it.
 */
async function release(lock: string, mine: string): Promise<void> {
  const started = Date.now();
  // A claim on it that is no claim (lockText): the lock is left to age, the change made stands (the next take names it).
  const noClaim = (error: unknown) => {
    if (error instanceof UnreadableFileError) return true;
    throw error;
  };
  while (!(await removeStaleLock(lock, mine).catch(noClaim))) {
    // Another process is taking it over (it found it stale): it removes it, or finds it changed. Once GIVE_UP_MS has
    // passed, it is left: it names a live process, so it goes once STALE_MS old (at once for this process).
    if (Date.now() - started > GIVE_UP_MS) return;
    await new Promise((resolve) => setTimeout(resolve, WAIT_MS));
  }
}

/**
 * A lock's heartbeat: `file`'s mtime set to now every `everyMs`, only while it is still this holder's (it holds the
 * text `mine`): one taken over meanwhile is another holder's to keep. Best effort: a touch that fails leaves the lock
 * to age. One touch at a time; `stop` waits for the one under way (gateway.pid has its own: data-dir-lock.ts).
 */
export function keepTouched(file: string, mine: string, everyMs: number): { stop(): Promise<void> } {
  let touching: Promise<void> | null = null;
  const touch = async () => {
    if ((await lockText(file).catch(() => null)) !== mine) return;
    const now = new Date();
    await utimes(file, now, now).catch(() => undefined);
  };
  const timer = setInterval(() => {
    touching ??= touch().finally(() => {
      touching = null;
    });
  }, everyMs);
  timer.unref();
  return {
    async stop() {
      clearInterval(timer);
      await touching;
    },
  };
}

export function withFileLock<T>(file: string, fn: () => Promise<T>, wait?: LockWait): Promise<T> {
  const lock = `${file}.lock`;
  return oneAtATime(file, async () => {
    const mine = await acquire(lock, wait);
    // Before: a holder still working after STALE_MS (a slow disk) had its lock taken over, and two processes changed
    // the file at once. Nothing is touched by a hold shorter than FRESH_MS (the delivery path's).
    const fresh = keepTouched(lock, mine, FRESH_MS);
    try {
      return await fn();
    } finally {
      await fresh.stop();
      await release(lock, mine);
    }
  });
}

/**
 * `fn` run once every earlier call for the same `key` in this process has settled (a promise chain per key): for a
 * read-modify-write that only this process makes (the thread store's turn claims: only the gateway claims turns).
 */
export function oneAtATime<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const run = (chains.get(key) ?? Promise.resolve()).then(fn);
  const settled = run.catch(() => undefined);
  chains.set(key, settled);
  void settled.then(() => {
    if (chains.get(key) === settled) chains.delete(key);
  });
  return run;
}

/**
 * `fn` run alone with the claims and records of the local thread folder `folder`: the retention sweep looks at a
 * folder and removes it under this, so a turn claimed in the middle is never removed with it (local/store/retention.ts).
 * The gateway is the one process that claims turns and sweeps. Here, not in thread-store.ts: the sweep imports it
 * without the stores' SDK clients and Powertools.
 */
export function withThreadFolder<T>(folder: string, fn: () => Promise<T>): Promise<T> {
  return oneAtATime(`thread:${path.resolve(folder)}`, fn);
}
