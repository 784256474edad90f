import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { App } from 'aws-cdk-lib';
import type { Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseApiKeySources } from '../../functions/domain/source-identity.ts';
import {
  CONFIG_CONTEXT_KEYS,
  ConfigError,
  checkContextKeys,
  DEFAULT_CONFIG,
  MAX_DELIVERY_TIMEOUT_MS,
  resolveConfig,
  ssmParameterName,
} from '../../infra/config.ts';
import { PROJECT_ROOT } from '../../infra/constructs/stage-function.ts';
import { STACK_OUTPUTS } from '../../infra/webhook-gateway-stack.ts';
import {
  actionsOf,
  allPolicyStatements,
  cdkJsonContext,
  cfnText,
  DELIVERY_URL_CONTEXT,
  type Json,
  logicalId,
  OPTIONAL_FEATURES_CONTEXT,
  resourcesOf,
  type Synthesized,
  synthesize,
} from './support/synth.ts';

describe('checkContextKeys', () => {
  it("accepts cdk.json as shipped, every documented key, and CDK's own keys", () => {
    expect(() => checkContextKeys(cdkJsonContext())).not.toThrow();
    const deploy = readFileSync(path.join(PROJECT_ROOT, 'docs', 'deploy.md'), 'utf8');
    const docs = deploy.slice(deploy.indexOf('### Configuration'), deploy.indexOf('### First deploy'));
    const documented = [...docs.matchAll(/^\| `([A-Za-z0-9]+)` +\|/gm)].map((m) => m[1]);
    expect(new Set(documented)).toEqual(new Set(CONFIG_CONTEXT_KEYS));
    expect(() =>
      checkContextKeys({
        'aws:cdk:bundling-stacks': [],
        'cli-telemetry': false,
        'acknowledged-issue-numbers': [],
        'availability-zones:account=1:region=x': [],
      }),
    ).not.toThrow();
  });

  it('refuses a misspelt or unknown key with its name and the key it resembles', () => {
    expect(() => checkContextKeys({ logRetentionDay: '7' })).toThrow(
      new ConfigError(
        'context logRetentionDay is not a setting of this stack (did you mean logRetentionDays?): docs/deploy.md, "Configuration", lists them',
      ),
    );
    expect(() => checkContextKeys({ AgentTimeoutMS: '5000' })).toThrow(
      /context AgentTimeoutMS .*did you mean agentTimeoutMs\?/,
    );
    expect(() => checkContextKeys({ frobnicate: 'x' })).toThrow(/^context frobnicate is not a setting of this stack: /);
  });
});

describe('resolveConfig', () => {
  // Each App is given this folder (never written: nothing is synthesized), or it would make one in the temp folder.
  const outdir = mkdtempSync(path.join(tmpdir(), 'cdk.out-config-'));
  afterAll(() => rmSync(outdir, { recursive: true, force: true }));
  const resolve = (context: Record<string, unknown>, overrides = {}) =>
    resolveConfig(new App({ context, outdir }).node, overrides);

  it('refuses an exportBucketName that no S3 bucket can have, naming the key', () => {
    for (const bad of [
      's3://my-exports',
      'arn:aws:s3:::my-exports',
      'My_Exports',
      'ab',
      'my..exports',
      'my-exports-',
    ]) {
      expect(() => resolve({ exportBucketName: bad })).toThrow(
        /^context exportBucketName must be the name of an S3 bucket/,
      );
    }
    expect(resolve({ exportBucketName: 'my-exports.example-1' }).exportBucketName).toBe('my-exports.example-1');
  });

  it('refuses an agentFunctionName that no Lambda function can have, naming the key', () => {
    for (const bad of [
      'manager agent',
      'a'.repeat(65),
      '111122223333:function:agent',
      'arn:aws:s3:::bucket',
      'agent:',
    ]) {
      expect(() => resolve({ agentFunctionName: bad })).toThrow(
        /^context agentFunctionName must be a Lambda function name/,
      );
    }
    for (const good of [
      'revops-manager-agent-wrapper',
      'agent_1:live',
      'agent:7',
      'arn:aws:lambda:eu-west-1:111122223333:function:manager-agent:live',
      'arn:aws-us-gov:lambda:us-gov-west-1:111122223333:function:agent',
    ]) {
      expect(resolve({ agentFunctionName: good }).agentFunctionName).toBe(good);
    }
  });

  it('refuses a delivery URL that Deliver would refuse on every attempt, naming the key', () => {
    expect(() => resolve({ dealAnalysisWebhookUrl: 'http://receiver.example.com/deal' })).toThrow(
      new ConfigError(
        'context dealAnalysisWebhookUrl: delivery URL must use https (plain http only to loopback): http://receiver.example.com',
      ),
    );
    expect(() => resolve({ generalWebhookUrl: 'receiver.example.com/general' })).toThrow(
      /^context generalWebhookUrl: "receiver.example.com\/general" is not a URL$/,
    );
    expect(() => resolve({ leadAnalysisWebhookUrl: 'https://user:pw@receiver.example.com/' })).toThrow(
      /^context leadAnalysisWebhookUrl: delivery URLs must not carry credentials$/,
    );
    expect(() => resolve({ dataAnalysisWebhookUrl: 'ssm:' })).toThrow(/^context dataAnalysisWebhookUrl: ssm: needs/);
    // A name Parameter Store cannot have (docs/deploy.md): CloudFormation would stop the deploy reading it.
    expect(() => resolve({ dealAnalysisWebhookUrl: 'ssm:gw/deal' })).toThrow(
      new ConfigError(
        'context dealAnalysisWebhookUrl: ssm:gw/deal is not an SSM parameter name (a name with levels starts with /)',
      ),
    );
    for (const name of ['my param', '/gw/de*al', '/gw//deal', '/gw/deal/', 'https://receiver.example.com/deal'])
      expect(() => resolve({ generalWebhookUrl: `ssm:${name}` }), name).toThrow(
        `context generalWebhookUrl: ssm:${name} is not an SSM parameter name (letters, digits and _ . - only, levels separated by single /)`,
      );
    expect(() => resolve({ leadAnalysisWebhookUrl: `ssm:${'/l'.repeat(16)}` })).toThrow(/\(at most 15 levels\)$/);
    expect(() => resolve({ leadAnalysisWebhookUrl: `ssm:/${'p'.repeat(1011)}` })).toThrow(
      /\(at most 1011 characters\)$/,
    );
    expect(
      resolve({
        dealAnalysisWebhookUrl: 'ssm:deal-url',
        dataAnalysisWebhookUrl: `ssm:${'/l'.repeat(15)}`,
        leadAnalysisWebhookUrl: 'ssm:/Rev.Ops/webhooks_2/lead-analysis',
      }).deliveryUrls,
    ).toMatchObject({ deal_analysis: 'ssm:deal-url', lead_analysis: 'ssm:/Rev.Ops/webhooks_2/lead-analysis' });
    expect(
      resolve({ dealAnalysisWebhookUrl: 'https://receiver.example.com/deal', generalWebhookUrl: 'ssm:/gw/general' })
        .deliveryUrls,
    ).toMatchObject({ deal_analysis: 'https://receiver.example.com/deal', general: 'ssm:/gw/general' });
  });

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
    expect(() => resolve({ stackName: 'my_stack' })).toThrow(/stackName must be 1-128 letters, digits and hyphens/);
    expect(() => resolve({ apiIntegrationTimeoutMs: 5000 })).toThrow(
      /apiIntegrationTimeoutMs must be an integer from 9000 to 300000/,
    );
    expect(() => resolve({ redeliverySchedulerConcurrency: -1 })).toThrow(/redeliverySchedulerConcurrency/);
  });

  it('refuses an integration timeout past the Express limit, and a delivery timeout the redelivery workflow cannot hold', () => {
    // A synchronous execution ends at 5 minutes whatever API Gateway would still wait.
    expect(resolve({ apiIntegrationTimeoutMs: 300_000 }).apiIntegrationTimeoutMs).toBe(300_000);
    expect(() => resolve({ apiIntegrationTimeoutMs: 300_001 })).toThrow(
      /apiIntegrationTimeoutMs must be an integer from 9000 to 300000, got 300001/,
    );
    // Deliver's Lambda, then Export's, within the redelivery workflow's TimeoutSeconds (test/infra/timeout-chain.test.ts).
    expect(resolve({ deliveryTimeoutMs: MAX_DELIVERY_TIMEOUT_MS }).deliveryTimeoutMs).toBe(MAX_DELIVERY_TIMEOUT_MS);
    expect(() => resolve({ deliveryTimeoutMs: 30_000 })).toThrow(
      /deliveryTimeoutMs must be an integer from 100 to 24000, got 30000/,
    );
  });

  it('refuses an integration timeout the synchronous chain cannot hold, saying the smallest that works', () => {
    // Validate's 10 s less 1.5 s, a 1 s agent, 3 s of throttling retries, Classify's 2 s, 2 s fallback, 1 s margin.
    expect(resolve({ apiIntegrationTimeoutMs: 17_500, agentTimeoutMs: 9_000 }).apiIntegrationTimeoutMs).toBe(17_500);
    expect(() => resolve({ apiIntegrationTimeoutMs: 17_499, agentTimeoutMs: 9_000 })).toThrow(
      /context apiIntegrationTimeoutMs \(17499\) is shorter than the synchronous chain needs: use at least 17500 /,
    );
    expect(() => resolve({ apiIntegrationTimeoutMs: 9_000, agentTimeoutMs: 1_000 })).toThrow(/use at least 17500/);
  });

  it('refuses an agent timeout that does not fit in the API integration timeout, naming both settings', () => {
    // 29 s - 1 s margin - 3 s after the deliveries - 1 s Classify - 3 s of throttling retries = 21 s.
    expect(resolve({ agentTimeoutMs: 21_000 }).agentTimeoutMs).toBe(21_000);
    expect(() => resolve({ agentTimeoutMs: 22_000 })).toThrow(
      /agentTimeoutMs \(22000\) does not fit in apiIntegrationTimeoutMs \(29000\).*Use at most 21000, or raise apiIntegrationTimeoutMs/,
    );
    // A Regional REST API whose integration timeout quota was raised: 60 s leaves the agent 52 s.
    expect(resolve({ apiIntegrationTimeoutMs: '60000', agentTimeoutMs: '52000' })).toMatchObject({
      apiIntegrationTimeoutMs: 60_000,
      agentTimeoutMs: 52_000,
    });
  });

  it('turns API logging on when it is asked to create the account role, and parses the deploy-safety keys', () => {
    expect(resolve({ createApiGatewayCloudWatchRole: 'true' })).toMatchObject({
      apiLogging: true,
      createApiGatewayCloudWatchRole: true,
    });
    expect(resolve({ apiLogging: 'true' })).toMatchObject({ apiLogging: true, createApiGatewayCloudWatchRole: false });
    expect(resolve({ allowMissingDeliveryUrls: 'true', redeliverySchedulerConcurrency: '1' })).toMatchObject({
      allowMissingDeliveryUrls: true,
      redeliverySchedulerConcurrency: 1,
    });
  });

  it('parses sourceRateLimits as an object (cdk.json) or JSON text (-c), and the other new keys', () => {
    const limits = {
      testing_system: { rateLimit: 10, burstLimit: 20, quotaPerDay: 10_000 },
      'crm.sync-2': { rateLimit: 2.5, burstLimit: 5 },
    };
    // Keyed by the canonical source name (one identity per source).
    const canonical = { testing_system: limits.testing_system, crm_sync_2: limits['crm.sync-2'] };
    expect(resolve({ sourceRateLimits: limits }).sourceRateLimits).toEqual(canonical);
    expect(resolve({ sourceRateLimits: JSON.stringify(limits) }).sourceRateLimits).toEqual(canonical);
    expect(resolve({ sourceRateLimits: '{}' }).sourceRateLimits).toEqual({});
    expect(
      resolve({
        requireSignedWebhooks: 'true',
        agentP99AlarmMs: '9000',
        alarmEmail: ' ops@example.com ',
        redeliverySchedule: '1m,10m',
      }),
    ).toMatchObject({
      requireSignedWebhooks: true,
      agentP99AlarmMs: 9000,
      alarmEmail: 'ops@example.com',
      redeliverySchedule: '1m,10m',
    });
  });

  it('refuses invalid rate limits, schedules and e-mail addresses with the key name', () => {
    expect(() => resolve({ sourceRateLimits: 'not json' })).toThrow(/sourceRateLimits/);
    expect(() => resolve({ sourceRateLimits: [] })).toThrow(/sourceRateLimits/);
    expect(() => resolve({ sourceRateLimits: { 'bad name!': { rateLimit: 1, burstLimit: 1 } } })).toThrow(/bad name!/);
    // One identity per source: the keys are read in canonical form, two spellings of one source refused.
    expect(resolve({ sourceRateLimits: { 'Crm.Sync': { rateLimit: 1, burstLimit: 1 } } }).sourceRateLimits).toEqual({
      crm_sync: { rateLimit: 1, burstLimit: 1 },
    });
    expect(() =>
      resolve({
        sourceRateLimits: { crm_sync: { rateLimit: 1, burstLimit: 1 }, 'CRM-Sync': { rateLimit: 9, burstLimit: 9 } },
      }),
    ).toThrow(/"crm_sync" and "CRM-Sync" name the same source/);
    expect(() => resolve({ sourceRateLimits: { a: { rateLimit: 0, burstLimit: 1 } } })).toThrow(/a\.rateLimit/);
    expect(() => resolve({ sourceRateLimits: { a: { rateLimit: 1 } } })).toThrow(/a\.burstLimit/);
    expect(() => resolve({ sourceRateLimits: { a: { rateLimit: 1, burstLimit: 1, quotaPerDay: 0 } } })).toThrow(
      /a\.quotaPerDay/,
    );
    expect(() => resolve({ sourceRateLimits: { a: { rateLimit: 1, burstLimit: 1, perMonth: 5 } } })).toThrow(
      /perMonth/,
    );
    expect(() => resolve({ redeliverySchedule: '5s,soon' })).toThrow(/redeliverySchedule/);
    expect(() => resolve({ alarmEmail: 'ops' })).toThrow(/alarmEmail/);
    expect(() => resolve({ agentP99AlarmMs: 0 })).toThrow(/agentP99AlarmMs/);
    expect(() => resolve({ requireSignedWebhooks: 'yes' })).toThrow(/requireSignedWebhooks/);
  });

  it("takes the existing bucket's KMS key by its ARN only, and only with that bucket", () => {
    const withBucket = { exportBucketName: 'my-exports' };
    expect(resolve({ ...withBucket, exportBucketKmsKeyArn: EXPORT_KEY }).exportBucketKmsKeyArn).toBe(EXPORT_KEY);
    const multiRegion = 'arn:aws-us-gov:kms:us-gov-west-1:111122223333:key/mrk-1234abcd12ab34cd56ef1234567890ab';
    expect(resolve({ ...withBucket, exportBucketKmsKeyArn: multiRegion }).exportBucketKmsKeyArn).toBe(multiRegion);
    expect(resolve({}).exportBucketKmsKeyArn).toBe('');
    // An IAM statement naming an alias applies to the alias, not to its key: the grant would not work.
    for (const alias of ['arn:aws:kms:eu-west-1:111122223333:alias/exports', 'alias/exports']) {
      expect(() => resolve({ ...withBucket, exportBucketKmsKeyArn: alias })).toThrow(
        /^context exportBucketKmsKeyArn must be the key's ARN, not an alias .*aws kms describe-key --key-id /,
      );
    }
    for (const bad of ['1234abcd-12ab-34cd-56ef-1234567890ab', 'arn:aws:kms:eu-west-1:1111:key/x', 'aws:kms']) {
      expect(() => resolve({ ...withBucket, exportBucketKmsKeyArn: bad })).toThrow(
        /^context exportBucketKmsKeyArn must be a KMS key ARN/,
      );
    }
    expect(() => resolve({ exportBucketKmsKeyArn: EXPORT_KEY })).toThrow(
      /^context exportBucketKmsKeyArn is the key of an existing bucket \(exportBucketName\)/,
    );
  });

  it('reads ssm: delivery URLs as parameter names', () => {
    expect(ssmParameterName('ssm:/revops/webhooks/deal')).toBe('/revops/webhooks/deal');
    expect(ssmParameterName('https://x.example.com')).toBeNull();
  });
});

/** The customer-managed key of the existing export bucket (SSE-KMS by default). */
const EXPORT_KEY = 'arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab';

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
      exportBucketKmsKeyArn: EXPORT_KEY,
      enableConversationExport: 'false',
      logRetentionDays: '90',
      logLevel: 'WARN',
      throttlingRateLimit: 5,
      throttlingBurstLimit: 10,
      ...OPTIONAL_FEATURES_CONTEXT,
      apiLogging: 'true',
      createApiGatewayCloudWatchRole: false,
      requireSignedWebhooks: 'true',
      redeliverySchedule: '1m,10m',
      agentP99AlarmMs: '9000',
    },
  });
  template = synth.template;
});
afterAll(() => synth?.cleanup());

describe('a stack configured through context', () => {
  const env = (name: string) =>
    (
      template.toJSON().Resources[logicalId(template, 'AWS::Lambda::Function', `Functions${name}`)].Properties
        .Environment as { Variables: Record<string, Json> }
    ).Variables;

  it('exports into the existing bucket: no export bucket is created, PutObject stays on its prefix', () => {
    // The only bucket is Athena's results bucket.
    expect(Object.keys(template.findResources('AWS::S3::Bucket'))).toEqual([
      expect.stringMatching(/^AnalyticsResultsBucket/),
    ]);
    expect(env('Export')).toMatchObject({
      CONVERSATION_EXPORT_S3_BUCKET: 'existing-conversation-archive',
      ENABLE_CONVERSATION_EXPORT: 'false',
    });
    const s3 = allPolicyStatements(template).filter(
      (s) => s.roles.length > 0 && actionsOf(s.statement).some((a) => a.startsWith('s3:')),
    );
    // Export's, and the redelivery scheduler's for a delivery it gives up.
    expect(s3.map((s) => resourcesOf(s.statement).map((r) => cfnText(r)))).toEqual([
      ['arn:{Ref:AWS::Partition}:s3:::existing-conversation-archive/conversation-history/*'],
      ['arn:{Ref:AWS::Partition}:s3:::existing-conversation-archive/conversation-history/*'],
    ]);
    // Athena's query policy reads the same prefix of the existing bucket.
    const reads = allPolicyStatements(template).filter((s) => actionsOf(s.statement).includes('s3:GetObject'));
    expect(reads.flatMap((s) => resourcesOf(s.statement).map((r) => cfnText(r)))).toContain(
      'arn:{Ref:AWS::Partition}:s3:::existing-conversation-archive/conversation-history/*',
    );
  });

  it("lets whatever writes the existing bucket's exports make data keys of its KMS key, and whatever reads them decrypt, through S3 only", () => {
    // S3 encrypts each PUT with a data key it asks KMS for with the writer's permission, and decrypts each GET with
    // the reader's (Amazon S3 user guide, "Using server-side encryption with AWS KMS keys (SSE-KMS)"): without the
    // grant, every export of a bucket whose default encryption is this key fails AccessDenied.
    const statements = allPolicyStatements(template).filter((s) => s.statement.Effect === 'Allow');
    const onExports = (action: string) =>
      statements.filter(
        (s) =>
          actionsOf(s.statement).includes(action) &&
          resourcesOf(s.statement).some((r) => cfnText(r).includes(':::existing-conversation-archive/')),
      );
    const keyGrant = (action: string) =>
      statements.filter((s) => actionsOf(s.statement).includes(action) && resourcesOf(s.statement)[0] === EXPORT_KEY);
    const throughS3 = { StringLike: { 'kms:ViaService': ['s3.*.amazonaws.com', 's3.*.amazonaws.com.cn'] } };
    for (const grant of [...keyGrant('kms:GenerateDataKey'), ...keyGrant('kms:Decrypt')]) {
      expect(resourcesOf(grant.statement)).toEqual([EXPORT_KEY]);
      expect(grant.statement.Condition).toEqual(throughS3);
    }
    // The writers are roles (Export, and the redelivery scheduler writing a given-up delivery's export).
    const writers = onExports('s3:PutObject').flatMap((s) => s.roles);
    expect(writers).toHaveLength(2);
    expect(
      keyGrant('kms:GenerateDataKey')
        .flatMap((s) => s.roles)
        .sort(),
    ).toEqual([...writers].sort());
    // The readers are the managed policies for people: the operators' (conversations show, deliveries resend) and
    // the analytics query policy (Athena reads the exports as the caller).
    const readers = onExports('s3:GetObject').map((s) => s.holder);
    expect(readers).toEqual([expect.stringMatching(/^AnalyticsQueryPolicy/), expect.stringMatching(/^OperatorPolicy/)]);
    expect(keyGrant('kms:Decrypt').map((s) => s.holder)).toEqual(readers);
    // Nothing else may use the key.
    const onKey = statements.filter((s) => resourcesOf(s.statement).some((r) => cfnText(r).includes(':kms:')));
    expect(onKey).toHaveLength(writers.length + readers.length);
  });

  it('invokes the agent given by ARN (an alias), and only it', () => {
    expect(env('Validate')).toMatchObject({
      MANAGER_AGENT_FUNCTION_NAME: 'arn:aws:lambda:eu-west-1:111122223333:function:manager-agent:live',
      MANAGER_AGENT_TIMEOUT_MS: '12000',
    });
    const machine = Object.values(template.findResources('AWS::StepFunctions::StateMachine')).find(
      (m) => m.Properties.DefinitionSubstitutions.AgentFunctionArn,
    );
    expect(machine!.Properties.DefinitionSubstitutions.AgentFunctionArn).toBe(
      'arn:aws:lambda:eu-west-1:111122223333:function:manager-agent:live',
    );
    const invoke = allPolicyStatements(template).filter(
      (s) =>
        actionsOf(s.statement).includes('lambda:InvokeFunction') &&
        resourcesOf(s.statement).some((r) => cfnText(r).includes('manager-agent')),
    );
    expect(invoke.map((s) => s.roles)).toEqual([[logicalId(template, 'AWS::IAM::Role', 'WorkflowStateMachineRole')]]);
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
      MethodSettings: [
        {
          HttpMethod: '*',
          ResourcePath: '/*',
          ThrottlingRateLimit: 5,
          ThrottlingBurstLimit: 10,
          LoggingLevel: 'ERROR',
          DataTraceEnabled: false,
          MetricsEnabled: true,
        },
      ],
    });
    expect(env('Validate').LOG_LEVEL).toBe('WARN');
    for (const group of Object.values(template.findResources('AWS::Logs::LogGroup')))
      expect(group.Properties.RetentionInDays).toBe(90);
  });

  it('logs access (JSON, requestId = execution name) with apiLogging, using the account role already there', () => {
    const stage = Object.values(template.findResources('AWS::ApiGateway::Stage'))[0]?.Properties as Record<
      string,
      Json
    >;
    const access = stage.AccessLogSetting as { DestinationArn: Json; Format: string };
    expect(cfnText(access.DestinationArn)).toContain(
      `{Ref:${logicalId(template, 'AWS::Logs::LogGroup', 'ApiAccessLogs')}}`,
    );
    expect(JSON.parse(access.Format)).toMatchObject({
      requestId: '$context.requestId',
      status: '$context.status',
      integrationStatus: '$context.integration.status',
    });
  });

  it('does not create the account-wide API Gateway CloudWatch role when told not to', () => {
    expect(Object.keys(template.findResources('AWS::ApiGateway::Account'))).toEqual([]);
  });

  it('requires an API key on POST /webhook and GET (and HEAD) /conversations/{id}, one key and usage plan per source system on the stage', () => {
    const methods = Object.values(template.findResources('AWS::ApiGateway::Method')).map((m) => m.Properties);
    expect(methods.filter((m) => m.ApiKeyRequired === true).map((m) => m.HttpMethod)).toEqual(['POST', 'GET', 'HEAD']);
    const keys = template.findResources('AWS::ApiGateway::ApiKey');
    expect(
      Object.values(keys)
        .map((k) => k.Properties.Name)
        .sort(),
    ).toEqual(['TestGateway-crm_sync_2', 'TestGateway-testing_system']);
    for (const key of Object.values(keys)) expect(key.Properties.Value).toBeUndefined();
    // Validate knows which source each key (by id) belongs to: SOURCE_API_KEY_IDS, read by the handlers' own parser
    // with each key's id (a Ref) standing for the key's logical id.
    const keyIds = parseApiKeySources(cfnText(env('Validate').SOURCE_API_KEY_IDS).replace(/\{Ref:(\w+)\}/g, '$1'));
    // The status route binds the same keys to the same sources.
    expect(env('ConversationStatus').SOURCE_API_KEY_IDS).toEqual(env('Validate').SOURCE_API_KEY_IDS);
    expect(
      Object.fromEntries(Object.entries(keyIds).map(([id, source]) => [keys[id]?.Properties.Name, source])),
    ).toEqual({ 'TestGateway-crm_sync_2': 'crm_sync_2', 'TestGateway-testing_system': 'testing_system' });
    const plans = Object.values(template.findResources('AWS::ApiGateway::UsagePlan')).map((p) => p.Properties);
    const stage = { Ref: logicalId(template, 'AWS::ApiGateway::Stage', 'ApiRestApiDeploymentStage') };
    expect(plans).toEqual(
      expect.arrayContaining([
        expect.objectContaining({
          UsagePlanName: 'TestGateway-testing_system',
          Throttle: { RateLimit: 10, BurstLimit: 20 },
          Quota: { Limit: 10_000, Period: 'DAY' },
          ApiStages: [expect.objectContaining({ Stage: stage })],
        }),
        expect.objectContaining({
          UsagePlanName: 'TestGateway-crm_sync_2',
          Throttle: { RateLimit: 2.5, BurstLimit: 5 },
          ApiStages: [expect.objectContaining({ Stage: stage })],
        }),
      ]),
    );
    expect(plans.filter((p) => p.Quota === undefined)).toHaveLength(1);
    expect(Object.keys(template.findResources('AWS::ApiGateway::UsagePlanKey'))).toHaveLength(2);
  });

  it('creates the keys, the plans and their links one after the other: API Gateway takes one CreateUsagePlanKey at a time per account and region', () => {
    // CloudFormation creates what does not depend on something else at once; API Gateway refuses a second
    // CreateUsagePlanKey while one runs (409 "concurrent modification": the stack rolls back) and takes 5 CreateApiKey
    // a second per account (Amazon API Gateway quotas). So each source's key, plan and link wait for the previous
    // source's (infra/constructs/source-rate-limits.ts).
    const all = template.toJSON().Resources as Record<
      string,
      { Properties: Record<string, Json>; DependsOn?: string[] }
    >;
    const direct = (id: string): string[] => [
      ...(all[id]!.DependsOn ?? []),
      ...[...JSON.stringify(all[id]!.Properties).matchAll(/"(?:Ref|Fn::GetAtt)":\[?"([A-Za-z0-9]+)"/g)].map(
        (m) => m[1]!,
      ),
    ];
    const upstream = (id: string, seen = new Set<string>()): Set<string> => {
      for (const dep of direct(id)) if (!seen.has(dep) && dep in all) upstream(dep, seen.add(dep));
      return seen;
    };
    for (const type of ['AWS::ApiGateway::ApiKey', 'AWS::ApiGateway::UsagePlan', 'AWS::ApiGateway::UsagePlanKey']) {
      const ids = Object.keys(template.findResources(type));
      expect(ids, type).toHaveLength(2);
      const [a, b] = ids as [string, string];
      expect(upstream(a).has(b) || upstream(b).has(a), `${type}: ${a} and ${b} one after the other`).toBe(true);
    }
  });

  it("outputs each source's API key id (never its value)", () => {
    const keyId = (source: string) =>
      logicalId(template, 'AWS::ApiGateway::ApiKey', `RateLimits${source.replace(/[^A-Za-z0-9]/g, '')}Key`);
    expect(cfnText(template.toJSON().Outputs[STACK_OUTPUTS.sourceApiKeyIds].Value)).toBe(
      `testing_system={Ref:${keyId('testing_system')}},crm_sync_2={Ref:${keyId('crm_sync_2')}}`,
    );
  });

  it('requires signed webhooks and uses the configured redelivery schedule', () => {
    expect(env('Validate').REQUIRE_SIGNED_WEBHOOKS).toBe('true');
    const scheduler =
      template.toJSON().Resources[logicalId(template, 'AWS::Lambda::Function', 'RedeliverySchedulerFunction')];
    expect(scheduler.Properties.Environment.Variables.REDELIVERY_SCHEDULE).toBe('1m,10m');
  });

  it('notifies an SNS topic (TLS only) with the e-mail subscribed, on alarm and on OK, and bounds agent p99 as configured', () => {
    const topic = logicalId(template, 'AWS::SNS::Topic', 'AlarmsTopic');
    template.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: OPTIONAL_FEATURES_CONTEXT.alarmEmail,
      TopicArn: { Ref: topic },
    });
    const [policy, ...more] = Object.values(template.findResources('AWS::SNS::TopicPolicy'));
    expect(more).toEqual([]);
    const statements = policy!.Properties.PolicyDocument.Statement as Record<string, unknown>[];
    expect(statements).toContainEqual(
      expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
    );
    // A topic policy replaces SNS's default one, which let the account's own services publish: CloudWatch alarms
    // then need an Allow of their own, else every notification fails (docs/deploy.md, Monitoring). Exactly the
    // stack's alarms, each by its ARN.
    const alarmIds = Object.keys(template.findResources('AWS::CloudWatch::Alarm'));
    expect(statements).toContainEqual({
      Sid: 'AllowTheStackAlarmsToPublish',
      Effect: 'Allow',
      Principal: { Service: 'cloudwatch.amazonaws.com' },
      Action: 'sns:Publish',
      Resource: { Ref: topic },
      Condition: {
        ArnEquals: { 'aws:SourceArn': expect.arrayContaining(alarmIds.map((id) => ({ 'Fn::GetAtt': [id, 'Arn'] }))) },
      },
    });
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm')).map((a) => a.Properties);
    expect(alarms).toHaveLength(18);
    for (const alarm of alarms) {
      expect(alarm.AlarmActions).toEqual([{ Ref: topic }]);
      expect(alarm.OKActions).toEqual([{ Ref: topic }]);
    }
    expect(alarms.find((a) => String(a.AlarmName).endsWith('-AgentLatencyP99'))?.Threshold).toBe(9000);
    expect(template.toJSON().Outputs[STACK_OUTPUTS.alarmTopicArn].Value).toEqual({ Ref: topic });
  });

  it('still passes cdk-nag AwsSolutions with every acknowledgment matching', () => {
    const report = new AwsSolutionsChecks().validateScope(synth.stack);
    expect(report.violations.map((v) => v.ruleName)).toEqual([]);
  });
});

/**
 * `createApiGatewayCloudWatchRole` on a new account, which has no API Gateway CloudWatch role: a stage that turns
 * logging on before the account setting names a role is refused ("CloudWatch Logs role ARN must be set in account
 * settings to enable logging") and the first deploy rolls back. CloudFormation's documentation of
 * `AWS::ApiGateway::Account`: one per account and region, and the role stays usable after the stack is deleted.
 */
describe('createApiGatewayCloudWatchRole with apiLogging, on a new account', () => {
  let withRole: Synthesized;
  beforeAll(() => {
    withRole = synthesize({ context: { ...DELIVERY_URL_CONTEXT, ...OPTIONAL_FEATURES_CONTEXT, apiLogging: true } });
  });
  afterAll(() => withRole?.cleanup());

  it('the stage that logs is created after the account setting, which names a role that may push logs; both kept', () => {
    const resources = withRole.template.toJSON().Resources as Record<string, Record<string, Json>>;
    const [accountId, account] = Object.entries(resources).find(([, r]) => r.Type === 'AWS::ApiGateway::Account')!;
    const stage = Object.values(resources).find((r) => r.Type === 'AWS::ApiGateway::Stage')!;
    expect(
      (stage.Properties as { MethodSettings: { LoggingLevel: string }[] }).MethodSettings[0]!.LoggingLevel,
    ).not.toBe('OFF');
    expect(stage.DependsOn).toContain(accountId);
    const roleId = ((account.Properties as { CloudWatchRoleArn: { 'Fn::GetAtt': string[] } }).CloudWatchRoleArn[
      'Fn::GetAtt'
    ] ?? [])[0]!;
    const role = resources[roleId]!;
    expect(role.Type).toBe('AWS::IAM::Role');
    expect(cfnText((role.Properties as { ManagedPolicyArns: Json[] }).ManagedPolicyArns[0])).toMatch(
      /:iam::aws:policy\/service-role\/AmazonAPIGatewayPushToCloudWatchLogs$/,
    );
    expect([account.DeletionPolicy, role.DeletionPolicy]).toEqual(['Retain', 'Retain']);
  });
});
