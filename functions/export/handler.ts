import { PutObjectCommand } from '@aws-sdk/client-s3';
import type { Context } from 'aws-lambda';
import { withAttemptLog } from '../domain/attempt-log.ts';
import { msLeft, redeliveryAnswerBy, SYNC_RESERVES } from '../domain/budget.ts';
import {
  type ConversationRecord,
  type ConversationState,
  fullState,
  leanRecord,
  type WorkflowState,
} from '../domain/conversation.ts';
import { ExportDeadlineError, ExportError, NamedError } from '../domain/errors.ts';
import { exportDocuments, exportFolder } from '../domain/export-formats.ts';
import { idempotencyPk } from '../domain/idempotency.ts';
import { agentFailure, closeConversation, successBody } from '../domain/lifecycle.ts';
import {
  DELIVERY_UNQUEUED_EVENT,
  DELIVERY_UNQUEUED_METRIC,
  EXPORT_DEFERRED_EVENT,
  EXPORT_DEFERRED_METRIC,
  RECORD_UNSAVED_EVENT,
  THREAD_TURN_UNSAVED_EVENT,
} from '../domain/observability.ts';
import { parseTaskError } from '../domain/task-error.ts';
import { threadTurnOf } from '../domain/thread.ts';
import { attemptLog } from '../shared/attempt-log.ts';
import {
  budgetSignal,
  deadlineBefore,
  earliest,
  LAMBDA_RETURN_MS,
  LAMBDA_TAIL_MS,
  lambdaDeadline,
  lambdaEnd,
} from '../shared/clients/request-limits.ts';
import { s3 } from '../shared/clients/s3.ts';
import { conversationStatusStore } from '../shared/conversation-status-store.ts';
import { logEvent, METRIC_NAMES, recordTime } from '../shared/events.ts';
import { idempotencyStore, settleKey } from '../shared/idempotency-store.ts';
import { logger, MetricUnit, metrics, stageHandler } from '../shared/powertools.ts';
import { settings } from '../shared/settings.ts';
import { threadStore } from '../shared/thread-store.ts';

export interface ExportInput {
  state: WorkflowState;
  execution_name: string;
  /**
   * The redelivery workflow's start ($$.Execution.StartTime, statemachine/redelivery.asl.json): with no caller
   * waiting, its Export and closing run count down to that run's own end instead (redeliveryAnswerBy).
   */
  started_at?: string;
}

/**
 * The closed record (the execution history's last word on it), `export_error` when S3 refused it, and the caller's
 * answer: the response, or the agent's failure as the AgentFailed state's error and cause. The answer is then in the
 * state three times (the turn's text and data, the response): Classify refused any answer that would not fit so.
 */
export type ExportOutput = Partial<WorkflowState> & {
  response?: unknown;
  failure_error?: string;
  failure_cause?: string;
};

/** Leave at least this much for an S3 attempt, and this long for the state's Retry wait (1 s) before another. */
const MIN_EXPORT_MS = 300;
const EXPORT_RETRY_WAIT_MS = 1_000;
/** The attempt-log read before the S3 writes ends this long before their deadline, so they keep MIN_EXPORT_MS. */
const AFTER_LOG_READ_MS = 2 * MIN_EXPORT_MS;

/**
 * Export: close the record (agent failure, failed delivery or success), write the four export formats to S3, and
 * log the completion. The keys depend only on the conversation id, so a re-run overwrites the same objects. With a
 * caller waiting ($.budget.answer_by), S3 gets only the time that leaves the S3-refused path its reserve: an export
 * that cannot be done by then fails with ExportDeadlineError (not retried) instead of making the caller wait. The
 * DynamoDB calls are cut by the same budget (docs/deploy.md, "Timeouts"): the attempt-log read before S3 leaves the
 * PUTs their time, the idempotency key and the thread turn after it end by answer_by (in the closing run, before
 * QueueFailedExport's reserve); a cut one is logged and the caller answered. With a caller waiting or not, every call
 * also ends before this Lambda's timeout (the S3 work LAMBDA_TAIL_MS before it, the writes after it LAMBDA_RETURN_MS
 * before it): an S3 too slow fails the run with ExportError naming that cut (retried once, then CloseWithoutExport and
 * QueueFailedExport), never with the Lambda's timeout. A redelivery's Export and closing run take its run's end as
 * answer_by (redeliveryAnswerBy of `started_at`), so that every path ends before the workflow's 60 s.
 *
 * When S3 stayed unwritable through the state's retries, its Catch runs this handler once more with
 * `export_error` set: the record is closed and answered without S3, and the output keeps `export_error` so that
 * QueueFailedExport can queue the closed record for a later export (the redelivery workflow's Export). When the
 * queue refused that too (`export_queue_error`, state RecordOnlyInLogs), the whole record is logged as one
 * WEBHOOK_CONVERSATION_UNSAVED event: the log is then where it is kept.
 */
export const handler = exportOn(Date.now);

/**
 * Export on a clock: the one it reads the time left before answer_by with, and closes the record at. The Lambda's is
 * the real one; the local gateway's tests inject theirs (GatewayOptions.budgetClock).
 */
export function exportOn(clock: () => number) {
  return stageHandler('Export', (input: ExportInput, context?: Context) =>
    exportConversation(input, clock, lambdaEnd(context, clock()).endsAt),
  );
}

/** `endsAt`: when this Lambda times out (ms on `clock`, lambdaEnd); undefined: no such limit (locally). */
async function exportConversation(
  { state: given, execution_name, started_at }: ExportInput,
  clock: () => number,
  endsAt: number | undefined,
): Promise<ExportOutput> {
  const state = fullState(given);
  if (state.export_queue_error) return logUnsaved(state);
  const now = new Date(clock());
  const { record, answered, refused } = closeConversation(state, execution_name, now);
  const deferred = state.export_error;
  // The caller's deadline, or in a redelivery its run's (docs/deploy.md, "Timeouts").
  const answerBy = state.budget?.answer_by ?? (state.redelivery ? redeliveryAnswerBy(started_at) : null);
  // Classify failed and Lambda did not run Deliver, so the answer was still pending, unchecked: one Classify would have
  // refused is refused here, before anything is written (AgentAnswerRejected → ExportFailedConversation: 502, exported
  // as failed), never answered 200 nor exported as completed. The closing run (export_error) and a redelivery's Export
  // close it as failed (closeConversation) and answer so.
  if (refused && !deferred && !state.redelivery) throw new NamedError('AgentAnswerRejected', refused);

  let written: { location: string; files: number; s3WriteMs: number } | null = null;
  const { exportEnabled, exportBucket: bucket } = settings();
  if (!deferred && exportEnabled) {
    if (!bucket) throw new ExportError('CONVERSATION_EXPORT_S3_BUCKET is not set');
    // The state this run is: the conversation workflow's ExportFailedConversation after an agent failure, else an Export.
    const origin = {
      state: state.start_error
        ? 'ExportNotStarted'
        : !answered && !state.redelivery
          ? 'ExportFailedConversation'
          : 'Export',
      executionName: execution_name,
    };
    // The S3 work ends by the caller's deadline less the S3-refused path's reserve, and before this Lambda's timeout
    // less its tail, whichever comes first.
    const byAnswer = deadlineBefore(answerBy, SYNC_RESERVES.fallback);
    const lambdaBy = lambdaDeadline(endsAt, LAMBDA_TAIL_MS);
    const s3By = earliest(byAnswer, lambdaBy);
    const cutByLambda = s3By !== null && s3By === lambdaBy && s3By !== byAnswer;
    const logRead = budgetSignal(s3By, new Date(clock()), AFTER_LOG_READ_MS);
    const documents = exportDocuments(await withLoggedAttempts(record, logRead), now.toISOString(), origin);
    const timeLeft = () => msLeft(s3By, new Date(clock()));
    const where = `s3://${bucket}/${exportFolder(record.conversation_id)}`;
    const lambdaCut = `${LAMBDA_TAIL_MS} ms before this Export Lambda's timeout (${lambdaBy})`;
    if (timeLeft() < MIN_EXPORT_MS) {
      if (cutByLambda) throw new ExportError(`no time left to write ${where} ${lambdaCut}`);
      throw new ExportDeadlineError(`no time left to write ${where} before ${dueWhat(state)} (${answerBy})`);
    }
    const abortSignal = budgetSignal(s3By, new Date(clock()));
    const writeStarted = Date.now();
    try {
      await Promise.all(
        documents.map((doc) =>
          s3.send(
            new PutObjectCommand({ Bucket: bucket, Key: doc.key, Body: doc.body, ContentType: 'application/json' }),
            { abortSignal },
          ),
        ),
      );
    } catch (error) {
      const cause = `${(error as Error).name}: ${(error as Error).message}`;
      const reason =
        cutByLambda && abortSignal?.aborted
          ? `writing ${where} did not end ${lambdaCut}, cut: ${cause}`
          : `writing ${where} failed: ${cause}`;
      // A retry (another invocation) must still fit before the answer is due; if it cannot, go to the S3-refused
      // path at once.
      const answerLeft = msLeft(byAnswer, new Date(clock()));
      if (answerLeft < EXPORT_RETRY_WAIT_MS + MIN_EXPORT_MS) throw new ExportDeadlineError(reason);
      throw new ExportError(reason);
    }
    written = {
      location: `s3://${bucket}/${exportFolder(record.conversation_id)}`,
      files: documents.length,
      s3WriteMs: Date.now() - writeStarted,
    };
  }
  // Logged once the record is safe (written, or about to be queued): an ExportError retry does not log it twice.
  logCompletion(state, record);
  if (written)
    logEvent('WEBHOOK_CONVERSATION_EXPORTED', record, {
      s3_location: written.location,
      files: written.files,
      // The four PUTs, in parallel (the stage is not traced: docs/performance.md §3).
      s3_write_ms: written.s3WriteMs,
    });
  if (state.delivery_error && state.delivery_queue_error) {
    const failure = parseTaskError(state.delivery_queue_error);
    logger.error('Delivery failed and the failed-delivery queue refused it: no automatic attempt follows', {
      event_type: DELIVERY_UNQUEUED_EVENT,
      conversation_id: record.conversation_id,
      webhook_type: record.webhook_context.webhook_type,
      error: failure.error,
      reason: failure.message,
      recover: `deliveries resend ${record.conversation_id}`,
    });
    metrics.addMetric(DELIVERY_UNQUEUED_METRIC, MetricUnit.Count, 1);
  }
  if (deferred) {
    const failure = parseTaskError(deferred);
    logger.error(deferredExportMessage(state, record), {
      event_type: EXPORT_DEFERRED_EVENT,
      conversation_id: record.conversation_id,
      error: failure.error,
      reason: failure.message,
    });
    metrics.addMetric(EXPORT_DEFERRED_METRIC, MetricUnit.Count, 1);
  }

  const response = answered ? successBody(record) : null;
  // The answer is due at answer_by; the closing run's record is still to be queued after it (QueueFailedExport). And
  // whoever waits, the writes end before this Lambda's timeout, less the return.
  const answerDue = deadlineBefore(answerBy, deferred ? SYNC_RESERVES.queue : 0);
  const cut = budgetSignal(earliest(answerDue, lambdaDeadline(endsAt, LAMBDA_RETURN_MS)), new Date(clock()));
  const key = record.metadata.idempotency_key;
  const store = key && !state.redelivery ? idempotencyStore() : null;
  if (key && store) {
    // A retry with the same key now gets this answer; after an agent failure the key is freed so a retry runs again.
    const pk = idempotencyPk(record.metadata.source_system, key);
    await settleKey(store, pk, record.conversation_id, response, now, cut);
  }
  const answer = response ? { response } : agentFailure(record, state.budget?.agent_seconds);
  await keepThreadTurn(record, now, cut);
  if (record.metadata.response_mode === 'async')
    await finishStatus(record, answer, now, state.redelivery !== undefined, cut);
  // The record goes back to the state as the state carries it (leanRecord), for QueueFailedExport's envelope.
  const conversation = leanRecord(record);
  return deferred ? { conversation, export_error: deferred, ...answer } : { conversation, ...answer };
}

/**
 * What WEBHOOK_CONVERSATION_EXPORT_DEFERRED says, true when it is logged (the closing run, CloseWithoutExport): a
 * redelivery's envelope goes on owing the export; a failed delivery's queued envelope re-exports the record with its
 * redelivery (IsRedeliveryQueued); otherwise the record is yet to be queued, by QueueFailedExport, which can refuse
 * it too (then RecordOnlyInLogs logs it whole: WEBHOOK_CONVERSATION_UNSAVED).
 */
function deferredExportMessage(state: ConversationState, record: ConversationRecord): string {
  if (state.redelivery) return 'Conversation export failed; its failed-delivery envelope still owes the export';
  const status = record.webhook_context.delivery_status;
  if (!state.delivery_queue_error && (status === 'retrying' || status === 'failed' || status === 'queued'))
    return "Conversation export failed; its failed delivery's envelope holds the record: its redelivery or redrive exports it";
  return 'Conversation export failed; the record is queued next (QueueFailedExport): a refusal there is logged as WEBHOOK_CONVERSATION_UNSAVED';
}

/** What answer_by is, for ExportDeadlineError's message. */
function dueWhat(state: ConversationState): string {
  return state.budget?.answer_by
    ? "the caller's answer is due"
    : "this redelivery run's deadline, its workflow's TimeoutSeconds less 1 s";
}

/**
 * An asynchronous conversation's status record now says how it ended, with the body a synchronous caller would have
 * had (GET /conversations/{id}). Only the first end counts, and a redelivery's re-export completes a status a failed
 * write left `running`; of an answered one, it records the delivery status it left (the schedule, a redrive or a
 * resend delivered it, or it failed for good), as of its last attempt.
 */
async function finishStatus(
  record: ConversationRecord,
  answer: { response: unknown } | { failure_cause: string },
  now: Date,
  redelivery: boolean,
  signal: AbortSignal | undefined,
): Promise<void> {
  const statuses = conversationStatusStore();
  if (!statuses) return;
  const finished = await statuses.finish(
    record.conversation_id,
    {
      status: 'response' in answer ? 'completed' : 'failed',
      body: 'response' in answer ? JSON.stringify(answer.response) : answer.failure_cause,
      completed_at: record.execution.completed_at ?? now.toISOString(),
    },
    signal,
  );
  if (finished || !redelivery || !('response' in answer)) return;
  const at = record.execution.delivery_attempts.at(-1)?.at ?? now.toISOString();
  await statuses.redelivered(
    record.conversation_id,
    { delivery_status: record.webhook_context.delivery_status, at },
    now,
    signal,
  );
}

/**
 * An answered conversation of a thread becomes its turn for the next conversations' agents, before a synchronous
 * caller or the status record learns the answer (so the next POST of the thread sees it). A thread store that
 * refuses it, or does not take it before the caller's deadline (`signal`), does not fail the conversation: the
 * answer is delivered and exported, and the event says which turn the thread lacks.
 */
async function keepThreadTurn(record: ConversationRecord, now: Date, signal: AbortSignal | undefined): Promise<void> {
  const turn = threadTurnOf(record);
  const threadId = record.metadata.thread_id;
  if (!turn || !threadId) return;
  try {
    await threadStore().recordTurn(record.metadata.source_system, threadId, turn, now, signal);
  } catch (error) {
    logger.error('Thread turn not kept: later conversations of the thread will not see it', {
      event_type: THREAD_TURN_UNSAVED_EVENT,
      conversation_id: record.conversation_id,
      thread_id: threadId,
      thread_turn: turn.turn,
      error: `${(error as Error).name}: ${(error as Error).message}`,
    });
  }
}

/**
 * The record as exported: every delivery attempt the attempt log kept, with what each receiver answered (the state
 * carries only the short attempts). A log that cannot be read, or not before the S3 writes' own time (`signal`),
 * costs the detail, never the export.
 */
async function withLoggedAttempts(
  record: ConversationRecord,
  signal: AbortSignal | undefined,
): Promise<ConversationRecord> {
  const log = attemptLog();
  if (!log || record.webhook_context.delivery_status === 'not_attempted') return record;
  try {
    return withAttemptLog(record, await log.list(record.conversation_id, signal));
  } catch (error) {
    logger.warn('The delivery attempt log could not be read: the export keeps the short attempts only', {
      conversation_id: record.conversation_id,
      error: `${(error as Error).name}: ${(error as Error).message}`,
    });
    return record;
  }
}

/** RecordOnlyInLogs: neither S3 nor the queue took the record; it is logged whole, once, at ERROR. */
function logUnsaved(state: ConversationState): ExportOutput {
  const record = state.conversation;
  logger.error('Conversation record kept only in this log: S3 and the failed-delivery queue both refused it', {
    event_type: RECORD_UNSAVED_EVENT,
    conversation_id: record.conversation_id,
    export_error: parseTaskError(state.export_error).message,
    queue_error: parseTaskError(state.export_queue_error).message,
    record,
  });
  return {};
}

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
