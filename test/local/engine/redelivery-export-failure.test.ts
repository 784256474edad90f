import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMain } from '../../support/cli.ts';
import { folderOf, SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * A redelivery run that delivered and then failed in Export (here the Export Lambda fails in Export and again in
 * CloseWithoutExport, as when the run's 60 s run out: the execution FAILED, not RedeliveredWithoutExport). The
 * receiver has the answer; the envelope must go on owing the export alone, so that the next run writes the four
 * files and the receiver is not sent it again.
 */
let world: TestWorld;
let exportFails = false;
/** The first run's Export fails too (in Export and CloseWithoutExport): nothing completes its status. */
let firstExportFails = false;
beforeAll(async () => {
  world = await startWorld(
    { REDELIVERY_SCHEDULE: '1h,1h,1h' },
    {
      stageOverrides: {
        export: async (input) => {
          const redelivery = (input as { state: { redelivery?: unknown } }).state.redelivery !== undefined;
          if (redelivery ? exportFails : firstExportFails) throw new Error('the export Lambda failed');
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

/** Five scheduled runs in a row that each fail in Export (the fifth gives the envelope up). */
async function fiveFailedRuns(id: string) {
  exportFails = true;
  try {
    for (let run = 1; run <= 5; run++) {
      await makeDue(id);
      const results = await world.gateway.redelivery.runDue();
      expect(results.find((r) => r.conversation_id === id)?.status).toBe('error');
    }
  } finally {
    exportFails = false;
  }
}

/** An asynchronous conversation whose workflow's four attempts failed: its status says retrying. */
async function retryingAsync() {
  world.receiver.reset();
  world.receiver.reply(503, 503, 503, 503);
  const accepted = await world.post(SEED_REQUEST, { prefer: 'respond-async' });
  expect(accepted.status).toBe(202);
  const id = accepted.body.conversation_id as string;
  await world.gateway.idle();
  const statusUrl = `${world.gateway.url}/conversations/${id}?source_system=testing_system`;
  expect(((await (await fetch(statusUrl)).json()) as any).tracking.delivery_status).toBe('retrying');
  return { id, statusUrl };
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

/**
 * Runs that fail in Export without delivering (the receiver down too): after the fifth in a row the schedule gives the
 * delivery up, its envelope dead (runs_failed), and what users read must say so, with why and when: the status route,
 * the export, `conversations list | show`, the console. Before, all of them kept saying `retrying` forever.
 */
describe('a delivery given up after five failed redelivery runs in a row', () => {
  it('says failed, why and when, in the status, the export, the CLI and the console', async () => {
    const { id, statusUrl } = await retryingAsync();

    world.receiver.reset();
    world.receiver.reply(...Array.from({ length: 20 }, () => 503));
    await fiveFailedRuns(id);
    const envelope = (await world.gateway.failedDeliveries.get(id))!;
    expect(envelope).toMatchObject({ state: 'dead', dead_reason: 'runs_failed', failed_runs: 5 });
    const givenUpAt = envelope.updated_at;

    // The status route.
    const status = (await (await fetch(statusUrl)).json()) as any;
    expect(status.tracking.delivery_status).toBe('failed');
    expect(status.delivery_updated_at).toBe(givenUpAt);

    // The export: failed, with why and when; every attempt the receiver answered kept.
    const exported = (await world.getJson(`${folderOf(id)}conversation.json`)).conversation;
    expect(exported.webhook_context.delivery_status).toBe('failed');
    expect(exported.execution.errors.at(-1)).toMatchObject({
      stage: 'RedeliverySchedule',
      error: 'RedeliveryRunsFailed',
      at: givenUpAt,
    });
    expect(exported.execution.errors.at(-1).message).toContain('5 redelivery runs in a row failed');
    expect(exported.execution.delivery_attempts.length).toBeGreaterThanOrEqual(9);

    // The CLI and the console.
    const env = { LOCAL_DATA_DIR: world.dataDir };
    const list = await runMain(['conversations', 'list', '--json'], env);
    expect(JSON.parse(list.stdout).find((r: { conversation_id: string }) => r.conversation_id === id)).toMatchObject({
      delivery_status: 'failed',
    });
    const show = await runMain(['conversations', 'show', id], env);
    expect(show.stdout).toMatch(/delivery failed/);
    expect(show.stdout).toContain('RedeliveryRunsFailed');
    const page = await (await fetch(`${world.gateway.url}/console/conversations/${id}`)).text();
    expect(page).toContain('id="delivery-status" data-status="failed"');

    // The receiver is back: a redrive delivers it, and everything says delivered again.
    world.receiver.reset();
    const redriven = await runMain(['deliveries', 'redrive', id], { ...env, GATEWAY_URL: world.gateway.url });
    expect(redriven.code).toBe(0);
    expect(world.receiver.received).toHaveLength(1);
    expect(((await (await fetch(statusUrl)).json()) as any).tracking.delivery_status).toBe('delivered');
    expect((await world.getJson(`${folderOf(id)}conversation.json`)).conversation.webhook_context.delivery_status).toBe(
      'delivered',
    );
    const relisted = await runMain(['conversations', 'list', '--json'], env);
    expect(
      JSON.parse(relisted.stdout).find((r: { conversation_id: string }) => r.conversation_id === id),
    ).toMatchObject({ delivery_status: 'delivered' });
    expect(await world.gateway.failedDeliveries.get(id)).toMatchObject({ state: 'settled' });
  });
});

/**
 * A run that delivered, then failed in Export, and four export-only runs after it that failed too: the schedule gives
 * up on the export (`dead (runs_failed), export only`). The receiver has the answer, so what users read says
 * delivered: the scheduler writes the delivered record itself. Before, the export and the status said `retrying`
 * until a redrive.
 */
describe('an export given up after five failed redelivery runs in a row, the first of which delivered', () => {
  it('says delivered in the status, the export and the CLI', async () => {
    const { id, statusUrl } = await retryingAsync();

    world.receiver.reset();
    await fiveFailedRuns(id);
    expect(world.receiver.received).toHaveLength(1);
    const envelope = (await world.gateway.failedDeliveries.get(id))!;
    expect(envelope).toMatchObject({ state: 'dead', dead_reason: 'runs_failed', owed: 'export' });
    const env = { LOCAL_DATA_DIR: world.dataDir };
    const dead = await runMain(['deliveries', 'list', '--state', 'all'], env);
    expect(dead.stdout).toMatch(new RegExp(`${id} .*dead \\(runs_failed\\), export only`));

    const status = (await (await fetch(statusUrl)).json()) as any;
    expect(status.tracking.delivery_status).toBe('delivered');
    const exported = (await world.getJson(`${folderOf(id)}conversation.json`)).conversation;
    expect(exported.webhook_context.delivery_status).toBe('delivered');
    expect(exported.execution.delivery_attempts.at(-1)).toMatchObject({ outcome: 'delivered' });
    expect(status.delivery_updated_at).toBe(exported.execution.delivery_attempts.at(-1).at);
    const list = await runMain(['conversations', 'list', '--json'], env);
    expect(JSON.parse(list.stdout).find((r: { conversation_id: string }) => r.conversation_id === id)).toMatchObject({
      delivery_status: 'delivered',
    });
  });
});

/**
 * An asynchronous conversation delivered at once whose Export never completed (it failed in Export and
 * CloseWithoutExport: the record went to the schedule owing its export), then five export runs that failed: nothing
 * but the give-up can complete its status. Before, the give-up wrote only its delivery, which a `running` status does
 * not take: the poller read `running` (then, 7 minutes after the accept, a workflow failure) for a conversation its
 * receiver had.
 */
describe('an export given up whose status no Export completed', () => {
  it('completes the status: the 200 body of a synchronous call, delivered', async () => {
    world.receiver.reset();
    firstExportFails = true;
    let accepted: Awaited<ReturnType<TestWorld['post']>>;
    try {
      accepted = await world.post(SEED_REQUEST, { prefer: 'respond-async' });
      await world.gateway.idle();
    } finally {
      firstExportFails = false;
    }
    expect(accepted.status).toBe(202);
    const id = accepted.body.conversation_id as string;
    expect(world.receiver.received).toHaveLength(1);
    const statusUrl = `${world.gateway.url}/conversations/${id}?source_system=testing_system`;
    expect(((await (await fetch(statusUrl)).json()) as any).status).toBe('running');
    expect(await world.gateway.failedDeliveries.get(id)).toMatchObject({ owed: 'export' });

    await fiveFailedRuns(id);
    expect(await world.gateway.failedDeliveries.get(id)).toMatchObject({ state: 'dead', dead_reason: 'runs_failed' });
    const read = await fetch(statusUrl);
    expect(read.headers.get('retry-after')).toBeNull();
    const status = (await read.json()) as any;
    expect(status).toMatchObject({ success: true, conversation_id: id, status: 'completed' });
    expect(status.response).toBeTruthy();
    expect(status.tracking.delivery_status).toBe('delivered');
    expect(Date.parse(status.completed_at)).not.toBeNaN();
    expect(status.tracking.processing_time_ms).toBeGreaterThan(0);
    // The export too ends the conversation as Export would have (before: `in_progress`, without an end).
    const exported = (await world.getJson(`${folderOf(id)}conversation.json`)).conversation;
    expect(exported.execution).toMatchObject({ status: 'completed', completed_at: status.completed_at });
    expect(exported.execution.timings.total_ms).toBe(status.tracking.processing_time_ms);
    const list = await runMain(['conversations', 'list', '--json'], { LOCAL_DATA_DIR: world.dataDir });
    expect(JSON.parse(list.stdout).find((r: { conversation_id: string }) => r.conversation_id === id)).toMatchObject({
      status: 'completed',
      delivery_status: 'delivered',
    });
    expect(world.receiver.received).toHaveLength(1);
  });
});
