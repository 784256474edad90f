import type { ConversationRecord } from '../domain/conversation.ts';
import {
  DELIVERY_ATTEMPT_METRICS,
  DELIVERY_TIME_BY_TYPE_METRIC,
  type EventType,
  type METRIC_NAMES,
  WEBHOOK_TYPE_DIMENSION,
} from '../domain/observability.ts';
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
  const single = metrics.singleMetric();
  single.addDimension(WEBHOOK_TYPE_DIMENSION, webhookType);
  single.addMetric(DELIVERY_ATTEMPT_METRICS[delivered ? 'delivered' : 'failed'], MetricUnit.Count, 1);
  const timed = metrics.singleMetric();
  timed.addDimension(WEBHOOK_TYPE_DIMENSION, webhookType);
  timed.addMetric(DELIVERY_TIME_BY_TYPE_METRIC, MetricUnit.Milliseconds, ms);
}
