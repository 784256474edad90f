import { readFileSync } from 'node:fs';
import type { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { maxAsyncAgentTimeoutMs } from '../../functions/domain/budget.ts';
import { acceptedResult, prefersRespondAsync } from '../../functions/domain/gateway-contract.ts';
import { executionResultResponseTemplate, startSyncExecutionRequestTemplate } from '../../infra/api-templates.ts';
import { ConfigError, DEFAULT_CONFIG } from '../../infra/config.ts';
import { ACCEPT_DEFINITION_FILE } from '../../infra/constructs/accept-workflow.ts';
import {
  actionsOf,
  allPolicyStatements,
  cfnText,
  DELIVERY_URL_CONTEXT,
  functionRoleId,
  type Json,
  logicalId,
  resourcesOf,
  type Synthesized,
  synthesize,
} from './support/synth.ts';
import { DOMAIN_NAME, renderRequest, renderResponse } from './support/velocity.ts';

/**
 * Asynchronous starts on AWS (docs/contract.md#asynchronous-start-prefer-respond-async): Prefer: respond-async through
 * the same integration and request mapping as a synchronous POST (the accept workflow), the status route (a Lambda over
 * the status table) and the thread table.
 */
let synth: Synthesized;
let template: Template;
let resources: Record<string, { Type: string; Properties: Record<string, Json> }>;

beforeAll(() => {
  synth = synthesize({ context: DELIVERY_URL_CONTEXT });
  template = synth.template;
  resources = template.toJSON().Resources;
});
afterAll(() => synth?.cleanup());

const props = (id: string) => resources[id]!.Properties;
const id = (type: string, prefix: string) => logicalId(template, type, prefix);
const roleOf = (fn: string) => functionRoleId(template, fn);
/** Each role's actions on one resource (by logical id), sorted. */
function grantsOn(resourceId: string): Record<string, string[]> {
  const grants: Record<string, string[]> = {};
  for (const s of allPolicyStatements(template)) {
    if (s.statement.Effect !== 'Allow') continue;
    if (!resourcesOf(s.statement).some((r) => JSON.stringify(r).includes(`"${resourceId}"`))) continue;
    for (const role of s.roles) grants[role] = [...(grants[role] ?? []), ...actionsOf(s.statement)].sort();
  }
  return grants;
}

describe('tables: status and threads', () => {
  it('are on demand, encrypted, with point-in-time recovery and TTL on expires_at, keyed as the stores read them', () => {
    const status = id('AWS::DynamoDB::Table', 'AsyncConversationsStatus');
    const threads = id('AWS::DynamoDB::Table', 'AsyncConversationsThreads');
    const common = {
      BillingMode: 'PAY_PER_REQUEST',
      SSESpecification: { SSEEnabled: true },
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      TimeToLiveSpecification: { AttributeName: 'expires_at', Enabled: true },
    };
    expect(props(status)).toMatchObject({
      ...common,
      KeySchema: [{ AttributeName: 'conversation_id', KeyType: 'HASH' }],
    });
    expect(props(threads)).toMatchObject({
      ...common,
      KeySchema: [
        { AttributeName: 'thread', KeyType: 'HASH' },
        { AttributeName: 'turn', KeyType: 'RANGE' },
      ],
      AttributeDefinitions: expect.arrayContaining([{ AttributeName: 'turn', AttributeType: 'N' }]),
    });
  });

  it('least privilege: Validate writes running and takes turns, Export (of both workflows) finishes or updates a redelivered status and keeps turns, the scheduler updates a given-up one, the status route only reads', () => {
    expect(grantsOn(id('AWS::DynamoDB::Table', 'AsyncConversationsStatus'))).toEqual({
      [roleOf('Validate')]: ['dynamodb:PutItem'],
      [roleOf('Export')]: ['dynamodb:UpdateItem'],
      [id('AWS::IAM::Role', 'RedeliverySchedulerFunctionRole')]: ['dynamodb:UpdateItem'],
      [roleOf('ConversationStatus')]: ['dynamodb:GetItem'],
    });
    expect(grantsOn(id('AWS::DynamoDB::Table', 'AsyncConversationsThreads'))).toEqual({
      [roleOf('Validate')]: ['dynamodb:PutItem', 'dynamodb:Query', 'dynamodb:UpdateItem'],
      [roleOf('Export')]: ['dynamodb:PutItem'],
    });
  });
});

describe('the accept workflow', () => {
  it('is an Express state machine from statemachine/accept.asl.json, logged with data and traced', () => {
    const accept = id('AWS::StepFunctions::StateMachine', 'Accept');
    expect(props(accept)).toMatchObject({
      StateMachineType: 'EXPRESS',
      LoggingConfiguration: { Level: 'ALL', IncludeExecutionData: true },
      TracingConfiguration: { Enabled: true },
    });
    expect(JSON.parse(String(props(accept).DefinitionString))).toEqual(
      JSON.parse(readFileSync(ACCEPT_DEFINITION_FILE, 'utf8')),
    );
    expect(props(accept).DefinitionSubstitutions).toEqual({
      ValidateFunctionArn: { 'Fn::GetAtt': [id('AWS::Lambda::Function', 'FunctionsValidate'), 'Arn'] },
      ExportFunctionArn: { 'Fn::GetAtt': [id('AWS::Lambda::Function', 'FunctionsExport'), 'Arn'] },
      ConversationStateMachineArn: { Ref: id('AWS::StepFunctions::StateMachine', 'Workflow') },
      Partition: { Ref: 'AWS::Partition' },
    });
  });

  it('may start the conversation workflow (only it, asynchronously) and invoke Validate and Export, nothing else', () => {
    const role = id('AWS::IAM::Role', 'AcceptStateMachineRole');
    const statements = allPolicyStatements(template).filter((s) => s.roles.includes(role));
    const start = statements.filter((s) => actionsOf(s.statement).some((a) => a.startsWith('states:')));
    expect(start.map((s) => [actionsOf(s.statement), resourcesOf(s.statement)])).toEqual([
      [['states:StartExecution'], [{ Ref: id('AWS::StepFunctions::StateMachine', 'Workflow') }]],
    ]);
    const invoke = statements.filter((s) => actionsOf(s.statement).includes('lambda:InvokeFunction'));
    expect(invoke.flatMap((s) => resourcesOf(s.statement).map((r) => cfnText(r))).sort()).toEqual([
      ...[
        `{GetAtt:${id('AWS::Lambda::Function', 'FunctionsValidate')}.Arn}`,
        `{GetAtt:${id('AWS::Lambda::Function', 'FunctionsExport')}.Arn}`,
      ].sort(),
    ]);
  });
});

describe('POST /webhook with Prefer: respond-async (the request mapping shared with the sync route)', () => {
  const SYNC = 'arn:aws:states:eu-west-1:123456789012:stateMachine:Conversation';
  const ACCEPT = 'arn:aws:states:eu-west-1:123456789012:stateMachine:Accept';
  const requestTemplate = startSyncExecutionRequestTemplate(SYNC, ACCEPT);
  const started = (headers: Record<string, string>) => {
    const rendered = JSON.parse(renderRequest(requestTemplate, { body: '{"query":"x"}', headers }).output);
    return { arn: rendered.stateMachineArn as string, input: JSON.parse(rendered.input) };
  };

  it('starts the accept workflow exactly when prefersRespondAsync says so, with the same input as the sync route', () => {
    const cases: Record<string, string>[] = [
      {},
      { Prefer: 'respond-async' },
      { prefer: 'Respond-Async' },
      { Prefer: 'return=minimal, respond-async' },
      { Prefer: 'respond-async; wait=10' },
      { Prefer: 'respond-async=1' },
      { Prefer: 'wait=10' },
      { Prefer: 'respond-asynchronously' },
      { Prefer: 'handling=lenient,  respond-async  ' },
    ];
    for (const headers of cases) {
      const prefer = Object.entries(headers).find(([name]) => name.toLowerCase() === 'prefer')?.[1];
      const { arn, input } = started(headers);
      expect(arn, JSON.stringify(headers)).toBe(prefersRespondAsync(prefer) ? ACCEPT : SYNC);
      const sync = JSON.parse(
        JSON.parse(renderRequest(startSyncExecutionRequestTemplate(SYNC), { body: '{"query":"x"}', headers }).output)
          .input,
      );
      expect(input).toEqual(sync);
    }
  });

  it('answers the accept workflow output with the 202 of the contract: status URL, Location, Preference-Applied, Retry-After', () => {
    const accepted = {
      accepted: { conversation_id: 'webhook_20261201_101500_crm_nightly_a1b2c3', source_system: 'crm' },
    };
    const rendered = renderResponse(executionResultResponseTemplate(), {
      status: 'SUCCEEDED',
      output: JSON.stringify(accepted),
    });
    const expected = acceptedResult(accepted, `https://${DOMAIN_NAME}/prod`);
    expect(rendered.status).toBe(202);
    expect(JSON.parse(rendered.output)).toEqual(expected.body);
    expect(rendered.headers).toEqual(expected.headers);
    // A synchronous answer is untouched (200, the body as the workflow gave it).
    const body = { success: true, conversation_id: 'x', response: { accepted: 'not an acceptance' } };
    const sync = renderResponse(executionResultResponseTemplate(), {
      status: 'SUCCEEDED',
      output: JSON.stringify(body),
    });
    expect(sync.status).toBeUndefined();
    expect(sync.headers).toEqual({});
    expect(JSON.parse(sync.output)).toEqual(body);
  });

  it('gives the status URL on the API as the caller reached it: execute-api with its stage, a custom domain with its base path or none', () => {
    const accepted = {
      accepted: { conversation_id: 'webhook_20261201_101500_crm_nightly_a1b2c3', source_system: 'crm' },
    };
    const output = { status: 'SUCCEEDED', output: JSON.stringify(accepted) };
    const cases: [NonNullable<Parameters<typeof renderResponse>[2]>, string][] = [
      [{ stage: 'live', path: '/live/webhook' }, `https://${DOMAIN_NAME}/live`],
      [{ stage: 'live', path: '/live/webhook/' }, `https://${DOMAIN_NAME}/live`],
      [{ stage: 'live', domainName: 'api.example.com', path: '/webhook' }, 'https://api.example.com'],
      [{ stage: 'live', domainName: 'api.example.com', path: '/v1/webhook' }, 'https://api.example.com/v1'],
      [
        { stage: 'live', domainName: 'api.example.com', path: '/orders/v2/webhook' },
        'https://api.example.com/orders/v2',
      ],
      // A path not so shaped: the stage, as before.
      [{ stage: 'live', domainName: 'api.example.com', path: '/elsewhere' }, 'https://api.example.com/live'],
    ];
    for (const [request, base] of cases) {
      const rendered = renderResponse(executionResultResponseTemplate(), output, request);
      const expected = acceptedResult(accepted, base);
      expect(JSON.parse(rendered.output), JSON.stringify(request)).toEqual(expected.body);
      expect(rendered.headers.location, JSON.stringify(request)).toBe(expected.headers?.location);
    }
  });

  it('declares the 202 and its headers on the method', () => {
    const post = Object.values(
      template.findResources('AWS::ApiGateway::Method', { Properties: { HttpMethod: 'POST' } }),
    )[0]!;
    expect(post.Properties.MethodResponses).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          StatusCode: '202',
          ResponseParameters: {
            'method.response.header.Content-Type': false,
            'method.response.header.Location': false,
            'method.response.header.Preference-Applied': false,
            'method.response.header.Retry-After': false,
          },
        }),
      ]),
    );
  });
});

describe('GET /conversations/{conversation_id}', () => {
  it('is a Lambda proxy integration of the status function, without an API key when no sourceRateLimits', () => {
    const resource = Object.entries(template.findResources('AWS::ApiGateway::Resource')).find(
      ([, r]) => r.Properties.PathPart === '{conversation_id}',
    )!;
    const get = Object.values(
      template.findResources('AWS::ApiGateway::Method', {
        Properties: { HttpMethod: 'GET', ResourceId: { Ref: resource[0] } },
      }),
    )[0]!;
    expect(get.Properties.ApiKeyRequired).toBeFalsy();
    expect(get.Properties.Integration).toMatchObject({ Type: 'AWS_PROXY', IntegrationHttpMethod: 'POST' });
    expect(cfnText(get.Properties.Integration.Uri)).toContain(
      `{GetAtt:${id('AWS::Lambda::Function', 'FunctionsConversationStatus')}.Arn}`,
    );
  });

  it('answers HEAD with the same function as GET (the status without its body), as the local gateway does, not 405', () => {
    const resource = Object.entries(template.findResources('AWS::ApiGateway::Resource')).find(
      ([, r]) => r.Properties.PathPart === '{conversation_id}',
    )!;
    const method = (httpMethod: string) =>
      Object.values(
        template.findResources('AWS::ApiGateway::Method', {
          Properties: { HttpMethod: httpMethod, ResourceId: { Ref: resource[0] } },
        }),
      )[0]!.Properties;
    expect(method('HEAD')).toEqual({ ...method('GET'), HttpMethod: 'HEAD' });
  });

  it('is in the outputs, with the tables and the accept workflow', () => {
    const outputs = template.toJSON().Outputs as Record<string, { Value: Json }>;
    expect(cfnText(outputs.StatusUrlTemplate!.Value)).toMatch(/\/conversations\/\{conversation_id\}$/);
    expect(outputs.StatusTableName!.Value).toEqual({ Ref: id('AWS::DynamoDB::Table', 'AsyncConversationsStatus') });
    expect(outputs.ThreadTableName!.Value).toEqual({ Ref: id('AWS::DynamoDB::Table', 'AsyncConversationsThreads') });
    expect(outputs.AcceptStateMachineArn!.Value).toEqual({ Ref: id('AWS::StepFunctions::StateMachine', 'Accept') });
    // Where the status route's WEBHOOK_STATUS_REJECTED lines land: no other output names its function's log group.
    expect(outputs.StatusLogGroupName!.Value).toEqual({
      Ref: id('AWS::Logs::LogGroup', 'FunctionsConversationStatusLogGroup'),
    });
  });
});

describe('context asyncAgentTimeoutMs', () => {
  it('defaults to 120 s and refuses what an Express execution cannot hold with its deliveries', () => {
    expect(DEFAULT_CONFIG.asyncAgentTimeoutMs).toBe(120_000);
    const max = maxAsyncAgentTimeoutMs(DEFAULT_CONFIG.deliveryTimeoutMs);
    expect(() => synthesize({ context: { ...DELIVERY_URL_CONTEXT, asyncAgentTimeoutMs: max + 1000 } })).toThrow(
      ConfigError,
    );
  });
});
