import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FAILURE_STATUS, JSON_CONTENT_TYPE, TIMED_OUT_STATUS } from '../../functions/domain/gateway-contract.ts';
import {
  executionResultResponseTemplate,
  startFailedResponseTemplate,
  startSyncExecutionRequestTemplate,
  WEBHOOK_STATUS_CODES,
} from '../../infra/api-templates.ts';
import { DEFAULT_CONFIG } from '../../infra/config.ts';
import { DEFINITION_FILE } from '../../infra/constructs/conversation-workflow.ts';
import { PROJECT_ROOT } from '../../infra/constructs/stage-function.ts';
import { OPTIONAL_STACK_OUTPUTS, STACK_OUTPUTS } from '../../infra/webhook-gateway-stack.ts';
import {
  actionsOf,
  allPolicyStatements,
  cfnText,
  DELIVERY_URL_CONTEXT,
  functionId,
  functionRoleId,
  type Json,
  logicalId,
  resourcesOf,
  type Synthesized,
  synthesize,
} from './support/synth.ts';

// One synthesis for the whole file. The functions are not bundled here (test/infra/functions.test.ts bundles them).
let synth: Synthesized;
let template: Template;
let resources: Record<string, { Type: string; Properties: Record<string, Json>; DeletionPolicy?: string }>;

const URLS = DELIVERY_URL_CONTEXT;

/** The header mapping of every answer API Gateway makes itself: the local gateway's Content-Type. */
const CONTENT_TYPE_MAPPING = { 'method.response.header.Content-Type': `'${JSON_CONTENT_TYPE}'` };

beforeAll(() => {
  // Defaults from cdk.json, plus the four delivery URLs an operator sets.
  synth = synthesize({ context: URLS, cfnValidation: true });
  template = synth.template;
  resources = template.toJSON().Resources;
});
afterAll(() => synth?.cleanup());

const props = (id: string) => (resources[id] as { Properties: Record<string, Json> }).Properties;

const STAGES = ['Validate', 'Classify', 'Deliver', 'Export'] as const;
const fnId = (name: (typeof STAGES)[number]) => functionId(template, name);
const roleOf = (name: (typeof STAGES)[number]) => functionRoleId(template, name);
const stateMachineId = () => logicalId(template, 'AWS::StepFunctions::StateMachine', 'Workflow');
const acceptStateMachineId = () => logicalId(template, 'AWS::StepFunctions::StateMachine', 'Accept');

describe('API: POST /webhook → StartSyncExecution', () => {
  const webhookPost = () => {
    const methods = template.findResources('AWS::ApiGateway::Method', { Properties: { HttpMethod: 'POST' } });
    expect(Object.keys(methods)).toHaveLength(1);
    return Object.values(methods)[0]?.Properties as {
      Integration: Record<string, Json>;
      MethodResponses: { StatusCode: string }[];
      AuthorizationType: string;
    };
  };

  it('is a direct AWS integration with Step Functions (no Lambda), with its own role', () => {
    const { Integration } = webhookPost();
    expect(Integration.Type).toBe('AWS');
    expect(Integration.IntegrationHttpMethod).toBe('POST');
    expect(cfnText(Integration.Uri)).toMatch(/^arn:.*:apigateway:.*:states:action\/StartSyncExecution$/);
    expect(cfnText(Integration.Credentials)).toBe(
      `{GetAtt:${logicalId(template, 'AWS::IAM::Role', 'ApiStartExecutionRole')}.Arn}`,
    );
    expect(Integration.PassthroughBehavior).toBe('NEVER');
  });

  it('uses the generated request template, for application/json only', () => {
    const templates = webhookPost().Integration.RequestTemplates as Record<string, Json>;
    expect(Object.keys(templates)).toEqual(['application/json']);
    // Prefer: respond-async picks the accept workflow in the same template (test/infra/async-conversations.test.ts).
    expect(cfnText(templates['application/json'])).toBe(
      startSyncExecutionRequestTemplate(`{Ref:${stateMachineId()}}`, `{Ref:${acceptStateMachineId()}}`),
    );
  });

  it('maps every finished execution (HTTP 200) and every refusal (4xx/5xx) with the generated response templates', () => {
    const responses = webhookPost().Integration.IntegrationResponses as {
      StatusCode: string;
      SelectionPattern?: string;
      ResponseTemplates: Record<string, string>;
    }[];
    expect(responses).toEqual([
      {
        StatusCode: '200',
        ResponseTemplates: { 'application/json': executionResultResponseTemplate() },
        ResponseParameters: CONTENT_TYPE_MAPPING,
      },
      {
        StatusCode: '500',
        SelectionPattern: '[45]\\d{2}',
        ResponseTemplates: { 'application/json': startFailedResponseTemplate() },
        ResponseParameters: CONTENT_TYPE_MAPPING,
      },
    ]);
    const finished = responses[0]?.ResponseTemplates['application/json'] ?? '';
    for (const [error, status] of Object.entries(FAILURE_STATUS)) {
      expect(finished).toMatch(
        new RegExp(`\\$error == "${error}"\\)\\n#set\\(\\$context\\.responseOverride\\.status = ${status}\\)`),
      );
    }
    expect(finished).toContain(
      `#elseif($status == "TIMED_OUT")\n#set($context.responseOverride.status = ${TIMED_OUT_STATUS})`,
    );
    expect(finished).toContain('#else\n#set($context.responseOverride.status = 500)');
  });

  it('declares every status it can answer, with the headers its templates set (the 202’s, the 429’s Retry-After)', () => {
    expect(webhookPost().MethodResponses.map((r) => Number(r.StatusCode))).toEqual([...WEBHOOK_STATUS_CODES]);
    const headersOf = (status: number) =>
      Object.keys(
        (webhookPost().MethodResponses.find((r) => Number(r.StatusCode) === status) as { ResponseParameters?: object })
          .ResponseParameters ?? {},
      );
    expect(headersOf(429)).toEqual(['method.response.header.Content-Type', 'method.response.header.Retry-After']);
    // StorageUnavailable's (functions/domain/gateway-contract.ts, FAILURE_HEADERS).
    expect(headersOf(503)).toEqual(['method.response.header.Content-Type', 'method.response.header.Retry-After']);
    expect(headersOf(202)).toEqual([
      'method.response.header.Content-Type',
      'method.response.header.Location',
      'method.response.header.Preference-Applied',
      'method.response.header.Retry-After',
    ]);
    expect(headersOf(200)).toEqual(['method.response.header.Content-Type']);
    for (const status of WEBHOOK_STATUS_CODES)
      expect(headersOf(status)).toContain('method.response.header.Content-Type');
    expect(WEBHOOK_STATUS_CODES).toEqual(
      expect.arrayContaining([200, ...Object.values(FAILURE_STATUS), 413, 429, 500, TIMED_OUT_STATUS]),
    );
  });

  it('answers other methods on /webhook, /conversations/{id} and /health with a 405 mock that says what is allowed', () => {
    const anyMethods = template.findResources('AWS::ApiGateway::Method', { Properties: { HttpMethod: 'ANY' } });
    expect(Object.keys(anyMethods)).toHaveLength(3);
    let statusRoutes = 0;
    const allowed = Object.values(anyMethods).map((method) => {
      expect(method.Properties.Integration).toMatchObject({
        Type: 'MOCK',
        IntegrationResponses: [{ StatusCode: '405' }],
      });
      // The status route's 405 is no-store too, as its every answer (docs/contract.md#get-conversationsid).
      const status = JSON.stringify(method.Properties.ResourceId).includes('conversationid');
      if (status) statusRoutes += 1;
      expect(method.Properties.MethodResponses).toEqual([
        expect.objectContaining({
          StatusCode: '405',
          ResponseParameters: {
            'method.response.header.Content-Type': false,
            'method.response.header.Allow': false,
            ...(status ? { 'method.response.header.Cache-Control': false } : {}),
          },
        }),
      ]);
      expect(method.Properties.Integration.IntegrationResponses[0].ResponseParameters).toEqual(
        expect.objectContaining(
          status
            ? { 'method.response.header.Cache-Control': "'no-store'" }
            : { 'method.response.header.Allow': expect.any(String) },
        ),
      );
      if (!status)
        expect(method.Properties.Integration.IntegrationResponses[0].ResponseParameters).not.toHaveProperty(
          'method.response.header.Cache-Control',
        );
      expect(method.Properties.Integration.IntegrationResponses[0].ResponseParameters).toMatchObject(
        CONTENT_TYPE_MAPPING,
      );
      return method.Properties.Integration.IntegrationResponses[0].ResponseParameters['method.response.header.Allow'];
    });
    expect(allowed.sort()).toEqual(["'GET, HEAD'", "'GET, HEAD'", "'POST'"]);
    expect(statusRoutes).toBe(1);
  });
});

describe('API: GET /health, gateway responses, stage', () => {
  it('answers HEAD /health as GET /health (the same mock), as the local gateway does, not 405', () => {
    const mocks = (method: string) =>
      Object.values(template.findResources('AWS::ApiGateway::Method', { Properties: { HttpMethod: method } }))
        .map((m) => m.Properties)
        .filter((p) => p.Integration.Type === 'MOCK');
    expect(mocks('HEAD')).toHaveLength(1);
    expect(mocks('HEAD')[0]).toEqual({ ...mocks('GET')[0], HttpMethod: 'HEAD' });
  });

  it('answers GET /health with a mock: the workflow is not involved', () => {
    template.hasResourceProperties('AWS::ApiGateway::Method', {
      HttpMethod: 'GET',
      Integration: {
        Type: 'MOCK',
        IntegrationResponses: [
          { StatusCode: '200', ResponseTemplates: { 'application/json': Match.stringLikeRegexp('"status":"ok"') } },
        ],
      },
    });
  });

  it('gives the contract body for 415, 413, 404, 429 and 504 raised by API Gateway itself', () => {
    const expected: Record<string, string> = {
      UNSUPPORTED_MEDIA_TYPE: '415',
      REQUEST_TOO_LARGE: '413',
      MISSING_AUTHENTICATION_TOKEN: '404',
      THROTTLED: '429',
      INTEGRATION_TIMEOUT: '504',
    };
    for (const [type, status] of Object.entries(expected)) {
      template.hasResourceProperties('AWS::ApiGateway::GatewayResponse', {
        ResponseType: type,
        StatusCode: status,
        ResponseTemplates: { 'application/json': Match.stringLikeRegexp('^\\{"success":false,"error":\\{"code":') },
      });
    }
    template.hasResourceProperties('AWS::ApiGateway::GatewayResponse', { ResponseType: 'DEFAULT_4XX' });
    template.hasResourceProperties('AWS::ApiGateway::GatewayResponse', { ResponseType: 'DEFAULT_5XX' });
  });

  it('says application/json; charset=utf-8 in every answer API Gateway gives itself, as the local gateway does, with the contract’s error shape', () => {
    const gatewayResponses = Object.values(template.findResources('AWS::ApiGateway::GatewayResponse'));
    expect(gatewayResponses.map((r) => r.Properties.ResponseType).sort()).toEqual(
      expect.arrayContaining(['DEFAULT_4XX', 'DEFAULT_5XX', 'INTEGRATION_TIMEOUT', 'THROTTLED']),
    );
    for (const { Properties } of gatewayResponses) {
      expect(Properties.ResponseParameters, Properties.ResponseType).toMatchObject({
        'gatewayresponse.header.Content-Type': `'${JSON_CONTENT_TYPE}'`,
      });
      // The body: {"success": false, "error": {"code", "message"}} (the generic ones with $context values in it).
      const body = (Properties.ResponseTemplates['application/json'] as string)
        .replace('"$context.error.responseType"', '"DEFAULT_4XX"')
        .replace('$context.error.messageString', '"Forbidden"');
      expect(JSON.parse(body), Properties.ResponseType).toEqual({
        success: false,
        error: expect.objectContaining({ code: expect.any(String), message: expect.any(String) }),
      });
    }
    // The integration's and the mocks' answers: POST /webhook's every status, the 405s and GET (and HEAD) /health.
    const methods = Object.values(template.findResources('AWS::ApiGateway::Method')).filter(
      (m) => m.Properties.Integration.Type !== 'AWS_PROXY',
    );
    expect(methods).toHaveLength(6);
    for (const { Properties } of methods) {
      for (const response of Properties.Integration.IntegrationResponses) {
        expect(response.ResponseParameters).toMatchObject(CONTENT_TYPE_MAPPING);
      }
      for (const response of Properties.MethodResponses) {
        expect(response.ResponseParameters).toMatchObject({ 'method.response.header.Content-Type': false });
      }
    }
  });

  it("API Gateway's own timeout names the route it cut: POST /webhook's conversation goes on, a status may be asked again", () => {
    const [timeout] = Object.values(template.findResources('AWS::ApiGateway::GatewayResponse')).filter(
      (r) => r.Properties.ResponseType === 'INTEGRATION_TIMEOUT',
    );
    const body = timeout!.Properties.ResponseTemplates['application/json'] as string;
    // A gateway response's template is substituted, not run by Velocity: no directive can choose by route.
    expect(body).not.toMatch(/#(if|set|foreach)/);
    const rendered = (method: string, resourcePath: string) =>
      JSON.parse(body.replaceAll('$context.httpMethod', method).replaceAll('$context.resourcePath', resourcePath));
    const status = rendered('GET', '/conversations/{conversation_id}');
    expect(status).toEqual({ success: false, error: { code: 'TIMEOUT', message: expect.any(String) } });
    expect(status.error.message).toMatch(/^GET \/conversations\/\{conversation_id\} did not answer within/);
    expect(status.error.message).toContain('may be asked again');
    expect(status.error.message).not.toMatch(/^The conversation did not finish/);
    expect(rendered('POST', '/webhook').error.message).toMatch(
      /^POST \/webhook did not answer within .*its record is exported when it completes: sent again after Retry-After with the same Idempotency-Key, it is answered 409 while it runs, then with its answer and conversation id/,
    );
    // When to send it again (before: none), as the 409 that retry meets says.
    expect(timeout!.Properties.ResponseParameters['gatewayresponse.header.Retry-After']).toBe("'2'");
  });

  it('the answers API Gateway may give GET /conversations/{id} when its Lambda fails or is slow are no-store too', () => {
    for (const type of ['DEFAULT_4XX', 'DEFAULT_5XX', 'INTEGRATION_TIMEOUT']) {
      template.hasResourceProperties('AWS::ApiGateway::GatewayResponse', {
        ResponseType: type,
        ResponseParameters: { 'gatewayresponse.header.Cache-Control': "'no-store'" },
      });
    }
  });

  it('is a regional REST API named after the stack whose stage traces and throttles, without logging by default', () => {
    template.hasResourceProperties('AWS::ApiGateway::RestApi', {
      Name: synth.stack.stackName,
      EndpointConfiguration: { Types: ['REGIONAL'] },
    });
    const stage = Object.values(template.findResources('AWS::ApiGateway::Stage'))[0]?.Properties as Record<
      string,
      Json
    >;
    expect(stage.StageName).toBe(DEFAULT_CONFIG.stageName);
    expect(stage.TracingEnabled).toBe(true);
    // API Gateway logs with the account-wide role of its account settings, which a new account does not have:
    // with logging on, the first deploy there fails. On with apiLogging (see config.test.ts).
    expect(stage.AccessLogSetting).toBeUndefined();
    expect(Object.keys(template.findResources('AWS::ApiGateway::Account'))).toEqual([]);
    expect(stage.MethodSettings).toEqual([
      expect.objectContaining({
        HttpMethod: '*',
        ResourcePath: '/*',
        LoggingLevel: 'OFF',
        DataTraceEnabled: false,
        ThrottlingRateLimit: DEFAULT_CONFIG.throttlingRateLimit,
        ThrottlingBurstLimit: DEFAULT_CONFIG.throttlingBurstLimit,
      }),
    ]);
  });
});

describe('workflow', () => {
  it('is an Express state machine loaded from statemachine/conversation.asl.json', () => {
    const sm = props(stateMachineId());
    expect(sm.StateMachineType).toBe('EXPRESS');
    // Inline, so the template shows the definition Step Functions receives.
    expect(sm.DefinitionString).toBe(readFileSync(DEFINITION_FILE, 'utf8'));
  });

  it('substitutes every placeholder: no ${ is left in the deployed definition', () => {
    const sm = props(stateMachineId());
    const substitutions = sm.DefinitionSubstitutions as Record<string, Json>;
    const definition = readFileSync(DEFINITION_FILE, 'utf8');
    const placeholders = [...new Set([...definition.matchAll(/\$\{(\w+)\}/g)].map((m) => m[1]))].sort();
    expect(Object.keys(substitutions).sort()).toEqual(placeholders);
    const deployed = definition.replace(/\$\{(\w+)\}/g, (_, name: string) => cfnText(substitutions[name]));
    expect(deployed).not.toContain('${');
    expect(() => JSON.parse(deployed)).not.toThrow();
  });

  it('points each task at the right function and the queue', () => {
    const substitutions = props(stateMachineId()).DefinitionSubstitutions as Record<string, Json>;
    expect(substitutions).toEqual({
      ValidateFunctionArn: { 'Fn::GetAtt': [fnId('Validate'), 'Arn'] },
      // The agent, region- and account-agnostic: InvokeManagerAgent's FunctionName (lambda:invoke).
      AgentFunctionArn: {
        'Fn::Join': [
          '',
          [
            'arn:',
            { Ref: 'AWS::Partition' },
            ':lambda:',
            { Ref: 'AWS::Region' },
            ':',
            { Ref: 'AWS::AccountId' },
            `:function:${DEFAULT_CONFIG.agentFunctionName}`,
          ],
        ],
      },
      ClassifyFunctionArn: { 'Fn::GetAtt': [fnId('Classify'), 'Arn'] },
      DeliverFunctionArn: { 'Fn::GetAtt': [fnId('Deliver'), 'Arn'] },
      ExportFunctionArn: { 'Fn::GetAtt': [fnId('Export'), 'Arn'] },
      FailedDeliveryQueueUrl: { Ref: logicalId(template, 'AWS::SQS::Queue', 'FailedDeliveryQueue') },
      Partition: { Ref: 'AWS::Partition' },
    });
  });

  it("names the service integrations in the stack's partition (aws-cn, aws-us-gov), never a literal `arn:aws:`", () => {
    for (const id of Object.keys(template.findResources('AWS::StepFunctions::StateMachine'))) {
      const definition = cfnText(props(id).DefinitionString as Json);
      expect(definition).not.toMatch(/"arn:aws:/);
      if (definition.includes(':states:::')) expect(definition).toContain('"arn:${Partition}:states:::');
    }
  });

  it('logs ALL events with execution data to its own log group, and traces with X-Ray', () => {
    const sm = props(stateMachineId());
    expect(sm.LoggingConfiguration).toEqual({
      Level: 'ALL',
      IncludeExecutionData: true,
      Destinations: [
        {
          CloudWatchLogsLogGroup: {
            LogGroupArn: { 'Fn::GetAtt': [logicalId(template, 'AWS::Logs::LogGroup', 'WorkflowExecutionLogs'), 'Arn'] },
          },
        },
      ],
    });
    expect(sm.TracingConfiguration).toEqual({ Enabled: true });
  });
});

describe('IAM: least privilege', () => {
  it('has no wildcard action in any Allow statement of any policy', () => {
    const statements = allPolicyStatements(template);
    expect(statements.length).toBeGreaterThan(10);
    const wildcardAllows = statements.filter(
      (s) => s.statement.Effect === 'Allow' && actionsOf(s.statement).some((a) => a.includes('*')),
    );
    expect(wildcardAllows).toEqual([]);
  });

  it('uses wildcard actions only to deny insecure transport (enforceSSL)', () => {
    for (const { statement } of allPolicyStatements(template).filter((s) =>
      actionsOf(s.statement).some((a) => a.includes('*')),
    )) {
      expect(statement.Effect).toBe('Deny');
      expect(JSON.stringify(statement.Condition)).toMatch(/aws:SecureTransport|s3:TlsVersion/);
    }
  });

  const allowedBy = (action: string) =>
    allPolicyStatements(template).filter(
      (s) => s.statement.Effect === 'Allow' && actionsOf(s.statement).includes(action),
    );

  it('lets the state machine invoke exactly the four stage functions and the agent, and send to the failed-delivery queue', () => {
    const smRole = logicalId(template, 'AWS::IAM::Role', 'WorkflowStateMachineRole');
    const invoke = allowedBy('lambda:InvokeFunction').filter((s) => s.roles.includes(smRole));
    expect(
      invoke
        .flatMap((s) => resourcesOf(s.statement))
        .map((r) => cfnText(r))
        .sort(),
    ).toEqual(
      [
        ...STAGES.map((n) => `{GetAtt:${fnId(n)}.Arn}`),
        `arn:{Ref:AWS::Partition}:lambda:{Ref:AWS::Region}:{Ref:AWS::AccountId}:function:${DEFAULT_CONFIG.agentFunctionName}`,
      ].sort(),
    );
    // No other role may invoke the agent: no Lambda of ours waits for it.
    const others = allowedBy('lambda:InvokeFunction').filter((s) => !s.roles.includes(smRole));
    expect(others.flatMap((s) => resourcesOf(s.statement)).map((r) => cfnText(r))).not.toContain(
      expect.stringContaining(DEFAULT_CONFIG.agentFunctionName),
    );
    const sqs = allPolicyStatements(template).filter(
      (s) => s.roles.includes(smRole) && actionsOf(s.statement).some((a) => a.startsWith('sqs:')),
    );
    expect(sqs).toHaveLength(1);
    expect(actionsOf(sqs[0]!.statement)).toEqual(['sqs:SendMessage']);
    expect(resourcesOf(sqs[0]!.statement).map((r) => cfnText(r))).toEqual([
      `{GetAtt:${logicalId(template, 'AWS::SQS::Queue', 'FailedDeliveryQueue')}.Arn}`,
    ]);
    // The only other role with SQS access is the redelivery scheduler's (test/infra/redelivery.test.ts).
    const sqsRoles = allPolicyStatements(template).filter(
      (s) => s.statement.Effect === 'Allow' && actionsOf(s.statement).some((a) => a.startsWith('sqs:')),
    );
    expect([...new Set(sqsRoles.flatMap((s) => s.roles))].sort()).toEqual(
      [smRole, logicalId(template, 'AWS::IAM::Role', 'RedeliverySchedulerFunctionRole')].sort(),
    );
  });

  it('lets only the Export stage and the redelivery scheduler (a given-up delivery) put objects, only under conversation-history/', () => {
    // Of the stack's roles; the analytics query policy is for operators' roles (test/infra/analytics.test.ts).
    const s3Allows = allPolicyStatements(template).filter(
      (s) =>
        s.statement.Effect === 'Allow' &&
        s.holderType !== 'AWS::IAM::ManagedPolicy' &&
        actionsOf(s.statement).some((a) => a.startsWith('s3:')),
    );
    expect(s3Allows.flatMap((s) => s.roles).sort()).toEqual(
      [roleOf('Export'), logicalId(template, 'AWS::IAM::Role', 'RedeliverySchedulerFunctionRole')].sort(),
    );
    for (const allow of s3Allows) {
      expect(actionsOf(allow.statement)).toEqual(['s3:PutObject']);
      expect(resourcesOf(allow.statement).map((r) => cfnText(r))).toEqual([
        `{GetAtt:${logicalId(template, 'AWS::S3::Bucket', 'Storage')}.Arn}/conversation-history/*`,
      ]);
    }
  });

  it('lets API Gateway start sync executions of the conversation and accept workflows only', () => {
    const apiRole = logicalId(template, 'AWS::IAM::Role', 'ApiStartExecutionRole');
    const start = allPolicyStatements(template).filter((s) => s.roles.includes(apiRole));
    expect(start).toHaveLength(1);
    expect(actionsOf(start[0]!.statement)).toEqual(['states:StartSyncExecution']);
    expect(resourcesOf(start[0]!.statement)).toHaveLength(2);
    expect(resourcesOf(start[0]!.statement)).toEqual(
      expect.arrayContaining([{ Ref: stateMachineId() }, { Ref: acceptStateMachineId() }]),
    );
    // Besides the API, only the redelivery scheduler and the operators' policy (redrive, resend) start executions,
    // and only of the redelivery workflow.
    const others = allowedBy('states:StartSyncExecution').filter((s) => !s.roles.includes(apiRole));
    expect(others.map((s) => s.roles[0] ?? s.holder)).toEqual([
      logicalId(template, 'AWS::IAM::Role', 'RedeliverySchedulerFunctionRole'),
      logicalId(template, 'AWS::IAM::ManagedPolicy', 'OperatorPolicy'),
    ]);
    for (const other of others)
      expect(resourcesOf(other.statement)).toEqual([
        { Ref: logicalId(template, 'AWS::StepFunctions::StateMachine', 'RedeliveryStateMachine') },
      ]);
  });
});

describe('storage, queues, logs, outputs', () => {
  it('keeps the export bucket private, encrypted, TLS-only, versioned, retained, with a lifecycle rule', () => {
    const id = logicalId(template, 'AWS::S3::Bucket', 'Storage');
    expect(resources[id]?.DeletionPolicy).toBe('Retain');
    expect(props(id)).toMatchObject({
      PublicAccessBlockConfiguration: {
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      },
      BucketEncryption: {
        ServerSideEncryptionConfiguration: [{ ServerSideEncryptionByDefault: { SSEAlgorithm: 'AES256' } }],
      },
      VersioningConfiguration: { Status: 'Enabled' },
      LifecycleConfiguration: {
        // Only objects of 128 KB or more move (S3's default since 2024, written down): most exports are far smaller.
        TransitionDefaultMinimumObjectSize: 'all_storage_classes_128K',
        Rules: [
          expect.objectContaining({
            Prefix: 'conversation-history/',
            Status: 'Enabled',
            Transitions: [{ StorageClass: 'STANDARD_IA', TransitionInDays: 90 }],
            // An expired or replaced export's bytes go 30 days later (docs/deploy.md, exportExpirationDays).
            NoncurrentVersionExpiration: { NoncurrentDays: 30 },
          }),
        ],
      },
    });
    expect(
      (props(id).LifecycleConfiguration as { Rules: Record<string, Json>[] }).Rules[0]?.ExpirationInDays,
    ).toBeUndefined();
    template.hasResourceProperties('AWS::S3::BucketPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
        ]),
      },
    });
  });

  it('has a failed-delivery queue with its own dead-letter queue, both encrypted and TLS-only', () => {
    const queue = logicalId(template, 'AWS::SQS::Queue', 'FailedDeliveryQueue');
    const dlq = logicalId(template, 'AWS::SQS::Queue', 'FailedDeliveryDeadLetterQueue');
    expect(props(queue)).toMatchObject({
      SqsManagedSseEnabled: true,
      RedrivePolicy: { deadLetterTargetArn: { 'Fn::GetAtt': [dlq, 'Arn'] }, maxReceiveCount: 5 },
    });
    expect(props(dlq)).toMatchObject({ SqsManagedSseEnabled: true });
    for (const id of [queue, dlq]) {
      template.hasResourceProperties('AWS::SQS::QueuePolicy', {
        Queues: [{ Ref: id }],
        PolicyDocument: {
          Statement: [Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })],
        },
      });
    }
  });

  it('gives every log group the configured retention', () => {
    const groups = Object.values(template.findResources('AWS::Logs::LogGroup'));
    // Three workflows, four stages, the status route, the redelivery scheduler (the API access log only with apiLogging).
    expect(groups).toHaveLength(9);
    for (const group of groups) expect(group.Properties.RetentionInDays).toBe(DEFAULT_CONFIG.logRetentionDays);
  });

  it("passes CDK's built-in CloudFormation validation (schemas and rules) with no finding", () => {
    const report = JSON.parse(readFileSync(path.join(synth.outdir, 'validation-report.json'), 'utf8')) as {
      pluginReports: unknown[];
    };
    expect(report.pluginReports).toEqual([]);
  });

  it('has no delivery-URL guard once every URL is set (test/infra/app.test.ts shows the guard)', () => {
    const json = template.toJSON() as { Rules?: Record<string, unknown>; Parameters?: Record<string, unknown> };
    expect(json.Rules?.DeliveryUrlsConfigured).toBeUndefined();
    expect(json.Parameters?.MissingDeliveryUrlsAllowed).toBeUndefined();
    const allowed = synthesize({ context: { allowMissingDeliveryUrls: true } });
    try {
      expect(
        (allowed.template.toJSON() as { Rules?: Record<string, unknown> }).Rules?.DeliveryUrlsConfigured,
      ).toBeUndefined();
    } finally {
      allowed.cleanup();
    }
  });

  it('outputs the API URLs, state machines, log groups, bucket, queues, secrets, table and dashboard', () => {
    const always = Object.values(STACK_OUTPUTS).filter((key) => !OPTIONAL_STACK_OUTPUTS.includes(key));
    expect(Object.keys(template.toJSON().Outputs).sort()).toEqual(always.sort());
    expect(cfnText(template.toJSON().Outputs[STACK_OUTPUTS.webhookUrl].Value)).toMatch(/^https:\/\/.*\/webhook$/);
  });

  it("docs/openapi.json's AWS server is the ApiUrl output's shape, its stage the default stageName", () => {
    const { servers } = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'docs/openapi.json'), 'utf8')) as {
      servers: { url: string; variables: Record<string, { default: string; enum?: string[] }> }[];
    };
    const aws = servers.find((s) => s.url.startsWith('https://'))!;
    // Each part CloudFormation fills in (the API's id, the region, the URL suffix, the stage) is one of its variables.
    const apiUrl = cfnText(template.toJSON().Outputs[STACK_OUTPUTS.apiUrl].Value);
    expect(apiUrl.replace(/\{Ref:[^}]+\}/g, '{}')).toBe(`${aws.url.replace(/\{\w+\}/g, '{}')}/`);
    expect(apiUrl).toContain('{Ref:AWS::Region}');
    expect(apiUrl).toContain('{Ref:AWS::URLSuffix}');
    expect(aws.variables.stage?.default).toBe(DEFAULT_CONFIG.stageName);
    expect(aws.variables.urlSuffix?.enum).toContain('amazonaws.com');
  });
});
