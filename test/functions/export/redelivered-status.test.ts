import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DynamoDBClient, GetItemCommand, UpdateItemCommand } from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { ConversationRecord, ConversationState, DeliveryStatus } from '../../../functions/domain/conversation.ts';
import { runningStatus, statusResult } from '../../../functions/domain/conversation-status.ts';
import { withDeliveryAttempt } from '../../../functions/domain/lifecycle.ts';
import { exportOn } from '../../../functions/export/handler.ts';
import { conversationStatusStore } from '../../../functions/shared/conversation-status-store.ts';
import { deliveredRecord, startedRecord } from '../../support/fixtures.ts';

/**
 * docs/contract.md#get-conversationsid: a conversation whose first delivery failed shows, once a redelivery (the
 * schedule, a redrive, a resend) re-exported it, the delivery as it is now in the first answer's body — delivered,
 * or failed for good — never a late report over a newer one, never `delivered` turned back; a conversation without a
 * status record (synchronous, or expired) gets none. S3 is left out (ENABLE_CONVERSATION_EXPORT=false).
 */
const T0 = new Date('2026-12-01T10:00:00Z');
const at = (minutes: number) => new Date(T0.getTime() + minutes * 60_000);

function asyncRecord(): ConversationRecord {
  const started = startedRecord();
  return { ...started, metadata: { ...started.metadata, response_mode: 'async' } };
}
const ID = asyncRecord().conversation_id;

/** The record after an attempt at `minutes`, leaving `status`. */
function attempted(record: ConversationRecord, n: number, minutes: number, status: DeliveryStatus) {
  const outcome = status === 'delivered' ? 'delivered' : 'retryable';
  const attempt = { attempt: n, at: at(minutes).toISOString(), duration_ms: 40, outcome, status_code: 503 } as const;
  return withDeliveryAttempt(record, attempt, 'https://hooks.example.com/deals', status);
}

const firstRun = (record: ConversationRecord) => ({ conversation: record }) as ConversationState;
const redelivery = (record: ConversationRecord) =>
  ({ conversation: record, redelivery: { via: 'schedule', status_if_failed: 'retrying' } }) as ConversationState;

async function exportAt(state: ConversationState, minutes: number) {
  return exportOn(() => at(minutes).getTime())({ state, execution_name: `e-${minutes}` });
}

async function shownDelivery(now = at(1)): Promise<unknown> {
  const record = await conversationStatusStore()!.get(ID);
  const body = statusResult(record, ID, 'testing_system', now).body as { tracking?: { delivery_status: string } };
  return body.tracking?.delivery_status;
}

describe('a redelivery updates the status of an asynchronous conversation (local files)', () => {
  let dir: string;
  const saved = { ...process.env };
  beforeEach(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'status-'));
    process.env.STATUS_DIR = dir;
    delete process.env.STATUS_TABLE_NAME;
    process.env.ENABLE_CONVERSATION_EXPORT = 'false';
  });
  afterEach(async () => {
    process.env = { ...saved };
    await rm(dir, { recursive: true, force: true });
  });

  const answered = deliveredRecord(asyncRecord(), T0);
  const failedFirst = attempted(
    { ...answered, execution: { ...answered.execution, delivery_attempts: [] } },
    1,
    0,
    'retrying',
  );

  it('shows retrying after the first delivery failed, delivered once the schedule delivered it', async () => {
    await conversationStatusStore()!.accept(runningStatus(ID, 'testing_system', T0));
    await exportAt(firstRun(failedFirst), 0);
    expect(await shownDelivery()).toBe('retrying');
    await exportAt(redelivery(attempted(failedFirst, 2, 10, 'delivered')), 10);
    expect(await shownDelivery()).toBe('delivered');
    const body = statusResult(await conversationStatusStore()!.get(ID), ID, 'testing_system', at(11)).body;
    // The first answer's body is kept; the delivery is as it is now.
    expect(body).toMatchObject({ status: 'completed', delivery_updated_at: at(10).toISOString() });
    expect(body).toMatchObject({
      response: expect.anything(),
      tracking: { delivery_id: answered.webhook_context.delivery_id },
    });
  });

  it('a late report (an older attempt) never turns delivered back into retrying', async () => {
    await conversationStatusStore()!.accept(runningStatus(ID, 'testing_system', T0));
    await exportAt(firstRun(failedFirst), 0);
    await exportAt(redelivery(attempted(failedFirst, 3, 20, 'delivered')), 20);
    await exportAt(redelivery(attempted(failedFirst, 2, 10, 'retrying')), 21);
    expect(await shownDelivery()).toBe('delivered');
  });

  it('shows failed when the last scheduled attempt failed', async () => {
    await conversationStatusStore()!.accept(runningStatus(ID, 'testing_system', T0));
    await exportAt(firstRun(failedFirst), 0);
    await exportAt(redelivery(attempted(failedFirst, 2, 10, 'failed')), 10);
    expect(await shownDelivery()).toBe('failed');
  });

  it('creates no status for a conversation that has none (synchronous, or expired and deleted)', async () => {
    await exportAt(redelivery(attempted(failedFirst, 2, 10, 'delivered')), 10);
    expect(await readdir(dir)).toEqual([]);
  });

  it('leaves an expired status as it was', async () => {
    await conversationStatusStore()!.accept({ ...runningStatus(ID, 'testing_system', T0), expires_at: 0 });
    await conversationStatusStore()!.finish(ID, { status: 'completed', completed_at: T0.toISOString(), body: '{}' });
    await exportAt(redelivery(attempted(failedFirst, 2, 10, 'delivered')), 10);
    expect(await conversationStatusStore()!.get(ID)).not.toHaveProperty('delivery_status');
  });
});

describe('a redelivery updates the status of an asynchronous conversation (DynamoDB, mocked)', () => {
  const dynamo = mockClient(DynamoDBClient);
  const saved = { ...process.env };
  beforeEach(() => {
    dynamo.reset();
    process.env.STATUS_TABLE_NAME = 'statuses';
    delete process.env.STATUS_DIR;
    process.env.ENABLE_CONVERSATION_EXPORT = 'false';
  });
  afterEach(() => {
    process.env = { ...saved };
  });

  const answered = deliveredRecord(asyncRecord(), T0);

  it('writes the delivery status conditionally: a completed, unexpired record, not delivered, no newer report', async () => {
    const conditionFailed = Object.assign(new Error('The conditional request failed'), {
      name: 'ConditionalCheckFailedException',
    });
    // finish: the record is no longer running.
    dynamo.on(UpdateItemCommand).rejectsOnce(conditionFailed).resolves({});
    await exportAt(redelivery(attempted(answered, 2, 10, 'delivered')), 10);
    const [, write] = dynamo.commandCalls(UpdateItemCommand);
    expect(write!.args[0].input).toMatchObject({
      TableName: 'statuses',
      Key: { conversation_id: { S: ID } },
      UpdateExpression: 'SET #d = :delivery, #du = :at',
      ConditionExpression:
        '#s = :completed AND expires_at > :now AND (attribute_not_exists(#d) OR #d <> :delivered) AND (attribute_not_exists(#du) OR #du <= :at)',
      ExpressionAttributeValues: {
        ':delivery': { S: 'delivered' },
        ':at': { S: at(10).toISOString() },
        ':completed': { S: 'completed' },
        ':delivered': { S: 'delivered' },
        ':now': { N: String(Math.floor(at(10).getTime() / 1000)) },
      },
    });
  });

  it('a refused write (no record, expired, delivered, newer) is no error: the redelivery goes on', async () => {
    const conditionFailed = Object.assign(new Error('The conditional request failed'), {
      name: 'ConditionalCheckFailedException',
    });
    dynamo.on(UpdateItemCommand).rejects(conditionFailed);
    await expect(exportAt(redelivery(attempted(answered, 2, 10, 'retrying')), 10)).resolves.toBeDefined();
    expect(dynamo.commandCalls(UpdateItemCommand)).toHaveLength(2);
  });

  it('the status route shows the redelivered status over the first body, and delivered stays', async () => {
    const body = (first: string, later: string) => ({
      Item: {
        conversation_id: { S: ID },
        source_system: { S: 'testing_system' },
        status: { S: 'completed' },
        accepted_at: { S: T0.toISOString() },
        completed_at: { S: T0.toISOString() },
        body: { S: JSON.stringify({ success: true, tracking: { delivery_status: first } }) },
        delivery_status: { S: later },
        delivery_updated_at: { S: at(10).toISOString() },
        expires_at: { N: String(Math.floor(at(60 * 24).getTime() / 1000)) },
      },
    });
    const shown = async () => {
      const record = await conversationStatusStore()!.get(ID);
      return (statusResult(record, ID, 'testing_system', at(11)).body as { tracking: unknown }).tracking;
    };
    dynamo.on(GetItemCommand).resolves(body('retrying', 'delivered'));
    expect(await shown()).toEqual({ delivery_status: 'delivered' });
    dynamo.on(GetItemCommand).resolves(body('delivered', 'retrying'));
    expect(await shown()).toEqual({ delivery_status: 'delivered' });
  });
});
