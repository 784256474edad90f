import { createHash } from 'node:crypto';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { LoggedAttempt } from '../../functions/domain/attempt-log.ts';
import type { ConversationRecord } from '../../functions/domain/conversation.ts';
import { isConversationId } from '../../functions/domain/conversation-id.ts';
import type { EndpointView } from '../../functions/domain/endpoints.ts';
import { EXPORT_FILES, type ExportFile, exportKey } from '../../functions/domain/export-formats.ts';
import type { AnalyticsEngine } from '../analytics/engine.ts';
import type { ExecutionRecord } from '../engine/engine.ts';
import {
  type ConversationFilter,
  type FilterableConversation,
  idTimeMs,
  matchesFilter,
  mayMatch,
  sortRows,
} from '../history/conversation-filters.ts';
import { type ConversationSummary, latestRecord, summarize } from '../history/conversations.ts';
import type { UnreadableReceiver } from '../history/endpoints.ts';
import { conversationFigures, type LaterDelivery } from '../history/figures.ts';
import { cursorOf, isAfter, type ListCursor, listConversations } from '../history/listing.ts';
import { withLoggedCounts } from '../history/logged-counts.ts';
import { LISTING_LOCK_WAIT_MS, SummaryIndex } from '../history/summary-index.ts';
import { conversationIdOf, type ExecutionStore, redactedHistory } from '../store/execution-store.ts';
import { readText, s3Client } from '../store/export-bucket.ts';
import type { EnvelopeHead, LocalFailedDeliveryStore } from '../store/failed-delivery-store.ts';
import { mapConcurrently } from '../store/json-files.ts';

/** What the running gateway hands the console: its stores and where its exports are. */
export interface ConsoleContext {
  executions: ExecutionStore;
  /**
   * The executions under way, each as its history so far (status RUNNING): a synchronous conversation has no saved
   * history until it ends, and is shown running meanwhile (engine/running.ts).
   */
  running: () => ExecutionRecord[];
  /** Changes whenever `running` does (the pages' live refresh). */
  runningVersion: () => number;
  /** Whether the gateway is stopping (Ctrl-C: its conversations in flight finish, new ones get 503 STOPPING). */
  stopping: () => boolean;
  /**
   * Why this gateway no longer serves its data folder (another gateway took it over while it stood still), or null:
   * each page then says so, and reads nothing.
   */
  lost?: () => string | null;
  failedDeliveries: LocalFailedDeliveryStore;
  bucket: string;
  s3Endpoint: string;
  /** ENABLE_CONVERSATION_EXPORT: the page says exports are off instead of looking for them. */
  exportEnabled: boolean;
  /**
   * The SQL engine over the exports (opened per page view, closed by the page); `fromDay` (`YYYY/MM/DD`): only the
   * exports of that day and later are brought up to date (the Analytics page shows the last 24 hours).
   */
  analytics: (fromDay?: string | null) => Promise<AnalyticsEngine>;
  /** Every logged attempt of a conversation, with what the receiver answered (the attempt log). */
  attempts: (conversationId: string) => Promise<LoggedAttempt[]>;
  /** Where the receivers' files are (deliveries/endpoints): the Endpoints page's live refresh watches it. */
  receiversDir: string;
  /**
   * The receivers as the Endpoints page shows them (the same read model as `endpoints list`), one whose file is
   * damaged as that file and what to do.
   */
  endpoints: () => Promise<(EndpointView | UnreadableReceiver)[]>;
  /** The clock of the Analytics page's "last 24 hours" and the recover form's default. */
  now?: () => Date;
}

export interface ConsoleRow extends ConversationSummary {
  agent_ms: number | null;
  /** The time its own run spent delivering (a part of total_time_ms; local/history/figures.ts). */
  delivery_ms: number | null;
  /** Each redelivery after its run that sent something (schedule, redrive, resend): when, and its own time. */
  later_deliveries: LaterDelivery[];
  attempts: number;
  /** The redelivery run under way for it (the schedule's, a redrive or a resend), by its execution name, or null. */
  redelivering: string | null;
}

/** The redelivery run under way among a conversation's executions, by its execution name, or null. */
export const redeliveryUnderWay = (executions: ExecutionRecord[]): string | null =>
  executions.find((e) => e.status === 'RUNNING' && e.state_machine === 'redelivery')?.execution_name ?? null;

/**
 * The ids that may be among the newest `limit`, newest first. Ids start with the UTC second received, but within a
 * second their order is not the order received (the source comes next): every id of the second of the `limit`-th one
 * is kept, for the rows to be sorted by the exact receive time, as `conversations list` does.
 */
async function newestIds(ctx: ConsoleContext, limit: number): Promise<string[]> {
  const stored = await ctx.executions.conversationIds();
  const ids = [...new Set([...stored, ...runningByConversation(ctx).keys()])].sort().reverse();
  if (ids.length <= limit) return ids;
  const second = idTimeMs(ids[limit - 1]!);
  let end = limit;
  while (end < ids.length && idTimeMs(ids[end]!) === second) end++;
  return ids.slice(0, end);
}

/** The executions under way, by the conversation each works on (known once Validate made its record). */
function runningByConversation(ctx: ConsoleContext): Map<string, ExecutionRecord[]> {
  const byId = new Map<string, ExecutionRecord[]>();
  // Masked as its saved history will be (signatures, secrets): the page shows nothing now that it would not then.
  for (const execution of ctx.running().map(redactedHistory)) {
    const id = conversationIdOf(execution);
    if (id) byId.set(id, [...(byId.get(id) ?? []), execution]);
  }
  return byId;
}

/**
 * A conversation's executions as the console shows them: each saved history (the damaged ones apart), then each
 * execution still under way whose history is not saved yet, oldest first.
 */
export async function conversationExecutions(
  ctx: ConsoleContext,
  id: string,
): Promise<{ executions: ExecutionRecord[]; damaged: { file: string; reason: string }[] }> {
  const { executions, damaged } = await ctx.executions.executionsAndDamaged(id);
  const saved = new Set(executions.map((e) => e.execution_name));
  const running = (runningByConversation(ctx).get(id) ?? []).filter((e) => !saved.has(e.execution_name));
  if (running.length === 0) return { executions, damaged };
  return {
    executions: [...executions, ...running].sort((a, b) => a.started_at.localeCompare(b.started_at)),
    damaged,
  };
}

/** A page of the console's list (and its JSON): the rows, and where the next page starts, if there may be one. */
export interface ConsolePage {
  rows: ConsoleRow[];
  /** The `cursor` of the next page (the rows after the last one shown), or null when nothing more can match. */
  next_cursor: string | null;
  /** The conversations met whose every history is damaged (left out of the rows: their page says why). */
  unreadable: string[];
  /** Why the summary index cannot be written (the gateway tries again), if so: listings read histories meanwhile. */
  unwritten_index?: string;
}

/**
 * One page of the conversations that match `filter`, newest first (a thread in turn order), after `cursor`: chosen
 * by the same listing as `conversations list`, with the executions under way that have no saved history yet.
 */
export async function listedConversations(
  ctx: ConsoleContext,
  filter: ConversationFilter,
  limit: number,
  cursor: ListCursor | null = null,
): Promise<ConsolePage> {
  const index = SummaryIndex.of(ctx.executions);
  const listing = await listConversations(ctx.executions, index, filter, limit, cursor);
  const found = new Set(listing.rows.map((r) => r.conversation_id));
  const candidates: ConversationSummary[] = [...listing.rows];
  for (const [id, runs] of runningByConversation(ctx)) {
    if (found.has(id) || !mayMatch(id, filter)) continue;
    const summary = summarize(id, runs);
    if (summary && matchesFilter(summary, filter) && isAfter(summary, cursor)) candidates.push(summary);
  }
  sortRows(candidates, filter);
  const rows: ConsoleRow[] = [];
  for (const { conversation_id: id } of candidates.slice(0, limit)) {
    const { executions } = await conversationExecutions(ctx, id);
    const summary = summarize(id, executions);
    const record = latestRecord(executions);
    if (!summary || !record) continue;
    const figures = conversationFigures(record, executions);
    rows.push({
      ...summary,
      agent_ms: figures.agent_ms,
      delivery_ms: figures.delivery_ms,
      later_deliveries: figures.later,
      attempts: figures.tries,
      redelivering: redeliveryUnderWay(executions),
    });
  }
  const more = candidates.length > limit || listing.unread > 0;
  const last = rows.at(-1);
  return {
    rows,
    // A thread is one page, in turn order: it has no next one.
    next_cursor: more && last && filter.thread === null ? cursorOf(last) : null,
    unreadable: listing.damaged,
    ...(index.unwritten !== null && { unwritten_index: `${index.file}: ${index.unwritten}` }),
  };
}

/**
 * The most turns the console's thread page shows: the newest, in turn order. Each one shown is its whole history
 * read (its question and answer); a thread of 3,000 turns read whole was a 2.4 MB page and 2 s of the gateway's CPU
 * at every live refresh, which any conversation of any source brings (docs/operations.md, "A thread").
 */
const THREAD_PAGE_TURNS = 100;

export interface ThreadTurns {
  /** The newest `limit` turns of the thread (turns still running included), in turn order. */
  turns: { row: ConsoleRow; record: ConversationRecord }[];
  /** How many earlier turns of the thread are not among them. */
  earlier: number;
}

/**
 * The newest `limit` conversations of a source's thread, in turn order, each with its record: those of that source
 * (its id says which are: mayMatch) that the summary index says are of the thread, or does not know. The index's rows
 * say each one's turn, so only the histories of the turns shown are read; on AWS `conversations list --thread --aws`
 * asks the SQL table.
 */
export async function threadConversations(
  ctx: ConsoleContext,
  sourceSystem: string,
  threadId: string,
  limit = THREAD_PAGE_TURNS,
): Promise<ThreadTurns> {
  const filter = {
    sources: [sourceSystem],
    types: [],
    statuses: [],
    since: null,
    until: null,
    thread: threadId,
    id: null,
    key: null,
  };
  // One per history store, kept across the console's requests (and the gateway's saves); what another process (a
  // command) wrote to it since merged in first, as the list does (listConversations).
  const index = SummaryIndex.of(ctx.executions);
  await index.refresh();
  // The summary index says which conversations are of the thread: only those are looked at (their folders checked
  // unchanged: rowOf). Before, every conversation of the source was checked (3 s at 50,000).
  const candidates = await index.mayBeOfThread(
    (await ctx.executions.conversationIds()).filter((id) => mayMatch(id, filter)),
    sourceSystem,
    threadId,
  );
  const looked = await mapConcurrently(candidates, 32, (id) => index.rowOf(id));
  type Found = { row: FilterableConversation; executions?: ExecutionRecord[]; running?: true };
  const found: Found[] = [];
  for (const known of looked) {
    if (!known.row || !matchesFilter(known.row, filter)) continue;
    found.push({ row: known.row, executions: known.executions });
  }
  await index.save({ until: Date.now() + LISTING_LOCK_WAIT_MS });
  // A turn still running with no saved history yet (its caller waiting for the answer) is a turn of it too.
  const listed = new Set(found.map((f) => f.row.conversation_id));
  for (const id of runningByConversation(ctx).keys()) {
    if (!mayMatch(id, filter) || listed.has(id)) continue;
    const { executions } = await conversationExecutions(ctx, id);
    const record = latestRecord(executions);
    const summary = summarize(id, executions);
    if (record?.metadata.thread_id !== threadId || record.metadata.source_system !== sourceSystem || !summary) continue;
    found.push({ row: summary, executions, running: true });
  }
  // In turn order, each life of a thread started again after the one before (sortRows); the newest `limit` shown.
  const order = sortRows(
    found.map((f) => f.row),
    filter,
  );
  const at = new Map(order.map((row, i) => [row.conversation_id, i]));
  found.sort((a, b) => at.get(a.row.conversation_id)! - at.get(b.row.conversation_id)!);
  const shown = found.slice(Math.max(0, found.length - Math.max(0, limit)));
  const turns: ThreadTurns['turns'] = [];
  for (const {
    row: { conversation_id: id },
    executions: known,
    running,
  } of shown) {
    const executions = known ?? (await ctx.executions.executions(id));
    const record = latestRecord(executions);
    if (record?.metadata.thread_id !== threadId || record.metadata.source_system !== sourceSystem) continue;
    const summary = summarize(id, executions);
    if (!summary) continue;
    turns.push({
      row: running
        ? { ...summary, agent_ms: null, delivery_ms: null, later_deliveries: [], attempts: 0, redelivering: null }
        : {
            ...summary,
            agent_ms: record.execution.timings.agent_ms,
            delivery_ms: record.execution.timings.delivery_ms,
            later_deliveries: [],
            attempts: record.execution.delivery_attempts.length,
            redelivering: null,
          },
      record,
    });
  }
  return { turns, earlier: found.length - shown.length };
}

/**
 * The newest `limit` deliveries still owed, newest first, as their heads, and how many are owed in all: chosen and
 * counted by the store's summary index, so a page render reads at most the envelopes it shows, and none again while
 * they are unchanged (the first view after a start read every envelope: 20 s at 54,000 of them).
 */
export async function openDeliveries(
  ctx: ConsoleContext,
  limit: number,
): Promise<{ deliveries: EnvelopeHead[]; total: number; unreadable: string[] }> {
  const { heads, total, unreadable } = await ctx.failedDeliveries.newestHeads({ limit, states: ['pending', 'dead'] });
  // Counted with the tries only the attempt log has, as `deliveries list` (a log that cannot be read: the envelope's).
  const { envelopes } = await withLoggedCounts(heads, ctx.attempts);
  // A damaged envelope may be owed: its conversation is named (its page names the file), not left out in silence.
  return { deliveries: envelopes, total, unreadable: unreadable.map((u) => path.basename(u.file, '.json')).sort() };
}

async function stamp(file: string): Promise<string> {
  try {
    const s = await stat(file, { bigint: true });
    return `${s.ino}:${s.mtimeNs}:${s.size}`;
  } catch {
    return '-';
  }
}

/**
 * A cheap fingerprint of what a page shows, polled every second by the page: directory and file stamps only
 * (a new execution file or a rewritten delivery envelope changes its directory's mtime), no JSON is read.
 */
export async function version(ctx: ConsoleContext, conversationId?: string): Promise<string> {
  const parts: string[] = [];
  if (conversationId && isConversationId(conversationId)) {
    parts.push(await stamp(path.join(ctx.executions.dir, conversationId)));
    parts.push(await stamp(path.join(ctx.failedDeliveries.dir, `${conversationId}.json`)));
    for (const run of runningByConversation(ctx).get(conversationId) ?? [])
      parts.push(`${run.execution_name}:${run.events.length}`);
  } else {
    const folder = await stamp(ctx.executions.dir);
    parts.push(folder, await stamp(ctx.failedDeliveries.dir), `running:${ctx.runningVersion()}`);
    const ids = await newestIdsAsOf(ctx, folder);
    parts.push(...(await Promise.all(ids.map((id) => stamp(path.join(ctx.executions.dir, id))))));
  }
  return createHash('sha256').update(parts.join('|')).digest('hex').slice(0, 16);
}

/** The fingerprint of the Endpoints page's rows: the page's own, of the rows it rendered, and the poll's. */
export function endpointsFingerprint(views: unknown[]): string {
  return createHash('sha256').update(JSON.stringify(views)).digest('hex').slice(0, 16);
}

/** The Endpoints page's last fingerprint, by its two folders: their stamps then, and whether those had settled. */
const endpointsAtStamp = new Map<string, { stamps: string; version: string; settled: boolean }>();

/**
 * The Endpoints page's fingerprint: what its receivers' rows show (the same views the page renders), so that a write
 * that changes none of it (a probe lease taken, a retry of a delivery still owed, a receiver set to what it was) does
 * not refresh the page. Read again only when the receivers' folder (each change of one renames a fresh file into it)
 * or the failed-delivery folder (its queued counts) changed since, or changed within the second before the last read
 * (file times are coarse: a folder may change again under the same time).
 */
export async function endpointsVersion(ctx: ConsoleContext): Promise<string> {
  const lookedAt = Date.now();
  const folders = await Promise.all(
    [ctx.receiversDir, ctx.failedDeliveries.dir].map((dir) => stat(dir, { bigint: true }).catch(() => null)),
  );
  const stamps = folders.map((s) => (s ? `${s.ino}:${s.mtimeNs}:${s.size}` : '-')).join('|');
  const key = `${ctx.receiversDir}|${ctx.failedDeliveries.dir}`;
  const cached = endpointsAtStamp.get(key);
  if (cached?.settled && cached.stamps === stamps) return cached.version;
  const version = endpointsFingerprint(await ctx.endpoints());
  const settled = folders.every((s) => s === null || Number(s.mtimeMs) < lookedAt - 1_000);
  endpointsAtStamp.set(key, { stamps, version, settled });
  return version;
}

/** The list page's newest ids, by executions folder, with that folder's stamp when they were listed. */
const newestAtStamp = new Map<string, { stamp: string; ids: string[]; settled: boolean }>();

/**
 * The newest 100 ids for the version poll: listed again only when the executions folder changed (a conversation's
 * folder added or removed changes its stamp; the stamp is taken before the listing), not every second per open tab,
 * which at tens of thousands of conversations took most of a second each time. File times are coarse (a few ms): a
 * folder changed within the second before a listing may change again under the same time, so it is listed again.
 */
async function newestIdsAsOf(ctx: ConsoleContext, folderStamp: string): Promise<string[]> {
  const cached = newestAtStamp.get(ctx.executions.dir);
  if (folderStamp !== '-' && cached?.settled && cached.stamp === folderStamp) return cached.ids;
  const listedAt = Date.now();
  const folder = await stat(ctx.executions.dir).catch(() => null);
  const ids = await newestIds(ctx, 100);
  const settled = folder !== null && folder.mtimeMs < listedAt - 1_000;
  newestAtStamp.set(ctx.executions.dir, { stamp: folderStamp, ids, settled });
  return ids;
}

export interface ExportDocumentView {
  file: ExportFile;
  key: string;
  /** Pretty-printed JSON (or the raw text if it is not JSON); null when the object does not exist. */
  text: string | null;
  error?: string;
}

/** The four export documents of one conversation, read from the export bucket through S3. */
export async function exportDocuments(ctx: ConsoleContext, conversationId: string): Promise<ExportDocumentView[]> {
  const client = s3Client(ctx.s3Endpoint);
  const bucket = {
    client,
    bucket: ctx.bucket,
    endpoint: ctx.s3Endpoint,
    via: 'running' as const,
    close: async () => {},
  };
  try {
    return await Promise.all(
      EXPORT_FILES.map(async (file): Promise<ExportDocumentView> => {
        const key = exportKey(conversationId, file);
        try {
          const text = await readText(bucket, key);
          if (text === null) return { file, key, text: null };
          try {
            return { file, key, text: JSON.stringify(JSON.parse(text), null, 2) };
          } catch {
            return { file, key, text };
          }
        } catch (error) {
          return { file, key, text: null, error: (error as Error).message };
        }
      }),
    );
  } finally {
    client.destroy();
  }
}
