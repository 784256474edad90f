import { readdir, stat } from 'node:fs/promises';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { censusOfFolder, type FolderSum, type FolderTimes, readFolder } from './file-writer.ts';

/**
 * A folder's objects and subfolders in S3's key order, for listings (object-store.ts): read with readdir and sorted,
 * or, for a folder of many, kept in memory between listings, so a page of a folder of 100,000 keys finds its first key
 * by binary search instead of reading and sorting the folder again (which took 2 s a page and held the event loop
 * for most of it; docs/performance.md, the embedded S3 paragraph).
 *
 * What is kept stays true three ways. The store reports each change it makes (added, removed) and the kept list is
 * changed in place (a listing half-way through it finds its place again after each pause: stillAt). Any other change
 * (a file copied in by hand, another process) changes the folder's time: each use compares it (one stat). When the
 * time cannot tell (the store changed the folder since, which changed its time too; or the folder was last checked
 * within RACY_MS of its time, and a change in the same tick of the file system's clock would leave it as it was), the
 * file thread takes the folder's census (file-writer.ts: how many entries, and two sums of their names' hashes,
 * kept with the list and updated by each change of the store's) and the folder is read again only when it differs.
 * Before, a change by another process between two of the store's, or in the same tick as one, stayed unlisted until
 * the next change by anyone else. A folder the store keeps changing (exports written into it) has its census taken
 * at most every RACY_MS, so another process's change shows within that time. Nothing is written to disk: a start
 * reads each folder again at its first listing.
 *
 * The census is taken only when the folder may have changed otherwise. The file thread, which makes the store's
 * folders and renames its objects into them, reads the folder's time just before and just after each such change
 * (file-writer.ts, FolderTimes): when each change of the store's since the list was last found true began at the time
 * the one before it left, and the folder still has the time the last one left, nothing else changed it (a change by
 * anything else between two of the store's shows as a time the next one did not begin at), and the list is taken as
 * true without a census. Two changes the time cannot tell are left: one in the same tick of the file system's clock as
 * one of the store's, and one between the thread's read of the time and its change (microseconds): a census once the
 * folder's time is RACY_MS old, or at the latest every BACKSTOP_MS while the store keeps changing it, finds them. Any
 * change the store makes elsewhere (a delete, from the event loop) takes the census as before. Before, a folder the
 * store kept changing had its census taken every RACY_MS while listed (~110 ms of the file thread at 100,000 entries).
 */
export interface FolderEntry {
  /** The file or folder's name as stored (encodeSegment). */
  name: string;
  dir: boolean;
  /** The segment as it sorts among its siblings: a folder holds keys that continue with `/`. */
  order: string;
}

interface KeptFolder {
  ino: bigint;
  /** The folder's time (mtimeNs) when its list was last found true (a change in the same tick: `racy`). */
  mtime: bigint;
  /** Its time was within RACY_MS of the clock then: a change since may have left it as it was. */
  racy: boolean;
  /** The store changed it since: its time changed with it and tells nothing of anyone else's change. */
  changed: boolean;
  /** The store's changes made to it in all (a census under way when one is made can tell nothing). */
  changes: number;
  /**
   * Since it was `changed`: the time the store's last change left it, while each of them came with its times and began
   * at the time the one before left (file-writer.ts, FolderTimes); null when one did not.
   */
  leftAt: bigint | null;
  /** Found true by those times, not by a census: one is taken once the time is RACY_MS old, or BACKSTOP_MS after the last. */
  byTimes: boolean;
  /** Its census as the list stands (folderSum). */
  sum: FolderSum;
  entries: FolderEntry[];
  /** The clock when it was last read or its census taken. */
  checkedAt: number;
  /** A census under way. */
  checking?: Promise<boolean>;
}

type Change = { name: string; dir: boolean } | { name: string; removed: true };

/** Folders with this many objects and subfolders or more are kept between listings. */
const KEEP_FROM = 1_000;
/** Entries kept in all (a few hundred bytes each): past it, the folders kept longest are dropped. */
const KEEP_AT_MOST = 2_000_000;
/** How close to the clock a folder's time makes it "racy" (file systems' clocks tick in up to 1 to 2 s). */
const RACY_MS = 2_000;
/** At the latest this long after a census, another, while the store keeps changing a folder (its times tell the rest). */
const BACKSTOP_MS = 30_000;
/** Entries made at a time from a folder the file thread read: the event loop runs between. */
const YIELD_EVERY = 10_000;
/** A folder this large on disk (a few thousand entries) is read by the file thread. */
const LARGE_FOLDER_BYTES = 64n * 1024n;

const msOf = (ns: bigint) => Number(ns / 1_000_000n);
const isMissing = (error: unknown) => ['ENOENT', 'ENOTDIR'].includes((error as NodeJS.ErrnoException).code ?? '');
const statOrNull = (dir: string) =>
  stat(dir, { bigint: true }).catch((error: unknown) => {
    if (isMissing(error)) return null;
    throw error;
  });

export class FolderIndex {
  private readonly kept = new Map<string, KeptFolder>();
  private readonly reading = new Map<string, { done: Promise<FolderEntry[]>; changes: Change[] }>();
  private keptEntries = 0;

  constructor(
    private readonly keepFrom = KEEP_FROM,
    private readonly clock: () => number = Date.now,
  ) {}

  /** The folder's entries in key order (the store's `.`-files left out); none when it is not there. */
  async entries(dir: string): Promise<FolderEntry[]> {
    const kept = this.kept.get(dir);
    if (kept) {
      const now = this.clock();
      const s = await statOrNull(dir);
      if (s?.ino === kept.ino) {
        if (s.mtimeNs === kept.mtime && !kept.racy && !kept.changed) return kept.entries;
        // Changed by the store only (its times chain up to the folder's): true as it stands, no census.
        if (kept.changed && kept.leftAt === s.mtimeNs) {
          kept.mtime = s.mtimeNs;
          kept.changed = false;
          kept.leftAt = null;
          kept.racy = true;
          kept.byTimes = true;
        }
        // What the times cannot tell (a change in the same tick as the store's) is told by a census once the folder's
        // time is RACY_MS old, or BACKSTOP_MS after the last.
        if (
          kept.byTimes &&
          s.mtimeNs === kept.mtime &&
          !kept.changed &&
          msOf(kept.mtime) > now - RACY_MS &&
          now - kept.checkedAt < BACKSTOP_MS
        )
          return kept.entries;
        // Changed by the store since: a census at most every RACY_MS (one of 100,000 entries takes the file thread,
        // which writes the exports too, ~100 ms; a folder that exports are written into changes all the time).
        if (kept.changed && now - kept.checkedAt < RACY_MS) return kept.entries;
        kept.checking ??= this.check(dir, kept, s.mtimeNs, now).finally(() => {
          kept.checking = undefined;
        });
        if (await kept.checking) return kept.entries;
      }
      if (this.kept.get(dir) === kept) this.drop(dir);
      if (!s) return [];
    }
    const reading = this.reading.get(dir);
    if (reading) return reading.done;
    const changes: Change[] = [];
    const done = this.read(dir, changes).finally(() => this.reading.delete(dir));
    this.reading.set(dir, { done, changes });
    return done;
  }

  /**
   * The store made (or wrote) `name` in `dir`; `times`, the folder's just before and after, when the file thread did
   * (file-writer.ts). A folder found there already, with no times, changed nothing.
   */
  added(dir: string, name: string, isDir: boolean, times?: FolderTimes): void {
    this.change(dir, { name, dir: isDir }, times);
  }

  /** The store removed `name` from `dir`. */
  removed(dir: string, name: string): void {
    this.change(dir, { name, removed: true });
  }

  /** Forget the folders at and under `dir` (a bucket deleted). */
  forget(dir: string): void {
    for (const kept of [...this.kept.keys()]) if (kept === dir || kept.startsWith(`${dir}/`)) this.drop(kept);
  }

  /**
   * Whether the kept list is still the folder's, by the folder's census (the file thread's), which `mtime` (its time
   * at `now`, taken before) then stands for: true too when the store changed it meanwhile (the census tells nothing
   * then; the next use takes another).
   */
  private async check(dir: string, kept: KeptFolder, mtime: bigint, now: number): Promise<boolean> {
    const changes = kept.changes;
    const census = await censusOfFolder(dir).catch((error: unknown) => {
      if (isMissing(error)) return null;
      throw error;
    });
    if (!census || this.kept.get(dir) !== kept) return false;
    kept.checkedAt = now;
    if (kept.changes !== changes) return true;
    if (census.count !== kept.entries.length || census.a !== kept.sum.a || census.b !== kept.sum.b) return false;
    kept.mtime = mtime;
    kept.racy = msOf(mtime) > now - RACY_MS;
    kept.changed = false;
    kept.leftAt = null;
    kept.byTimes = false;
    return true;
  }

  private change(dir: string, change: Change, times?: FolderTimes): void {
    this.reading.get(dir)?.changes.push(change);
    const kept = this.kept.get(dir);
    if (!kept) return;
    const applied = applyChange(kept.entries, change, kept.sum);
    this.keptEntries += applied;
    // A folder the store found there (each write tells every folder on its key's way) did not change this one.
    if (applied === 0 && !times && 'dir' in change && change.dir) return;
    const from = kept.changed ? kept.leftAt : kept.mtime;
    kept.leftAt = times && from !== null && BigInt(times[1]) === from ? BigInt(times[2]) : null;
    kept.changed = true;
    kept.changes += 1;
  }

  private drop(dir: string): void {
    const kept = this.kept.get(dir);
    if (!kept) return;
    this.keptEntries -= kept.entries.length;
    this.kept.delete(dir);
  }

  private async read(dir: string, changes: Change[]): Promise<FolderEntry[]> {
    const readAt = this.clock();
    const before = await statOrNull(dir);
    if (!before?.isDirectory()) return [];
    let entries: FolderEntry[] = [];
    let sum: FolderSum;
    try {
      // A small folder here; a large one (by its size on disk) read and sorted by the file thread (file-writer.ts).
      if (before.size < LARGE_FOLDER_BYTES) {
        for (const d of await readdir(dir, { withFileTypes: true })) push(entries, d.name, d);
        sortByOrder(entries);
        sum = { count: 0, a: 0, b: 0 };
        for (const e of entries) addToSum(sum, e.name, e.dir, 1);
      } else {
        const read = await readFolder(dir);
        sum = read.sum;
        entries = new Array(read.entries.length);
        for (let i = 0; i < read.entries.length; i++) {
          if (i % YIELD_EVERY === YIELD_EVERY - 1) await nextTurn(); // other requests run between
          const { name, dir } = read.entries[i]!;
          const segment = decodeSegment(name);
          entries[i] = { name, dir, order: dir ? `${segment}/` : segment };
        }
      }
    } catch (error) {
      if (isMissing(error)) return [];
      throw error;
    }
    for (const change of changes) applyChange(entries, change, sum);
    if (entries.length >= this.keepFrom) {
      this.kept.set(dir, {
        ino: before.ino,
        mtime: before.mtimeNs,
        racy: msOf(before.mtimeNs) > readAt - RACY_MS,
        changed: changes.length > 0,
        changes: 0,
        leftAt: null,
        byTimes: false,
        checkedAt: readAt,
        sum,
        entries,
      });
      this.keptEntries += entries.length;
      for (const [other] of this.kept) {
        if (this.keptEntries <= KEEP_AT_MOST) break;
        if (other !== dir) this.drop(other);
      }
    }
    return entries;
  }
}

/**
 * Add (`sign` 1) or take away (-1) an entry's hashes in a folder's census: the same two hashes of its stored name as
 * the file thread's (file-writer.ts, hashInto), summed mod 2^32, so no order of changes matters.
 */
function addToSum(sum: FolderSum, name: string, dir: boolean, sign: 1 | -1): void {
  let a = 0x811c9dc5;
  let b = 0x9747b28c;
  for (let i = 0; i < name.length; i++) {
    const c = name.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995) ^ (b >>> 15);
  }
  if (dir) {
    a = Math.imul(a ^ 0x2f, 0x01000193);
    b = Math.imul(b ^ 0x2f, 0x5bd1e995) ^ (b >>> 15);
  }
  sum.count += sign;
  sum.a = (sum.a + sign * (a >>> 0)) >>> 0;
  sum.b = (sum.b + sign * (b >>> 0)) >>> 0;
}

function push(entries: FolderEntry[], name: string, d: { isDirectory(): boolean; isFile(): boolean }): void {
  if (name.startsWith('.')) return; // the store's metadata, temporary and multipart files
  const segment = decodeSegment(name);
  if (d.isDirectory()) entries.push({ name, dir: true, order: `${segment}/` });
  else if (d.isFile()) entries.push({ name, dir: false, order: segment });
}

/** S3's key order: UTF-8 bytes, i.e. code points (UTF-16 units differ only around surrogates). */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const x = a.charCodeAt(i);
    const y = b.charCodeAt(i);
    if (x !== y) {
      if (x >= 0xd800 && y >= 0xd800 && x <= 0xdfff !== y <= 0xdfff) return x <= 0xdfff ? 1 : -1;
      return x - y;
    }
  }
  return a.length - b.length;
}

/** A file name back to its key segment (the inverse of object-store.ts's encodeSegment). */
export function decodeSegment(name: string): string {
  if (!name.includes('%')) return name;
  return name === '%'
    ? ''
    : name.replace(/%([0-9A-F]{2})/g, (_, h: string) => String.fromCharCode(Number.parseInt(h, 16)));
}

const SURROGATE = /[\ud800-\udfff]/;

/** In key order; JavaScript's own string order where it is the same (no surrogates), which is several times faster. */
function sortByOrder(entries: FolderEntry[]): void {
  if (entries.some((e) => SURROGATE.test(e.order))) entries.sort((a, b) => compareKeys(a.order, b.order));
  else entries.sort((a, b) => (a.order < b.order ? -1 : a.order > b.order ? 1 : 0));
}

/** The first entry whose order is `order` or after it. */
export function lowerBound(entries: FolderEntry[], order: string): number {
  let lo = 0;
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compareKeys(entries[mid]!.order, order) < 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The first entry after every one whose order begins with `start`. */
export function pastPrefix(entries: FolderEntry[], start: string): number {
  let lo = lowerBound(entries, start);
  let hi = entries.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (entries[mid]!.order.startsWith(start)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * Make the change in the list itself: found by binary search, spliced in or out (a move of the entries after it, no
 * copy: before, each key written into a folder of 100,000 copied its list, 20 to 21 ms of the event loop per export;
 * docs/performance.md). A listing reading the list meanwhile finds its place again after each pause (stillAt).
 * Returns the entries added (1), removed (-1) or neither (0).
 */
function applyChange(entries: FolderEntry[], change: Change, sum: FolderSum): number {
  const segment = decodeSegment(change.name);
  const at = (order: string) => {
    const i = lowerBound(entries, order);
    return entries[i]?.order === order && entries[i]!.name === change.name ? i : -1;
  };
  if ('removed' in change) {
    const i = Math.max(at(segment), at(`${segment}/`));
    if (i < 0) return 0;
    addToSum(sum, change.name, entries[i]!.dir, -1);
    entries.splice(i, 1);
    return -1;
  }
  const order = change.dir ? `${segment}/` : segment;
  if (at(order) >= 0) return 0;
  entries.splice(lowerBound(entries, order), 0, { name: change.name, dir: change.dir, order });
  addToSum(sum, change.name, change.dir, 1);
  return 1;
}

/**
 * Where a walk of a folder's entries stands after a pause in which the list may have changed (folder-index.ts changes
 * a kept folder's list in place): the index of `entry` (the one it was at, `i` before the pause), or of the entry
 * before the first one after it when it was removed; the walk goes on with the next. So it neither repeats nor skips
 * an entry, and lists those added after its place.
 */
export function stillAt(entries: FolderEntry[], i: number, entry: FolderEntry): number {
  if (entries[i] === entry) return i;
  const j = lowerBound(entries, entry.order);
  return entries[j]?.order === entry.order ? j : j - 1;
}
