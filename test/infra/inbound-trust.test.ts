import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Template } from 'aws-cdk-lib/assertions';
import { Webhook } from 'standardwebhooks';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IN_PROGRESS_TTL_SECONDS } from '../../functions/domain/idempotency.ts';
import { maskSecrets, SECRET_PATTERNS } from '../../functions/domain/secret-masking.ts';
import {
  gatewayErrorTemplate,
  RETRY_AFTER_SECONDS,
  startSyncExecutionRequestTemplate,
} from '../../infra/api-templates.ts';
import { EMPTY_SECRETS_JSON } from '../../infra/constructs/signing-secrets.ts';
import { STACK_OUTPUTS } from '../../infra/webhook-gateway-stack.ts';
import { STATEMACHINE_DIR } from '../../local/paths.ts';
import {
  actionsOf,
  allPolicyStatements,
  DELIVERY_URL_CONTEXT,
  functionId,
  functionRoleId,
  type Json,
  logicalId,
  resourcesOf,
  type Synthesized,
  synthesize,
} from './support/synth.ts';
import { renderRequest } from './support/velocity.ts';

// Inbound trust with the defaults (docs/security.md): signing secrets, the idempotency table, the 429s, and no API key
// (no sourceRateLimits). The configured case (API keys, usage plans, requireSignedWebhooks) is in config.test.ts. One
// synthesis, no bundling.
let synth: Synthesized;
let template: Template;
let resources: Record<string, { Type: string; Properties: Record<string, Json>; DeletionPolicy?: string }>;
beforeAll(() => {
  synth = synthesize({ context: DELIVERY_URL_CONTEXT });
  template = synth.template;
  resources = template.toJSON().Resources;
});
afterAll(() => synth?.cleanup());

const props = (id: string) => (resources[id] as { Properties: Record<string, Json> }).Properties;
const id = (type: string, prefix: string) => logicalId(template, type, prefix);
const fnId = (stage: string) => functionId(template, stage);
const roleOf = (stage: string) => functionRoleId(template, stage);
const env = (stage: string) => (props(fnId(stage)).Environment as { Variables: Record<string, Json> }).Variables;
const inbound = () => id('AWS::SecretsManager::Secret', 'SigningSecretsInbound');
const delivery = () => id('AWS::SecretsManager::Secret', 'SigningSecretsDelivery');
const table = () => id('AWS::DynamoDB::Table', 'Idempotency');
const allowing = (prefix: string) =>
  allPolicyStatements(template).filter(
    (s) => s.statement.Effect === 'Allow' && actionsOf(s.statement).some((a) => a.startsWith(prefix)),
  );

describe('signing secrets', () => {
  it('are two stack-created secrets holding the empty map until the operator fills them in, kept on delete', () => {
    expect(Object.keys(template.findResources('AWS::SecretsManager::Secret')).sort()).toEqual(
      [delivery(), inbound()].sort(),
    );
    for (const secret of [inbound(), delivery()]) {
      expect(props(secret).SecretString).toBe(EMPTY_SECRETS_JSON);
      expect(JSON.parse(EMPTY_SECRETS_JSON)).toEqual({});
      expect(props(secret).GenerateSecretString).toBeUndefined();
      expect(resources[secret]?.DeletionPolicy).toBe('Retain');
    }
  });

  it('are named to Validate (inbound) and Deliver (delivery), with REQUIRE_SIGNED_WEBHOOKS off by default', () => {
    expect(env('Validate')).toMatchObject({
      INBOUND_WEBHOOK_SECRETS_ARN: { Ref: inbound() },
      REQUIRE_SIGNED_WEBHOOKS: 'false',
    });
    expect(env('Deliver')).toMatchObject({ DELIVERY_SIGNING_SECRETS_ARN: { Ref: delivery() } });
  });

  it("may be read (GetSecretValue only) by Validate, the status route and Deliver, each its own secret only; the delivery secret also rotated by the operators' policy", () => {
    const reads = allowing('secretsmanager:').map((s) => ({
      roles: s.roles.length > 0 ? s.roles : [s.holder],
      actions: actionsOf(s.statement),
      resources: resourcesOf(s.statement),
    }));
    expect(reads).toEqual(
      expect.arrayContaining([
        { roles: [roleOf('Validate')], actions: ['secretsmanager:GetSecretValue'], resources: [{ Ref: inbound() }] },
        { roles: [roleOf('Deliver')], actions: ['secretsmanager:GetSecretValue'], resources: [{ Ref: delivery() }] },
        {
          roles: [roleOf('ConversationStatus')],
          actions: ['secretsmanager:GetSecretValue'],
          resources: [{ Ref: inbound() }],
        },
        {
          // `endpoints set <type> --secret … --aws` (docs/deploy.md, After the first deploy).
          roles: [id('AWS::IAM::ManagedPolicy', 'OperatorPolicy')],
          actions: ['secretsmanager:GetSecretValue', 'secretsmanager:PutSecretValue'],
          resources: [{ Ref: delivery() }],
        },
      ]),
    );
    expect(reads).toHaveLength(4);
  });

  it('are outputs, so the operator can put their values', () => {
    const outputs = template.toJSON().Outputs;
    expect(outputs[STACK_OUTPUTS.inboundWebhookSecretsArn].Value).toEqual({ Ref: inbound() });
    expect(outputs[STACK_OUTPUTS.deliverySigningSecretsArn].Value).toEqual({ Ref: delivery() });
  });
});

describe('idempotency table', () => {
  it('is keyed by pk (string), expires items on expires_at, on demand, encrypted, with point-in-time recovery', () => {
    expect(props(table())).toMatchObject({
      KeySchema: [{ AttributeName: 'pk', KeyType: 'HASH' }],
      AttributeDefinitions: [{ AttributeName: 'pk', AttributeType: 'S' }],
      TimeToLiveSpecification: { AttributeName: 'expires_at', Enabled: true },
      BillingMode: 'PAY_PER_REQUEST',
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
      SSESpecification: { SSEEnabled: true },
    });
  });

  it('is named to Validate and Export', () => {
    expect(env('Validate').IDEMPOTENCY_TABLE_NAME).toEqual({ Ref: table() });
    expect(env('Export').IDEMPOTENCY_TABLE_NAME).toEqual({ Ref: table() });
    expect(template.toJSON().Outputs[STACK_OUTPUTS.idempotencyTable].Value).toEqual({ Ref: table() });
  });

  it('keeps an in-progress claim past the longest a conversation runs after it: its accept execution, its run, and an Export still running at the end', () => {
    const limit = (name: string) =>
      (JSON.parse(readFileSync(path.join(STATEMACHINE_DIR, `${name}.asl.json`), 'utf8')) as { TimeoutSeconds: number })
        .TimeoutSeconds;
    const exportTimeout = props(fnId('Export')).Timeout as number;
    expect(IN_PROGRESS_TTL_SECONDS).toBeGreaterThan(limit('accept') + limit('conversation') + exportTimeout);
  });

  it("lets Validate claim (PutItem) or free a key it could not start (DeleteItem), Export complete or release (UpdateItem, DeleteItem), and the operators' policy read a key (GetItem), on that table only", () => {
    const arn = [{ 'Fn::GetAtt': [table(), 'Arn'] }];
    const grants = allowing('dynamodb:')
      .map((s) => ({
        roles: s.roles.length > 0 ? s.roles : [s.holder],
        actions: actionsOf(s.statement).sort(),
        resources: resourcesOf(s.statement),
      }))
      .filter((g) => JSON.stringify(g.resources).includes(table()));
    expect(grants).toEqual(
      expect.arrayContaining([
        {
          roles: [roleOf('Validate')],
          actions: ['dynamodb:DeleteItem', 'dynamodb:PutItem'],
          resources: arn,
        },
        {
          roles: [roleOf('Export')],
          actions: ['dynamodb:DeleteItem', 'dynamodb:UpdateItem'],
          resources: arn,
        },
        {
          // `conversations list | show --key … --aws` (docs/operations.md).
          roles: [id('AWS::IAM::ManagedPolicy', 'OperatorPolicy')],
          actions: ['dynamodb:GetItem'],
          resources: arn,
        },
      ]),
    );
    expect(grants).toHaveLength(3);
  });
});

describe('rate limits', () => {
  it('require no API key and create no usage plan when no sourceRateLimits are configured', () => {
    const post = Object.values(
      template.findResources('AWS::ApiGateway::Method', { Properties: { HttpMethod: 'POST' } }),
    )[0];
    expect(post?.Properties.ApiKeyRequired).toBe(false);
    for (const type of ['AWS::ApiGateway::ApiKey', 'AWS::ApiGateway::UsagePlan', 'AWS::ApiGateway::UsagePlanKey']) {
      expect(Object.keys(template.findResources(type)), type).toEqual([]);
    }
    expect(template.toJSON().Outputs[STACK_OUTPUTS.sourceApiKeyIds]).toBeUndefined();
    expect(env('Validate').SOURCE_API_KEY_IDS).toBeUndefined();
  });

  it('answer a missing or unknown x-api-key with the contract body the local gateway gives (403 INVALID_API_KEY)', () => {
    const body = gatewayErrorTemplate('INVALID_API_KEY');
    template.hasResourceProperties('AWS::ApiGateway::GatewayResponse', {
      ResponseType: 'INVALID_API_KEY',
      StatusCode: '403',
      ResponseTemplates: { 'application/json': body.template },
      // GET /conversations/{id} answers Cache-Control: no-store, its refusals too (contract.md).
      ResponseParameters: { 'gatewayresponse.header.Cache-Control': "'no-store'" },
    });
    expect(JSON.parse(body.template)).toMatchObject({ success: false, error: { code: 'INVALID_API_KEY' } });
  });

  it('answer 429 with the contract body and a Retry-After header, throttled or over quota', () => {
    const body = gatewayErrorTemplate('RATE_LIMITED');
    expect(body.statusCode).toBe(429);
    for (const [type, seconds] of [
      ['THROTTLED', RETRY_AFTER_SECONDS.throttled],
      ['QUOTA_EXCEEDED', RETRY_AFTER_SECONDS.quotaExceeded],
    ] as const) {
      template.hasResourceProperties('AWS::ApiGateway::GatewayResponse', {
        ResponseType: type,
        StatusCode: '429',
        ResponseTemplates: { 'application/json': body.template },
        ResponseParameters: {
          'gatewayresponse.header.Retry-After': `'${seconds}'`,
          'gatewayresponse.header.Cache-Control': "'no-store'",
        },
      });
    }
    expect(JSON.parse(body.template)).toMatchObject({ success: false, error: { code: 'RATE_LIMITED' } });
  });
});

describe('signatures in the logs', () => {
  it('every log group masks Standard Webhooks signatures and secrets (data protection policy, audit + deidentify)', () => {
    const groups = template.findResources('AWS::Logs::LogGroup');
    // Five functions and two workflows (the API access log only with apiLogging: see test/infra/config.test.ts).
    expect(Object.keys(groups).length).toBeGreaterThanOrEqual(7);
    for (const [name, group] of Object.entries(groups)) {
      const policy = (group as { Properties: { DataProtectionPolicy?: Record<string, Json> } }).Properties
        .DataProtectionPolicy;
      expect(policy, name).toBeDefined();
      const configured = (policy!.Configuration as { CustomDataIdentifier: { Name: string; Regex: string }[] })
        .CustomDataIdentifier;
      expect(configured.map((c) => ({ name: c.Name, regex: c.Regex }))).toEqual(SECRET_PATTERNS.map((p) => ({ ...p })));
      const statements = policy!.Statement as { DataIdentifier: string[]; Operation: Record<string, unknown> }[];
      const deidentify = statements.find((st) => 'Deidentify' in st.Operation);
      expect(deidentify?.DataIdentifier.sort()).toEqual(SECRET_PATTERNS.map((p) => p.name).sort());
      expect(deidentify?.Operation.Deidentify).toEqual({ MaskConfig: {} });
      expect(statements.some((st) => 'Audit' in st.Operation)).toBe(true);
    }
  });

  it('no role of the stack may unmask them', () => {
    const unmask = allPolicyStatements(template).filter((s) =>
      actionsOf(s.statement).some((a) => /^logs:(Unmask|\*)$/.test(a)),
    );
    expect(unmask).toEqual([]);
  });

  it('the execution input API Gateway builds, logged as Express logs it, is masked down to no trace of the signature', () => {
    const secret = `whsec_${Buffer.from('inbound-secret-for-testing-sys!!').toString('base64')}`;
    const body = JSON.stringify({
      query: 'What are the top 5 deals closing this quarter?',
      source_system: 'testing_system',
      source_process: 'phase3_validation',
    });
    const signer = new Webhook(secret);
    // Two signatures (rotation), at least one with a `/` that escapeJavaScript turns into `\/`.
    let id = 0;
    let signature = '';
    while (!signature.includes('/')) signature = signer.sign(`msg_${++id}`, new Date(), body);
    const header = `${signature} ${new Webhook(`whsec_${Buffer.from('previous-secret-being-rotated!!!').toString('base64')}`).sign(`msg_${id}`, new Date(), body)}`;
    const rendered = renderRequest(
      startSyncExecutionRequestTemplate('arn:aws:states:eu-west-1:123456789012:stateMachine:C'),
      {
        body,
        headers: {
          'content-type': 'application/json',
          'webhook-id': `msg_${id}`,
          'webhook-timestamp': '1700000000',
          'webhook-signature': header,
        },
      },
    );
    const input = (JSON.parse(rendered.output) as { input: string }).input;
    expect((JSON.parse(input) as { headers: Record<string, string> }).headers['webhook-signature']).toBe(header);
    // Step Functions may log the input string as sent or re-serialized; Validate's TaskScheduled nests it once more.
    const events = [
      { type: 'ExecutionStarted', details: { input, inputDetails: { truncated: false } } },
      { type: 'ExecutionStarted', details: { input: JSON.stringify(JSON.parse(input)) } },
      {
        type: 'TaskScheduled',
        details: { parameters: JSON.stringify({ FunctionName: 'validate', Payload: JSON.parse(input) }) },
      },
      { type: 'TaskScheduled', details: { parameters: JSON.stringify({ FunctionName: 'validate', Payload: input }) } },
    ];
    // Compared with every backslash removed, so an escaped `/` cannot hide a piece of the signature.
    const unescaped = (text: string) => text.replaceAll('\\', '');
    for (const event of events) {
      const raw = unescaped(JSON.stringify(event));
      const logged = unescaped(maskSecrets(JSON.stringify(event)));
      for (const sig of header.split(' ')) {
        const b64 = sig.slice(3);
        for (const piece of [b64.slice(0, 10), b64.slice(12, 22), b64.slice(-10)]) {
          expect(raw, event.type).toContain(piece);
          expect(logged, event.type).not.toContain(piece);
        }
      }
      expect(logged).toContain('testing_system');
      expect(logged).toContain(`msg_${id}`);
    }
  });
});
