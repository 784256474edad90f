import { describe, expect, it } from 'vitest';
import {
  claimedBySameRequest,
  idempotencyKeyOf,
  idempotencyPk,
  requestFingerprint,
  reusedForAnotherRequest,
} from '../../../functions/domain/idempotency.ts';

const REQUEST = {
  query: 'What are the top 5 deals?',
  source_process: 'p',
  webhook_type: null,
  metadata: { a: 1, b: [1, { x: 1, y: 2 }] },
};

describe('requestFingerprint', () => {
  it('ignores key order at every depth', () => {
    expect(requestFingerprint({ ...REQUEST, metadata: { b: [1, { y: 2, x: 1 }], a: 1 } })).toBe(
      requestFingerprint(REQUEST),
    );
  });

  it.each([
    ['query', { query: 'What are the top 6 deals?' }],
    ['source_process', { source_process: 'q' }],
    ['webhook_type', { webhook_type: 'general' }],
    ['metadata value', { metadata: { a: 2, b: [1, { x: 1, y: 2 }] } }],
    ['array order', { metadata: { a: 1, b: [{ x: 1, y: 2 }, 1] } }],
  ])('changes with the %s', (_, change) => {
    expect(requestFingerprint({ ...REQUEST, ...change })).not.toBe(requestFingerprint(REQUEST));
  });

  it('a reuse is only told apart when the first claim kept a fingerprint', () => {
    const f = requestFingerprint(REQUEST);
    expect(reusedForAnotherRequest({ request_fingerprint: f }, f)).toBe(false);
    expect(reusedForAnotherRequest({ request_fingerprint: f }, requestFingerprint({ ...REQUEST, query: 'x' }))).toBe(
      true,
    );
    expect(reusedForAnotherRequest({}, f)).toBe(false);
  });
});

describe('idempotency keys', () => {
  it('Idempotency-Key wins over webhook-id; both are trimmed and must be visible ASCII', () => {
    expect(idempotencyKeyOf({ 'idempotency-key': ' k1 ', 'webhook-id': 'msg_1' })).toEqual({ key: 'k1' });
    expect(idempotencyKeyOf({ 'webhook-id': 'msg_1' })).toEqual({ key: 'msg_1' });
    expect(idempotencyKeyOf({})).toEqual({ key: null });
    expect(idempotencyKeyOf({ 'idempotency-key': 'k1', 'webhook-signature': 'v1,x' })).toEqual({ key: 'k1' });
    for (const bad of ['', 'a b', 'é', 'x'.repeat(256)])
      expect(idempotencyKeyOf({ 'idempotency-key': bad })).toHaveProperty('error');
  });

  it('a header sent twice, as Node joins it ("a, b"), is named as sent twice, not as a key of bad characters', () => {
    expect(idempotencyKeyOf({ 'idempotency-key': 'order-1, order-1' })).toEqual({
      error: 'Idempotency-Key (or webhook-id) is sent 2 times ("order-1, order-1"): send it once',
    });
    expect(idempotencyKeyOf({ 'idempotency-key': 'a, b c' })).toEqual({
      error: 'Idempotency-Key (or webhook-id) must be 1 to 255 visible ASCII characters',
    });
  });

  it('a signed request is keyed on its webhook-id (signed), never on an Idempotency-Key beside it (not signed)', () => {
    const signed = { 'webhook-id': 'msg_1', 'webhook-timestamp': '1', 'webhook-signature': 'v1,x' };
    expect(idempotencyKeyOf({ ...signed, 'idempotency-key': 'k1' })).toEqual({ key: 'msg_1' });
    expect(idempotencyKeyOf({ ...signed, 'idempotency-key': 'k2' })).toEqual({ key: 'msg_1' });
    expect(idempotencyKeyOf({ ...signed, 'webhook-id': 'a b', 'idempotency-key': 'k1' })).toHaveProperty('error');
  });

  it('are stored per source, hashed', () => {
    expect(idempotencyPk('a', 'k')).toMatch(/^[0-9a-f]{64}$/);
    expect(idempotencyPk('a', 'k')).not.toBe(idempotencyPk('b', 'k'));
    expect(idempotencyPk('a\nk', '')).not.toBe(idempotencyPk('a', 'k\n'));
  });
});

describe('claimedBySameRequest', () => {
  it('a claim still in progress made by this request id is its own; another id, or an answered key, is not', () => {
    expect(claimedBySameRequest({ status: 'in_progress', request_id: 'req-1' }, 'req-1')).toBe(true);
    expect(claimedBySameRequest({ status: 'in_progress', request_id: 'req-1' }, 'req-2')).toBe(false);
    expect(claimedBySameRequest({ status: 'completed', request_id: 'req-1' }, 'req-1')).toBe(false);
    expect(claimedBySameRequest({ status: 'in_progress' }, 'req-1')).toBe(false); // written before request ids were kept
    expect(claimedBySameRequest({ status: 'in_progress', request_id: '' }, '')).toBe(false);
  });
});
