/**
 * One gateway per LOCAL_DATA_DIR: two would recover each other's conversations in flight from the journal and
 * redeliver each other's envelopes. The running gateway holds `<dataDir>/gateway.pid`, which names it from the moment
 * it exists (createExclusive); a start that finds it held by a live process is refused, one left by a killed gateway
 * takes it over at once (the journal then recovers what it left). The folder may be shared across pid namespaces (a
 * gateway in a container, another container on the same volume, the container restarted): the file names its
 * gateway's host tag too, and the running gateway refreshes its mtime every FRESH_MS, so a start in another namespace
 * judges it by that age alone (functions/shared/writers.ts; docs/operations.md, "Processes in other containers").
 */
import { utimesSync } from 'node:fs';
import { readFile, rmdir, stat, unlink, utimes } from 'node:fs/promises';
import path from 'node:path';
import {
  createExclusive,
  readDataFileSync,
  readDataText,
  removeStaleLock,
} from '../../functions/shared/local-files.ts';
import { stampedWriter, writerStamp, writerState } from '../../functions/shared/writers.ts';

export class DataDirInUseError extends Error {}

/**
 * The running gateway touches its pid file this often; a file of another pid namespace's gateway not touched for
 * STALE_MS is one whose gateway is gone (killed, its container stopped or restarted), taken over.
 */
const FRESH_MS = 10_000;
const STALE_MS = 30_000;
/** How often a start looks again at a fresh file of another namespace's gateway, to see it touched or stale. */
const WATCH_MS = 1_000;

const WAIT_MS = 20;

/** `/proc/<pid>/stat` after the command's name (which may hold spaces and parentheses): state, ppid, …; or null. */
async function procStat(pid: number | 'self'): Promise<string[] | null> {
  const text = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => null);
  return text === null ? null : text.slice(text.lastIndexOf(')') + 2).split(' ');
}

/** A process's command line as /proc shows it, or null (no /proc, or gone). */
const commandLine = (pid: number | 'self') =>
  readFile(`/proc/${pid}/cmdline`, 'utf8').then(
    (text) => text.replace(/\0+$/, '').replace(/\0/g, ' '),
    () => null,
  );

/** When the process started, in clock ticks after boot (/proc/<pid>/stat), as text; or null (no /proc, or gone). */
async function startTicks(pid: number | 'self'): Promise<string | null> {
  const ticks = (await procStat(pid))?.[19];
  return ticks && /^\d+$/.test(ticks) ? ticks : null;
}

/** When the process started (ms since the epoch), from /proc: its start in clock ticks after boot; or null. */
async function startedAtMs(pid: number): Promise<number | null> {
  const ticks = await startTicks(pid);
  const boot = /^btime (\d+)$/m.exec((await readFile('/proc/stat', 'utf8').catch(() => '')) ?? '')?.[1];
  return boot && ticks !== null ? Number(boot) * 1000 + Number(ticks) * 10 : null; // USER_HZ is 100 on Linux
}

/** How long after the pid file was written its holder must have started to be taken for another process. */
const STARTED_AFTER_MS = 2_000;

/**
 * Why the live process `holder`, named by the pid file, is not the gateway that wrote it, or null when it may be. A
 * container restarted (or a machine rebooted) gives its processes the pids of the last run again: the pid of the
 * gateway that was killed may now be this start's own `npm` or `sh`, and a start refused on it waited until the file
 * was deleted by hand. Not a gateway: an ancestor of this process (a gateway never starts another), or a process that
 * started after the file was written (the writer was running when it wrote it) and runs another command line.
 */
async function notAGateway(holder: number, file: string, text: string): Promise<string | null> {
  const seen = new Set<number>();
  for (let pid = process.ppid, depth = 1; pid > 1 && !seen.has(pid); depth++) {
    if (pid === holder) {
      const name = (await commandLine(pid))?.split(' ').slice(0, 2).join(' ');
      return `this start's own ${depth === 1 ? 'parent' : 'ancestor'} process${name ? ` (${name})` : ''}`;
    }
    seen.add(pid);
    pid = Number((await procStat(pid))?.[1] ?? 0); // without /proc: only the parent is known
  }
  // The file names its writer's start too (`<pid> <start ticks>`): another start is another process, whatever the
  // clocks say. Only a file an earlier version wrote (its pid alone) is judged by the times and command lines below.
  const recorded = text.trim().split(' ')[1];
  if (recorded !== undefined) {
    const ticks = await startTicks(holder);
    return ticks === null || ticks === recorded
      ? null
      : 'a process started after the gateway that wrote the file (a restart reused the pid)';
  }
  const [started, written, theirs, ours] = await Promise.all([
    startedAtMs(holder),
    stat(file).then(
      (s) => s.mtimeMs,
      () => null,
    ),
    commandLine(holder),
    commandLine('self'),
  ]);
  if (started === null || written === null || theirs === null || theirs === ours) return null;
  if (started - written > STARTED_AFTER_MS)
    return `a process started after the file was written (${theirs.split(' ').slice(0, 2).join(' ')}; a restart reused the pid)`;
  return null;
}

/** The pid file's text, or null when it is gone. */
const textOf = (file: string) => readDataText(file, { maxBytes: 64 * 1024 });

const mtimeOf = (file: string) =>
  stat(file).then(
    (s) => s.mtimeMs,
    () => null,
  );

export interface DataDirLockOptions {
  /** How a start waits before it looks again (a timer unless said: tests move a fake clock instead). */
  wait?: (ms: number) => Promise<void>;
  /** Told once when the start waits on a file of another namespace's gateway to be touched or go stale. */
  notice?: (line: string) => void;
  /** Told once when the file this gateway holds was taken over by another (this one stood still past STALE_MS). */
  onLost?: (line: string) => void;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * `tookOver`: the line to print when the file named a live process that is no gateway (notAGateway), or a gateway of
 * another pid namespace that stopped refreshing it, taken over. `stale`: a file left by an earlier gateway was taken
 * over (it did not stop cleanly: killed, or the machine lost power), so a crash's leftovers may lie anywhere in the
 * folder (recovery.ts).
 */
export async function lockDataDir(
  dataDir: string,
  options: DataDirLockOptions = {},
): Promise<{
  release(): Promise<void>;
  held(): boolean;
  tookOver: string | null;
  stale: boolean;
  /** What this gateway wrote in gateway.pid: who serves the folder (dataDirHolder reads it from any mount of it). */
  stamp: string;
}> {
  const wait = options.wait ?? sleep;
  const file = path.join(dataDir, 'gateway.pid');
  // `<pid>@<host>`, then when this process started (clock ticks after boot, where /proc has it): a later holder of the
  // same pid is known for another process by it (notAGateway); one of another namespace by its host.
  const ticks = await startTicks('self');
  const mine = ticks === null ? writerStamp() : `${writerStamp()} ${ticks}`;
  let tookOver: string | null = null;
  let stale = false;
  /** A fresh file of another namespace's gateway, as first seen: its text and mtime (watched for a touch). */
  const watched = { text: '', mtimeMs: 0 };
  for (;;) {
    if (await createExclusive(file, mine, 0o600)) break;
    const [text, mtimeMs] = await Promise.all([textOf(file), mtimeOf(file)]);
    if (text === null || mtimeMs === null) continue; // gone meanwhile
    const writer = stampedWriter(text);
    const holder = writer?.pid ?? 0;
    const state = writer && holder > 0 ? writerState(writer, { ms: Date.now() - mtimeMs, staleMs: STALE_MS }) : 'gone';
    if (state === 'fresh') {
      // Another pid namespace's gateway (its pid says nothing here): running while it touches the file.
      const elsewhere = `pid ${holder} of another pid namespace or host (a container sharing this folder)`;
      if (watched.text === text && watched.mtimeMs !== mtimeMs)
        throw new DataDirInUseError(
          `another gateway (${elsewhere}) is using ${dataDir}: it keeps ${file} fresh; stop it, or give this one its own LOCAL_DATA_DIR`,
        );
      if (watched.text !== text) {
        Object.assign(watched, { text, mtimeMs });
        options.notice?.(
          `${file} names ${elsewhere}, refreshed ${Math.max(0, Math.round((Date.now() - mtimeMs) / 1000))} s ago: waiting until it is refreshed (that gateway runs: this start is refused) or ${STALE_MS / 1000} s old (it is gone: taken over)`,
        );
      }
      await wait(WATCH_MS);
      continue;
    }
    if (state === 'stale')
      tookOver = `${file} named pid ${holder} of another pid namespace or host, not refreshed for ${Math.round((Date.now() - mtimeMs) / 1000)} s: its gateway is gone (killed, or its container stopped or restarted): taking over ${dataDir}`;
    const other = state === 'alive' ? await notAGateway(holder, file, text) : null;
    if (other !== null)
      tookOver = `${file} named pid ${holder}, which is now ${other}, not a gateway: taking over ${dataDir}`;
    else if (state === 'alive')
      throw new DataDirInUseError(
        `another gateway (pid ${holder}) is using ${dataDir}: stop it, or give this one its own LOCAL_DATA_DIR (if no gateway runs, delete ${file})`,
      );
    // Dead, stale, or no pid at all (empty: an earlier version's start killed between creating the file and writing
    // its pid; this one never leaves it empty): taken over at once, by one start of several at once (removeStaleLock
    // removes it only as it was read; whoever then creates it first holds the folder, and the others find that live
    // holder). A start killed in the middle of its takeover keeps no other waiting: its claim names a dead process.
    if (await removeStaleLock(file, text, state === 'stale' ? STALE_MS : undefined)) stale = true;
    else await wait(WAIT_MS);
  }
  // An earlier version took over with a folder beside the file: one a start killed in the middle left goes now.
  await rmdir(`${file}.takeover`).catch(() => undefined);
  const fresh = keepFresh(file, mine, dataDir, options.onLost);
  return {
    tookOver,
    stale,
    stamp: mine,
    held: fresh.held,
    async release() {
      await fresh.stop();
      // Read as every file of the data folder is (textOf): a FIFO put in its place meanwhile kept the stop waiting.
      if ((await textOf(file).catch(() => null)) === mine) await unlink(file).catch(() => undefined);
    },
  };
}

/**
 * Since the pid file was last found this gateway's, how long it is trusted to be still, without a look: no start takes
 * it over before it is STALE_MS old, and it was touched then (or within FRESH_MS after).
 */
const TRUSTED_MS = STALE_MS - FRESH_MS;

/**
 * The pid file touched every FRESH_MS while this gateway holds it (its text still `mine`), so a start in another pid
 * namespace knows it runs. Found another's (this gateway stood still past STALE_MS: a paused container, a stopped
 * process, and another namespace's start took the folder over), or gone (the data folder moved or deleted while it
 * ran), `onLost` is told once and nothing is touched. `held()` answers at once whether the folder is still this
 * gateway's, for a write about to be made (the journal's, before each step: local/engine/journal.ts): within
 * TRUSTED_MS of the last look, yes; after longer (the process stood still: a SIGSTOP, a paused container, woken with
 * its timers overdue and answers waiting), the file is read then and there, so nothing is written, delivered or
 * exported after a takeover in the moment before the timer's look would have seen it.
 */
function keepFresh(file: string, mine: string, dataDir: string, onLost?: (line: string) => void) {
  let confirmedAt = performance.now();
  let lostLine: string | null = null;
  /** Whether `text` (the file's, null: gone) is still this gateway's; else it is lost, said once. */
  const judge = (text: string | null): boolean => {
    if (text === mine) {
      confirmedAt = performance.now();
      return true;
    }
    if (lostLine === null) {
      lostLine =
        text === null
          ? `${file} is gone: ${dataDir} was moved or deleted while this gateway ran (or the file removed by hand); stop this gateway`
          : `${file} now names another gateway (${text.split(' ')[0]}): it took ${dataDir} over while this one stood still for more than ${STALE_MS / 1000} s; stop this gateway`;
      onLost?.(lostLine);
    }
    return false;
  };
  let touching: Promise<void> | null = null;
  const touch = async () => {
    // Not readable now (a permission, too many open files): not known to be lost; looked at again next time.
    const text = await textOf(file).catch(() => undefined);
    if (text === undefined || lostLine !== null || !judge(text)) return;
    const now = new Date();
    await utimes(file, now, now).catch(() => undefined);
  };
  const timer = setInterval(() => {
    touching ??= touch().finally(() => {
      touching = null;
    });
  }, FRESH_MS);
  timer.unref();
  return {
    held(): boolean {
      if (lostLine !== null) return false;
      if (performance.now() - confirmedAt < TRUSTED_MS) return true;
      let text: string | null;
      try {
        text = readDataFileSync(file, { maxBytes: 64 * 1024 })?.toString('utf8') ?? null;
      } catch {
        return true; // not readable now: not known to be lost
      }
      if (!judge(text)) return false;
      try {
        const now = new Date();
        utimesSync(file, now, now);
      } catch {}
      return true;
    },
    async stop() {
      clearInterval(timer);
      await touching;
    },
  };
}

/**
 * Whether the gateway `writer` (of gateway.json: local/store/gateway-runtime.ts) of another pid namespace runs: it
 * holds `<dataDir>/gateway.pid` and keeps it fresh (touched within STALE_MS).
 */
export async function holdsDataDir(dataDir: string, writer: { pid: number; host: string }): Promise<boolean> {
  const file = path.join(dataDir, 'gateway.pid');
  const [text, mtimeMs] = await Promise.all([textOf(file).catch(() => null), mtimeOf(file)]);
  const holder = text === null ? null : stampedWriter(text);
  return (
    holder !== null &&
    holder.pid === writer.pid &&
    holder.host === writer.host &&
    mtimeMs !== null &&
    writerState(holder, { ms: Date.now() - mtimeMs, staleMs: STALE_MS }) === 'fresh'
  );
}

/**
 * The text of `<dataDir>/gateway.pid` ('' when there is none): the stamp of the gateway serving the folder, the same
 * whatever path the folder is reached by (a symbolic link, a container's mount of it), so a command tells the gateway
 * which folder it means by it (local/server/operator-routes.ts).
 */
export async function dataDirHolder(dataDir: string): Promise<string> {
  return (await textOf(path.join(dataDir, 'gateway.pid')).catch(() => null)) ?? '';
}
