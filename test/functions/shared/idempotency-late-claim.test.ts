import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IN_PROGRESS_TTL_SECONDS, idempotencyPk } from '../../../functions/domain/idempotency.ts';
import { idempotencyStore } from '../../../functions/shared/idempotency-store.ts';
import { IDEMPOTENCY_ADAPTERS, type StoreWorld } from '../../support/idempotency-stores.ts';

/**
 * A claim that lands after its release (docs/deploy.md, "Timeouts"): Validate's claim (a PutItem) is cut at its
 * Lambda's deadline, Validate frees the key (a conditional DeleteItem, which finds nothing), answers 503
 * STORAGE_UNAVAILABLE, and only then does DynamoDB apply the cut PutItem, sent before the cut on another connection.
 * The key then holds an in-progress claim of a conversation that never ran. It is not held for ever: the item carries
 * the expiry Validate computed when it sent it (its request time + IN_PROGRESS_TTL_SECONDS), and every claim's
 * condition reads that expiry itself (`expires_at <= :now`), not DynamoDB's TTL deletion (which may come days later).
 * A retry meanwhile gets 409 (Retry-After); one after it starts afresh. DynamoDB on a mocked client holding a table
 * that evaluates the store's condition expressions.
 */
describe('an idempotency claim that lands after its release (DynamoDB)', () => {
  let world: StoreWorld;
  beforeEach(async () => {
    world = await IDEMPOTENCY_ADAPTERS.dynamodb();
  });
  afterEach(async () => {
    await world.close();
  });

  const PK = idempotencyPk('testing_system', 'late-claim-key');
  const SENT = new Date('2026-12-03T12:00:00.000Z');
  const at = (seconds: number) => new Date(SENT.getTime() + seconds * 1000);
  const NEVER_RAN = 'webhook_20261203_120000_testing_phase3valid_neverran01';
  const RETRY = 'webhook_20261203_120010_testing_phase3valid_theretry01';

  /** The cut claim, as DynamoDB applies it late: with the time Validate sent it at. */
  const lateClaim = () => idempotencyStore()!.claim(PK, { conversationId: NEVER_RAN, requestId: 'req-1@sent' }, SENT);

  it('holds the key only until the expiry it was sent with: 409 for a retry before, a fresh start after', async () => {
    const store = idempotencyStore()!;
    // The release, 8.5 s after the request, finds no claim (none landed yet): settled, nothing to free.
    expect(await store.release(PK, NEVER_RAN)).toEqual({ settled: true });
    expect(await lateClaim()).toEqual({ claimed: true, conversation_id: NEVER_RAN });
    expect(await world.key(PK)).toMatchObject({ status: 'in_progress', conversation_id: NEVER_RAN });

    // The caller's retry (another request) a second before the expiry: the never-run claim answers (409).
    const early = await store.claim(
      PK,
      { conversationId: RETRY, requestId: 'req-2@retry' },
      at(IN_PROGRESS_TTL_SECONDS - 1),
    );
    expect(early).toMatchObject({ claimed: false, existing: { status: 'in_progress', conversation_id: NEVER_RAN } });

    // At the expiry, whether or not TTL has deleted the item: the retry starts afresh.
    const after = await store.claim(
      PK,
      { conversationId: RETRY, requestId: 'req-3@retry' },
      at(IN_PROGRESS_TTL_SECONDS),
    );
    expect(after).toEqual({ claimed: true, conversation_id: RETRY });
    expect(await world.key(PK)).toMatchObject({ status: 'in_progress', conversation_id: RETRY });
    // The never-run conversation can neither complete nor free the retry's key.
    expect(await store.complete(PK, NEVER_RAN, { success: true }, at(IN_PROGRESS_TTL_SECONDS + 1))).toEqual({
      settled: false,
      heldBy: RETRY,
    });
    expect(await store.release(PK, NEVER_RAN)).toEqual({ settled: false, heldBy: RETRY });
  });

  it('lands after a retry took the key: refused, the retry keeps it', async () => {
    const store = idempotencyStore()!;
    expect(await store.release(PK, NEVER_RAN)).toEqual({ settled: true });
    expect(await store.claim(PK, { conversationId: RETRY, requestId: 'req-2@retry' }, at(10))).toEqual({
      claimed: true,
      conversation_id: RETRY,
    });
    expect(await lateClaim()).toMatchObject({ claimed: false, existing: { conversation_id: RETRY } });
    expect(await world.key(PK)).toMatchObject({ status: 'in_progress', conversation_id: RETRY });
  });
});
