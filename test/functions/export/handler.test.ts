import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ConversationState } from '../../../functions/domain/conversation.ts';
import { idempotencyPk } from '../../../functions/domain/idempotency.ts';
import { withAgentAnswer } from '../../../functions/domain/lifecycle.ts';
import { IDEMPOTENCY_KEY_LOST_EVENT } from '../../../functions/domain/observability.ts';
import { handler } from '../../../functions/export/handler.ts';
import { conversationStatusStore } from '../../../functions/shared/conversation-status-store.ts';
import { SEED_REQUEST, startedRecord } from '../../support/fixtures.ts';
import { IDEMPOTENCY_ADAPTERS, type StoreWorld } from '../../support/idempotency-stores.ts';
import { captureJsonLines } from '../../support/log-capture.ts';

/**
 * Export settles the conversation's idempotency key — its answer kept, or the key freed after an agent failure —
 * only while the key is still that conversation's claim (docs/contract.md#idempotent-retries), on both adapters. S3
 * is left out (ENABLE_CONVERSATION_EXPORT=false): the key is what is looked at.
 */
describe.each(Object.keys(IDEMPOTENCY_ADAPTERS) as (keyof typeof IDEMPOTENCY_ADAPTERS)[])(
  'Export and the idempotency key (%s)',
  (adapter) => {
    let world: StoreWorld;
    let logs: ReturnType<typeof captureJsonLines>;
    beforeEach(async () => {
      world = await IDEMPOTENCY_ADAPTERS[adapter]();
      process.env.ENABLE_CONVERSATION_EXPORT = 'false';
      logs = captureJsonLines();
    });
    afterEach(async () => {
      logs.restore();
      delete process.env.ENABLE_CONVERSATION_EXPORT;
      await world.close();
    });

    const KEY = 'export-key';
    const PK = idempotencyPk('testing_system', KEY);
    const started = startedRecord(SEED_REQUEST, {
      input: { headers: { 'content-type': 'application/json', 'idempotency-key': KEY } },
    });
    const ID = started.conversation_id;
    const answered = withAgentAnswer(started, { response: 'Three deals.' }, 5, new Date());
    const claim = (conversationId: string, requestId: string) =>
      world.seed(PK, { conversation_id: conversationId, request_id: requestId }, new Date());
    const lost = () => logs.events(ID).filter((e) => e.event_type === IDEMPOTENCY_KEY_LOST_EVENT);

    it("keeps the answer on the conversation's own claim", async () => {
      await claim(ID, 'req-1');
      const out = await handler({ state: { conversation: answered } as ConversationState, execution_name: 'e1' });
      expect(out.response).toMatchObject({ success: true, conversation_id: ID });
      const key = await world.key(PK);
      expect(key).toMatchObject({ status: 'completed', conversation_id: ID });
      expect(JSON.parse(key!.response!)).toEqual(out.response);
      expect(lost()).toEqual([]);
    });

    it("a claim that lapsed and another request took: that request's key is left as it is, the conversation answered", async () => {
      await claim('webhook_20250813_103500_testing_phase3valid_other00001', 'req-2');
      const out = await handler({ state: { conversation: answered } as ConversationState, execution_name: 'e2' });
      expect(out.response).toMatchObject({ success: true, conversation_id: ID });
      expect(await world.key(PK)).toEqual({
        status: 'in_progress',
        conversation_id: 'webhook_20250813_103500_testing_phase3valid_other00001',
        response: undefined,
      });
      expect(lost()).toEqual([
        expect.objectContaining({
          level: 'WARN',
          action: 'complete',
          reason: 'claimed_by_another',
          held_by: 'webhook_20250813_103500_testing_phase3valid_other00001',
        }),
      ]);
    });

    it("after an agent failure, another request's key is not freed", async () => {
      await claim('webhook_20250813_103500_testing_phase3valid_other00001', 'req-2');
      const failed = { conversation: started, agent_error: { Error: 'Lambda.Unknown', Cause: 'crashed' } };
      const out = await handler({ state: failed as ConversationState, execution_name: 'e3' });
      expect(out.failure_error).toBeDefined();
      expect(await world.key(PK)).toMatchObject({
        status: 'in_progress',
        conversation_id: 'webhook_20250813_103500_testing_phase3valid_other00001',
      });
      expect(lost()).toEqual([expect.objectContaining({ action: 'release', reason: 'claimed_by_another' })]);
    });

    it('a second run of the same conversation (an asynchronous start is at-least-once on AWS) leaves the first answer: key and status agree', async () => {
      await claim(ID, 'req-1');
      const statuses = conversationStatusStore()!;
      const asyncRecord = (text: string) => {
        const record = withAgentAnswer(started, { response: text }, 5, new Date());
        return { ...record, metadata: { ...record.metadata, response_mode: 'async' as const } };
      };
      await statuses.accept({
        conversation_id: ID,
        source_system: 'testing_system',
        status: 'running',
        accepted_at: new Date().toISOString(),
        expires_at: Math.floor(Date.now() / 1000) + 3600,
      });
      const first = await handler({
        state: { conversation: asyncRecord('First run.') } as ConversationState,
        execution_name: ID,
      });
      const second = await handler({
        state: { conversation: asyncRecord('Second run.') } as ConversationState,
        execution_name: ID,
      });
      expect(second.response).toMatchObject({ success: true, conversation_id: ID });
      // Before: the second run's answer replaced the first in the key (a retry got "Second run."), while the status
      // kept its first end ("First run."). Now both keep the first, and nothing is reported lost.
      const key = await world.key(PK);
      expect(key).toMatchObject({ status: 'completed', conversation_id: ID });
      expect(JSON.parse(key!.response!)).toEqual(first.response);
      expect(JSON.stringify(first.response)).toContain('First run.');
      expect((await statuses.get(ID))?.body).toContain('First run.');
      expect(lost()).toEqual([]);
    });

    it('a key gone (expired) is not written back without its claim', async () => {
      const out = await handler({ state: { conversation: answered } as ConversationState, execution_name: 'e4' });
      expect(out.response).toMatchObject({ success: true });
      expect(await world.key(PK)).toBeNull();
      expect(lost()).toEqual([expect.objectContaining({ action: 'complete', reason: 'expired' })]);
    });
  },
);
