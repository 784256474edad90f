import type { Context } from 'aws-lambda';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ConversationRecord, ConversationState } from '../../../functions/domain/conversation.ts';
import { IDEMPOTENCY_KEY_LOST_EVENT } from '../../../functions/domain/observability.ts';
import { LAMBDA_RETURN_MS, LAMBDA_TAIL_MS } from '../../../functions/shared/clients/request-limits.ts';
import { deliveredRecord, SEED_REQUEST, startedRecord } from '../../support/fixtures.ts';
import { captureJsonLines } from '../../support/log-capture.ts';
import { type SilentEndpoint, startSilentEndpoint } from '../../support/servers.ts';
import { settledAndRead } from '../../support/settled-within.ts';

/**
 * Export with nobody waiting (an asynchronous conversation, a redelivery: no answer_by) against an S3 and a DynamoDB
 * that never answer (docs/deploy.md, "Timeouts"). The clients' own limits fail a stalled call after ≈ 6.2 s, at
 * worst ≈ 12.2 s, and Export makes several in a row (the attempt log, the four PUTs, the key, the thread turn, the
 * status): past its Lambda's 30 s, the run was killed (Sandbox.Timedout) with no word of what was slow. Its calls now
 * end before the Lambda's timeout (its context's getRemainingTimeInMillis): the S3 work LAMBDA_TAIL_MS before it,
 * failing the run with an ExportError that says so (retried once, then closed without S3 and queued), the writes
 * after S3 LAMBDA_RETURN_MS before it. The Lambda here has 1.5 s beyond its tail (with 400 ms, a loaded machine took
 * that long to send the first call, which the deadline then cut before it was sent); a run still going at BOUND_MS
 * (short of the clients' own limits) is reported as such instead of waited for.
 */
const BOUND_MS = 5_000;
const BEYOND_TAIL_MS = 1_500;

let silent: SilentEndpoint;
let handler: (input: { state: ConversationState; execution_name: string }, context?: Context) => Promise<unknown>;
let logs: ReturnType<typeof captureJsonLines>;

beforeAll(async () => {
  silent = await startSilentEndpoint();
  process.env.AWS_ENDPOINT_URL_DYNAMODB = silent.url;
  process.env.AWS_ENDPOINT_URL_S3 = silent.url;
  process.env.S3_FORCE_PATH_STYLE = 'true';
  process.env.CONVERSATION_EXPORT_S3_BUCKET = 'exports';
  // The S3 client is built when its module loads: after the endpoint is set.
  ({ handler } = await import('../../../functions/export/handler.ts'));
  await (await import('../../../functions/shared/clients/dynamodb.ts')).dynamoDb();
});
afterAll(async () => {
  await silent.close();
  for (const name of ['AWS_ENDPOINT_URL_DYNAMODB', 'AWS_ENDPOINT_URL_S3', 'S3_FORCE_PATH_STYLE'])
    delete process.env[name];
  delete process.env.CONVERSATION_EXPORT_S3_BUCKET;
});
beforeEach(() => {
  silent.requests.length = 0;
  logs = captureJsonLines();
});
afterEach(() => {
  logs.restore();
  for (const name of ['IDEMPOTENCY_TABLE_NAME', 'STATUS_TABLE_NAME', 'ENABLE_CONVERSATION_EXPORT'])
    delete process.env[name];
});

/** An answered, delivered asynchronous conversation with an Idempotency-Key. */
function asyncDelivered(): ConversationRecord {
  const started = startedRecord(SEED_REQUEST, {
    input: { headers: { 'content-type': 'application/json', 'idempotency-key': 'lambda-key' } },
  });
  const record = deliveredRecord(started);
  return { ...record, metadata: { ...record.metadata, response_mode: 'async' } };
}
const state = (): ConversationState => ({
  conversation: asyncDelivered(),
  budget: { agent_seconds: 120, deliver_by: null, answer_by: null },
});
/** The Lambda's context, `ms` before its timeout. */
const lambdaWith = (ms: number) => ({ getRemainingTimeInMillis: () => ms }) as Context;

/** How the run ended, and what it sent the stalled endpoint. */
const settled = (run: Promise<unknown>) => settledAndRead(run, BOUND_MS, silent);

describe('Export with nobody waiting, before its own Lambda’s timeout', () => {
  it('an S3 that does not answer fails the run with an ExportError naming the cut, not the Lambda’s timeout', async () => {
    const run = await settled(
      handler({ state: state(), execution_name: 'e1' }, lambdaWith(LAMBDA_TAIL_MS + BEYOND_TAIL_MS)),
    );

    expect(run.still, 'still waiting for S3 past the Lambda’s timeout').toBeUndefined();
    // ExportError: the state retries it once, then CloseWithoutExport and QueueFailedExport keep the record.
    expect(run.error?.name).toBe('ExportError');
    expect(run.error?.message).toMatch(
      new RegExp(
        `^writing s3://exports/conversation-history/.* did not end ${LAMBDA_TAIL_MS} ms before this Export Lambda's timeout .*, cut: AbortError`,
      ),
    );
  });

  it('a DynamoDB that does not answer after S3: the key is logged lost, and the status write ends before the timeout', async () => {
    process.env.ENABLE_CONVERSATION_EXPORT = 'false';
    process.env.IDEMPOTENCY_TABLE_NAME = 'idempotency';
    process.env.STATUS_TABLE_NAME = 'statuses';
    const conversation = state();

    const run = await settled(
      handler({ state: conversation, execution_name: 'e2' }, lambdaWith(LAMBDA_RETURN_MS + BEYOND_TAIL_MS)),
    );

    expect(run.still, 'still waiting for DynamoDB past the Lambda’s timeout').toBeUndefined();
    // The key's write took the time; the status write, cut at once, fails the run into CloseWithoutExport, which
    // writes it again (a run killed by the timeout went there too, without saying why).
    expect(run.error?.name).toBe('AbortError');
    expect(silent.requests.map((r) => r.target)).toEqual(['DynamoDB_20120810.UpdateItem']);
    expect(
      logs.events(conversation.conversation.conversation_id).filter((e) => e.event_type === IDEMPOTENCY_KEY_LOST_EVENT),
    ).toEqual([expect.objectContaining({ action: 'complete', reason: 'deadline' })]);
  });
});
