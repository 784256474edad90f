import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyticsDatabaseName } from '../../infra/constructs/conversation-analytics.ts';
import { resourceSpecification } from '../../infra/template-checks/plugin.ts';
import {
  cfnText,
  DELIVERY_URL_CONTEXT,
  type Json,
  OPTIONAL_FEATURES_CONTEXT,
  type Synthesized,
  synthesize,
} from './support/synth.ts';

type Resources = Record<
  string,
  { Type: string; Properties?: Record<string, Json>; DeletionPolicy?: string; UpdateReplacePolicy?: string }
>;

/** Every feature on, so that every named and every stateful resource is in the template. */
const ALL_FEATURES = { ...DELIVERY_URL_CONTEXT, ...OPTIONAL_FEATURES_CONTEXT, apiLogging: true };

/**
 * The names a template gives resources whose name must be unique in the account and region, as the service compares
 * them: Glue folds names to lowercase (docs/deploy.md, "Later deploys, several stacks and deleting a stack").
 */
function uniqueNames(resources: Resources): string[] {
  /** A name spelled with the region (`Fn::Join` of literals and `Ref: AWS::Region`) as it is in the one region. */
  const inOneRegion = (value: Json): Json => {
    const join = (value as { 'Fn::Join'?: [string, Json[]] } | null)?.['Fn::Join'];
    if (!join) return value;
    const parts = join[1].map((part) => ((part as { Ref?: string })?.Ref === 'AWS::Region' ? 'eu-west-1' : part));
    return parts.every((part) => typeof part === 'string') ? parts.join(join[0]) : value;
  };
  const names: string[] = [];
  for (const resource of Object.values(resources)) {
    const p = resource.Properties ?? {};
    const add = (service: string, spelled: Json | undefined, fold = false) => {
      if (spelled === undefined) return;
      const value = inOneRegion(spelled);
      expect(typeof value, `${resource.Type} name ${JSON.stringify(value)}`).toBe('string');
      names.push(`${service}:${fold ? String(value).toLowerCase() : String(value)}`);
    };
    switch (resource.Type) {
      case 'AWS::Logs::LogGroup':
        add('logs', p.LogGroupName);
        break;
      case 'AWS::CloudWatch::Alarm':
        add('alarm', p.AlarmName);
        break;
      case 'AWS::CloudWatch::Dashboard':
        add('dashboard', p.DashboardName);
        break;
      case 'AWS::Athena::WorkGroup':
        add('athena', p.Name);
        break;
      case 'AWS::Glue::Database':
        add('glue', (p.DatabaseInput as { Name?: Json }).Name, true);
        break;
      case 'AWS::XRay::SamplingRule':
        add('xray', (p.SamplingRule as { RuleName?: Json }).RuleName);
        break;
      case 'AWS::Events::Rule':
        add('events', p.Name);
        break;
      case 'AWS::IAM::Role':
        add('iam', p.RoleName, true);
        break;
      case 'AWS::IAM::ManagedPolicy':
        add('iam-policy', p.ManagedPolicyName, true);
        break;
      case 'AWS::Lambda::Function':
        add('lambda', p.FunctionName);
        break;
      case 'AWS::StepFunctions::StateMachine':
        add('states', p.StateMachineName);
        break;
      case 'AWS::SQS::Queue':
        add('sqs', p.QueueName);
        break;
      case 'AWS::SNS::Topic':
        add('sns', p.TopicName);
        break;
      case 'AWS::DynamoDB::Table':
        add('dynamodb', p.TableName);
        break;
      case 'AWS::SecretsManager::Secret':
        add('secret', p.Name);
        break;
      case 'AWS::S3::Bucket':
        add('s3', p.BucketName, true);
        break;
      case 'AWS::SSM::Parameter':
        add('ssm', p.Name);
        break;
    }
  }
  return names;
}

describe('several stacks in one account and region', () => {
  // Staging and prod spelt as people spell them: names that differ only in case or punctuation.
  const STACKS = ['GatewayStaging', 'Gateway-Staging', 'gateway-staging', 'GATEWAY-STAGING', 'Gateway-staging'];
  const synths: Synthesized[] = [];
  beforeAll(() => {
    for (const stackName of STACKS) synths.push(synthesize({ context: ALL_FEATURES, stackName }));
  }, 300_000);
  afterAll(() => {
    for (const synth of synths) synth.cleanup();
  });

  it('gives no two stacks the same name for anything whose name is unique in the account and region', () => {
    const owner = new Map<string, string>();
    for (const [i, synth] of synths.entries()) {
      const names = uniqueNames(synth.template.toJSON().Resources);
      expect(names.length).toBeGreaterThan(20);
      for (const name of names) {
        expect(owner.get(name), `${name} of ${STACKS[i]}`).toBeUndefined();
        owner.set(name, STACKS[i] as string);
      }
    }
  });

  it('keeps the readable Glue database name of a stack named in PascalCase, as before', () => {
    expect(analyticsDatabaseName('WebhookConversationGateway')).toBe('webhook_conversation_gateway');
    expect(analyticsDatabaseName('GatewayStaging2')).toBe('gateway_staging2');
    const names = STACKS.map(analyticsDatabaseName);
    expect(names[0]).toBe('gateway_staging');
    for (const name of names.slice(1)) expect(name).toMatch(/^gateway_staging__[0-9a-f]{8}$/);
    // Still a name Glue and Athena take: lowercase letters, digits and _.
    for (const name of names) expect(name).toMatch(/^[a-z0-9_]{1,255}$/);
  });

  it('creates the renamed database of a stack named otherwise under a new logical id (no rename in place)', () => {
    const databaseIds = synths.map((synth) => Object.keys(synth.template.findResources('AWS::Glue::Database')));
    // The readable name's database keeps the logical id it always had: it is not touched by the next deploy.
    expect(databaseIds[0]).toEqual(['AnalyticsDatabase9D7E58B6']);
    for (const ids of databaseIds.slice(1)) expect(ids).toEqual([expect.stringMatching(/^AnalyticsUniqueDatabase/)]);
  });
});

/**
 * Every resource that holds something a deploy must not lose, by logical id, with what `cdk destroy` does to it
 * (docs/deploy.md, "Later deploys, several stacks and deleting a stack"). A logical id is the resource's identity for
 * CloudFormation: a refactor that renames one (a construct id, a new parent) would make the next deploy create a new,
 * empty resource and delete the old one. So a rename, a new stateful resource or a changed policy fails here and has
 * to be decided on purpose.
 */
const STATEFUL: Record<string, { type: string; destroy: 'Retain' | 'Delete' }> = {
  StorageBucket5CB7C8EA: { type: 'AWS::S3::Bucket', destroy: 'Retain' },
  AnalyticsResultsBucket8D578079: { type: 'AWS::S3::Bucket', destroy: 'Retain' },
  DeliveriesTable439E74BF: { type: 'AWS::DynamoDB::Table', destroy: 'Retain' },
  AsyncConversationsThreadsBE7CBF1B: { type: 'AWS::DynamoDB::Table', destroy: 'Delete' },
  AsyncConversationsStatusA14293ED: { type: 'AWS::DynamoDB::Table', destroy: 'Delete' },
  IdempotencyTable48612DF4: { type: 'AWS::DynamoDB::Table', destroy: 'Delete' },
  FailedDeliveryQueueC7393CD6: { type: 'AWS::SQS::Queue', destroy: 'Retain' },
  FailedDeliveryDeadLetterQueueF6D55195: { type: 'AWS::SQS::Queue', destroy: 'Retain' },
  SigningSecretsInbound31882F00: { type: 'AWS::SecretsManager::Secret', destroy: 'Retain' },
  SigningSecretsDelivery3F4058CE: { type: 'AWS::SecretsManager::Secret', destroy: 'Retain' },
  FunctionsValidateLogGroup1B8374BB: { type: 'AWS::Logs::LogGroup', destroy: 'Retain' },
  FunctionsClassifyLogGroup6E27199F: { type: 'AWS::Logs::LogGroup', destroy: 'Retain' },
  FunctionsDeliverLogGroup411360DC: { type: 'AWS::Logs::LogGroup', destroy: 'Retain' },
  FunctionsExportLogGroupA4D46CE3: { type: 'AWS::Logs::LogGroup', destroy: 'Retain' },
  FunctionsConversationStatusLogGroupF2E54A42: { type: 'AWS::Logs::LogGroup', destroy: 'Retain' },
  RedeliverySchedulerFunctionLogGroupC03EBB7D: { type: 'AWS::Logs::LogGroup', destroy: 'Retain' },
  ApiAccessLogs50B185DB: { type: 'AWS::Logs::LogGroup', destroy: 'Retain' },
  // Named after the stack: kept, they would make a later deploy of the same stack name fail.
  WorkflowExecutionLogsE67184FE: { type: 'AWS::Logs::LogGroup', destroy: 'Delete' },
  RedeliveryExecutionLogsD4F2018D: { type: 'AWS::Logs::LogGroup', destroy: 'Delete' },
  AcceptExecutionLogs5F0B89D2: { type: 'AWS::Logs::LogGroup', destroy: 'Delete' },
  // Definitions only (written from the template again by any deploy), and the API keys handed to the sources.
  AnalyticsDatabase9D7E58B6: { type: 'AWS::Glue::Database', destroy: 'Delete' },
  AnalyticsExportLinesTable12ABB1C9: { type: 'AWS::Glue::Table', destroy: 'Delete' },
  AnalyticsConversationsView17B68302: { type: 'AWS::Glue::Table', destroy: 'Delete' },
  AnalyticsWorkGroup1F3DE8A4: { type: 'AWS::Athena::WorkGroup', destroy: 'Delete' },
  RateLimitstestingsystemKeyE34A7CE8: { type: 'AWS::ApiGateway::ApiKey', destroy: 'Delete' },
  RateLimitscrmsync2Key46F19989: { type: 'AWS::ApiGateway::ApiKey', destroy: 'Delete' },
};
const STATEFUL_TYPES = new Set(Object.values(STATEFUL).map((r) => r.type));
/** Types whose resources hold data: replacing one must leave the old one (and its data) in the account. */
const DATA_TYPES = [
  'AWS::S3::Bucket',
  'AWS::DynamoDB::Table',
  'AWS::SQS::Queue',
  'AWS::SecretsManager::Secret',
  'AWS::Logs::LogGroup',
];

/** The properties whose change makes CloudFormation replace a resource of `type` (AWS's resource model). */
function replacementProperties(type: string): string[] {
  const resource = resourceSpecification().resource(type);
  if (!resource) throw new Error(`${type} is not in the resource model`);
  return Object.entries(resource.properties)
    .filter(([, property]) => property.causesReplacement === 'yes' || property.causesReplacement === 'maybe')
    .map(([name]) => name)
    .sort();
}

/** Each stateful resource's replacement properties as the template sets them (absent ones left out). */
function replacementValues(resources: Resources): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const [id, resource] of Object.entries(resources)) {
    if (!STATEFUL_TYPES.has(resource.Type)) continue;
    out[id] = {};
    for (const name of replacementProperties(resource.Type)) {
      const value = resource.Properties?.[name];
      if (value !== undefined)
        (out[id] as Record<string, string>)[name] = Array.isArray(value) ? JSON.stringify(value) : cfnText(value);
    }
  }
  return out;
}

describe('a later deploy keeps what the stack holds', () => {
  const STACK = 'WebhookConversationGateway';
  let synth: Synthesized;
  let resources: Resources;
  beforeAll(() => {
    synth = synthesize({ context: ALL_FEATURES, stackName: STACK });
    resources = synth.template.toJSON().Resources;
  });
  afterAll(() => synth?.cleanup());

  it('keeps the logical id of every stateful resource (a renamed one would be a new, empty resource)', () => {
    const stateful = Object.fromEntries(
      Object.entries(resources)
        .filter(([, r]) => STATEFUL_TYPES.has(r.Type))
        .map(([id, r]) => [id, r.Type]),
    );
    expect(stateful).toEqual(Object.fromEntries(Object.entries(STATEFUL).map(([id, r]) => [id, r.type])));
  });

  it('keeps the old resource and its data whenever a change replaces one; cdk destroy keeps what the docs say', () => {
    for (const [id, { type, destroy }] of Object.entries(STATEFUL)) {
      const resource = resources[id];
      expect(resource?.DeletionPolicy ?? 'Delete', `${id} on cdk destroy`).toBe(destroy);
      if (DATA_TYPES.includes(type)) expect(resource?.UpdateReplacePolicy, `${id} when replaced`).toBe('Retain');
    }
  });

  it('sets only the replacement properties it always set: names made from the stack name, and fixed key schemas', () => {
    const stack = STACK;
    const database = 'webhook_conversation_gateway';
    const key = (...parts: [string, string][]) =>
      JSON.stringify(parts.map(([AttributeName, KeyType]) => ({ AttributeName, KeyType })));
    expect(replacementValues(resources)).toEqual({
      StorageBucket5CB7C8EA: {},
      AnalyticsResultsBucket8D578079: {},
      DeliveriesTable439E74BF: { KeySchema: key(['pk', 'HASH'], ['sk', 'RANGE']) },
      AsyncConversationsThreadsBE7CBF1B: { KeySchema: key(['thread', 'HASH'], ['turn', 'RANGE']) },
      AsyncConversationsStatusA14293ED: { KeySchema: key(['conversation_id', 'HASH']) },
      IdempotencyTable48612DF4: { KeySchema: key(['pk', 'HASH']) },
      FailedDeliveryQueueC7393CD6: {},
      FailedDeliveryDeadLetterQueueF6D55195: {},
      SigningSecretsInbound31882F00: {},
      SigningSecretsDelivery3F4058CE: {},
      FunctionsValidateLogGroup1B8374BB: {},
      FunctionsClassifyLogGroup6E27199F: {},
      FunctionsDeliverLogGroup411360DC: {},
      FunctionsExportLogGroupA4D46CE3: {},
      FunctionsConversationStatusLogGroupF2E54A42: {},
      RedeliverySchedulerFunctionLogGroupC03EBB7D: {},
      ApiAccessLogs50B185DB: {},
      WorkflowExecutionLogsE67184FE: { LogGroupName: `/aws/vendedlogs/states/${stack}-conversation` },
      RedeliveryExecutionLogsD4F2018D: { LogGroupName: `/aws/vendedlogs/states/${stack}-redelivery` },
      AcceptExecutionLogs5F0B89D2: { LogGroupName: `/aws/vendedlogs/states/${stack}-accept` },
      AnalyticsDatabase9D7E58B6: { CatalogId: '{Ref:AWS::AccountId}' },
      AnalyticsExportLinesTable12ABB1C9: { CatalogId: '{Ref:AWS::AccountId}', DatabaseName: database },
      AnalyticsConversationsView17B68302: { CatalogId: '{Ref:AWS::AccountId}', DatabaseName: database },
      AnalyticsWorkGroup1F3DE8A4: { Name: `${stack}-analytics` },
      RateLimitstestingsystemKeyE34A7CE8: { Name: `${stack}-testing_system` },
      RateLimitscrmsync2Key46F19989: { Name: `${stack}-crm_sync_2` },
    });
  });

  it('keeps the resource policy of every bucket and queue it keeps, so a kept one stays TLS-only (docs/deploy.md)', () => {
    const policies = Object.entries(resources).filter(([, r]) =>
      ['AWS::S3::BucketPolicy', 'AWS::SQS::QueuePolicy'].includes(r.Type),
    );
    const targets = (r: Resources[string]) =>
      ((r.Properties?.Queues as Json[] | undefined) ?? [r.Properties?.Bucket]).map((ref) =>
        String((ref as { Ref?: string }).Ref),
      );
    expect(policies.flatMap(([, r]) => targets(r)).sort()).toEqual(
      Object.keys(STATEFUL)
        .filter((id) => ['AWS::S3::Bucket', 'AWS::SQS::Queue'].includes(STATEFUL[id]!.type))
        .sort(),
    );
    for (const [id, policy] of policies) {
      expect(policy.DeletionPolicy, id).toBe('Retain');
      expect(policy.UpdateReplacePolicy, id).toBe('Retain');
    }
  });

  it('never changes the secrets the template creates, so a deploy leaves the values the operator put', () => {
    for (const id of ['SigningSecretsInbound31882F00', 'SigningSecretsDelivery3F4058CE']) {
      expect(resources[id]?.Properties?.SecretString).toBe('{}');
      expect(resources[id]?.Properties?.GenerateSecretString).toBeUndefined();
    }
  });
});

describe('a context change a user makes replaces no stateful resource', () => {
  // docs/deploy.md, "Configuration": each change as a later `cdk deploy -c key=value` makes it.
  const CHANGES: Record<string, Record<string, unknown>> = {
    'a longer log retention': { logRetentionDays: 90 },
    'the lean observability profile': { observabilityProfile: 'lean' },
    'a shorter thread lifetime': { threadTtlDays: 7 },
    'another stage name': { stageName: 'staging' },
    'other export lifecycle days': { exportTransitionDays: 0, exportExpirationDays: 365 },
    'other rates and one more source': {
      sourceRateLimits: {
        ...OPTIONAL_FEATURES_CONTEXT.sourceRateLimits,
        testing_system: { rateLimit: 20, burstLimit: 40 },
        billing: { rateLimit: 1, burstLimit: 2 },
      },
    },
    'another alarm e-mail': { alarmEmail: 'other-oncall@example.com' },
    'API logging off': { apiLogging: false, createApiGatewayCloudWatchRole: false },
    'an existing export bucket': { exportBucketName: 'existing-exports' },
    'other analytics limits': { analyticsScanLimitGb: 1, analyticsResultsExpirationDays: 7 },
    'signed webhooks required, another schedule and timeouts': {
      requireSignedWebhooks: true,
      redeliverySchedule: '1m,10m,1h',
      deliveryTimeoutMs: 5000,
      agentTimeoutMs: 15000,
    },
  };
  let base: Synthesized;
  let baseResources: Resources;
  beforeAll(() => {
    base = synthesize({ context: ALL_FEATURES });
    baseResources = base.template.toJSON().Resources;
  });
  afterAll(() => base?.cleanup());

  it.each(Object.entries(CHANGES))(
    '%s',
    (_, change) => {
      const changed = synthesize({ context: { ...ALL_FEATURES, ...change } });
      try {
        const before = replacementValues(baseResources);
        const after = replacementValues(changed.template.toJSON().Resources);
        for (const [id, values] of Object.entries(before)) {
          // A resource the change leaves out of the template is deleted unless it is retained.
          if (!(id in after)) expect(baseResources[id]?.DeletionPolicy, `${id} left out`).toBe('Retain');
          else expect(after[id], id).toEqual(values);
        }
      } finally {
        changed.cleanup();
      }
    },
    120_000,
  );
});
