import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analyticsWorkGroupName } from '../../infra/constructs/conversation-analytics.ts';
import { checkNames } from '../../infra/template-checks/name-limits.ts';
import { checkTemplate, resourceSpecification } from '../../infra/template-checks/plugin.ts';
import { CDK_METADATA_TYPE } from '../../infra/template-checks/resource-specification.ts';
import { checkStateMachineDefinitions } from '../../infra/template-checks/state-machine-definitions.ts';
import { DELIVERY_URL_CONTEXT, OPTIONAL_FEATURES_CONTEXT, type Synthesized, synthesize } from './support/synth.ts';

type Template = { Resources: Record<string, { Type: string; Properties?: Record<string, any> }> };

/** The longest stack name CloudFormation accepts (128 characters): every name the stack derives from it must fit. */
const LONGEST_STACK_NAME = `W${'x'.repeat(127)}`;

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
  const templateOf = (s: Synthesized) => s.template.toJSON() as Template;

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
    dashboard.Properties!.DashboardName = 'ops dashboard';
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
