import { createHash } from 'node:crypto';

/**
 * The delivery id (`webhook-id` of every attempt of one delivery, docs/contract.md) is derived, never random:
 * - with an Idempotency-Key (or inbound webhook-id): from the source, the key and what the request asks
 *   (requestFingerprint), so a retry of the same request — after a crash, a timeout, a lost answer — reaches the
 *   receiver under the same `webhook-id`, on AWS as locally, even when it runs as a new conversation;
 * - without one: from the conversation id, unique per conversation.
 * The same key sent later for a different request gets a different id, so a receiver's deduplication never drops it.
 *
 * Format: an RFC 9562 name-based UUID (version 8, SHA-256 over a fixed namespace and the name, RFC 9562 §B.2), the
 * same shape as before and a valid Standard Webhooks message id (no `.`: the signed content is `id.timestamp.body`).
 */
const NAMESPACE = Buffer.from('7c4a6d1e9b3f4e2a8d5c0b1a2f3e4d5c', 'hex');

export interface DeliveryIdParts {
  conversationId: string;
  sourceSystem: string;
  idempotencyKey: string | null;
  /** requestFingerprint of the request (only used with a key). */
  fingerprint: string;
}

export function deliveryIdFor(parts: DeliveryIdParts): string {
  const name =
    parts.idempotencyKey === null
      ? JSON.stringify(['conversation', parts.conversationId])
      : JSON.stringify(['idempotency-key', parts.sourceSystem, parts.idempotencyKey, parts.fingerprint]);
  const bytes = createHash('sha256').update(NAMESPACE).update(name).digest().subarray(0, 16);
  bytes[6] = (bytes[6]! & 0x0f) | 0x80; // version 8
  bytes[8] = (bytes[8]! & 0x3f) | 0x80; // variant 0b10
  const hex = bytes.toString('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
