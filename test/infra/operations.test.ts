import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { renderExpressLog } from '../../bench/support/express-log.ts';
import { WEBHOOK_TYPES } from '../../functions/domain/conversation.ts';
import { FAILURE_STATUS } from '../../functions/domain/gateway-contract.ts';
import { METRIC_NAMES } from '../../functions/shared/events.ts';
import { METRICS_NAMESPACE, SERVICE_NAME } from '../../functions/shared/powertools.ts';
import { DEFAULT_CONFIG } from '../../infra/config.ts';
import { SEED_QUERIES } from '../../infra/constructs/saved-queries.ts';
import { CUSTOM_METRICS, SIGNATURE_REJECTED_METRIC } from '../../infra/metrics.ts';
import { STACK_OUTPUTS } from '../../infra/webhook-gateway-stack.ts';
import { STATEMACHINE_DIR } from '../../local/paths.ts';
import { cfnText, DELIVERY_URL_CONTEXT, type Json, logicalId, type Synthesized, synthesize } from './support/synth.ts';

// Monitoring with the defaults (docs/deploy.md#monitoring): dashboard, alarms (no topic), saved queries. The alarm
// topic and a changed agent bound are in config.test.ts. One synthesis, no bundling.
let synth: Synthesized;
let template: Template;
let resources: Record<string, { Type: string; Properties: Record<string, Json> }>;
beforeAll(() => {
  synth = synthesize({ context: DELIVERY_URL_CONTEXT });
  template = synth.template;
  resources = template.toJSON().Resources;
});
afterAll(() => synth?.cleanup());

const props = (id: string) => (resources[id] as { Properties: Record<string, Json> }).Properties;
const id = (type: string, prefix: string) => logicalId(template, type, prefix);
const alarm = (name: string) => props(id('AWS::CloudWatch::Alarm', `Alarms${name}`));
/** Every metric line of the dashboard's graphs: [namespace, name, dim, value, …, {options}]. */
function dashboardMetrics(): Json[][] {
  const body = JSON.parse(
    cfnText(Object.values(template.findResources('AWS::CloudWatch::Dashboard'))[0]!.Properties.DashboardBody),
  ) as {
    widgets: { properties: { metrics?: Json[][] } }[];
  };
  return body.widgets.flatMap((w) => w.properties.metrics ?? []);
}
const stat = (line: Json[]) => (line.at(-1) as { stat?: string }).stat;

/**
 * A CloudWatch Logs JSON filter pattern, in the forms the stack's filters on execution logs use (`$.a.b = "value"`,
 * `!=`, `NOT EXISTS`, `IS NULL`, `&&`, `||` and parentheses), applied to one log event. A comparison with a field
 * the event lacks (or holds null) matches neither `=` nor `!=`: the guide does not say otherwise, so a filter that
 * must see such events has to ask for them (NOT EXISTS, IS NULL).
 */
function matchesJsonPattern(pattern: string, event: Record<string, unknown>): boolean {
  const body = /^\{ (.*) \}$/.exec(pattern)?.[1];
  if (!body) throw new Error(`not a JSON filter pattern: ${pattern}`);
  const tokens = body.match(/"[^"]*"|\$\.[\w.]+|&&|\|\||!=|=|\(|\)|NOT EXISTS|IS NULL|\S+/g) ?? [];
  let at = 0;
  const field = (selector: string) =>
    selector
      .slice(2)
      .split('.')
      .reduce<unknown>((value, key) => (value as Record<string, unknown> | null | undefined)?.[key], event);
  const term = (): boolean => {
    const token = tokens[at++];
    if (token === '(') {
      const value = or();
      if (tokens[at++] !== ')') throw new Error(`unbalanced ( in ${pattern}`);
      return value;
    }
    if (!token?.startsWith('$.')) throw new Error(`unsupported term at ${token} in ${pattern}`);
    const found = field(token);
    const operator = tokens[at++];
    if (operator === 'NOT EXISTS') return found === undefined;
    if (operator === 'IS NULL') return found === null;
    const literal = /^"([^"]*)"$/.exec(tokens[at++] ?? '')?.[1];
    if (literal === undefined || (operator !== '=' && operator !== '!=')) throw new Error(`unsupported ${pattern}`);
    if (typeof found !== 'string') return false;
    return operator === '=' ? found === literal : found !== literal;
  };
  const and = (): boolean => {
    let value = term();
    while (tokens[at] === '&&') {
      at++;
      value = term() && value;
    }
    return value;
  };
  const or = (): boolean => {
    let value = and();
    while (tokens[at] === '||') {
      at++;
      value = and() || value;
    }
    return value;
  };
  const value = or();
  if (at !== tokens.length) throw new Error(`unparsed ${tokens.slice(at).join(' ')} in ${pattern}`);
  return value;
}

/** The three saved Logs Insights queries (docs/deploy.md#monitoring), trailing spaces included. */
const SEED = [
  'fields @timestamp, conversation_id, webhook_metadata.source_system\n| filter event_type = "WEBHOOK_CONVERSATION_COMPLETED"\n| filter webhook_metadata.source_system = "your_system"\n| sort @timestamp desc',
  'fields @timestamp, conversation_id, total_time_ms\n| filter event_type = "WEBHOOK_CONVERSATION_COMPLETED"\n| stats avg(total_time_ms), max(total_time_ms), min(total_time_ms) by bin(5m)',
  'fields @timestamp, delivery_status, webhook_type\n| filter event_type = "WEBHOOK_CONVERSATION_COMPLETED"  \n| stats count() by delivery_status, webhook_type',
];

describe('dashboard', () => {
  it('is one dashboard named after the stack and its region, and an output', () => {
    // "All dashboards in your account are global, not region-specific" (AWS::CloudWatch::Dashboard): the same stack
    // deployed in a second region must not meet the first one's dashboard by name.
    const dashboards = template.findResources('AWS::CloudWatch::Dashboard');
    expect(Object.values(dashboards).map((d) => d.Properties.DashboardName)).toEqual([
      { 'Fn::Join': ['', [`${synth.stack.stackName}-`, { Ref: 'AWS::Region' }, '-operations']] },
    ]);
    expect(template.toJSON().Outputs[STACK_OUTPUTS.dashboard].Value).toEqual({ Ref: Object.keys(dashboards)[0] });
  });

  it('graphs the five custom metrics (and signature rejections), each with the service and stack dimensions', () => {
    expect(Object.values(CUSTOM_METRICS).sort()).toEqual(Object.values(METRIC_NAMES).sort());
    const custom = dashboardMetrics().filter((line) => line[0] === METRICS_NAMESPACE);
    expect([...new Set(custom.map((line) => line[1]))].sort()).toEqual(
      [
        ...Object.values(METRIC_NAMES),
        SIGNATURE_REJECTED_METRIC,
        'Webhook.delivery_failed',
        'Webhook.delivery_succeeded',
        'Webhook.delivery_time_by_type',
      ].sort(),
    );
    for (const line of custom)
      expect(line.slice(2, 6)).toEqual(['service', SERVICE_NAME, 'stack', synth.stack.stackName]);
    // The delivery metrics per webhook type: one line per type, with its dimension.
    const perType = custom.filter((line) => line[1] === 'Webhook.delivery_failed');
    expect(perType.map((line) => line.slice(6, 8))).toEqual(WEBHOOK_TYPES.map((type) => ['webhook_type', type]));
  });

  it('shows agent and delivery latency as p50 and p99', () => {
    const custom = dashboardMetrics().filter((line) => line[0] === METRICS_NAMESPACE);
    for (const name of [METRIC_NAMES.agentProcessingTime, METRIC_NAMES.deliveryResponseTime]) {
      expect(
        custom
          .filter((line) => line[1] === name)
          .map(stat)
          .sort(),
      ).toEqual(['p50', 'p99']);
    }
  });

  it('counts started, succeeded, failed and timed-out executions of the three workflows', () => {
    const states = dashboardMetrics().filter((line) => line[0] === 'AWS/States');
    for (const sm of ['WorkflowStateMachine', 'AcceptStateMachine', 'RedeliveryStateMachine']) {
      const ref = `{Ref:${id('AWS::StepFunctions::StateMachine', sm)}}`;
      const names = states.filter((line) => line[3] === ref).map((line) => line[1]);
      expect(names.sort(), sm).toEqual([
        'ExecutionsFailed',
        'ExecutionsStarted',
        'ExecutionsSucceeded',
        'ExecutionsTimedOut',
      ]);
    }
  });

  it('shows the depth of the failed-delivery queue and of its dead-letter queue', () => {
    const sqs = dashboardMetrics().filter((line) => line[0] === 'AWS/SQS');
    const queueName = (prefix: string) => `{GetAtt:${id('AWS::SQS::Queue', prefix)}.QueueName}`;
    const of = (prefix: string) => sqs.filter((line) => line[3] === queueName(prefix)).map((line) => line[1]);
    expect(of('FailedDeliveryQueue')).toEqual(
      expect.arrayContaining([
        'ApproximateNumberOfMessagesVisible',
        'ApproximateNumberOfMessagesNotVisible',
        'ApproximateNumberOfMessagesDelayed',
      ]),
    );
    expect(of('FailedDeliveryDeadLetterQueue')).toEqual([
      'ApproximateNumberOfMessagesVisible',
      'ApproximateAgeOfOldestMessage',
    ]);
  });
});

describe('alarms', () => {
  it('are these eighteen, named after the stack, OK when data is missing, with no action without alarmEmail', () => {
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm')).map((a) => a.Properties);
    expect(alarms.map((a) => a.AlarmName).sort()).toEqual(
      [
        'AgentLatencyP99',
        'ConversationServerFailures',
        'AcceptServerFailures',
        'ExportsDeferred',
        'FailedDeliveryDeadLetters',
        'FailedDeliveryDeadLetterAge',
        'RedeliveryExecutionsFailed',
        'RedeliverySchedulerErrors',
        'RecordsOnlyInLogs',
        'DeliveriesUnqueued',
        'DeliveryFailures-deal_analysis',
        'DeliveryFailures-data_analysis',
        'DeliveryFailures-lead_analysis',
        'DeliveryFailures-general',
        'EndpointDisabled-deal_analysis',
        'EndpointDisabled-data_analysis',
        'EndpointDisabled-lead_analysis',
        'EndpointDisabled-general',
      ]
        .sort()
        .map((name) => `${synth.stack.stackName}-${name}`),
    );
    for (const a of alarms) {
      expect(a).toMatchObject({ ComparisonOperator: 'GreaterThanThreshold', TreatMissingData: 'notBreaching' });
      expect(a.AlarmActions).toBeUndefined();
    }
    expect(Object.keys(template.findResources('AWS::SNS::Topic'))).toEqual([]);
  });

  it.each([
    [
      'ExportsDeferred',
      'Webhook.export_deferred',
      /failed-delivery queue as export-only envelopes.*one the queue refused too is counted by RecordsOnlyInLogs/,
    ],
    ['DeliveriesUnqueued', 'Webhook.delivery_unqueued', /no automatic attempt follows.*deliveries resend <id> --aws/],
  ])(
    '%s fires on any count of %s (an export S3 refused; a delivery the queue refused), with the service and stack dimensions',
    (name, metric, says) => {
      expect(alarm(name)).toMatchObject({
        Namespace: 'RevOps/WebhookGateway',
        MetricName: metric,
        Dimensions: [
          { Name: 'service', Value: 'webhook-gateway' },
          { Name: 'stack', Value: synth.stack.stackName },
        ],
        Statistic: 'Sum',
        Period: 300,
        Threshold: 0,
      });
      expect(alarm(name).AlarmDescription).toMatch(says);
    },
  );

  it('fire on any message in the dead-letter queue', () => {
    expect(alarm('FailedDeliveryDeadLetters')).toMatchObject({
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Dimensions: [
        {
          Name: 'QueueName',
          Value: { 'Fn::GetAtt': [id('AWS::SQS::Queue', 'FailedDeliveryDeadLetterQueue'), 'QueueName'] },
        },
      ],
      Statistic: 'Maximum',
      Period: 300,
      EvaluationPeriods: 1,
      Threshold: 0,
    });
  });

  it('fire when the oldest dead letter is older than 7 days, half of the 14 days after which SQS deletes it', () => {
    const dlq = id('AWS::SQS::Queue', 'FailedDeliveryDeadLetterQueue');
    expect(props(dlq).MessageRetentionPeriod).toBe(14 * 86_400);
    expect(props(id('AWS::SQS::Queue', 'FailedDeliveryQueue')).MessageRetentionPeriod).toBe(14 * 86_400);
    expect(alarm('FailedDeliveryDeadLetterAge')).toMatchObject({
      Namespace: 'AWS/SQS',
      MetricName: 'ApproximateAgeOfOldestMessage',
      Dimensions: [{ Name: 'QueueName', Value: { 'Fn::GetAtt': [dlq, 'QueueName'] } }],
      Statistic: 'Maximum',
      Period: 300,
      EvaluationPeriods: 1,
      ComparisonOperator: 'GreaterThanThreshold',
      Threshold: 7 * 86_400,
      TreatMissingData: 'notBreaching',
      AlarmDescription: expect.stringContaining('deletes it'),
    });
  });

  it('fire when the agent p99 exceeds agentP99AlarmMs (15 s by default) in 2 of 3 five-minute periods', () => {
    expect(alarm('AgentLatencyP99')).toMatchObject({
      Namespace: METRICS_NAMESPACE,
      MetricName: METRIC_NAMES.agentProcessingTime,
      Dimensions: [
        { Name: 'service', Value: SERVICE_NAME },
        { Name: 'stack', Value: synth.stack.stackName },
      ],
      ExtendedStatistic: 'p99',
      Period: 300,
      EvaluationPeriods: 3,
      DatapointsToAlarm: 2,
      Threshold: DEFAULT_CONFIG.agentP99AlarmMs,
    });
    expect(DEFAULT_CONFIG.agentP99AlarmMs).toBe(15_000);
  });

  it('fire per webhook type when its receiver fails deliveryFailureAlarmCount (5) attempts in 5 minutes, and stay on while it is failing', () => {
    const alarms = Object.values(template.findResources('AWS::CloudWatch::Alarm')).map((a) => a.Properties);
    const count = DEFAULT_CONFIG.deliveryFailureAlarmCount;
    for (const type of WEBHOOK_TYPES) {
      const found = alarms.find((a) => a.AlarmName === `${synth.stack.stackName}-DeliveryFailures-${type}`);
      expect(found).toMatchObject({ ComparisonOperator: 'GreaterThanThreshold', Threshold: count - 1 });
      const metrics = found.Metrics as {
        Id: string;
        Expression?: string;
        ReturnData?: boolean;
        MetricStat?: {
          Metric: { Namespace: string; MetricName: string; Dimensions: unknown[] };
          Stat: string;
          Period: number;
        };
      }[];
      const dimensions = [
        { Name: 'service', Value: SERVICE_NAME },
        { Name: 'stack', Value: synth.stack.stackName },
        { Name: 'webhook_type', Value: type },
      ];
      const stat = (id: string) => metrics.find((m) => m.Id === id)!.MetricStat;
      expect(stat('failed')).toEqual({
        Metric: { Namespace: METRICS_NAMESPACE, MetricName: 'Webhook.delivery_failed', Dimensions: dimensions },
        Stat: 'Sum',
        Period: 300,
      });
      // The scheduler's gauge, 1 every minute while the circuit breaker is open: a receiver down for hours makes only
      // a probe's attempts, fewer than the bound, and the alarm must not say OK meanwhile.
      expect(stat('failing')).toEqual({
        Metric: { Namespace: METRICS_NAMESPACE, MetricName: 'Webhook.endpoint_failing', Dimensions: dimensions },
        Stat: 'Maximum',
        Period: 300,
      });
      const expression = metrics.find((m) => m.Expression)!.Expression!;
      const value = (failed: number | undefined, failing: number | undefined) =>
        Number(Function('failed', 'failing', `const FILL = (x, d) => x ?? d; return ${expression};`)(failed, failing));
      expect(value(count, undefined)).toBeGreaterThan(count - 1);
      expect(value(count - 1, 0)).toBe(count - 1);
      expect(value(1, 1)).toBeGreaterThan(count - 1);
      expect(value(undefined, 1)).toBeGreaterThan(count - 1);
      expect(value(undefined, undefined)).toBe(0);
    }
  });

  it('fire on any record S3 and the failed-delivery queue both refused: logged whole by the Export function, or, when Lambda would not run that, only in the execution history', () => {
    const filterOf = (metric: string) =>
      Object.values(template.findResources('AWS::Logs::MetricFilter'))
        .map((f) => f.Properties)
        .filter((f) => f.MetricTransformations[0].MetricName === metric);
    const namespace = `${METRICS_NAMESPACE}/${synth.stack.stackName}`;
    expect(filterOf('RecordsOnlyInLogs')).toEqual([
      expect.objectContaining({
        LogGroupName: { Ref: id('AWS::Logs::LogGroup', 'FunctionsExportLogGroup') },
        FilterPattern: '{ $.event_type = "WEBHOOK_CONVERSATION_UNSAVED" }',
      }),
    ]);
    // Before: nothing counted a record whose RecordOnlyInLogs Lambda refused (it writes no line).
    const [inHistory] = filterOf('RecordsOnlyInHistory');
    expect(inHistory).toMatchObject({
      LogGroupName: { Ref: id('AWS::Logs::LogGroup', 'WorkflowExecutionLogs') },
      MetricTransformations: [{ MetricNamespace: namespace, MetricName: 'RecordsOnlyInHistory', MetricValue: '1' }],
    });
    // PassStateEntered is an event of level ALL only; the workflow logs at that level.
    expect(props(id('AWS::StepFunctions::StateMachine', 'WorkflowStateMachine')).LoggingConfiguration).toMatchObject({
      Level: 'ALL',
    });
    // The pattern against the execution log's events as Express writes them (bench/support/express-log.ts renders
    // the documented shape): it counts the entry into RecordOnlyInHistory, and no other event of that execution.
    const definition = JSON.parse(readFileSync(path.join(STATEMACHINE_DIR, 'conversation.asl.json'), 'utf8')) as {
      States: Record<string, { Type: string; Catch?: { Next: string }[]; Next?: string }>;
    };
    expect(definition.States.RecordOnlyInLogs!.Catch!.map((c) => c.Next)).toEqual(['RecordOnlyInHistory']);
    expect(definition.States.RecordOnlyInHistory).toMatchObject({ Type: 'Pass', Next: 'AnswerWithoutExport' });
    const states = ['CloseWithoutExport', 'QueueFailedExport', 'RecordOnlyInLogs', 'RecordOnlyInHistory'];
    const events = states.flatMap((state) => [
      { type: 'StateEntered', timestamp: 0, state, input: {} },
      { type: 'StateExited', timestamp: 0, state, output: {} },
    ]);
    const lines = renderExpressLog(definition.States, { input: {}, events }, [], true).map(
      (line) => JSON.parse(line) as Record<string, unknown>,
    );
    const matching = lines.filter((event) => matchesJsonPattern(String(inHistory!.FilterPattern), event));
    expect(matching).toEqual([
      expect.objectContaining({
        type: 'PassStateEntered',
        details: expect.objectContaining({ name: 'RecordOnlyInHistory' }),
      }),
    ]);

    const a = alarm('RecordsOnlyInLogs');
    expect(a).toMatchObject({ Threshold: 0, ComparisonOperator: 'GreaterThanThreshold' });
    const metrics = a.Metrics as { Id: string; Expression?: string; MetricStat?: { Metric: Json; Stat: string } }[];
    expect(metrics.find((m) => m.Expression)?.Expression).toBe('FILL(logged, 0) + FILL(inHistory, 0)');
    expect(metrics.filter((m) => m.MetricStat).map((m) => [m.Id, m.MetricStat!.Metric, m.MetricStat!.Stat])).toEqual([
      ['logged', { Namespace: namespace, MetricName: 'RecordsOnlyInLogs' }, 'Sum'],
      ['inHistory', { Namespace: namespace, MetricName: 'RecordsOnlyInHistory' }, 'Sum'],
    ]);
  });

  it.each([
    ['conversation', 'ConversationServerFailures', 'WorkflowExecutionLogs', 'WorkflowStateMachine'],
    ['accept', 'AcceptServerFailures', 'AcceptExecutionLogs', 'AcceptStateMachine'],
  ])("count %s failures except the contract's client errors, plus timeouts, over 5 minutes", (_, name, log, sm) => {
    const clientErrors = Object.entries(FAILURE_STATUS)
      .filter(([, status]) => status < 500)
      .map(([error]) => error);
    expect(clientErrors).toEqual(expect.arrayContaining(['ValidationError', 'SignatureError']));
    const filters = Object.values(template.findResources('AWS::Logs::MetricFilter'))
      .map((f) => f.Properties)
      .filter((f) => f.MetricTransformations[0].MetricName === name);
    expect(filters).toHaveLength(1);
    expect(filters[0]).toMatchObject({
      LogGroupName: { Ref: id('AWS::Logs::LogGroup', log) },
      MetricTransformations: [
        {
          // A filter's dimensions come from the log event only: the stack is in the namespace.
          MetricNamespace: `${METRICS_NAMESPACE}/${synth.stack.stackName}`,
          MetricName: name,
          MetricValue: '1',
        },
      ],
    });
    const pattern = String(filters[0]!.FilterPattern);
    expect(pattern.startsWith('{ $.type = "ExecutionFailed"')).toBe(true);
    for (const error of clientErrors) expect(pattern).toContain(`$.details.error != "${error}"`);
    expect(pattern).not.toContain('AgentError');
    // The accept workflow's own 5xx (the run could not be started) pages.
    expect(pattern).not.toContain('ConversationNotStarted');
    const failed = (details: Record<string, unknown>) => ({ id: '9', type: 'ExecutionFailed', details });
    const counted = (details: Record<string, unknown>) => matchesJsonPattern(pattern, failed(details));
    for (const error of clientErrors) expect(counted({ error, cause: '{}' })).toBe(false);
    for (const error of ['AgentError', 'ConversationNotStarted', 'States.Timeout', 'States.DataLimitExceeded'])
      expect(counted({ error, cause: '' })).toBe(true);
    expect(matchesJsonPattern(pattern, { id: '8', type: 'FailStateEntered', details: { name: 'AgentFailed' } })).toBe(
      false,
    );
    // The lean profile logs without execution data, and AWS does not document whether an ExecutionFailed event keeps
    // its error then: one without (or with a null one) is counted, a failure the alarm cannot tell from a client
    // error, rather than matching no term and leaving the alarm OK through every failure (docs/deploy.md).
    expect(counted({})).toBe(true);
    expect(counted({ error: null, cause: null })).toBe(true);

    const a = alarm(name);
    expect(a).toMatchObject({ Threshold: 0, EvaluationPeriods: 1 });
    const metrics = a.Metrics as {
      Id: string;
      Expression?: string;
      MetricStat?: {
        Metric: { MetricName: string; Namespace: string; Dimensions?: Json };
        Period: number;
        Stat: string;
      };
    }[];
    expect(metrics.find((m) => m.Expression)?.Expression).toBe('FILL(failed, 0) + FILL(timedOut, 0)');
    expect(
      metrics
        .filter((m) => m.MetricStat)
        .map((m) => [
          m.MetricStat!.Metric.Namespace,
          m.MetricStat!.Metric.MetricName,
          m.MetricStat!.Stat,
          m.MetricStat!.Period,
        ]),
    ).toEqual([
      [`${METRICS_NAMESPACE}/${synth.stack.stackName}`, name, 'Sum', 300],
      ['AWS/States', 'ExecutionsTimedOut', 'Sum', 300],
    ]);
    expect(
      metrics.find((m) => m.MetricStat?.Metric.MetricName === 'ExecutionsTimedOut')?.MetricStat?.Metric,
    ).toMatchObject({
      Dimensions: [{ Name: 'StateMachineArn', Value: { Ref: id('AWS::StepFunctions::StateMachine', sm) } }],
    });
    // On the dashboard's alarm widget with the others.
    expect(
      cfnText(Object.values(template.findResources('AWS::CloudWatch::Dashboard'))[0]!.Properties.DashboardBody),
    ).toContain(`{GetAtt:${id('AWS::CloudWatch::Alarm', `Alarms${name}`)}.Arn}`);
  });

  it('fire on any failed or timed-out redelivery execution and on any scheduler error', () => {
    const redelivery = alarm('RedeliveryExecutionsFailed').Metrics as {
      MetricStat?: { Metric: { MetricName: string; Dimensions: Json } };
    }[];
    expect(redelivery.filter((m) => m.MetricStat).map((m) => m.MetricStat!.Metric)).toEqual([
      expect.objectContaining({
        MetricName: 'ExecutionsFailed',
        Dimensions: [{ Name: 'StateMachineArn', Value: { Ref: id('AWS::StepFunctions::StateMachine', 'Redelivery') } }],
      }),
      expect.objectContaining({ MetricName: 'ExecutionsTimedOut' }),
    ]);
    expect(alarm('RedeliverySchedulerErrors')).toMatchObject({
      Namespace: 'AWS/Lambda',
      MetricName: 'Errors',
      Dimensions: [
        { Name: 'FunctionName', Value: { Ref: id('AWS::Lambda::Function', 'RedeliverySchedulerFunction') } },
      ],
      Threshold: 0,
    });
  });
});

describe('saved Logs Insights queries', () => {
  const definitions = () =>
    Object.values(template.findResources('AWS::Logs::QueryDefinition')).map((q) => q.Properties);

  it('are the three queries of docs/deploy.md#monitoring, verbatim ("your_system" left as the placeholder)', () => {
    expect(definitions().map((q) => q.QueryString)).toEqual(SEED);
    expect(Object.values(SEED_QUERIES)).toEqual(SEED);
    expect(SEED[0]).toContain('"your_system"');
    expect(definitions().map((q) => q.Name)).toEqual(
      Object.keys(SEED_QUERIES).map((title) => `${synth.stack.stackName}/${title}`),
    );
  });

  it("run over the four stage functions' log groups, where the WEBHOOK_* lines land", () => {
    const groups = ['Validate', 'Classify', 'Deliver', 'Export'].map((stage) => ({
      Ref: id('AWS::Logs::LogGroup', `Functions${stage}LogGroup`),
    }));
    for (const q of definitions()) expect(q.LogGroupNames).toEqual(groups);
  });
});
