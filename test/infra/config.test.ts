import { App } from 'aws-cdk-lib';
import type { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_CONFIG, resolveConfig, ssmParameterName } from '../../infra/config.ts';
import { type Json, type Synthesized, allPolicyStatements, actionsOf, cfnText, cdkJsonContext, logicalId, resourcesOf, synthesize } from './support/synth.ts';

describe('resolveConfig', () => {
  const resolve = (context: Record<string, unknown>, overrides = {}) => resolveConfig(new App({ context }).node, overrides);

  it('falls back to the documented defaults', () => {
    expect(resolve({})).toEqual(DEFAULT_CONFIG);
  });

  it('documents the same defaults in cdk.json', () => {
    const context = cdkJsonContext();
    expect(resolve(context)).toEqual(DEFAULT_CONFIG);
  });

  it('parses -c values, which arrive as strings', () => {
    const config = resolve({
      logRetentionDays: '90',
      agentTimeoutMs: '15000',
      enableConversationExport: 'false',
      createApiGatewayCloudWatchRole: 'false',
      logLevel: 'debug',
      generalWebhookUrl: ' https://x.example.com/general ',
    });
    expect(config).toMatchObject({
      logRetentionDays: 90,
      agentTimeoutMs: 15_000,
      enableConversationExport: false,
      createApiGatewayCloudWatchRole: false,
      logLevel: 'DEBUG',
      deliveryUrls: { ...DEFAULT_CONFIG.deliveryUrls, general: 'https://x.example.com/general' },
    });
  });

  it('lets props override context', () => {
    expect(resolve({ stageName: 'ctx' }, { stageName: 'props' }).stageName).toBe('props');
  });

  it('refuses invalid values with the key name', () => {
    expect(() => resolve({ logRetentionDays: 31 })).toThrow(/logRetentionDays/);
    expect(() => resolve({ agentTimeoutMs: 'soon' })).toThrow(ConfigError);
    expect(() => resolve({ enableConversationExport: 'yes' })).toThrow(/enableConversationExport/);
    expect(() => resolve({ logLevel: 'TRACE' })).toThrow(/logLevel/);
    expect(() => resolve({ stageName: 'prod/v1' })).toThrow(/stageName/);
    expect(() => resolve({ exportTransitionDays: 10 })).toThrow(/exportTransitionDays/);
    expect(() => resolve({ exportTransitionDays: 90, exportExpirationDays: 60 })).toThrow(/exportExpirationDays/);
  });

  it('reads ssm: delivery URLs as parameter names', () => {
    expect(ssmParameterName('ssm:/revops/webhooks/deal')).toBe('/revops/webhooks/deal');
    expect(ssmParameterName('https://x.example.com')).toBeNull();
  });
});

// One synthesis with every setting changed from its default (no bundling: only the template is checked).
let synth: Synthesized;
let template: Template;
beforeAll(() => {
  synth = synthesize({
    context: {
      stageName: 'v2',
      agentFunctionName: 'arn:aws:lambda:eu-west-1:111122223333:function:manager-agent:live',
      agentTimeoutMs: 12_000,
      dealAnalysisWebhookUrl: 'ssm:/revops/webhooks/deal',
      dataAnalysisWebhookUrl: 'https://receiver.example.com/data',
      leadAnalysisWebhookUrl: 'https://receiver.example.com/lead',
      generalWebhookUrl: 'https://receiver.example.com/general',
      exportBucketName: 'existing-conversation-archive',
      enableConversationExport: 'false',
      logRetentionDays: '90',
      logLevel: 'WARN',
      throttlingRateLimit: 5,
      throttlingBurstLimit: 10,
      createApiGatewayCloudWatchRole: false,
    },
  });
  template = synth.template;
});
afterAll(() => synth?.cleanup());

describe('a stack configured through context', () => {
  const env = (name: string) =>
    (template.toJSON().Resources[logicalId(template, 'AWS::Lambda::Function', `Functions${name}`)].Properties.Environment as { Variables: Record<string, Json> })
      .Variables;

  it('exports into the existing bucket: no bucket is created, PutObject stays on its prefix', () => {
    expect(Object.keys(template.findResources('AWS::S3::Bucket'))).toEqual([]);
    expect(env('Export')).toMatchObject({ CONVERSATION_EXPORT_S3_BUCKET: 'existing-conversation-archive', ENABLE_CONVERSATION_EXPORT: 'false' });
    const s3 = allPolicyStatements(template).filter((s) => actionsOf(s.statement).some((a) => a.startsWith('s3:')));
    expect(s3.map((s) => resourcesOf(s.statement).map((r) => cfnText(r)))).toEqual([
      ['arn:{Ref:AWS::Partition}:s3:::existing-conversation-archive/conversation-history/*'],
    ]);
  });

  it('invokes the agent given by ARN (an alias), and only it', () => {
    expect(env('InvokeAgent')).toMatchObject({
      MANAGER_AGENT_FUNCTION_NAME: 'arn:aws:lambda:eu-west-1:111122223333:function:manager-agent:live',
      MANAGER_AGENT_TIMEOUT_MS: '12000',
    });
    const invoke = allPolicyStatements(template).filter(
      (s) => actionsOf(s.statement).includes('lambda:InvokeFunction') && s.roles.some((r) => r.startsWith('FunctionsInvokeAgentRole')),
    );
    expect(invoke.map((s) => s.statement.Resource)).toEqual(['arn:aws:lambda:eu-west-1:111122223333:function:manager-agent:live']);
  });

  it('reads an ssm: delivery URL from SSM at deploy time', () => {
    const deal = env('Deliver').DEAL_ANALYSIS_WEBHOOK_URL as { Ref: string };
    const parameter = template.toJSON().Parameters[deal.Ref] as { Type: string; Default: string };
    expect(parameter).toMatchObject({ Type: 'AWS::SSM::Parameter::Value<String>', Default: '/revops/webhooks/deal' });
    expect(env('Deliver').GENERAL_WEBHOOK_URL).toBe('https://receiver.example.com/general');
  });

  it('applies the stage name, throttling, log level and log retention', () => {
    template.hasResourceProperties('AWS::ApiGateway::Stage', {
      StageName: 'v2',
      MethodSettings: [{ HttpMethod: '*', ResourcePath: '/*', ThrottlingRateLimit: 5, ThrottlingBurstLimit: 10, LoggingLevel: 'ERROR', DataTraceEnabled: false, MetricsEnabled: true }],
    });
    expect(env('Validate').LOG_LEVEL).toBe('WARN');
    for (const group of Object.values(template.findResources('AWS::Logs::LogGroup'))) expect(group.Properties.RetentionInDays).toBe(90);
  });

  it('does not create the account-wide API Gateway CloudWatch role when told not to', () => {
    expect(Object.keys(template.findResources('AWS::ApiGateway::Account'))).toEqual([]);
  });

  it('still passes cdk-nag AwsSolutions with every acknowledgment matching', () => {
    const report = new AwsSolutionsChecks().validateScope(synth.stack);
    expect(report.violations.map((v) => v.ruleName)).toEqual([]);
  });
});
