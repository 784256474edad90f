/**
 * The published contract as valibot schemas (docs/contract.md): what POST /webhook and GET /health answer, the
 * delivery payload, and the four export files. `npm run schemas` turns them, with the request schema
 * (request.ts), into docs/openapi.json and docs/schemas/*.schema.json; tests check that the gateway's real answers,
 * deliveries and exports validate against those files. Nothing here runs in a handler.
 */
import * as v from 'valibot';
import { ANALYSIS_COLUMNS } from './analytics-table.ts';
import { WEBHOOK_TYPES } from './conversation.ts';
import { CONVERSATION_ID_PATTERN } from './conversation-id.ts';
import { EVENT_TYPES } from './observability.ts';

const isoTime = v.pipe(v.string(), v.isoTimestamp(), v.description('ISO 8601 date-time (UTC)'));
const conversationId = v.pipe(
  v.string(),
  v.regex(CONVERSATION_ID_PATTERN),
  v.description('webhook_<YYYYMMDD>_<HHMMSS>_<source>_<process>_<suffix> (docs/contract.md#post-webhook)'),
);
const webhookType = v.nullable(v.picklist(WEBHOOK_TYPES));
const deliveryStatus = v.picklist(['pending', 'delivered', 'queued', 'retrying', 'failed', 'not_attempted']);
const conversationStatus = v.picklist(['in_progress', 'completed', 'failed', 'interrupted']);
const milliseconds = v.nullable(v.pipe(v.number(), v.integer(), v.minValue(0)));
const object = v.record(v.string(), v.unknown());

/**
 * Every code an error body of POST /webhook, GET /conversations/{id} or GET /health can carry
 * (docs/contract.md#errors).
 */
const ERROR_CODES = [
  'INVALID_JSON',
  'VALIDATION_ERROR',
  'IDEMPOTENCY_KEY_REUSED',
  'INVALID_SIGNATURE',
  'INVALID_API_KEY',
  'SOURCE_MISMATCH',
  'IDEMPOTENCY_CONFLICT',
  'PAYLOAD_TOO_LARGE',
  'UNSUPPORTED_MEDIA_TYPE',
  'RATE_LIMITED',
  'AGENT_ERROR',
  'STARTING',
  'STOPPING',
  'STORAGE_UNAVAILABLE',
  'STATE_UNREADABLE',
  'TIMEOUT',
  'INTERRUPTED',
  'INTERNAL_ERROR',
  'NOT_FOUND',
  'METHOD_NOT_ALLOWED',
  'NOT_STARTED',
  'FORBIDDEN',
] as const;

const successEntries = {
  success: v.literal(true),
  conversation_id: conversationId,
  response: v.pipe(object, v.description("the manager agent's answer: its structured payload, or {content}")),
  tracking: v.object({
    conversation_id: conversationId,
    delivery_id: v.string(),
    webhook_type: webhookType,
    delivery_status: deliveryStatus,
    processing_time_ms: milliseconds,
  }),
};
export const SuccessBodySchema = v.pipe(v.object(successEntries), v.title('Conversation answer'));

const errorEntries = {
  success: v.literal(false),
  error: v.object({
    code: v.picklist(ERROR_CODES),
    message: v.string(),
    details: v.optional(v.array(v.object({ field: v.string(), message: v.string() }))),
    conversation_id: v.optional(conversationId),
  }),
};
export const ErrorBodySchema = v.pipe(v.object(errorEntries), v.title('Error'));

/** The 202 of `POST /webhook` with `Prefer: respond-async` (docs/contract.md#asynchronous-start-prefer-respond-async). */
export const AcceptedBodySchema = v.pipe(
  v.object({
    success: v.literal(true),
    conversation_id: conversationId,
    status_url: v.pipe(v.string(), v.description('where GET /conversations/{id} reads its status (also Location)')),
  }),
  v.title('Accepted'),
);

/** The 200 of `GET /conversations/{id}`: running, or the answer or error a synchronous call would have got. */
export const StatusBodySchema = v.pipe(
  v.variant('status', [
    v.object({
      success: v.literal(true),
      conversation_id: conversationId,
      status: v.literal('running'),
      accepted_at: isoTime,
    }),
    v.object({
      ...successEntries,
      status: v.literal('completed'),
      completed_at: isoTime,
      delivery_updated_at: v.optional(
        v.pipe(
          isoTime,
          v.description('when a later redelivery (schedule, redrive, resend) left tracking.delivery_status as it is'),
        ),
      ),
    }),
    v.object({ ...errorEntries, conversation_id: conversationId, status: v.literal('failed'), completed_at: isoTime }),
  ]),
  v.title('Conversation status'),
  v.description('docs/contract.md#get-conversationsid'),
);

export const HealthBodySchema = v.pipe(v.object({ status: v.literal('ok') }), v.title('Health'));

export const DeliveryPayloadSchema = v.pipe(
  v.object({
    type: v.literal('conversation.completed'),
    delivery_id: v.pipe(v.string(), v.description('the webhook-id header: the same on every attempt')),
    conversation_id: conversationId,
    webhook_type: webhookType,
    source_system: v.string(),
    source_process: v.string(),
    query: v.string(),
    response: object,
    classification_reason: v.nullable(v.string()),
    metadata: object,
    created_at: isoTime,
  }),
  v.title('Delivery'),
  v.description('The JSON body POSTed to the outbound webhook of its type (docs/contract.md#deliveries).'),
);

const exportMetadata = (format: string) =>
  v.object({
    format: v.literal(format),
    version: v.literal('1.0'),
    channel: v.literal('webhook'),
    exported_at: isoTime,
  });

const recordMetadata = v.object({
  conversation_id: conversationId,
  channel: v.literal('webhook'),
  source_system: v.string(),
  source_process: v.string(),
  request_timestamp: v.nullable(v.string()),
  received_at: isoTime,
  request_id: v.string(),
  source_ip: v.string(),
  user_agent: v.nullable(v.string()),
  request_size_bytes: v.pipe(v.number(), v.integer()),
  idempotency_key: v.nullable(v.string()),
  custom: object,
  thread_id: v.optional(v.nullable(v.string())),
  thread_turn: v.optional(v.nullable(v.pipe(v.number(), v.integer(), v.minValue(1)))),
});

const deliveryAttempt = v.object({
  attempt: v.pipe(v.number(), v.integer(), v.minValue(1)),
  at: isoTime,
  duration_ms: v.number(),
  status_code: v.optional(v.pipe(v.number(), v.integer())),
  error: v.optional(v.string()),
  outcome: v.picklist(['delivered', 'retryable', 'permanent']),
  retry_after_ms: v.optional(v.number()),
  via: v.optional(v.picklist(['workflow', 'schedule', 'redrive', 'resend'])),
  // From the attempt log (docs/contract.md#attempt-log): the execution that made it, what was sent (never the
  // signature), what the receiver answered (null: nothing came back: a network error or a timeout).
  execution_name: v.optional(v.string()),
  request: v.optional(v.object({ url: v.string(), headers: v.record(v.string(), v.string()) })),
  response: v.optional(
    v.nullable(
      v.object({
        status: v.pipe(v.number(), v.integer()),
        headers: v.record(v.string(), v.string()),
        body: v.string(),
        body_truncated: v.boolean(),
      }),
    ),
  ),
});

const lifecycleEvent = v.object({
  type: v.picklist(EVENT_TYPES),
  at: isoTime,
  state: v.string(),
});

const ConversationExportSchema = v.pipe(
  v.object({
    export_metadata: exportMetadata('webhook_structured_json'),
    conversation: v.object({
      metadata: recordMetadata,
      webhook_context: v.object({
        source_system: v.string(),
        source_process: v.string(),
        webhook_type: webhookType,
        requested_webhook_type: webhookType,
        classification_reason: v.nullable(v.string()),
        classified_at: v.optional(isoTime),
        delivery_status: deliveryStatus,
        delivery_id: v.string(),
        delivery_target: v.nullable(v.string()),
      }),
      conversation: v.object({
        turns: v.array(
          v.object({
            role: v.picklist(['user', 'assistant']),
            content: v.string(),
            timestamp: isoTime,
            data: v.optional(v.unknown()),
          }),
        ),
      }),
      execution: v.object({
        status: conversationStatus,
        started_at: isoTime,
        completed_at: v.nullable(isoTime),
        timings: v.object({ agent_ms: milliseconds, delivery_ms: milliseconds, total_ms: milliseconds }),
        delivery_attempts: v.array(deliveryAttempt),
        errors: v.array(v.object({ stage: v.string(), error: v.string(), message: v.string(), at: isoTime })),
        executions: v.array(v.string()),
        events: v.array(lifecycleEvent),
      }),
    }),
  }),
  v.title('conversation.json'),
  v.description('The whole conversation record, format webhook_structured_json (docs/contract.md#exports-s3).'),
);

const MetadataExportSchema = v.pipe(
  v.object({
    export_metadata: exportMetadata('metadata_only'),
    metadata: v.object({
      ...recordMetadata.entries,
      webhook_type: webhookType,
      delivery_status: deliveryStatus,
      delivery_id: v.string(),
      status: conversationStatus,
      turn_count: v.pipe(v.number(), v.integer()),
      total_time_ms: milliseconds,
    }),
  }),
  v.title('metadata.json'),
);

const SummaryExportSchema = v.pipe(
  v.object({
    conversation_id: conversationId,
    received_at: isoTime,
    source_system: v.string(),
    source_process: v.string(),
    webhook_type: webhookType,
    status: conversationStatus,
    delivery_status: deliveryStatus,
    delivery_attempts: v.pipe(v.number(), v.integer()),
    total_time_ms: milliseconds,
    query_preview: v.pipe(v.string(), v.maxLength(120)),
  }),
  v.title('summary.json'),
);

/** analysis.json: one nullable value per column of the `conversations` table, described as the table is. */
const AnalysisExportSchema = v.pipe(
  v.object(
    Object.fromEntries(
      ANALYSIS_COLUMNS.map((c) => [
        c.name,
        v.pipe(
          v.nullable(c.type === 'bigint' ? v.pipe(v.number(), v.integer()) : v.string()),
          v.description(c.description),
        ),
      ]),
    ),
  ),
  v.title('analysis.json'),
  v.description('One flat object per conversation: the row of the conversations table (docs/contract.md).'),
);

/** The four export files by name, as docs/schemas/ publishes them. */
export const EXPORT_SCHEMAS = {
  'conversation.json': ConversationExportSchema,
  'metadata.json': MetadataExportSchema,
  'summary.json': SummaryExportSchema,
  'analysis.json': AnalysisExportSchema,
} as const;
