import { closeSync, mkdirSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { mkdir, readdir, unlink } from 'node:fs/promises';
import path from 'node:path';
import { OWNER_DIR, OWNER_FILE, readDataText } from '../../functions/shared/local-files.ts';
import { stringifyRedacted } from '../store/json-files.ts';
import type { RunRestart, TaskObserver } from './engine.ts';

/**
 * The execution journal: a write-ahead log of the local conversation workflow, so that a crash (kill -9, power cut
 * of the process) loses no accepted request. Before each Task state runs (the agent call, the delivery, the
 * queueing, the export), a line says so; after it, a line carries its result. On the next start, recovery.ts reads
 * the executions that never ended and finishes each one.
 *
 * Cheap on the hot path: one line per step appended with a single write(2) to a file descriptor kept open — no
 * fsync: what reached the kernel survives the process being killed (not the machine losing power). Lines go to a
 * segment file under `<dataDir>/journal/`; a segment is deleted once every execution written to it has ended (the
 * current one once nothing has run for REST_MS: the next execution begins a new one), so a gateway at rest keeps no
 * journal at all.
 */
/**
 * `refused`: the data folder refused one of the execution's lines (a full disk): written at once into its segment's
 * reserve, and again once the folder takes writes, so that the next start tells that, not a crash, from what cut
 * the execution.
 */
/** Every kind of line the journal writes: a line of another kind is no entry (readEntries). */
const JOURNAL_KINDS = ['begin', 'resume', 'in', 'out', 'err', 'end', 'refused'] as const;
export type JournalKind = (typeof JOURNAL_KINDS)[number];

export interface JournalEntry {
  /** Execution name. */
  e: string;
  /** Epoch ms. */
  t: number;
  k: JournalKind;
  /** State name (in, out, err; resume: the state it resumed at). */
  s?: string;
  /** begin: the execution input; in: the task's parameters (when it has any); out: its result; err: {Error, Cause}. */
  d?: unknown;
  /** begin of a run that recovery started again (recovery.ts): how many times it has been, this one included. */
  r?: number;
  /** begin of a run that recovery started again: which restart, and what cut the run before (its history says so). */
  c?: RunRestart;
}

/** Tests only (LOCAL_TEST_HOLDS, docs/development.md): called when an execution stops at a `[hold:…]` marker. */
export type HoldListener = (point: string, execution: string) => void;

const MAX_SEGMENT_BYTES = 64 * 1024 * 1024;
/** How long the gateway is idle (no execution running) before its current segment is deleted (restSoon). */
const REST_MS = 5_000;

interface Segment {
  file: string;
  fd: number;
  bytes: number;
  /** Executions begun in this segment that have not ended. */
  open: number;
  /** A write failed (a full disk): the file may end in part of a line, which the next line must not continue. */
  cut: boolean;
  /** The `refused` lines of its executions, written before its next line (or at close) once the folder takes them. */
  pending: string[];
  /** How many bytes of its reserve (RESERVE_BYTES at its start, when they could be written) the notes have used. */
  reserveUsed: number;
  /** The reserve's size: 0 when the disk refused it too. */
  reserve: number;
}

/**
 * Each segment begins with this many spaces (one line no reader takes for an entry): room, already on the disk, for
 * the `refused` notes of a disk that filled up meanwhile. A note is written over those spaces at once (overwriting
 * bytes a file already has takes no new space on ext4, xfs or tmpfs), so a gateway killed before the disk takes
 * writes again still tells the next start what cut the execution (docs/operations.md, "After a crash").
 */
const RESERVE_BYTES = 8 * 1024;

/** One execution's view of the journal: the engine's TaskObserver, and `end` once its history is saved. */
export interface JournaledRun extends TaskObserver {
  end(): void;
  /** Whether the data folder refused one of its lines (a full disk): the step it was for did not run. */
  readonly refused: boolean;
  /** Its entries as its segment holds them, then the note of the first line refused (as `interrupted` reads them). */
  entries(): Promise<JournalEntry[]>;
  /**
   * Recovery started its execution again under the same name, journaled from its own `begin` line: this run no longer
   * holds its segment, and writes no `end` line, which the next start would read as the new run's end.
   */
  handOver(): void;
}

/** Error → what a Catch would hold: `{Error, Cause}` (the local engine's shape). */
function caught(error: unknown): { Error: string; Cause: string } {
  const e = error as { name?: unknown; message?: unknown };
  return { Error: typeof e?.name === 'string' ? e.name : 'Error', Cause: String(e?.message ?? error) };
}

const KINDS: ReadonlySet<string> = new Set<JournalKind>(JOURNAL_KINDS);

/** A line written whole by `write` or `reserveNote`: an object naming its execution, with its time and kind. */
const isEntry = (value: unknown): value is JournalEntry => {
  const entry = value as JournalEntry | null;
  return typeof entry?.e === 'string' && typeof entry.t === 'number' && KINDS.has(entry.k);
};

/** The execution a line cut short names, when it got that far (`{"e":"<name>"…`). */
const cutExecution = (line: string) => /^\{"e":("(?:[^"\\]|\\.)*")/.exec(line)?.[1];

/**
 * The entries of the segments `files` by execution (of `only`, when given), in the order written, each execution's
 * first `refused` note after its other entries. An execution begun again under the same name (a run that recovery
 * started again, recovery.ts) is its last `begin` and what follows: the lines of the runs before it are left.
 * `damaged`: by segment, how many lines before its last one were no entry (not JSON, NULs, another shape: edited by
 * hand, a disk fault), skipped; neither a reserve's spaces nor a line a full disk cut (its execution or segment noted
 * `refused`) counts, nor a last line, which a crash may cut as it is written.
 */
async function readEntries(
  files: readonly string[],
  only?: string,
): Promise<{ byExecution: Map<string, JournalEntry[]>; damaged: Map<string, number> }> {
  const byExecution = new Map<string, JournalEntry[]>();
  const refused = new Map<string, JournalEntry>();
  const unreadable: { file: string; execution: string | undefined }[] = [];
  /** The segments holding a `refused` note: a full disk reached them. */
  const refusing = new Set<string>();
  for (const file of files) {
    // Capped, a regular file only (a link to /dev/zero was read until the process died): local-files.ts.
    const text = (await readDataText(file, { maxBytes: 2 * MAX_SEGMENT_BYTES })) ?? '';
    const lines = text.split('\n');
    let last = lines.length - 1;
    while (last > 0 && lines[last]?.trim() === '') last--;
    lines.forEach((line, at) => {
      let entry: unknown;
      try {
        entry = JSON.parse(line);
      } catch {
        entry = undefined; // empty, a reserve's spaces, or a line cut short
      }
      if (!isEntry(entry)) {
        if (at < last && line.trim() !== '') {
          let execution: string | undefined;
          try {
            execution = JSON.parse(cutExecution(line) ?? 'null') ?? undefined;
          } catch {
            execution = undefined;
          }
          unreadable.push({ file, execution });
        }
        return;
      }
      if (entry.k === 'refused') refusing.add(file);
      if (only !== undefined && entry.e !== only) return;
      if (entry.k === 'refused') {
        if (!refused.has(entry.e)) refused.set(entry.e, entry);
        return;
      }
      if (entry.k === 'begin') byExecution.delete(entry.e);
      const entries = byExecution.get(entry.e) ?? [];
      entries.push(entry);
      byExecution.set(entry.e, entries);
    });
  }
  for (const [name, entries] of byExecution) {
    const note = refused.get(name);
    // A note in a segment's reserve comes before the lines it is about: one older than the last begin is an earlier
    // run's.
    if (note && (entries[0]?.k !== 'begin' || note.t >= entries[0].t)) entries.push(note);
  }
  const damaged = new Map<string, number>();
  for (const { file, execution } of unreadable) {
    // A line a full disk cut (the next one begins on a line of its own): its execution, or its segment, noted so.
    if (execution !== undefined && (refused.has(execution) || refusing.has(file))) continue;
    damaged.set(file, (damaged.get(file) ?? 0) + 1);
  }
  return { byExecution, damaged };
}

export class ExecutionJournal {
  private current: Segment | null = null;
  private restTimer: NodeJS.Timeout | undefined;
  private sequence = 0;
  private readonly segments = new Set<Segment>();
  private closed = false;
  /**
   * When each execution's run refused a line (its `refused` note's time), until the execution ends or begins again:
   * a run recovery starts again under the same name begins after it, never in the same millisecond, or readEntries
   * would take the cut run's note for the new run's.
   */
  private readonly refusedAt = new Map<string, number>();

  private constructor(
    readonly dir: string,
    /** Segment files left by earlier processes (recovery reads them, then forgets them). */
    readonly leftoverFiles: string[],
    private readonly holds: HoldListener | null,
    private readonly maxSegmentBytes: number,
    private readonly restMs: number,
    /**
     * Whether the data folder is still this gateway's (local/store/data-dir-lock.ts): a step whose line is refused
     * because another gateway took the folder over does not run (nothing delivered or exported after a takeover).
     */
    private readonly held: (() => boolean) | null,
  ) {}

  static async open(
    dir: string,
    options: { holds?: HoldListener; maxSegmentBytes?: number; restMs?: number; held?: () => boolean } = {},
  ): Promise<ExecutionJournal> {
    await mkdir(dir, { recursive: true, mode: OWNER_DIR });
    const leftovers = (await readdir(dir))
      .filter((n) => n.endsWith('.jsonl'))
      .sort()
      .map((n) => path.join(dir, n));
    return new ExecutionJournal(
      dir,
      leftovers,
      options.holds ?? null,
      options.maxSegmentBytes ?? MAX_SEGMENT_BYTES,
      options.restMs ?? REST_MS,
      options.held ?? null,
    );
  }

  /**
   * The executions of the leftover segments that never ended, each with its entries in order, then the first
   * `refused` note of its lines, if any (one from a segment's reserve, or written after its other lines).
   */
  async interrupted(): Promise<Map<string, JournalEntry[]>> {
    const { byExecution, damaged } = await readEntries(this.leftoverFiles);
    // Said at the start, as the other damaged files of the data folder are (local/store/damaged-files.ts): before,
    // they were skipped without a word, and an execution whose line was among them was recovered short of it.
    for (const [file, count] of damaged)
      console.error(
        `webhook-gateway: the journal segment ${file} has ${count} damaged line(s) between its others (not JSON, or not a journal entry: edited by hand, a disk fault), skipped: the executions in it are recovered from its other lines, and one whose line was among them may be recovered short of that step (docs/operations.md, "After a crash")`,
      );
    for (const [name, entries] of byExecution) if (entries.some((e) => e.k === 'end')) byExecution.delete(name);
    return byExecution;
  }

  /** Once every leftover execution is settled (recovery wrote their `end`), their segments go. */
  async forgetLeftovers(): Promise<void> {
    for (const file of this.leftoverFiles.splice(0)) await unlink(file).catch(() => undefined);
  }

  /** Start journaling a new execution (`restart`: one that recovery starts again, recovery.ts). */
  begin(execution: string, input: unknown, restart?: RunRestart): JournaledRun {
    const body = (input as { body?: unknown } | null)?.body;
    const markers = this.holds && typeof body === 'string' && body.includes('[hold:') ? body : null;
    const cutAt = this.refusedAt.get(execution);
    this.refusedAt.delete(execution);
    const t = cutAt === undefined ? Date.now() : Math.max(Date.now(), cutAt + 1);
    const first: JournalEntry = { e: execution, t, k: 'begin', d: input };
    return this.run(execution, restart ? { ...first, r: restart.restart, c: restart } : first, markers);
  }

  /** Journal the resumed part of an interrupted execution (recovery), under its own name. */
  resume(execution: string, startAt: string): JournaledRun {
    return this.run(execution, { e: execution, t: Date.now(), k: 'resume', s: startAt }, null);
  }

  private run(execution: string, first: JournalEntry, markers: string | null): JournaledRun {
    const segment = this.segment();
    // Counted once its first line is written: an execution the journal refused never began (its caller is told).
    this.write(segment, stringifyRedacted(first));
    segment.open += 1;
    let ended = false;
    let refused = false;
    const release = () => {
      ended = true;
      segment.open -= 1;
      if (segment !== this.current) this.retire(segment);
      else if (segment.open === 0) this.restSoon();
    };
    const line = (k: JournalKind, s: string, d?: unknown) => {
      try {
        this.write(
          segment,
          // A state's input may hold the request (the accept workflow's Validate: `{accept: …}`): its signature redacted.
          stringifyRedacted(
            d === undefined ? { e: execution, t: Date.now(), k, s } : { e: execution, t: Date.now(), k, s, d },
          ),
        );
      } catch (error) {
        // The first refusal of this execution's lines, kept for when the folder takes writes again: without it the
        // next start read the execution as cut by a crash or a kill (docs/operations.md, "After a crash").
        const code = (error as NodeJS.ErrnoException).code;
        if (!refused && typeof code === 'string') {
          refused = true;
          const d = { code, message: (error as Error).message };
          const t = Date.now();
          this.refusedAt.set(execution, t);
          const note = JSON.stringify({ e: execution, t, k: 'refused', s, d });
          segment.pending.push(note);
          this.reserveNote(segment, note);
        }
        throw error;
      }
    };
    // Held, the execution stands as a kill there would leave it, until the process is killed (tests only): nothing
    // after the hold goes on or is journaled. A state's TimeoutSeconds runs around its handler, hold included (Classify's
    // 2 s): before, a hold outlasting it went on to the Catch (Deliver, Export), so a kill on a loaded machine found
    // the execution past its point, or ended, its caller answered.
    let held = false;
    const frozen = () => new Promise<void>(() => {});
    const hold = (point: string): Promise<void> | undefined => {
      if (held) return frozen();
      if (!markers?.includes(`[hold:${point}]`)) return undefined;
      held = true;
      this.holds?.(point, execution);
      return frozen();
    };
    return {
      get refused() {
        return refused;
      },
      entries: async () => {
        const entries = (await readEntries([segment.file], execution)).byExecution.get(execution) ?? [];
        // Its note is on the disk once the folder took it (or in the reserve); else it is still pending, here.
        const note = segment.pending.find((line) => (JSON.parse(line) as JournalEntry).e === execution);
        if (note && !entries.some((e) => e.k === 'refused')) entries.push(JSON.parse(note) as JournalEntry);
        return entries;
      },
      enter: (state, parameters) => {
        if (held) return frozen();
        line('in', state, parameters);
        return hold(`before:${state}`);
      },
      exit: async (state, output) => {
        await hold(`after:${state}`);
        line('out', state, output);
      },
      fail: (state, error) => {
        if (!held) line('err', state, caught(error));
      },
      end: () => {
        if (ended || held) return;
        try {
          this.write(segment, JSON.stringify({ e: execution, t: Date.now(), k: 'end' }));
        } catch {
          // The execution has ended and its history is saved: a full disk refusing this line changes neither. (Should
          // the process die before its segment goes, the next start resumes it after its last step: nothing is left.)
        }
        this.refusedAt.delete(execution);
        release();
      },
      handOver: () => {
        if (!ended) release();
      },
    };
  }

  /**
   * Nothing runs: unless an execution begins within restMs, the current segment goes too (the next execution begins
   * a new one), so a gateway at rest keeps no journal, and no request body lingers in one. Not at once: under load
   * the gateway is often between executions for a moment, and a new file each time would cost system calls.
   */
  private restSoon(): void {
    clearTimeout(this.restTimer);
    this.restTimer = setTimeout(() => {
      const segment = this.current;
      if (!segment || segment.open > 0) return;
      this.current = null;
      this.retire(segment);
    }, this.restMs);
    this.restTimer.unref();
  }

  private segment(): Segment {
    clearTimeout(this.restTimer);
    if (this.current && this.current.bytes < this.maxSegmentBytes) return this.current;
    if (this.current) {
      const full = this.current;
      this.current = null;
      this.retire(full);
    }
    // Named in the order written (recovery reads the leftovers sorted by name), unique within a millisecond too.
    const sequence = String(this.sequence++).padStart(9, '0');
    const file = path.join(this.dir, `${String(Date.now()).padStart(15, '0')}-${process.pid}-${sequence}.jsonl`);
    const fd = this.openSegment(file);
    this.current = { file, fd, bytes: 0, open: 0, cut: false, pending: [], reserveUsed: 0, reserve: 0 };
    this.segments.add(this.current);
    this.writeReserve(this.current);
    return this.current;
  }

  /** The segment's reserve line; a disk too full for it leaves the segment without one (and its line cut). */
  private writeReserve(segment: Segment): void {
    const bytes = Buffer.from(`${' '.repeat(RESERVE_BYTES - 1)}\n`);
    let written = 0;
    try {
      while (written < bytes.length) written += writeSync(segment.fd, bytes, written);
    } catch {
      segment.cut = written > 0;
      segment.bytes = written;
      return;
    }
    segment.reserve = RESERVE_BYTES - 1;
    segment.bytes = bytes.length;
  }

  /**
   * A `refused` note written over the spaces of its segment's reserve, now, while the disk may still refuse every
   * new byte; no room left (or refused all the same: a copy-on-write file system), it waits in `pending` alone.
   */
  private reserveNote(segment: Segment, note: string): void {
    const bytes = Buffer.from(`${note}\n`);
    if (segment.reserveUsed + bytes.length > segment.reserve) return;
    let fd = -1;
    try {
      fd = openSync(segment.file, 'r+');
      let written = 0;
      while (written < bytes.length)
        written += writeSync(fd, bytes, written, bytes.length - written, segment.reserveUsed + written);
      segment.reserveUsed += bytes.length;
    } catch {
      // Kept in `pending` for the segment's next line.
    } finally {
      if (fd >= 0) closeSync(fd);
    }
  }

  /**
   * A new segment's file. Its folder removed while the gateway ran (`rm -r .data/journal`: at rest it holds nothing)
   * is made again, as the other stores make theirs: before, every request failed 500 until a restart.
   */
  private openSegment(file: string): number {
    try {
      return openSync(file, 'a', OWNER_FILE);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
      mkdirSync(this.dir, { recursive: true, mode: OWNER_DIR });
      return openSync(file, 'a', OWNER_FILE);
    }
  }

  /**
   * A segment no longer written to: deleted when its last execution has ended. One that cannot be (deleted by hand
   * already, or its folder no longer the gateway's to change: a permission, a read-only remount) is left: every
   * execution in it has ended, so the next start recovers nothing from it and removes it. Thrown from the rest timer,
   * the error stopped the whole gateway (an uncaught exception), conversations in flight with it.
   */
  private retire(segment: Segment): void {
    if (segment.open > 0 || segment.fd < 0) return;
    try {
      closeSync(segment.fd);
    } catch {
      // Nothing was left to write to it.
    }
    segment.fd = -1;
    this.segments.delete(segment);
    try {
      unlinkSync(segment.file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'ENOENT')
        console.error(
          `webhook-gateway: the journal segment ${segment.file} could not be removed (${(error as Error).message}); every execution in it has ended, and the next start removes it`,
        );
    }
  }

  /**
   * One line, or an error (ENOSPC: the disk is full) for the caller: a step that cannot be journaled does not run.
   * A line a failed write cut short is ended by a newline before the next one, so that only it is unreadable
   * (`interrupted` skips it), not the next line too.
   */
  private write(segment: Segment, text: string): void {
    if (this.closed || segment.fd < 0) return;
    if (this.held && !this.held())
      throw new Error('another gateway took the data folder over: nothing more is written to it');
    const lines = [...segment.pending, text].filter((line) => line !== '');
    if (lines.length === 0) return;
    const bytes = Buffer.from(`${segment.cut ? '\n' : ''}${lines.join('\n')}\n`);
    let written = 0;
    try {
      while (written < bytes.length) written += writeSync(segment.fd, bytes, written);
    } catch (error) {
      segment.cut = true;
      throw error;
    }
    segment.cut = false;
    segment.pending = [];
    segment.bytes += bytes.length;
  }

  /**
   * Stop journaling. The current segment is deleted when nothing is left open in it; otherwise it stays for the
   * next start to recover.
   */
  close(): void {
    if (this.closed) return;
    clearTimeout(this.restTimer);
    this.current = null;
    for (const segment of this.segments) {
      if (segment.open === 0) this.retire(segment);
      else {
        try {
          this.write(segment, ''); // its executions' `refused` lines, should the folder take them now
        } catch {
          // Still refused: the next start reads those executions as cut.
        }
        closeSync(segment.fd);
        segment.fd = -1;
      }
    }
    this.segments.clear();
    this.closed = true;
  }
}
