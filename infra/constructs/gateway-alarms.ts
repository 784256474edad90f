import { Stack } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, type IMetric, MathExpression, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { PolicyStatement, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { FilterPattern, type ILogGroup, MetricFilter } from 'aws-cdk-lib/aws-logs';
import { Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { WEBHOOK_TYPES, type WebhookType } from '../../functions/domain/conversation.ts';
import {
  DELIVERY_ATTEMPT_METRICS,
  DELIVERY_UNQUEUED_EVENT,
  DELIVERY_UNQUEUED_METRIC,
  ENDPOINT_DISABLED_EVENT,
  ENDPOINT_DISABLED_METRIC,
  ENDPOINT_FAILING_METRIC,
  RECORD_ONLY_IN_HISTORY_STATE,
  RECORD_UNSAVED_EVENT,
} from '../../functions/domain/observability.ts';
import {
  ACCEPT_SERVER_FAILURES_METRIC,
  CLIENT_ERRORS,
  CUSTOM_METRICS,
  customMetric,
  deliveryMetric,
  EXPORT_DEFERRED_METRIC,
  logMetricsNamespace,
  METRIC_PERIOD,
  RECORDS_ONLY_IN_HISTORY_METRIC,
  RECORDS_ONLY_IN_LOGS_METRIC,
  recordOnlyInHistoryPattern,
  SERVER_FAILURES_METRIC,
  serverFailurePattern,
} from '../metrics.ts';
import { FAILED_DELIVERY_RETENTION_DAYS } from './failed-delivery-queue.ts';

/** A dead letter this old has half of its time left before SQS deletes it (FAILED_DELIVERY_RETENTION_DAYS). */
const DEAD_LETTER_AGE_ALARM_DAYS = FAILED_DELIVERY_RETENTION_DAYS / 2;

export interface GatewayAlarmsProps {
  readonly conversationStateMachine: IStateMachine;
  /** The conversation workflow's execution log (level ALL, with data): where failures are told apart. */
  readonly conversationExecutionLog: ILogGroup;
  /** The accept workflow (Prefer: respond-async) and its execution log (level ALL): its failures are told apart the same way. */
  readonly acceptStateMachine: IStateMachine;
  readonly acceptExecutionLog: ILogGroup;
  readonly redeliveryStateMachine: IStateMachine;
  /** The Export function's log group: where a record S3 and the queue both refused is logged whole. */
  readonly exportFunctionLog: ILogGroup;
  readonly deadLetterQueue: IQueue;
  readonly redeliveryScheduler: IFunction;
  /** Failed delivery attempts to one webhook type's receiver in 5 minutes that fire its alarm (context deliveryFailureAlarmCount). */
  readonly deliveryFailureAlarmCount: number;
  /** Threshold of the agent p99 alarm, ms (context agentP99AlarmMs). */
  readonly agentP99AlarmMs: number;
  /** Subscribe this address to an alarm topic; empty: no topic, the alarms have no action. */
  readonly alarmEmail: string;
}

/**
 * The alarms an operator is paged for, each "> 0" or over a bound within 5-minute periods, missing data = OK:
 * - ConversationServerFailures: conversation executions that FAILED for a reason other than a client error (the
 *   4xx errors of the contract: ValidationError, SignatureError, SourceMismatch, IdempotencyConflict are expected on a public
 *   webhook and also count in ExecutionsFailed), plus those that TIMED_OUT. The failures are counted by a metric
 *   filter on the execution log, by error name; timeouts come from Step Functions' ExecutionsTimedOut.
 * - AcceptServerFailures: the same for the accept workflow (POST /webhook with Prefer: respond-async), from its own
 *   execution log: a Validate that failed, or ConversationNotStarted (the run could not be started), or a timeout.
 * - RedeliveryExecutionsFailed: redelivery executions that failed or timed out (a failed delivery is caught inside
 *   the workflow, so a FAILED redelivery means the attempt could not be recorded).
 * - FailedDeliveryDeadLetters: anything in the dead-letter queue (a delivery given up on, needs a decision).
 * - FailedDeliveryDeadLetterAge: a dead letter older than DEAD_LETTER_AGE_ALARM_DAYS, half of the retention
 *   after which SQS deletes it without a trace (ApproximateAgeOfOldestMessage of the dead-letter queue, maximum).
 * - AgentLatencyP99: p99 of Webhook.agent_processing_time over agentP99AlarmMs in 2 of 3 periods.
 * - RedeliverySchedulerErrors: the scheduler itself failing (then nothing is redelivered).
 * - DeliveryFailures-<type>: failed attempts to one receiver, or that receiver failing (breaker open, until a delivery
 *   succeeds); EndpointDisabled-<type>: that receiver disabled after
 *   failing for ENDPOINT_DISABLE_AFTER_DAYS (the scheduler publishes Webhook.endpoint_disabled every minute).
 * With alarmEmail, every alarm notifies an SNS topic (alarm and OK) with that address subscribed.
 */
export class GatewayAlarms extends Construct {
  readonly conversationServerFailures: Alarm;
  readonly acceptServerFailures: Alarm;
  readonly redeliveryFailures: Alarm;
  readonly deadLetters: Alarm;
  /** The oldest dead letter half-way to being deleted by SQS. */
  readonly deadLetterAge: Alarm;
  readonly exportsDeferred: Alarm;
  readonly recordsOnlyInLogs: Alarm;
  readonly deliveriesUnqueued: Alarm;
  /** One per webhook type: its receiver failing. */
  readonly deliveryFailures: Record<WebhookType, Alarm>;
  /** One per webhook type: its receiver disabled by the circuit breaker (its deliveries wait for a resume). */
  readonly endpointDisabled: Record<WebhookType, Alarm>;
  readonly agentLatency: Alarm;
  readonly schedulerErrors: Alarm;
  readonly topic?: Topic;

  constructor(scope: Construct, id: string, props: GatewayAlarmsProps) {
    super(scope, id);
    const prefix = Stack.of(this).stackName;

    this.conversationServerFailures = this.serverFailuresAlarm(
      'ConversationServerFailures',
      'ServerFailuresFilter',
      SERVER_FAILURES_METRIC,
      props.conversationStateMachine,
      props.conversationExecutionLog,
      {
        label: 'Conversation executions failed (not a client error) or timed out',
        description: `${prefix}: conversation executions failed for a reason other than a client error (${CLIENT_ERRORS.join(', ')} are not counted) or timed out, in 5 minutes. Find them in the execution log (docs/deploy.md).`,
      },
    );
    this.acceptServerFailures = this.serverFailuresAlarm(
      'AcceptServerFailures',
      'AcceptServerFailuresFilter',
      ACCEPT_SERVER_FAILURES_METRIC,
      props.acceptStateMachine,
      props.acceptExecutionLog,
      {
        label: 'Accept executions failed (not a client error) or timed out',
        description: `${prefix}: accept executions (POST /webhook with Prefer: respond-async) failed for a reason other than a client error (${CLIENT_ERRORS.join(', ')} are not counted) or timed out, in 5 minutes: callers got 5xx instead of 202 (ConversationNotStarted: the run could not be started). Find them in the accept execution log (docs/deploy.md).`,
      },
    );

    this.redeliveryFailures = this.alarm(
      'RedeliveryExecutionsFailed',
      new MathExpression({
        expression: 'FILL(failed, 0) + FILL(timedOut, 0)',
        usingMetrics: {
          failed: props.redeliveryStateMachine.metricFailed({ statistic: 'Sum', period: METRIC_PERIOD }),
          timedOut: props.redeliveryStateMachine.metricTimedOut({ statistic: 'Sum', period: METRIC_PERIOD }),
        },
        period: METRIC_PERIOD,
        label: 'Redelivery executions failed or timed out',
      }),
      0,
      {
        description: `${prefix}: redelivery executions failed or timed out in 5 minutes (the attempt may be missing from the export).`,
      },
    );

    this.deadLetters = this.alarm(
      'FailedDeliveryDeadLetters',
      props.deadLetterQueue.metricApproximateNumberOfMessagesVisible({ statistic: 'Maximum', period: METRIC_PERIOD }),
      0,
      {
        description: `${prefix}: failed deliveries in the dead-letter queue: no more automatic attempts. Inspect and redrive (docs/deploy.md).`,
      },
    );

    // A dead letter's age counts from when it was sent to the dead-letter queue, but SQS deletes it
    // FAILED_DELIVERY_RETENTION_DAYS after it was sent to the queue it came from when the redrive policy moved it
    // (docs/deploy.md): half of the retention leaves a week to redrive it, less the minutes such a message usually
    // spent in the failed-delivery queue.
    this.deadLetterAge = this.alarm(
      'FailedDeliveryDeadLetterAge',
      props.deadLetterQueue.metricApproximateAgeOfOldestMessage({ statistic: 'Maximum', period: METRIC_PERIOD }),
      DEAD_LETTER_AGE_ALARM_DAYS * 86_400,
      {
        description: `${prefix}: a failed delivery has waited in the dead-letter queue for more than ${DEAD_LETTER_AGE_ALARM_DAYS} days; SQS deletes it, and nothing is left to redrive, ${FAILED_DELIVERY_RETENTION_DAYS} days after it was sent there (sooner if the queue's redrive policy moved it). Redrive it now (docs/deploy.md).`,
      },
    );

    this.exportsDeferred = this.alarm('ExportsDeferred', customMetric(this, EXPORT_DEFERRED_METRIC, 'Sum'), 0, {
      description: `${prefix}: S3 refused conversation exports in 5 minutes; they wait in the failed-delivery queue as export-only envelopes (or in their failed delivery's) and the redelivery schedule writes them once S3 takes them; one the queue refused too is counted by RecordsOnlyInLogs instead (docs/deploy.md).`,
    });

    this.deliveriesUnqueued = this.alarm('DeliveriesUnqueued', customMetric(this, DELIVERY_UNQUEUED_METRIC, 'Sum'), 0, {
      description: `${prefix}: failed deliveries the failed-delivery queue refused in 5 minutes: exported as failed, and no automatic attempt follows; each is a ${DELIVERY_UNQUEUED_EVENT} line of the Export function's log with the command that delivers it (deliveries resend <id> --aws; docs/operations.md).`,
    });

    // One WEBHOOK_CONVERSATION_UNSAVED line per record that S3 and the failed-delivery queue both refused: the line
    // is its only copy until an operator exports it (docs/operations.md).
    const unsaved = new MetricFilter(this, 'RecordsOnlyInLogsFilter', {
      logGroup: props.exportFunctionLog,
      filterPattern: FilterPattern.stringValue('$.event_type', '=', RECORD_UNSAVED_EVENT),
      metricNamespace: logMetricsNamespace(this),
      metricName: RECORDS_ONLY_IN_LOGS_METRIC,
      metricValue: '1',
    });
    // And one per record Lambda would not even log (RecordOnlyInLogs refused): no line is written, so the execution
    // log's entry into RecordOnlyInHistory counts it; the record is then the input of RecordOnlyInLogs there.
    const inHistory = new MetricFilter(this, 'RecordsOnlyInHistoryFilter', {
      logGroup: props.conversationExecutionLog,
      filterPattern: FilterPattern.literal(recordOnlyInHistoryPattern()),
      metricNamespace: logMetricsNamespace(this),
      metricName: RECORDS_ONLY_IN_HISTORY_METRIC,
      metricValue: '1',
    });
    this.recordsOnlyInLogs = this.alarm(
      'RecordsOnlyInLogs',
      new MathExpression({
        expression: 'FILL(logged, 0) + FILL(inHistory, 0)',
        usingMetrics: {
          logged: unsaved.metric({ statistic: 'Sum', period: METRIC_PERIOD }),
          inHistory: inHistory.metric({ statistic: 'Sum', period: METRIC_PERIOD }),
        },
        period: METRIC_PERIOD,
        label: 'Records only in logs or only in the execution history',
      }),
      0,
      {
        description: `${prefix}: conversation records that neither S3 nor the failed-delivery queue took in 5 minutes; each is logged whole as a ${RECORD_UNSAVED_EVENT} line of the Export function's log, or, when Lambda would not run that either, is only in the conversation execution log (the input of state RecordOnlyInLogs in an execution that entered ${RECORD_ONLY_IN_HISTORY_STATE}; docs/operations.md).`,
      },
    );

    // Per receiver: failed delivery attempts of one webhook type (a transient failure retried at once counts too, so
    // a single blip stays under the bound), or its receiver failing. Once its circuit breaker is open, attempts are
    // only probes (one at a time, the schedule's at their slots): a receiver down for hours may make fewer than the
    // bound, and the alarm would go back to OK while it is still down. The scheduler's Webhook.endpoint_failing gauge
    // (1 while the breaker is open, every minute) keeps it on until a probe succeeds.
    const count = props.deliveryFailureAlarmCount;
    this.deliveryFailures = Object.fromEntries(
      WEBHOOK_TYPES.map((type) => [
        type,
        this.alarm(
          `DeliveryFailures-${type}`,
          new MathExpression({
            expression: `FILL(failed, 0) + ${count} * FILL(failing, 0)`,
            usingMetrics: {
              failed: deliveryMetric(this, DELIVERY_ATTEMPT_METRICS.failed, type, 'Sum'),
              failing: deliveryMetric(this, ENDPOINT_FAILING_METRIC, type, 'Maximum'),
            },
            period: METRIC_PERIOD,
            label: `${type}: failed attempts (+${count} while its receiver is failing)`,
          }),
          count - 1,
          {
            description: `${prefix}: ${count} or more failed delivery attempts to the ${type} receiver in 5 minutes (Webhook.delivery_failed, webhook_type=${type}), or its receiver failing (circuit breaker open: Webhook.endpoint_failing) until a delivery to it succeeds; see its last errors with deliveries list and endpoints list (docs/operations.md).`,
          },
        ),
      ]),
    ) as Record<WebhookType, Alarm>;

    // Per receiver: disabled by the circuit breaker (docs/operations.md#receivers). Deliver logs the
    // ENDPOINT_DISABLED_EVENT once; the scheduler's gauge keeps the alarm on until an operator resumes it.
    this.endpointDisabled = Object.fromEntries(
      WEBHOOK_TYPES.map((type) => [
        type,
        this.alarm(`EndpointDisabled-${type}`, deliveryMetric(this, ENDPOINT_DISABLED_METRIC, type, 'Maximum'), 0, {
          description: `${prefix}: the ${type} receiver is disabled (${ENDPOINT_DISABLED_EVENT}): it failed for too long; its deliveries are kept and wait. Fix it, then webhook-gateway endpoints resume ${type} --aws (docs/operations.md#receivers).`,
        }),
      ]),
    ) as Record<WebhookType, Alarm>;

    this.agentLatency = this.alarm(
      'AgentLatencyP99',
      customMetric(this, CUSTOM_METRICS.agentProcessingTime, 'p99'),
      props.agentP99AlarmMs,
      {
        description: `${prefix}: p99 of the manager agent's processing time above ${props.agentP99AlarmMs} ms in 2 of the last 3 five-minute periods.`,
        evaluationPeriods: 3,
        datapointsToAlarm: 2,
      },
    );

    this.schedulerErrors = this.alarm(
      'RedeliverySchedulerErrors',
      props.redeliveryScheduler.metricErrors({ statistic: 'Sum', period: METRIC_PERIOD }),
      0,
      {
        description: `${prefix}: the redelivery scheduler failed in 5 minutes: due deliveries are not being redelivered.`,
      },
    );

    if (props.alarmEmail) {
      // Not KMS-encrypted: CloudWatch alarms cannot publish to a topic under the AWS-managed SNS key, and the
      // notifications carry alarm names, states and thresholds only, no conversation data.
      const topic = new Topic(this, 'Topic', {
        // SNS display names are at most 100 characters; a stack name may have 128.
        displayName: `${prefix.slice(0, 100 - ' alarms'.length)} alarms`,
        enforceSSL: true,
      });
      topic.addSubscription(new EmailSubscription(props.alarmEmail));
      // A topic policy (the TLS-only statement) replaces SNS's default one, under which the account's own alarms
      // could publish: without this Allow every notification fails, silently but for the alarm's history
      // (docs/deploy.md, Monitoring). Only this stack's alarms, each by its ARN.
      topic.addToResourcePolicy(
        new PolicyStatement({
          sid: 'AllowTheStackAlarmsToPublish',
          principals: [new ServicePrincipal('cloudwatch.amazonaws.com')],
          actions: ['sns:Publish'],
          resources: [topic.topicArn],
          conditions: { ArnEquals: { 'aws:SourceArn': this.all.map((alarm) => alarm.alarmArn) } },
        }),
      );
      for (const alarm of this.all) {
        alarm.addAlarmAction(new SnsAction(topic));
        alarm.addOkAction(new SnsAction(topic));
      }
      this.topic = topic;
    }
  }

  get all(): Alarm[] {
    return [
      this.conversationServerFailures,
      this.acceptServerFailures,
      this.redeliveryFailures,
      this.deadLetters,
      this.deadLetterAge,
      this.exportsDeferred,
      this.recordsOnlyInLogs,
      this.deliveriesUnqueued,
      ...Object.values(this.deliveryFailures),
      ...Object.values(this.endpointDisabled),
      this.agentLatency,
      this.schedulerErrors,
    ];
  }

  /**
   * Executions of a workflow that failed for any reason but a client error of the contract (a metric filter on its
   * execution log, namespace logMetricsNamespace) plus those that timed out (ExecutionsTimedOut), > 0 in 5 minutes.
   */
  private serverFailuresAlarm(
    id: string,
    filterId: string,
    metricName: string,
    stateMachine: IStateMachine,
    executionLog: ILogGroup,
    options: { label: string; description: string },
  ): Alarm {
    const failures = new MetricFilter(this, filterId, {
      logGroup: executionLog,
      filterPattern: FilterPattern.literal(serverFailurePattern()),
      // A metric filter's dimensions can only come from the log event: the stack goes in the namespace instead.
      metricNamespace: logMetricsNamespace(this),
      metricName,
      metricValue: '1',
    });
    return this.alarm(
      id,
      new MathExpression({
        expression: 'FILL(failed, 0) + FILL(timedOut, 0)',
        usingMetrics: {
          failed: failures.metric({ statistic: 'Sum', period: METRIC_PERIOD }),
          timedOut: stateMachine.metricTimedOut({ statistic: 'Sum', period: METRIC_PERIOD }),
        },
        period: METRIC_PERIOD,
        label: options.label,
      }),
      0,
      { description: options.description },
    );
  }

  private alarm(
    id: string,
    metric: IMetric,
    threshold: number,
    options: { description: string; evaluationPeriods?: number; datapointsToAlarm?: number },
  ): Alarm {
    return new Alarm(this, id, {
      alarmName: `${Stack.of(this).stackName}-${id}`,
      alarmDescription: options.description,
      metric,
      threshold,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: options.evaluationPeriods ?? 1,
      datapointsToAlarm: options.datapointsToAlarm,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
  }
}
