import { rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { isConversationId } from '../../functions/domain/conversation-id.ts';
import { maskSecrets } from '../../functions/domain/secret-masking.ts';
import { UnreadableFileError } from '../../functions/shared/local-files.ts';
import { asideWriter, writerState } from '../../functions/shared/writers.ts';
import type { ExecutionRecord } from '../engine/engine.ts';
import { type WrittenFolder, writeTextAtomicInThread } from './file-writer.ts';
import { listDir, mapConcurrently, readJson, stringifyRedacted } from './json-files.ts';

/** `folder`: the history's folder just after the write, its `.json` names and their stamps (none: it could not be read). */
type Saved = (conversationId: string, file: string, record: ExecutionRecord, folder?: WrittenFolder) => Promise<void>;

/**
 * The local execution history: every execution's event log, saved under
 * `<dataDir>/executions/<conversation_id>/<start>_<execution name>.json` — the local counterpart of the Express
 * workflow's CloudWatch log group (level ALL, execution data included).
 */
export class ExecutionStore {
  readonly dir: string;
  /** Told of each history file that is not JSON (cut short by a crash or a full disk, edited by hand). */
  private readonly onUnreadable: (file: string, reason: string) => void;
  private readonly reportsUnreadable: boolean;
  /** Told of each history saved, once it is on disk (the gateway writes its summary index entry: never fails). */
  private readonly onSaved: Saved;
  private readonly held: () => boolean;

  /**
   * `onUnreadable`: told of each history file that cannot be read; it is left out (by default silently). `onSaved`:
   * awaited after each history is saved (the running gateway's summary index, local/history/summary-index.ts).
   */
  constructor(
    dataDir: string,
    options: {
      onUnreadable?: (file: string, reason: string) => void;
      onSaved?: Saved;
      /** The running gateway's: whether the data folder is still its own (a history is not written into another's). */
      held?: () => boolean;
    } = {},
  ) {
    this.dir = path.join(dataDir, 'executions');
    this.onUnreadable = options.onUnreadable ?? (() => {});
    this.reportsUnreadable = options.onUnreadable !== undefined;
    this.onSaved = options.onSaved ?? (async () => {});
    this.held = options.held ?? (() => true);
  }

  /** Serialized once, compact, with inbound signatures redacted. */
  async save(conversationId: string, record: ExecutionRecord): Promise<string> {
    if (!isConversationId(conversationId)) throw new Error(`not a conversation id: ${conversationId}`);
    const stamp = record.started_at.replace(/[-:.]/g, '');
    const file = path.join(this.dir, conversationId, `${stamp}_${record.execution_name}.json`);
    if (!this.held()) throw new Error('another gateway took the data folder over: nothing more is written to it');
    // Told with its folder as the file thread found it after the write (a listing there: the summary index's entry).
    const folder = await writeTextAtomicInThread(file, `${serializeHistory(record)}\n`, undefined, '.json');
    await this.onSaved(conversationId, file, record, folder);
    return file;
  }

  /**
   * Every execution of one conversation (the original and each redelivery), oldest first. A damaged file (not JSON,
   * JSON that is not an execution's history, or a folder in its place) is left out (and reported to `onUnreadable`): one damaged history costs that execution, not every listing.
   * So is one the system refuses to read (its permissions changed) when `onUnreadable` was given; without it (the
   * gateway's recovery must not take an unread history for a missing one) the refusal is thrown.
   */
  async executions(conversationId: string): Promise<ExecutionRecord[]> {
    return (await this.executionsChecked(conversationId)).executions;
  }

  /**
   * `executions`, and whether every history was read (`complete`: none refused by the system): what is learnt from an
   * incomplete read may not be kept (a refusal lifted by a chmod changes no file's time); `clean`: none was damaged
   * either (a listing that shows it reads it again, to name the damaged one).
   */
  async executionsChecked(
    conversationId: string,
  ): Promise<{ executions: ExecutionRecord[]; complete: boolean; clean: boolean }> {
    const { executions, damaged, refusal } = await this.read(conversationId);
    if (refusal && !this.reportsUnreadable) throw refusal;
    for (const { file, reason } of damaged) this.onUnreadable(file, reason);
    return { executions, complete: refusal === null, clean: damaged.length === 0 };
  }

  /**
   * `executions`, with the damaged histories it left out, each with why (those the system refused to read too): for a
   * page or a command that names them rather than show a conversation whose only history is damaged as missing
   * (docs/operations.md, "After a crash").
   */
  async executionsAndDamaged(
    conversationId: string,
  ): Promise<{ executions: ExecutionRecord[]; damaged: { file: string; reason: string }[] }> {
    const { executions, damaged } = await this.read(conversationId);
    return { executions, damaged };
  }

  private async read(conversationId: string): Promise<{
    executions: ExecutionRecord[];
    damaged: { file: string; reason: string }[];
    refusal: Error | null;
  }> {
    if (!isConversationId(conversationId)) return { executions: [], damaged: [], refusal: null };
    const folder = path.join(this.dir, conversationId);
    const names = (await listDir(folder)).filter((n) => n.endsWith('.json')).sort();
    const damaged: { file: string; reason: string }[] = [];
    let refusal: Error | null = null;
    const records = await Promise.all(
      names.map((n) =>
        historyIn(path.join(folder, n)).catch((error: Error) => {
          const file = path.join(folder, n);
          const code = (error as NodeJS.ErrnoException).code;
          // A folder in a history's place (made by hand, another tool) costs that execution too, not the listing.
          if (code === 'EISDIR') damaged.push({ file, reason: 'it is a folder, not a file (EISDIR)' });
          else if (error instanceof SyntaxError) damaged.push({ file, reason: error.message });
          else if (typeof code === 'string') {
            // Refused by the system (EACCES, EPERM…): `EACCES: permission denied, read '<file>'` (readRefused).
            damaged.push({ file, reason: `cannot read it (${error.message.split(', ')[0]})` });
            refusal ??= error;
          } else throw error;
          return null;
        }),
      ),
    );
    damaged.sort((a, b) => a.file.localeCompare(b.file));
    return { executions: records.filter((r): r is ExecutionRecord => r !== null), damaged, refusal };
  }

  /** Whether the history of one execution of this conversation is saved (it is, whole, once the execution ended). */
  async has(conversationId: string, executionName: string): Promise<boolean> {
    if (!isConversationId(conversationId)) return false;
    return (await listDir(path.join(this.dir, conversationId))).some((n) => n.endsWith(`_${executionName}.json`));
  }

  /** Whether any history of this conversation is kept, readable or not. */
  async hasAny(conversationId: string): Promise<boolean> {
    if (!isConversationId(conversationId)) return false;
    return (await listDir(path.join(this.dir, conversationId))).some((n) => n.endsWith('.json'));
  }

  /**
   * Remove what a crash left of this conversation's history writes: the copy written aside (writeTextAtomicInThread,
   * `<history>.json.<pid>.<hex>.tmp`) and never renamed into place, by a process other than this one (only the
   * running gateway writes histories: at its start, each is a cut write). Never read as a history (only `.json`
   * files are), it held a copy of the conversation until the retention sweep removed the conversation's folder.
   */
  async removeCutWrites(conversationId: string): Promise<number> {
    if (!isConversationId(conversationId)) return 0;
    const folder = path.join(this.dir, conversationId);
    let removed = 0;
    for (const name of await listDir(folder)) {
      const cut = CUT_WRITE.exec(name);
      if (!cut || writtenHere(cut)) continue;
      await rm(path.join(folder, name), { force: true });
      removed += 1;
    }
    return removed;
  }

  /**
   * removeCutWrites for every conversation but those in `except` (a crash's journaled ones, handled by themselves):
   * the cut writes the journal does not point at (its lines lost with a power cut, or the journal removed by hand),
   * which were removed only with their conversation's folder. Only writes aside are removed, never a history; and only
   * those of another process, or older than this one (a restart that gave this gateway its predecessor's pid).
   * Returns how many.
   */
  async removeOrphanedCutWrites(except: ReadonlySet<string>): Promise<number> {
    const startedAt = Date.now() - process.uptime() * 1000;
    const ids = (await this.conversationIds()).filter((id) => !except.has(id));
    const removed = await mapConcurrently(ids, 32, async (id) => {
      const folder = path.join(this.dir, id);
      let n = 0;
      for (const name of await listDir(folder).catch(() => [])) {
        const cut = CUT_WRITE.exec(name);
        if (!cut) continue;
        const file = path.join(folder, name);
        if (writtenHere(cut)) {
          // This gateway's own write under way, unless it was written before this gateway started.
          const written = await stat(file).catch(() => null);
          if (!written || written.mtimeMs >= startedAt) continue;
        }
        await rm(file, { force: true });
        n += 1;
      }
      return n;
    });
    return removed.reduce((a, b) => a + b, 0);
  }

  async conversationIds(): Promise<string[]> {
    return (await listDir(this.dir)).filter(isConversationId);
  }
}

/** A history written aside (writeTextAtomicInThread): `<history>.json.<pid>.<hex>.tmp`, the writer's pid and hex. */
const CUT_WRITE = /\.json\.(\d+)\.([0-9a-f]+)\.tmp$/;

/**
 * Whether this process wrote it (its pid, and its host tag when it has one: functions/shared/writers.ts). Any other
 * writer's is a cut write, whatever its pid namespace: only the gateway holding the data folder writes histories
 * (local/store/data-dir-lock.ts). Before the tag, a container's gateway restarted as the same pid 1 took its
 * predecessor's for its own, judged only by their time.
 */
const writtenHere = (cut: RegExpExecArray) => writerState(asideWriter(cut[1]!, cut[2]!)) === 'this process';

/**
 * The history a file holds (null when there is none); one that is not a history (JSON of another shape: edited by
 * hand, written by another tool) is an UnreadableFileError naming it, left out as a file that is not JSON is.
 */
async function historyIn(file: string): Promise<ExecutionRecord | null> {
  const value = await readJson<Partial<ExecutionRecord>>(file);
  if (value === null) return null;
  const shaped =
    typeof value === 'object' &&
    !Array.isArray(value) &&
    typeof value.execution_name === 'string' &&
    typeof value.started_at === 'string' &&
    typeof value.status === 'string' &&
    Array.isArray(value.events) &&
    value.events.every((e) => e !== null && typeof e === 'object');
  if (!shaped)
    throw new UnreadableFileError(file, 'no execution_name, started_at, status and events', "an execution's history");
  return value as ExecutionRecord;
}

/** An execution's history as it is saved (serializeHistory): for one still running, shown before it is saved. */
export function redactedHistory(record: ExecutionRecord): ExecutionRecord {
  return JSON.parse(serializeHistory(record)) as ExecutionRecord;
}

/**
 * The inbound `webhook-signature` is checked by Validate and has no use afterwards: the header's value is not kept,
 * and every signature- or secret-shaped text elsewhere is masked with the patterns the AWS log groups' data
 * protection policy uses, so the local history shows what the AWS one does.
 */
function serializeHistory(record: ExecutionRecord): string {
  return maskSecrets(stringifyRedacted(record));
}

/** The conversation id an execution worked on: from the first state output (or input) that carries the record. */
export function conversationIdOf(record: ExecutionRecord): string | null {
  const fromInput = (record.input as { conversation?: { conversation_id?: unknown } } | null)?.conversation
    ?.conversation_id;
  if (typeof fromInput === 'string') return fromInput;
  for (const event of record.events) {
    const output = event.output as { conversation?: { conversation_id?: unknown } } | undefined;
    const id = output?.conversation?.conversation_id;
    if (typeof id === 'string') return id;
  }
  return null;
}
