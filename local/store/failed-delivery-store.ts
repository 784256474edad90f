/**
 * The failed-delivery store's local adapter (the port is functions/shared/redelivery.ts; on AWS it is the SQS
 * queue): one JSON file per conversation under `<dataDir>/failed-deliveries/`, durable across restarts of the
 * gateway. Settled and dead envelopes stay as files (`deliveries list --state all` shows them). A worker (the
 * schedule, a redrive) holds an envelope in memory until it stores it or lets it go; a second worker asking for the
 * same conversation waits for it.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { WebhookType } from '../../functions/domain/conversation.ts';
import { isConversationId } from '../../functions/domain/conversation-id.ts';
import { NamedError } from '../../functions/domain/errors.ts';
import {
  type EnvelopeState,
  envelopeFromMessage,
  type FailedDeliveryEnvelope,
  isDue,
  readEnvelope,
  redriveCandidates,
} from '../../functions/domain/failed-delivery.ts';
import { UnreadableFileError } from '../../functions/shared/local-files.ts';
import type { FailedDeliveryStore, HeldEnvelope, TakenBatch } from '../../functions/shared/redelivery.ts';
import { settings } from '../../functions/shared/settings.ts';
import {
  listDir,
  mapConcurrently,
  readJson,
  writeJsonAtomic,
  writeJsonAtomicSync,
  writeTextAtomic,
} from './json-files.ts';

/** The error name Step Functions' sqs:sendMessage integration reports when SQS refuses a message. */
export const SQS_REFUSED = 'SQS.AmazonSQSException';

/** What the schedule looks at to choose the envelopes to take: an envelope without its conversation record. */
export type EnvelopeHead = Omit<FailedDeliveryEnvelope, 'conversation'>;

function headOf({ conversation: _conversation, ...head }: FailedDeliveryEnvelope): EnvelopeHead {
  return head;
}

/**
 * What the lists choose and count by: a few fields of an envelope, kept per file in
 * `<dataDir>/summaries/failed-deliveries.json` (docs/operations.md) so that a list reads only the envelopes it shows.
 */
export type EnvelopeSummary = Pick<
  FailedDeliveryEnvelope,
  'conversation_id' | 'webhook_type' | 'state' | 'owed' | 'next_due_at' | 'created_at' | 'updated_at'
> & {
  /** How many attempts the envelope holds (a redrive plan's rows show it). */
  attempt_count: number;
};

function summaryOf(e: FailedDeliveryEnvelope): EnvelopeSummary {
  return {
    conversation_id: e.conversation_id,
    webhook_type: e.webhook_type,
    state: e.state,
    ...(e.owed ? { owed: e.owed } : {}),
    next_due_at: e.next_due_at,
    created_at: e.created_at,
    updated_at: e.updated_at,
    attempt_count: Array.isArray(e.attempts) ? e.attempts.length : 0,
  };
}

/**
 * The states `deliveries list --state` and `GET /local/deliveries?state=` take: pending, dead, settled (`delivered`,
 * the name settled envelopes had before, still selects them), a comma-separated list of them, or all; null when one
 * is none of these.
 */
export function envelopeStates(wanted: string): EnvelopeState[] | null {
  // Any case, as every value of a fixed set (docs/operations.md, "Runbook").
  const asked = wanted.trim().toLowerCase();
  const states = (asked === 'all' ? 'pending,dead,settled' : asked)
    .split(',')
    .map((s) => s.trim())
    .map((s) => (s === 'delivered' ? 'settled' : s));
  return states.every((s) => s === 'pending' || s === 'dead' || s === 'settled') ? (states as EnvelopeState[]) : null;
}

/** Newest first (received later first, then by id): the order of `deliveries list` and the console. */
const newestFirst = (a: EnvelopeSummary, b: EnvelopeSummary) =>
  b.created_at.localeCompare(a.created_at) || b.conversation_id.localeCompare(a.conversation_id);

/** What a look through the folder finds: the summaries, the damaged files, the files the system refused to read. */
interface Summaries {
  summaries: EnvelopeSummary[];
  unreadable: { file: string; reason: string }[];
  refused: Error[];
}

/** One file of the folder as the summary index knows it: its stat signature then, and its summary or why it has none. */
interface IndexEntry {
  signature: string;
  summary: EnvelopeSummary | null;
  reason?: string;
}

const INDEX_VERSION = 1;
/** How often a running gateway writes the summary index at most (a command writes it once, at its look). */
const INDEX_SAVE_EVERY_MS = 60_000;

/** How long the heads of a look stand while the folder is unchanged: a file edited in place is seen within this. */
const FULL_LOOK_EVERY_MS = 60_000;

/** As many envelopes as one SQS receive returns: the schedule redelivers one batch at a time. */
const BATCH = 10;

/**
 * The envelope a file holds, null when there is none; a file that is not one (not JSON, or JSON of another shape) is
 * an UnreadableFileError naming it, never "no envelope": the delivery it held may still be owed.
 */
async function envelopeIn(file: string): Promise<FailedDeliveryEnvelope | null> {
  const value = await readJson(file);
  if (value === null) return null;
  const envelope = readEnvelope(value);
  if (envelope === null)
    throw new UnreadableFileError(file, 'no version 1, conversation_id and conversation', 'a failed-delivery envelope');
  return envelope;
}

export class LocalFailedDeliveryStore implements FailedDeliveryStore {
  readonly dir: string;
  /** Conversation id → resolves when its holder lets it go. */
  private readonly holds = new Map<string, { released: Promise<void>; release: () => void }>();
  /** File name → its stat signature and head when last read whole by newestHeads (the console's list). */
  private readonly headCache = new Map<string, { signature: string; head: EnvelopeHead | null }>();
  /** The last look through the folder: when, the folder's stat then, what it found, each file's signature. */
  private lastLook: {
    at: number;
    folderSignature: string;
    found: Summaries;
    signatures: ReadonlyMap<string, string>;
  } | null = null;
  /** Each schedule run's envelopes still to hand out, by the run's `seen` set. */
  private readonly runQueues = new WeakMap<ReadonlySet<string>, string[]>();
  /** The summary index: where it is kept, its entries by file name (loaded at the first look), when last written. */
  readonly indexFile: string;
  private index: Map<string, IndexEntry> | null = null;
  /** The entries read within a second of their file's last change: used, not written (read again once settled). */
  private readonly unsettled = new Set<string>();
  private indexChanged = false;
  private indexSavedAt: number | null = null;

  constructor(dataDir: string) {
    this.dir = path.join(dataDir, 'failed-deliveries');
    this.indexFile = path.join(dataDir, 'summaries', 'failed-deliveries.json');
  }

  get schedule(): readonly number[] {
    return settings().redeliverySchedule;
  }

  private file(conversationId: string): string {
    if (!isConversationId(conversationId)) throw new Error(`not a conversation id: ${conversationId}`);
    return path.join(this.dir, `${conversationId}.json`);
  }

  /**
   * The local stand-in for `sqs:sendMessage` in QueueFailedDelivery and QueueFailedExport: receives the resolved
   * Parameters. The envelope is written at once (writeJsonAtomicSync), within the turn of the event loop the state's
   * 1 s timer cannot come due in: before, a loaded machine gave the write's four file-thread round trips out late, the
   * state timed out (the delivery answered and exported `failed`, unqueued, `deliveries resend` suggested) and the
   * envelope was put in place after all, so the schedule delivered it too.
   */
  async sendMessage(parameters: { QueueUrl?: string; MessageBody?: unknown }): Promise<{ MessageId: string }> {
    const body =
      typeof parameters.MessageBody === 'string' ? JSON.parse(parameters.MessageBody) : parameters.MessageBody;
    const envelope = envelopeFromMessage(body, new Date(), this.schedule);
    if (!envelope)
      throw new Error('sqs:sendMessage: the message body is neither a failed delivery nor a failed export');
    try {
      writeJsonAtomicSync(this.file(envelope.conversation_id), envelope);
    } catch (error) {
      // Fail as the SQS integration does when the queue refuses a message, so the workflow's Retry and Catch treat
      // a full or unwritable disk exactly as they treat SQS being down on AWS.
      throw new NamedError(
        SQS_REFUSED,
        `the local failed-delivery store (${this.dir}) could not store the message: ${(error as Error).message}`,
      );
    }
    return { MessageId: envelope.delivery_id };
  }

  async put(envelope: FailedDeliveryEnvelope): Promise<void> {
    await writeJsonAtomic(this.file(envelope.conversation_id), envelope);
  }

  async get(conversationId: string): Promise<FailedDeliveryEnvelope | null> {
    return envelopeIn(this.file(conversationId));
  }

  /**
   * Every envelope, oldest first. A damaged file (not JSON, or JSON that is not an envelope: cut short by a crash or
   * a full disk, edited by hand) is left out: one damaged file must not stop the schedule, the lists or a redrive of
   * the others. `unreadable()` names those files.
   */
  async list(): Promise<FailedDeliveryEnvelope[]> {
    return (await this.scan()).envelopes;
  }

  /** The damaged files of this store, each with why: `deliveries list` names them. */
  async unreadable(): Promise<{ file: string; reason: string }[]> {
    return (await this.scan()).unreadable;
  }

  /** `list()` and `unreadable()` from one read of the folder: each file is read once. */
  async scan(): Promise<{
    envelopes: FailedDeliveryEnvelope[];
    unreadable: { file: string; reason: string }[];
  }> {
    const names = (await listDir(this.dir)).filter((n) => n.endsWith('.json')).sort();
    const unreadable: { file: string; reason: string }[] = [];
    // A few files open at a time: a read of each at once runs out of file descriptors (EMFILE) past some thousands.
    const read = await mapConcurrently(names, 32, async (n) => {
      const file = path.join(this.dir, n);
      try {
        return await envelopeIn(file);
      } catch (error) {
        if (!(error instanceof SyntaxError)) throw error;
        unreadable.push({ file, reason: error.message });
        return null;
      }
    });
    const envelopes = read
      .filter((e): e is FailedDeliveryEnvelope => e !== null)
      .sort((a, b) => a.created_at.localeCompare(b.created_at));
    return { envelopes, unreadable };
  }

  /**
   * The summary of every envelope, the damaged files with why, and the files the system refused to read, from the
   * summary index: a file is read only when its inode, time or size differ from what the index holds (new, rewritten,
   * edited by hand), so a look at an unchanged folder reads no envelope, only each file's `stat`. What was learnt is
   * written back (a command: at once; the running gateway: at most once a minute), only for files unchanged for a
   * second before they were read (file times are coarse: the others are read again once they are); an index that is missing, damaged or cannot be written only means the envelopes
   * are read again. Every write of an envelope renames a file into the folder, which changes the folder's time: while
   * that time stays as it was (and was not within the last second of the look), the last look stands without a `stat`
   * of each file, for up to a minute (a file edited in place is seen within a minute). What the schedule chooses by,
   * what the receivers' queued counts (`endpoints list`, the console) are made of, and what the lists choose and count
   * by.
   */
  async summaries(): Promise<Summaries> {
    const lookedAt = Date.now();
    const folder = await stat(this.dir, { bigint: true }).catch(() => null);
    const folderSignature = folder ? `${folder.ino}:${folder.mtimeNs}` : '-';
    const last = this.lastLook;
    if (
      last &&
      last.folderSignature === folderSignature &&
      lookedAt - last.at < FULL_LOOK_EVERY_MS &&
      (folder === null || Number(folder.mtimeMs) < last.at - 1_000)
    )
      return last.found;
    const names = (await listDir(this.dir)).filter((n) => n.endsWith('.json'));
    const index = await this.loadIndex();
    const present = new Set(names);
    for (const name of index.keys())
      if (!present.has(name)) {
        index.delete(name);
        this.unsettled.delete(name);
        this.indexChanged = true;
      }
    for (const name of this.headCache.keys()) if (!present.has(name)) this.headCache.delete(name);
    const unreadable: { file: string; reason: string }[] = [];
    const refused: Error[] = [];
    const signatures = new Map<string, string>();
    const read = await mapConcurrently(names, 32, async (name): Promise<EnvelopeSummary | null> => {
      const file = path.join(this.dir, name);
      const s = await stat(file, { bigint: true }).catch(() => null);
      if (!s) return null;
      const signature = `${s.ino}:${s.mtimeNs}:${s.size}`;
      signatures.set(name, signature);
      const settled = Number(s.mtimeMs) < lookedAt - 1_000;
      let entry = index.get(name);
      if (entry?.signature !== signature || (settled && this.unsettled.has(name))) {
        try {
          const envelope = await envelopeIn(file);
          entry = { signature, summary: envelope && summaryOf(envelope) };
          this.headCache.set(name, { signature, head: envelope && headOf(envelope) });
        } catch (error) {
          if (!(error instanceof SyntaxError)) {
            refused.push(error as Error);
            return null;
          }
          entry = { signature, summary: null, reason: error.message };
        }
        index.set(name, entry);
        if (settled) this.unsettled.delete(name);
        else this.unsettled.add(name);
        this.indexChanged = true;
      }
      if (entry.reason !== undefined) unreadable.push({ file, reason: entry.reason });
      return entry.summary;
    });
    await this.saveIndex(lookedAt);
    const found = { summaries: read.filter((e): e is EnvelopeSummary => e !== null), unreadable, refused };
    this.lastLook = { at: lookedAt, folderSignature, found, signatures };
    return found;
  }

  /**
   * The heads of the newest `limit` envelopes in `states`, newest first, and how many there are in all: chosen by
   * their summaries; an envelope is read only when it changed since this store last read it (the console's list
   * reads no envelope again while none changed).
   */
  async newestHeads(options: { limit: number; states: readonly EnvelopeState[] }): Promise<{
    heads: EnvelopeHead[];
    total: number;
    /** Each envelope file that is not JSON (left out: its state is unknown), with why. */
    unreadable: { file: string; reason: string }[];
  }> {
    const { summaries, unreadable } = await this.summaries();
    const signatures = this.lastLook?.signatures ?? new Map<string, string>();
    const matching = summaries.filter((e) => options.states.includes(e.state)).sort(newestFirst);
    const read = await mapConcurrently(matching.slice(0, options.limit), 32, async (e) => {
      const name = `${e.conversation_id}.json`;
      const cached = this.headCache.get(name);
      if (cached && cached.signature === signatures.get(name)) return cached.head;
      const envelope = await this.get(e.conversation_id).catch(() => null);
      const head = envelope && headOf(envelope);
      this.headCache.set(name, { signature: signatures.get(name) ?? '-', head });
      return head;
    });
    return { heads: read.filter((h): h is EnvelopeHead => h !== null), total: matching.length, unreadable };
  }

  /**
   * The newest `limit` envelopes in `states` (of one webhook type if given), newest first, and how many there are in
   * all: chosen by their summaries, so only the envelopes returned are read whole.
   */
  async newest(options: { limit: number; states: readonly EnvelopeState[]; type?: WebhookType | null }): Promise<{
    envelopes: FailedDeliveryEnvelope[];
    total: number;
    unreadable: { file: string; reason: string }[];
  }> {
    const { summaries, unreadable, refused } = await this.summaries();
    if (refused.length > 0) throw refused[0];
    const matching = summaries
      .filter((e) => options.states.includes(e.state) && (!options.type || e.webhook_type === options.type))
      .sort(newestFirst);
    const envelopes = await this.read(matching.slice(0, options.limit).map((e) => e.conversation_id));
    return {
      envelopes,
      total: matching.length,
      unreadable,
    };
  }

  /**
   * What `deliveries redrive --all` (and the console's recover) would redrive, oldest first, chosen by the summaries
   * (redriveCandidates): no envelope is read.
   */
  async plan(filter: { since: number | null; type?: string | null | undefined }): Promise<EnvelopeSummary[]> {
    const { summaries, refused } = await this.summaries();
    if (refused.length > 0) throw refused[0];
    return redriveCandidates(summaries, filter);
  }

  /** These conversations' envelopes, read whole, in the order asked; one gone or damaged meanwhile is left out. */
  async read(conversationIds: readonly string[]): Promise<FailedDeliveryEnvelope[]> {
    const read = await mapConcurrently([...conversationIds], 32, (id) =>
      this.get(id).catch((error: unknown) => {
        if (error instanceof SyntaxError) return null;
        throw error;
      }),
    );
    return read.filter((e): e is FailedDeliveryEnvelope => e !== null);
  }

  private async loadIndex(): Promise<Map<string, IndexEntry>> {
    if (!this.index) {
      const stored = await readJson<{ version?: unknown; files?: Record<string, IndexEntry> }>(this.indexFile).catch(
        () => null,
      );
      this.index = new Map(stored?.version === INDEX_VERSION && stored.files ? Object.entries(stored.files) : []);
    }
    return this.index;
  }

  private async saveIndex(now: number): Promise<void> {
    if (!this.indexChanged || !this.index) return;
    if (this.indexSavedAt !== null && now - this.indexSavedAt < INDEX_SAVE_EVERY_MS) return;
    this.indexChanged = false;
    this.indexSavedAt = now;
    const files = Object.fromEntries([...this.index].filter(([name]) => !this.unsettled.has(name)));
    await writeTextAtomic(this.indexFile, `${JSON.stringify({ version: INDEX_VERSION, files })}\n`).catch(() => {});
  }

  private claim(conversationId: string): void {
    let release = () => {};
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    this.holds.set(conversationId, { released, release });
  }

  private release(conversationId: string): void {
    this.holds.get(conversationId)?.release();
    this.holds.delete(conversationId);
  }

  /** Hold one conversation's envelope (waiting while another worker holds it), or null when there is none. */
  async hold(conversationId: string): Promise<HeldEnvelope | null> {
    while (this.holds.has(conversationId)) await this.holds.get(conversationId)!.released;
    this.claim(conversationId);
    try {
      const envelope = await this.get(conversationId);
      if (envelope) return { envelope };
    } catch (error) {
      this.release(conversationId);
      throw error;
    }
    this.release(conversationId);
    return null;
  }

  /**
   * Pending envelopes that are due, no one holds and this run has not seen yet, oldest first. A run (one `seen` set)
   * looks through the store once, at its first take, by each file's summary (summaries(): kept in the summary index
   * while the file is unchanged, a `stat`, no read); every later take of the run goes on down that list, and only the envelopes handed out are read.
   * One not due is not handed out (on AWS it is a message hidden until it is due), nor one `heldBack` says the gate
   * would only hold, so a run with nothing due, or only a paused receiver's, reads no envelope. An envelope stored or
   * made due during a run is taken by the next run.
   */
  async take(options: {
    seen: ReadonlySet<string>;
    now?: Date;
    heldBack?: (head: EnvelopeSummary, now: Date) => Promise<boolean>;
  }): Promise<TakenBatch<HeldEnvelope>> {
    const now = options.now ?? new Date();
    let queue = this.runQueues.get(options.seen);
    if (!queue) {
      const due = (await this.summaries()).summaries.filter(
        (h) => h.state === 'pending' && h.next_due_at !== null && Date.parse(h.next_due_at) <= now.getTime(),
      );
      // What the gate would only hold back (a paused receiver's deliveries) is left unread: it was read again every
      // second, thousands of envelopes for nothing.
      const { heldBack } = options;
      const held = heldBack ? await Promise.all(due.map((h) => heldBack(h, now))) : [];
      queue = due
        .filter((_h, i) => !held[i])
        .sort((a, b) => a.created_at.localeCompare(b.created_at))
        .map((h) => h.conversation_id);
      this.runQueues.set(options.seen, queue);
    }
    const items: HeldEnvelope[] = [];
    while (items.length < BATCH && queue.length > 0) {
      const id = queue.shift()!;
      if (options.seen.has(id) || this.holds.has(id)) continue;
      this.claim(id);
      const envelope = await this.get(id).catch(() => null);
      if (envelope && isDue(envelope, now)) items.push({ envelope });
      else this.release(id);
    }
    return { items, unreadable: [], count: items.length };
  }

  async store(item: HeldEnvelope, updated: FailedDeliveryEnvelope): Promise<void> {
    try {
      await this.put(updated);
    } finally {
      this.release(item.envelope.conversation_id);
    }
  }

  async wait(item: HeldEnvelope): Promise<void> {
    this.release(item.envelope.conversation_id);
  }

  async leave(item: HeldEnvelope): Promise<void> {
    this.release(item.envelope.conversation_id);
  }
}
