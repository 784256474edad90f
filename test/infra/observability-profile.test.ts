import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OBSERVABILITY_PROFILES } from '../../infra/config.ts';
import { samplingServiceName } from '../../infra/constructs/trace-sampling.ts';
import { DELIVERY_URL_CONTEXT, type Json, type Synthesized, synthesize } from './support/synth.ts';

type Resources = Record<string, { Type: string; Properties: Record<string, Json> }>;
const ofType = (resources: Resources, type: string) => Object.values(resources).filter((r) => r.Type === type);

describe('observabilityProfile', () => {
  let full: Synthesized;
  let lean: Synthesized;
  let fullResources: Resources;
  let leanResources: Resources;
  beforeAll(() => {
    full = synthesize({ context: DELIVERY_URL_CONTEXT });
    lean = synthesize({ context: { ...DELIVERY_URL_CONTEXT, observabilityProfile: 'lean' } });
    fullResources = full.template.toJSON().Resources;
    leanResources = lean.template.toJSON().Resources;
  });
  afterAll(() => {
    full?.cleanup();
    lean?.cleanup();
  });

  it('full (the default): the three workflows log every state with its data; 5 % of conversations are traced', () => {
    const machines = ofType(fullResources, 'AWS::StepFunctions::StateMachine');
    expect(machines).toHaveLength(3);
    for (const m of machines) {
      expect(m.Properties.LoggingConfiguration).toMatchObject({ Level: 'ALL', IncludeExecutionData: true });
      expect(m.Properties.TracingConfiguration).toEqual({ Enabled: true });
    }
    const rules = ofType(fullResources, 'AWS::XRay::SamplingRule');
    expect(rules).toHaveLength(1);
    const rule = rules[0]!.Properties.SamplingRule as Record<string, Json>;
    // The API stage is where a conversation's trace starts: its sampling decision is the conversation's.
    expect(rule).toMatchObject({
      ServiceType: 'AWS::ApiGateway::Stage',
      ServiceName: `${full.stack.stackName}/prod`,
      ReservoirSize: 0,
      FixedRate: OBSERVABILITY_PROFILES.full.traceSampleRate,
      Host: '*',
      HTTPMethod: '*',
      URLPath: '*',
      ResourceARN: '*',
      Version: 1,
    });
    expect(OBSERVABILITY_PROFILES.full.traceSampleRate).toBe(0.05);
    // X-Ray rule names: at most 32 characters, one per stack.
    expect(String(rule.RuleName).length).toBeLessThanOrEqual(32);
    expect(String(rule.RuleName)).toMatch(/^[A-Za-z0-9_-]+$/);
    // Lower than the default rule's 10000 only.
    expect(Number(rule.Priority)).toBeGreaterThanOrEqual(100);
  });

  it('lean: the events without their data, 1 % traced; everything else as in full', () => {
    for (const m of ofType(leanResources, 'AWS::StepFunctions::StateMachine')) {
      expect(m.Properties.LoggingConfiguration).toMatchObject({ Level: 'ALL', IncludeExecutionData: false });
      expect(m.Properties.TracingConfiguration).toEqual({ Enabled: true });
    }
    const rule = ofType(leanResources, 'AWS::XRay::SamplingRule')[0]!.Properties.SamplingRule as Record<string, Json>;
    expect(rule.FixedRate).toBe(0.01);
    const count = (resources: Resources) => Object.keys(resources).length;
    expect(count(leanResources)).toBe(count(fullResources));
  });

  it('refuses a profile it does not know, naming the choices', () => {
    expect(() => synthesize({ context: { ...DELIVERY_URL_CONTEXT, observabilityProfile: 'cheap' } })).toThrow(
      /observabilityProfile must be one of full, lean, got cheap/,
    );
  });

  it('a stack name too long for X-Ray’s 64-character ServiceName: the rule names the stage by its first 63 and *', () => {
    expect(samplingServiceName('gateway/prod')).toBe('gateway/prod');
    const long = `${'a'.repeat(70)}/prod`;
    expect(samplingServiceName(long)).toBe(`${'a'.repeat(63)}*`);
    expect(samplingServiceName(long)).toHaveLength(64);
    expect(samplingServiceName('b'.repeat(64))).toBe('b'.repeat(64));
    const named = synthesize({
      context: DELIVERY_URL_CONTEXT,
      stackName: `Gateway${'x'.repeat(63)}`,
      cfnValidation: true,
    });
    try {
      const rule = ofType(named.template.toJSON().Resources, 'AWS::XRay::SamplingRule')[0]!.Properties
        .SamplingRule as Record<string, Json>;
      expect(String(rule.ServiceName)).toMatch(/^Gatewayx+\*$/);
      expect(String(rule.ServiceName)).toHaveLength(64);
    } finally {
      named.cleanup();
    }
    // A synth with the CloudFormation schema check, inside the test: 39 s on a loaded machine, past the 30 s default.
  }, 120_000);
});
