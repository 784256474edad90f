import { describe, expect, it } from 'vitest';
import { deliveryIdFor } from '../../../functions/domain/delivery-id.ts';
import { startConversation } from '../../../functions/domain/intake.ts';
import { executionInput, SEED_REQUEST } from '../../support/fixtures.ts';

const UUID_V8 = /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function deliveryIdOf(body: unknown, headers: Record<string, string> = {}): string {
  const input = executionInput(body);
  const started = startConversation({ ...input, headers: { ...input.headers, ...headers } });
  if (!started.valid) throw new Error(started.rejection);
  return started.conversation.webhook_context.delivery_id;
}

describe('the delivery id (webhook-id) is derived, never random', () => {
  it('is an RFC 9562 version 8 UUID: a valid Standard Webhooks message id', () => {
    expect(deliveryIdOf(SEED_REQUEST)).toMatch(UUID_V8);
  });

  it('with an Idempotency-Key: the same for every retry of the same request, even as a new conversation', () => {
    const first = deliveryIdOf(SEED_REQUEST, { 'idempotency-key': 'order-1' });
    // A retry re-stamps its timestamp and spells its source differently: still the same request.
    const retry = deliveryIdOf(
      { ...SEED_REQUEST, source_system: 'Testing.System', timestamp: '2025-08-13T11:00:00Z' },
      { 'idempotency-key': 'order-1' },
    );
    expect(retry).toBe(first);
    expect(deliveryIdOf(SEED_REQUEST, { 'webhook-id': 'order-1' })).toBe(first);
  });

  it('differs for another key, another source, or another request under the same key', () => {
    const first = deliveryIdOf(SEED_REQUEST, { 'idempotency-key': 'order-1' });
    expect(deliveryIdOf(SEED_REQUEST, { 'idempotency-key': 'order-2' })).not.toBe(first);
    expect(deliveryIdOf({ ...SEED_REQUEST, source_system: 'other' }, { 'idempotency-key': 'order-1' })).not.toBe(first);
    expect(deliveryIdOf({ ...SEED_REQUEST, query: 'Another question' }, { 'idempotency-key': 'order-1' })).not.toBe(
      first,
    );
  });

  it('without a key: one per conversation', () => {
    expect(deliveryIdOf(SEED_REQUEST)).not.toBe(deliveryIdOf(SEED_REQUEST));
    const parts = { conversationId: 'webhook_20250813_103045_testing_phase3valid_abc123', sourceSystem: 's' };
    expect(deliveryIdFor({ ...parts, idempotencyKey: null, fingerprint: 'a' })).toBe(
      deliveryIdFor({ ...parts, idempotencyKey: null, fingerprint: 'b' }),
    );
  });
});
