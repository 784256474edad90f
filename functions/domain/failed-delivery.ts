import type { ConversationRecord, DeliveryAttempt } from './conversation.ts';
import { failedAttemptFromCaught } from './delivery.ts';
import { withDeliveryAttempt } from './lifecycle.ts';
import type { CaughtError } from './task-error.ts';

/**
 * The failed-delivery envelope: everything needed to deliver and re-export a conversation's result without the
 * original request. One per conversation; every later attempt is appended to it.
 */
export type EnvelopeState = 'pending' | 'dead' | 'delivered';

export interface FailedDeliveryEnvelope {
  version: 1;
  conversation_id: string;
  delivery_id: string;
  webhook_type: string;
  target: string | null;
  conversation: ConversationRecord;
  attempts: DeliveryAttempt[];
  /** pending: the schedule will try again at next_due_at; dead: no more automatic attempts; delivered: done. */
  state: EnvelopeState;
  next_due_at: string | null;
  created_at: string;
  updated_at: string;
  last_error: string | null;
}

/** What the workflow's QueueFailedDelivery state sends (its MessageBody). */
export interface QueuedFailedDelivery {
  kind: 'failed_delivery';
  conversation: ConversationRecord;
  delivery_error: CaughtError;
}

/**
 * Svix's schedule after the first (immediate) attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h.
 * The in-workflow retries count as the immediate attempt.
 */
export const DEFAULT_RETRY_SCHEDULE_MS = [5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000] as const;

export function isQueuedFailedDelivery(value: unknown): value is QueuedFailedDelivery {
  const v = value as QueuedFailedDelivery | null;
  return !!v && typeof v === 'object' && v.kind === 'failed_delivery' && !!v.conversation?.conversation_id && !!v.delivery_error;
}

export function envelopeFromQueuedMessage(
  message: QueuedFailedDelivery,
  now: Date,
  schedule: readonly number[] = DEFAULT_RETRY_SCHEDULE_MS,
): FailedDeliveryEnvelope {
  const record = message.conversation;
  const { attempt, target } = failedAttemptFromCaught(message.delivery_error, record.execution.delivery_attempts.length + 1, now);
  const conversation = withDeliveryAttempt(record, attempt, target, 'failed');
  const permanent = attempt.outcome === 'permanent';
  const firstDelay = schedule[0];
  return {
    version: 1,
    conversation_id: record.conversation_id,
    delivery_id: record.webhook_context.delivery_id,
    webhook_type: record.webhook_context.webhook_type ?? 'general',
    target,
    conversation,
    attempts: conversation.execution.delivery_attempts,
    state: permanent || firstDelay === undefined ? 'dead' : 'pending',
    next_due_at: permanent || firstDelay === undefined ? null : new Date(now.getTime() + firstDelay).toISOString(),
    created_at: now.toISOString(),
    updated_at: now.toISOString(),
    last_error: attempt.error ?? null,
  };
}
