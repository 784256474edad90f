import type { ConversationRecord } from '../domain/conversation.ts';
import { type BreakerPolicy, endpointStatus } from '../domain/endpoints.ts';
import {
  DELIVERY_ATTEMPT_METRICS,
  DELIVERY_QUEUED_METRIC,
  DELIVERY_TIME_BY_TYPE_METRIC,
  ENDPOINT_DISABLED_METRIC,
  ENDPOINT_FAILING_METRIC,
  type EventType,
  type METRIC_NAMES,
  WEBHOOK_TYPE_DIMENSION,
} from '../domain/observability.ts';
import type { EndpointStore } from './endpoint-store.ts';
import { logger, MetricUnit, metrics } from './powertools.ts';

export { EVENT_TYPES, type EventType, METRIC_NAMES } from '../domain/observability.ts';

const MESSAGES: Record<EventType, string> = {
  WEBHOOK_REQUEST_RECEIVED: 'Incoming request validated',
  WEBHOOK_MANAGER_AGENT_INVOKED: 'AI processing started',
  WEBHOOK_MANAGER_AGENT_RESPONSE: 'AI processing completed',
  WEBHOOK_RESPONSE_CLASSIFIED: 'Response type determined',
  WEBHOOK_OUTBOUND_QUEUED: 'Delivery queued',
  WEBHOOK_DELIVERY_SUCCESS: 'Successful delivery',
  WEBHOOK_DELIVERY_FAILED: 'Failed delivery',
  WEBHOOK_CONVERSATION_COMPLETED: 'Full conversation finished',
  WEBHOOK_CONVERSATION_EXPORTED: 'S3 export completed',
};

/**
 * One log line with the fields the saved Logs Insights queries read (docs/contract.md#logs):
 * `event_type`, `conversation_id`, `webhook_metadata.{source_system,source_process,webhook_type}`.
 */
export function logEvent(type: EventType, record: ConversationRecord, fields: Record<string, unknown> = {}): void {
  const line = {
    event_type: type,
    conversation_id: record.conversation_id,
    webhook_metadata: {
      source_system: record.webhook_context.source_system,
      source_process: record.webhook_context.source_process,
      webhook_type: record.webhook_context.webhook_type,
    },
    ...fields,
  };
  if (type === 'WEBHOOK_DELIVERY_FAILED') logger.warn(MESSAGES[type], line);
  else logger.info(MESSAGES[type], line);
}

export function recordSize(
  name: typeof METRIC_NAMES.requestSize | typeof METRIC_NAMES.responseSize,
  bytes: number,
): void {
  metrics.addMetric(name, MetricUnit.Bytes, bytes);
}

export function recordTime(
  name: Exclude<(typeof METRIC_NAMES)[keyof typeof METRIC_NAMES], 'Webhook.request_size' | 'Webhook.response_size'>,
  ms: number,
): void {
  metrics.addMetric(name, MetricUnit.Milliseconds, ms);
}

/**
 * One delivery attempt to `webhookType`'s receiver, as metrics with the `webhook_type` dimension: its outcome
 * (Webhook.delivery_succeeded or Webhook.delivery_failed, a count) and its time. A separate EMF line: the stage's
 * other metrics keep their dimensions.
 */
export function recordDeliveryAttempt(webhookType: string, delivered: boolean, ms: number): void {
  perType(webhookType, DELIVERY_ATTEMPT_METRICS[delivered ? 'delivered' : 'failed'], MetricUnit.Count, 1);
  perType(webhookType, DELIVERY_TIME_BY_TYPE_METRIC, MetricUnit.Milliseconds, ms);
}

/**
 * Per webhook type, a Metrics that flushes each metric at once with the stage's default dimensions and the type's:
 * made once per type, not per metric (a Metrics costs its construction: options, environment reads, stores; two per
 * delivery were 1.4 % of the local gateway's event loop, docs/performance.md §2, perf24). Its lines are the ones a
 * fresh singleMetric() with the type added as a dimension gives.
 */
const byType = new Map<string, ReturnType<typeof metrics.singleMetric>>();
const MAX_TYPES_KEPT = 16;

/** One metric with the webhook type as a dimension, flushed at once (EMF allows one dimension set per line). */
function perType(type: string, name: string, unit: (typeof MetricUnit)[keyof typeof MetricUnit], value: number): void {
  let single = byType.get(type);
  if (!single) {
    single = metrics.singleMetric();
    single.setDefaultDimensions({ [WEBHOOK_TYPE_DIMENSION]: type });
    if (byType.size < MAX_TYPES_KEPT) byType.set(type, single);
  }
  single.addMetric(name, unit, value);
}

/** A delivery handed to the schedule without an attempt: its receiver held it back. */
export function recordDeliveryQueued(type: string): void {
  perType(type, DELIVERY_QUEUED_METRIC, MetricUnit.Count, 1);
}

/** Every receiver's state as per-type 0/1 gauges (the per-type alarms watch them). A store that cannot be read: none. */
export async function publishEndpointStates(store: EndpointStore, policy: BreakerPolicy): Promise<void> {
  let endpoints: Awaited<ReturnType<EndpointStore['list']>>;
  try {
    endpoints = await store.list();
  } catch (error) {
    logger.warn('The receivers could not be read: no endpoint metrics this run', {
      error: `${(error as Error).name}: ${(error as Error).message}`,
    });
    return;
  }
  for (const endpoint of endpoints) {
    const status = endpointStatus(endpoint, policy);
    perType(endpoint.webhook_type, ENDPOINT_FAILING_METRIC, MetricUnit.Count, status === 'failing' ? 1 : 0);
    perType(endpoint.webhook_type, ENDPOINT_DISABLED_METRIC, MetricUnit.Count, status === 'disabled' ? 1 : 0);
  }
}
