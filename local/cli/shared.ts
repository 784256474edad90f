/**
 * What every `webhook-gateway` command shares: its one error type, its output streams, the `--aws` flags and the
 * small formatting helpers of the lists.
 */
import path from 'node:path';
import { WEBHOOK_TYPES, type WebhookType } from '../../functions/domain/conversation.ts';
import { attemptsMade, type FailedDeliveryEnvelope, owedBy } from '../../functions/domain/failed-delivery.ts';
import { age } from '../../functions/domain/iso-date.ts';
import { isoInstant } from '../../functions/domain/named-queries.ts';
import type { RedeliveryResult } from '../../functions/shared/redelivery.ts';
import { DEFAULTS } from '../../functions/shared/settings.ts';
import { webhookTypeNamed } from '../history/conversation-filters.ts';
import { DEFAULT_DATA_DIR, resolveOptions } from '../server/config.ts';
import { readGatewayRuntime } from '../store/gateway-runtime.ts';
import { cell, formatTable, printable } from './table.ts';

/** An error the command line prints as one line (`webhook-gateway: …`), exit code 1, never a stack trace. */
export class CliError extends Error {
  /** The command's exit code: 1, or 75 (EX_TEMPFAIL) when running it again is what to do. */
  constructor(
    message: string,
    readonly exitCode: 1 | 75 = 1,
  ) {
    super(message);
  }
}

/** A line of the command's result (stdout). */
export function out(text: string): void {
  process.stdout.write(`${text}\n`);
}

/**
 * A command's `--json` result (stdout), indented by two. On a terminal (stdout not redirected), what JSON.stringify
 * leaves raw in a text (C1 controls such as U+009B, a CSI to some terminals; the line separators; the bidirectional
 * overrides) is written as its `\uXXXX` escape: the same JSON value, nothing a sender's question or a receiver's answer
 * can make the operator's screen act on. A file or a pipe gets the text exactly.
 */
export function outJson(value: unknown): void {
  out(jsonText(value));
}

/** The text outJson writes, for a command that writes through its own `out`. */
export function jsonText(value: unknown): string {
  const json = JSON.stringify(value, null, 2);
  return process.stdout.isTTY === true ? printable(json, true) : json;
}

/**
 * A path as the user should read it: relative to the current folder when it lies under it (`.data/s3`), else
 * absolute (`/tmp/gateway-data`, not `../../../tmp/gateway-data`).
 */
export function shownPath(file: string): string {
  const relative = path.relative(process.cwd(), file);
  if (relative === '') return '.';
  return relative.startsWith('..') || path.isAbsolute(relative) ? path.resolve(file) : relative;
}

/**
 * One line of the running gateway's operator log: its fields joined by two spaces, every control character (and the
 * Unicode line separators) escaped, so nothing a request carries can break a line or forge another.
 */
export function eventLine(...fields: (string | number)[]): string {
  return fields.map((f) => printable(String(f))).join('  ');
}

/** The progress line shown on a terminal's stderr (progress()), rewritten in place; null while there is none. */
let progressShown: string | null = null;

/**
 * A progress or hint line (stderr), so `--json` output stays clean. Said while a progress line is shown on a terminal
 * (a warning about a damaged history while a listing fills the summary index), it takes that line's place and the
 * progress line is written again below it: written after it, it ran on in the progress line's text.
 */
export function note(text: string): void {
  process.stderr.write(progressShown === null ? `${text}\n` : `\r\x1b[K${text}\n${progressShown}`);
}

/** On a terminal, the progress line rewritten in place (`\r`); null ends it (the next line starts below it). */
export function progress(text: string | null): void {
  if (text !== null) process.stderr.write(`\r${text}`);
  else if (progressShown !== null) process.stderr.write('\n');
  progressShown = text;
}

/** The stack `--aws` commands read when no --stack is given (infra's default stackName). */
export const DEFAULT_STACK_NAME = DEFAULTS.stackName;

/**
 * `--aws [--stack NAME] [--region R] [--profile P]`: act on a deployed stack (local/cli/aws/), with the credentials
 * (and default region) of that profile of ~/.aws/config and ~/.aws/credentials instead of AWS_PROFILE's.
 */
export const AWS_OPTIONS = {
  aws: { type: 'boolean' },
  stack: { type: 'string' },
  region: { type: 'string' },
  profile: { type: 'string' },
} as const;

/** Whether `--aws` was given; `--stack`, `--region` or `--profile` without it is a mistake, not something to ignore. */
export function awsRequested(values: { aws?: boolean; stack?: string; region?: string; profile?: string }): boolean {
  if (!values.aws && (values.stack !== undefined || values.region !== undefined || values.profile !== undefined))
    throw new CliError('--stack, --region and --profile go with --aws');
  for (const flag of ['stack', 'region', 'profile'] as const)
    if (values[flag] !== undefined && values[flag].trim() === '') throw new CliError(`--${flag} needs a value`);
  return values.aws === true;
}

/** `--since ISO` (a date, or a date-time with its zone) as epoch milliseconds, or null when not given. */
export function parseSince(value: string | undefined): number | null {
  if (value === undefined) return null;
  const t = isoInstant(value);
  if (Number.isNaN(t))
    throw new CliError(
      `--since must be an ISO 8601 date or date-time with a zone, e.g. 2025-08-13 or 2025-08-13T00:00:00Z; got "${value}"`,
    );
  return t;
}

/** `--type T` of a redrive: one webhook type, or null when not given. */
export function parseWebhookType(value: string | undefined): WebhookType | null {
  if (value === undefined) return null;
  const type = webhookTypeNamed(value);
  if (type === null) throw new CliError(`--type takes one of ${WEBHOOK_TYPES.join(', ')}; got "${value}"`);
  return type;
}

/**
 * The envelope's state as the lists show it: why it is dead, and `export only` when no delivery is owed.
 * `state` replaces the stored state (the dead-letter queue's view of an envelope the queue moved there).
 */
export function stateLabel(
  e: FailedDeliveryEnvelope,
  state = e.state === 'dead' && e.dead_reason ? `dead (${e.dead_reason})` : e.state,
): string {
  return owedBy(e) === 'export' ? `${state}, export only` : state;
}

/** How many attempts an envelope made, in words: `1 attempt`, `3 attempts`. */
export function attemptsLabel(e: Pick<FailedDeliveryEnvelope, 'attempts'>): string {
  const made = attemptsMade(e);
  return `${made} attempt${made === 1 ? '' : 's'}`;
}

/**
 * The most rows a `--limit` asks for: every conversation of a large folder (docs/operations.md lists 14,377 with
 * `--limit 100000`), not a number past what a search's SQL LIMIT takes (99999999999999999999 failed in DuckDB as
 * "Conversion Error: Type INT128 …").
 */
const MAX_CLI_LIMIT = 1_000_000;

/** `--limit N` of a listing (a whole number from 1 to MAX_CLI_LIMIT), or `fallback` when not given. */
export function limitOf(value: string | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  const limit = Number(value);
  if (!/^\d+$/.test(value) || !Number.isInteger(limit) || limit < 1 || limit > MAX_CLI_LIMIT)
    throw new CliError(`--limit must be a whole number from 1 to ${MAX_CLI_LIMIT}, got "${value}"`);
  return limit;
}

/**
 * A command that acts on one thing (a conversation id, a webhook type) refuses a second rather than ignore it: an
 * operator who typed two would think both were acted on.
 */
export function noMoreThanOne(positionals: string[], command: string, what: string): void {
  if (positionals.length > 1)
    throw new CliError(
      `${command} takes one ${what}, got ${positionals.length}: ${positionals.join(' ')} (run it once for each)`,
    );
}

/** The table of `deliveries list` (local and --aws): one envelope a row, its state and next due as `state` and `due` say. */
export function deliveriesTable(
  envelopes: FailedDeliveryEnvelope[],
  state: (e: FailedDeliveryEnvelope) => string = stateLabel,
  due: (e: FailedDeliveryEnvelope) => string = (e) => e.next_due_at ?? '-',
): string {
  return formatTable(
    ['conversation_id', 'type', 'attempts', 'last_error', 'age', 'state', 'next_due'],
    envelopes.map((e) => [
      e.conversation_id,
      e.webhook_type,
      attemptsMade(e),
      cell(e.last_error, 48),
      age(e.created_at),
      state(e),
      due(e),
    ]),
  );
}

/**
 * One line on stderr for the listed deliveries whose attempt log could not be read (withLoggedCounts): their attempts
 * are what their envelopes carry, which may lack tries only the log has.
 */
export function noteUnreadLogs(unread: readonly { conversation_id: string; error: string }[]): void {
  if (unread.length === 0) return;
  const [first] = unread;
  note(
    `webhook-gateway: the attempt log of ${unread.length === 1 ? first!.conversation_id : `${unread.length} deliveries (${first!.conversation_id}, …)`} could not be read (${first!.error}): ${unread.length === 1 ? 'its attempts are those its envelope carries' : 'their attempts are those their envelopes carry'}, without any try only the log has`,
  );
}

/**
 * Why a redelivery did not deliver, for its progress line (local and --aws), printable: the error carries the
 * receiver's answer (`HTTP 410: <its body>`), whose escape sequences would otherwise reach the operator's terminal.
 */
export function resultDetail(result: RedeliveryResult): string {
  if (result.status === 'failed') return `: ${printable(result.error ?? result.envelope?.last_error ?? '')}`;
  if (result.status === 'held')
    return result.held_by
      ? `: its receiver held it back: ${printable(result.held_by)}`
      : ': its receiver held it back (paused, disabled or at its rate: webhook-gateway endpoints list)';
  return result.error ? `: ${printable(result.error)}` : '';
}

/**
 * What the running gateway prints for one redelivery of its schedule: how it ended, why (resultDetail: the error of a
 * run that did not succeed, a refused Deliver's too; the receiver's answer) and, still pending, when it comes back.
 */
export function redeliveryEventDetail(result: RedeliveryResult): string {
  const next = result.envelope?.state === 'pending' ? ` (next ${result.envelope.next_due_at})` : '';
  return `${result.status}${resultDetail(result)}${next}`;
}

const REDRIVE_SKIPPED_EXIT_CODE = 75;

/**
 * A redrive's or a resend's exit code (docs/operations.md, "Resend and recover"), locally and with --aws: 1 when a
 * delivery failed, was held back by its receiver, met an error, or was not reached (Ctrl-C); otherwise 75
 * (`EX_TEMPFAIL`, "try again later") when one was skipped because the scheduler or another redrive holds it, or
 * (locally) a run the data folder cut is not finished yet (nothing was done for it: run the same command again
 * later); otherwise 0, everything planned delivered (or already delivered).
 */
export function redriveExitCode(counts: Record<string, number>, notReached = 0): number {
  if ((counts.failed ?? 0) + (counts.error ?? 0) + (counts.held ?? 0) + notReached > 0) return 1;
  return (counts.skipped ?? 0) > 0 ? REDRIVE_SKIPPED_EXIT_CODE : 0;
}

/**
 * A command as another shell must type it to act on `dataDir`: that shell reads the repository's `.data` unless told
 * otherwise (docs/configuration.md, "The local runtime"), so another LOCAL_DATA_DIR goes in front of it.
 */
export function onDataDir(command: string, dataDir: string): string {
  if (dataDir === DEFAULT_DATA_DIR) return command;
  const quoted = /^[\w@%+=:,./-]+$/.test(dataDir) ? dataDir : `'${dataDir.replaceAll("'", "'\\''")}'`;
  return `LOCAL_DATA_DIR=${quoted} ${command}`;
}

/** Where the running local gateway is: --url, GATEWAY_URL, the gateway running on this data directory (its gateway.json), or PORT on loopback. */
export async function gatewayUrl(explicit: string | undefined, dataDir: string): Promise<string> {
  // An empty variable counts as unset (docs/configuration.md).
  const given = explicit !== undefined ? '--url' : process.env.GATEWAY_URL ? 'GATEWAY_URL' : null;
  const url =
    explicit ??
    (process.env.GATEWAY_URL || undefined) ??
    (await readGatewayRuntime(dataDir))?.url ??
    `http://127.0.0.1:${resolveOptions().port}`;
  // Else a typo reads as "the local gateway is not running at <it>".
  if (given !== null && !/^https?:\/\/[^\s/?#]+/i.test(url))
    throw new CliError(
      `${given} must be the gateway's http:// address, e.g. http://127.0.0.1:3000 (what npm start prints); got "${url}"`,
    );
  return url.replace(/\/$/, '');
}
