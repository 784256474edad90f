/**
 * `node --import tsx bench/support/synth-facts.ts <outdir> [context JSON]`: synthesizes the CDK app's stack (context
 * from cdk.json, then the given context, e.g. `{"observabilityProfile":"lean"}`; no bundling, no credentials) and
 * prints, as one JSON line, the facts the cost model reads from the template.
 * Run as a child process so that an unfinished infra/ cannot take the bench down.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { App } from 'aws-cdk-lib';
import { WebhookGatewayStack } from '../../infra/webhook-gateway-stack.ts';
import { PROJECT_ROOT } from './processes.ts';

type Resource = { Type: string; Properties?: Record<string, any> };

const outdir = process.argv[2];
if (!outdir) throw new Error('usage: synth-facts.ts <outdir> [context JSON]');
const extraContext = JSON.parse(process.argv[3] ?? '{}') as Record<string, unknown>;
process.env.CDK_DOCKER = '/bin/false';
const cdkJson = JSON.parse(readFileSync(path.join(PROJECT_ROOT, 'cdk.json'), 'utf8')) as {
  context: Record<string, unknown>;
};
const app = new App({ outdir, context: { ...cdkJson.context, ...extraContext, 'aws:cdk:bundling-stacks': [] } });
const stack = new WebhookGatewayStack(app, 'BenchGateway', { env: { region: 'us-east-1' } });
const assembly = app.synth();
const template = assembly.getStackByName(stack.stackName).template as { Resources: Record<string, Resource> };
const resources = Object.entries(template.Resources);
const ofType = (type: string) => resources.filter(([, r]) => r.Type === type);

const stageOf: Record<string, string> = {};
for (const [stage, fn] of Object.entries({
  validate: stack.functions.validate,
  classify: stack.functions.classify,
  deliver: stack.functions.deliver,
  export: stack.functions.export,
})) {
  stageOf[stack.getLogicalId(fn.node.defaultChild as never)] = stage;
}
const functions = ofType('AWS::Lambda::Function').map(([id, r]) => ({
  logical_id: id,
  stage: stageOf[id] ?? null,
  memory_mb: Number(r.Properties?.MemorySize ?? 128),
  architecture: (r.Properties?.Architectures ?? ['x86_64'])[0],
  runtime: r.Properties?.Runtime,
  tracing: r.Properties?.TracingConfig?.Mode ?? 'PassThrough',
  log_format: r.Properties?.LoggingConfig?.LogFormat ?? 'Text',
  timeout_s: r.Properties?.Timeout,
}));
let conversationMachine: string | null = null;
try {
  conversationMachine = stack.getLogicalId(stack.workflow.stateMachine.node.defaultChild as never);
} catch {
  // an older or newer stack shape: fall back to the first Express machine
}
const machines = ofType('AWS::StepFunctions::StateMachine').map(([id, r]) => ({
  logical_id: id,
  conversation: id === conversationMachine,
  type: r.Properties?.StateMachineType ?? 'STANDARD',
  log_level: r.Properties?.LoggingConfiguration?.Level ?? 'OFF',
  include_execution_data: r.Properties?.LoggingConfiguration?.IncludeExecutionData ?? false,
  tracing: r.Properties?.TracingConfiguration?.Enabled ?? false,
}));
const stages = ofType('AWS::ApiGateway::Stage').map(([id, r]) => ({
  logical_id: id,
  tracing: r.Properties?.TracingEnabled ?? false,
  access_log_format: r.Properties?.AccessLogSetting?.Format ?? null,
  method_settings: (r.Properties?.MethodSettings ?? []).map((m: Record<string, unknown>) => ({
    logging_level: m.LoggingLevel ?? 'OFF',
    data_trace: m.DataTraceEnabled ?? false,
    throttling_rate_limit: m.ThrottlingRateLimit ?? null,
    throttling_burst_limit: m.ThrottlingBurstLimit ?? null,
  })),
}));
const buckets = ofType('AWS::S3::Bucket').map(([id, r]) => ({
  logical_id: id,
  versioning: r.Properties?.VersioningConfiguration?.Status ?? 'Disabled',
  encryption:
    r.Properties?.BucketEncryption?.ServerSideEncryptionConfiguration?.[0]?.ServerSideEncryptionByDefault
      ?.SSEAlgorithm ?? 'AES256',
  bucket_key: r.Properties?.BucketEncryption?.ServerSideEncryptionConfiguration?.[0]?.BucketKeyEnabled ?? false,
  transitions: (r.Properties?.LifecycleConfiguration?.Rules ?? []).flatMap(
    (rule: Record<string, any>) => rule.Transitions ?? [],
  ),
}));
const logGroups = ofType('AWS::Logs::LogGroup').map(([id, r]) => ({
  logical_id: id,
  retention_days: r.Properties?.RetentionInDays ?? null,
  data_protection: Boolean(r.Properties?.DataProtectionPolicy),
}));
const samplingRules = ofType('AWS::XRay::SamplingRule').map(([id, r]) => {
  const rule = r.Properties?.SamplingRule ?? {};
  return {
    logical_id: id,
    service_type: rule.ServiceType ?? '*',
    service_name: typeof rule.ServiceName === 'string' ? rule.ServiceName : JSON.stringify(rule.ServiceName),
    priority: Number(rule.Priority ?? 10_000),
    reservoir_size: Number(rule.ReservoirSize ?? 0),
    fixed_rate: Number(rule.FixedRate ?? 0),
  };
});
process.stdout.write(
  `${JSON.stringify({ stack: stack.stackName, functions, state_machines: machines, api_stages: stages, buckets, log_groups: logGroups, sampling_rules: samplingRules })}\n`,
);
