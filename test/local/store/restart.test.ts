import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway } from '../../../local/server/gateway.ts';
import { folderOf, NO_WAIT, SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

let world: TestWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});

describe('the local failed-delivery store is durable', () => {
  it('survives a restart of the gateway, and the restarted gateway redelivers it', async () => {
    world.receiver.reply(400);
    const res = await world.post(SEED_REQUEST);
    const id = res.body.conversation_id as string;
    const s3Port = Number(new URL(world.gateway.s3Endpoint).port);
    await world.gateway.close();

    // Same data folder, same S3 port: what `npm start` does after Ctrl-C.
    delete process.env.AWS_ENDPOINT_URL_S3;
    const restarted = await startGateway({ port: 0, s3Port, dataDir: world.dataDir, retryIntervalOverrides: NO_WAIT });
    world.gateway = restarted;
    const envelope = await restarted.failedDeliveries.get(id);
    expect(envelope).toMatchObject({ conversation_id: id, state: 'dead', delivery_id: res.body.tracking.delivery_id });
    expect((await restarted.failedDeliveries.list()).map((e) => e.conversation_id)).toContain(id);

    world.receiver.reset();
    const result = await restarted.redelivery.redrive(id);
    expect(result.status).toBe('delivered');
    expect(world.receiver.received).toHaveLength(1);
    const record = await world.getJson(`${folderOf(id)}conversation.json`);
    expect(record.conversation.webhook_context.delivery_status).toBe('delivered');
    const executions = await restarted.executions.executions(id);
    expect(executions.map((e) => e.state_machine)).toEqual(['conversation', 'redelivery']);
  });
});
