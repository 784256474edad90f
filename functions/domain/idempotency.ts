/**
 * Idempotent retries: a request carrying an `Idempotency-Key` header (or, failing that, the inbound Standard
 * Webhooks `webhook-id`) that was seen from the same source within the window gets the first conversation's
 * response again: no second agent call, delivery or export.
 */
import { createHash } from 'node:crypto';

export const DEFAULT_IDEMPOTENCY_TTL_SECONDS = 86_400;
/**
 * The shortest a completed key may be kept (IDEMPOTENCY_TTL_SECONDS): the Standard Webhooks tolerance of a signature
 * (signatures.ts, 5 minutes). A captured signed request replayed within it must find its key and get the first answer
 * (docs/security.md#idempotency-keys); a key kept less long would let it run again.
 */
export const MIN_IDEMPOTENCY_TTL_SECONDS = 300;
/**
 * A claim that never completes (the execution failed or timed out after Validate) must not block the client's
 * retries for a day, yet it must outlive the longest a conversation can run after its claim, or a retry would start
 * a second conversation while the first still runs and the first's Export would find the key another's. The longest
 * is an asynchronous start's: the key is claimed in the accept execution (at most 60 s, its TimeoutSeconds in
 * statemachine/accept.asl.json), whose run has the Express limit (300 s: EXPRESS_LIMIT_MS, budget.ts), and an Export
 * invoked just before that limit settles the key within its Lambda timeout (30 s,
 * infra/constructs/conversation-functions.ts): 390 s. An in-progress key lapses after 7 minutes; completing it
 * extends it to the full window.
 */
export const IN_PROGRESS_TTL_SECONDS = 420;
/** An `Idempotency-Key` or `webhook-id` the gateway takes (once trimmed): 1 to 255 visible ASCII characters. */
export const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

export interface IdempotencyRecord {
  pk: string;
  status: 'in_progress' | 'completed';
  conversation_id: string;
  /**
   * Which HTTP request claimed the key (requestIdentity): another for every request, the same on every attempt of its
   * Validate task. Absent on records written before it was kept.
   */
  request_id?: string;
  /** What the first request asked (requestFingerprint); absent on records written before it was kept. */
  request_fingerprint?: string;
  /** `async`: the first request asked for `Prefer: respond-async` (a retry that asks the same gets the same 202). */
  response_mode?: 'async';
  /** The first conversation's 200 body, as JSON text (completed only). */
  response?: string;
  created_at: string;
  /** Epoch seconds; the DynamoDB TTL attribute. */
  expires_at: number;
}

export type KeyResult = { key: string | null } | { error: string };

/**
 * The request's key: its `Idempotency-Key`, or failing that its `webhook-id`. A request that carries a Standard
 * Webhooks signature is keyed on its `webhook-id` whatever else it sends: the id is signed (and stays the same on the
 * sender's retries), an `Idempotency-Key` header is not, so a captured request replayed within the signature's
 * tolerance with a new `Idempotency-Key` would otherwise run again (docs/contract.md#idempotent-retries).
 */
export function idempotencyKeyOf(headers: Record<string, string>): KeyResult {
  const signed = headers['webhook-signature'] !== undefined && headers['webhook-id'] !== undefined;
  const raw = signed ? headers['webhook-id'] : (headers['idempotency-key'] ?? headers['webhook-id']);
  if (raw === undefined) return { key: null };
  const key = raw.trim();
  if (KEY_PATTERN.test(key)) return { key };
  // The header sent twice reaches here joined with ", ", which holds the one character a key cannot: say so.
  const parts = key.split(', ');
  if (parts.length > 1 && parts.every((part) => KEY_PATTERN.test(part)))
    return { error: `Idempotency-Key (or webhook-id) is sent ${parts.length} times ("${key}"): send it once` };
  return { error: 'Idempotency-Key (or webhook-id) must be 1 to 255 visible ASCII characters' };
}

/** The stored key: a hash of source and key, so one source can never collide with (or probe) another's keys. */
export function idempotencyPk(sourceSystem: string, key: string): string {
  return createHash('sha256')
    .update(JSON.stringify([sourceSystem, key]))
    .digest('hex');
}

export function expiresAt(now: Date, ttlSeconds = DEFAULT_IDEMPOTENCY_TTL_SECONDS): number {
  return Math.floor(now.getTime() / 1000) + ttlSeconds;
}

/**
 * Why a stored value is not an idempotency record (what the local store finds in a damaged file: JSON of another
 * shape), or null when it is one. A completed record without its answer could not be replayed either.
 */
export function notIdempotencyRecord(value: unknown): string | null {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return 'not an object';
  const r = value as Partial<Record<keyof IdempotencyRecord, unknown>>;
  if (r.status !== 'in_progress' && r.status !== 'completed') return 'no status in_progress or completed';
  if (typeof r.conversation_id !== 'string' || r.conversation_id === '') return 'no conversation_id';
  if (typeof r.expires_at !== 'number' || !Number.isFinite(r.expires_at)) return 'no expires_at';
  if (r.status === 'completed' && typeof r.response !== 'string') return 'completed without its response';
  return null;
}

export function isExpired(record: IdempotencyRecord, now: Date): boolean {
  return record.expires_at <= Math.floor(now.getTime() / 1000);
}

/**
 * What tells one HTTP request from another across the attempts of its Validate task (which all get the same input):
 * its API request id and the time API Gateway received it, to the millisecond. The id alone is not enough: a client
 * may set it (x-amzn-RequestId), and a request replayed with the same headers would pass for a retry of the first.
 */
export function requestIdentity(input: { request_id: string; received_at: string }): string {
  return `${input.request_id}@${input.received_at}`;
}

/**
 * The key is already this request's claim: an attempt of its Validate task (retried by the workflow, or its write by
 * the SDK) after an earlier attempt's claim was written. It goes on as the conversation that claim holds.
 */
export function claimedBySameRequest(
  existing: Pick<IdempotencyRecord, 'status' | 'request_id'>,
  requestId: string,
): boolean {
  return existing.status === 'in_progress' && requestId !== '' && existing.request_id === requestId;
}

/** A JSON value with object keys sorted, so that key order does not change a fingerprint. */
function canonical(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, canonical((value as Record<string, unknown>)[k])]),
    );
  }
  return value;
}

/**
 * What a request asks, for telling a retry from a different request under the same key: its query, process,
 * requested type and metadata (key order ignored). The source's own `timestamp` is left out: clients often
 * stamp each attempt anew.
 */
export function requestFingerprint(request: {
  query: string;
  source_process: string;
  webhook_type: string | null;
  metadata: Record<string, unknown>;
  thread_id?: string | null;
}): string {
  const { query, source_process, webhook_type, metadata, thread_id } = request;
  // thread_id only when sent: the fingerprints of requests without one stay what they were.
  const fields = { query, source_process, webhook_type, metadata, ...(thread_id ? { thread_id } : {}) };
  return createHash('sha256')
    .update(JSON.stringify(canonical(fields)))
    .digest('hex');
}

/** The same key was first used for a different request (a fingerprint to compare, and it differs). */
export function reusedForAnotherRequest(
  existing: Pick<IdempotencyRecord, 'request_fingerprint'>,
  fingerprint: string,
): boolean {
  return existing.request_fingerprint !== undefined && existing.request_fingerprint !== fingerprint;
}
