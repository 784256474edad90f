/**
 * Idempotent retries: a request carrying an `Idempotency-Key` header (or, failing that, the inbound Standard
 * Webhooks `webhook-id`) that was seen from the same source within the window gets the first conversation's
 * response again: no second agent call, delivery or export.
 */
import { createHash } from 'node:crypto';

export const DEFAULT_IDEMPOTENCY_TTL_SECONDS = 86_400;
/**
 * A claim that never completes (the execution failed or timed out after Validate) must not block the client's
 * retries for a day: an in-progress key lapses after 5 minutes, well past the workflow's 60 s limit; completing it
 * extends it to the full window.
 */
export const IN_PROGRESS_TTL_SECONDS = 300;
const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;

export interface IdempotencyRecord {
  pk: string;
  status: 'in_progress' | 'completed';
  conversation_id: string;
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

export function idempotencyKeyOf(headers: Record<string, string>): KeyResult {
  const raw = headers['idempotency-key'] ?? headers['webhook-id'];
  if (raw === undefined) return { key: null };
  const key = raw.trim();
  if (!KEY_PATTERN.test(key))
    return { error: 'Idempotency-Key (or webhook-id) must be 1 to 255 visible ASCII characters' };
  return { key };
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

export function isExpired(record: IdempotencyRecord, now: Date): boolean {
  return record.expires_at <= Math.floor(now.getTime() / 1000);
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
