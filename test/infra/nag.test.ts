import { Validations } from 'aws-cdk-lib';
import type { AwsSolutionsChecks } from 'cdk-nag';
import type { IConstruct } from 'constructs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DELIVERY_URL_CONTEXT, OPTIONAL_FEATURES_CONTEXT, type Synthesized, synthesize } from './support/synth.ts';

/** Every acknowledged cdk-nag finding of the stack, where it is acknowledged, and why. */
function acknowledgments(root: IConstruct): { path: string; id: string; reason: string }[] {
  const out: { path: string; id: string; reason: string }[] = [];
  for (const construct of root.node.findAll()) {
    for (const entry of construct.node.metadata) {
      if (entry.type !== Validations.ACKNOWLEDGED_RULES_METADATA_KEY) continue;
      for (const [id, reason] of Object.entries(entry.data as Record<string, string>)) {
        out.push({ path: construct.node.path, id: id.replace(/^annotation::/i, ''), reason });
      }
    }
  }
  return out;
}

/** Which acknowledgments an AwsSolutions run actually relied on (a finding existed and was acknowledged). */
function usedAcknowledgments(checks: AwsSolutionsChecks, root: IConstruct): Set<string> {
  const used = new Set<string>();
  const pack = checks as unknown as { isAcknowledged: (node: IConstruct, ruleId: string) => boolean };
  const original = pack.isAcknowledged.bind(checks);
  pack.isAcknowledged = (node, ruleId) => {
    const acknowledged = original(node, ruleId);
    if (acknowledged) used.add(ruleId);
    return acknowledged;
  };
  try {
    checks.validateScope(root);
  } finally {
    pack.isAcknowledged = original;
  }
  return used;
}

// One synthesis, registered with cdk-nag exactly as infra/app.ts does (no bundling: the checks read the
// construct tree and the template, not the code), with every optional resource switched on.
let synth: Synthesized;
beforeAll(() => {
  synth = synthesize({ checks: true, context: { ...DELIVERY_URL_CONTEXT, ...OPTIONAL_FEATURES_CONTEXT } });
});
afterAll(() => synth?.cleanup());

describe('cdk-nag AwsSolutions', () => {
  it('reports no unacknowledged finding, error or warning', () => {
    const report = synth.checks!.validateScope(synth.stack);
    expect(
      report.violations.map(
        (v) => `${v.severity} ${v.ruleName}: ${v.violatingResources.map((r) => r.constructPath).join(', ')}`,
      ),
    ).toEqual([]);
    expect(report.success).toBe(true);
  });

  it('leaves no error annotation on the stack', () => {
    const messages = synth.assembly.getStackByName(synth.stack.stackName).messages;
    expect(messages.filter((m) => m.level === 'error')).toEqual([]);
  });

  it('acknowledges each finding next to its resource with a real reason', () => {
    const acks = acknowledgments(synth.stack);
    expect(acks.length).toBeGreaterThan(0);
    for (const ack of acks) {
      expect(ack.reason.length, `${ack.id} at ${ack.path}`).toBeGreaterThanOrEqual(60);
      expect(ack.path, `${ack.id} is acknowledged on the whole stack`).not.toBe(synth.stack.node.path);
    }
  });

  it('acknowledges only these rules (a new one needs a review here)', () => {
    const ids = [
      ...new Set(
        acknowledgments(synth.stack).map((a) =>
          a.id
            .replace(/<StorageBucket[0-9A-F]{8}\.Arn>/, '<ExportBucket.Arn>')
            .replace(/<AnalyticsResultsBucket[0-9A-F]{8}\.Arn>/, '<ResultsBucket.Arn>'),
        ),
      ),
    ].sort();
    expect(ids).toEqual(
      [
        'AwsSolutions-APIG2',
        'AwsSolutions-APIG3',
        'AwsSolutions-APIG4',
        'AwsSolutions-COG4',
        'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
        'AwsSolutions-IAM5[Resource::*]',
        'AwsSolutions-IAM5[Resource::<ExportBucket.Arn>/conversation-history/*]',
        'AwsSolutions-IAM5[Resource::<ResultsBucket.Arn>/results/*]',
        'AwsSolutions-L1',
        'AwsSolutions-S1',
        'AwsSolutions-SMG4',
      ].sort(),
    );
  });

  it('has no stale acknowledgment: every one covers a finding the checks actually raised', () => {
    const used = usedAcknowledgments(synth.checks!, synth.stack);
    const declared = new Set(acknowledgments(synth.stack).map((a) => a.id));
    expect([...declared].filter((id) => !used.has(id))).toEqual([]);
  });

  it('writes the acknowledgments and their reasons into the template metadata (cdk_nag)', () => {
    const resources = synth.template.toJSON().Resources as Record<
      string,
      { Metadata?: { cdk_nag?: { rules_to_suppress: { id: string; reason: string }[] } } }
    >;
    const written = Object.values(resources).flatMap((r) => r.Metadata?.cdk_nag?.rules_to_suppress ?? []);
    expect(written.length).toBeGreaterThan(0);
    for (const rule of written) expect(rule.reason.length).toBeGreaterThanOrEqual(60);
  });
});

describe('cdk-nag AwsSolutions on the default stack (no API logging: a new account has no API Gateway role)', () => {
  let defaults: Synthesized;
  beforeAll(() => {
    defaults = synthesize({ checks: true, context: DELIVERY_URL_CONTEXT });
  });
  afterAll(() => defaults?.cleanup());

  it('reports no unacknowledged finding, and says why access and execution logging are off', () => {
    const report = defaults.checks!.validateScope(defaults.stack);
    expect(report.violations.map((v) => v.ruleName)).toEqual([]);
    const used = usedAcknowledgments(defaults.checks!, defaults.stack);
    expect([...used]).toEqual(expect.arrayContaining(['AwsSolutions-APIG1', 'AwsSolutions-APIG6']));
  });
});
