import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import { hostname } from 'node:os';

/**
 * Who wrote a file of the data folder, and whether that writer is gone: the one rule every judgement of a pid in a
 * file or a file name follows (docs/operations.md, "Processes in other containers"). The data folder may be shared by
 * processes in several pid namespaces (a gateway in a container and the commands on the host, two containers on one
 * volume, a container restarted: same host name, new namespace, pids reused from 1), where a pid says nothing about a
 * process of another namespace. So each writer names its pid and its host tag (writerHost), and:
 * - a tag of this process's own (same host, same pid namespace), or none (a file an earlier version wrote): by the
 *   pid, as before: this process, another live one (EPERM included: someone else's), or gone (ESRCH);
 * - another tag: by the file's age alone: fresh while at most `staleMs` old (a live writer keeps what it holds fresh,
 *   or it is kept that long), stale after. Its pid is never looked up here: alive or gone, it is another process's.
 */

/**
 * Which pid namespace of which machine this process's pid is of: 8 hex digits of the host name, the pid namespace
 * (`/proc/self/ns/pid`) and the machine's id (`/etc/machine-id`, else `/var/lib/dbus/machine-id`; none: the tag of
 * the host name and namespace alone, as before it was read). The machine id tells apart two machines of one host name
 * sharing a mount: the host's own pid namespace has the same id on every Linux machine. Not the boot id: after a
 * reboot (a power cut) every writer of before is gone, and what it left is judged by its pid as before (the host's own
 * namespace keeps its tag; a container's gets a new one at each start). Read once (docs/operations.md, "Processes in
 * other containers").
 */
export function writerHost(): string {
  hostTag ??= hostTagOf(MACHINE_ID_FILES);
  return hostTag;
}

const MACHINE_ID_FILES = ['/etc/machine-id', '/var/lib/dbus/machine-id'];

/** writerHost() of this process with the machine id read from the first of `machineIdFiles` that holds one. */
export function hostTagOf(machineIdFiles: readonly string[]): string {
  const parts = [hostname(), linkOr('/proc/self/ns/pid')];
  const machineId = machineIdFiles.map(machineIdIn).find((id) => id !== '');
  if (machineId) parts.push(machineId);
  return createHash('sha256').update(parts.join('\n')).digest('hex').slice(0, HOST_TAG_LENGTH);
}

/** The length of writerHost(): at the front of the hex part of a copy written aside, `<file>.<pid>.<host><random>.tmp`. */
const HOST_TAG_LENGTH = 8;
let hostTag: string | undefined;
const linkOr = (file: string) => {
  try {
    return fs.readlinkSync(file);
  } catch {
    return '';
  }
};

/** The 32 hex digits of a machine-id file, or '' (none, unreadable, `uninitialized` at a first boot, a FIFO). */
function machineIdIn(file: string): string {
  try {
    // Numeric open flags are taken at run time (Node's types name the string ones only): O_NONBLOCK, a FIFO unwaited.
    const flag = (fs.constants.O_RDONLY | fs.constants.O_NONBLOCK) as unknown as string;
    const id = fs.readFileSync(file, { encoding: 'latin1', flag });
    return /^[0-9a-f]{32}$/.test(id.trim()) ? id.trim() : '';
  } catch {
    return '';
  }
}

/** This process as a lock or a pid file names it: `<pid>@<host>` (an earlier version's parseInt still reads the pid). */
export const writerStamp = () => `${process.pid}@${writerHost()}`;

/** The writer at the front of a lock's or a pid file's text (`<pid>@<host>…`, or `<pid>…` of an earlier version). */
export function stampedWriter(text: string): { pid: number; host: string | null } | null {
  const stamp = /^(\d+)(?:@([0-9a-f]{8}))?/.exec(text);
  return stamp ? { pid: Number(stamp[1]), host: stamp[2] ?? null } : null;
}

/**
 * The writer of a copy written aside, `<name>.<pid>.<hex>.tmp`: the hex begins with its host when it is
 * HOST_TAG_LENGTH + 12 digits long (12 without one: a copy of a version before it).
 */
export function asideWriter(pid: string | number, hex: string): { pid: number; host: string | null } {
  return { pid: Number(pid), host: hex.length === HOST_TAG_LENGTH + 12 ? hex.slice(0, HOST_TAG_LENGTH) : null };
}

/** The host tag of a copy written aside by this process: `<file>.<pid>.<host><random>.tmp`. */
export const asideTag = () => `${process.pid}.${writerHost()}`;

let drawn: string | undefined;
let count = 0;

/**
 * 12 hex digits no other call in this process gives: 6 drawn at random once per process (a later process given the
 * same pid does not meet a file an earlier one left) and a count of the calls (wrapping at 16,777,216: a file named
 * by one is renamed or removed long before), without 6 random bytes drawn for each (docs/performance.md §2, perf24).
 */
function uniqueInProcess(): string {
  drawn ??= randomBytes(3).toString('hex');
  count = (count + 1) % 0x1000000;
  return `${drawn}${count.toString(16).padStart(6, '0')}`;
}

/**
 * Where this process writes `file` before it renames (or links) it into place: `<file>.<pid>.<host><12 hex>.tmp`, its
 * host tag beside its pid, so that a sweep run in another container sharing the data folder (its pids another
 * namespace's) does not take that pid for one of its own (local/store/json-files.ts).
 */
export const asideName = (file: string): string => `${file}.${asideTag()}${uniqueInProcess()}.tmp`;

/** A temporary file's name of this process (the embedded S3's objects in the making): `<pid>@<host>-<12 hex>`. */
export const processTempName = (): string => `${writerStamp()}-${uniqueInProcess()}`;

/** Whether a process of this pid namespace has this pid (EPERM: alive, someone else's). */
function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * What became of a writer (the rule above): 'this process', 'alive' or 'gone' by its pid when its tag is this
 * process's or it has none; 'fresh' or 'stale' by `age` when its tag is another's (fresh when no age is given: not
 * known to be gone).
 */
export type WriterState = 'this process' | 'alive' | 'gone' | 'fresh' | 'stale';

export function writerState(
  writer: { pid: number; host: string | null },
  age?: { ms: number; staleMs: number },
): WriterState {
  if (writer.host !== null && writer.host !== writerHost()) return age && age.ms > age.staleMs ? 'stale' : 'fresh';
  if (writer.pid === process.pid) return 'this process';
  return pidAlive(writer.pid) ? 'alive' : 'gone';
}
