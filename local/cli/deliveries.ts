import path from 'node:path';
import { parseArgs } from 'node:util';
import { WEBHOOK_TYPES } from '../../functions/domain/conversation.ts';
import { isConversationId } from '../../functions/domain/conversation-id.ts';
import { endpointView } from '../../functions/domain/endpoints.ts';
import { type FailedDeliveryEnvelope, owedBy, resendRefusal } from '../../functions/domain/failed-delivery.ts';
import { FileAttemptLog } from '../../functions/shared/attempt-log.ts';
import { FileEndpointStore } from '../../functions/shared/endpoint-store.ts';
import type { RedeliveryResult } from '../../functions/shared/redelivery.ts';
import { settings } from '../../functions/shared/settings.ts';
import { latestRecord } from '../history/conversations.ts';
import { NO_HOLDS, nextAttemptLabel, type ReceiverHolds, receiverHolds } from '../history/endpoints.ts';
import { withLoggedCounts } from '../history/logged-counts.ts';
import { DATA_DIR_HEADER, DATA_DIR_HOLDER_HEADER, resolveOptions } from '../server/config.ts';
import { dataDirHolder } from '../store/data-dir-lock.ts';
import { ExecutionStore } from '../store/execution-store.ts';
import { envelopeStates, LocalFailedDeliveryStore } from '../store/failed-delivery-store.ts';
import {
  AWS_OPTIONS,
  attemptsLabel,
  awsRequested,
  CliError,
  deliveriesTable,
  gatewayUrl,
  limitOf,
  noMoreThanOne,
  note,
  noteUnreadLogs,
  onDataDir,
  out,
  outJson,
  parseSince,
  parseWebhookType,
  redriveExitCode,
  resultDetail,
  stateLabel,
} from './shared.ts';
import { printable } from './table.ts';

/** What holds the deliveries of LOCAL_DATA_DIR's receivers (receiverHolds); nothing (with a note) when unreadable. */
export async function localReceiverHolds(dataDir: string): Promise<ReceiverHolds> {
  try {
    const receivers = await new FileEndpointStore(path.join(dataDir, 'deliveries')).list();
    // Paused, disabled and a Retry-After do not depend on the breaker's threshold: any policy judges them alike.
    return receiverHolds(receivers.map((r) => endpointView(r, null, settings().breaker, null)));
  } catch (error) {
    note(
      `webhook-gateway: the receivers' state could not be read (${(error as Error).message}): next attempts as stored`,
    );
    return NO_HOLDS;
  }
}

/**
 * `deliveries list deal_analysis` (or `… dead`, `… <conversation_id>`) was refused in node:util's words, "Unexpected
 * argument 'deal_analysis'. This command does not take positional arguments", which named no way to say it: the
 * refusal names the flag that does (docs/operations.md, Failed deliveries).
 */
function listArgumentRefusal(positionals: string[]): string {
  const got = printable(positionals.join(' '));
  const [first] = positionals;
  const hint =
    positionals.length === 1 && (WEBHOOK_TYPES as readonly string[]).includes(first!.toLowerCase())
      ? `one type's: deliveries list --type ${printable(first!)}`
      : positionals.length === 1 && envelopeStates(first!) !== null
        ? `deliveries in one state: deliveries list --state ${printable(first!)}`
        : positionals.length === 1 && isConversationId(first!)
          ? `one conversation's delivery: conversations show ${first}`
          : 'it takes --state pending|dead|settled|all, --type T, --limit N, --json';
  return `deliveries list takes no arguments, got "${got}" (${hint})`;
}

export async function deliveriesList(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      json: { type: 'boolean' },
      state: { type: 'string' },
      type: { type: 'string' },
      limit: { type: 'string' },
      ...AWS_OPTIONS,
    },
  });
  if (positionals.length > 0) throw new CliError(listArgumentRefusal(positionals));
  if (awsRequested(values)) {
    for (const flag of ['state', 'type', 'limit'] as const)
      if (values[flag] !== undefined)
        throw new CliError(
          `--${flag} is for the local store; with --aws the list shows the dead-letter queue and counts the pending ones`,
        );
    const { awsDeliveriesList } = await import('./aws/deliveries.ts');
    const { withAws } = await import('./aws/stack.ts');
    return withAws(values, (clients, stack) => awsDeliveriesList(clients, { stack, json: values.json ?? false }));
  }
  const wanted = values.state ?? 'pending,dead';
  const states = envelopeStates(wanted);
  if (!states) throw new CliError(`--state takes pending, dead, settled or all; got "${wanted}"`);
  const type = parseWebhookType(values.type);
  const limit = limitOf(values.limit, 50);
  const { dataDir } = resolveOptions();
  const store = new LocalFailedDeliveryStore(dataDir);
  // The newest `limit` (as `conversations list`), chosen by the summary index: only those envelopes are read (every
  // envelope was read to show 50: 7.2 s at 54,000), and the rest are only counted.
  const found = await store.newest({ limit, states, type });
  for (const { file, reason } of found.unreadable)
    note(
      `webhook-gateway: ${reason}: left out of this list and of the redelivery schedule (${path.basename(file, '.json')})`,
    );
  // Counted with the tries only the attempt log has (one file read per envelope shown): what the next redelivery
  // numbers its attempt after.
  const log = new FileAttemptLog(path.join(dataDir, 'deliveries'));
  const counted = await withLoggedCounts(found.envelopes, (id) => log.list(id));
  noteUnreadLogs(counted.unread);
  const shown = counted.envelopes;
  if (values.json) {
    outJson(shown);
    return 0;
  }
  if (found.total === 0) {
    // "No pending or dead deliveries", "No dead, pending or settled …"; every state asked: "No deliveries".
    const named = [...new Set(states)];
    const which = named.length === 3 ? '' : `${named.join(', ').replace(/, (\w+)$/, ' or $1')} `;
    out(`No ${which}${type ? `${type} ` : ''}deliveries in ${store.dir}.`);
    return 0;
  }
  // A delivery owed to a paused or disabled receiver is not tried until it is resumed, one whose receiver asked to wait
  // not before its Retry-After is over: said so, not shown overdue.
  const holds = await localReceiverHolds(dataDir);
  out(deliveriesTable(shown, stateLabel, (e) => nextAttemptLabel(e, holds)));
  if (found.total > shown.length) out(`(${found.total - shown.length} older not shown; use --limit)`);
  return 0;
}

/**
 * How long a redrive or resend is waited for: its run ends by the redelivery workflow's 60 s TimeoutSeconds, after at
 * most one other run of the same envelope (the schedule's: 60 s too) and 11 s for a lock another process keeps
 * (docs/operations.md). A gateway that has not answered by then is suspended (Ctrl-Z) or hung; before, the command
 * waited for fetch's own 5 minutes and then said no gateway was running.
 */
export const GATEWAY_ANSWER_MS = 150_000;

/**
 * How long a gateway still starting (503 STARTING: its listener is up, its engine and recovery not yet; nothing was
 * done) is waited for, asking again after each Retry-After (at most MAX_START_WAIT_MS each): a redrive sent right after
 * `npm start` (or a script's restart) is made once it is ready, not refused. Before, the command said "the gateway
 * refused the redrive: the gateway is starting" and exited 1. A start that takes longer is said to be one.
 */
const STARTING_WAIT_MS = 60_000;
const MAX_START_WAIT_MS = 5_000;

/** The gateway answered 503 STARTING: nothing was done; ask again after `retryAfterMs`. */
class GatewayStarting extends Error {
  constructor(readonly retryAfterMs: number) {
    super('the gateway is starting');
  }
}

function startingRetryMs(header: string | null): number {
  const seconds = Number(header ?? '1');
  return Number.isFinite(seconds) && seconds >= 0 ? Math.min(seconds * 1000, MAX_START_WAIT_MS) : 1_000;
}

/** What a gateway cut while it worked on a request says to do, by the operator's command (`afterCut`). */
type AfterCut = (start: string) => string;

/**
 * POST to the running gateway's operator endpoint; a refusal is the command's error, but a 404 when `notFound` makes
 * it a result (a redrive of a delivery no longer stored is one line of an --all, not its end). A gateway that took the
 * request and stopped before it answered (killed, a crash) is no gateway "not running": the delivery may have reached
 * the receiver, and `afterCut` says what the next start shows and what to run again (docs/operations.md, "After a
 * crash").
 */
async function callGateway<T>(
  url: string,
  pathname: string,
  what: string,
  afterCut: AfterCut,
  notFound?: (message: string) => T,
): Promise<T> {
  const start = onDataDir('npm start', resolveOptions().dataDir);
  let startingWaited = 0;
  for (;;) {
    const waited = new AbortController();
    const timer = setTimeout(() => waited.abort(), GATEWAY_ANSWER_MS);
    try {
      return await answerOf<T>(url, pathname, what, waited.signal, start, afterCut, notFound);
    } catch (error) {
      if (error instanceof GatewayStarting) {
        if (startingWaited >= STARTING_WAIT_MS)
          throw new CliError(
            `the gateway at ${url} is still starting after ${Math.round(startingWaited / 1000)} s (nothing was done): its start prints what it recovers; run the ${what} again once it says it is listening`,
          );
        startingWaited += Math.max(error.retryAfterMs, 1);
        await new Promise((resolve) => setTimeout(resolve, error.retryAfterMs));
        continue;
      }
      if (!waited.signal.aborted) throw error;
      throw new CliError(
        `the gateway at ${url} took the ${what} but did not answer within ${GATEWAY_ANSWER_MS / 1000} s (suspended with Ctrl-Z, or hung): ${afterCut(start)}`,
      );
    } finally {
      clearTimeout(timer);
    }
  }
}

/** callGateway's request and its answer, cut when `signal` aborts. */
async function answerOf<T>(
  url: string,
  pathname: string,
  what: string,
  signal: AbortSignal,
  start: string,
  afterCut: AfterCut,
  notFound?: (message: string) => T,
): Promise<T> {
  let response: Response;
  try {
    // The folder whose deliveries this command read, and the gateway its gateway.pid names: a gateway serving another
    // folder refuses (409), where it would have answered that it holds no such delivery.
    const { dataDir } = resolveOptions();
    const headers = {
      [DATA_DIR_HEADER]: encodeURIComponent(dataDir),
      [DATA_DIR_HOLDER_HEADER]: encodeURIComponent(await dataDirHolder(dataDir)),
    };
    response = await fetch(`${url}${pathname}`, { method: 'POST', signal, headers });
  } catch (error) {
    const code = ((error as Error).cause as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'UND_ERR_SOCKET' || code === 'ECONNRESET')
      throw new CliError(`the gateway at ${url} stopped before it answered the ${what}: ${afterCut(start)}`);
    throw new CliError(
      `the local gateway is not running at ${url}: start it with "${start}" (a ${what} runs the redelivery workflow inside it), or pass --url`,
    );
  }
  let body: T | { error?: { message?: string } };
  try {
    body = (await response.json()) as T | { error?: { message?: string } };
  } catch (error) {
    if (signal.aborted) throw error;
    // Another server on that port (the embedded S3, a dev server): say so rather than "SyntaxError: Unexpected token".
    const type = response.headers.get('content-type') ?? 'no content type';
    throw new CliError(
      `${url} answered the ${what} with HTTP ${response.status} (${type}), not the local gateway's JSON: is it the gateway's address? Use the URL npm start prints (--url or GATEWAY_URL)`,
    );
  }
  if (response.status >= 400) {
    const error = (body as { error?: { message?: string; code?: string } }).error;
    if (response.status === 503 && error?.code === 'STARTING')
      throw new GatewayStarting(startingRetryMs(response.headers.get('retry-after')));
    if (response.status === 404 && notFound) return notFound(error?.message ?? `HTTP 404 for the ${what}`);
    throw new CliError(`the gateway refused the ${what}: ${error?.message ?? response.status}`);
  }
  return body as T;
}

function redriveOne(url: string, id: string): Promise<RedeliveryResult> {
  return callGateway<RedeliveryResult>(
    url,
    `/local/deliveries/${encodeURIComponent(id)}/redrive`,
    `redrive of ${id}`,
    (start) =>
      `it may have reached the receiver. Start it again ("${start}"): its "recovered" line says what became of the redrive, and "deliveries list --state all" whether ${id} is still owed; a redrive of one still owed is safe to run again (the receiver may get it twice, under the same webhook-id)`,
    (error) => ({ conversation_id: id, status: 'not_found', error }),
  );
}

export async function deliveriesRedrive(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      all: { type: 'boolean' },
      since: { type: 'string' },
      type: { type: 'string' },
      'dry-run': { type: 'boolean' },
      limit: { type: 'string' },
      url: { type: 'string' },
      json: { type: 'boolean' },
      ...AWS_OPTIONS,
    },
  });
  // Checked before anything is read, here and on AWS: a typo must not plan "0 deliveries".
  noMoreThanOne(positionals, 'deliveries redrive', 'conversation id (or --all)');
  parseSince(values.since);
  const type = parseWebhookType(values.type);
  // How many of the plan's deliveries a dry run shows (it counts them all); a redrive redrives every one planned.
  const limit = limitOf(values.limit, 50);
  if (values.limit !== undefined && !values['dry-run'])
    throw new CliError('--limit bounds what a --dry-run shows; a redrive redrives every delivery it plans');
  if (awsRequested(values)) {
    if (values.limit !== undefined) throw new CliError('--limit is for the local store');
    if (values.url !== undefined)
      throw new CliError('--url is for the local gateway; --aws redrives on the deployed stack');
    const { awsDeliveriesRedrive } = await import('./aws/deliveries.ts');
    const { withAws } = await import('./aws/stack.ts');
    return withAws(values, (clients, stack, explainItemError) =>
      awsDeliveriesRedrive(clients, {
        stack,
        explainItemError,
        ...(positionals[0] !== undefined ? { id: positionals[0] } : {}),
        all: values.all ?? false,
        ...(values.since !== undefined ? { since: values.since } : {}),
        ...(type !== null ? { type } : {}),
        dryRun: values['dry-run'] ?? false,
        json: values.json ?? false,
      }),
    );
  }
  const { dataDir } = resolveOptions();
  const store = new LocalFailedDeliveryStore(dataDir);
  const id = positionals[0];
  if (!id && !values.all)
    throw new CliError('deliveries redrive needs a conversation id, or --all [--since ISO] [--type T]');
  if (id && values.all) throw new CliError('give either a conversation id or --all, not both');
  let candidates: Pick<FailedDeliveryEnvelope, 'conversation_id' | 'owed'>[];
  if (id) {
    if (!isConversationId(id)) throw new CliError(`"${id}" is not a conversation id`);
    const envelope = await store.get(id);
    if (!envelope) return nothingOwed(id, dataDir, values.json ?? false);
    if (envelope.state === 'settled') {
      if (values.json) return alreadyDelivered(id);
      out(
        owedBy(envelope) === 'export'
          ? `${id} was already exported: nothing to redrive.`
          : `${id} was already delivered${deliveredBy(envelope)}: nothing to redrive. ${resendHint(id)}`,
      );
      return 0;
    }
    candidates = [envelope];
  } else {
    // Chosen by the envelopes' summaries: none is read whole but those a dry run shows.
    candidates = await store.plan({ since: parseSince(values.since), type });
  }
  if (values['dry-run']) {
    const read = await store.read(candidates.slice(0, limit).map((e) => e.conversation_id));
    // Counted as `deliveries list` counts them: with the tries only the attempt log has (one file read per delivery
    // shown, none per delivery planned), what the redrive numbers its attempt after.
    const counted = await withLoggedCounts(read, (id) => new FileAttemptLog(path.join(dataDir, 'deliveries')).list(id));
    noteUnreadLogs(counted.unread);
    const shown = counted.envelopes;
    const more = candidates.length - shown.length;
    // With --json, stdout is one JSON document: the plan's envelopes (the first `limit`), or the results.
    if (values.json) {
      outJson(shown);
      if (more > 0) note(`(${more} more planned, not shown; use --limit)`);
      return 0;
    }
    out(
      `dry run: would redrive ${candidates.length} deliver${candidates.length === 1 ? 'y' : 'ies'}; nothing was changed`,
    );
    for (const e of shown) out(`  ${e.conversation_id}  ${e.webhook_type}  ${stateLabel(e)}  ${attemptsLabel(e)}`);
    if (more > 0) out(`  (${more} more planned, not shown; use --limit)`);
    return 0;
  }
  if (candidates.length === 0) {
    out(values.json ? '[]' : 'nothing to redrive');
    return 0;
  }
  const url = await gatewayUrl(values.url, dataDir);
  const counts: Record<string, number> = {};
  const results: RedeliveryResult[] = [];
  // The plan first, then one progress line per delivery (on stderr with --json, so the JSON stays clean).
  const progress = values.json ? note : out;
  if (candidates.length > 1)
    progress(`redriving ${candidates.length} deliveries, oldest first (Ctrl-C stops after the current one)`);
  for (const [i, e] of candidates.entries()) {
    const result = await redriveOne(url, e.conversation_id);
    results.push(result);
    counts[result.status] = (counts[result.status] ?? 0) + 1;
    const shown = owedBy(e) === 'export' && result.status === 'delivered' ? 'exported' : result.status;
    progress(
      `[${i + 1}/${candidates.length}] ${e.conversation_id} → ${shown}${result.execution_name ? ` (execution ${result.execution_name})` : ''}${resultDetail(result)}`,
    );
  }
  if (values.json) outJson(results);
  else
    out(
      `redrove ${candidates.length}: ${Object.entries(counts)
        .map(([k, v]) => `${v} ${k.replace('_', ' ')}`)
        .join(', ')}`,
    );
  // The one delivery asked for is no longer stored (its file deleted since it was read): nothing asked was done. In an
  // --all it is one no longer owed, as one delivered meanwhile (docs/operations.md).
  if (id && counts.not_found) return 1;
  return redriveExitCode(counts);
}

/** When and how a settled envelope's delivery was made, as `--aws` says it: ` (attempt 2 at <time> by the redrive)`. */
function deliveredBy(envelope: FailedDeliveryEnvelope): string {
  const attempt = envelope.attempts.findLast((a) => a.outcome === 'delivered');
  if (!attempt) return '';
  return ` (attempt ${attempt.attempt} at ${attempt.at}${attempt.via ? ` by the ${attempt.via}` : ''})`;
}

/** What redriving a delivered conversation says to do instead (docs/operations.md: resend it). */
const resendHint = (id: string) => `To deliver it again: webhook-gateway deliveries resend ${id}`;

/**
 * `redrive <id>` of a conversation the failed-delivery store never held: delivered at its first try, its agent failed,
 * or not a conversation of this data folder. A delivered one is the no-op of an already delivered conversation
 * (docs/operations.md: resend it instead); the others are errors.
 */
async function nothingOwed(id: string, dataDir: string, json: boolean): Promise<number> {
  const record = latestRecord(await new ExecutionStore(dataDir).executions(id));
  if (!record)
    throw new CliError(
      `no conversation ${id} in the local history (${dataDir}; see "webhook-gateway conversations list")`,
    );
  if (record.webhook_context.delivery_status === 'delivered') {
    if (json) return alreadyDelivered(id);
    out(`${id} was delivered (nothing is owed): nothing to redrive. ${resendHint(id)}`);
    return 0;
  }
  throw new CliError(
    resendRefusal(record, null) ??
      `no failed delivery for ${id} (its delivery is ${record.webhook_context.delivery_status}; see "webhook-gateway deliveries list")`,
  );
}

/** `redrive <id> --json` of a conversation nothing is owed for: the result a redrive of it gives (as --aws prints it). */
function alreadyDelivered(id: string): number {
  const result: RedeliveryResult = { conversation_id: id, status: 'already_delivered' };
  outJson([result]);
  return 0;
}

/** `deliveries resend <id>`: one more delivery of a delivered conversation, under its webhook-id (a new attempt). */
export async function deliveriesResend(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { url: { type: 'string' }, json: { type: 'boolean' }, ...AWS_OPTIONS },
  });
  noMoreThanOne(positionals, 'deliveries resend', 'conversation id');
  const id = positionals[0];
  if (!id) throw new CliError('deliveries resend needs a conversation id (of a delivered conversation)');
  if (!isConversationId(id)) throw new CliError(`"${id}" is not a conversation id`);
  let result: RedeliveryResult;
  if (awsRequested(values)) {
    if (values.url !== undefined)
      throw new CliError('--url is for the local gateway; --aws resends on the deployed stack');
    const { awsDeliveriesResend } = await import('./aws/deliveries.ts');
    const { withAws } = await import('./aws/stack.ts');
    result = await withAws(values, (clients, stack) => awsDeliveriesResend(clients, stack, id));
  } else {
    result = await callGateway<RedeliveryResult>(
      await gatewayUrl(values.url, resolveOptions().dataDir),
      `/local/deliveries/${encodeURIComponent(id)}/resend`,
      `resend of ${id}`,
      (start) =>
        `it may have reached the receiver. Start it again ("${start}"): its "recovered" line says what became of the resend, and "conversations show ${id}" its attempts; it is not repeated by itself: resend it again only if the receiver did not get it`,
    );
  }
  if (values.json) outJson(result);
  else {
    const attempt = result.record?.execution.delivery_attempts.at(-1);
    out(
      `${id} resent → ${result.status}${attempt?.status_code ? ` (HTTP ${attempt.status_code})` : ''}${result.execution_name ? `, execution ${result.execution_name}` : ''}${resultDetail(result)}`,
    );
    if (attempt)
      out(
        `  webhook-id ${result.record!.webhook_context.delivery_id}, attempt ${attempt.attempt}: conversations show ${id}`,
      );
  }
  return redriveExitCode({ [result.status]: 1 });
}
