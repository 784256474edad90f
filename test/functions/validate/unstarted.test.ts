import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { idempotencyPk } from '../../../functions/domain/idempotency.ts';
import { handler } from '../../../functions/validate/handler.ts';
import { SEED_REQUEST, startedRecord } from '../../support/fixtures.ts';
import { IDEMPOTENCY_ADAPTERS, type StoreWorld } from '../../support/idempotency-stores.ts';

/**
 * statemachine/accept.asl.json, FreeUnstartedKey: neither the start nor the export of an accepted conversation worked,
 * so Validate (told `unstarted`) frees its Idempotency-Key — only while it is still that conversation's claim — for
 * the caller's "send it again" to be taken at once, on both adapters (DynamoDB mocked, local files).
 */
describe.each(Object.keys(IDEMPOTENCY_ADAPTERS) as (keyof typeof IDEMPOTENCY_ADAPTERS)[])(
  'Validate frees the key of a conversation it could not start (%s)',
  (adapter) => {
    let world: StoreWorld;
    beforeEach(async () => {
      world = await IDEMPOTENCY_ADAPTERS[adapter]();
    });
    afterEach(async () => {
      await world.close();
    });

    const KEY = 'unstarted-key';
    const PK = idempotencyPk('testing_system', KEY);
    const conversation = startedRecord(SEED_REQUEST, {
      input: { headers: { 'content-type': 'application/json', 'idempotency-key': KEY } },
    });

    it("frees the conversation's own claim", async () => {
      await world.seed(PK, { conversation_id: conversation.conversation_id, request_id: 'req-1' }, new Date());
      await expect(handler({ unstarted: { conversation } })).resolves.toEqual({ freed: true });
      expect(await world.key(PK)).toBeNull();
    });

    it("leaves another conversation's claim of the key as it is", async () => {
      await world.seed(
        PK,
        { conversation_id: 'webhook_20261201_100000_crm_p_other1', request_id: 'req-2' },
        new Date(),
      );
      await expect(handler({ unstarted: { conversation } })).resolves.toEqual({ freed: false });
      expect(await world.key(PK)).toMatchObject({ conversation_id: 'webhook_20261201_100000_crm_p_other1' });
    });
  },
);
