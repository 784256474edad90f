import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { REDELIVERY_LIMIT_MS, SYNC_RESERVES } from '../../../functions/domain/budget.ts';
import type { ConversationRecord, ConversationState } from '../../../functions/domain/conversation.ts';
import { IDEMPOTENCY_KEY_LOST_EVENT, THREAD_TURN_UNSAVED_EVENT } from '../../../functions/domain/observability.ts';
import type { ExportInput, ExportOutput } from '../../../functions/export/handler.ts';
import { deliveredRecord, SEED_REQUEST, startedRecord } from '../../support/fixtures.ts';
import { captureJsonLines } from '../../support/log-capture.ts';
import { type S3Stub, type SilentEndpoint, startS3Stub, startSilentEndpoint } from '../../support/servers.ts';
import { settledAndRead } from '../../support/settled-within.ts';

/**
 * Export with a caller waiting (docs/deploy.md, "Timeouts"): its AWS calls end by the conversation's budget, not
 * only by the clients' own limits (a stalled call fails after ≈ 6.2 s, functions/shared/clients/request-limits.ts),
 * so a stall late in the conversation never holds the answer past answer_by. Real clients and sockets: DynamoDB is
 * an endpoint that never answers, S3 one that takes every PUT at once. The budget is set a few hundred ms ahead.
 * Export reads the time left on a clock that stands still at the moment the state was made, so that whether it still
 * writes to S3 does not depend on how busy the machine is; the cuts are the real signals, and a cut call shows as an
 * AbortError or a `deadline` reason (the clients' own limits fail with a TimeoutError, after ≈ 6.2 s). A run still
 * going at BOUND_MS, short of those limits, is reported as such instead of being waited for.
 */
const BOUND_MS = 5_000;

let dynamo: SilentEndpoint;
let s3: S3Stub;
let handler: (input: ExportInput) => Promise<ExportOutput>;
let logs: ReturnType<typeof captureJsonLines>;

beforeAll(async () => {
  dynamo = await startSilentEndpoint();
  s3 = await startS3Stub();
  process.env.AWS_ENDPOINT_URL_DYNAMODB = dynamo.url;
  process.env.AWS_ENDPOINT_URL_S3 = s3.url;
  process.env.S3_FORCE_PATH_STYLE = 'true';
  process.env.CONVERSATION_EXPORT_S3_BUCKET = 'exports';
  // The S3 client is built when its module loads: after the endpoint is set.
  const { exportOn } = await import('../../../functions/export/handler.ts');
  handler = exportOn(() => madeAt);
  // Warm, as a container is after its first conversation: the DynamoDB SDK loaded (on first use) and the S3 client's
  // first request made. On a busy machine either takes longer than the few hundred ms each test leaves the PUTs.
  await (await import('../../../functions/shared/clients/dynamodb.ts')).dynamoDb();
  const { s3: client } = await import('../../../functions/shared/clients/s3.ts');
  const { PutObjectCommand } = await import('@aws-sdk/client-s3');
  await client.send(new PutObjectCommand({ Bucket: 'exports', Key: 'warm-up', Body: '{}' }));
});
afterAll(async () => {
  await dynamo.close();
  await s3.close();
  for (const name of ['AWS_ENDPOINT_URL_DYNAMODB', 'AWS_ENDPOINT_URL_S3', 'S3_FORCE_PATH_STYLE'])
    delete process.env[name];
  delete process.env.CONVERSATION_EXPORT_S3_BUCKET;
});
beforeEach(() => {
  dynamo.requests.length = 0;
  s3.keys.length = 0;
  logs = captureJsonLines();
});
afterEach(() => {
  logs.restore();
  for (const name of ['DELIVERIES_TABLE_NAME', 'IDEMPOTENCY_TABLE_NAME', 'THREAD_TABLE_NAME']) delete process.env[name];
  delete process.env.ENABLE_CONVERSATION_EXPORT;
});

const KEY = 'deadline-key';
/** An answered, delivered conversation of a thread, with an Idempotency-Key. */
function delivered(): ConversationRecord {
  const started = startedRecord(SEED_REQUEST, {
    input: { headers: { 'content-type': 'application/json', 'idempotency-key': KEY } },
  });
  const record = deliveredRecord(started);
  return { ...record, metadata: { ...record.metadata, thread_id: 'thread-1', thread_turn: 2 } };
}

/** Export's clock: the moment the state was made (dueIn). */
let madeAt = 0;

/** The state of a synchronous conversation whose answer is due `answerInMs` from now. */
function dueIn(answerInMs: number, extra: Partial<ConversationState> = {}): ConversationState {
  madeAt = Date.now();
  const answerBy = madeAt + answerInMs;
  return {
    conversation: delivered(),
    budget: {
      agent_seconds: 20,
      deliver_by: new Date(answerBy - SYNC_RESERVES.tail).toISOString(),
      answer_by: new Date(answerBy).toISOString(),
    },
    ...extra,
  };
}

/** How the run ended, and what it sent DynamoDB; one still running after BOUND_MS is not waited for. */
const settled = (run: Promise<ExportOutput>) => settledAndRead(run, BOUND_MS, dynamo);

describe('Export with a caller waiting, against a DynamoDB that never answers', () => {
  it('cuts the attempt-log read so that S3 keeps its time: the export is written (short attempts), the PUTs given the time to answer_by − 2 s', async () => {
    process.env.DELIVERIES_TABLE_NAME = 'deliveries';
    // The S3 work ends at answer_by − 2 s; the read leaves the PUTs 600 ms of it: it gets 400 ms here.
    const state = dueIn(SYNC_RESERVES.fallback + 400 + 600);

    const run = await settled(handler({ state, execution_name: 'e1' }));

    expect(run.still, 'still waiting for the attempt log long after the S3 deadline').toBeUndefined();
    expect(run.error).toBeUndefined();
    expect(run.output?.response).toMatchObject({ success: true });
    // The read was made (a Query of the attempt log), then cut; the four documents were written anyway.
    expect(dynamo.requests.map((r) => r.target)).toEqual(['DynamoDB_20120810.Query']);
    expect(s3.keys).toHaveLength(4);
    const conversation = JSON.parse(JSON.stringify(run.output?.conversation)) as ConversationRecord;
    expect(conversation.execution.delivery_attempts).toHaveLength(1);
    expect(logs.lines.find((l) => /attempt log could not be read/.test(l.message))).toMatchObject({
      level: 'WARN',
      error: expect.stringMatching(/^AbortError/),
    });
  });

  it('answers by answer_by when the idempotency key and the thread turn cannot be written: both are logged', async () => {
    process.env.ENABLE_CONVERSATION_EXPORT = 'false';
    process.env.IDEMPOTENCY_TABLE_NAME = 'idempotency';
    process.env.THREAD_TABLE_NAME = 'threads';
    const state = dueIn(500);

    const run = await settled(handler({ state, execution_name: 'e2' }));

    expect(run.still, 'still waiting for DynamoDB long after answer_by').toBeUndefined();
    expect(run.error).toBeUndefined();
    expect(run.output?.response).toMatchObject({ success: true, conversation_id: state.conversation.conversation_id });
    // The key's write took the time up to answer_by: the turn's was not even sent.
    expect(dynamo.requests.map((r) => r.target)).toEqual(['DynamoDB_20120810.UpdateItem']);
    const events = logs.events(state.conversation.conversation_id);
    expect(events.filter((e) => e.event_type === IDEMPOTENCY_KEY_LOST_EVENT)).toEqual([
      expect.objectContaining({ level: 'WARN', action: 'complete', reason: 'deadline' }),
    ]);
    expect(events.filter((e) => e.event_type === THREAD_TURN_UNSAVED_EVENT)).toEqual([
      expect.objectContaining({ thread_turn: 2, error: expect.stringMatching(/^AbortError/) }),
    ]);
  });

  it('S3 refused: the closing run leaves QueueFailedExport its reserve before answer_by', async () => {
    process.env.IDEMPOTENCY_TABLE_NAME = 'idempotency';
    const state = dueIn(SYNC_RESERVES.queue + 400, {
      export_error: { Error: 'ExportDeadlineError', Cause: 'no time left to write s3://exports/…' },
    });

    const run = await settled(handler({ state, execution_name: 'e3' }));

    expect(run.still, 'still waiting for DynamoDB long after the queue’s reserve began').toBeUndefined();
    expect(run.error).toBeUndefined();
    // Answered, and still carrying export_error: QueueFailedExport queues the record next.
    expect(run.output).toMatchObject({ export_error: state.export_error, response: { success: true } });
    expect(s3.keys).toEqual([]);
    expect(
      logs.events(state.conversation.conversation_id).filter((e) => e.event_type === IDEMPOTENCY_KEY_LOST_EVENT),
    ).toEqual([expect.objectContaining({ action: 'complete', reason: 'deadline' })]);
  });

  it('after an agent failure, a key that cannot be freed by answer_by is left to lapse: the failure is answered', async () => {
    process.env.ENABLE_CONVERSATION_EXPORT = 'false';
    process.env.IDEMPOTENCY_TABLE_NAME = 'idempotency';
    const started = startedRecord(SEED_REQUEST, {
      input: { headers: { 'content-type': 'application/json', 'idempotency-key': KEY } },
    });
    const state = dueIn(400, {
      conversation: started,
      agent_error: { Error: 'States.Timeout', Cause: 'the agent did not answer' },
    });

    const run = await settled(handler({ state, execution_name: 'e4' }));

    expect(run.still, 'still waiting for DynamoDB long after answer_by').toBeUndefined();
    expect(run.output?.failure_error).toBeDefined();
    expect(dynamo.requests.map((r) => r.target)).toEqual(['DynamoDB_20120810.DeleteItem']);
    expect(logs.events(started.conversation_id).filter((e) => e.event_type === IDEMPOTENCY_KEY_LOST_EVENT)).toEqual([
      expect.objectContaining({ action: 'release', reason: 'deadline' }),
    ]);
  });
});

/**
 * A redelivery's run started `ago` ms before Export's clock (its state's started_at: $$.Execution.StartTime of
 * statemachine/redelivery.asl.json); no caller waits, but the run ends at REDELIVERY_LIMIT_MS.
 */
function redeliveryStartedAgo(ago: number, extra: Partial<ConversationState> = {}) {
  madeAt = Date.now();
  const state: ConversationState = {
    conversation: delivered(),
    redelivery: { via: 'schedule', status_if_failed: 'retrying' },
    ...extra,
  };
  return { state, started_at: new Date(madeAt - ago).toISOString() };
}
/** How long after a redelivery run's start its Export's S3 work and its closing run's writes must end (ms). */
const REDELIVERY_S3_BY = REDELIVERY_LIMIT_MS - SYNC_RESERVES.margin - SYNC_RESERVES.fallback;
const REDELIVERY_CLOSE_BY = REDELIVERY_LIMIT_MS - SYNC_RESERVES.margin - SYNC_RESERVES.queue;

describe('a redelivery’s Export counts down to its run’s end (docs/deploy.md, "Timeouts")', () => {
  it('with too little left before the run’s S3 deadline, nothing is written: ExportDeadlineError, to CloseWithoutExport', async () => {
    // Before: a redelivery had no deadline but its Lambda's 30 s, and a Deliver of 29 s then an Export of 30 s (and
    // its retry, and CloseWithoutExport's) ran past the workflow's 60 s: TIMED_OUT, a failed run, delivered again.
    const { state, started_at } = redeliveryStartedAgo(REDELIVERY_S3_BY - 200);

    const run = await settled(handler({ state, execution_name: 'r1', started_at }));

    expect(run.error?.name).toBe('ExportDeadlineError');
    expect(run.error?.message).toMatch(
      /before this redelivery run's deadline, its workflow's TimeoutSeconds less 1 s \(/,
    );
    expect(s3.keys).toEqual([]);
  });

  it('with time left, the export is written; without started_at (an older definition), as before: no deadline', async () => {
    for (const started of [true, false]) {
      s3.keys.length = 0;
      const { state, started_at } = redeliveryStartedAgo(1_000);
      const run = await settled(handler({ state, execution_name: 'r2', ...(started ? { started_at } : {}) }));
      expect(run.error, String(started)).toBeUndefined();
      expect(s3.keys, String(started)).toHaveLength(4);
    }
  });

  it('the closing run’s writes after S3 refused end by the run’s end less 1.5 s: the thread turn is logged unsaved', async () => {
    process.env.THREAD_TABLE_NAME = 'threads';
    const { state, started_at } = redeliveryStartedAgo(REDELIVERY_CLOSE_BY - 400, {
      export_error: { Error: 'ExportDeadlineError', Cause: 'no time left to write s3://exports/…' },
    });

    const run = await settled(handler({ state, execution_name: 'r3', started_at }));

    expect(run.still, 'still waiting for DynamoDB past the redelivery run’s end').toBeUndefined();
    expect(run.output).toMatchObject({ export_error: state.export_error });
    expect(dynamo.requests.map((r) => r.target)).toEqual(['DynamoDB_20120810.PutItem']);
    expect(
      logs.events(state.conversation.conversation_id).filter((e) => e.event_type === THREAD_TURN_UNSAVED_EVENT),
    ).toEqual([expect.objectContaining({ thread_turn: 2, error: expect.stringMatching(/^AbortError/) })]);
  });
});
