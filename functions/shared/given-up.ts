import type { S3Client } from '@aws-sdk/client-s3';
import { withAttemptLog } from '../domain/attempt-log.ts';
import type { ConversationRecord } from '../domain/conversation.ts';
import type { StatusDelivery } from '../domain/conversation-status.ts';
import { exportDocuments } from '../domain/export-formats.ts';
import { deliveredAfterAll, type FailedDeliveryEnvelope, givenUpRecord, owedBy } from '../domain/failed-delivery.ts';
import { successBody } from '../domain/lifecycle.ts';
import { attemptLog } from './attempt-log.ts';
import { s3ClientSettings } from './clients/s3-settings.ts';
import { type ConversationStatusStore, conversationStatusStore } from './conversation-status-store.ts';
import { tracer } from './powertools.ts';
import { settings } from './settings.ts';

/**
 * A delivery the schedule gave up on because its redelivery runs kept failing (givenUpRecord,
 * functions/domain/failed-delivery.ts): no run got as far as its Export, so the scheduler itself writes the record
 * where users read it, as Export would have: the four export files (with every attempt the attempt log kept) and, for
 * an asynchronous conversation, its status (givenUpStatus). An export given up so (the conversation delivered, then
 * each run's Export failed) is written the same way, as it ended: delivered. The status is written even when S3
 * refuses the files. It holds the conversation's redelivery claim meanwhile (on AWS; locally the store holds the
 * envelope), so no redelivery writes the record at the same time (docs/operations.md, "Failed deliveries").
 */
export async function publishGivenUp(envelope: FailedDeliveryEnvelope, now: Date): Promise<void> {
  const record = givenUpRecord(envelope);
  if (!record) return;
  const log = attemptLog();
  const logged = log ? await log.list(record.conversation_id).catch(() => null) : null;
  const exportOnly = owedBy(envelope) === 'export';
  // The last run delivered, then failed (its Export): the receiver has it, and the record says so.
  const took = exportOnly
    ? undefined
    : logged?.find((a) => a.conversation_id === record.conversation_id && a.outcome === 'delivered');
  const shown = took ? deliveredAfterAll(record, took) : record;
  // As of the attempt that decided it (as Export reports it), or of the give-up.
  const at = exportOnly ? shown.execution.delivery_attempts.at(-1)?.at : took?.at;
  const statuses = record.metadata.response_mode === 'async' ? conversationStatusStore() : null;
  const delivery = { delivery_status: shown.webhook_context.delivery_status, at: at ?? envelope.updated_at };
  const written = await Promise.allSettled([
    exportRecord(logged ? withAttemptLog(shown, logged) : shown, now),
    statuses && givenUpStatus(statuses, shown, delivery, now),
  ]);
  for (const result of written) if (result.status === 'rejected') throw result.reason;
}

/**
 * The status of a conversation given up: one no Export completed (it failed in the first run too, so the record went
 * to the schedule unclosed) is completed now, with the 200 body a synchronous call would have had (conditional: only
 * while it still says `running`); then its delivery, as a redelivery's re-export writes it (conditional UpdateItems on
 * AWS: never over `delivered`, never over a newer report; an expired or absent status is not written).
 */
async function givenUpStatus(
  statuses: ConversationStatusStore,
  record: ConversationRecord,
  delivery: StatusDelivery,
  now: Date,
): Promise<void> {
  await statuses.finish(record.conversation_id, {
    status: 'completed',
    body: JSON.stringify(successBody(record)),
    completed_at: record.execution.completed_at ?? delivery.at,
  });
  await statuses.redelivered(record.conversation_id, delivery, now);
}

/** The record's four export files (export-formats.ts), when exports are on. */
async function exportRecord(record: ConversationRecord, now: Date): Promise<void> {
  const { exportEnabled, exportBucket } = settings();
  if (!exportEnabled || !exportBucket) return;
  const documents = exportDocuments(record, now.toISOString(), { state: 'RedeliveryScheduler', executionName: null });
  const { sdk, s3 } = await exportClient();
  await Promise.all(
    documents.map((doc) =>
      s3.send(
        new sdk.PutObjectCommand({
          Bucket: exportBucket,
          Key: doc.key,
          Body: doc.body,
          ContentType: 'application/json',
        }),
      ),
    ),
  );
}

/**
 * The S3 SDK and the scheduler's one client, loaded on the first give-up that writes an export (./clients/s3-sdk.ts):
 * a scheduler run that gives nothing up never pays their import at its cold start.
 */
let client: S3Client | null = null;
async function exportClient(): Promise<{ sdk: typeof import('./clients/s3-sdk.ts'); s3: S3Client }> {
  const sdk = await import('./clients/s3-sdk.ts');
  client ??= tracer.captureAWSv3Client(new sdk.S3Client(s3ClientSettings()));
  return { sdk, s3: client };
}
