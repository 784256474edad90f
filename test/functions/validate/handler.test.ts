import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fullRecord, type StateRecord } from '../../../functions/domain/conversation.ts';
import type { ExecutionInput } from '../../../functions/domain/gateway-contract.ts';
import { idempotencyPk } from '../../../functions/domain/idempotency.ts';
import { handler } from '../../../functions/validate/handler.ts';
import { executionInput, RECEIVED_AT, SEED_REQUEST } from '../../support/fixtures.ts';
import { IDEMPOTENCY_ADAPTERS, type StoreWorld } from '../../support/idempotency-stores.ts';

/**
 * Validate with an Idempotency-Key, on both adapters of the idempotency store. The workflows retry Validate
 * (statemachine/*.asl.json: Retry on Lambda.ServiceException and the like) with the same input, after its first
 * attempt may have claimed the key: that attempt and its retry are one request (docs/contract.md#idempotent-retries).
 */
describe.each(Object.keys(IDEMPOTENCY_ADAPTERS) as (keyof typeof IDEMPOTENCY_ADAPTERS)[])(
  'Validate and the idempotency key (%s)',
  (adapter) => {
    let world: StoreWorld;
    beforeEach(async () => {
      world = await IDEMPOTENCY_ADAPTERS[adapter]();
    });
    afterEach(() => world.close());

    const keyed = (key: string, requestId: string): ExecutionInput =>
      executionInput(SEED_REQUEST, {
        request_id: requestId,
        headers: { 'content-type': 'application/json', 'idempotency-key': key },
      });

    it('a retried Validate goes on as the conversation its first attempt claimed the key for; another request meets 409', async () => {
      const input = keyed('retried-sync', 'req-sync-1');
      const first = await handler(input);
      expect(first).toMatchObject({ valid: true, duplicate: false });
      const conversation = (first as { conversation: { conversation_id: string; webhook_context: object } })
        .conversation;
      const retried = await handler(input);
      expect(retried).toMatchObject({
        valid: true,
        duplicate: false,
        conversation: {
          conversation_id: conversation.conversation_id,
          webhook_context: conversation.webhook_context,
        },
      });
      // The state leaves metadata.conversation_id out while it repeats conversation_id (leanRecord); read whole, it is.
      const record = fullRecord((retried as { conversation: StateRecord }).conversation);
      expect(record.metadata.conversation_id).toBe(conversation.conversation_id);
      expect(await world.key(idempotencyPk('testing_system', 'retried-sync'))).toMatchObject({
        status: 'in_progress',
        conversation_id: conversation.conversation_id,
      });
      // Another HTTP request with the key while the conversation runs: still 409, naming it.
      const other = await handler(keyed('retried-sync', 'req-sync-2'));
      expect(other).toMatchObject({ valid: false, error: 'IdempotencyConflict', code: 'IDEMPOTENCY_CONFLICT' });
      expect(JSON.parse((other as { rejection: string }).rejection).error.conversation_id).toBe(
        conversation.conversation_id,
      );
    });

    it('a request that reuses the API request id (a client may set it: x-amzn-RequestId) is another request, not a retry', async () => {
      const first = await handler(keyed('replayed-id', 'req-client-set'));
      const id = (first as { conversation: { conversation_id: string } }).conversation.conversation_id;
      const replay = executionInput(SEED_REQUEST, {
        request_id: 'req-client-set',
        // The same id, received 5 s later: API Gateway times each request itself.
        received_at: new Date(Date.parse(RECEIVED_AT) + 5_000).toISOString(),
        headers: { 'content-type': 'application/json', 'idempotency-key': 'replayed-id' },
      });
      expect(await handler(replay)).toMatchObject({ valid: false, code: 'IDEMPOTENCY_CONFLICT' });
      expect(await world.key(idempotencyPk('testing_system', 'replayed-id'))).toMatchObject({ conversation_id: id });
    });

    it('a retried asynchronous start is started (not answered as a duplicate whose run never starts), under the same id', async () => {
      const input = keyed('retried-async', 'req-async-1');
      const first = await handler({ accept: input });
      expect(first).toMatchObject({ valid: true, duplicate: false });
      const id = (first as { conversation: { conversation_id: string } }).conversation.conversation_id;
      expect(await handler({ accept: input })).toMatchObject({
        valid: true,
        duplicate: false,
        conversation: { conversation_id: id },
      });
      // A new request asking again for an asynchronous answer gets the same 202.
      expect(await handler({ accept: keyed('retried-async', 'req-async-2') })).toMatchObject({
        valid: true,
        duplicate: true,
        conversation_id: id,
        response: { accepted: { conversation_id: id } },
      });
    });
  },
);
