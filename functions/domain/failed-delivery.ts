import { type LoggedAttempt, nextAttemptNumber, shortAttempt, withoutAttemptDetail } from './attempt-log.ts';
import {
  type ConversationRecord,
  type DeliveryAttempt,
  type ExecutionError,
  fullRecord,
  type RedeliveryContext,
  type StateRecord,
} from './conversation.ts';
import {
  deferredStatus,
  failedAttemptFromCaught,
  isDeferral,
  isLambdaRefusal,
  MAX_RETRY_AFTER_MS,
  withDeferredAttempts,
} from './delivery.ts';
import {
  closingTime,
  completeConversation,
  withDeliveryAttempt,
  withDeliveryStatus,
  withFailure,
} from './lifecycle.ts';
import { type CaughtError, parseTaskError } from './task-error.ts';

/**
 * pending: the schedule tries again at next_due_at; dead: no more automatic attempts (an operator may redrive);
 * settled: nothing is owed any more (delivered, or exported for an envelope that owed only its export). Envelopes
 * written before the name changed say `delivered` for settled: readEnvelope() reads them as settled.
 */
export type EnvelopeState = 'pending' | 'dead' | 'settled';
export type Owed = 'delivery' | 'export';

/**
 * The failed-delivery envelope: everything needed to deliver and re-export a conversation's result without the
 * original request. One per conversation; every later attempt is appended to it. Pure state transitions only:
 * the SQS adapter (AWS) and the file adapter (local) store it, the schedule and operators act on it.
 * An envelope may owe only the export (`owed: "export"`): the conversation ended (delivered, or the agent failed)
 * but S3 could not be written; its redelivery skips Deliver and re-exports the closed record.
 */
export interface FailedDeliveryEnvelope {
  version: 1;
  conversation_id: string;
  delivery_id: string;
  webhook_type: string;
  target: string | null;
  /** The latest conversation record (what the next redelivery delivers and re-exports). */
  conversation: ConversationRecord;
  attempts: DeliveryAttempt[];
  state: EnvelopeState;
  /** What the envelope still owes; absent means the delivery (and the export that follows it). */
  owed?: Owed;
  next_due_at: string | null;
  /** How many slots of the schedule have been used. */
  scheduled_attempts: number;
  created_at: string;
  updated_at: string;
  last_error: string | null;
  /**
   * Why the envelope is dead: a permanent answer, the exhausted schedule, MAX_FAILED_RUNS redelivery runs in a row
   * that failed or could not be started (runs_failed), or, last, an operator's redrive of it that failed with a
   * retryable error (redrive_failed; a permanent answer to a redrive is `permanent`). On AWS, an envelope the queue's
   * redrive policy moved to the dead-letter queue still says `pending`: the commands that read it there show it dead
   * (receive_limit).
   */
  dead_reason?: 'permanent' | 'exhausted' | 'runs_failed' | 'redrive_failed' | 'receive_limit';
  /** Redelivery runs of the schedule in a row that failed or could not be started (absent: none since the last that ran). */
  failed_runs?: number;
}

/** What the workflow's QueueFailedDelivery state sends (its MessageBody). */
export interface QueuedFailedDelivery {
  kind: 'failed_delivery';
  /** As the workflow's state carries it (leanRecord); the envelope keeps it whole (fullRecord). */
  conversation: StateRecord;
  delivery_error: CaughtError;
  /** When the delivery failed (DeliveryFailed): the record is closed then, as Export closes its own. */
  closed_at?: string;
  /** The conversation workflow's execution name. */
  execution_name?: string;
}

/**
 * Svix's schedule after the first, immediate attempt: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h (REDELIVERY_SCHEDULE).
 * The in-workflow attempts (with their own short Retry) stand for the immediate one.
 */
export const DEFAULT_REDELIVERY_SCHEDULE = '5s,5m,30m,2h,5h,10h,10h';
export const DEFAULT_RETRY_SCHEDULE_MS: readonly number[] = [
  5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000,
];

const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** Parse "5s,5m,30m,2h,5h,10h,10h" (units ms, s, m, h; a bare number is ms; each wait at least 1 ms). */
export function parseSchedule(text: string | undefined): readonly number[] {
  if (text === undefined || text.trim() === '') return DEFAULT_RETRY_SCHEDULE_MS;
  return text.split(',').map((part) => {
    const m = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$/.exec(part);
    if (!m) throw new Error(`REDELIVERY_SCHEDULE: "${part.trim()}" is not a duration (use e.g. 5s, 5m, 2h)`);
    const ms = Math.round(Number(m[1]) * UNIT_MS[m[2] ?? 'ms']!);
    // A wait of 0 would redeliver to a failing receiver again at once, each attempt spent without waiting.
    if (ms < 1) throw new Error(`REDELIVERY_SCHEDULE: "${part.trim()}" is no wait (each wait is at least 1ms)`);
    return ms;
  });
}

/** What the workflow's QueueFailedExport state sends: the closed record that S3 would not take. */
export interface QueuedFailedExport {
  kind: 'failed_export';
  /** As the workflow's state carries it (leanRecord). */
  conversation: StateRecord;
  export_error: CaughtError;
  execution_name?: string;
}

function isQueuedFailedExport(value: unknown): value is QueuedFailedExport {
  const v = value as QueuedFailedExport | null;
  return (
    !!v && typeof v === 'object' && v.kind === 'failed_export' && !!v.conversation?.conversation_id && !!v.export_error
  );
}

/**
 * How many delivery attempts were made: the last one's number. The envelope keeps the record's attempts, which hold
 * one per Deliver run; each is numbered after every try before it, the workflow's immediate retries included
 * (nextAttemptNumber, attempt-log.ts), so its number counts those too, as `conversations show` does.
 */
export function attemptsMade(envelope: Pick<FailedDeliveryEnvelope, 'attempts'>): number {
  return envelope.attempts.reduce((made, a) => Math.max(made, a.attempt), envelope.attempts.length);
}

/**
 * The envelope with the attempts of its conversation that the attempt log has and it lacks (by number), in the order
 * they were made, as the record's short attempts (withoutAttemptDetail), in `attempts` and in its record alike: the
 * tries before Lambda refused a retry of the workflow's Deliver, and one whose Deliver Lambda failed after it ran, are
 * only in the log (docs/operations.md, "Failed deliveries"). What the schedule and the redrives name a run after
 * (redeliveryExecutionName), and what the lists count. None missing: the envelope itself.
 */
export function withLoggedAttempts<E extends Pick<FailedDeliveryEnvelope, 'conversation_id' | 'attempts'>>(
  envelope: E & { conversation?: ConversationRecord },
  logged: readonly (DeliveryAttempt &
    Partial<Pick<LoggedAttempt, 'conversation_id' | 'delivery_id' | 'webhook_type'>>)[],
): E {
  const own = logged.filter((a) => a.conversation_id === undefined || a.conversation_id === envelope.conversation_id);
  const merged = (attempts: readonly DeliveryAttempt[]): DeliveryAttempt[] | null => {
    const missing = own.filter((a) => !attempts.some((known) => known.attempt === a.attempt));
    if (missing.length === 0) return null;
    return [...attempts, ...missing.map(shortAttempt)].sort(
      (a, b) => a.at.localeCompare(b.at) || a.attempt - b.attempt,
    );
  };
  const attempts = merged(envelope.attempts);
  const conversation = envelope.conversation;
  const recordAttempts = conversation && merged(conversation.execution.delivery_attempts);
  if (!attempts && !recordAttempts) return envelope;
  return {
    ...envelope,
    ...(attempts ? { attempts } : {}),
    ...(conversation && recordAttempts
      ? {
          conversation: {
            ...conversation,
            execution: { ...conversation.execution, delivery_attempts: recordAttempts },
          },
        }
      : {}),
  };
}

/** What an envelope owes (older envelopes have no `owed`: a delivery). */
export function owedBy(envelope: Pick<FailedDeliveryEnvelope, 'owed'>): Owed {
  return envelope.owed ?? 'delivery';
}

function isQueuedFailedDelivery(value: unknown): value is QueuedFailedDelivery {
  const v = value as QueuedFailedDelivery | null;
  return (
    !!v &&
    typeof v === 'object' &&
    v.kind === 'failed_delivery' &&
    !!v.conversation?.conversation_id &&
    !!v.delivery_error
  );
}

/** A stored envelope (a file, a queue message), or null when `value` is not one; the old `delivered` reads as settled. */
export function readEnvelope(value: unknown): FailedDeliveryEnvelope | null {
  const v = value as (Omit<FailedDeliveryEnvelope, 'state'> & { state: EnvelopeState | 'delivered' }) | null;
  if (!v || typeof v !== 'object' || v.version !== 1 || typeof v.conversation_id !== 'string' || !v.conversation)
    return null;
  // Whole since it was made from a message (fullRecord); filled all the same, as every record read from a store is.
  const envelope = { ...v, conversation: fullRecord(v.conversation) };
  return envelope.state === 'delivered' ? { ...envelope, state: 'settled' } : (envelope as FailedDeliveryEnvelope);
}

function dueAt(now: Date, delayMs: number, attempt: DeliveryAttempt | undefined): string {
  // Capped where it is read (retryAfterMs); an attempt stored before that is capped here.
  const retryAfter = Math.min(attempt?.retry_after_ms ?? 0, MAX_RETRY_AFTER_MS);
  return new Date(now.getTime() + Math.max(delayMs, retryAfter)).toISOString();
}

/** The envelope's last_error for an export S3 refused. */
function exportErrorText(caught: CaughtError): string {
  const error = parseTaskError(caught);
  return `export: ${error.error}: ${error.message}`;
}

/** `delayMs` from now, as an envelope's next_due_at. */
function dueIn(now: Date, delayMs: number): string {
  return new Date(now.getTime() + delayMs).toISOString();
}

/** What every new envelope starts with: its conversation's identity and record, no scheduled attempt yet. */
function newEnvelope(conversation: ConversationRecord, now: Date) {
  return {
    version: 1 as const,
    conversation_id: conversation.conversation_id,
    delivery_id: conversation.webhook_context.delivery_id,
    webhook_type: conversation.webhook_context.webhook_type ?? 'general',
    conversation,
    attempts: conversation.execution.delivery_attempts,
    scheduled_attempts: 0,
    created_at: now.toISOString(),
    updated_at: now.toISOString(),
  };
}

/** The envelope for a delivery that just failed inside the conversation workflow. */
export function envelopeFromQueuedMessage(
  message: QueuedFailedDelivery,
  now: Date,
  schedule: readonly number[] = DEFAULT_RETRY_SCHEDULE_MS,
): FailedDeliveryEnvelope {
  const record = fullRecord(message.conversation);
  if (isDeferral(message.delivery_error)) return envelopeForDeferral(message, now, schedule);
  if (isLambdaRefusal(message.delivery_error.Error)) return envelopeForRefusal(message, now, schedule);
  // Closed when the delivery failed (DeliveryFailed), as the workflow's Export closes its own copy (closeConversation):
  // a redelivery re-exports this record, which keeps what the first export had (its close, the Deliver failure).
  const closedAt = closingTime(message.closed_at, now);
  const { attempt, target } = failedAttemptFromCaught(
    message.delivery_error,
    record.execution.delivery_attempts.length + 1,
    closedAt,
  );
  const permanent = attempt.outcome === 'permanent';
  const firstDelay = schedule[0];
  const dead = permanent || firstDelay === undefined;
  const conversation = completeConversation(
    withFailure(
      withDeliveryAttempt(record, attempt, target, dead ? 'failed' : 'retrying'),
      'Deliver',
      parseTaskError(message.delivery_error),
      closedAt,
    ),
    false,
    message.execution_name ?? null,
    closedAt,
  );
  return {
    ...newEnvelope(conversation, now),
    target,
    state: dead ? 'dead' : 'pending',
    next_due_at: dead ? null : dueAt(now, firstDelay, attempt),
    last_error: attempt.error ?? null,
    ...(dead ? { dead_reason: permanent ? ('permanent' as const) : ('exhausted' as const) } : {}),
  };
}

/**
 * No attempt was made by the last try (the caller's deadline, a held receiver): the envelope waits for the first slot
 * with the attempts its earlier tries made, if any (withDeferredAttempts).
 */
function envelopeForDeferral(
  message: QueuedFailedDelivery,
  now: Date,
  schedule: readonly number[],
): FailedDeliveryEnvelope {
  const failure = parseTaskError(message.delivery_error);
  const conversation = completeConversation(
    withDeliveryStatus(
      withDeferredAttempts(fullRecord(message.conversation), message.delivery_error),
      deferredStatus(message.delivery_error),
    ),
    false,
    message.execution_name ?? null,
    closingTime(message.closed_at, now),
  );
  return {
    ...newEnvelope(conversation, now),
    target: typeof failure.payload?.target === 'string' ? failure.payload.target : null,
    state: 'pending',
    next_due_at: dueIn(now, schedule[0] ?? 0),
    last_error: `deferred: ${failure.message}`,
  };
}

/**
 * Lambda did not run Deliver (LAMBDA_REFUSALS): no attempt was made by it, so none is recorded (the attempt log keeps
 * any its earlier tries made, which the export shows); the record closed as the workflow's Export closes it, the
 * refusal in its errors and the delivery `retrying`, waiting for the first slot.
 */
function envelopeForRefusal(
  message: QueuedFailedDelivery,
  now: Date,
  schedule: readonly number[],
): FailedDeliveryEnvelope {
  const closedAt = closingTime(message.closed_at, now);
  const failure = parseTaskError(message.delivery_error);
  const conversation = completeConversation(
    withFailure(withDeliveryStatus(fullRecord(message.conversation), 'retrying'), 'Deliver', failure, closedAt),
    false,
    message.execution_name ?? null,
    closedAt,
  );
  return {
    ...newEnvelope(conversation, now),
    target: conversation.webhook_context.delivery_target ?? null,
    state: 'pending',
    next_due_at: dueIn(now, schedule[0] ?? 0),
    last_error: `Lambda did not run Deliver (${failure.error}: ${failure.message}); no attempt was made`,
  };
}

/** The envelope for an export that S3 refused at the end of the conversation workflow: only the export is owed. */
export function envelopeFromQueuedExport(
  message: QueuedFailedExport,
  now: Date,
  schedule: readonly number[] = DEFAULT_RETRY_SCHEDULE_MS,
): FailedDeliveryEnvelope {
  const record = fullRecord(message.conversation);
  return {
    ...newEnvelope(record, now),
    target: record.webhook_context.delivery_target ?? null,
    // An export is always worth retrying: it goes on until it is written (or an operator gives up).
    state: 'pending',
    owed: 'export',
    next_due_at: dueIn(now, schedule[0] ?? 0),
    last_error: exportErrorText(message.export_error),
  };
}

/** A queued message (either kind) → its envelope, or null when it is neither. */
export function envelopeFromMessage(
  value: unknown,
  now: Date,
  schedule: readonly number[] = DEFAULT_RETRY_SCHEDULE_MS,
): FailedDeliveryEnvelope | null {
  if (isQueuedFailedDelivery(value)) return envelopeFromQueuedMessage(value, now, schedule);
  if (isQueuedFailedExport(value)) return envelopeFromQueuedExport(value, now, schedule);
  return null;
}

export function isDue(envelope: FailedDeliveryEnvelope, now: Date): boolean {
  return (
    envelope.state === 'pending' && envelope.next_due_at !== null && Date.parse(envelope.next_due_at) <= now.getTime()
  );
}

/** The context a redelivery execution runs with: whether a failure now ends the automatic attempts. */
export function redeliveryContext(
  envelope: FailedDeliveryEnvelope,
  via: RedeliveryContext['via'],
  schedule: readonly number[] = DEFAULT_RETRY_SCHEDULE_MS,
): RedeliveryContext {
  const lastSlot = envelope.scheduled_attempts + 1 >= schedule.length;
  // A resend is one more attempt of a delivered conversation: nothing automatic follows it.
  const noMoreAutomatic = via === 'schedule' ? lastSlot : via === 'resend' || envelope.state === 'dead';
  const context: RedeliveryContext = { via, status_if_failed: noMoreAutomatic ? 'failed' : 'retrying' };
  return owedBy(envelope) === 'export' ? { ...context, export_only: true } : context;
}

/** A record, whole or as the workflow's state carries it (leanRecord: its empty lists left out). */
function isRecord(value: unknown): value is StateRecord {
  const v = value as StateRecord | null;
  return (
    !!v &&
    typeof v === 'object' &&
    typeof v.conversation_id === 'string' &&
    !!v.webhook_context &&
    !!v.execution &&
    typeof v.execution === 'object'
  );
}

/**
 * What a SUCCEEDED redelivery execution returned: the record its Export wrote (state Redelivered), or, when S3
 * refused it (state RedeliveredWithoutExport), `{conversation, export_error}`. Null for anything else.
 */
export function readRedeliveryOutput(
  output: unknown,
): { record: ConversationRecord; exportError?: CaughtError } | null {
  if (isRecord(output)) return { record: fullRecord(output) };
  const o = output as { conversation?: unknown; export_error?: CaughtError } | null;
  if (o && typeof o === 'object' && isRecord(o.conversation) && o.export_error)
    return { record: fullRecord(o.conversation), exportError: o.export_error };
  return null;
}

/**
 * A SUCCEEDED redelivery execution's output folded into its envelope (what both adapters store), or why the run
 * counts as one that did not succeed: its output cannot be used, or Lambda did not run its Deliver (deliverRefused).
 * A refused run of the schedule comes with its envelope as a failed run (withFailedRun: no slot used, back in a
 * minute, dead after MAX_FAILED_RUNS in a row), carrying the record its Export wrote (the refusal noted, no attempt);
 * an operator's changes nothing, as any of its runs that did not succeed.
 */
export function settleRedelivery(
  envelope: FailedDeliveryEnvelope,
  output: unknown,
  via: RedeliveryContext['via'],
  now: Date,
  schedule: readonly number[] = DEFAULT_RETRY_SCHEDULE_MS,
):
  | { ok: true; record: ConversationRecord; updated: FailedDeliveryEnvelope }
  | { ok: false; error: string; updated?: FailedDeliveryEnvelope; refused?: true } {
  const read = readRedeliveryOutput(output);
  if (!read) return { ok: false, error: 'SUCCEEDED without a conversation record as output' };
  const refusal = deliverRefused(envelope, read.record);
  if (refusal) {
    const error = `Lambda did not run Deliver (${refusal.error}: ${refusal.message}); no attempt was made`;
    if (via !== 'schedule') return { ok: false, error, refused: true };
    const noted = { ...envelope, conversation: read.record, attempts: read.record.execution.delivery_attempts };
    return { ok: false, error, updated: withFailedRun(noted, error, now), refused: true };
  }
  return {
    ok: true,
    record: read.record,
    updated: applyRedelivery(envelope, read.record, via, now, schedule, read.exportError),
  };
}

/**
 * Fold a redelivery's result (the record its Export wrote) into the envelope.
 * Delivered (or exported, for an envelope that owed only that) → settled; but when S3 refused the record
 * (`exportError`), the envelope stays pending, owing only the export.
 * A permanent answer → dead. A scheduled attempt that used the last slot → dead (exhausted);
 * otherwise the next slot (or the receiver's Retry-After, if later). An operator's redrive that failed leaves the
 * schedule as it was; a dead envelope it failed on says so (dead_reason redrive_failed).
 */
export function applyRedelivery(
  envelope: FailedDeliveryEnvelope,
  record: ConversationRecord,
  via: RedeliveryContext['via'],
  now: Date,
  schedule: readonly number[] = DEFAULT_RETRY_SCHEDULE_MS,
  exportError?: CaughtError,
): FailedDeliveryEnvelope {
  const next = applyAttempt(envelope, record, via, now, schedule);
  if (!exportError || next.state !== 'settled') return next;
  // Nothing more to deliver, but S3 refused the record: the envelope goes on, owing only its export.
  const slot = schedule[Math.min(next.scheduled_attempts, schedule.length - 1)] ?? 0;
  return {
    ...next,
    state: 'pending',
    owed: 'export',
    next_due_at: dueIn(now, slot),
    last_error: exportErrorText(exportError),
  };
}

function applyAttempt(
  envelope: FailedDeliveryEnvelope,
  record: ConversationRecord,
  via: RedeliveryContext['via'],
  now: Date,
  schedule: readonly number[],
): FailedDeliveryEnvelope {
  const attempt = record.execution.delivery_attempts.at(-1);
  // The run succeeded: the failed runs before it no longer count.
  const { failed_runs: _failedRuns, ...ran } = envelope;
  const base: FailedDeliveryEnvelope = {
    ...ran,
    conversation: record,
    attempts: record.execution.delivery_attempts,
    updated_at: now.toISOString(),
    last_error: attempt?.outcome === 'delivered' ? envelope.last_error : (attempt?.error ?? envelope.last_error),
  };
  // Its Deliver refused the answer (one Classify would have refused) and its Export wrote the conversation as failed:
  // there is nothing to deliver (its envelope was queued before its Export refused the answer: Classify had failed, then
  // Lambda did not run Deliver, docs/contract.md).
  if (record.execution.status === 'failed' && record.webhook_context.delivery_status === 'not_attempted')
    return { ...base, state: 'settled', next_due_at: null };
  if (heldBack(envelope, record)) {
    // No attempt was made (the receiver is paused, disabled, failing with a probe under way, or at its rate): no
    // slot of the schedule is used, and the schedule looks again shortly.
    return {
      ...base,
      last_error: envelope.last_error,
      next_due_at:
        envelope.state === 'pending' && via === 'schedule' ? dueIn(now, HELD_RECHECK_MS) : envelope.next_due_at,
    };
  }
  const used = via === 'schedule' ? envelope.scheduled_attempts + 1 : envelope.scheduled_attempts;
  // The run succeeded, so its Export wrote the record: an envelope that owed only that is settled.
  if (owedBy(envelope) === 'export' || record.webhook_context.delivery_status === 'delivered') {
    return { ...base, scheduled_attempts: used, state: 'settled', next_due_at: null };
  }
  if (attempt?.outcome === 'permanent')
    return { ...base, scheduled_attempts: used, state: 'dead', next_due_at: null, dead_reason: 'permanent' };
  if (via === 'redrive') {
    // A dead envelope stays dead (no automatic attempt follows an operator's), now because this redrive failed: its
    // old reason (a permanent answer, the exhausted schedule) no longer says what happened last.
    const dead = envelope.state === 'dead' ? { dead_reason: 'redrive_failed' as const } : {};
    return { ...base, state: envelope.state, next_due_at: envelope.next_due_at, ...dead };
  }
  const nextDelay = schedule[used];
  if (nextDelay === undefined)
    return { ...base, scheduled_attempts: used, state: 'dead', next_due_at: null, dead_reason: 'exhausted' };
  return { ...base, scheduled_attempts: used, state: 'pending', next_due_at: dueAt(now, nextDelay, attempt) };
}

/**
 * Redelivery runs in a row that may fail before the schedule gives up on an envelope: the scheduler's allowance
 * (docs/deploy.md, "Failed deliveries on AWS"). Waiting for a due time never uses any of it.
 */
export const MAX_FAILED_RUNS = 5;
/** The wait after a failed run, doubled after each: 1, 2, 4, 8 minutes (SQS can delay a message up to 15). */
const FAILED_RUN_WAIT_MS = 60_000;

/**
 * A redelivery run of the schedule that did not succeed (the execution FAILED or TIMED_OUT, its output was unusable,
 * Step Functions could not start it, or Lambda would not run its Deliver: deliverRefused): no slot of the schedule is
 * used and no attempt was recorded, so the envelope comes back shortly, later after each failure; the
 * MAX_FAILED_RUNS-th failure in a row makes it dead (runs_failed).
 */
export function withFailedRun(envelope: FailedDeliveryEnvelope, error: string, now: Date): FailedDeliveryEnvelope {
  const failedRuns = (envelope.failed_runs ?? 0) + 1;
  const base: FailedDeliveryEnvelope = {
    ...envelope,
    failed_runs: failedRuns,
    updated_at: now.toISOString(),
    last_error: `redelivery run failed: ${error}`,
  };
  if (failedRuns >= MAX_FAILED_RUNS)
    return givenUp({ ...base, state: 'dead', next_due_at: null, dead_reason: 'runs_failed' }, error, now);
  return { ...base, next_due_at: dueIn(now, FAILED_RUN_WAIT_MS * 2 ** (failedRuns - 1)) };
}

/** The error a record keeps when the schedule gave its delivery up because its redelivery runs kept failing. */
const RUNS_FAILED_ERROR = 'RedeliveryRunsFailed';

/**
 * A delivery the schedule gives up on after MAX_FAILED_RUNS failed runs in a row: no run got as far as its Export, so
 * its record now says so itself (delivery `failed`, and why and when in its errors), and the scheduler writes it where
 * users read it (publishGivenUp, functions/shared/given-up.ts). An envelope owing only its export keeps its record:
 * what the scheduler writes in its place (delivered, say).
 */
function givenUp(envelope: FailedDeliveryEnvelope, error: string, now: Date): FailedDeliveryEnvelope {
  if (owedBy(envelope) === 'export') return envelope;
  const failure = {
    error: RUNS_FAILED_ERROR,
    message: `no more automatic attempts: ${MAX_FAILED_RUNS} redelivery runs in a row failed (the last: ${error}); deliveries redrive ${envelope.conversation_id} tries it again`,
    payload: null,
  };
  const conversation = withFailure(
    withDeliveryStatus(envelope.conversation, 'failed'),
    'RedeliverySchedule',
    failure,
    now,
  );
  return { ...envelope, conversation };
}

/**
 * The record of a delivery given up (givenUp) whose attempt log shows it delivered after all (the last run delivered,
 * then failed in its Export): delivered, with that attempt, without the give-up. What its export and status say.
 */
export function deliveredAfterAll(record: ConversationRecord, attempt: DeliveryAttempt): ConversationRecord {
  const { request, response: _r, execution_name: _e, ...short } = attempt;
  const errors = record.execution.errors.filter((e) => e.error !== RUNS_FAILED_ERROR);
  const kept = { ...record, execution: { ...record.execution, errors } };
  return withDeliveryAttempt(kept, short, request?.url ?? null, 'delivered');
}

/**
 * The record of a delivery the schedule has just given up on (givenUp), or of an export it gave up on (the record as
 * it ended: delivered, say, then each run's Export failed), to be written where users read it; else null. One no
 * Export closed (its first run's failed too, so it went to the schedule `in_progress`) is closed as Export would have,
 * as of its run's last attempt.
 */
export function givenUpRecord(envelope: FailedDeliveryEnvelope): ConversationRecord | null {
  if (envelope.state !== 'dead' || envelope.dead_reason !== 'runs_failed') return null;
  const record = envelope.conversation;
  const lastAttempt = record.execution.delivery_attempts.at(-1)?.at;
  if (record.execution.completed_at !== null || !lastAttempt) return record;
  return completeConversation(record, false, null, new Date(lastAttempt));
}

/**
 * A redelivery run that delivered (its Deliver state's output says so) and then did not succeed (its Export failed
 * past CloseWithoutExport, or its time ran out): the receiver has the answer, so the envelope now owes only the
 * export of `delivered`, the record as Deliver left it. It is counted as a failed run (withFailedRun), whatever
 * started it: back in a minute, later after each failure. Its next run skips Deliver, so the receiver is not sent
 * it again (docs/operations.md, "Failed deliveries").
 */
export function withUnexportedDelivery(
  envelope: FailedDeliveryEnvelope,
  delivered: ConversationRecord,
  error: string,
  now: Date,
): FailedDeliveryEnvelope {
  const { dead_reason: _dead, ...alive } = envelope;
  const failed = withFailedRun({ ...alive, state: 'pending' }, error, now);
  return {
    ...failed,
    conversation: delivered,
    attempts: delivered.execution.delivery_attempts,
    owed: 'export',
    last_error: `export: the redelivery run failed after it delivered: ${error}`,
  };
}

/**
 * An envelope whose conversation the attempt log shows delivered (`attempt`: by another copy of the envelope, or by a
 * Deliver whose result never reached its workflow), while the record it carries, and so the export, still says
 * otherwise: nothing is sent again, but the envelope now owes the export of its record with that attempt, delivered
 * (docs/operations.md, "Failed deliveries").
 */
export function withLoggedDelivery(
  envelope: FailedDeliveryEnvelope,
  attempt: DeliveryAttempt,
  now: Date,
): FailedDeliveryEnvelope {
  const { request, response: _r, execution_name: _e, ...short } = attempt;
  const conversation = withDeliveryAttempt(envelope.conversation, short, request?.url ?? null, 'delivered');
  return {
    ...envelope,
    conversation,
    attempts: conversation.execution.delivery_attempts,
    owed: 'export',
    updated_at: now.toISOString(),
  };
}

/**
 * A conversation whose delivery failed and whose envelope the failed-delivery queue refused (its QueueFailedDelivery
 * error): nothing holds it for a later attempt, so a resend is how it is delivered (docs/operations.md).
 */
export function deliveryNeverQueued(record: ConversationRecord): boolean {
  return (
    record.webhook_context.delivery_status !== 'delivered' &&
    record.execution.errors.some((e) => e.stage === 'QueueFailedDelivery')
  );
}

/**
 * Why a conversation cannot be resent (one more delivery of a conversation already delivered, under its delivery
 * id), or null when it can: it needs an answer, and no delivery still owed (that is a redrive's job).
 */
export function resendRefusal(record: ConversationRecord, envelope: FailedDeliveryEnvelope | null): string | null {
  const id = record.conversation_id;
  if (record.execution.status === 'failed' || record.webhook_context.delivery_status === 'not_attempted')
    return `${id} has no answer to deliver (its agent failed)`;
  if (envelope && envelope.state !== 'settled' && owedBy(envelope) === 'delivery')
    return `${id} is not delivered yet (${envelope.state} in the failed-delivery store): redrive it instead (deliveries redrive ${id})`;
  return null;
}

/**
 * A resend as the Redeliver port takes it: an envelope that owes nothing (it is never stored), carrying the record;
 * its execution is named like a redelivery, after the conversation.
 */
export function resendEnvelope(record: ConversationRecord, now: Date): FailedDeliveryEnvelope {
  return {
    ...newEnvelope(withoutAttemptDetail(record), now),
    target: record.webhook_context.delivery_target,
    state: 'settled',
    next_due_at: null,
    last_error: null,
  };
}

/**
 * What `deliveries redrive --all` (and the console's "recover failed since") would redrive: every envelope that still
 * owes something, created at or after `since` (epoch ms), of one webhook type if given, oldest first.
 */
export function redriveCandidates<E extends Pick<FailedDeliveryEnvelope, 'state' | 'created_at' | 'webhook_type'>>(
  envelopes: readonly E[],
  filter: { since: number | null; type?: string | null | undefined },
): E[] {
  return envelopes
    .filter(
      (e) =>
        e.state !== 'settled' &&
        (filter.since === null || Date.parse(e.created_at) >= filter.since) &&
        (!filter.type || e.webhook_type === filter.type),
    )
    .sort((a, b) => a.created_at.localeCompare(b.created_at));
}

/**
 * Lambda's refusal to run a redelivery's Deliver (LAMBDA_REFUSALS), as the run's Export noted it: the record's last
 * error, new in this run, with no attempt added (closeConversation records none); null for any other run. The
 * receiver was sent nothing (rarely, Lambda failed the invocation after Deliver ran: its attempt is then in the attempt
 * log, which the next run reads, as after a failed run), so the run uses no slot of the schedule and never dead-letters
 * the envelope on its own: it counts as a failed run (settleRedelivery), whose count bounds a Lambda that refuses for
 * ever.
 */
function deliverRefused(envelope: FailedDeliveryEnvelope, record: ConversationRecord): ExecutionError | null {
  // Delivered, or nothing to deliver any more (its Export refused the answer still pending: applyAttempt settles it).
  const status = record.webhook_context.delivery_status;
  if (owedBy(envelope) !== 'delivery' || status === 'delivered' || status === 'not_attempted') return null;
  if (record.execution.delivery_attempts.length !== envelope.attempts.length) return null;
  if (record.execution.errors.length <= envelope.conversation.execution.errors.length) return null;
  const last = record.execution.errors.at(-1);
  return last?.stage === 'Deliver' && isLambdaRefusal(last.error) ? last : null;
}

/** When the schedule looks again at a redelivery whose receiver was held back. */
const HELD_RECHECK_MS = 60_000;

/** A redelivery of an owed delivery that made no attempt and did not deliver: its receiver held it back. */
export function heldBack(envelope: FailedDeliveryEnvelope, record: ConversationRecord): boolean {
  return (
    owedBy(envelope) === 'delivery' &&
    record.webhook_context.delivery_status !== 'delivered' &&
    record.execution.delivery_attempts.length === envelope.attempts.length
  );
}

/**
 * `<conversation_id>-redelivery-<n>-<suffix>`: each redelivery's execution is named after its conversation and the
 * number its attempt will have.
 */
export function redeliveryExecutionName(envelope: FailedDeliveryEnvelope, suffix: string): string {
  return `${envelope.conversation_id}-redelivery-${nextAttemptNumber(envelope.conversation)}-${suffix}`.slice(0, 80);
}
