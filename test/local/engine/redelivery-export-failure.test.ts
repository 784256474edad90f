import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { folderOf, SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * A redelivery run that delivered and then failed in Export (here the Export Lambda fails in Export and again in
 * CloseWithoutExport, as when the run's 60 s run out: the execution FAILED, not RedeliveredWithoutExport). The
 * receiver has the answer; the envelope must go on owing the export alone, so that the next run writes the four
 * files and the receiver is not sent it again.
 */
let world: TestWorld;
let exportFails = false;
beforeAll(async () => {
  world = await startWorld(
    { REDELIVERY_SCHEDULE: '1h,1h,1h' },
    {
      stageOverrides: {
        export: async (input) => {
          if (exportFails && (input as { state: { redelivery?: unknown } }).state.redelivery)
            throw new Error('the export Lambda failed');
          // Imported once the gateway has set the environment (its SDK clients read their endpoints then).
          const { handler: exportStage } = await import('../../../functions/export/handler.ts');
          return exportStage(input as never);
        },
      },
    },
  );
});
afterAll(async () => {
  await world?.close();
});

async function makeDue(id: string) {
  const envelope = (await world.gateway.failedDeliveries.get(id))!;
  await world.gateway.failedDeliveries.put({ ...envelope, next_due_at: new Date(Date.now() - 1).toISOString() });
}

describe('a redelivery that delivered, then failed in Export', () => {
  for (const via of ['schedule', 'redrive'] as const)
    it(`${via}: the envelope owes only the export; the next run exports it delivered, without a second delivery`, async () => {
      world.receiver.reset();
      world.receiver.reply(503, 503, 503, 503);
      const res = await world.post(SEED_REQUEST);
      expect(res.body.tracking.delivery_status).toBe('retrying');
      const id = res.body.conversation_id as string;
      world.receiver.reset();

      exportFails = true;
      try {
        if (via === 'schedule') {
          await makeDue(id);
          const results = await world.gateway.redelivery.runDue();
          expect(results.find((r) => r.conversation_id === id)?.status).toBe('error');
        } else {
          expect((await world.gateway.redelivery.redrive(id)).status).toBe('error');
        }
      } finally {
        exportFails = false;
      }
      expect(world.receiver.received).toHaveLength(1);
      const owed = (await world.gateway.failedDeliveries.get(id))!;
      expect(owed).toMatchObject({ state: 'pending', owed: 'export' });
      expect(owed.conversation.webhook_context.delivery_status).toBe('delivered');

      await makeDue(id);
      const results = await world.gateway.redelivery.runDue();
      expect(results.find((r) => r.conversation_id === id)?.status).toBe('delivered');
      expect(world.receiver.received).toHaveLength(1);
      expect(await world.gateway.failedDeliveries.get(id)).toMatchObject({ state: 'settled' });
      expect(await world.listKeys(folderOf(id))).toHaveLength(4);
      const exported = await world.getJson(`${folderOf(id)}conversation.json`);
      expect(exported.conversation.webhook_context.delivery_status).toBe('delivered');
      expect(exported.conversation.execution.delivery_attempts.map((a: { outcome: string }) => a.outcome).at(-1)).toBe(
        'delivered',
      );
    });
});
