import { rm, writeFile } from 'node:fs/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { SQS_REFUSED } from '../../local/store/failed-delivery-store.ts';
import { startedRecord } from '../support/fixtures.ts';
import { folderOf, SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';

/**
 * The local failed-delivery store cannot write (disk full, read-only, its folder gone — here: its folder replaced by
 * a file, which even root cannot write into). It fails as SQS does when it refuses a message, so the workflow's
 * Catch treats it as it treats SQS being down on AWS: the conversation is still exported.
 */
let world: TestWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});
beforeEach(async () => {
  world.receiver.reset();
  await rm(world.gateway.failedDeliveries.dir, { recursive: true, force: true });
});

const breakStore = () => writeFile(world.gateway.failedDeliveries.dir, 'not a folder');

describe('an unwritable failed-delivery store', () => {
  it('refuses a message with the error the SQS integration reports, naming the store', async () => {
    await breakStore();
    const record = startedRecord();
    const message = {
      kind: 'failed_delivery',
      conversation: record,
      delivery_error: { Error: 'DeliveryPermanentError', Cause: '{"message":"HTTP 410"}' },
    };
    await expect(world.gateway.failedDeliveries.sendMessage({ MessageBody: message })).rejects.toMatchObject({
      name: SQS_REFUSED,
      message: expect.stringContaining(world.gateway.failedDeliveries.dir),
    });
  });

  // The Catch on QueueFailedDelivery (statemachine/conversation.asl.json) is what this shows; before, the test ran
  // only while the definition had that Catch, so removing it skipped the test instead of failing it.
  it('a delivery the receiver refused, with the store unwritable: 200 with the answer, the record exported (delivery failed)', async () => {
    await breakStore();
    world.receiver.reply(410);
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(200);
    expect(res.body.tracking.delivery_status).toBe('failed');
    const id = res.body.conversation_id as string;
    const record = (await world.getJson(`${folderOf(id)}conversation.json`)).conversation;
    expect(record.webhook_context.delivery_status).toBe('failed');
    expect(record.execution.errors.at(-1)).toMatchObject({ stage: 'QueueFailedDelivery', error: SQS_REFUSED });
  });
});
