import { createHash } from 'node:crypto';

/**
 * Idempotent retries: a request carrying an `Idempotency-Key` header (or, failing that, the inbound Standard
 * Webhooks `webhook-id`) that was seen from the same source within the window gets the first conversation's
 * response again: no second agent call, delivery or export.
 */
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
  if (!KEY_PATTERN.test(key)) return { error: 'Idempotency-Key (or webhook-id) must be 1 to 255 visible ASCII characters' };
  return { key };
}

/** The stored key: a hash of source and key, so one source can never collide with (or probe) another's keys. */
export function idempotencyPk(sourceSystem: string, key: string): string {
  return createHash('sha256').update(`${sourceSystem}\n${key}`).digest('hex');
}

export function expiresAt(now: Date, ttlSeconds = DEFAULT_IDEMPOTENCY_TTL_SECONDS): number {
  return Math.floor(now.getTime() / 1000) + ttlSeconds;
}

export function isExpired(record: IdempotencyRecord, now: Date): boolean {
  return record.expires_at <= Math.floor(now.getTime() / 1000);
}
