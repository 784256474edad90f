import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyticsWorkGroupName } from '../../infra/constructs/conversation-analytics.ts';
import { environmentBytes, LAMBDA_ENVIRONMENT_LIMIT } from '../../infra/template-checks/lambda-environment.ts';
import { checkNames } from '../../infra/template-checks/name-limits.ts';
import { checkTemplate, resourceSpecification } from '../../infra/template-checks/plugin.ts';
import { CDK_METADATA_TYPE } from '../../infra/template-checks/resource-specification.ts';
import { checkStateMachineDefinitions } from '../../infra/template-checks/state-machine-definitions.ts';
import { DELIVERY_URL_CONTEXT, OPTIONAL_FEATURES_CONTEXT, type Synthesized, synthesize } from './support/synth.ts';

type Template = { Resources: Record<string, { Type: string; Properties?: Record<string, any> }> };

/** The longest stack name CloudFormation accepts (128 characters): every name the stack derives from it must fit. */
const LONGEST_STACK_NAME = `W${'x'.repeat(127)}`;

const templateOf = (s: Synthesized) => s.template.toJSON() as Template;

describe('the synthesized stack against AWS resource model, naming limits and deployed definitions', () => {
  let all: Synthesized;
  let longName: Synthesized;
  beforeAll(() => {
    // Version reporting on, as the CDK CLI synthesizes: the template then carries AWS::CDK::Metadata.
    all = synthesize({
      context: { ...DELIVERY_URL_CONTEXT, ...OPTIONAL_FEATURES_CONTEXT, 'aws:cdk:version-reporting': true },
    });
    longName = synthesize({
      context: { ...DELIVERY_URL_CONTEXT, ...OPTIONAL_FEATURES_CONTEXT },
      stackName: LONGEST_STACK_NAME,
    });
  });
  afterAll(() => {
    all.cleanup();
    longName.cleanup();
  });

  it('has zero findings with every optional resource switched on', () => {
    expect(checkTemplate(templateOf(all), all.stack.stackName)).toEqual([]);
  });

  it('has zero findings with the longest stack name CloudFormation allows', () => {
    expect(longName.stack.stackName).toHaveLength(128);
    expect(checkTemplate(templateOf(longName), longName.stack.stackName)).toEqual([]);
  });

  it('names the analytics workgroup <stack>-analytics, cut with a hash of the stack name when that is over 128', () => {
    const workGroups = (s: Synthesized) =>
      Object.values(templateOf(s).Resources)
        .filter((r) => r.Type === 'AWS::Athena::WorkGroup')
        .map((r) => r.Properties!.Name as string);
    expect(workGroups(all)).toEqual([`${all.stack.stackName}-analytics`]);
    const [long] = workGroups(longName);
    expect(long).toMatch(/^Wx+-[0-9a-f]{8}-analytics$/);
    expect(long).toHaveLength(128);
    expect(analyticsWorkGroupName(`${LONGEST_STACK_NAME.slice(0, 127)}y`)).not.toBe(long);
  });

  it('checks every resource type of the stack against the model (none unknown to it but the CLI’s own metadata)', () => {
    const types = new Set(Object.values(templateOf(all).Resources).map((r) => r.Type));
    expect(types).toContain(CDK_METADATA_TYPE);
    types.delete(CDK_METADATA_TYPE);
    for (const type of types) expect(resourceSpecification().resource(type), type).toBeDefined();
    const bad = { Resources: { M: { Type: CDK_METADATA_TYPE, Properties: { Analytics: 1, Extra: 'x' } } } };
    expect(
      resourceSpecification()
        .check(bad as never)
        .map((f) => f.path),
    ).toEqual(['Properties.Analytics', 'Properties.Extra']);
  });

  it('catches a property of the wrong type, an unknown one, a missing required one and a bad nested value', () => {
    const template = structuredClone(templateOf(all));
    const machine = Object.entries(template.Resources).find(([, r]) => r.Type === 'AWS::StepFunctions::StateMachine')!;
    const fn = Object.entries(template.Resources).find(([, r]) => r.Type === 'AWS::Lambda::Function')!;
    const logGroup = Object.entries(template.Resources).find(
      ([, r]) => r.Type === 'AWS::Logs::LogGroup' && r.Properties?.RetentionInDays,
    )!;
    fn[1].Properties!.MemorySize = '256 MB';
    fn[1].Properties!.Timeoutt = 10;
    delete fn[1].Properties!.Role;
    machine[1].Properties!.LoggingConfiguration.Level = 'EVERYTHING';
    machine[1].Properties!.TracingConfiguration = { Enabled: 'on' };
    logGroup[1].Properties!.RetentionInDays = 31;
    const findings = resourceSpecification().check(template);
    const at = (id: string) => findings.filter((f) => f.logicalId === id).map((f) => `${f.path}: ${f.message}`);
    expect(at(fn[0])).toEqual(
      expect.arrayContaining([
        'Properties.Role: required property Role is missing',
        'Properties.MemorySize: expected an integer, got "256 MB"',
        expect.stringMatching(/^Properties.Timeoutt: unknown property Timeoutt/),
      ]),
    );
    expect(at(machine[0])).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^Properties.LoggingConfiguration.Level: expected one of ALL, ERROR, FATAL, OFF/),
        'Properties.TracingConfiguration.Enabled: expected a boolean, got "on"',
      ]),
    );
    expect(at(logGroup[0])).toEqual([expect.stringMatching(/^Properties.RetentionInDays: expected one of 1, 3, 5/)]);
    expect(
      resourceSpecification().check({ Resources: { X: { Type: 'AWS::Lambda::Functoin', Properties: {} } } }),
    ).toEqual([expect.objectContaining({ logicalId: 'X', message: 'unknown resource type AWS::Lambda::Functoin' })]);
  });

  it('names every Step Functions log group under /aws/vendedlogs/states/<stack>-…, and catches one that is not', () => {
    const template = templateOf(all);
    const logGroups = Object.values(template.Resources).filter((r) => r.Type === 'AWS::Logs::LogGroup');
    const names = logGroups
      .map((r) => r.Properties?.LogGroupName)
      .filter((n) => typeof n === 'string' && n.startsWith('/aws/vendedlogs/'));
    expect(names.sort()).toEqual([
      `/aws/vendedlogs/states/${all.stack.stackName}-accept`,
      `/aws/vendedlogs/states/${all.stack.stackName}-conversation`,
      `/aws/vendedlogs/states/${all.stack.stackName}-redelivery`,
    ]);
    const broken = structuredClone(template);
    const group = Object.values(broken.Resources).find((r) => r.Properties?.LogGroupName === names[1])!;
    group.Properties!.LogGroupName = `/aws/states/${all.stack.stackName}-conversation`;
    expect(checkNames(broken, all.stack.stackName)).toEqual([
      expect.objectContaining({
        property: 'LogGroupName',
        message: expect.stringMatching(/must be named under \/aws\/vendedlogs\/states\//),
      }),
    ]);
  });

  it('catches a name over its limit or with characters AWS refuses, and a stack name CloudFormation refuses', () => {
    const template = structuredClone(templateOf(all));
    const alarm = Object.values(template.Resources).find((r) => r.Type === 'AWS::CloudWatch::Alarm')!;
    const dashboard = Object.values(template.Resources).find((r) => r.Type === 'AWS::CloudWatch::Dashboard')!;
    const workGroup = Object.values(template.Resources).find((r) => r.Type === 'AWS::Athena::WorkGroup')!;
    alarm.Properties!.AlarmName = 'a'.repeat(256);
    // Spelled with the region, as the stack names it: still checked, at the longest region code.
    dashboard.Properties!.DashboardName = { 'Fn::Join': ['', ['ops dashboard-', { Ref: 'AWS::Region' }]] };
    workGroup.Properties!.Name = `${'w'.repeat(128)}-analytics`;
    const messages = checkNames(template, '1-not-a-stack-name').map((f) => `${f.property}: ${f.message}`);
    expect(messages).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^StackName: a stack name is 1-128/),
        expect.stringMatching(/^AlarmName: AlarmName must be 1-255 characters .*got 256/),
        expect.stringMatching(/^DashboardName: DashboardName has characters CloudWatch PutDashboard does not allow/),
        expect.stringMatching(/^Name: Name must be 1-128 characters \(Athena CreateWorkGroup\), got 138/),
      ]),
    );
  });

  it('validates the three state machine definitions as deployed (placeholders substituted), and catches a broken one', () => {
    const template = templateOf(all);
    const machines = Object.values(template.Resources).filter((r) => r.Type === 'AWS::StepFunctions::StateMachine');
    expect(machines).toHaveLength(3);
    for (const machine of machines) expect(typeof machine.Properties?.DefinitionString).toBe('string');
    expect(checkStateMachineDefinitions(template)).toEqual([]);

    const broken = structuredClone(template);
    const [first] = Object.entries(broken.Resources).filter(([, r]) => r.Type === 'AWS::StepFunctions::StateMachine');
    const definition = JSON.parse(first![1].Properties!.DefinitionString);
    const [stateName] = Object.keys(definition.States);
    definition.States[stateName!].Next = 'NoSuchState';
    first![1].Properties!.DefinitionString = JSON.stringify(definition);
    first![1].Properties!.DefinitionSubstitutions = { ...first![1].Properties!.DefinitionSubstitutions, Unused: 'x' };
    const findings = checkStateMachineDefinitions(broken).map((f) => f.message);
    expect(findings).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^asl-validator: .*NoSuchState/),
        'substitution Unused is not used by the definition',
      ]),
    );
  });
});

/** `count` sources whose names are `length` characters, each with a rate limit (an API key and usage plan each). */
function manySources(count: number, length: number): Record<string, { rateLimit: number; burstLimit: number }> {
  const sources: Record<string, { rateLimit: number; burstLimit: number }> = {};
  for (let i = 0; i < count; i++)
    sources[`s${String(i).padStart(3, '0')}${'x'.repeat(length - 4)}`] = { rateLimit: 1, burstLimit: 1 };
  return sources;
}

describe("Lambda's 4 KB of environment variables, as CloudFormation fills them in (docs/deploy.md)", () => {
  const environments = (s: Synthesized) => {
    const template = s.template.toJSON() as Template;
    return Object.fromEntries(
      Object.entries(template.Resources)
        .filter(([, r]) => r.Type === 'AWS::Lambda::Function')
        .map(([id, r]) => [
          id,
          environmentBytes(r.Properties!.Environment.Variables, template as never, s.stack.stackName),
        ]),
    );
  };

  it('bounds every function of the longest stack name with every feature on, with room to spare', () => {
    const longName = synthesize({
      context: { ...DELIVERY_URL_CONTEXT, ...OPTIONAL_FEATURES_CONTEXT, apiLogging: true },
      stackName: LONGEST_STACK_NAME,
    });
    try {
      const sizes = environments(longName);
      expect(Object.keys(sizes)).toHaveLength(6);
      for (const [id, size] of Object.entries(sizes)) {
        expect(size, id).toEqual({ bytes: expect.any(Number) });
        expect((size as { bytes: number }).bytes, id).toBeLessThan(LAMBDA_ENVIRONMENT_LIMIT / 2);
      }
      expect(checkTemplate(templateOf(longName), longName.stack.stackName)).toEqual([]);
    } finally {
      longName.cleanup();
    }
  });

  it('refuses, at synth, more sources than the key-to-source map of Validate and the status route can carry', () => {
    // Each source adds its API key's id and its name to SOURCE_API_KEY_IDS: 48 of 64 characters are over 4 KB for both.
    const many = synthesize({ context: { ...DELIVERY_URL_CONTEXT, sourceRateLimits: manySources(48, 64) } });
    try {
      const findings = checkTemplate(templateOf(many), many.stack.stackName).filter(
        (f) => f.rule === 'lambda-environment',
      );
      expect(findings.map((f) => f.logicalId).sort()).toEqual([
        expect.stringMatching(/^FunctionsConversationStatus/),
        expect.stringMatching(/^FunctionsValidate/),
      ]);
      for (const finding of findings)
        expect(finding.message).toMatch(
          /can take \d{4} bytes once deployed, over Lambda's 4096 \(the largest: SOURCE_API_KEY_IDS, one entry per source of sourceRateLimits\)/,
        );
    } finally {
      many.cleanup();
    }
  });

  it('counts a generated name at its longest: the stack name, the logical id and the suffix CloudFormation adds', () => {
    const template = {
      Resources: {
        Table: { Type: 'AWS::DynamoDB::Table' },
        Secret: { Type: 'AWS::SecretsManager::Secret' },
        Key: { Type: 'AWS::ApiGateway::ApiKey' },
        Topic: { Type: 'AWS::SNS::Topic' },
      },
      Parameters: { Url: { Type: 'AWS::SSM::Parameter::Value<String>' } },
    };
    // As deployed: `<stack>-Table-<13>`, the secret's ARN in aws-us-gov, a 10-character key id.
    const table = `Gateway-Table-${'A'.repeat(13)}`;
    const secret = `arn:aws-us-gov:secretsmanager:us-gov-west-1:123456789012:secret:Secret-${'a'.repeat(12)}-${'b'.repeat(6)}`;
    const deployed = JSON.stringify({ T: table, S: secret, K: 'a1b2c3d4e5' }).length;
    const bound = environmentBytes(
      { T: { Ref: 'Table' }, S: { Ref: 'Secret' }, K: { Ref: 'Key' } },
      template,
      'Gateway',
    );
    expect(bound).toEqual({ bytes: expect.any(Number) });
    expect((bound as { bytes: number }).bytes).toBeGreaterThanOrEqual(deployed);
    // A value it cannot bound is a finding, not a guess; an SSM parameter's value is the operator's to size.
    expect(environmentBytes({ T: { Ref: 'Topic' } }, template, 'Gateway')).toEqual({
      unbounded: 'T: {"Ref":"Topic"}',
    });
    expect(environmentBytes({ U: { Ref: 'Url' } }, template, 'Gateway')).toEqual({ bytes: '{"U":""}'.length });
  });
});
