import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyticsDatabaseName } from '../../infra/constructs/conversation-analytics.ts';
import {
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
  const names: string[] = [];
  for (const resource of Object.values(resources)) {
    const p = resource.Properties ?? {};
    const add = (service: string, value: Json | undefined, fold = false) => {
      if (value === undefined) return;
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
  }, 120_000);
  afterAll(() => {
    for (const synth of synths) synth.cleanup();
  });

  it('give no two stacks the same name for anything whose name is unique in the account and region', () => {
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

  it('creates the renamed database of a stack named otherwise under a new logical id (Glue cannot rename one)', () => {
    const databaseIds = synths.map((synth) => Object.keys(synth.template.findResources('AWS::Glue::Database')));
    // The readable name's database keeps the logical id it always had: it is not touched by the next deploy.
    expect(databaseIds[0]).toEqual(['AnalyticsDatabase9D7E58B6']);
    for (const ids of databaseIds.slice(1)) expect(ids).toEqual([expect.stringMatching(/^AnalyticsUniqueDatabase/)]);
  });
});
