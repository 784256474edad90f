/**
 * Files of the data folder read at every use, kept in memory while unchanged (readDataTextKept): a receiver's state at
 * each delivery, the delivery secrets file. Their own module: the stage bundles that never read one do not carry it.
 */
import { lstat, stat } from 'node:fs/promises';
import { type DataFileRead, notRegularFile, readDataText } from './local-files.ts';

export interface KeptRead extends DataFileRead {
  /**
   * The stat's refusal is the error: a file that is gone is its ENOENT, anything but a regular file where it should be
   * is refused with notRegularFile's words (the delivery secrets file), never read.
   */
  statRefuses?: boolean;
}

/**
 * A file's times are coarse (a clock tick): one edited in place again within the same tick, to the same size, keeps its
 * stamp. A file changed within this long before it was read is read again at each use until a read finds it older.
 */
const SETTLED_AFTER_MS = 1_000;

/** The texts readDataTextKept keeps, by file: the stamp each was read under, and whether it had settled then. */
const keptTexts = new Map<string, { stamp: string; settled: boolean; text: string }>();

/**
 * readDataText of a file read at every use (a receiver's state, at each delivery), kept between reads while it stays
 * the same file: a use costs one lstat (a stat with `followLinks`) instead of open, fstat, read and close. Its stamp
 * (inode, size, change and modification times in ns) must be the one the kept text was read under, and that read must
 * have been more than SETTLED_AFTER_MS after its last change; anything else goes to readDataFile, so a link, a FIFO or
 * a folder put in its place is refused as before, and a file that is gone is none (docs/performance.md).
 */
export async function readDataTextKept(file: string, options: KeptRead = {}): Promise<string | null> {
  const readAt = Date.now();
  const s = await (options.followLinks ? stat : lstat)(file, { bigint: true }).catch((error: unknown) => {
    if (options.statRefuses) throw error;
    return null;
  });
  if (options.statRefuses && !s!.isFile()) throw new Error(notRegularFile(s!));
  const stamp = s?.isFile() ? `${s.ino}:${s.size}:${s.ctimeNs}:${s.mtimeNs}` : null;
  const kept = keptTexts.get(file);
  if (stamp !== null && kept?.stamp === stamp && kept.settled) return kept.text;
  keptTexts.delete(file);
  const text = await readDataText(file, options);
  if (stamp === null || text === null) return text;
  const changedAt = Math.max(Number(s!.mtimeMs), Number(s!.ctimeMs));
  keptTexts.set(file, { stamp, settled: changedAt < readAt - SETTLED_AFTER_MS, text });
  return text;
}
