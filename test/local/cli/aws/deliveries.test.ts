import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { DynamoDBClient, GetItemCommand, PutItemCommand, QueryCommand } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, NoSuchKey, S3Client } from '@aws-sdk/client-s3';
import { SFNClient, StartSyncExecutionCommand } from '@aws-sdk/client-sfn';
import {
  ChangeMessageVisibilityBatchCommand,
  ChangeMessageVisibilityCommand,
  DeleteMessageCommand,
  GetQueueAttributesCommand,
  type Message,
  ReceiveMessageCommand,
  SendMessageCommand,
  SQSClient,
} from '@aws-sdk/client-sqs';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import { exportKey, structuredJson } from '../../../../functions/domain/export-formats.ts';
import type { FailedDeliveryEnvelope } from '../../../../functions/domain/failed-delivery.ts';
import { closeConversation } from '../../../../functions/domain/lifecycle.ts';
import { DynamoRedeliveryClaims, REDELIVERY_CLAIM_MS } from '../../../../functions/shared/redelivery-claim.ts';
import { awsDeliveriesList, awsDeliveriesRedrive, awsDeliveriesResend } from '../../../../local/cli/aws/deliveries.ts';
import { AWS_STACK_OUTPUTS, createAwsClients, withAws } from '../../../../local/cli/aws/stack.ts';
import { deliveriesList, deliveriesRedrive } from '../../../../local/cli/deliveries.ts';
import { main } from '../../../../local/cli/main.ts';
import { PROJECT_ROOT } from '../../../../local/paths.ts';
import { LocalFailedDeliveryStore } from '../../../../local/store/failed-delivery-store.ts';
import {
  afterAttempt,
  DLQ_URL,
  deadEnvelope,
  pendingEnvelope,
  QUEUE_URL,
  STATE_MACHINE_ARN,
  sqsMessage,
  succeeded,
  T0,
} from '../../../support/aws-fixtures.ts';
import { captureOutput, runMain } from '../../../support/cli.ts';
import { dynamoTables } from '../../../support/dynamodb-tables.ts';

/**
 * `deliveries list|redrive --aws`, called as functions with mocked AWS clients (never real AWS): the dead-letter
 * queue is what an operator sees and redrives; the schedule's queue is only counted.
 */
const cfnMock = mockClient(CloudFormationClient);
const sqsMock = mockClient(SQSClient);
const sfnMock = mockClient(SFNClient);
const dynamoMock = mockClient(DynamoDBClient);
const s3Mock = mockClient(S3Client);
const STACK = 'WebhookConversationGateway';
const TABLE = 'WebhookConversationGateway-deliveries';
const BUCKET = 'prod-exports';
let lines: string[];
const out = (line: string) => lines.push(line);
const clients = () => createAwsClients('us-east-1');

function stackWith(outputs: Record<string, string>) {
  cfnMock.on(DescribeStacksCommand).resolves({
    Stacks: [
      {
        StackName: STACK,
        CreationTime: T0,
        StackStatus: 'CREATE_COMPLETE',
        Outputs: Object.entries(outputs).map(([OutputKey, OutputValue]) => ({ OutputKey, OutputValue })),
      },
    ],
  });
}

/** The dead-letter queue holds these messages: each receive returns them again until they are held (as SQS would, roughly). */
function deadLetters(...messages: Message[]) {
  const receive = sqsMock.on(ReceiveMessageCommand, { QueueUrl: DLQ_URL });
  for (let i = 0; i < messages.length; i += 10) receive.resolvesOnce({ Messages: messages.slice(i, i + 10) });
  receive.resolves({});
}

/** The outputs of the stack the tests read (set before each; a test may set others). */
const STACK_OUTPUTS = {
  FailedDeliveryQueueUrl: QUEUE_URL,
  FailedDeliveryDeadLetterQueueUrl: DLQ_URL,
  RedeliveryStateMachineArn: STATE_MACHINE_ARN,
  DeliveriesTableName: TABLE,
  ExportBucketName: BUCKET,
};

beforeEach(() => {
  cfnMock.reset();
  sqsMock.reset();
  sfnMock.reset();
  dynamoMock.reset();
  s3Mock.reset();
  lines = [];
  stackWith(STACK_OUTPUTS);
  // What a redrive reads first: no attempt logged since, no export yet (each test says otherwise).
  dynamoMock.on(QueryCommand).resolves({ Items: [] });
  s3Mock.on(GetObjectCommand).rejects(new NoSuchKey({ message: 'The specified key does not exist.', $metadata: {} }));
  sqsMock.on(GetQueueAttributesCommand, { QueueUrl: QUEUE_URL }).resolves({
    Attributes: {
      ApproximateNumberOfMessages: '2',
      ApproximateNumberOfMessagesNotVisible: '3',
      ApproximateNumberOfMessagesDelayed: '1',
    },
  });
  sqsMock.on(SendMessageCommand).resolves({ MessageId: 'new' });
});

const changes = () =>
  sqsMock.calls().filter((c) => c.args[0] instanceof SendMessageCommand || c.args[0] instanceof DeleteMessageCommand);
const released = () =>
  sqsMock
    .commandCalls(ChangeMessageVisibilityBatchCommand)
    .flatMap((c) => c.args[0].input.Entries!.map((e) => e.ReceiptHandle));

/**
 * The attempt log's items of a conversation whose envelope carries attempt 1 while the log has 1 and 2 (Lambda refused
 * a retry of the workflow's Deliver, or failed it after it ran): a second try the envelope never had.
 */
function loggedTries(envelope: FailedDeliveryEnvelope) {
  const first = envelope.attempts[0]!;
  const second = { ...first, attempt: 2, at: new Date(Date.parse(first.at) + 1_000).toISOString() };
  return [first, second].map((a) => ({
    pk: { S: `conversation#${envelope.conversation_id}` },
    sk: { S: `attempt#${a.at}#${String(a.attempt).padStart(6, '0')}` },
    entry: { S: JSON.stringify({ ...a, conversation_id: envelope.conversation_id, response: null }) },
  }));
}

/**
 * Two dead letters: `behind`, whose attempt log has tries its envelope lacks (loggedTries), and `unread`, whose log's
 * Query is denied.
 */
function behindAndUnread() {
  const behind = deadEnvelope('aaa111');
  const unread = deadEnvelope('bbb222');
  deadLetters(sqsMessage(behind), sqsMessage(unread));
  dynamoMock
    .on(QueryCommand, { ExpressionAttributeValues: { ':pk': { S: `conversation#${behind.conversation_id}` } } })
    .resolves({ Items: loggedTries(behind) });
  dynamoMock
    .on(QueryCommand, { ExpressionAttributeValues: { ':pk': { S: `conversation#${unread.conversation_id}` } } })
    .rejects(Object.assign(new Error('no'), { name: 'AccessDeniedException' }));
  return { behind, unread };
}

/** Runs `body` with the clock (Date only) at 2026-12-01T10:00:00Z: the dead letters a command leaves hidden say until when. */
async function atTen(body: () => Promise<void>): Promise<void> {
  vi.useFakeTimers({ now: new Date('2026-12-01T10:00:00Z'), toFake: ['Date'] });
  try {
    await body();
  } finally {
    vi.useRealTimers();
  }
}

/**
 * A dead-letter queue of `count` messages that behaves as SQS does about visibility: a receive returns up to 10 visible
 * messages, each with a new receipt handle, hidden for its VisibilityTimeout; a ChangeMessageVisibilityBatch with a
 * message's latest handle sets when it shows again. Each receive takes `receiveSeconds` of the (fake) clock: a slow
 * network, or a queue big enough that reading it takes longer than a listing's 30 s hold.
 */
function queueModel(count: number, receiveSeconds: number, options: { refuseHold?: Error } = {}) {
  const messages = Array.from({ length: count }, (_, i) => {
    const m = sqsMessage(deadEnvelope(`d${String(i).padStart(5, '0')}`));
    return { id: m.MessageId!, body: m.Body!, attributes: m.Attributes, handle: '', visibleAt: 0 };
  });
  let receipts = 0;
  sqsMock.on(ReceiveMessageCommand, { QueueUrl: DLQ_URL }).callsFake((input: { VisibilityTimeout?: number }) => {
    vi.setSystemTime(Date.now() + receiveSeconds * 1000);
    const now = Date.now();
    const batch = messages.filter((m) => m.visibleAt <= now).slice(0, 10);
    for (const m of batch) {
      m.handle = `rh-${m.id}-${++receipts}`;
      m.visibleAt = now + (input.VisibilityTimeout ?? 30) * 1000;
    }
    return {
      Messages: batch.map((m) => ({
        MessageId: m.id,
        ReceiptHandle: m.handle,
        Body: m.body,
        Attributes: m.attributes,
      })),
    };
  });
  sqsMock
    .on(ChangeMessageVisibilityBatchCommand)
    .callsFake((input: { Entries: { Id: string; ReceiptHandle: string; VisibilityTimeout: number }[] }) => {
      if (options.refuseHold && input.Entries.some((e) => e.VisibilityTimeout > 0)) throw options.refuseHold;
      const failed: { Id: string; Code: string; SenderFault: boolean; Message: string }[] = [];
      for (const e of input.Entries) {
        const m = messages.find((x) => x.handle === e.ReceiptHandle);
        if (m) m.visibleAt = Date.now() + e.VisibilityTimeout * 1000;
        else failed.push({ Id: e.Id, Code: 'ReceiptHandleIsInvalid', SenderFault: true, Message: 'stale handle' });
      }
      return {
        Successful: input.Entries.filter((e) => !failed.some((f) => f.Id === e.Id)).map((e) => ({ Id: e.Id })),
        Failed: failed,
      };
    });
  return messages;
}

describe('deliveries list --aws', () => {
  it('reads a queue that takes longer than its 30 s hold through to the end: the hold of what it read is extended as it goes', () =>
    atTen(async () => {
      // 50 dead letters at 12 s a receive: before, the first ten showed again at 30 s, the fourth receive returned
      // only those, and the listing ended with 30 rows as if the queue had no more, without a word.
      const messages = queueModel(50, 12);
      const run = await runMain(['deliveries', 'list', '--aws', '--json']);
      expect(run.code).toBe(0);
      const rows = JSON.parse(run.stdout) as FailedDeliveryEnvelope[];
      expect(rows).toHaveLength(50);
      expect(run.stderr).not.toContain('stopped after');
      // Everything read is visible again once the listing is done.
      expect(messages.every((m) => m.visibleAt <= Date.now())).toBe(true);
    }));

  it('…and says it stopped early when the hold cannot be extended, with why and what to do', () =>
    atTen(async () => {
      // Extending the hold (VisibilityTimeout 30) is refused; making them visible again (0) works.
      const messages = queueModel(50, 12, {
        refuseHold: Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }),
      });
      const run = await runMain(['deliveries', 'list', '--aws']);
      expect(run.code).toBe(0);
      expect(run.stdout).toContain(
        '(stopped after 20 messages: the 30 s hold on the messages it had read could not be extended (ThrottlingException: Rate exceeded); there may be more: run it again)',
      );
      expect(messages.every((m) => m.visibleAt <= Date.now())).toBe(true);
    }));

  it('counts the tries only the attempt log has (a Query per dead letter listed); one whose log cannot be read as its envelope carries it, said on stderr', async () => {
    // Before: the envelope's count (1), until a redrive.
    const { behind, unread } = behindAndUnread();
    const run = await runMain(['deliveries', 'list', '--aws', '--json']);
    expect(run.code).toBe(0);
    const rows = JSON.parse(run.stdout) as FailedDeliveryEnvelope[];
    const attemptsOf = (id: string) => rows.find((e) => e.conversation_id === id)!.attempts.map((a) => a.attempt);
    expect(attemptsOf(behind.conversation_id)).toEqual([1, 2]);
    expect(attemptsOf(unread.conversation_id)).toEqual([1]);
    expect(run.stderr).toContain(
      `the attempt log of ${unread.conversation_id} could not be read (AccessDeniedException: no): its attempts are those its envelope carries`,
    );
  });

  it('…and the table counts them so', async () => {
    const behind = deadEnvelope('aaa111');
    deadLetters(sqsMessage(behind));
    dynamoMock.on(QueryCommand).resolves({ Items: loggedTries(behind) });
    await awsDeliveriesList(clients(), { stack: STACK }, out);
    expect(lines.join('\n')).toMatch(/webhook_\S+_aaa111\s+deal_analysis\s+2\s+HTTP 410/);
  });

  it("peeks at the dead-letter queue (then makes it visible again) and counts the schedule's queue", async () => {
    const a = sqsMessage(deadEnvelope('aaa111'));
    const b = sqsMessage(pendingEnvelope('bbb222'), { receiveCount: 6 });
    const c = sqsMessage(
      pendingEnvelope('ccc333', T0, { owed: 'export', last_error: 'export: ExportError: S3 down' }),
      { receiveCount: 6 },
    );
    deadLetters(a, b, c, sqsMessage('garbage'));
    expect(await awsDeliveriesList(clients(), { stack: STACK }, out)).toBe(0);
    const text = lines.join('\n');
    expect(text).toMatch(/conversation_id\s+type\s+attempts\s+last_error\s+age\s+state\s+next_due/);
    expect(text).toMatch(/webhook_\S+_aaa111\s+deal_analysis\s+1\s+HTTP 410 .*dead \(permanent\)/);
    expect(text).toMatch(/webhook_\S+_bbb222\s+deal_analysis\s+1\s+HTTP 503 .*dead \(receive_limit\)\s+-$/m);
    expect(text).toMatch(
      /webhook_\S+_ccc333\s+deal_analysis\s+1\s+export: ExportError: S3 down .*dead \(receive_limit\), export only/,
    );
    expect(text).toContain('1 unreadable message(s) in the dead-letter queue');
    expect(text).toContain('6 pending in the schedule (2 waiting, 3 in flight or hidden until due, 1 delayed)');
    expect(sqsMock.commandCalls(ReceiveMessageCommand)[0]!.args[0].input).toMatchObject({
      QueueUrl: DLQ_URL,
      MaxNumberOfMessages: 10,
      VisibilityTimeout: 30,
    });
    expect(released()).toHaveLength(4);
    expect(changes()).toEqual([]);
    expect(cfnMock.commandCalls(DescribeStacksCommand)[0]!.args[0].input).toEqual({ StackName: STACK });
  });

  it('an empty dead-letter queue says so', async () => {
    deadLetters();
    await awsDeliveriesList(clients(), { stack: STACK }, out);
    expect(lines[0]).toBe(`No dead-lettered deliveries in stack ${STACK}.`);
  });

  it('--json prints the envelopes as an array, the shape of the local list --json; the counts go to stderr', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'aws-list-json-'));
    try {
      await new LocalFailedDeliveryStore(dir).put(deadEnvelope('loc111'));
      const local = await runMain(['deliveries', 'list', '--json'], { LOCAL_DATA_DIR: dir });
      deadLetters(sqsMessage(deadEnvelope('aws111')), sqsMessage('garbage'));
      const aws = await runMain(['deliveries', 'list', '--aws', '--json']);
      expect([local.code, aws.code]).toEqual([0, 0]);
      const [localRows, awsRows] = [JSON.parse(local.stdout), JSON.parse(aws.stdout)];
      expect(Array.isArray(localRows) && Array.isArray(awsRows)).toBe(true);
      expect(awsRows.map((e: FailedDeliveryEnvelope) => e.conversation_id)).toEqual([
        deadEnvelope('aws111').conversation_id,
      ]);
      expect(Object.keys(awsRows[0]).sort()).toEqual(Object.keys(localRows[0]).sort());
      expect(aws.stderr).toBe(
        `1 unreadable message(s) in the dead-letter queue (not failed deliveries): see ${DLQ_URL}\n` +
          '6 pending in the schedule (2 waiting, 3 in flight or hidden until due, 1 delayed): the scheduler redelivers them\n',
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a pending envelope the receive limit moved there is dead (receive_limit) in --json too, as in the table', async () => {
    const moved = pendingEnvelope('bbb222');
    expect(moved.state).toBe('pending');
    deadLetters(sqsMessage(moved, { receiveCount: 6 }), sqsMessage(deadEnvelope('aaa111')));
    const listed = await runMain(['deliveries', 'list', '--aws', '--json']);
    expect(listed.code).toBe(0);
    const rows = JSON.parse(listed.stdout) as FailedDeliveryEnvelope[];
    const byId = new Map(rows.map((e) => [e.conversation_id, e]));
    expect(byId.get(moved.conversation_id)).toMatchObject({
      state: 'dead',
      dead_reason: 'receive_limit',
      next_due_at: null,
    });
    expect(byId.get(deadEnvelope('aaa111').conversation_id)).toMatchObject({ state: 'dead', dead_reason: 'permanent' });
    // Only the local states: what the local `deliveries list --json` prints for a dead envelope.
    expect(new Set(rows.map((e) => e.state))).toEqual(new Set(['dead']));
  });

  it('the plan of a redrive shows such an envelope dead (receive_limit) too, as JSON', async () => {
    const moved = pendingEnvelope('bbb222');
    deadLetters(sqsMessage(moved, { receiveCount: 6 }));
    const plan = await runMain(['deliveries', 'redrive', '--all', '--dry-run', '--aws', '--json']);
    expect(JSON.parse(plan.stdout)).toEqual([
      expect.objectContaining({ conversation_id: moved.conversation_id, state: 'dead', dead_reason: 'receive_limit' }),
    ]);
  });

  it('…and the text plan of a redrive', async () => {
    deadLetters(sqsMessage(pendingEnvelope('bbb222'), { receiveCount: 6 }));
    const planText = await runMain(['deliveries', 'redrive', '--all', '--dry-run', '--aws']);
    expect(planText.stdout).toMatch(/_bbb222 {2}deal_analysis {2}dead \(receive_limit\) {2}1 attempt$/m);
  });

  it("a role that may not count the schedule's queue still sees the dead letters, and why there is no count", async () => {
    deadLetters(sqsMessage(deadEnvelope('aaa111')));
    sqsMock
      .on(GetQueueAttributesCommand)
      .rejects(Object.assign(new Error('not authorized to perform: sqs:getqueueattributes'), { name: 'AccessDenied' }));
    const result = await runMain(['deliveries', 'list', '--aws']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/webhook_\S+_aaa111\s+deal_analysis/);
    expect(result.stdout).toContain(
      'deliveries pending in the schedule not counted (AccessDenied on sqs:GetQueueAttributes)',
    );
  });

  it('a role without sqs:ChangeMessageVisibility: the error says the dead letters read stay hidden, and until when', () =>
    atTen(async () => {
      deadLetters(sqsMessage(deadEnvelope('aaa111')), sqsMessage(deadEnvelope('bbb222')));
      sqsMock.on(ChangeMessageVisibilityBatchCommand).rejects(
        Object.assign(new Error('User: ops is not authorized to perform: sqs:changemessagevisibility'), {
          name: 'AccessDenied',
        }),
      );
      const listed = await runMain(['deliveries', 'list', '--aws']);
      expect(listed.code).toBe(1);
      expect(listed.stderr).toBe(
        `webhook-gateway: access denied: User: ops is not authorized to perform: sqs:changemessagevisibility (2 dead letters it read stay hidden in the dead-letter queue until 2026-12-01T10:00:30.000Z: "deliveries list --aws" does not show them until then): these credentials need the stack's OperatorPolicyArn policy (docs/deploy.md#after-the-first-deploy)\n`,
      );
      sqsMock.resetHistory();
      deadLetters(sqsMessage(deadEnvelope('aaa111')), sqsMessage(deadEnvelope('bbb222')));
      const redriven = await runMain(['deliveries', 'redrive', deadEnvelope('aaa111').conversation_id, '--aws']);
      expect(redriven.code).toBe(1);
      expect(redriven.stderr).toContain(
        '(2 dead letters it read stay hidden in the dead-letter queue until 2026-12-01T10:15:00.000Z: "deliveries list --aws" does not show them until then)',
      );
    }));

  it('a release the network cut: the line says AWS could not be reached, and still how many dead letters stay hidden', () =>
    atTen(async () => {
      deadLetters(sqsMessage(deadEnvelope('aaa111')), sqsMessage(deadEnvelope('bbb222')));
      sqsMock
        .on(ChangeMessageVisibilityBatchCommand)
        .rejects(Object.assign(new Error('socket hang up'), { name: 'TimeoutError' }));
      const listed = await runMain(['deliveries', 'list', '--aws']);
      expect(listed.code).toBe(1);
      // Before: the first sentence alone, as if nothing were left hidden.
      expect(listed.stderr).toBe(
        'webhook-gateway: cannot reach AWS in us-east-1 (TimeoutError): check the network, proxy settings and --region (2 dead letters it read stay hidden in the dead-letter queue until 2026-12-01T10:00:30.000Z: "deliveries list --aws" does not show them until then)\n',
      );
    }));

  it('a release SQS answers with failed entries: says how many stay hidden, not a list as if all were shown again', () =>
    atTen(async () => {
      deadLetters(
        sqsMessage(deadEnvelope('aaa111')),
        sqsMessage(deadEnvelope('bbb222')),
        sqsMessage(deadEnvelope('ccc333')),
      );
      // A batch answers 200 with the entries it did not change; one whose receipt handle is stale was received since.
      sqsMock.on(ChangeMessageVisibilityBatchCommand).resolves({
        Successful: [{ Id: '0' }],
        Failed: [
          { Id: '1', Code: 'InternalError', SenderFault: false, Message: 'We encountered an internal error.' },
          { Id: '2', Code: 'ReceiptHandleIsInvalid', SenderFault: true, Message: 'The receipt handle has expired.' },
        ],
      });
      const listed = await runMain(['deliveries', 'list', '--aws']);
      expect(listed.code).toBe(1);
      expect(listed.stdout).toBe('');
      expect(listed.stderr).toBe(
        'webhook-gateway: AWS error (InternalError): SQS did not make 1 of 3 messages visible again (InternalError: We encountered an internal error.) (1 dead letter it read stays hidden in the dead-letter queue until 2026-12-01T10:00:30.000Z: "deliveries list --aws" does not show it until then)\n',
      );
    }));

  it('redrive with a filter: when freeing the dead letters outside it fails part-way, counts those still hidden, not all of them', () =>
    atTen(async () => {
      const target = deadEnvelope('aaa111');
      // SQS answers the batch of the two outside the filter with one failed entry; the one to redrive is shown again.
      deadLetters(sqsMessage(target), sqsMessage(deadEnvelope('bbb222')), sqsMessage(deadEnvelope('ccc333')));
      sqsMock
        .on(ChangeMessageVisibilityBatchCommand)
        .resolvesOnce({
          Successful: [{ Id: '0' }],
          Failed: [
            { Id: '1', Code: 'InternalError', SenderFault: false, Message: 'We encountered an internal error.' },
          ],
        })
        .resolves({ Successful: [{ Id: '0' }] });
      const one = await runMain(['deliveries', 'redrive', target.conversation_id, '--aws']);
      expect(one.code).toBe(1);
      // Before: "2 dead letters it read stay hidden", though SQS had shown one of them again.
      expect(one.stderr).toContain(
        '(1 dead letter it read stays hidden in the dead-letter queue until 2026-12-01T10:15:00.000Z: "deliveries list --aws" does not show it until then)',
      );
      // Eleven outside the filter: SQS changes the first batch of ten, then refuses the second (throttled past retries).
      sqsMock.reset();
      stackWith(STACK_OUTPUTS);
      deadLetters(
        sqsMessage(target),
        ...Array.from({ length: 11 }, (_, i) => sqsMessage(deadEnvelope(`b${String(i).padStart(5, '0')}`))),
      );
      sqsMock
        .on(ChangeMessageVisibilityBatchCommand)
        .resolvesOnce({ Successful: Array.from({ length: 10 }, (_, i) => ({ Id: String(i) })) })
        .rejectsOnce(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }))
        .resolves({ Successful: [{ Id: '0' }] });
      const eleven = await runMain(['deliveries', 'redrive', target.conversation_id, '--aws']);
      expect(eleven.code).toBe(1);
      // Before: "11 dead letters it read stay hidden".
      expect(eleven.stderr).toContain('(1 dead letter it read stays hidden in the dead-letter queue until');
    }));

  it('a receive refused after others were read: those are shown again, not left hidden', async () => {
    const first = sqsMessage(deadEnvelope('aaa111'));
    sqsMock
      .on(ReceiveMessageCommand, { QueueUrl: DLQ_URL })
      .resolvesOnce({ Messages: [first] })
      .rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    await expect(awsDeliveriesList(clients(), { stack: STACK }, out)).rejects.toThrow('Rate exceeded');
    expect(released()).toEqual([first.ReceiptHandle]);
  });

  it('dead letters another command holds right now are counted, so an empty list is not mistaken for an empty queue', async () => {
    deadLetters();
    sqsMock
      .on(GetQueueAttributesCommand, { QueueUrl: DLQ_URL })
      .resolves({ Attributes: { ApproximateNumberOfMessagesNotVisible: '4' } });
    expect(await awsDeliveriesList(clients(), { stack: STACK }, out)).toBe(0);
    expect(lines).toEqual([
      `No dead-lettered deliveries in stack ${STACK}.`,
      'about 4 more dead letters are hidden right now: another command (a redrive, a listing) is reading them, and they show again when it is done (at most 15 minutes)',
      expect.stringMatching(/^6 pending in the schedule/),
    ]);
  });

  it('reads each message once, and stops at the limit', async () => {
    const messages = Array.from({ length: 12 }, (_, i) => sqsMessage(deadEnvelope(`c${i}`)));
    deadLetters(...messages);
    const output = captureOutput();
    try {
      await awsDeliveriesList(clients(), { stack: STACK, json: true, limit: 10 }, out);
    } finally {
      output.restore();
    }
    expect(JSON.parse(lines.join('\n'))).toHaveLength(10);
    expect(output.stderr).toContain('(stopped after 10 messages; there are more)');
  });
});

describe('deliveries redrive --aws', () => {
  const startCalls = () => sfnMock.commandCalls(StartSyncExecutionCommand).map((c) => c.args[0].input);

  it('<id>: runs the redelivery workflow with via redrive; delivered → deleted from the dead-letter queue', async () => {
    const target = deadEnvelope('aaa111');
    const other = sqsMessage(deadEnvelope('bbb222'));
    const message = sqsMessage(target);
    deadLetters(other, message);
    sfnMock.on(StartSyncExecutionCommand).resolves(succeeded(afterAttempt(target, 'delivered')));
    expect(await awsDeliveriesRedrive(clients(), { stack: STACK, id: target.conversation_id }, out)).toBe(0);
    expect(startCalls()).toHaveLength(1);
    expect(startCalls()[0]).toMatchObject({
      stateMachineArn: STATE_MACHINE_ARN,
      name: expect.stringMatching(new RegExp(`^${target.conversation_id}-redelivery-2-[0-9a-f]{6}$`)),
    });
    expect(JSON.parse(startCalls()[0]!.input!).redelivery).toEqual({ via: 'redrive', status_if_failed: 'failed' });
    expect(sqsMock.commandCalls(DeleteMessageCommand).map((c) => c.args[0].input)).toEqual([
      { QueueUrl: DLQ_URL, ReceiptHandle: message.ReceiptHandle },
    ]);
    expect(sqsMock.commandCalls(SendMessageCommand)).toHaveLength(0);
    expect(released()).toEqual([other.ReceiptHandle]);
    expect(lines[0]).toMatch(
      new RegExp(
        `^\\[1/1\\] ${target.conversation_id} → delivered \\(execution ${target.conversation_id}-redelivery-2-`,
      ),
    );
    expect(lines.at(-1)).toBe('redrove 1: 1 delivered');
  });

  it("a dead letter behind the attempt log: its run is named after the log's last attempt, its record carries the logged tries", async () => {
    // Before: `-redelivery-2-` from the envelope's one attempt, while its Deliver records attempt 3.
    const target = deadEnvelope('aaa111');
    deadLetters(sqsMessage(target));
    dynamoMock.on(QueryCommand).resolves({ Items: loggedTries(target) });
    sfnMock.on(StartSyncExecutionCommand).resolves(succeeded(afterAttempt(target, 'delivered', { attempt: 3 })));
    expect(await awsDeliveriesRedrive(clients(), { stack: STACK, id: target.conversation_id }, out)).toBe(0);
    expect(startCalls()[0]!.name).toMatch(new RegExp(`^${target.conversation_id}-redelivery-3-[0-9a-f]{6}$`));
    const started = JSON.parse(startCalls()[0]!.input!);
    expect(started.conversation.execution.delivery_attempts.map((a: { attempt: number }) => a.attempt)).toEqual([1, 2]);
    expect(lines.at(-1)).toBe('redrove 1: 1 delivered');
  });

  it('a receiver that held the redrive back: which and since when (its disabling), and exit code 1 as locally', async () => {
    const target = deadEnvelope('aaa111');
    deadLetters(sqsMessage(target));
    // The workflow ran, but Deliver made no attempt: the record comes back with the attempts it had.
    sfnMock.on(StartSyncExecutionCommand).resolves(succeeded(target.conversation));
    dynamoMock.on(GetItemCommand).resolves({
      Item: {
        consecutive_failures: { N: '40' },
        failing_since: { S: '2025-08-08T10:00:00.000Z' },
        disabled_at: { S: '2025-08-13T10:00:00.000Z' },
      },
    });
    expect(await awsDeliveriesRedrive(clients(), { stack: STACK, id: target.conversation_id }, out)).toBe(1);
    // Before: "(paused, disabled or at its rate: webhook-gateway endpoints list)", which one left to look up.
    expect(lines[0]).toMatch(
      new RegExp(
        `^\\[1/1\\] ${target.conversation_id} → held \\(execution .*\\): its receiver held it back: deal_analysis is disabled since 2025-08-13T10:00:00.000Z \\(\\d+d ago\\): nothing is attempted until it is resumed; a dead-lettered delivery is not tried again by itself: run this again then$`,
      ),
    );
    expect(dynamoMock.commandCalls(GetItemCommand)[0]!.args[0].input).toMatchObject({
      TableName: TABLE,
      Key: { pk: { S: 'endpoint#deal_analysis' } },
    });
    expect(lines.at(-1)).toBe('redrove 1: 1 held');
  });

  it('--all --since --type: the matching ones, with progress and a summary; a failure goes back to the dead-letter queue', async () => {
    const old = deadEnvelope('old111', new Date('2025-08-01T00:00:00Z'));
    const ok = deadEnvelope('aaa111');
    const ko = pendingEnvelope('bbb222');
    const otherType = { ...deadEnvelope('ccc333'), webhook_type: 'lead_analysis' };
    const koMessage = sqsMessage(ko);
    deadLetters(sqsMessage(old), sqsMessage(ok), koMessage, sqsMessage(otherType));
    sfnMock
      .on(StartSyncExecutionCommand)
      .resolvesOnce(succeeded(afterAttempt(ok, 'delivered')))
      .resolvesOnce(succeeded(afterAttempt(ko, 'retryable')));
    const code = await awsDeliveriesRedrive(
      clients(),
      { stack: STACK, all: true, since: '2025-08-13T00:00:00Z', type: 'deal_analysis' },
      out,
    );
    expect(code).toBe(1);
    expect(startCalls().map((c) => JSON.parse(c.input!).conversation.conversation_id)).toEqual([
      ok.conversation_id,
      ko.conversation_id,
    ]);
    // A pending envelope found in the dead-letter queue is treated as dead: its failed redrive exports `failed`.
    expect(JSON.parse(startCalls()[1]!.input!).redelivery.status_if_failed).toBe('failed');
    const back = sqsMock.commandCalls(SendMessageCommand).map((c) => c.args[0].input);
    expect(back).toHaveLength(1);
    expect(back[0]!.QueueUrl).toBe(DLQ_URL);
    expect(JSON.parse(back[0]!.MessageBody!) as FailedDeliveryEnvelope).toMatchObject({
      conversation_id: ko.conversation_id,
      state: 'dead',
      attempts: { length: 2 },
    });
    expect(sqsMock.commandCalls(DeleteMessageCommand).map((c) => c.args[0].input.ReceiptHandle)).toContain(
      koMessage.ReceiptHandle,
    );
    expect(lines).toEqual([
      `redriving 2 deliveries from stack ${STACK}, oldest first (Ctrl-C stops after the current one)`,
      expect.stringMatching(/^\[1\/2\] \S+_aaa111 → delivered/),
      expect.stringMatching(/^\[2\/2\] \S+_bbb222 → failed \(execution .*\): HTTP 503$/),
      'redrove 2: 1 delivered, 1 failed',
    ]);
  });

  it('--dry-run lists what would be redriven and changes nothing', async () => {
    deadLetters(sqsMessage(deadEnvelope('aaa111')), sqsMessage(deadEnvelope('bbb222')));
    expect(await awsDeliveriesRedrive(clients(), { stack: STACK, all: true, dryRun: true }, out)).toBe(0);
    expect(lines[0]).toBe(`dry run: would redrive 2 deliveries from stack ${STACK}; nothing was changed`);
    expect(lines.slice(1)).toEqual([
      expect.stringMatching(/_aaa111 {2}deal_analysis {2}dead \(permanent\) {2}1 attempt$/),
      expect.stringMatching(/_bbb222/),
    ]);
    expect(startCalls()).toEqual([]);
    expect(changes()).toEqual([]);
    expect(released()).toHaveLength(2);
  });

  it('--dry-run counts the tries only the attempt log has, as `deliveries list --aws` (one Query per delivery planned, after they are visible again); one whose log cannot be read as its envelope carries it, said on stderr', async () => {
    // Before: the envelope's count (1 attempt), while the list said 2 and the redrive numbers attempt 3.
    const { behind, unread } = behindAndUnread();
    const plan = await runMain(['deliveries', 'redrive', '--all', '--dry-run', '--aws', '--region', 'us-east-1']);
    expect(plan.code).toBe(0);
    expect(plan.stdout.split('\n').slice(1, 3)).toEqual([
      expect.stringMatching(/_aaa111 {2}deal_analysis {2}dead \(permanent\) {2}2 attempts$/),
      expect.stringMatching(/_bbb222 {2}deal_analysis {2}dead \(permanent\) {2}1 attempt$/),
    ]);
    expect(plan.stderr).toContain(
      `the attempt log of ${unread.conversation_id} could not be read (AccessDeniedException: no): its attempts are those its envelope carries`,
    );
    sqsMock.reset();
    deadLetters(sqsMessage(behind), sqsMessage(unread));
    const json = await runMain([
      'deliveries',
      'redrive',
      '--all',
      '--dry-run',
      '--aws',
      '--json',
      '--region',
      'us-east-1',
    ]);
    const rows = JSON.parse(json.stdout) as FailedDeliveryEnvelope[];
    expect(rows.map((e) => e.attempts.map((a) => a.attempt))).toEqual([[1, 2], [1]]);
    expect(startCalls()).toEqual([]);
    expect(changes()).toEqual([]);
  });

  it('--all goes oldest first, as locally, whatever order the queue gives: the plan, and the redrives', async () => {
    const [older, old, newest] = [
      deadEnvelope('ccc333', new Date('2026-11-27T08:00:00Z')),
      deadEnvelope('bbb222', new Date('2026-11-28T08:00:00Z')),
      deadEnvelope('aaa111', new Date('2026-11-29T08:00:00Z')),
    ];
    deadLetters(sqsMessage(newest), sqsMessage(older), sqsMessage(old));
    expect(await awsDeliveriesRedrive(clients(), { stack: STACK, all: true, dryRun: true }, out)).toBe(0);
    expect(lines.slice(1).map((l) => l.trim().split(/\s+/)[0])).toEqual(
      [older, old, newest].map((e) => e.conversation_id),
    );
    lines = [];
    sqsMock.reset();
    deadLetters(sqsMessage(newest), sqsMessage(older), sqsMessage(old));
    sfnMock.on(StartSyncExecutionCommand).callsFake((input: { input: string }) => {
      const envelope = [older, old, newest].find((e) => input.input.includes(e.conversation_id))!;
      return succeeded(afterAttempt(envelope, 'delivered'));
    });
    expect(await awsDeliveriesRedrive(clients(), { stack: STACK, all: true }, out)).toBe(0);
    expect(startCalls().map((c) => JSON.parse(c.input!).conversation.conversation_id)).toEqual(
      [older, old, newest].map((e) => e.conversation_id),
    );
  });

  it('an id that is not in the dead-letter queue, and not delivered: a clear message', async () => {
    const other = sqsMessage(deadEnvelope('bbb222'));
    deadLetters(other);
    const id = deadEnvelope('aaa111').conversation_id;
    await expect(awsDeliveriesRedrive(clients(), { stack: STACK, id }, out)).rejects.toThrow(
      `${id} is not in the dead-letter queue of stack ${STACK}, and not delivered: it may be pending in the schedule (see "deliveries list --aws"), or held by another redrive running now`,
    );
    expect(released()).toEqual([other.ReceiptHandle]);
    expect(startCalls()).toEqual([]);
  });

  /** The attempt log's item of one delivered attempt (functions/shared/attempt-log.ts). */
  const loggedDelivery = (envelope: FailedDeliveryEnvelope, via: string) => {
    const attempt = afterAttempt(envelope, 'delivered', { via: via as never }).execution.delivery_attempts.at(-1)!;
    return {
      pk: { S: `conversation#${envelope.conversation_id}` },
      sk: { S: `attempt#${attempt.at}#000002` },
      entry: { S: JSON.stringify({ ...attempt, conversation_id: envelope.conversation_id }) },
    };
  };

  it('<id> still in the dead-letter queue but delivered since (the schedule delivered a copy): says so, sends nothing, exports it delivered, removes it', async () => {
    const target = deadEnvelope('aaa111');
    const message = sqsMessage(target);
    deadLetters(message);
    dynamoMock.on(QueryCommand).resolves({ Items: [loggedDelivery(target, 'schedule')] });
    // The export still says retrying (no GetObject answer says delivered): an export-only run writes it delivered.
    sfnMock
      .on(StartSyncExecutionCommand)
      .callsFake(({ input }: { input: string }) => succeeded(JSON.parse(input).conversation));
    expect(await awsDeliveriesRedrive(clients(), { stack: STACK, id: target.conversation_id }, out)).toBe(0);
    expect(startCalls()).toHaveLength(1);
    const started = JSON.parse(startCalls()[0]!.input!);
    expect(started.redelivery).toMatchObject({ via: 'redrive', export_only: true });
    expect(started.conversation.webhook_context.delivery_status).toBe('delivered');
    expect(started.conversation.execution.delivery_attempts.at(-1)).toMatchObject({ attempt: 2, outcome: 'delivered' });
    expect(dynamoMock.commandCalls(QueryCommand)[0]!.args[0].input).toMatchObject({
      TableName: TABLE,
      ExpressionAttributeValues: { ':pk': { S: `conversation#${target.conversation_id}` } },
      ConsistentRead: true,
    });
    expect(sqsMock.commandCalls(DeleteMessageCommand).map((c) => c.args[0].input.ReceiptHandle)).toEqual([
      message.ReceiptHandle,
    ]);
    expect(sqsMock.commandCalls(SendMessageCommand)).toHaveLength(0);
    expect(lines).toEqual([
      expect.stringMatching(
        new RegExp(
          `^\\[1/1\\] ${target.conversation_id} → already delivered \\(execution ${target.conversation_id}-redelivery-\\d+-[0-9a-f]{6}\\): delivered meanwhile \\(attempt 2 at 2025-08-13T10:31:00.001Z by the schedule\\); nothing was sent, and its export now says delivered\\. To deliver it again: webhook-gateway deliveries resend ${target.conversation_id} --aws$`,
        ),
      ),
      'redrove 1: 1 already delivered',
    ]);
  });

  it('…told by the export when the attempt log has nothing (its write failed): --json says already_delivered', async () => {
    const target = pendingEnvelope('aaa111');
    deadLetters(sqsMessage(target));
    const record = afterAttempt(target, 'delivered', { via: 'redrive' });
    s3Mock
      .on(GetObjectCommand, { Bucket: BUCKET, Key: exportKey(target.conversation_id, 'conversation.json') })
      .resolves({
        Body: { transformToString: async () => JSON.stringify(structuredJson(record, T0.toISOString())) } as never,
      });
    const result = await runMain(['deliveries', 'redrive', target.conversation_id, '--aws', '--json']);
    expect(result.code).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual([
      { conversation_id: target.conversation_id, status: 'already_delivered' },
    ]);
    expect(startCalls()).toEqual([]);
  });

  it('<id> no longer in the dead-letter queue because someone else redrove it: already delivered, exit 0 (not an error)', async () => {
    deadLetters(sqsMessage(deadEnvelope('bbb222')));
    const target = deadEnvelope('aaa111');
    dynamoMock.on(QueryCommand).resolves({ Items: [loggedDelivery(target, 'redrive')] });
    expect(await awsDeliveriesRedrive(clients(), { stack: STACK, id: target.conversation_id }, out)).toBe(0);
    expect(lines).toEqual([
      `${target.conversation_id} was already delivered (attempt 2 at 2025-08-13T10:31:00.001Z by the redrive); nothing was sent. To deliver it again: webhook-gateway deliveries resend ${target.conversation_id} --aws`,
    ]);
    lines = [];
    deadLetters();
    expect(await awsDeliveriesRedrive(clients(), { stack: STACK, id: target.conversation_id, json: true }, out)).toBe(
      0,
    );
    expect(JSON.parse(lines.join('\n'))).toEqual([
      { conversation_id: target.conversation_id, status: 'already_delivered' },
    ]);
    expect(startCalls()).toEqual([]);
  });

  it('a role that may read neither the attempt log nor the exports: redriven as before, and stderr says it was not checked, once', async () => {
    const [a, b] = [deadEnvelope('aaa111'), deadEnvelope('bbb222')];
    deadLetters(sqsMessage(a), sqsMessage(b));
    const denied = (action: string) =>
      Object.assign(new Error(`User: ops is not authorized to perform: ${action}`), { name: 'AccessDeniedException' });
    dynamoMock.on(QueryCommand).rejects(denied('dynamodb:Query'));
    s3Mock.on(GetObjectCommand).rejects(Object.assign(denied('s3:GetObject'), { name: 'AccessDenied' }));
    sfnMock.on(StartSyncExecutionCommand).callsFake((input: { input: string }) => {
      const envelope = [a, b].find((e) => input.input.includes(e.conversation_id))!;
      return succeeded(afterAttempt(envelope, 'delivered'));
    });
    const result = await runMain(['deliveries', 'redrive', '--all', '--aws']);
    expect(result.code).toBe(0);
    expect(startCalls()).toHaveLength(2);
    expect(result.stderr).toBe(
      `could not check whether ${a.conversation_id} (and the next ones) was delivered meanwhile (AccessDeniedException on dynamodb:Query: User: ops is not authorized to perform: dynamodb:Query; AccessDenied on s3:GetObject: User: ops is not authorized to perform: s3:GetObject): redriven as the dead-letter queue holds it\n`,
    );
  });

  it('a FAILED execution changes nothing and makes the message visible again', async () => {
    const envelope = deadEnvelope();
    const message = sqsMessage(envelope);
    deadLetters(message);
    sfnMock.on(StartSyncExecutionCommand).resolves({ status: 'FAILED', error: 'States.Timeout' });
    expect(await awsDeliveriesRedrive(clients(), { stack: STACK, id: envelope.conversation_id }, out)).toBe(1);
    expect(changes()).toEqual([]);
    expect(released()).toEqual([message.ReceiptHandle]);
    expect(lines[0]).toMatch(/→ error \(execution .*\): FAILED: States.Timeout$/);
  });

  it('an AWS error on one delivery names the region and profile it was met with (--region, not AWS_REGION)', async () => {
    const [a, b] = [deadEnvelope('aaa111'), deadEnvelope('bbb222')];
    deadLetters(sqsMessage(a), sqsMessage(b));
    sfnMock
      .on(StartSyncExecutionCommand)
      .rejectsOnce(Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:443'), { code: 'ECONNREFUSED' }))
      .rejectsOnce(
        Object.assign(
          new Error('User: arn:aws:iam::1:user/op is not authorized to perform: states:StartSyncExecution'),
          {
            name: 'AccessDeniedException',
          },
        ),
      );
    const result = await runMain(['deliveries', 'redrive', '--all', '--aws', '--region', 'eu-west-1'], {
      AWS_REGION: 'us-east-1',
      AWS_PROFILE: undefined,
    });
    expect(result.code).toBe(1);
    const again = 'nothing was started: it is back in the dead-letter queue now (run the same command again)';
    expect(result.stdout.split('\n').slice(1, 3)).toEqual([
      `[1/2] ${a.conversation_id} → error: cannot reach AWS in eu-west-1 (ECONNREFUSED): check the network, proxy settings and --region [region eu-west-1, no profile]; ${again}`,
      `[2/2] ${b.conversation_id} → error: access denied: User: arn:aws:iam::1:user/op is not authorized to perform: states:StartSyncExecution: these credentials need the stack's OperatorPolicyArn policy (docs/deploy.md#after-the-first-deploy) [region eu-west-1, no profile]; ${again}`,
    ]);
  });

  it('--json: stdout is the results alone, the plan and one progress line per delivery go to stderr, as locally', async () => {
    const [a, b] = [deadEnvelope('aaa111'), pendingEnvelope('bbb222')];
    deadLetters(sqsMessage(a), sqsMessage(b));
    sfnMock
      .on(StartSyncExecutionCommand)
      .resolvesOnce(succeeded(afterAttempt(a, 'delivered')))
      .resolvesOnce(succeeded(afterAttempt(b, 'retryable')));
    const result = await runMain(['deliveries', 'redrive', '--all', '--aws', '--json']);
    expect(result.code).toBe(1);
    expect(JSON.parse(result.stdout).map((r: { status: string }) => r.status)).toEqual(['delivered', 'failed']);
    expect(result.stderr.split('\n')).toEqual([
      `redriving 2 deliveries from stack ${STACK}, oldest first (Ctrl-C stops after the current one)`,
      expect.stringMatching(/^\[1\/2\] \S+_aaa111 → delivered \(execution /),
      expect.stringMatching(/^\[2\/2\] \S+_bbb222 → failed \(execution .*\): HTTP 503$/),
      '',
    ]);
  });

  it('Ctrl-C stops after the current delivery: the ones not reached are made visible again at once, exit 1', async () => {
    const [a, b, c] = [deadEnvelope('aaa111'), deadEnvelope('bbb222'), deadEnvelope('ccc333')];
    const [ma, mb, mc] = [sqsMessage(a), sqsMessage(b), sqsMessage(c)];
    deadLetters(ma, mb, mc);
    sfnMock.on(StartSyncExecutionCommand).callsFake(() => {
      process.emit('SIGINT'); // the operator's Ctrl-C while the first delivery runs
      return succeeded(afterAttempt(a, 'delivered'));
    });
    const before = process.listenerCount('SIGINT');
    const result = await runMain(['deliveries', 'redrive', '--all', '--aws']);
    expect(result.code).toBe(1);
    expect(startCalls()).toHaveLength(1);
    // The first one settled (deleted), the two not reached released (visibility 0), not left hidden for 15 minutes.
    expect(sqsMock.commandCalls(DeleteMessageCommand).map((call) => call.args[0].input.ReceiptHandle)).toEqual([
      ma.ReceiptHandle,
    ]);
    const releasedNow = sqsMock
      .commandCalls(ChangeMessageVisibilityBatchCommand)
      .flatMap((call) => call.args[0].input.Entries!)
      .filter((entry) => entry.VisibilityTimeout === 0)
      .map((entry) => entry.ReceiptHandle);
    expect(releasedNow).toEqual([mb.ReceiptHandle, mc.ReceiptHandle]);
    expect(result.stdout.split('\n')).toEqual([
      `redriving 3 deliveries from stack ${STACK}, oldest first (Ctrl-C stops after the current one)`,
      expect.stringMatching(/^\[1\/3\] \S+_aaa111 → delivered/),
      'redrove 1 of 3: 1 delivered',
      'stopped by Ctrl-C: 2 not redriven, back in the dead-letter queue (run the same command again for them)',
      '',
    ]);
    expect(result.stderr).toBe('stopping after the current delivery (Ctrl-C again stops at once)\n');
    expect(process.listenerCount('SIGINT')).toBe(before);
  });

  it('…and with --json, in the result’s error, the profile of AWS_PROFILE', async () => {
    const a = deadEnvelope('aaa111');
    deadLetters(sqsMessage(a));
    sfnMock
      .on(StartSyncExecutionCommand)
      .rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    const json = await runMain(['deliveries', 'redrive', a.conversation_id, '--aws', '--json'], {
      AWS_PROFILE: 'prod',
    });
    expect(json.code).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual([
      expect.objectContaining({
        status: 'error',
        error: expect.stringMatching(
          /^AWS is throttling these calls .* \[region us-east-1, profile "prod" \(AWS_PROFILE\)\]$/,
        ),
      }),
    ]);
  });

  /** The visibility each message was last given, by receipt handle (ChangeMessageVisibility and its batch). */
  const lastVisibility = () => {
    const set = new Map<string, number>();
    for (const call of sqsMock.calls()) {
      const command = call.args[0];
      if (command instanceof ChangeMessageVisibilityBatchCommand)
        for (const e of command.input.Entries!) set.set(e.ReceiptHandle!, e.VisibilityTimeout!);
      if (command instanceof ChangeMessageVisibilityCommand)
        set.set(command.input.ReceiptHandle!, command.input.VisibilityTimeout!);
    }
    return Object.fromEntries(set);
  };

  it('StartSyncExecution throttled past the retries: nothing started, so it and its older copies are visible again at once', async () => {
    const envelope = deadEnvelope();
    const older = sqsMessage(envelope);
    const newer = sqsMessage({ ...envelope, updated_at: new Date(T0.getTime() + 1000).toISOString() });
    deadLetters(older, newer);
    sfnMock
      .on(StartSyncExecutionCommand)
      .rejects(
        Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException', $metadata: { httpStatusCode: 400 } }),
      );
    expect(await awsDeliveriesRedrive(clients(), { stack: STACK, id: envelope.conversation_id }, out)).toBe(1);
    // Scanned hidden for 900 s, then both shown again: not left hidden for 15 minutes.
    expect(sqsMock.commandCalls(ReceiveMessageCommand)[0]!.args[0].input.VisibilityTimeout).toBe(900);
    expect(lastVisibility()).toEqual({ [older.ReceiptHandle!]: 0, [newer.ReceiptHandle!]: 0 });
    expect(changes()).toEqual([]);
    expect(lines[0]).toBe(
      `[1/1] ${envelope.conversation_id} → error: AWS is throttling these calls (ThrottlingException: Rate exceeded), even after retries: try again in a minute; nothing was started: it is back in the dead-letter queue now (run the same command again)`,
    );
  });

  it('a server error or a cut connection (its execution may have started): it and its copies hidden 2 minutes, not 15', async () => {
    for (const error of [
      Object.assign(new Error('internal'), { name: 'InternalFailure', $metadata: { httpStatusCode: 500 } }),
      Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }),
    ]) {
      sqsMock.resetHistory();
      lines = [];
      const envelope = deadEnvelope();
      const older = sqsMessage(envelope);
      const newer = sqsMessage({ ...envelope, updated_at: new Date(T0.getTime() + 1000).toISOString() });
      deadLetters(older, newer);
      sfnMock.on(StartSyncExecutionCommand).rejects(error);
      expect(await awsDeliveriesRedrive(clients(), { stack: STACK, all: true, json: true }, out)).toBe(1);
      expect(lastVisibility()).toEqual({ [older.ReceiptHandle!]: 120, [newer.ReceiptHandle!]: 120 });
      expect(changes()).toEqual([]);
      expect(JSON.parse(lines.join('\n'))).toEqual([
        { conversation_id: envelope.conversation_id, status: 'error', error: expect.any(String) },
      ]);
    }
  });

  it('the network going after a run delivered (its DeleteMessage refused): said delivered and not removed, not "nothing was started"', async () => {
    const [a, b, c] = [deadEnvelope('aaa111'), deadEnvelope('bbb222'), deadEnvelope('ccc333')];
    const [ma, mb, mc] = [a, b, c].map((e) => sqsMessage(e)) as [Message, Message, Message];
    deadLetters(ma, mb, mc);
    sfnMock
      .on(StartSyncExecutionCommand)
      .resolvesOnce(succeeded(afterAttempt(a, 'delivered')))
      .resolvesOnce(succeeded(afterAttempt(b, 'delivered')))
      .resolvesOnce(succeeded(afterAttempt(c, 'retryable')));
    sqsMock.on(DeleteMessageCommand).resolves({});
    sqsMock
      .on(DeleteMessageCommand, { ReceiptHandle: mb.ReceiptHandle })
      .rejects(Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:443'), { code: 'ECONNREFUSED' }));
    expect(await awsDeliveriesRedrive(clients(), { stack: STACK, all: true }, out)).toBe(1);
    expect(startCalls()).toHaveLength(3);
    expect(lines[1]).toMatch(/^\[1\/3\] \S+_aaa111 → delivered \(execution /);
    expect(lines[2]).toMatch(
      new RegExp(
        `^\\[2/3\\] ${b.conversation_id} → error \\(execution ${b.conversation_id}-redelivery-2-[0-9a-f]{6}\\): it was delivered, but its dead letter could not be removed \\(cannot reach AWS in .* \\(ECONNREFUSED\\).*\\); it is back in the dead-letter queue as it was: run the same command again: it says it was delivered and removes it, sending nothing$`,
      ),
    );
    expect(lines[2]).not.toContain('nothing was started');
    // Its execution ended: visible again at once for that re-run, not hidden as a run that may be under way.
    expect(released()).toContain(mb.ReceiptHandle);
    expect(lines[3]).toMatch(/^\[3\/3\] \S+_ccc333 → failed \(execution /);
  });

  it('…and one delivered whose export S3 refused (it owes only its export) whose dead letter could not be updated: said delivered too', async () => {
    const a = deadEnvelope('aaa111');
    const ma = sqsMessage(a);
    deadLetters(ma);
    sfnMock.on(StartSyncExecutionCommand).resolves({
      ...succeeded(afterAttempt(a, 'delivered')),
      output: JSON.stringify({ conversation: afterAttempt(a, 'delivered'), export_error: 'ExportError: S3 down' }),
    });
    sqsMock
      .on(SendMessageCommand)
      .rejects(Object.assign(new Error('connect ECONNREFUSED 10.0.0.1:443'), { code: 'ECONNREFUSED' }));
    expect(await awsDeliveriesRedrive(clients(), { stack: STACK, id: a.conversation_id }, out)).toBe(1);
    expect(lines[0]).toMatch(
      /→ error \(execution .*\): it was delivered, but its dead letter could not be updated \(it owes only its export now\) \(/,
    );
  });

  /** Two dead letters, the first received by someone else since (SQS refuses its hold: MessageNotInflight). */
  function twoTheFirstTaken() {
    const [a, b] = [deadEnvelope('aaa111'), deadEnvelope('bbb222')];
    const [ma, mb] = [sqsMessage(a), sqsMessage(b)];
    deadLetters(ma, mb);
    sqsMock
      .on(ChangeMessageVisibilityCommand, { ReceiptHandle: ma.ReceiptHandle })
      .rejects(Object.assign(new Error('the message is not in flight'), { name: 'MessageNotInflight' }));
    return { a, b, mb };
  }

  it('a hold SQS refuses: "taken by another redrive" only when the message was received since, else the AWS error', async () => {
    const { a, b, mb } = twoTheFirstTaken();
    sqsMock.on(ChangeMessageVisibilityCommand, { ReceiptHandle: mb.ReceiptHandle }).rejects(
      Object.assign(new Error('User: ops is not authorized to perform: sqs:changemessagevisibility'), {
        name: 'AccessDenied',
      }),
    );
    expect(await awsDeliveriesRedrive(clients(), { stack: STACK, all: true }, out)).toBe(1);
    expect(startCalls()).toEqual([]);
    expect(lines.slice(1, 3)).toEqual([
      `[1/2] ${a.conversation_id} → skipped: taken by another redrive meanwhile`,
      `[2/2] ${b.conversation_id} → error: access denied: User: ops is not authorized to perform: sqs:changemessagevisibility: these credentials need the stack's OperatorPolicyArn policy (docs/deploy.md#after-the-first-deploy)`,
    ]);
  });

  it('exit code: 75 when one was skipped and none failed, so a script can tell "run it again" from "done"', async () => {
    const { a, b } = twoTheFirstTaken();
    sfnMock.on(StartSyncExecutionCommand).resolves(succeeded(afterAttempt(b, 'delivered')));
    expect(await awsDeliveriesRedrive(clients(), { stack: STACK, all: true }, out)).toBe(75);
    expect(lines.slice(1, 3)).toEqual([
      `[1/2] ${a.conversation_id} → skipped: taken by another redrive meanwhile`,
      expect.stringMatching(new RegExp(`^\\[2/2\\] ${b.conversation_id} → delivered`)),
    ]);
    expect(lines.at(-1)).toBe('redrove 2: 1 skipped, 1 delivered');
  });

  it('older copies of one conversation: redriven once, the copies removed', async () => {
    const envelope = deadEnvelope();
    const older = sqsMessage(envelope);
    const newer = sqsMessage({ ...envelope, updated_at: new Date(T0.getTime() + 1000).toISOString() });
    deadLetters(older, newer);
    sfnMock.on(StartSyncExecutionCommand).resolves(succeeded(afterAttempt(envelope, 'delivered')));
    await awsDeliveriesRedrive(clients(), { stack: STACK, all: true }, out);
    expect(startCalls()).toHaveLength(1);
    expect(
      sqsMock
        .commandCalls(DeleteMessageCommand)
        .map((c) => c.args[0].input.ReceiptHandle)
        .sort(),
    ).toEqual([newer.ReceiptHandle, older.ReceiptHandle].sort());
  });

  describe("the scheduler's claim (one redelivery of a conversation in flight at a time)", () => {
    const claimKey = (e: FailedDeliveryEnvelope) => `conversation#${e.conversation_id}`;
    const schedulerClaims = () => new DynamoRedeliveryClaims(TABLE, new DynamoDBClient({}));

    it('the redrive holds it while its execution runs (a scheduler run meanwhile waits), and ends it once delivered', async () => {
      const table = dynamoTables(dynamoMock, { [TABLE]: 'pk' }).items(TABLE);
      const envelope = deadEnvelope();
      deadLetters(sqsMessage(envelope));
      let scheduler: Awaited<ReturnType<DynamoRedeliveryClaims['claim']>> | undefined;
      sfnMock.on(StartSyncExecutionCommand).callsFake(async () => {
        scheduler = await schedulerClaims().claim(envelope.conversation_id, new Date());
        return succeeded(afterAttempt(envelope, 'delivered'));
      });
      expect(await awsDeliveriesRedrive(clients(), { stack: STACK, id: envelope.conversation_id }, out)).toBe(0);
      expect(scheduler).toMatchObject({ held: false });
      expect(dynamoMock.commandCalls(PutItemCommand)[0]!.args[0].input).toMatchObject({
        TableName: TABLE,
        Item: { pk: { S: claimKey(envelope) }, sk: { S: 'redelivery' } },
      });
      expect(table.size).toBe(0);
    });

    it('held by a scheduler run: nothing is read or sent, the message is visible again at once, and the line says until when', async () => {
      const table = dynamoTables(dynamoMock, { [TABLE]: 'pk' }).items(TABLE);
      const envelope = deadEnvelope();
      const message = sqsMessage(envelope);
      deadLetters(message);
      const until = Date.now() + 120_000;
      table.set(claimKey(envelope), {
        pk: { S: claimKey(envelope) },
        sk: { S: 'redelivery' },
        holder: { S: 'scheduler-run' },
        lease_until: { N: String(until) },
      });
      // Nothing was done: exit code 75 (try again later), not the 0 of a redrive that delivered (docs/operations.md).
      expect(await awsDeliveriesRedrive(clients(), { stack: STACK, id: envelope.conversation_id }, out)).toBe(75);
      expect(startCalls()).toEqual([]);
      expect(dynamoMock.commandCalls(QueryCommand)).toEqual([]);
      expect(changes()).toEqual([]);
      expect(released()).toEqual([message.ReceiptHandle]);
      expect(lines[0]).toBe(
        `[1/1] ${envelope.conversation_id} → skipped: being redelivered by the scheduler or another redrive now; run the same command again after ${new Date(until).toISOString()}`,
      );
      expect(table.get(claimKey(envelope))?.holder).toEqual({ S: 'scheduler-run' });
    });

    it("a claim that cannot be written is that delivery's error: nothing started, visible again at once", async () => {
      const envelope = deadEnvelope();
      const message = sqsMessage(envelope);
      deadLetters(message);
      dynamoMock.on(PutItemCommand).rejects(
        Object.assign(new Error('User: ops is not authorized to perform: dynamodb:PutItem'), {
          name: 'AccessDeniedException',
        }),
      );
      expect(await awsDeliveriesRedrive(clients(), { stack: STACK, id: envelope.conversation_id }, out)).toBe(1);
      expect(startCalls()).toEqual([]);
      expect(released()).toEqual([message.ReceiptHandle]);
      expect(lines[0]).toMatch(/→ error: .*dynamodb:PutItem/);
    });

    it('an execution that may still be under way (FAILED, TIMED_OUT) keeps the claim until it ends by itself', async () => {
      const table = dynamoTables(dynamoMock, { [TABLE]: 'pk' }).items(TABLE);
      const envelope = deadEnvelope();
      deadLetters(sqsMessage(envelope));
      sfnMock.on(StartSyncExecutionCommand).resolves({ status: 'TIMED_OUT' });
      expect(await awsDeliveriesRedrive(clients(), { stack: STACK, id: envelope.conversation_id }, out)).toBe(1);
      const leaseUntil = Number(table.get(claimKey(envelope))?.lease_until?.N);
      expect(leaseUntil - Date.now()).toBeGreaterThan(REDELIVERY_CLAIM_MS - 60_000);
    });

    it('a run whose Deliver Lambda would not run ended (SUCCEEDED): nothing changed, visible again, the claim ends at once', async () => {
      // Before: the claim was kept 3 minutes as if the execution might still run, so a redrive run again meanwhile
      // was skipped.
      const table = dynamoTables(dynamoMock, { [TABLE]: 'pk' }).items(TABLE);
      const envelope = deadEnvelope();
      const message = sqsMessage(envelope);
      deadLetters(message);
      sfnMock.on(StartSyncExecutionCommand).callsFake((input: { input: string; name: string }) => {
        const { conversation, redelivery } = JSON.parse(input.input);
        const delivery_error = { Error: 'Lambda.TooManyRequestsException', Cause: 'Rate Exceeded.' };
        return succeeded(
          closeConversation({ conversation, redelivery, delivery_error }, input.name, new Date()).record,
        );
      });
      expect(await awsDeliveriesRedrive(clients(), { stack: STACK, id: envelope.conversation_id }, out)).toBe(1);
      expect(changes()).toEqual([]);
      expect(released()).toEqual([message.ReceiptHandle]);
      expect(lines[0]).toMatch(
        /→ error \(execution .*\): Lambda did not run Deliver \(Lambda.TooManyRequestsException: Rate Exceeded.\); no attempt was made$/,
      );
      expect(table.size).toBe(0);
    });

    it('Step Functions refused to start it (nothing ran): the claim ends at once', async () => {
      const table = dynamoTables(dynamoMock, { [TABLE]: 'pk' }).items(TABLE);
      const envelope = deadEnvelope();
      deadLetters(sqsMessage(envelope));
      sfnMock
        .on(StartSyncExecutionCommand)
        .rejects(
          Object.assign(new Error('denied'), { name: 'AccessDeniedException', $metadata: { httpStatusCode: 400 } }),
        );
      expect(await awsDeliveriesRedrive(clients(), { stack: STACK, id: envelope.conversation_id }, out)).toBe(1);
      expect(table.size).toBe(0);
    });
  });

  it('needs the redelivery state machine output, except for a dry run', async () => {
    stackWith({ FailedDeliveryQueueUrl: QUEUE_URL, FailedDeliveryDeadLetterQueueUrl: DLQ_URL });
    await expect(awsDeliveriesRedrive(clients(), { stack: STACK, all: true }, out)).rejects.toThrow(
      `stack "${STACK}" has no RedeliveryStateMachineArn output`,
    );
    deadLetters();
    await expect(awsDeliveriesRedrive(clients(), { stack: STACK, all: true, dryRun: true }, out)).resolves.toBe(0);
  });
});

describe('the command line around --aws', () => {
  it('reads the output keys the stack declares', () => {
    const infra = ['infra/config.ts', 'infra/webhook-gateway-stack.ts']
      .map((f) => readFileSync(`${PROJECT_ROOT}/${f}`, 'utf8'))
      .join('\n');
    for (const key of Object.values(AWS_STACK_OUTPUTS)) expect(infra).toContain(`'${key}'`);
  });

  it('clear one-line errors: missing credentials, unknown stack, unreachable service', async () => {
    const failWith = (error: Error) =>
      withAws({ stack: 'Nope', region: 'eu-west-1' }, async (c, stack) => {
        cfnMock.on(DescribeStacksCommand).rejects(error);
        return awsDeliveriesList(c, { stack }, out);
      });
    await expect(
      failWith(
        Object.assign(new Error('Could not load credentials from any providers'), { name: 'CredentialsProviderError' }),
      ),
    ).rejects.toThrow(/^no AWS credentials: pass --profile P or set AWS_PROFILE/);
    await expect(
      failWith(Object.assign(new Error('Stack with id Nope does not exist'), { name: 'ValidationError' })),
    ).rejects.toThrow('stack "Nope" does not exist in eu-west-1: pass --stack NAME (and --region R)');
    await expect(
      failWith(
        Object.assign(new Error('getaddrinfo ENOTFOUND cloudformation.eu-west-1.amazonaws.com'), { code: 'ENOTFOUND' }),
      ),
    ).rejects.toThrow('cannot reach AWS in eu-west-1 (ENOTFOUND)');
  });

  it('webhook-gateway deliveries list --aws --stack Nope: one line on stderr, exit code 1', async () => {
    cfnMock
      .on(DescribeStacksCommand)
      .rejects(Object.assign(new Error('Stack with id Nope does not exist'), { name: 'ValidationError' }));
    const stderr = vi.spyOn(process.stderr, 'write').mockImplementation(() => true);
    try {
      expect(await main(['deliveries', 'list', '--aws', '--stack', 'Nope', '--region', 'eu-west-1'])).toBe(1);
      expect(stderr.mock.calls.map((c) => String(c[0]))).toEqual([
        'webhook-gateway: stack "Nope" does not exist in eu-west-1: pass --stack NAME (and --region R) of a deployed webhook gateway, NAME being the context key stackName it was deployed with (cdk.json or -c stackName=…: docs/deploy.md)\n',
      ]);
    } finally {
      stderr.mockRestore();
    }
  });

  it('branches to the AWS implementation only with --aws, and rejects options that do not go together', async () => {
    deadLetters();
    const stdout = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      expect(await deliveriesRedrive(['--all', '--dry-run', '--aws', '--region', 'us-east-1'])).toBe(0);
      expect(stdout.mock.calls.map((c) => String(c[0]))[0]).toMatch(`would redrive 0 deliveries from stack ${STACK}`);
    } finally {
      stdout.mockRestore();
    }
    await expect(deliveriesList(['--stack', 'X'])).rejects.toThrow('--stack, --region and --profile go with --aws');
    await expect(deliveriesList(['--aws', '--state', 'dead'])).rejects.toThrow(/--state is for the local store/);
    await expect(deliveriesRedrive(['x', '--aws', '--url', 'http://127.0.0.1:1'])).rejects.toThrow(
      /--url is for the local gateway/,
    );
    await expect(deliveriesRedrive(['--aws'])).rejects.toThrow('deliveries redrive needs a conversation id, or --all');
  });
});

describe('deliveries redrive --json, local and --aws: stdout is one JSON array', () => {
  it('--aws: the plan of --dry-run as envelopes, [] when nothing matches, the truncation note on stderr', async () => {
    const messages = Array.from({ length: 12 }, (_, i) => sqsMessage(deadEnvelope(`d${i}`)));
    deadLetters(...messages);
    const output = captureOutput();
    try {
      await awsDeliveriesRedrive(clients(), { stack: STACK, all: true, dryRun: true, json: true, limit: 10 }, out);
      expect(output.stderr).toContain('(read the first 10 dead-letter messages only; run again for the rest)');
    } finally {
      output.restore();
    }
    const plan = JSON.parse(lines.join('\n'));
    expect(plan).toHaveLength(10);
    expect(plan[0]).toMatchObject({ conversation_id: deadEnvelope('d0').conversation_id, state: 'dead' });
    lines = [];
    deadLetters(sqsMessage(deadEnvelope('e0')));
    expect(
      await awsDeliveriesRedrive(clients(), { stack: STACK, all: true, since: '2099-01-01', json: true }, out),
    ).toBe(0);
    expect(JSON.parse(lines.join('\n'))).toEqual([]);
  });

  it('local: the same shapes (the plan’s envelopes, [], and an already delivered one as its result)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'redrive-json-'));
    try {
      const store = new LocalFailedDeliveryStore(dir);
      const dead = deadEnvelope('f0');
      const settled = { ...deadEnvelope('f1'), state: 'settled' as const, next_due_at: null };
      await store.put(dead);
      await store.put(settled);
      const env = { LOCAL_DATA_DIR: dir };
      const plan = await runMain(['deliveries', 'redrive', '--all', '--dry-run', '--json'], env);
      expect(JSON.parse(plan.stdout).map((e: FailedDeliveryEnvelope) => e.conversation_id)).toEqual([
        dead.conversation_id,
      ]);
      const none = await runMain(['deliveries', 'redrive', '--all', '--since', '2099-01-01', '--json'], env);
      expect([none.code, JSON.parse(none.stdout)]).toEqual([0, []]);
      const done = await runMain(['deliveries', 'redrive', settled.conversation_id, '--json'], env);
      expect([done.code, JSON.parse(done.stdout)]).toEqual([
        0,
        [{ conversation_id: settled.conversation_id, status: 'already_delivered' }],
      ]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the help says redrive takes --json', async () => {
    const help = await runMain(['deliveries', 'redrive', '--help']);
    expect(help.stdout).toContain('deliveries redrive <conversation_id> [--url URL] [--json]');
    expect(help.stdout).toContain('--json: the results, or the plan');
  });
});

describe('deliveries resend --aws', () => {
  it('counts the tries only the attempt log has before its run is named: an export behind the log is resent as -redelivery-<the attempt its Deliver records>-', async () => {
    // Before: named from the export's attempts (`-redelivery-2-`), while its Deliver numbers attempt 3 after the log's
    // last (a resend whose Deliver Lambda failed after it ran and whose Export did not rewrite conversation.json: the
    // export merges the log whenever it is written, so only an export that failed or was refused leaves it behind).
    const envelope = deadEnvelope('aaa111');
    const delivered = afterAttempt(envelope, 'delivered', { attempt: 1 });
    const exported = {
      ...delivered,
      execution: { ...delivered.execution, delivery_attempts: [delivered.execution.delivery_attempts.at(-1)!] },
    };
    s3Mock
      .on(GetObjectCommand, { Bucket: BUCKET, Key: exportKey(envelope.conversation_id, 'conversation.json') })
      .resolves({
        Body: { transformToString: async () => JSON.stringify(structuredJson(exported, T0.toISOString())) } as never,
      });
    const [first] = exported.execution.delivery_attempts;
    const second = { ...first!, attempt: 2, at: new Date(Date.parse(first!.at) + 1_000).toISOString(), via: 'resend' };
    dynamoMock.on(QueryCommand).resolves({
      Items: [first!, second].map((a) => ({
        pk: { S: `conversation#${envelope.conversation_id}` },
        sk: { S: `attempt#${a.at}#${String(a.attempt).padStart(6, '0')}` },
        entry: { S: JSON.stringify({ ...a, conversation_id: envelope.conversation_id, response: null }) },
      })),
    });
    const third = { ...first!, attempt: 3, at: new Date(Date.parse(first!.at) + 2_000).toISOString(), via: 'resend' };
    const resent = { ...exported, execution: { ...exported.execution, delivery_attempts: [first!, second, third] } };
    sfnMock.on(StartSyncExecutionCommand).resolves(succeeded(resent as typeof exported));
    const result = await awsDeliveriesResend(clients(), STACK, envelope.conversation_id);
    expect(result.status).toBe('delivered');
    const [started] = sfnMock.commandCalls(StartSyncExecutionCommand).map((c) => c.args[0].input);
    expect(started!.name).toMatch(new RegExp(`^${envelope.conversation_id}-redelivery-3-[0-9a-f]{6}$`));
  });
});
