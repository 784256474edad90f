import type { AnalysisColumnName } from './analytics-table.ts';
import type { ConversationRecord } from './conversation.ts';
import { agentTurn, turnText, userQuery, withTurnTexts } from './conversation.ts';
import { conversationDatePath, isConversationId } from './conversation-id.ts';
import { attemptEnd, type ExportOrigin, lifecycleEvents } from './lifecycle-events.ts';
import { wellFormedJson } from './unicode.ts';

/** S3 layout (docs/contract.md#exports-s3): conversation-history/YYYY/MM/DD/<conversation_id>/{conversation,metadata,summary,analysis}.json */
export const EXPORT_PREFIX = 'conversation-history';
export const EXPORT_VERSION = '1.0';
export const EXPORT_FILES = ['conversation.json', 'metadata.json', 'summary.json', 'analysis.json'] as const;
export type ExportFile = (typeof EXPORT_FILES)[number];

export function exportFolder(conversationId: string): string {
  if (!isConversationId(conversationId))
    throw new Error(`refusing to export under an invalid conversation id: ${conversationId}`);
  return `${EXPORT_PREFIX}/${conversationDatePath(conversationId)}/${conversationId}/`;
}

export function exportKey(conversationId: string, file: ExportFile): string {
  return `${exportFolder(conversationId)}${file}`;
}

function exportMetadata(format: string, exportedAt: string) {
  return { format, version: EXPORT_VERSION, channel: 'webhook' as const, exported_at: exportedAt };
}

/** Who writes the export when nobody says: the conversation workflow's Export state. */
const DEFAULT_ORIGIN: ExportOrigin = { state: 'Export', executionName: null };

/**
 * 1. conversation.json: the whole record, format webhook_structured_json, with the lifecycle's events
 * (`execution.events`, derived from the record: see lifecycle-events.ts).
 */
export function structuredJson(record: ConversationRecord, exportedAt: string, origin: ExportOrigin = DEFAULT_ORIGIN) {
  return {
    export_metadata: exportMetadata('webhook_structured_json', exportedAt),
    conversation: {
      metadata: record.metadata,
      webhook_context: record.webhook_context,
      conversation: withTurnTexts(record).conversation,
      execution: { ...record.execution, events: lifecycleEvents(record, exportedAt, origin) },
    },
  };
}

/**
 * The record a conversation.json holds (what `--aws` commands read back from the bucket): its four parts, the
 * lifecycle events (derived at export time) left out. Null when the document is not a conversation.json.
 */
export function recordFromExport(document: unknown): ConversationRecord | null {
  const parts = (document as { conversation?: Partial<ConversationRecord> } | null)?.conversation;
  const id = parts?.metadata?.conversation_id;
  if (!parts?.webhook_context || !parts.conversation || !parts.execution || typeof id !== 'string') return null;
  const { events: _events, ...execution } = parts.execution as ConversationRecord['execution'] & { events?: unknown };
  return {
    conversation_id: id,
    metadata: parts.metadata!,
    webhook_context: parts.webhook_context,
    conversation: parts.conversation,
    execution,
  };
}

/** 2. metadata.json: metadata only, for monitoring and analytics. */
export function metadataOnly(record: ConversationRecord, exportedAt: string) {
  return {
    export_metadata: exportMetadata('metadata_only', exportedAt),
    metadata: {
      ...record.metadata,
      webhook_type: record.webhook_context.webhook_type,
      delivery_status: record.webhook_context.delivery_status,
      delivery_id: record.webhook_context.delivery_id,
      status: record.execution.status,
      turn_count: record.conversation.turns.length,
      total_time_ms: record.execution.timings.total_ms,
    },
  };
}

/** The first `length` UTF-16 units of `text`, one fewer when the last would be the first half of a pair (an emoji). */
function preview(text: string, length: number): string {
  const last = text.charCodeAt(length - 1);
  return text.slice(0, last >= 0xd800 && last <= 0xdbff ? length - 1 : length);
}

/** 3. summary.json: one compact line for dashboards. */
export function compactSummary(record: ConversationRecord) {
  return {
    conversation_id: record.conversation_id,
    received_at: record.metadata.received_at,
    source_system: record.metadata.source_system,
    source_process: record.metadata.source_process,
    webhook_type: record.webhook_context.webhook_type,
    status: record.execution.status,
    delivery_status: record.webhook_context.delivery_status,
    delivery_attempts: record.execution.delivery_attempts.length,
    total_time_ms: record.execution.timings.total_ms,
    query_preview: preview(userQuery(record), 120),
  };
}

/**
 * 4. analysis.json: one flat JSON object on one line, one value per column: the row of the `conversations` table
 * (the columns of analytics-table.ts, in that order).
 */
export function analysisFormat(
  record: ConversationRecord,
  exportedAt: string,
): Record<AnalysisColumnName, string | number | null> {
  const query = userQuery(record);
  const answer = turnText(agentTurn(record));
  const lastError = record.execution.errors.at(-1);
  const lastAttempt = record.execution.delivery_attempts.at(-1);
  const delivered = record.execution.delivery_attempts.find((a) => a.outcome === 'delivered');
  return {
    format: 'analysis',
    version: EXPORT_VERSION,
    channel: 'webhook',
    exported_at: exportedAt,
    conversation_id: record.conversation_id,
    source_system: record.metadata.source_system,
    source_process: record.metadata.source_process,
    request_id: record.metadata.request_id,
    received_at: record.metadata.received_at,
    completed_at: record.execution.completed_at,
    status: record.execution.status,
    webhook_type: record.webhook_context.webhook_type,
    classification_reason: record.webhook_context.classification_reason,
    delivery_status: record.webhook_context.delivery_status,
    delivery_id: record.webhook_context.delivery_id,
    delivery_attempt_count: record.execution.delivery_attempts.length,
    last_delivery_status_code: lastAttempt?.status_code ?? null,
    delivered_at: delivered ? attemptEnd(delivered) : null,
    agent_processing_time_ms: record.execution.timings.agent_ms,
    delivery_response_time_ms: record.execution.timings.delivery_ms,
    total_time_ms: record.execution.timings.total_ms,
    request_size_bytes: record.metadata.request_size_bytes,
    query,
    query_length: query.length,
    response: answer,
    response_length: answer.length,
    error_count: record.execution.errors.length,
    last_error: lastError ? `${lastError.stage}: ${lastError.error}: ${lastError.message}` : null,
    thread_id: record.metadata.thread_id ?? null,
    thread_turn: record.metadata.thread_turn ?? null,
  };
}

export interface ExportDocument {
  key: string;
  body: string;
}

/**
 * The four objects to write, keyed deterministically so a re-run overwrites rather than duplicates.
 * conversation.json and metadata.json are pretty-printed for people; summary.json and analysis.json are one line
 * each (JSON Lines), which is what Athena's JSON reader and other line-oriented tools take.
 */
export function exportDocuments(
  record: ConversationRecord,
  exportedAt: string,
  origin: ExportOrigin = DEFAULT_ORIGIN,
): ExportDocument[] {
  const id = record.conversation_id;
  // Every string well-formed (unicode.ts): an unpaired surrogate, wherever it came from, is written as U+FFFD.
  return [
    {
      key: exportKey(id, 'conversation.json'),
      body: wellFormedJson(JSON.stringify(structuredJson(record, exportedAt, origin), null, 2)),
    },
    {
      key: exportKey(id, 'metadata.json'),
      body: wellFormedJson(JSON.stringify(metadataOnly(record, exportedAt), null, 2)),
    },
    { key: exportKey(id, 'summary.json'), body: `${wellFormedJson(JSON.stringify(compactSummary(record)))}\n` },
    {
      key: exportKey(id, 'analysis.json'),
      body: `${wellFormedJson(JSON.stringify(analysisFormat(record, exportedAt)))}\n`,
    },
  ];
}
