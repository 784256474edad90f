import type { SFNClient } from '@aws-sdk/client-sfn';
import { isDue } from '../domain/failed-delivery.ts';
import {
  type QueuedEnvelope,
  REDELIVERY_VISIBILITY_SECONDS,
  type SqsFailedDeliveryQueue,
} from '../shared/failed-delivery-queue.ts';
import { runRedelivery } from '../shared/redelivery-execution.ts';

export interface SweepLog {
  info(message: string, ...extra: Record<string, unknown>[]): void;
  warn(message: string, ...extra: Record<string, unknown>[]): void;
  error(message: string, ...extra: Record<string, unknown>[]): void;
}

export interface SweepOptions {
  queue: SqsFailedDeliveryQueue;
  sfn: SFNClient;
  stateMachineArn: string;
  /** Milliseconds left before the Lambda is stopped (context.getRemainingTimeInMillis). */
  remainingMs: () => number;
  /** Stop receiving when less than this is left: one batch's redeliveries must finish in it. */
  reserveMs: number;
  log: SweepLog;
  now?: () => Date;
  suffix?: () => string;
}

export interface SweepSummary {
  received: number;
  redelivered: number;
  delivered: number;
  dead_lettered: number;
  rescheduled: number;
  waiting: number;
  failed_executions: number;
  errors: number;
  unreadable: number;
  duplicates: number;
  stopped_by_time_budget: boolean;
}

type Outcome =
  | 'delivered'
  | 'dead_lettered'
  | 'rescheduled'
  | 'waiting'
  | 'failed_executions'
  | 'errors'
  | 'duplicates';

/**
 * One run of the automatic schedule on AWS (the counterpart of LocalRedelivery.runDue): receive batches from the
 * failed-delivery queue until it is empty or the time budget is spent; redeliver each due envelope once through the
 * redelivery workflow and store the result (delivered → deleted, dead → dead-letter queue, pending → re-sent with
 * its next wait); hide the others until they are due. A received message is invisible to other consumers, so two
 * overlapping runs never redeliver the same envelope at once. A FAILED run leaves its message to come back.
 */
export async function sweep(options: SweepOptions): Promise<SweepSummary> {
  const { queue, log } = options;
  const now = options.now ?? (() => new Date());
  const summary: SweepSummary = {
    received: 0,
    redelivered: 0,
    delivered: 0,
    dead_lettered: 0,
    rescheduled: 0,
    waiting: 0,
    failed_executions: 0,
    errors: 0,
    unreadable: 0,
    duplicates: 0,
    stopped_by_time_budget: false,
  };
  const seen = new Set<string>();

  async function handle(item: QueuedEnvelope): Promise<Outcome> {
    const { envelope } = item;
    const id = envelope.conversation_id;
    // A second message for a conversation handled in this run (an at-least-once duplicate, or one re-sent due at
    // once) waits for the next run.
    if (seen.has(id)) return 'duplicates';
    seen.add(id);
    if (envelope.state === 'delivered') {
      await queue.delete(item);
      return 'delivered';
    }
    if (envelope.state === 'dead') {
      await queue.deadLetter(item, envelope);
      log.info('Failed delivery dead-lettered', {
        conversation_id: id,
        dead_reason: envelope.dead_reason,
        attempts: envelope.attempts.length,
      });
      return 'dead_lettered';
    }
    if (!isDue(envelope, now())) {
      await queue.wait(item, now());
      return 'waiting';
    }
    summary.redelivered += 1;
    const run = await runRedelivery(options.sfn, options.stateMachineArn, envelope, 'schedule', {
      schedule: queue.schedule,
      now,
      ...(options.suffix ? { suffix: options.suffix() } : {}),
    });
    if (!run.ok) {
      log.warn('Redelivery execution did not succeed; the message comes back after its visibility timeout', {
        conversation_id: id,
        execution_name: run.execution_name,
        error: run.error,
      });
      return 'failed_executions';
    }
    const updated = run.updated;
    const fields = {
      conversation_id: id,
      execution_name: run.execution_name,
      state: updated.state,
      attempts: updated.attempts.length,
    };
    if (updated.state === 'delivered') {
      await queue.delete(item);
      log.info('Redelivered', fields);
      return 'delivered';
    }
    if (updated.state === 'dead') {
      await queue.deadLetter(item, updated);
      log.info('Redelivery failed; no more automatic attempts', {
        ...fields,
        dead_reason: updated.dead_reason,
        last_error: updated.last_error,
      });
      return 'dead_lettered';
    }
    await queue.resend(item, updated, now());
    log.info('Redelivery failed; rescheduled', {
      ...fields,
      next_due_at: updated.next_due_at,
      last_error: updated.last_error,
    });
    return 'rescheduled';
  }

  for (;;) {
    const remainingMs = options.remainingMs();
    if (remainingMs < options.reserveMs) {
      summary.stopped_by_time_budget = true;
      break;
    }
    // Hidden until this run is over, whatever happens to it: a message is never worked on twice in one run.
    const visibilitySeconds = Math.max(REDELIVERY_VISIBILITY_SECONDS, Math.ceil(remainingMs / 1000) + 30);
    const batch = await queue.receive({ visibilitySeconds }, now());
    if (batch.count === 0) break;
    summary.received += batch.count;
    summary.unreadable += batch.unreadable.length;
    for (const m of batch.unreadable) {
      log.warn('Unreadable failed-delivery message left in the queue (its redrive policy dead-letters it)', {
        message_id: m.messageId,
        receive_count: m.receiveCount,
        reason: m.reason,
      });
    }
    const outcomes = await Promise.all(
      batch.envelopes.map((item) =>
        handle(item).catch((error: Error): Outcome => {
          log.error('Failed-delivery message not processed; it comes back after its visibility timeout', {
            conversation_id: item.envelope.conversation_id,
            message_id: item.messageId,
            error: `${error.name}: ${error.message}`,
          });
          return 'errors';
        }),
      ),
    );
    for (const outcome of outcomes) summary[outcome] += 1;
  }
  log.info('Redelivery sweep finished', { summary });
  return summary;
}
