import { spawnSync } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import type { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../infra/constructs/stage-function.ts';
import { cfnText, DELIVERY_URL_CONTEXT, type Json, logicalId, type Synthesized, synthesize } from './support/synth.ts';

/**
 * CloudWatch finds a metric only under its exact namespace, name and set of dimensions: an alarm that asks for one
 * dimension more or less than the EMF line carries stays at "insufficient data" (missing data counts as OK here), and
 * a dashboard graph stays empty, while the synth passes. The dimensions come from the function's environment as the
 * template sets it (POWERTOOLS_SERVICE_NAME, POWERTOOLS_METRICS_NAMESPACE and the stack name) and from how the code
 * emits each metric (the stage's Metrics, or a single metric per webhook type): each function's code runs here with its
 * template environment, and every custom metric an alarm or the dashboard reads must be one it writes, dimension for
 * dimension.
 */
const FUNCTIONS = [
  'FunctionsValidate',
  'FunctionsClassify',
  'FunctionsDeliver',
  'FunctionsExport',
  'RedeliveryScheduler',
];

/** What a function's code writes: each metric as the handlers emit it (functions/shared/events.ts, powertools.ts). */
const EMIT = `
const root = ${JSON.stringify(pathToFileURL(`${PROJECT_ROOT}/`).href)};
const { metrics, MetricUnit } = await import(root + 'functions/shared/powertools.ts');
const events = await import(root + 'functions/shared/events.ts');
const names = await import(root + 'functions/domain/observability.ts');
const { WEBHOOK_TYPES } = await import(root + 'functions/domain/conversation.ts');
const { NEW_HEALTH } = await import(root + 'functions/domain/endpoints.ts');
for (const name of [...Object.values(names.METRIC_NAMES), names.EXPORT_DEFERRED_METRIC, names.DELIVERY_UNQUEUED_METRIC, names.SIGNATURE_REJECTED_METRIC])
  metrics.addMetric(name, MetricUnit.Count, 1);
metrics.publishStoredMetrics();
for (const type of WEBHOOK_TYPES) {
  events.recordDeliveryAttempt(type, true, 1);
  events.recordDeliveryAttempt(type, false, 1);
  events.recordDeliveryQueued(type);
}
const endpoints = WEBHOOK_TYPES.map((webhook_type) => ({ webhook_type, config: { paused: false }, health: NEW_HEALTH }));
await events.publishEndpointStates({ list: async () => endpoints }, { failureThreshold: 5, disableAfterMs: 0 });
`;

interface Emitted {
  namespace: string;
  name: string;
  /** Dimension name → value, as CloudWatch stores the metric. */
  dimensions: Record<string, string>;
}

let synth: Synthesized;
let template: Template;
beforeAll(() => {
  synth = synthesize({ context: DELIVERY_URL_CONTEXT });
  template = synth.template;
});
afterAll(() => synth?.cleanup());

/** The EMF lines one function's code writes with the environment the template gives it. */
function emittedBy(functionPrefix: string): Emitted[] {
  const resource = template.toJSON().Resources[logicalId(template, 'AWS::Lambda::Function', functionPrefix)];
  const variables = (resource.Properties.Environment as { Variables: Record<string, Json> }).Variables;
  const env: Record<string, string> = { PATH: process.env.PATH ?? '', POWERTOOLS_TRACE_ENABLED: 'false' };
  for (const [name, value] of Object.entries(variables)) env[name] = cfnText(value);
  const run = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', EMIT], {
    cwd: PROJECT_ROOT,
    env,
    encoding: 'utf8',
  });
  expect(run.status, run.stderr).toBe(0);
  return run.stdout
    .split('\n')
    .filter((line) => line.includes('"_aws"'))
    .flatMap((line) => {
      const emf = JSON.parse(line) as Record<string, unknown> & {
        _aws: { CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[] };
      };
      return emf._aws.CloudWatchMetrics.flatMap((directive) =>
        directive.Dimensions.flatMap((set) =>
          directive.Metrics.map((metric) => ({
            namespace: directive.Namespace,
            name: metric.Name,
            dimensions: Object.fromEntries(set.map((dimension) => [dimension, String(emf[dimension])])),
          })),
        ),
      );
    });
}

/** Every metric of the functions' namespace an alarm or the dashboard reads. */
function readByAlarmsAndDashboard(namespace: string): Emitted[] {
  const read: Emitted[] = [];
  const add = (ns: Json, name: Json, dimensions: { Name: string; Value: Json }[] | undefined) => {
    if (ns !== namespace) return;
    read.push({
      namespace: ns,
      name: String(name),
      dimensions: Object.fromEntries((dimensions ?? []).map((d) => [d.Name, cfnText(d.Value)])),
    });
  };
  for (const alarm of Object.values(template.findResources('AWS::CloudWatch::Alarm'))) {
    const p = alarm.Properties as Record<string, Json>;
    add(p.Namespace ?? null, p.MetricName ?? null, p.Dimensions as never);
    for (const m of (p.Metrics as { MetricStat?: { Metric: Record<string, Json> } }[] | undefined) ?? []) {
      if (m.MetricStat)
        add(m.MetricStat.Metric.Namespace!, m.MetricStat.Metric.MetricName!, m.MetricStat.Metric.Dimensions as never);
    }
  }
  const dashboard = Object.values(template.findResources('AWS::CloudWatch::Dashboard'))[0]!;
  const body = JSON.parse(cfnText(dashboard.Properties.DashboardBody)) as {
    widgets: { properties: { metrics?: Json[][] } }[];
  };
  for (const line of body.widgets.flatMap((w) => w.properties.metrics ?? [])) {
    const parts = line.filter((part) => typeof part === 'string') as string[];
    const [ns, name, ...pairs] = parts;
    const dimensions: { Name: string; Value: Json }[] = [];
    for (let i = 0; i + 1 < pairs.length; i += 2) dimensions.push({ Name: pairs[i]!, Value: pairs[i + 1]! });
    add(ns!, name!, dimensions);
  }
  return read;
}

describe('the custom metrics the alarms and the dashboard read', () => {
  it('are written by the functions, under the same namespace, name and dimensions, with the template’s environment', () => {
    const emitted = FUNCTIONS.flatMap(emittedBy);
    const namespace = emitted[0]!.namespace;
    expect(new Set(emitted.map((e) => e.namespace))).toEqual(new Set([namespace]));
    const read = readByAlarmsAndDashboard(namespace);
    // The five per-conversation metrics, the export and queue counts, signatures refused, and per webhook type the
    // deliveries and the receivers' gauges.
    expect(new Set(read.map((r) => r.name)).size).toBeGreaterThanOrEqual(10);
    const key = (m: Emitted) => JSON.stringify([m.name, Object.entries(m.dimensions).sort()]);
    const written = new Set(emitted.map(key));
    expect(read.filter((r) => !written.has(key(r)))).toEqual([]);
    // The stack dimension is this stack's name: two stacks in one account never read each other's metrics.
    expect(new Set(emitted.map((e) => e.dimensions.stack))).toEqual(new Set([synth.stack.stackName]));
  });
});
