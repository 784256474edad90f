import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import {
  BatchGetItemCommand,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { S3Client } from '@aws-sdk/client-s3';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SFNClient, StartSyncExecutionCommand } from '@aws-sdk/client-sfn';
import { ReceiveMessageCommand, SendMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { Template } from 'aws-cdk-lib/assertions';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { ConversationState } from '../../functions/domain/conversation.ts';
import { withAgentAnswer } from '../../functions/domain/lifecycle.ts';
import { afterAttempt, pendingEnvelope, sqsMessage, succeeded } from '../support/aws-fixtures.ts';
import { executionInput, SEED_REQUEST, startedRecord } from '../support/fixtures.ts';
import {
  actionsOf,
  allPolicyStatements,
  DELIVERY_URL_CONTEXT,
  functionId,
  type Json,
  logicalId,
  resourcesOf,
  type Statement,
  type Synthesized,
  synthesize,
} from './support/synth.ts';

/**
 * Every AWS call a stage makes is one its role allows. The grants in infra/constructs/ are written by hand, action by
 * action: this runs the handlers with the environment the synthesized template gives their function (a `Ref` read as
 * the referenced resource's logical id) against mocked AWS clients, along the paths that reach each store, and
 * matches every command they sent (its IAM action, and the table, bucket or secret it names) against the role's
 * statements. Validate's role once lacked dynamodb:DeleteItem for freeing a key it claimed: only AWS showed it.
 */
let synth: Synthesized;
let template: Template;
let resources: Record<string, { Type: string; Properties: Record<string, Json> }>;
let receiver: Server;
let receiverUrl: string;
const dynamo = mockClient(DynamoDBClient);
const s3 = mockClient(S3Client);
const secrets = mockClient(SecretsManagerClient);
const sqs = mockClient(SQSClient);
const sfn = mockClient(SFNClient);
const clients = { dynamodb: dynamo, s3, secretsmanager: secrets, sqs, states: sfn };
/** Batch commands are authorized as their single-message action (SQS API reference). */
const BATCH_ACTIONS: Record<string, string> = { 'sqs:ChangeMessageVisibilityBatch': 'sqs:ChangeMessageVisibility' };
const ENV_BEFORE = { ...process.env };

beforeAll(async () => {
  synth = synthesize({ context: DELIVERY_URL_CONTEXT });
  template = synth.template;
  resources = template.toJSON().Resources;
  receiver = createServer((req, res) => {
    req.resume().on('end', () => res.writeHead(200).end('ok'));
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks`;
});
afterAll(async () => {
  synth?.cleanup();
  await new Promise((resolve) => receiver?.close(resolve));
});
afterEach(() => {
  for (const mock of Object.values(clients)) mock.reset();
  for (const name of Object.keys(process.env)) if (!(name in ENV_BEFORE)) delete process.env[name];
  Object.assign(process.env, ENV_BEFORE);
});

/** A template value as a string: a Ref is the referenced resource's logical id (a table's name, a secret's ARN). */
function resolved(value: Json): string {
  if (typeof value === 'string') return value;
  const v = value as { Ref?: string; 'Fn::GetAtt'?: string[]; 'Fn::Join'?: [string, Json[]] };
  if (v.Ref) return v.Ref;
  if (v['Fn::GetAtt']) return v['Fn::GetAtt'].join('.');
  if (v['Fn::Join']) return v['Fn::Join'][1].map(resolved).join(v['Fn::Join'][0]);
  return JSON.stringify(value);
}

/** A stage's function (`Functions<Stage>`), or the redelivery scheduler's. */
const lambdaId = (stage: string) =>
  stage === 'RedeliveryScheduler'
    ? logicalId(template, 'AWS::Lambda::Function', 'RedeliverySchedulerFunction')
    : functionId(template, stage);

/** Set the function's environment as the template has it (its webhook URLs pointed at a local receiver). */
function useEnvironment(stage: string): void {
  const variables = (resources[lambdaId(stage)]!.Properties.Environment as { Variables: Record<string, Json> })
    .Variables;
  for (const [name, value] of Object.entries(variables)) process.env[name] = resolved(value);
  for (const name of Object.keys(variables).filter((n) => n.endsWith('_WEBHOOK_URL'))) process.env[name] = receiverUrl;
  process.env.POWERTOOLS_TRACE_ENABLED = 'false';
}

interface Call {
  action: string;
  resource: string;
  /** The partition key of the item a DynamoDB write names (`dynamodb:LeadingKeys`). */
  leadingKey?: string;
}

/** Every command the mocked clients were sent, as its IAM action and the resource it names. */
function callsMade(): Call[] {
  return Object.entries(clients).flatMap(([service, mock]) =>
    mock.calls().map((call) => {
      const command = call.args[0] as unknown as { constructor: { name: string }; input: Record<string, unknown> };
      const input = command.input;
      const action = `${service}:${command.constructor.name.replace(/Command$/, '')}`;
      const batchTable = input.RequestItems ? Object.keys(input.RequestItems as object)[0] : undefined;
      const item = (input.Key ?? input.Item) as { pk?: { S?: string } } | undefined;
      return {
        action: BATCH_ACTIONS[action] ?? action,
        resource: String(
          input.TableName ??
            batchTable ??
            input.Bucket ??
            input.SecretId ??
            input.QueueUrl ??
            input.stateMachineArn ??
            '?',
        ),
        ...(item?.pk?.S ? { leadingKey: item.pk.S } : {}),
      };
    }),
  );
}

const glob = (pattern: string) => new RegExp(`^${pattern.replace(/[.+?^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*')}$`);

/** A statement's `dynamodb:LeadingKeys` condition holds for the call (none: it holds). */
function leadingKeysAllow(statement: Statement, call: Call): boolean {
  const patterns = statement.Condition?.['ForAllValues:StringLike']?.['dynamodb:LeadingKeys'] as string[] | undefined;
  if (!patterns) return true;
  return call.leadingKey !== undefined && patterns.some((pattern) => glob(pattern).test(call.leadingKey!));
}

/**
 * The calls the stage's role does not allow: no Allow statement with the action on a resource naming its id (and,
 * where the statement limits the items by their partition key, on such an item).
 */
function refused(stage: string, calls: Call[]) {
  const role = String((resources[lambdaId(stage)]!.Properties.Role as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0]);
  const statements = allPolicyStatements(template)
    .filter((s) => s.roles.includes(role) && s.statement.Effect === 'Allow')
    .map((s) => s.statement);
  return calls.filter(
    (call) =>
      !statements.some(
        (s) =>
          actionsOf(s).some((action) => glob(action).test(call.action)) &&
          resourcesOf(s).some((r) => r === '*' || JSON.stringify(r).includes(`"${call.resource}"`)) &&
          leadingKeysAllow(s, call),
      ),
  );
}

const REQUEST = { ...SEED_REQUEST, thread_id: 'perm-thread' };
const KEYED = { 'idempotency-key': 'perm-key-1' };

function storesAnswer(): void {
  secrets.on(GetSecretValueCommand).resolves({ SecretString: '{}' });
  dynamo.on(PutItemCommand).resolves({});
  dynamo.on(GetItemCommand).resolves({});
  dynamo.on(DeleteItemCommand).resolves({});
  dynamo.on(UpdateItemCommand).resolves({ Attributes: { last_turn: { N: '2' } } });
  dynamo.on(QueryCommand).resolves({ Items: [] });
  s3.onAnyCommand().resolves({});
}

describe('every AWS call a stage makes is allowed by its role (the synthesized template)', () => {
  it('Validate: a keyed, threaded request, synchronous and asynchronous, and a key freed when the start fails', async () => {
    useEnvironment('Validate');
    storesAnswer();
    const { handler } = await import('../../functions/validate/handler.ts');
    const input = executionInput(REQUEST, { headers: { 'content-type': 'application/json', ...KEYED } });
    expect(await handler(input)).toMatchObject({ valid: true, duplicate: false });
    expect(
      await handler({
        accept: executionInput(REQUEST, { headers: { ...input.headers, 'idempotency-key': 'perm-key-2' } }),
      }),
    ).toMatchObject({ valid: true });
    // The async status cannot be written: the claimed key is freed (DeleteItem) before the error goes on.
    dynamo.on(PutItemCommand, { TableName: process.env.STATUS_TABLE_NAME }).rejects(new Error('status refused'));
    const failing = executionInput(REQUEST, { headers: { ...input.headers, 'idempotency-key': 'perm-key-3' } });
    await expect(handler({ accept: failing })).rejects.toThrow('status refused');
    // The thread's counter expired (TTL has not deleted it yet): the claim puts turn 1 instead.
    dynamo
      .on(UpdateItemCommand, { TableName: process.env.THREAD_TABLE_NAME })
      .rejects(new ConditionalCheckFailedException({ message: 'expired', $metadata: {} }));
    const restarting = executionInput(REQUEST, { headers: { ...input.headers, 'idempotency-key': 'perm-key-4' } });
    expect(await handler(restarting)).toMatchObject({ valid: true });
    const calls = callsMade();
    expect(calls.map((c) => c.action)).toEqual(expect.arrayContaining(['dynamodb:DeleteItem', 'dynamodb:Query']));
    expect(calls).toContainEqual({ action: 'dynamodb:PutItem', resource: process.env.THREAD_TABLE_NAME });
    expect(refused('Validate', calls)).toEqual([]);
  });

  it('Export: an asynchronous threaded conversation with a key (S3, the key completed, the status, the turn), and a failed one (the key freed)', async () => {
    useEnvironment('Export');
    storesAnswer();
    const { handler } = await import('../../functions/export/handler.ts');
    const base = startedRecord(REQUEST, { input: { headers: { 'content-type': 'application/json', ...KEYED } } });
    const record = {
      ...withAgentAnswer(base, { response: 'Three deals.' }, 5, new Date()),
      metadata: { ...base.metadata, response_mode: 'async' as const, thread_turn: 2 },
    };
    await handler({ state: { conversation: record } as ConversationState, execution_name: 'perm-1' });
    const failed = { conversation: record, agent_error: { Error: 'Lambda.Unknown', Cause: 'crashed' } };
    await handler({ state: { ...failed, conversation: base } as ConversationState, execution_name: 'perm-2' });
    const calls = callsMade();
    expect(calls.map((c) => c.action)).toEqual(
      expect.arrayContaining(['s3:PutObject', 'dynamodb:UpdateItem', 'dynamodb:PutItem', 'dynamodb:DeleteItem']),
    );
    expect(refused('Export', calls)).toEqual([]);
  });

  it('Deliver: the receiver configuration, the attempt log and the health of a delivery', async () => {
    useEnvironment('Deliver');
    storesAnswer();
    const { handler } = await import('../../functions/deliver/handler.ts');
    const record = withAgentAnswer(startedRecord(REQUEST), { response: 'Three deals.' }, 5, new Date());
    const state = {
      conversation: {
        ...record,
        webhook_context: { ...record.webhook_context, webhook_type: 'deal_analysis' as const },
      },
    };
    await handler({ state: state as ConversationState, retry_count: 0, execution_name: 'perm-3' });
    // A retry of the state with no time left: queued with the attempts of the tries before it, read from the log.
    const late = new Date(Date.now() - 1_000).toISOString();
    const due = { ...state, budget: { agent_seconds: 20, deliver_by: late, answer_by: late } };
    const retry = handler({ state: due as ConversationState, retry_count: 1, execution_name: 'perm-4' });
    await expect(retry).rejects.toMatchObject({ name: 'DeliveryDeferredError' });
    const calls = callsMade();
    expect(calls.map((c) => c.action)).toContain('dynamodb:Query');
    expect(refused('Deliver', calls)).toEqual([]);
  });

  it('the redelivery scheduler: the receivers, a due envelope claimed, its attempt log read and its run started, another given up (its export and status), the queues worked', async () => {
    useEnvironment('RedeliveryScheduler');
    storesAnswer();
    dynamo.on(BatchGetItemCommand).resolves({ Responses: {} });
    sqs.on(SendMessageCommand).resolves({ MessageId: 'new' });
    const due = pendingEnvelope('perm001', new Date(Date.now() - 60_000));
    // Its fifth failed run in a row: the scheduler writes its export and its status itself, then dead-letters it.
    const last = pendingEnvelope('perm002', new Date(Date.now() - 60_000), { failed_runs: 4 });
    const givenUp = {
      ...last,
      conversation: { ...last.conversation, metadata: { ...last.conversation.metadata, response_mode: 'async' } },
    };
    sqs
      .on(ReceiveMessageCommand)
      .resolvesOnce({ Messages: [sqsMessage(due), sqsMessage(givenUp)] })
      .resolves({});
    // The due one is delivered (its claim released), the other's run fails.
    sfn
      .on(StartSyncExecutionCommand)
      .callsFake((input: { name: string }) =>
        input.name.startsWith(due.conversation_id)
          ? succeeded(afterAttempt(due, 'delivered'))
          : { status: 'FAILED', error: 'States.Runtime', cause: 'boom' },
      );
    const { handler } = await import('../../functions/redelivery-scheduler/handler.ts');
    const context = { awsRequestId: 'perm-5', getRemainingTimeInMillis: () => 290_000 } as unknown as Context;
    expect(await handler({}, context)).toMatchObject({ failed_executions: 1 });
    const calls = callsMade();
    expect(calls.map((c) => c.action)).toEqual(
      expect.arrayContaining([
        'dynamodb:BatchGetItem',
        'dynamodb:PutItem',
        'dynamodb:Query',
        'dynamodb:DeleteItem',
        'dynamodb:UpdateItem',
        's3:PutObject',
        'sqs:ReceiveMessage',
        'sqs:SendMessage',
        'sqs:DeleteMessage',
        'states:StartSyncExecution',
      ]),
    );
    // The given-up envelope goes to the dead-letter queue; the messages both came in are deleted.
    expect(calls.filter((c) => c.action === 'sqs:SendMessage').map((c) => c.resource)).toEqual([
      process.env.FAILED_DELIVERY_DLQ_URL,
    ]);
    expect(refused('RedeliveryScheduler', calls)).toEqual([]);
  });

  it("the status route: the inbound secrets and the conversation's status", async () => {
    useEnvironment('ConversationStatus');
    storesAnswer();
    const { handler } = await import('../../functions/conversation-status/handler.ts');
    const record = startedRecord(REQUEST);
    const answer = await handler({
      pathParameters: { conversation_id: record.conversation_id },
      queryStringParameters: { source_system: record.webhook_context.source_system },
      headers: {},
    });
    expect(answer.statusCode).toBe(404);
    const calls = callsMade();
    // Its inbound secrets may come from the process's cache (Validate above read the same secret).
    expect(calls.map((c) => c.action)).toContain('dynamodb:GetItem');
    expect(refused('ConversationStatus', calls)).toEqual([]);
  });

  it('the check itself refuses what a role lacks', () => {
    expect(refused('Classify', [{ action: 'dynamodb:DeleteItem', resource: 'AnyTable' }])).toHaveLength(1);
    const table = logicalId(template, 'AWS::DynamoDB::Table', 'Idempotency');
    expect(refused('Deliver', [{ action: 'dynamodb:PutItem', resource: table }])).toHaveLength(1);
    // The scheduler writes only its redelivery claims in the deliveries table, never a receiver's item.
    const deliveries = logicalId(template, 'AWS::DynamoDB::Table', 'DeliveriesTable');
    const write = { action: 'dynamodb:PutItem', resource: deliveries };
    expect(refused('RedeliveryScheduler', [{ ...write, leadingKey: 'conversation#webhook_1' }])).toEqual([]);
    expect(refused('RedeliveryScheduler', [{ ...write, leadingKey: 'endpoint#deal_analysis' }])).toHaveLength(1);
  });
});
