import type { ConversationRecord, DeliveryAttempt } from './conversation.ts';

/**
 * The delivery attempt log (docs/contract.md#deliveries): every attempt of every delivery — in the workflow (each of
 * Deliver's retries, which Step Functions' Retry does not keep), on the schedule, by a redrive or a resend — with what
 * was sent (the URL and the headers, never the signature) and what the receiver answered (status, selected headers,
 * the first 4 KB of its body). Deliver appends one entry per attempt to the attempt-log store
 * (functions/shared/attempt-log.ts); the workflow's state keeps only the short DeliveryAttempt, so the answers never
 * ride in it. Export merges the log into conversation.json; `conversations show` and the console read it.
 */

/** The first this-many bytes of a receiver's answer are kept (UTF-8; a cut character is dropped). */
export const LOGGED_BODY_BYTES = 4_096;

/**
 * Response headers worth keeping to answer "what did the receiver say": its content, its throttling, where it
 * pointed, and the ids its own logs are searched by. Everything else (cookies, caching, security headers) is dropped.
 */
const LOGGED_RESPONSE_HEADERS: readonly string[] = [
  'content-type',
  'content-length',
  'retry-after',
  'location',
  'date',
  'server',
  'x-request-id',
  'request-id',
  'x-correlation-id',
  'x-amzn-requestid',
  'x-amz-request-id',
  'cf-ray',
];

/** Request headers never kept: the signature (it proves the sender for 5 minutes to anyone holding it). */
const UNLOGGED_REQUEST_HEADERS = new Set(['webhook-signature', 'authorization', 'cookie']);

export type LoggedRequest = NonNullable<DeliveryAttempt['request']>;
/** The response as kept: status, LOGGED_RESPONSE_HEADERS, the first LOGGED_BODY_BYTES of the body as text. */
export type LoggedResponse = NonNullable<DeliveryAttempt['response']>;

/** One attempt as the log keeps it: the record's attempt, what was sent, what came back (null: nothing). */
export interface LoggedAttempt extends DeliveryAttempt {
  conversation_id: string;
  delivery_id: string;
  webhook_type: string;
  request: LoggedRequest;
  response: LoggedResponse | null;
}

/** The request headers as logged: lowercase names, the signature and credentials left out. */
export function loggedRequestHeaders(headers: Record<string, string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    const lower = name.toLowerCase();
    if (!UNLOGGED_REQUEST_HEADERS.has(lower)) out[lower] = value;
  }
  return out;
}

/** The response headers worth keeping (LOGGED_RESPONSE_HEADERS), from any iterable of [name, value]. */
export function loggedResponseHeaders(headers: Iterable<[string, string]>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of headers) {
    const lower = name.toLowerCase();
    if (LOGGED_RESPONSE_HEADERS.includes(lower)) out[lower] = value.slice(0, 512);
  }
  return out;
}

/** The first LOGGED_BODY_BYTES of `bytes` as text, never ending in half a character. */
export function loggedBody(bytes: Uint8Array): { body: string; body_truncated: boolean } {
  if (bytes.byteLength <= LOGGED_BODY_BYTES)
    return { body: Buffer.from(bytes).toString('utf8'), body_truncated: false };
  let end = LOGGED_BODY_BYTES;
  // Back off to the start of a UTF-8 sequence (continuation bytes are 10xxxxxx).
  while (end > 0 && (bytes[end]! & 0xc0) === 0x80) end -= 1;
  return { body: Buffer.from(bytes.subarray(0, end)).toString('utf8'), body_truncated: true };
}

/**
 * The record's attempts with the log's detail: every logged attempt (retries inside one Deliver state included), and
 * every attempt the record knows that the log does not (one recorded before the log existed, or whose log write
 * failed), in the order they were made. An attempt is known by its number (each is numbered after the last one and
 * the state's retries): where both have it, the log's is the truth — after a crash the record only knows that the
 * attempt was cut, the log what the receiver answered. For exports and reading only: never put back into the state.
 */
export function withAttemptLog(record: ConversationRecord, logged: readonly LoggedAttempt[]): ConversationRecord {
  if (logged.length === 0) return record;
  const own = logged.filter((entry) => entry.conversation_id === record.conversation_id);
  const unlogged = record.execution.delivery_attempts.filter((a) => !own.some((entry) => entry.attempt === a.attempt));
  const attempts = [...own.map(asRecordAttempt), ...unlogged].sort(
    (a, b) => a.at.localeCompare(b.at) || a.attempt - b.attempt,
  );
  return { ...record, execution: { ...record.execution, delivery_attempts: attempts } };
}

/** A logged attempt as it appears in an exported record: the record's fields, the request and the response. */
function asRecordAttempt(entry: LoggedAttempt): DeliveryAttempt {
  const { conversation_id: _c, delivery_id: _d, webhook_type: _w, ...attempt } = entry;
  return attempt;
}

/** The next attempt's number: one more than the last one the record knows, plus the retries of this Deliver state. */
export function nextAttemptNumber(record: ConversationRecord, retryCount = 0): number {
  const last = record.execution.delivery_attempts.reduce((max, a) => Math.max(max, a.attempt), 0);
  return last + 1 + Math.max(0, retryCount);
}

/** The record as the workflow's state carries it: each attempt without the log's detail (request, response). */
export function withoutAttemptDetail(record: ConversationRecord): ConversationRecord {
  const attempts = record.execution.delivery_attempts.map(shortAttempt);
  return { ...record, execution: { ...record.execution, delivery_attempts: attempts } };
}

/**
 * An attempt as a record's short attempts keep it: without its request, response and run (withoutAttemptDetail), nor,
 * for an attempt log entry, the keys the log files it under.
 */
export function shortAttempt(
  attempt: DeliveryAttempt & Partial<Pick<LoggedAttempt, 'conversation_id' | 'delivery_id' | 'webhook_type'>>,
): DeliveryAttempt {
  const {
    conversation_id: _c,
    delivery_id: _d,
    webhook_type: _w,
    request: _q,
    response: _r,
    execution_name: _e,
    ...short
  } = attempt;
  return short;
}
