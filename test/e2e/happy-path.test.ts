import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { recordFromExport } from '../../functions/domain/export-formats.ts';
import { EVENT_TYPES, METRIC_NAMES } from '../../functions/shared/events.ts';
import { latestRecord } from '../../local/history/conversations.ts';
import { inProcessS3 } from '../../local/store/in-process-s3-transport.ts';
import { runMain } from '../support/cli.ts';
import { folderOf, SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';
import { captureJsonLines } from '../support/log-capture.ts';

let world: TestWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});

const CASES = [
  { type: 'deal_analysis', query: 'What are the top 5 deals closing this quarter?' },
  { type: 'data_analysis', query: 'Show me the churn metrics trend report for last month' },
  { type: 'lead_analysis', query: 'Which inbound leads should sales call first?' },
  { type: 'general', query: 'Say hello to the team' },
] as const;

describe('a conversation through the local engine, the real handlers, the embedded S3 and a real receiver', () => {
  it.each(CASES)('delivers a $type answer to its own webhook and exports it', async ({ type, query }) => {
    world.receiver.reset();
    const res = await world.post({ ...SEED_REQUEST, query });
    expect(res.status).toBe(200);
    expect(res.body.success).toBe(true);
    const id = res.body.conversation_id as string;
    expect(res.body.tracking).toMatchObject({ conversation_id: id, webhook_type: type, delivery_status: 'delivered' });
    expect(res.body.tracking.delivery_id).toMatch(/^[0-9a-f-]{36}$/);
    expect(typeof res.body.tracking.processing_time_ms).toBe('number');
    expect(res.body.response.response).toBe(`Answer to: ${query}`);

    expect(world.receiver.received).toHaveLength(1);
    const delivery = world.receiver.received[0]!;
    expect(delivery.path).toBe(`/hooks/${type}`);
    expect(delivery.headers['webhook-id']).toBe(res.body.tracking.delivery_id);
    expect(delivery.body).toMatchObject({
      conversation_id: id,
      delivery_id: res.body.tracking.delivery_id,
      webhook_type: type,
      query,
    });

    const keys = await world.listKeys(folderOf(id));
    expect(keys).toEqual(
      ['analysis.json', 'conversation.json', 'metadata.json', 'summary.json'].map((f) => `${folderOf(id)}${f}`),
    );
  });

  it("Export writes through the in-process transport; the embedded S3's HTTP endpoint serves the same objects", async () => {
    const handle = vi.spyOn(inProcessS3, 'handle');
    try {
      const res = await world.post(SEED_REQUEST);
      const id = res.body.conversation_id as string;
      const puts = handle.mock.calls.map(([request]) => `${request.method} ${decodeURIComponent(request.path)}`);
      expect(puts.sort()).toEqual(
        ['analysis.json', 'conversation.json', 'metadata.json', 'summary.json'].map(
          (f) => `PUT /${world.gateway.bucket}/${folderOf(id)}${f}`,
        ),
      );
      const summary = await world.getJson(`${folderOf(id)}summary.json`); // world.s3: the SDK over HTTP
      expect(summary).toMatchObject({ conversation_id: id, delivery_status: 'delivered' });
      // The SDK still checksums each PUT (the embedded S3 keeps the CRC32, as S3 does); what only matters for a request
      // sent out of the process is left out: no User-Agent (docs/performance.md §2, perf25).
      for (const [request] of handle.mock.calls) {
        expect(request.headers['x-amz-checksum-crc32']).toMatch(/^[A-Za-z0-9+/]{6}==$/);
        expect(request.headers['user-agent']).toBeUndefined();
        expect(request.headers['x-amz-user-agent']).toBeUndefined();
      }
    } finally {
      handle.mockRestore();
    }
  });

  it('passes the query to the manager agent named by MANAGER_AGENT_FUNCTION_NAME', async () => {
    world.agent.reset();
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(200);
    expect(world.agent.invocations).toHaveLength(1);
    expect(world.agent.invocations[0]).toMatchObject({
      functionName: 'test-manager-agent',
      request: {
        query: SEED_REQUEST.query,
        conversation_id: res.body.conversation_id,
        source_system: 'testing_system',
      },
    });
  });

  it('an explicit webhook_type in the request wins over the classifier', async () => {
    const res = await world.post({ ...SEED_REQUEST, webhook_type: 'lead_analysis' });
    expect(res.body.tracking.webhook_type).toBe('lead_analysis');
  });

  it('writes the four export files with the contract layout and fields', async () => {
    // The day the request was received: taken before and after it, so a request across midnight UTC passes too.
    const day = () => new Date().toISOString().slice(0, 10).replaceAll('-', '/');
    const dayBefore = day();
    const res = await world.post({ ...SEED_REQUEST, metadata: { crm_account: 'acme' } });
    const days = [dayBefore, day()];
    const id = res.body.conversation_id as string;
    expect(id).toMatch(/^webhook_\d{8}_\d{6}_testing_phase3valid_[a-z0-9]+$/);
    const folder = folderOf(id);
    expect(days.map((d) => `conversation-history/${d}/${id}/`)).toContain(folder);

    const conversation = await world.getJson(`${folder}conversation.json`);
    expect(conversation.export_metadata).toMatchObject({
      format: 'webhook_structured_json',
      version: '1.0',
      channel: 'webhook',
    });
    expect(conversation.conversation.webhook_context).toMatchObject({
      source_system: 'testing_system',
      source_process: 'phase3_validation',
      webhook_type: 'deal_analysis',
      delivery_status: 'delivered',
      delivery_id: res.body.tracking.delivery_id,
    });
    expect(conversation.conversation.metadata).toMatchObject({ conversation_id: id, custom: { crm_account: 'acme' } });
    expect(conversation.conversation.conversation.turns.map((t: { role: string }) => t.role)).toEqual([
      'user',
      'assistant',
    ]);
    expect(conversation.conversation.execution).toMatchObject({ status: 'completed' });
    expect(conversation.conversation.execution.delivery_attempts).toHaveLength(1);
    expect(conversation.conversation.execution.timings.total_ms).toBeGreaterThanOrEqual(0);

    const metadata = await world.getJson(`${folder}metadata.json`);
    expect(metadata.metadata).toMatchObject({
      conversation_id: id,
      webhook_type: 'deal_analysis',
      delivery_status: 'delivered',
    });
    expect(metadata.conversation).toBeUndefined();

    const summary = await world.getText(`${folder}summary.json`);
    expect(summary.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(summary)).toMatchObject({
      conversation_id: id,
      webhook_type: 'deal_analysis',
      delivery_status: 'delivered',
    });

    const analysis = await world.getJson(`${folder}analysis.json`);
    expect(analysis).toMatchObject({
      conversation_id: id,
      webhook_type: 'deal_analysis',
      query: SEED_REQUEST.query,
      delivery_attempt_count: 1,
    });
    for (const value of Object.values(analysis)) expect(typeof value === 'object' && value !== null).toBe(false);
    expect((await world.getText(`${folder}analysis.json`)).trimEnd().split('\n')).toHaveLength(1);

    // The lifecycle, in order, each event with the state that logged it and a time inside the conversation.
    const events = conversation.conversation.execution.events as { type: string; state: string; at: string }[];
    expect(events.map((e) => `${e.type} ${e.state}`)).toEqual([
      'WEBHOOK_REQUEST_RECEIVED Validate',
      'WEBHOOK_MANAGER_AGENT_INVOKED InvokeManagerAgent',
      'WEBHOOK_MANAGER_AGENT_RESPONSE InvokeManagerAgent',
      'WEBHOOK_RESPONSE_CLASSIFIED Classify',
      'WEBHOOK_OUTBOUND_QUEUED Classify',
      'WEBHOOK_DELIVERY_SUCCESS Deliver',
      'WEBHOOK_CONVERSATION_COMPLETED Export',
      'WEBHOOK_CONVERSATION_EXPORTED Export',
    ]);
    const times = events.map((e) => Date.parse(e.at));
    expect(times).toEqual([...times].sort((a, b) => a - b));
    expect(times[0]).toBe(Date.parse(conversation.conversation.metadata.received_at));
    expect(times.at(-1)).toBe(Date.parse(conversation.export_metadata.exported_at));
  });

  it('emits the nine event types with the fields the saved queries read, and the five metrics', async () => {
    const capture = captureJsonLines();
    let ok: { body: any };
    let failedDelivery: { body: any };
    try {
      ok = await world.post(SEED_REQUEST);
      world.receiver.reply(400);
      failedDelivery = await world.post(SEED_REQUEST);
    } finally {
      capture.restore();
    }
    const seen = new Set(
      [...capture.events(ok.body.conversation_id), ...capture.events(failedDelivery.body.conversation_id)].map(
        (e) => e.event_type,
      ),
    );
    expect([...seen].sort()).toEqual([...EVENT_TYPES].sort());
    const completed = capture
      .events(ok.body.conversation_id)
      .find((e) => e.event_type === 'WEBHOOK_CONVERSATION_COMPLETED')!;
    expect(completed).toMatchObject({
      conversation_id: ok.body.conversation_id,
      delivery_status: 'delivered',
      webhook_type: 'deal_analysis',
      webhook_metadata: {
        source_system: 'testing_system',
        source_process: 'phase3_validation',
        webhook_type: 'deal_analysis',
      },
    });
    expect(typeof completed.total_time_ms).toBe('number');
    // Export is not traced (infra/constructs/stage-function.ts): its log line times the four S3 PUTs instead.
    const exported = capture
      .events(ok.body.conversation_id)
      .find((e) => e.event_type === 'WEBHOOK_CONVERSATION_EXPORTED')!;
    expect(exported).toMatchObject({ files: 4, s3_location: expect.stringMatching(/^s3:\/\//) });
    expect(exported.s3_write_ms).toBeGreaterThanOrEqual(0);
    expect(exported.s3_write_ms).toBeLessThan(10_000);
    const metricNames = new Set(
      capture.metrics().flatMap((m) => m._aws.CloudWatchMetrics.flatMap((d: any) => d.Metrics.map((x: any) => x.Name))),
    );
    // (An attempt of another conversation running meanwhile may add Webhook.delivery_failed.)
    metricNames.delete('Webhook.delivery_failed');
    expect([...metricNames].sort()).toEqual(
      [...Object.values(METRIC_NAMES), 'Webhook.delivery_succeeded', 'Webhook.delivery_time_by_type'].sort(),
    );
    for (const m of capture.metrics()) expect(m._aws.CloudWatchMetrics[0].Namespace).toBe('RevOps/WebhookGateway');
    // The delivery's own metrics carry its webhook type as a dimension (one graph and alarm per receiver).
    const succeeded = capture.metrics().find((m) => m['Webhook.delivery_succeeded'] === 1);
    expect(succeeded).toMatchObject({ webhook_type: 'deal_analysis' });
    expect(succeeded!._aws.CloudWatchMetrics[0].Dimensions[0]).toEqual(
      expect.arrayContaining(['service', 'webhook_type']),
    );
  });

  it('saves the execution history, state by state, for conversations show', async () => {
    const res = await world.post(SEED_REQUEST);
    const executions = await world.gateway.executions.executions(res.body.conversation_id);
    expect(executions).toHaveLength(1);
    const entered = executions[0]!.events.filter((e) => e.type === 'StateEntered').map((e) => e.state);
    expect(entered).toEqual(['Validate', 'IsRequestValid', 'InvokeManagerAgent', 'Classify', 'Deliver', 'Export']);
    // Export ends the workflow with the caller's response as its output; the history keeps what its task returned
    // (the closed record), as Express logs it in the LambdaFunctionSucceeded event.
    const exported = executions[0]!.events.find((e) => e.type === 'StateExited' && e.state === 'Export')!;
    expect(exported.output).toEqual(res.body);
    expect(exported.result).toMatchObject({
      conversation: { conversation_id: res.body.conversation_id, execution: { status: 'completed' } },
      response: res.body,
    });
    expect(executions[0]!.output).toEqual(res.body);
  });

  it("the history's states carry the record without its defaults; conversation.json and conversations show have it whole", async () => {
    const res = await world.post(SEED_REQUEST);
    const id = res.body.conversation_id as string;
    const [execution] = await world.gateway.executions.executions(id);
    const deliverIn = execution!.events.find((e) => e.type === 'StateEntered' && e.state === 'Deliver')!.input as {
      conversation: { metadata: object; webhook_context: object; execution: object };
    };
    // Left out of every state (docs/performance.md §4): what repeats another field or holds its default.
    for (const key of ['conversation_id', 'channel', 'idempotency_key', 'thread_id', 'response_mode'])
      expect(deliverIn.conversation.metadata).not.toHaveProperty(key);
    for (const key of ['source_system', 'requested_webhook_type', 'delivery_target'])
      expect(deliverIn.conversation.webhook_context).not.toHaveProperty(key);
    for (const key of ['started_at', 'completed_at', 'errors', 'executions'])
      expect(deliverIn.conversation.execution).not.toHaveProperty(key);
    expect(deliverIn).not.toHaveProperty('valid');
    const exported = recordFromExport(JSON.parse(await world.getText(`${folderOf(id)}conversation.json`)))!;
    expect(exported.metadata).toMatchObject({ conversation_id: id, channel: 'webhook', idempotency_key: null });
    expect(exported.webhook_context).toMatchObject({ source_system: 'testing_system', requested_webhook_type: null });
    const shown = latestRecord([execution!])!;
    expect(shown.metadata).toEqual(exported.metadata);
    expect(shown.webhook_context).toEqual(exported.webhook_context);
    expect(shown.execution.started_at).toBe(exported.execution.started_at);
  });

  it('ENABLE_CONVERSATION_EXPORT=false still answers but writes nothing', async () => {
    process.env.ENABLE_CONVERSATION_EXPORT = 'false';
    try {
      const res = await world.post(SEED_REQUEST);
      expect(res.status).toBe(200);
      expect(await world.listKeys(folderOf(res.body.conversation_id))).toEqual([]);
      // `conversations show` says so instead of pointing at exports that do not exist.
      const shown = await runMain(['conversations', 'show', res.body.conversation_id], {
        LOCAL_DATA_DIR: world.dataDir,
      });
      expect(shown.stdout).toContain('exports    none: exports are off (ENABLE_CONVERSATION_EXPORT=false)');
      expect(shown.stdout).not.toContain('s3://');
    } finally {
      delete process.env.ENABLE_CONVERSATION_EXPORT;
    }
  });

  it('gives every conversation its own id under concurrency', async () => {
    const results = await Promise.all(Array.from({ length: 25 }, () => world.post(SEED_REQUEST)));
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(new Set(results.map((r) => r.body.conversation_id)).size).toBe(25);
    expect(new Set(results.map((r) => r.body.tracking.delivery_id)).size).toBe(25);
  });
});
