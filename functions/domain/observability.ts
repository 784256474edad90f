/**
 * The names operators query (docs/contract.md#logs, #metrics): the conversation's event types, the five custom metrics (plus the signature counter),
 * the Powertools service name and metrics namespace. Pure constants, shared by the handlers (functions/shared)
 * and the CDK dashboard, alarms and environment (infra/), so both always agree.
 */
export const SERVICE_NAME = 'webhook-gateway';
export const METRICS_NAMESPACE = 'RevOps/WebhookGateway';
/**
 * Every custom metric carries the stack it comes from as a dimension (beside Powertools' `service`), so two stacks
 * in one account and region never mix their metrics, or their alarms. The functions read the stack's name from
 * this variable; without it (locally) the dimension is left out.
 */
export const STACK_DIMENSION = 'stack';
export const STACK_NAME_VARIABLE = 'GATEWAY_STACK_NAME';

/**
 * Per webhook type: each delivery attempt counts in one of these and its time in DELIVERY_TIME_BY_TYPE_METRIC, with
 * the dimension `webhook_type` (beside service and stack), so each receiver has its own graphs and alarm.
 */
export const WEBHOOK_TYPE_DIMENSION = 'webhook_type';
export const DELIVERY_ATTEMPT_METRICS = {
  delivered: 'Webhook.delivery_succeeded',
  failed: 'Webhook.delivery_failed',
} as const;
export const DELIVERY_TIME_BY_TYPE_METRIC = 'Webhook.delivery_time_by_type';

export const EVENT_TYPES = [
  'WEBHOOK_REQUEST_RECEIVED',
  'WEBHOOK_MANAGER_AGENT_INVOKED',
  'WEBHOOK_MANAGER_AGENT_RESPONSE',
  'WEBHOOK_RESPONSE_CLASSIFIED',
  'WEBHOOK_OUTBOUND_QUEUED',
  'WEBHOOK_DELIVERY_SUCCESS',
  'WEBHOOK_DELIVERY_FAILED',
  'WEBHOOK_CONVERSATION_COMPLETED',
  'WEBHOOK_CONVERSATION_EXPORTED',
] as const;
export type EventType = (typeof EVENT_TYPES)[number];

export const METRIC_NAMES = {
  requestSize: 'Webhook.request_size',
  agentProcessingTime: 'Webhook.agent_processing_time',
  responseSize: 'Webhook.response_size',
  deliveryResponseTime: 'Webhook.delivery_response_time',
  totalConversationTime: 'Webhook.total_conversation_time',
} as const;

/** Counted (and logged, as this event type) by Export when S3 refused a record and it was queued for later. */
export const EXPORT_DEFERRED_METRIC = 'Webhook.export_deferred';
export const EXPORT_DEFERRED_EVENT = 'WEBHOOK_CONVERSATION_EXPORT_DEFERRED';
/**
 * Logged by Export (state RecordOnlyInLogs) with the whole record when S3 and the failed-delivery queue both refused
 * it: the log line is then the only copy. A metric filter counts these (alarm RecordsOnlyInLogs).
 */
export const RECORD_UNSAVED_EVENT = 'WEBHOOK_CONVERSATION_UNSAVED';
/**
 * The conversation workflow's Pass state after Lambda refused to run RecordOnlyInLogs: the record is then only in the
 * execution's history. Its entry is what is counted (a metric filter on the execution log, alarm RecordsOnlyInLogs)
 * and what the local gateway reports.
 */
export const RECORD_ONLY_IN_HISTORY_STATE = 'RecordOnlyInHistory';
/** The conversation workflow's state that logs the record whole (RECORD_UNSAVED_EVENT); the local gateway reports it. */
export const RECORD_ONLY_IN_LOGS_STATE = 'RecordOnlyInLogs';
/**
 * Logged by Export when the thread store refused an answered conversation's turn: the conversation is delivered and
 * exported, but later conversations of its thread will not be given that turn.
 */
export const THREAD_TURN_UNSAVED_EVENT = 'WEBHOOK_THREAD_TURN_UNSAVED';
/**
 * Logged by Validate when the run of an asynchronous conversation could not read its thread's earlier turns: the
 * agent is given the thread with `history_unavailable: true` rather than the run failing unexported.
 */
export const THREAD_HISTORY_UNAVAILABLE_EVENT = 'WEBHOOK_THREAD_HISTORY_UNAVAILABLE';
/**
 * Logged (WARN) by Validate when a request carries `webhook-signature` but its source has no inbound secret: accepted
 * unchecked (as any unsigned request of such a source), with the sources that have one, to spot a misspelt name.
 */
export const SIGNATURE_UNCHECKED_EVENT = 'WEBHOOK_SIGNATURE_UNCHECKED';
/**
 * Logged (ERROR) by Validate when a turn's file of the local thread store is damaged (not JSON, or not a turn): the
 * agent is given the thread without that turn, and the line names the file.
 */
export const THREAD_TURN_UNREADABLE_EVENT = 'WEBHOOK_THREAD_TURN_UNREADABLE';
/**
 * Counted (and logged, as this event type) by Export when a delivery failed and the failed-delivery queue refused its
 * envelope too: the record is exported `failed`, and no automatic attempt follows (`deliveries resend` delivers it).
 */
export const DELIVERY_UNQUEUED_METRIC = 'Webhook.delivery_unqueued';
export const DELIVERY_UNQUEUED_EVENT = 'WEBHOOK_DELIVERY_UNQUEUED';
/**
 * Logged (WARN) by Export, or by Validate freeing a key it could not start, when a conversation's idempotency key is
 * no longer its claim (`reason`): the claim lapsed and another request holds the key (`claimed_by_another`,
 * `held_by` its conversation), or the key is gone (`expired`); or when the caller's deadline cut its write
 * (`deadline`: it stays in progress until the claim lapses). The key is left as it is; the conversation goes on.
 */
export const IDEMPOTENCY_KEY_LOST_EVENT = 'WEBHOOK_IDEMPOTENCY_KEY_LOST';
/** Logged by Deliver when the caller's deadline leaves no time for an attempt and the schedule takes over. */
export const DELIVERY_DEFERRED_EVENT = 'WEBHOOK_DELIVERY_DEFERRED';

/**
 * More per-receiver metrics with the `webhook_type` dimension: deliveries queued without an attempt (Deliver: the
 * receiver held them back), and each receiver's state as a 0/1 gauge published every minute by the redelivery
 * scheduler, which the per-type EndpointDisabled alarms watch.
 */
export const DELIVERY_QUEUED_METRIC = 'Webhook.delivery_queued';
export const ENDPOINT_FAILING_METRIC = 'Webhook.endpoint_failing';
export const ENDPOINT_DISABLED_METRIC = 'Webhook.endpoint_disabled';
/** Logged (ERROR) by the Deliver whose failure disabled a receiver, once per disable. */
export const ENDPOINT_DISABLED_EVENT = 'WEBHOOK_ENDPOINT_DISABLED';
/** Logged (WARN) by Deliver when a receiver's failure streak reaches the threshold: its circuit opens. */
export const ENDPOINT_FAILING_EVENT = 'WEBHOOK_ENDPOINT_FAILING';
/** Logged by Deliver when a receiver that was failing answered again. */
export const ENDPOINT_RECOVERED_EVENT = 'WEBHOOK_ENDPOINT_RECOVERED';

/** Counted by Validate for every request refused with 401 INVALID_SIGNATURE. */
export const SIGNATURE_REJECTED_METRIC = 'Webhook.signature_rejected';
