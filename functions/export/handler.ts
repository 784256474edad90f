import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { ConversationRecord, ConversationState } from '../domain/conversation.ts';
import { ExportError } from '../domain/errors.ts';
import { exportDocuments, exportFolder } from '../domain/export-formats.ts';
import { idempotencyPk } from '../domain/idempotency.ts';
import { agentFailureBody, closeConversation, successBody } from '../domain/lifecycle.ts';
import { EXPORT_DEFERRED_EVENT, EXPORT_DEFERRED_METRIC } from '../domain/observability.ts';
import { parseTaskError } from '../domain/task-error.ts';
import { s3 } from '../shared/clients/s3.ts';
import { logEvent, METRIC_NAMES, recordTime } from '../shared/events.ts';
import { idempotencyStore } from '../shared/idempotency-store.ts';
import { logger, MetricUnit, metrics, stageHandler } from '../shared/powertools.ts';
import { settings } from '../shared/settings.ts';

export interface ExportInput {
  state: ConversationState;
  execution_name: string;
}

export type ExportOutput = ConversationState & { response?: unknown; failure_cause?: string };

/**
 * Export: close the record (agent failure, failed delivery or success), write the four export formats to S3, and
 * log the completion. The keys depend only on the conversation id, so a re-run overwrites the same objects.
 *
 * When S3 stayed unwritable through the state's retries, its Catch runs this handler once more with
 * `export_error` set: the record is closed and answered without S3, and the output keeps `export_error` so that
 * QueueFailedExport can queue the closed record for a later export (the redelivery workflow's Export).
 */
export const handler = stageHandler('Export', async ({ state, execution_name }: ExportInput): Promise<ExportOutput> => {
  const now = new Date();
  const { record, answered } = closeConversation(state, execution_name, now);
  const deferred = state.export_error;

  let written: { location: string; files: number } | null = null;
  const { exportEnabled, exportBucket: bucket } = settings();
  if (!deferred && exportEnabled) {
    if (!bucket) throw new ExportError('CONVERSATION_EXPORT_S3_BUCKET is not set');
    // The state this run is: the conversation workflow's ExportFailedConversation after an agent failure, else an Export.
    const origin = {
      state: !answered && !state.redelivery ? 'ExportFailedConversation' : 'Export',
      executionName: execution_name,
    };
    const documents = exportDocuments(record, now.toISOString(), origin);
    try {
      await Promise.all(
        documents.map((doc) =>
          s3.send(
            new PutObjectCommand({ Bucket: bucket, Key: doc.key, Body: doc.body, ContentType: 'application/json' }),
          ),
        ),
      );
    } catch (error) {
      throw new ExportError(
        `writing s3://${bucket}/${exportFolder(record.conversation_id)} failed: ${(error as Error).name}: ${(error as Error).message}`,
      );
    }
    written = { location: `s3://${bucket}/${exportFolder(record.conversation_id)}`, files: documents.length };
  }
  // Logged once the record is safe (written, or about to be queued): an ExportError retry does not log it twice.
  logCompletion(state, record);
  if (written)
    logEvent('WEBHOOK_CONVERSATION_EXPORTED', record, { s3_location: written.location, files: written.files });
  if (deferred) {
    const failure = parseTaskError(deferred);
    logger.error('Conversation export failed; queued to be exported later', {
      event_type: EXPORT_DEFERRED_EVENT,
      conversation_id: record.conversation_id,
      error: failure.error,
      reason: failure.message,
    });
    metrics.addMetric(EXPORT_DEFERRED_METRIC, MetricUnit.Count, 1);
  }

  const next: ConversationState = deferred
    ? { conversation: record, export_error: deferred }
    : { conversation: record };
  const response = answered ? successBody(record) : null;
  const key = record.metadata.idempotency_key;
  const store = key && !state.redelivery ? idempotencyStore() : null;
  if (key && store) {
    // A retry with the same key now gets this answer; after an agent failure the key is freed so a retry runs again.
    const pk = idempotencyPk(record.metadata.source_system, key);
    await (response ? store.complete(pk, response, now) : store.release(pk));
  }
  return response ? { ...next, response } : { ...next, failure_cause: JSON.stringify(agentFailureBody(record)) };
});

/** Once per conversation, after its record is safe (exported, or queued to be): a redelivery does not complete it again. */
function logCompletion(state: ConversationState, record: ConversationRecord): void {
  if (state.redelivery) return;
  const totalMs = record.execution.timings.total_ms ?? 0;
  recordTime(METRIC_NAMES.totalConversationTime, totalMs);
  logEvent('WEBHOOK_CONVERSATION_COMPLETED', record, {
    status: record.execution.status,
    total_time_ms: totalMs,
    delivery_status: record.webhook_context.delivery_status,
    webhook_type: record.webhook_context.webhook_type,
  });
}
