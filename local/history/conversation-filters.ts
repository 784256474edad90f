/**
 * The filters shared by `conversations list`, `conversations search`, the console's list and its JSON
 * (`GET /console/api/conversations`): source, type (the receiver: one per type), status, thread, the receive time's
 * range (since, until) and an id lookup. Each of source, type and status takes one value or a comma-separated list
 * (any of them matches). One case rule (docs/operations.md): a type, a status and an id are read in any case, a
 * source in its canonical form (which folds case too), a thread id and a request's key as sent.
 */
import { type DeliveryStatus, WEBHOOK_TYPES, type WebhookType } from '../../functions/domain/conversation.ts';
import { idPart, PROCESS_PART_LENGTH, SOURCE_PART_LENGTH } from '../../functions/domain/conversation-id.ts';
import { KEY_PATTERN } from '../../functions/domain/idempotency.ts';
import { isoInstant } from '../../functions/domain/named-queries.ts';
import {
  canonicalSource,
  MAX_SOURCE_NAME_LENGTH,
  NAME_CHARACTERS,
  nameBreak,
} from '../../functions/domain/source-identity.ts';
import { MAX_THREAD_ID_LENGTH, THREAD_ID_PATTERN } from '../../functions/domain/thread.ts';

export interface ConversationFilter {
  /** `system` or `system/process`, each part in canonical form (source-identity.ts). */
  sources: string[];
  types: string[];
  /** Conversation statuses and delivery statuses alike (`failed` matches either). */
  statuses: string[];
  /** Epoch ms; conversations received before it are left out. */
  since: number | null;
  /** Epoch ms; conversations received at or after it are left out (since ≤ received < until). */
  until: number | null;
  /** A conversation id, or a part of one (lowercase): only the conversations whose id contains it. */
  id: string | null;
  /** One thread_id (exact): only that thread's conversations, listed in turn order. */
  thread: string | null;
  /**
   * The request's `Idempotency-Key` or inbound `webhook-id` (exact, as the source sent it, trimmed): only the
   * conversations that request started (more than one when a retry ran again after a failure or a crash).
   */
  key: string | null;
}

/** What a filter looks at: a row of `conversations list`, a search hit, a console row. */
export interface FilterableConversation {
  conversation_id: string;
  received_at: string;
  source_system: string;
  source_process: string;
  webhook_type: string | null;
  status: string;
  delivery_status: string;
  /** Absent on rows read from exports without the thread columns. */
  thread_id?: string | null;
  thread_turn?: number | null;
  /**
   * The key the gateway took for the request's idempotency (its Idempotency-Key, or its webhook-id), and the inbound
   * webhook-id it carried. Absent: not known (an index entry of an earlier version, a row from the exports).
   */
  idempotency_key?: string | null;
  webhook_id?: string | null;
  /**
   * A stop of the gateway (a crash, kill -9, a data folder refusing writes) cut one of its executions, and the next
   * start's recovery finished it (local/engine/recovery.ts): closed `interrupted`, or resumed or started again to its
   * end, its status then its final one. `--status interrupted` lists both (docs/operations.md, "After a crash").
   */
  recovered?: boolean;
}

/** The status as a list shows it: `interrupted → completed` for a conversation a stop cut and recovery finished. */
export function statusLabel(row: Pick<FilterableConversation, 'status' | 'recovered'>): string {
  return row.recovered && row.status !== 'interrupted' ? `interrupted → ${row.status}` : row.status;
}

const CONVERSATION_STATUSES = ['completed', 'failed', 'interrupted', 'in_progress', 'timed_out', 'aborted'] as const;
/** Every `webhook_context.delivery_status` (functions/domain/conversation.ts): each one a list can show, a filter takes. */
const DELIVERY_STATUSES = [
  'delivered',
  'queued',
  'retrying',
  'pending',
  'not_attempted',
  'failed',
] as const satisfies readonly DeliveryStatus[];
const STATUS_VALUES = [...new Set<string>([...CONVERSATION_STATUSES, ...DELIVERY_STATUSES])];
const TYPE_VALUES = [...WEBHOOK_TYPES, 'none'];
/** What --status and --type take (the console's list offers them). */
export const FILTER_STATUSES: readonly string[] = STATUS_VALUES;
export const FILTER_TYPES: readonly string[] = TYPE_VALUES;

/**
 * A webhook type as an operator names it, in any case (the one case rule, docs/operations.md "Runbook"), or null when
 * it names none.
 */
export function webhookTypeNamed(value: string): WebhookType | null {
  const type = value.trim().toLowerCase();
  return (WEBHOOK_TYPES as readonly string[]).includes(type) ? (type as WebhookType) : null;
}

/**
 * Why a value names no webhook type, with the types there are: the same words from `endpoints <command> <type>` and
 * from the routes `/local/endpoints/<type>/…` (docs/contract.md, "Local operator routes").
 */
export function notAWebhookType(value: string): string {
  return `${quoted(value)} is not a webhook type: ${WEBHOOK_TYPES.join(', ')}`;
}

/** A bad flag value; the CLI prints its message as one line. */
export class FilterError extends Error {}

/**
 * A refused value as its message quotes it: whole up to 80 characters, else its first 60 and how long it is (a page of
 * pasted text does not fill the console's page or the terminal).
 */
function quoted(value: string): string {
  const chars = [...value];
  return chars.length <= 80 ? `"${value}"` : `"${chars.slice(0, 60).join('')}…" (${chars.length} characters)`;
}

function list(value: string | undefined): string[] {
  if (value === undefined) return [];
  return value
    .split(',')
    .map((v) => v.trim().toLowerCase())
    .filter((v) => v !== '');
}

export interface FilterFlags {
  source?: string;
  type?: string;
  status?: string;
  since?: string;
  until?: string;
  thread?: string;
  id?: string;
  key?: string;
}

/** An ISO date or date-time with its zone, as epoch ms; a date-time without a zone would use the local one. */
function instant(flag: string, value: string | undefined): number | null {
  if (value === undefined) return null;
  const t = isoInstant(value);
  if (Number.isNaN(t))
    throw new FilterError(
      `--${flag} must be an ISO 8601 date or date-time with a zone, e.g. 2025-08-13 or 2025-08-13T00:00:00Z; got ${quoted(value)}`,
    );
  return t;
}

/**
 * Where a --source value breaks the rule a request's source_system and source_process follow (the API's wording:
 * functions/domain/source-identity.ts, nameBreak); null when it keeps it.
 */
function sourceFilterBreak(value: string): string | null {
  const parts = value.split('/');
  if (parts.length > 2) return "it has more than one '/'";
  for (const [i, part] of parts.entries()) {
    const field = i === 0 ? 'source_system' : 'source_process';
    const where = parts.length === 1 ? '' : `its ${field}: `;
    if (part === '') return `its ${field} is empty`;
    if (part.length > MAX_SOURCE_NAME_LENGTH)
      return `${where}${part.length - MAX_SOURCE_NAME_LENGTH} characters too many`;
    const wrong = nameBreak(part);
    if (wrong !== null) return `${where}${wrong}`;
  }
  return null;
}

export function parseFilter(flags: FilterFlags): ConversationFilter {
  // An empty value (`--status=`, `--type ,`) is refused as a wrong one is: taken as no filter, it listed everything.
  const types = list(flags.type);
  for (const t of flags.type !== undefined && types.length === 0 ? [flags.type] : types) {
    if (!TYPE_VALUES.includes(t))
      throw new FilterError(`--type takes ${TYPE_VALUES.join(', ')} (or a comma-separated list); got ${quoted(t)}`);
  }
  const statuses = list(flags.status);
  for (const s of flags.status !== undefined && statuses.length === 0 ? [flags.status] : statuses) {
    if (!STATUS_VALUES.includes(s))
      throw new FilterError(`--status takes ${STATUS_VALUES.join(', ')} (or a comma-separated list); got ${quoted(s)}`);
  }
  if (flags.source !== undefined && list(flags.source).length === 0)
    throw new FilterError('--source needs a source system (or system/process)');
  // A value no request could have sent (a space, a third part) would match nothing: say so rather than list nothing.
  for (const s of list(flags.source)) {
    const wrong = sourceFilterBreak(s);
    if (wrong !== null)
      throw new FilterError(
        `--source takes a source_system or source_system/source_process (or a comma-separated list), each of ${NAME_CHARACTERS}, at most ${MAX_SOURCE_NAME_LENGTH} characters; got ${quoted(s)}: ${wrong}`,
      );
  }
  const since = instant('since', flags.since);
  const until = instant('until', flags.until);
  if (since !== null && until !== null && until <= since)
    throw new FilterError(`--until must be later than --since; got --since "${flags.since}" --until "${flags.until}"`);
  const id = flags.id?.trim().toLowerCase() ?? null;
  if (id !== null && !/^[a-z0-9_]{1,100}$/.test(id))
    throw new FilterError(
      `--id takes a conversation id or a part of one (letters, digits and '_', at most 100); got ${quoted(flags.id!)}`,
    );
  const thread = flags.thread ?? null;
  if (thread !== null && (thread.length > MAX_THREAD_ID_LENGTH || !THREAD_ID_PATTERN.test(thread)))
    throw new FilterError(
      `--thread takes a thread_id of ${NAME_CHARACTERS}, at most ${MAX_THREAD_ID_LENGTH} characters; got ${quoted(thread)}: ${nameBreak(thread) ?? `${thread.length - MAX_THREAD_ID_LENGTH} characters too many`}`,
    );
  const key = flags.key?.trim() ?? null;
  if (key !== null && !KEY_PATTERN.test(key))
    throw new FilterError(
      `--key takes the Idempotency-Key or webhook-id a source sent (1 to 255 visible ASCII characters, exact); got ${quoted(flags.key!)}`,
    );
  const sources = list(flags.source).map((s) => s.split('/').map(canonicalSource).join('/'));
  return { sources, types, statuses, since, until, thread, id, key };
}

export function isEmptyFilter(filter: ConversationFilter): boolean {
  return (
    filter.sources.length + filter.types.length + filter.statuses.length === 0 &&
    filter.since === null &&
    filter.until === null &&
    filter.thread === null &&
    filter.id === null &&
    filter.key === null
  );
}

/** The shortest THREAD_TTL_DAYS: a thread is forgotten (its next conversation turn 1 again) after a day unused at least. */
const THREAD_FORGOTTEN_AFTER_MS = 86_400_000;

/**
 * Each conversation's life of its source's thread: 0, then one more each time the thread was forgotten (unused for
 * THREAD_TTL_DAYS) and started again at turn 1 (docs/contract.md#threads): a turn 1 received a day or more after the
 * conversation of the thread received before it. Turns are numbered within a life, so a thread started again lists
 * its earlier life first, not interleaved with it (turn 1, 1, 2, 2 …).
 */
function threadLives(rows: readonly FilterableConversation[]): Map<string, number> {
  const lives = new Map<string, number>();
  const bySource = new Map<string, FilterableConversation[]>();
  for (const row of rows) {
    const thread = bySource.get(row.source_system);
    if (thread) thread.push(row);
    else bySource.set(row.source_system, [row]);
  }
  for (const thread of bySource.values()) {
    thread.sort(
      (a, b) => a.received_at.localeCompare(b.received_at) || a.conversation_id.localeCompare(b.conversation_id),
    );
    let life = 0;
    let previous: number | null = null;
    for (const row of thread) {
      const at = Date.parse(row.received_at);
      if (row.thread_turn === 1 && previous !== null && at - previous >= THREAD_FORGOTTEN_AFTER_MS) life += 1;
      lives.set(row.conversation_id, life);
      if (Number.isFinite(at)) previous = at;
    }
  }
  return lives;
}

/**
 * Rows sorted (in place) in the order they are shown: newest first; with --thread, each source's thread (a thread
 * belongs to its source) in turn order, as the conversation went, each life of a thread started again after the one
 * before (threadLives).
 */
export function sortRows<T extends FilterableConversation>(rows: T[], filter: ConversationFilter): T[] {
  if (filter.thread === null)
    return rows.sort(
      (a, b) => b.received_at.localeCompare(a.received_at) || b.conversation_id.localeCompare(a.conversation_id),
    );
  const lives = threadLives(rows);
  const life = (row: FilterableConversation) => lives.get(row.conversation_id) ?? 0;
  return rows.sort(
    (a, b) =>
      a.source_system.localeCompare(b.source_system) ||
      life(a) - life(b) ||
      (a.thread_turn ?? 0) - (b.thread_turn ?? 0) ||
      a.received_at.localeCompare(b.received_at),
  );
}

export function matchesFilter(row: FilterableConversation, filter: ConversationFilter): boolean {
  if (filter.sources.length > 0) {
    const system = canonicalSource(row.source_system);
    const full = `${system}/${canonicalSource(row.source_process)}`;
    if (!filter.sources.some((s) => s === system || s === full)) return false;
  }
  if (filter.types.length > 0 && !filter.types.includes(row.webhook_type ?? 'none')) return false;
  const interrupted = (s: string) => s === 'interrupted' && row.recovered === true;
  if (
    filter.statuses.length > 0 &&
    !filter.statuses.some((s) => s === row.status || s === row.delivery_status || interrupted(s))
  )
    return false;
  if (filter.since !== null && !(Date.parse(row.received_at) >= filter.since)) return false;
  if (filter.until !== null && !(Date.parse(row.received_at) < filter.until)) return false;
  if (filter.id !== null && !row.conversation_id.includes(filter.id)) return false;
  if (filter.thread !== null && row.thread_id !== filter.thread) return false;
  if (filter.key !== null && !mayHaveKey(row, filter.key)) return false;
  return true;
}

/** The row's request had `key` (its idempotency key or its inbound webhook-id), or its keys are not known. */
const mayHaveKey = (row: FilterableConversation, key: string) =>
  row.webhook_id === undefined || row.idempotency_key === key || row.webhook_id === key;

/** The receive time a conversation id carries (to the second, UTC), or NaN. */
export function idTimeMs(conversationId: string): number {
  const m = /^webhook_(\d{4})(\d{2})(\d{2})_(\d{2})(\d{2})(\d{2})_/.exec(conversationId);
  return m ? Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!) : Number.NaN;
}

/**
 * False only when the id proves the conversation was received outside [since, until) (cheap pruning before any read):
 * its id carries the second it was received.
 */
function mayBeInRange(conversationId: string, filter: ConversationFilter): boolean {
  if (filter.since === null && filter.until === null) return true;
  const t = idTimeMs(conversationId);
  if (Number.isNaN(t)) return true;
  return (filter.since === null || t + 1000 > filter.since) && (filter.until === null || t < filter.until);
}

/**
 * False only when the id proves the conversation is of none of the filter's sources: an id carries its source and
 * process cut to their first letters and digits (functions/domain/conversation-id.ts), so a source whose cut differs
 * cannot be it (one whose cut is the same may still be another).
 */
function mayBeOfSource(conversationId: string, filter: ConversationFilter): boolean {
  if (filter.sources.length === 0) return true;
  const [, , , system, process] = conversationId.split('_');
  return filter.sources.some((source) => {
    const [wanted, wantedProcess] = source.split('/');
    return (
      idPart(wanted!, SOURCE_PART_LENGTH) === system &&
      (wantedProcess === undefined || idPart(wantedProcess, PROCESS_PART_LENGTH) === process)
    );
  });
}

/**
 * False only when the conversation id alone proves the conversation cannot match (received outside the range, of
 * another source, or another id): what may match is read, the rest is not.
 */
export function mayMatch(conversationId: string, filter: ConversationFilter): boolean {
  return (
    mayBeInRange(conversationId, filter) &&
    mayBeOfSource(conversationId, filter) &&
    (filter.id === null || conversationId.includes(filter.id))
  );
}
