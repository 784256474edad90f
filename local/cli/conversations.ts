/** `webhook-gateway conversations list | show | search` (docs/operations.md), on the local data directory. */
import { constants } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { withAttemptLog } from '../../functions/domain/attempt-log.ts';
import { agentTurn, type ConversationRecord, turnText, userQuery } from '../../functions/domain/conversation.ts';
import { isConversationId } from '../../functions/domain/conversation-id.ts';
import { shownDeliveryUrl } from '../../functions/domain/delivery-url.ts';
import { EXPORT_FILES, exportFolder, recordFromExport } from '../../functions/domain/export-formats.ts';
import { type FailedDeliveryEnvelope, owedBy } from '../../functions/domain/failed-delivery.ts';
import { FileAttemptLog } from '../../functions/shared/attempt-log.ts';
import { settings } from '../../functions/shared/settings.ts';
import type { ExecutionRecord } from '../engine/engine.ts';
import {
  type ConversationFilter,
  type FilterableConversation,
  FilterError,
  type FilterFlags,
  idTimeMs,
  isEmptyFilter,
  parseFilter,
  sortRows,
  statusLabel,
} from '../history/conversation-filters.ts';
import { inboundWebhookId, latestRecord, recoveredAfterStop } from '../history/conversations.ts';
import { NO_HOLDS, nextAttemptLabel, type ReceiverHolds } from '../history/endpoints.ts';
import { conversationFigures, formatFigures } from '../history/figures.ts';
import { type Listing, type ListingProgress, listConversations } from '../history/listing.ts';
import { SummaryIndex } from '../history/summary-index.ts';
import { formatTimeline } from '../history/timeline.ts';
import { resolveOptions } from '../server/config.ts';
import { ExecutionStore } from '../store/execution-store.ts';
import { LocalFailedDeliveryStore } from '../store/failed-delivery-store.ts';
import { localExportBucket, readGatewayRuntime } from '../store/gateway-runtime.ts';
import { ObjectStore } from '../store/object-store.ts';
import { explainAwsError, exportMissingOrDenied } from './aws/errors.ts';
import { localReceiverHolds } from './deliveries.ts';
import {
  AWS_OPTIONS,
  awsRequested,
  CliError,
  DEFAULT_STACK_NAME,
  limitOf,
  noMoreThanOne,
  note,
  onDataDir,
  out,
  outJson,
  progress,
} from './shared.ts';
import { cell, formatTable, printable } from './table.ts';

const FILTER_OPTIONS = {
  ...AWS_OPTIONS,
  source: { type: 'string' },
  type: { type: 'string' },
  status: { type: 'string' },
  since: { type: 'string' },
  until: { type: 'string' },
  thread: { type: 'string' },
  id: { type: 'string' },
  key: { type: 'string' },
  limit: { type: 'string' },
  json: { type: 'boolean' },
} as const;

function filterOf(values: FilterFlags): ConversationFilter {
  try {
    return parseFilter(values);
  } catch (error) {
    if (error instanceof FilterError) throw new CliError(error.message);
    throw error;
  }
}

const sourceOf = (c: { source_system: string; source_process: string }) => `${c.source_system}/${c.source_process}`;

/** A history file that is not JSON (or a folder, or one the system refuses) is left out, and named on stderr. */
function skippedHistory(file: string, reason: string): void {
  note(`webhook-gateway: ${historyProblem(file, reason)}: that execution is left out`);
}

/** The file and what is wrong with it (an UnreadableFileError's reason names its file already). */
const historyProblem = (file: string, reason: string) => (reason.startsWith(file) ? reason : `${file}: ${reason}`);

/** An empty list's hint: where to POST when a gateway runs on this folder, else to start one. */
async function noneYet(dir: string): Promise<string> {
  const { dataDir } = resolveOptions();
  const running = await readGatewayRuntime(dataDir);
  return running
    ? `No conversations yet in ${dir}: POST one to ${running.url}/webhook (the gateway running on this folder).`
    : `No conversations yet in ${dir}. Start the gateway (${onDataDir('npm start', dataDir)}) and POST to /webhook.`;
}

/** The signals that stop a listing that fills the summary index, once it kept what it read. */
const STOP_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** Histories a listing reads before it says so: fewer take well under a second. */
const PROGRESS_AFTER_READS = 100;

/**
 * A listing that fills the summary index (the first `--key` on a data folder an earlier version wrote, a first filtered
 * listing) reads each history once: 68 s at 54,000 conversations. Once it has read PROGRESS_AFTER_READS it says so on
 * stderr (stdout, --json's, stays clean): on a terminal one line rewritten in place (under 80 columns, so that it does
 * not wrap; a damaged history named meanwhile gets a line of its own above it), else a line at each tenth of the way;
 * the last says where it ended. Stopped with Ctrl-C (or SIGTERM, SIGHUP: `timeout`, a closed terminal), it keeps what
 * it read in the index.
 */
async function listWithProgress(store: ExecutionStore, filter: ConversationFilter, limit: number): Promise<Listing> {
  const tty = process.stderr.isTTY === true;
  // How far the listing got, and where the last line said it was (0: nothing said).
  const at = { looked: 0, of: 0, said: 0, stopped: false };
  const say = () => {
    if (at.stopped) return; // by Ctrl-C: its line said where
    const text = `webhook-gateway: filling the summary index (once): ${at.looked}/${at.of} conversations`;
    if (tty) progress(text);
    else note(text);
    at.said = at.looked;
  };
  const onProgress: ListingProgress = ({ looked, candidates, read }) => {
    if (at.said === 0 && read < PROGRESS_AFTER_READS) return;
    const step = tty ? 50 : Math.ceil(candidates / 10);
    const due = at.said === 0 || Math.floor(looked / step) > Math.floor(at.said / step);
    at.looked = looked;
    at.of = candidates;
    if (due) say();
  };
  const index = new SummaryIndex(store);
  // Ctrl-C while it fills (or a SIGTERM, a SIGHUP: `timeout`, a closed terminal): what it read so far is kept (the
  // next listing goes on from there rather than read it all again), then it stops, as that signal stops a command
  // (128 + its number); a second one stops it at once.
  const interrupt = (signal: NodeJS.Signals) => {
    at.stopped = true;
    if (at.said > 0) {
      if (tty) progress(null);
      note(`webhook-gateway: stopped at ${at.looked}/${at.of} conversations; the summary index keeps those read`);
    }
    void index.save().finally(() => process.exit(128 + constants.signals[signal]));
  };
  for (const signal of STOP_SIGNALS) process.once(signal, interrupt);
  try {
    return await listConversations(store, index, filter, limit, null, onProgress);
  } finally {
    for (const signal of STOP_SIGNALS) process.off(signal, interrupt);
    if (at.said > 0 && at.said !== at.looked) say();
    if (tty) progress(null);
    // What it read is not kept (a full disk, a refused folder): said, as the next listing reads it again.
    if (index.unwritten !== null)
      note(
        `webhook-gateway: the summary index ${index.file} could not be written (${index.unwritten}): the next listing reads those histories again`,
      );
  }
}

export async function conversationsList(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: FILTER_OPTIONS });
  if (positionals.length > 0)
    throw new CliError(
      `conversations list takes no arguments, got "${positionals.join(' ')}" (to look for text use "conversations search <text>")`,
    );
  const filter = filterOf(values);
  const limit = limitOf(values.limit, 50);
  if (awsRequested(values)) return conversationsSearch(args, { listing: true });
  const store = new ExecutionStore(resolveOptions().dataDir, { onUnreadable: skippedHistory });
  const { rows: summaries, unread, unreadMatching } = await listWithProgress(store, filter, limit);
  sortRows(summaries, filter);
  const shown = summaries.slice(0, limit);
  if (values.json) {
    outJson(shown);
    return 0;
  }
  if (shown.length === 0) {
    out(isEmptyFilter(filter) ? await noneYet(store.dir) : `No conversations match these filters in ${store.dir}.`);
    return 0;
  }
  out(listTable(shown, filter));
  const later = filter.thread !== null ? 'later turns' : 'older';
  const hidden = summaries.length - shown.length;
  // How many of those left unread match, as the summary index counted them (null: it could not, so they may).
  const more = unread === 0 ? 0 : isEmptyFilter(filter) ? unread : unreadMatching;
  if (more === null)
    out(`(${hidden > 0 ? `${hidden} older not shown, ` : ''}${unread} older not read, which may match; use --limit)`);
  else if (hidden + more > 0) out(`(${hidden + more} ${later} not shown; use --limit)`);
  return 0;
}

type ListRow = FilterableConversation & { total_time_ms: number | null; query: string };

/** The rows of a listing; a thread's show each turn and its question first. */
function listTable(rows: ListRow[], filter: ConversationFilter): string {
  if (filter.thread !== null)
    return formatTable(
      ['turn', 'conversation_id', 'received_at', 'source', 'type', 'status', 'delivery', 'query'],
      rows.map((r) => [
        r.thread_turn ?? '-',
        r.conversation_id,
        r.received_at,
        sourceOf(r),
        r.webhook_type,
        statusLabel(r),
        r.delivery_status,
        cell(r.query, 60),
      ]),
    );
  return formatTable(
    ['conversation_id', 'received_at', 'source', 'type', 'status', 'delivery', 'total_ms'],
    rows.map((s) => [
      s.conversation_id,
      s.received_at,
      sourceOf(s),
      s.webhook_type,
      statusLabel(s),
      s.delivery_status,
      s.total_time_ms,
    ]),
  );
}

export async function conversationsShow(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { json: { type: 'boolean' }, key: { type: 'string' }, source: { type: 'string' }, ...AWS_OPTIONS },
  });
  noMoreThanOne(positionals, 'conversations show', 'conversation id');
  if (values.key !== undefined && positionals.length > 0)
    throw new CliError('conversations show takes a conversation id or --key, not both');
  if (values.source !== undefined && values.key === undefined)
    throw new CliError('conversations show takes --source only with --key (the source that sent the key)');
  const byKey = values.key === undefined ? null : filterOf({ key: values.key, source: values.source });
  const id =
    byKey === null
      ? positionals[0]
      : awsRequested(values)
        ? await awsConversationOfKey(byKey, values)
        : await conversationOfKey(byKey);
  if (!id)
    throw new CliError(
      'conversations show needs a conversation id, e.g. webhook_20250813_103045_testing_phase3valid_abc123, or --key with the Idempotency-Key or webhook-id its request carried',
    );
  if (!isConversationId(id))
    throw new CliError(
      `"${id}" is not a conversation id (expected webhook_<YYYYMMDD>_<HHMMSS>_<source>_<process>_<suffix>)`,
    );
  if (awsRequested(values)) return conversationsShowAws(id, values);
  const options = resolveOptions();
  const store = new ExecutionStore(options.dataDir, { onUnreadable: skippedHistory });
  const { executions, damaged } = await store.executionsAndDamaged(id);
  // Its histories are there but none can be read: named, with what is wrong, not taken for a missing conversation.
  if (executions.length === 0 && damaged.length > 0)
    throw new CliError(
      `conversation ${id} has no readable execution history: ${damaged.map((d) => historyProblem(d.file, d.reason)).join('; ')}: mend or move aside ${damaged.length === 1 ? 'that file' : 'those files'} (docs/operations.md, "After a crash"); its export, if any, still has it: conversations search ${id}`,
    );
  for (const { file, reason } of damaged) skippedHistory(file, reason);
  if (executions.length === 0) {
    // Its history gone (the retention sweep removes a conversation's history after LOCAL_HISTORY_DAYS, never its
    // export): before, it was "no conversation", as for an id never seen, while the bucket had it whole.
    const bucket = await localExportBucket(options.dataDir);
    if (await exported(options.dataDir, bucket, id))
      throw new CliError(
        `conversation ${id} has no execution history in ${store.dir} (removed by the retention sweep after LOCAL_HISTORY_DAYS, or deleted), but its export is in s3://${bucket}/${exportFolder(id)}: "webhook-gateway conversations search ${id}" shows it (docs/operations.md, "Local history retention")`,
      );
    throw new CliError(
      `no conversation ${id} in ${store.dir} (run "webhook-gateway conversations list" to see the known ones)`,
    );
  }
  const latest = latestRecord(executions);
  // Every attempt with what the receiver answered, from the attempt log (the record keeps them in short).
  const logged = await new FileAttemptLog(path.join(options.dataDir, 'deliveries')).list(id);
  const record = latest && withAttemptLog(latest, logged);
  const envelope = await new LocalFailedDeliveryStore(options.dataDir).get(id).catch((error: Error) => {
    if (!(error instanceof SyntaxError)) throw error;
    note(`webhook-gateway: ${error.message}: its redelivery state is not shown`);
    return null;
  });
  const bucket = await localExportBucket(options.dataDir);
  const off = await exportsOff(options.dataDir, bucket, id);
  printConversation(id, record, envelope, executions, values.json ?? false, `s3://${bucket}/${exportFolder(id)}`, {
    exportsOff: off,
    unexported: !off && !(await exported(options.dataDir, bucket, id)),
    holds: envelope?.state === 'pending' ? await localReceiverHolds(options.dataDir) : undefined,
  });
  return 0;
}

/**
 * The conversation a request's Idempotency-Key or inbound webhook-id started (`filter.key`, of `filter.sources` if
 * given): the newest, when a retry ran again after a failure or a crash, or the same key came from two sources (the
 * others are named on stderr). A retry answered from the key has no conversation of its own: it is the first one.
 */
async function conversationOfKey(filter: ConversationFilter): Promise<string> {
  const store = new ExecutionStore(resolveOptions().dataDir, { onUnreadable: skippedHistory });
  const { rows } = await listWithProgress(store, filter, 50);
  sortRows(rows, filter);
  const [newest, ...others] = rows;
  if (!newest)
    throw new CliError(
      `no conversation in ${store.dir} was started by a request with Idempotency-Key or webhook-id "${filter.key}"${filter.sources.length > 0 ? ` from ${filter.sources.join(', ')}` : ''} (the key is exact, as the source sent it)`,
    );
  if (others.length > 0)
    note(
      `webhook-gateway: "${filter.key}" also started ${others.map((r) => `${r.conversation_id} (${sourceOf(r)}, ${r.status})`).join(', ')}; showing the newest`,
    );
  return newest.conversation_id;
}

/**
 * `--key` with `--aws`: the conversation the stack's idempotency table holds for the key of one source (its items are
 * keyed by both), named on stderr.
 */
async function awsConversationOfKey(
  filter: ConversationFilter,
  target: { stack?: string; region?: string; profile?: string },
): Promise<string> {
  const [source, ...more] = filter.sources;
  if (source === undefined || more.length > 0 || filter.key === null)
    throw new CliError(
      "--key with --aws needs --source with the one source system that sent it: the stack's idempotency table keeps each key under its source (without --aws the local histories are searched by the key alone)",
    );
  const system = source.split('/')[0]!;
  const { conversationOfKeyOnAws } = await import('./aws/conversations.ts');
  const id = await conversationOfKeyOnAws(target, system, filter.key);
  if (id === null)
    throw new CliError(
      `no key "${filter.key}" of ${system} in the ${target.stack ?? DEFAULT_STACK_NAME} stack's idempotency table: it keeps a key 24 hours after its conversation completed; docs/operations.md ("Find a conversation by the source's message id") says how to look further back`,
    );
  note(`"${filter.key}" of ${system} started ${id} (the stack's idempotency table)`);
  return id;
}

/** Exports are off (ENABLE_CONVERSATION_EXPORT=false here or in the running gateway) and none was written for `id`. */
async function exportsOff(dataDir: string, bucket: string, id: string): Promise<boolean> {
  if (settings().exportEnabled && (await readGatewayRuntime(dataDir))?.export_enabled !== false) return false;
  return !(await exported(dataDir, bucket, id));
}

/** The embedded S3 holds the conversation.json of `id`. */
async function exported(dataDir: string, bucket: string, id: string): Promise<boolean> {
  const stored = await new ObjectStore(path.join(dataDir, 's3')).get(
    bucket,
    `${exportFolder(id)}conversation.json`,
    true,
  );
  await stored?.close();
  return stored !== null;
}

/**
 * Show a conversation from the deployed stack: its export (S3, the system of record) and its executions (the Express
 * log groups). Logs are best effort (docs/deploy.md): when they cannot be read, the export is shown and stderr says why.
 */
async function conversationsShowAws(
  id: string,
  values: { json?: boolean; stack?: string; region?: string; profile?: string },
): Promise<number> {
  const aws = await import('./aws/conversations.ts');
  const { withAws } = await import('./aws/stack.ts');
  const { readText } = await import('../store/export-bucket.ts');
  return withAws(values, async (clients, stackName) => {
    const stack = await aws.readConversationStack(clients, stackName);
    const location = aws.awsExportLocation(stack, id);
    // A refusal may mean a missing export (S3 says AccessDenied for one to a role without s3:ListBucket): the logs
    // are read as for a conversation not exported, and every line about the export says both.
    let refused: string | null = null;
    const text = await readText(aws.awsExportBucket(clients, stack), `${exportFolder(id)}conversation.json`).catch(
      (error: unknown) => {
        refused = exportMissingOrDenied(error);
        if (refused === null) throw error;
        return null;
      },
    );
    const noExport =
      refused === null ? `no export for ${id} in ${location}` : `no export for ${id} in ${location} (${refused})`;
    const record = text === null ? null : recordFromExport(JSON.parse(text));
    note(
      `reading the execution history of ${id} from ${stack.logGroups.join(', ') || '(no log group outputs)'}… (Ctrl-C stops its Logs Insights query)`,
    );
    let executions: ExecutionRecord[] = [];
    let unread: string | null = null;
    // Ctrl-C stops the Logs Insights query too (as the Athena one): it would otherwise run on in the account.
    const abort = new AbortController();
    const interrupt = () => abort.abort();
    process.once('SIGINT', interrupt);
    try {
      executions = await aws.executionsFromLogs(clients.logs, stack.logGroups, id, idTimeMs(id) - 60_000, {
        signal: abort.signal,
      });
    } catch (error) {
      if (error instanceof aws.InsightsStoppedError && error.interrupted) throw error;
      unread = explainAwsError(error, { ...values, stack: stackName }).message;
    } finally {
      process.off('SIGINT', interrupt);
    }
    if (record === null) {
      // Not exported (still running, or its run ended before its Export: States.DataLimitExceeded, docs/operations.md):
      // its executions say why.
      if (executions.length === 0)
        throw new CliError(
          `${noExport}, and ${unread === null ? `no execution of it in ${stack.logGroups.join(', ') || '(no log group outputs)'}` : `its execution history could not be read (${unread})`}`,
        );
      if (!values.json)
        out(
          refused === null
            ? `conversation ${id}: no export in ${location} (still running, or its run ended before its export: the executions below say why)`
            : `conversation ${id}: ${noExport}; the executions below say how it ran`,
        );
      printConversation(id, null, null, executions, values.json ?? false, location);
      return 0;
    }
    printConversation(id, record, null, executions, values.json ?? false, location);
    if (unread !== null)
      note(
        `webhook-gateway: the execution history of ${id} could not be read (${unread}); the export above is the system of record`,
      );
    else if (executions.length === 0 && !values.json) {
      out('');
      out(
        `No execution history for ${id} in ${stack.logGroups.join(', ')}: it may have aged out of the logs (their retention).`,
      );
      out('The export above is the system of record.');
    }
    return 0;
  });
}

function printConversation(
  id: string,
  record: ConversationRecord | null,
  envelope: FailedDeliveryEnvelope | null,
  executions: ExecutionRecord[],
  json: boolean,
  exportsAt: string,
  {
    exportsOff = false,
    unexported = false,
    holds = NO_HOLDS,
  }: { exportsOff?: boolean; unexported?: boolean; holds?: ReceiverHolds } = {},
): void {
  if (json) {
    const delivery_attempts = record?.execution.delivery_attempts ?? [];
    const recovered = recoveredAfterStop(executions);
    outJson({ conversation: record, recovered, delivery_attempts, failed_delivery: envelope, executions });
    return;
  }
  const oneLine = (text: string, max: number) => printable(cell(text, max));
  if (record) {
    const ctx = record.webhook_context;
    const answer = agentTurn(record);
    out(`conversation ${id}`);
    out(
      `  source     ${record.metadata.source_system} / ${record.metadata.source_process}   received ${record.metadata.received_at}`,
    );
    const webhookId = inboundWebhookId(executions);
    if (record.metadata.idempotency_key || webhookId)
      out(`  request    idempotency key ${record.metadata.idempotency_key ?? '-'}   webhook-id ${webhookId ?? '-'}`);
    const { thread_id: threadId, thread_turn: turn } = record.metadata;
    if (threadId)
      // A thread belongs to its source (docs/contract.md#threads): --thread alone would list other sources' too.
      out(
        `  thread     ${threadId}   turn ${turn ?? '-'}   (all of it: conversations list --thread ${threadId} --source ${record.metadata.source_system})`,
      );
    out(`  query      ${oneLine(userQuery(record), 160)}`);
    if (answer) out(`  answer     ${oneLine(turnText(answer), 160)}`);
    out(`  type       ${ctx.webhook_type ?? '-'}   (${ctx.classification_reason ?? 'not classified'})`);
    out(
      `  status     ${statusLabel({ status: record.execution.status, recovered: recoveredAfterStop(executions) })}   delivery ${ctx.delivery_status}   delivery_id ${ctx.delivery_id}`,
    );
    if (recoveredAfterStop(executions))
      out(`             a stop of the gateway cut it; the next start's recovery finished it (executions below)`);
    out(`  time       ${formatFigures(conversationFigures(record, executions))}`);
    for (const a of record.execution.delivery_attempts) {
      out(
        `  attempt ${a.attempt}  ${a.at}  ${a.via ?? 'workflow'}  ${a.outcome}${a.status_code ? ` HTTP ${a.status_code}` : ''}  ${a.duration_ms} ms${a.request ? `  → ${shownDeliveryUrl(a.request.url)}` : ''}`,
      );
      if (a.response)
        out(
          `             answered ${a.response.status}${a.response.headers['content-type'] ? ` (${a.response.headers['content-type']})` : ''}: ${oneLine(a.response.body, 140) || '(empty body)'}${a.response.body_truncated ? ' [the rest not kept]' : ''}`,
        );
      else if (a.error) out(`             ${oneLine(a.error, 140)}`);
    }
    for (const e of record.execution.errors)
      out(`  error      ${e.at}  ${e.stage}: ${e.error}: ${oneLine(e.message, 140)}`);
    const exportOwed = envelope !== null && envelope.state !== 'settled' && owedBy(envelope) === 'export';
    if (envelope && envelope.state !== 'settled') {
      const next =
        envelope.state === 'pending'
          ? `next automatic attempt ${nextAttemptLabel(envelope, holds)}`
          : `dead-lettered (${envelope.dead_reason ?? 'no more automatic attempts'})`;
      out(
        `  ${exportOwed ? 'export    ' : 'redelivery'} ${envelope.state}: ${next}; redrive now with: webhook-gateway deliveries redrive ${id}`,
      );
    }
    out(
      exportsOff
        ? '  exports    none: exports are off (ENABLE_CONVERSATION_EXPORT=false); the history below is the record'
        : unexported && !exportOwed
          ? `  exports    none in ${exportsAt} (${record.execution.status === 'in_progress' ? 'not yet: it is still running' : 'its run ended before its export; the executions below say why'})`
          : `  exports    ${exportsAt}{${EXPORT_FILES.join(',')}}${exportOwed ? `  (not written yet: ${envelope.last_error ?? 'S3 refused them'})` : ''}`,
    );
  }
  for (const execution of executions) {
    out('');
    out(formatTimeline(execution));
    if (execution.console_url) out(`  console: ${execution.console_url}`);
  }
}

export async function conversationsSearch(args: string[], mode: { listing?: boolean } = {}): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: FILTER_OPTIONS });
  const text = positionals.join(' ').trim();
  if (!text && !mode.listing)
    throw new CliError(
      'conversations search needs the text to look for, e.g. conversations search "top 5 deals" [--source S] [--type T] [--status S] [--since ISO] [--json]',
    );
  let filter = filterOf(values);
  if (filter.key !== null && !mode.listing)
    throw new CliError(
      'conversations search takes no --key: the exported records have no key column; conversations list --key or show --key find it',
    );
  // list --aws --key: the conversation the idempotency table names, looked up in the exports from its own second on.
  const key = filter.key;
  if (key !== null) {
    const id = await awsConversationOfKey(filter, values);
    filter = { ...filter, key: null, id, since: Math.max(filter.since ?? 0, idTimeMs(id)) };
  }
  const limit = values.limit === undefined && !mode.listing ? null : limitOf(values.limit, 50);
  const { hitOfRow, searchSql } = await import('../history/export-search.ts');
  let rows: Record<string, unknown>[];
  let where: string;
  let of = '';
  if (awsRequested(values)) {
    // A deployed bucket can hold years: Athena reads the day folders from --since (default: the last 7 days).
    const since = filter.since ?? Date.now() - 7 * 86_400_000;
    const { megabytes, queryOnAthena } = await import('./aws/query.ts');
    const run = await queryOnAthena(values, searchSql({ text, filter: { ...filter, since }, limit }));
    if (filter.since === null) note('(--aws searches the last 7 days of exports; use --since for more)');
    rows = run.rows;
    where = `the ${values.stack ?? DEFAULT_STACK_NAME} stack's exports (Athena: ${megabytes(run.scannedBytes)} scanned)`;
  } else {
    const { openLocalEngine } = await import('./query.ts');
    // With --since, the SQL reads only the day folders from it on (its `day` condition): only those are listed and
    // brought up to date, however many days the bucket holds; how many the other days hold is then not counted.
    const fromDay =
      filter.since === null ? null : new Date(filter.since).toISOString().slice(0, 10).replaceAll('-', '/');
    const engine = await openLocalEngine(fromDay);
    try {
      const query = searchSql({ text, filter, limit });
      rows = (await engine.query(query.sql, query.params)).rows;
      where = fromDay ? `${engine.location}, the exports from ${fromDay} on` : engine.location;
      if (!fromDay) of = ` of ${engine.report.rows}`;
    } finally {
      engine.close();
    }
  }
  const matches = Number(rows[0]?.matches ?? 0);
  const shown = rows.map((r) => hitOfRow(r, text));
  // A thread in turn order as the local listing shows it: SQL orders by turn alone, so a thread started again after
  // THREAD_TTL_DAYS (--since that far back) came interleaved with its earlier life (sortRows).
  if (mode.listing && filter.thread !== null) sortRows(shown, filter);
  note(
    mode.listing
      ? `${matches} exported conversations in ${where}`
      : `${matches}${of} exported conversations match "${text}" in ${where}`,
  );
  if (values.json) {
    // A listing's rows have the local list's fields (scripts run on both); how many executions is in the logs only.
    const rows = mode.listing
      ? shown.map(({ key: _key, matched_in: _in, snippet: _snippet, ...row }) => ({
          ...row,
          executions: null,
          idempotency_key: key,
          webhook_id: null,
        }))
      : shown;
    outJson(rows);
    return 0;
  }
  if (shown.length === 0) {
    out(
      mode.listing
        ? `No exported conversations${isEmptyFilter(filter) ? '' : ' match these filters'}${filter.since === null ? ' in the last 7 days (use --since for more)' : ''}.`
        : `No exported conversation matches "${text}"${isEmptyFilter(filter) ? '' : ' with these filters'}.`,
    );
    return 0;
  }
  out(
    mode.listing
      ? listTable(shown, filter)
      : formatTable(
          ['conversation_id', 'received_at', 'source', 'type', 'status', 'delivery', 'matched_in', 'snippet'],
          shown.map((h) => [
            h.conversation_id,
            h.received_at,
            sourceOf(h),
            h.webhook_type,
            h.status,
            h.delivery_status,
            h.matched_in.join(','),
            h.snippet,
          ]),
        ),
  );
  if (matches > shown.length) out(`(${matches - shown.length} older not shown; use --limit)`);
  return 0;
}
