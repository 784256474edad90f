import type { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayErrorTemplate } from '../../infra/api-templates.ts';
import { EMPTY_SECRETS_JSON } from '../../infra/constructs/signing-secrets.ts';
import { RETRY_AFTER_SECONDS } from '../../infra/constructs/webhook-api.ts';
import { STACK_OUTPUTS } from '../../infra/webhook-gateway-stack.ts';
import {
  DELIVERY_URL_CONTEXT,
  type Json,
  type Synthesized,
  actionsOf,
  allPolicyStatements,
  logicalId,
  resourcesOf,
  synthesize,
} from './support/synth.ts';

// Issue 5 with the defaults: signing secrets, the idempotency table, the 429s, and no API key (no sourceRateLimits).
// The configured case (API keys, usage plans, requireSignedWebhooks) is in config.test.ts. One synthesis, no bundling.
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
const fnId = (stage: string) => id('AWS::Lambda::Function', `Functions${stage}`);
const roleOf = (stage: string) => String((props(fnId(stage)).Role as { 'Fn::GetAtt': string[] })['Fn::GetAtt'][0]);
const env = (stage: string) => (props(fnId(stage)).Environment as { Variables: Record<string, Json> }).Variables;
const inbound = () => id('AWS::SecretsManager::Secret', 'SigningSecretsInbound');
const delivery = () => id('AWS::SecretsManager::Secret', 'SigningSecretsDelivery');
const table = () => id('AWS::DynamoDB::Table', 'Idempotency');
const allowing = (prefix: string) =>
  allPolicyStatements(template).filter((s) => s.statement.Effect === 'Allow' && actionsOf(s.statement).some((a) => a.startsWith(prefix)));

describe('signing secrets', () => {
  it('are two stack-created secrets holding the empty map until the operator fills them in, kept on delete', () => {
    expect(Object.keys(template.findResources('AWS::SecretsManager::Secret')).sort()).toEqual([delivery(), inbound()].sort());
    for (const secret of [inbound(), delivery()]) {
      expect(props(secret).SecretString).toBe(EMPTY_SECRETS_JSON);
      expect(JSON.parse(EMPTY_SECRETS_JSON)).toEqual({});
      expect(props(secret).GenerateSecretString).toBeUndefined();
      expect(resources[secret]?.DeletionPolicy).toBe('Retain');
    }
  });

  it('are named to Validate (inbound) and Deliver (delivery), with REQUIRE_SIGNED_WEBHOOKS off by default', () => {
    expect(env('Validate')).toMatchObject({ INBOUND_WEBHOOK_SECRETS_ARN: { Ref: inbound() }, REQUIRE_SIGNED_WEBHOOKS: 'false' });
    expect(env('Deliver')).toMatchObject({ DELIVERY_SIGNING_SECRETS_ARN: { Ref: delivery() } });
  });

  it('may be read (GetSecretValue only) by Validate and Deliver, each its own secret only', () => {
    const reads = allowing('secretsmanager:').map((s) => ({ roles: s.roles, actions: actionsOf(s.statement), resources: resourcesOf(s.statement) }));
    expect(reads).toEqual(
      expect.arrayContaining([
        { roles: [roleOf('Validate')], actions: ['secretsmanager:GetSecretValue'], resources: [{ Ref: inbound() }] },
        { roles: [roleOf('Deliver')], actions: ['secretsmanager:GetSecretValue'], resources: [{ Ref: delivery() }] },
      ]),
    );
    expect(reads).toHaveLength(2);
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

  it('lets Validate claim (PutItem, GetItem) and Export complete or release (PutItem, UpdateItem, DeleteItem), on that table only', () => {
    const grants = allowing('dynamodb:').map((s) => ({ roles: s.roles, actions: actionsOf(s.statement).sort(), resources: resourcesOf(s.statement) }));
    const arn = [{ 'Fn::GetAtt': [table(), 'Arn'] }];
    expect(grants).toEqual(
      expect.arrayContaining([
        { roles: [roleOf('Validate')], actions: ['dynamodb:GetItem', 'dynamodb:PutItem'], resources: arn },
        { roles: [roleOf('Export')], actions: ['dynamodb:DeleteItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'], resources: arn },
      ]),
    );
    expect(grants).toHaveLength(2);
  });
});

describe('rate limits', () => {
  it('require no API key and create no usage plan when no sourceRateLimits are configured', () => {
    const post = Object.values(template.findResources('AWS::ApiGateway::Method', { Properties: { HttpMethod: 'POST' } }))[0];
    expect(post?.Properties.ApiKeyRequired).toBe(false);
    for (const type of ['AWS::ApiGateway::ApiKey', 'AWS::ApiGateway::UsagePlan', 'AWS::ApiGateway::UsagePlanKey']) {
      expect(Object.keys(template.findResources(type)), type).toEqual([]);
    }
    expect(template.toJSON().Outputs[STACK_OUTPUTS.sourceApiKeyIds]).toBeUndefined();
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
        ResponseParameters: { 'gatewayresponse.header.Retry-After': `'${seconds}'` },
      });
    }
    expect(JSON.parse(body.template)).toMatchObject({ success: false, error: { code: 'RATE_LIMITED' } });
  });
});
