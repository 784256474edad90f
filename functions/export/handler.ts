import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { ConversationState } from '../domain/conversation.ts';
import { ExportError } from '../domain/errors.ts';
import { exportDocuments, exportFolder } from '../domain/export-formats.ts';
import { agentFailureBody, closeConversation, successBody } from '../domain/lifecycle.ts';
import { idempotencyPk } from '../domain/idempotency.ts';
import { s3 } from '../shared/clients/s3.ts';
import { idempotencyStore } from '../shared/idempotency-store.ts';
import { logEvent, METRIC_NAMES, recordTime } from '../shared/events.ts';
import { stageHandler } from '../shared/powertools.ts';

export interface ExportInput {
  state: ConversationState;
  execution_name: string;
}

export type ExportOutput = ConversationState & { response?: unknown; failure_cause?: string };

/**
 * Export: close the record (agent failure, failed delivery or success), log the completion, and write the four
 * export formats to S3. The keys depend only on the conversation id, so a re-run overwrites the same objects.
 */
export const handler = stageHandler('Export', async ({ state, execution_name }: ExportInput): Promise<ExportOutput> => {
  const now = new Date();
  const { record, agentFailed } = closeConversation(state, execution_name, now);
  if (!state.redelivery) {
    // Once per conversation: a redelivery re-exports the record but does not complete the conversation again.
    const totalMs = record.execution.timings.total_ms ?? 0;
    recordTime(METRIC_NAMES.totalConversationTime, totalMs);
    logEvent('WEBHOOK_CONVERSATION_COMPLETED', record, {
      status: record.execution.status,
      total_time_ms: totalMs,
      delivery_status: record.webhook_context.delivery_status,
      webhook_type: record.webhook_context.webhook_type,
    });
  }

  if (process.env.ENABLE_CONVERSATION_EXPORT !== 'false') {
    const bucket = process.env.CONVERSATION_EXPORT_S3_BUCKET;
    if (!bucket) throw new ExportError('CONVERSATION_EXPORT_S3_BUCKET is not set');
    const documents = exportDocuments(record, now.toISOString());
    try {
      await Promise.all(
        documents.map((doc) =>
          s3.send(new PutObjectCommand({ Bucket: bucket, Key: doc.key, Body: doc.body, ContentType: 'application/json' })),
        ),
      );
    } catch (error) {
      throw new ExportError(`writing s3://${bucket}/${exportFolder(record.conversation_id)} failed: ${(error as Error).name}: ${(error as Error).message}`);
    }
    logEvent('WEBHOOK_CONVERSATION_EXPORTED', record, {
      s3_location: `s3://${bucket}/${exportFolder(record.conversation_id)}`,
      files: documents.length,
    });
  }

  const next: ConversationState = { conversation: record };
  const response = agentFailed ? null : successBody(record);
  const key = record.metadata.idempotency_key;
  const store = key && !state.redelivery ? idempotencyStore() : null;
  if (key && store) {
    // A retry with the same key now gets this answer; after an agent failure the key is freed so a retry runs again.
    const pk = idempotencyPk(record.metadata.source_system, key);
    await (response ? store.complete(pk, response, now) : store.release(pk));
  }
  return response ? { ...next, response } : { ...next, failure_cause: JSON.stringify(agentFailureBody(record)) };
});
