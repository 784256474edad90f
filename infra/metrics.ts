/**
 * The five custom metrics the functions publish with Powertools Metrics (EMF), named once in
 * functions/domain/observability.ts for both sides. Powertools adds the `service` dimension to every metric and
 * the functions add `stack` (their stack's name), so CloudWatch stores them under namespace RevOps/WebhookGateway
 * with dimensions service=webhook-gateway and stack=<stack>, and only a metric asked for with both finds the data:
 * two stacks in one account and region never read each other's metrics.
 */
import { Duration, Stack } from 'aws-cdk-lib';
import { Metric } from 'aws-cdk-lib/aws-cloudwatch';
import type { IConstruct } from 'constructs';
import { FAILURE_STATUS } from '../functions/domain/gateway-contract.ts';
import {
  METRIC_NAMES,
  RECORD_ONLY_IN_HISTORY_STATE,
  STACK_DIMENSION,
  WEBHOOK_TYPE_DIMENSION,
} from '../functions/domain/observability.ts';
import { POWERTOOLS_METRICS_NAMESPACE, POWERTOOLS_SERVICE_NAME } from './config.ts';

export { EXPORT_DEFERRED_METRIC, SIGNATURE_REJECTED_METRIC } from '../functions/domain/observability.ts';
/** The five custom metrics, as the handlers emit them. */
export const CUSTOM_METRICS = METRIC_NAMES;

export const METRIC_PERIOD = Duration.minutes(5);

/** One of the custom metrics of `scope`'s stack, e.g. `customMetric(this, CUSTOM_METRICS.agentProcessingTime, 'p99')`. */
export function customMetric(scope: IConstruct, metricName: string, statistic: string, label?: string): Metric {
  return new Metric({
    namespace: POWERTOOLS_METRICS_NAMESPACE,
    metricName,
    dimensionsMap: { service: POWERTOOLS_SERVICE_NAME, [STACK_DIMENSION]: Stack.of(scope).stackName },
    statistic,
    period: METRIC_PERIOD,
    label,
  });
}

/** A per-webhook-type delivery metric (dimensions service, stack, webhook_type): functions/shared/events.ts. */
export function deliveryMetric(
  scope: IConstruct,
  metricName: string,
  webhookType: string,
  statistic: string,
  label?: string,
): Metric {
  return new Metric({
    namespace: POWERTOOLS_METRICS_NAMESPACE,
    metricName,
    dimensionsMap: {
      service: POWERTOOLS_SERVICE_NAME,
      [STACK_DIMENSION]: Stack.of(scope).stackName,
      [WEBHOOK_TYPE_DIMENSION]: webhookType,
    },
    statistic,
    period: METRIC_PERIOD,
    label,
  });
}

/**
 * The Fail-state errors that are the caller's fault (the contract maps them to 4xx: ValidationError,
 * SignatureError, SourceMismatch, IdempotencyConflict). They end the execution as FAILED like any other failure, so Step
 * Functions' ExecutionsFailed counts them too.
 */
export const CLIENT_ERRORS: readonly string[] = Object.entries(FAILURE_STATUS)
  .filter(([, status]) => status < 500)
  .map(([error]) => error)
  .sort();

/** "ValidationError (400), SignatureError (401), …": the client errors with their HTTP status. */
export function clientErrorsText(): string {
  return CLIENT_ERRORS.map((error) => `${error} (${FAILURE_STATUS[error]})`).join(', ');
}

/**
 * Namespace of the metrics the stack derives from log events with metric filters (`RevOps/WebhookGateway/<stack>`):
 * a filter can take dimensions only from fields of the event, so the stack is part of the namespace.
 */
export function logMetricsNamespace(scope: IConstruct): string {
  return `${POWERTOOLS_METRICS_NAMESPACE}/${Stack.of(scope).stackName}`;
}

/** Metric (from the Export function's log) of records logged whole because S3 and the queue both refused them. */
export const RECORDS_ONLY_IN_LOGS_METRIC = 'RecordsOnlyInLogs';
/** Metric (from the conversation execution log) of records Lambda would not log either: only in the history. */
export const RECORDS_ONLY_IN_HISTORY_METRIC = 'RecordsOnlyInHistory';

/**
 * CloudWatch Logs filter pattern for the conversation execution log (level ALL): the entry into the Pass state that
 * follows Lambda refusing RecordOnlyInLogs. Express logs each history event as one JSON object; a state's entry is
 * `{"type": "PassStateEntered", "details": {"name": <state>, …}, …}`, logged at level ALL only (the LambdaFunctionFailed
 * event of the refusal names no state, hence the Pass state).
 */
export function recordOnlyInHistoryPattern(): string {
  return `{ $.type = "PassStateEntered" && $.details.name = "${RECORD_ONLY_IN_HISTORY_STATE}" }`;
}

/** Metric (from the execution log) of conversation executions that failed for any reason but a client error. */
export const SERVER_FAILURES_METRIC = 'ConversationServerFailures';
/** The same for the accept workflow (POST /webhook with Prefer: respond-async), from its own execution log. */
export const ACCEPT_SERVER_FAILURES_METRIC = 'AcceptServerFailures';

/**
 * CloudWatch Logs filter pattern for the execution log of the conversation or the accept workflow (both end a
 * request the contract refuses in a Fail state): an ExecutionFailed event whose error is not one of CLIENT_ERRORS,
 * or that carries no error at all. The lean profile logs without execution data (includeExecutionData false), and
 * AWS documents that flag only as "data is excluded", not whether an event's `details.error` stays: the event type
 * is all that is sure to be there. Without the NOT EXISTS / IS NULL terms such an event compares no field and
 * matches nothing, so the alarm would stay OK through any failure; with them, a log without errors counts every
 * failed execution, client errors included (docs/deploy.md, Monitoring: the alarm is loud, never silent).
 */
export function serverFailurePattern(): string {
  const exclusions = CLIENT_ERRORS.map((error) => {
    if (!/^[A-Za-z0-9_.]+$/.test(error)) throw new Error(`unexpected error name ${error}`);
    return `$.details.error != "${error}"`;
  }).join(' && ');
  return `{ $.type = "ExecutionFailed" && ($.details.error NOT EXISTS || $.details.error IS NULL || (${exclusions})) }`;
}
