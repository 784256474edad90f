import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EXPORT_DEFERRED_EVENT, EXPORT_DEFERRED_METRIC } from '../../functions/domain/observability.ts';
import { runMain } from '../support/cli.ts';
import { folderOf, SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';
import { captureJsonLines } from '../support/log-capture.ts';

/**
 * S3 refuses the export (here: the bucket does not exist) through Export's retries. The conversation still ends
 * as it would have (200 with the answer, or 502 after an agent failure), the closed record waits in the
 * failed-delivery store as an export-only envelope, and its redelivery exports it once S3 takes it — without a
 * second delivery.
 */
let world: TestWorld;
beforeAll(async () => {
  world = await startWorld({ REDELIVERY_SCHEDULE: '1h,1h' });
});
afterAll(async () => {
  await world?.close();
});
beforeEach(() => {
  world.receiver.reset();
  world.agent.reset();
  process.env.CONVERSATION_EXPORT_S3_BUCKET = world.gateway.bucket;
});

/** POST the example request while the export bucket is missing, capturing the handlers' log lines. */
async function postWhileS3Refuses(headers: Record<string, string> = {}) {
  process.env.CONVERSATION_EXPORT_S3_BUCKET = 'bucket-that-does-not-exist';
  const capture = captureJsonLines();
  try {
    return { res: await world.post(SEED_REQUEST, headers), capture };
  } finally {
    capture.restore();
    process.env.CONVERSATION_EXPORT_S3_BUCKET = world.gateway.bucket;
  }
}

async function statePath(conversationId: string, index = 0) {
  const executions = await world.gateway.executions.executions(conversationId);
  return executions[index]!.events.filter((e) => e.type === 'StateEntered').map((e) => e.state);
}

describe('S3 refuses the export at the end of a conversation', () => {
  it('delivered conversation → 200 with the answer, nothing in S3, the closed record queued as an export-only envelope', async () => {
    const { res, capture } = await postWhileS3Refuses({ 'idempotency-key': 'export-down-1' });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ success: true, tracking: { delivery_status: 'delivered' } });
    const id = res.body.conversation_id as string;
    expect(world.receiver.received).toHaveLength(1);
    expect(await world.listKeys(folderOf(id))).toEqual([]);

    expect(await statePath(id)).toEqual([
      'Validate',
      'IsRequestValid',
      'InvokeManagerAgent',
      'Classify',
      'Deliver',
      'Export',
      'CloseWithoutExport',
      'IsRedeliveryQueued',
      'QueueFailedExport',
      'AnswerWithoutExport',
      'Completed',
    ]);
    const envelope = (await world.gateway.failedDeliveries.get(id))!;
    expect(envelope).toMatchObject({
      owed: 'export',
      state: 'pending',
      conversation_id: id,
      delivery_id: res.body.tracking.delivery_id,
    });
    expect(envelope.last_error).toMatch(
      /^export: ExportError: writing s3:\/\/bucket-that-does-not-exist\/.*NoSuchBucket/,
    );
    expect(envelope.conversation.execution).toMatchObject({ status: 'completed' });
    expect(envelope.conversation.execution.completed_at).not.toBeNull();
    expect(envelope.conversation.webhook_context.delivery_status).toBe('delivered');

    // Logged and counted once; the completion is logged once, not once per Export retry.
    // Said as it is when logged: the closing run hands the record to QueueFailedExport next (before: "queued to be
    // exported later", also when the queue then refused it).
    expect(capture.events(id).filter((e) => e.event_type === EXPORT_DEFERRED_EVENT)).toEqual([
      expect.objectContaining({
        message:
          'Conversation export failed; the record is queued next (QueueFailedExport): a refusal there is logged as WEBHOOK_CONVERSATION_UNSAVED',
      }),
    ]);
    expect(capture.events(id).filter((e) => e.event_type === 'WEBHOOK_CONVERSATION_COMPLETED')).toHaveLength(1);
    expect(capture.events(id).filter((e) => e.event_type === 'WEBHOOK_CONVERSATION_EXPORTED')).toHaveLength(0);
    expect(capture.metrics().some((m) => m[EXPORT_DEFERRED_METRIC] === 1)).toBe(true);

    // The client's retry with the same key gets the same answer: the key was completed without S3.
    const again = await world.post(SEED_REQUEST, { 'idempotency-key': 'export-down-1' });
    expect(again.body.conversation_id).toBe(id);
    expect(world.receiver.received).toHaveLength(1);

    // The operator sees it among the failed deliveries, as owing only its export.
    const cli = (args: string[]) => runMain(args, { LOCAL_DATA_DIR: world.dataDir, GATEWAY_URL: world.gateway.url });
    const listed = await cli(['deliveries', 'list']);
    expect(listed.stdout).toMatch(new RegExp(`${id} .*export: ExportError.*pending, export only`));

    const shown = await cli(['conversations', 'show', id]);
    expect(shown.stdout).toMatch(/export {5}pending: next automatic attempt/);
    expect(shown.stdout).toMatch(/exports {4}s3:.*\(not written yet: export: ExportError: .*NoSuchBucket/);

    // S3 is back: the operator's redrive exports the record and delivers nothing.
    const redriven = await cli(['deliveries', 'redrive', id]);
    expect(redriven.code).toBe(0);
    expect(redriven.stdout).toMatch(new RegExp(`${id} → exported`));
    expect(await statePath(id, 1)).toEqual(['IsDeliveryOwed', 'Export', 'Redelivered']);
    expect(world.receiver.received).toHaveLength(1);
    expect(await world.listKeys(folderOf(id))).toHaveLength(4);
    const exported = await world.getJson(`${folderOf(id)}conversation.json`);
    expect(exported.conversation.webhook_context.delivery_status).toBe('delivered');
    expect(exported.conversation.execution.delivery_attempts).toHaveLength(1);
    expect((await world.gateway.failedDeliveries.get(id))!.state).toBe('settled');
    expect((await cli(['deliveries', 'redrive', id])).stdout).toMatch(/already exported: nothing to redrive/);
    expect((await cli(['conversations', 'show', id])).stdout).not.toMatch(/not written yet/);
  });

  it('the schedule exports it when it is due; while S3 still refuses, the envelope waits for its next slot', async () => {
    const { res } = await postWhileS3Refuses();
    const id = res.body.conversation_id as string;
    const makeDue = async () => {
      const envelope = (await world.gateway.failedDeliveries.get(id))!;
      await world.gateway.failedDeliveries.put({ ...envelope, next_due_at: new Date(Date.now() - 1).toISOString() });
    };
    await makeDue();

    process.env.CONVERSATION_EXPORT_S3_BUCKET = 'bucket-that-does-not-exist';
    const refused = (await world.gateway.redelivery.runDue()).find((r) => r.conversation_id === id);
    expect(refused).toMatchObject({ status: 'failed' });
    expect(await statePath(id, 1)).toEqual([
      'IsDeliveryOwed',
      'Export',
      'CloseWithoutExport',
      'RedeliveredWithoutExport',
    ]);
    const waiting = (await world.gateway.failedDeliveries.get(id))!;
    expect(waiting).toMatchObject({ state: 'pending', owed: 'export', scheduled_attempts: 1 });
    expect(Date.parse(waiting.next_due_at!)).toBeGreaterThan(Date.now() + 3_000_000); // the second slot: 1 h

    process.env.CONVERSATION_EXPORT_S3_BUCKET = world.gateway.bucket;
    await makeDue();
    const exported = (await world.gateway.redelivery.runDue()).find((r) => r.conversation_id === id);
    expect(exported).toMatchObject({ status: 'delivered' });
    expect(await world.listKeys(folderOf(id))).toHaveLength(4);
    expect(world.receiver.received).toHaveLength(1);
  });

  it('agent failure → still 502 AGENT_ERROR, the failed record queued for export', async () => {
    world.agent.behave(() => ({
      functionError: 'Unhandled',
      payload: { errorType: 'KeyError', errorMessage: "'opportunities'" },
    }));
    const { res } = await postWhileS3Refuses();
    expect(res.status).toBe(502);
    expect(res.body.error.code).toBe('AGENT_ERROR');
    const id = res.body.error.conversation_id as string;
    expect(await statePath(id)).toEqual([
      'Validate',
      'IsRequestValid',
      'InvokeManagerAgent',
      'ExportFailedConversation',
      'CloseWithoutExport',
      'IsRedeliveryQueued',
      'QueueFailedExport',
      'AnswerWithoutExport',
      'AgentFailed',
    ]);
    const envelope = (await world.gateway.failedDeliveries.get(id))!;
    expect(envelope).toMatchObject({ owed: 'export', state: 'pending' });
    expect(envelope.conversation.execution.status).toBe('failed');
    expect(envelope.conversation.webhook_context.delivery_status).toBe('not_attempted');

    world.agent.reset();
    expect((await world.gateway.redelivery.redrive(id)).status).toBe('delivered');
    const summary = await world.getJson(`${folderOf(id)}summary.json`);
    expect(summary.status).toBe('failed');
    expect(world.receiver.received).toHaveLength(0);
  });

  it('failed delivery too → one envelope (the delivery), whose redelivery delivers and exports', async () => {
    world.receiver.reply(503, 503, 503, 503);
    const { res, capture } = await postWhileS3Refuses();
    expect(res.status).toBe(200);
    expect(res.body.tracking.delivery_status).toBe('retrying');
    const id = res.body.conversation_id as string;
    expect(capture.events(id).filter((e) => e.event_type === EXPORT_DEFERRED_EVENT)).toEqual([
      expect.objectContaining({
        message:
          "Conversation export failed; its failed delivery's envelope holds the record: its redelivery or redrive exports it",
      }),
    ]);
    expect(await statePath(id)).toEqual([
      'Validate',
      'IsRequestValid',
      'InvokeManagerAgent',
      'Classify',
      'Deliver',
      'DeliveryFailed',
      'QueueFailedDelivery',
      'Export',
      'CloseWithoutExport',
      'IsRedeliveryQueued',
      'AnswerWithoutExport',
      'Completed',
    ]);
    const envelope = (await world.gateway.failedDeliveries.get(id))!;
    expect(envelope.owed).toBeUndefined();
    expect(envelope.state).toBe('pending');

    world.receiver.reset();
    expect((await world.gateway.redelivery.redrive(id)).status).toBe('delivered');
    expect(world.receiver.received).toHaveLength(1);
    expect((await world.getJson(`${folderOf(id)}conversation.json`)).conversation.webhook_context.delivery_status).toBe(
      'delivered',
    );
  });

  it('S3 refuses during a redelivery → delivered once, the envelope then owes only the export, and the next run writes it', async () => {
    world.receiver.reply(503, 503, 503, 503);
    const res = await world.post(SEED_REQUEST);
    const id = res.body.conversation_id as string;
    expect(res.body.tracking.delivery_status).toBe('retrying');
    world.receiver.reset();

    process.env.CONVERSATION_EXPORT_S3_BUCKET = 'bucket-that-does-not-exist';
    const capture = captureJsonLines();
    let first: Awaited<ReturnType<typeof world.gateway.redelivery.redrive>>;
    try {
      first = await world.gateway.redelivery.redrive(id);
    } finally {
      capture.restore();
      process.env.CONVERSATION_EXPORT_S3_BUCKET = world.gateway.bucket;
    }
    expect(first.status).toBe('failed');
    expect(capture.events(id).filter((e) => e.event_type === EXPORT_DEFERRED_EVENT)).toEqual([
      expect.objectContaining({
        message: 'Conversation export failed; its failed-delivery envelope still owes the export',
      }),
    ]);
    expect(await statePath(id, 1)).toEqual([
      'IsDeliveryOwed',
      'Deliver',
      'Export',
      'CloseWithoutExport',
      'RedeliveredWithoutExport',
    ]);
    expect(world.receiver.received).toHaveLength(1);
    const owing = (await world.gateway.failedDeliveries.get(id))!;
    expect(owing).toMatchObject({ state: 'pending', owed: 'export' });
    expect(owing.last_error).toMatch(/^export: ExportError: .*NoSuchBucket/);
    expect(owing.conversation.webhook_context.delivery_status).toBe('delivered');

    expect((await world.gateway.redelivery.redrive(id)).status).toBe('delivered');
    expect(await statePath(id, 2)).toEqual(['IsDeliveryOwed', 'Export', 'Redelivered']);
    expect(world.receiver.received).toHaveLength(1);
    const exported = await world.getJson(`${folderOf(id)}conversation.json`);
    expect(exported.conversation.webhook_context.delivery_status).toBe('delivered');
    // Every attempt, from the attempt log: the workflow's four, then the redelivery's.
    expect(
      exported.conversation.execution.delivery_attempts.map((a: { outcome: string; via: string }) => [
        a.via,
        a.outcome,
      ]),
    ).toEqual([
      ['workflow', 'retryable'],
      ['workflow', 'retryable'],
      ['workflow', 'retryable'],
      ['workflow', 'retryable'],
      ['redrive', 'delivered'],
    ]);
  });
});
