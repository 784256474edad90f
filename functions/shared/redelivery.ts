/**
 * The failed-delivery port, and the two things done through it, written once for both adapters: the automatic
 * schedule (runSchedule) and the redelivery of one held envelope (redeliverHeld, which operator redrives use too).
 * Adapters: SqsFailedDeliveryQueue (functions/shared/failed-delivery-queue.ts, AWS) and LocalFailedDeliveryStore
 * (local/store/failed-delivery-store.ts, JSON files). How one redelivery runs is the other port, `Redeliver`: a
 * StartSyncExecution of the redelivery workflow on AWS (redelivery-execution.ts), the local engine locally.
 */
import {
  type ConversationRecord,
  type DeliveryAttempt,
  type RedeliveryContext,
  WEBHOOK_TYPES,
  type WebhookType,
} from '../domain/conversation.ts';
import { isLambdaRefusal } from '../domain/delivery.ts';
import {
  type BreakerPolicy,
  type Endpoint,
  endpointView,
  gateDelivery,
  type HoldReason,
  heldBackReason,
  holdRecheckMs,
} from '../domain/endpoints.ts';
import {
  type FailedDeliveryEnvelope,
  givenUpRecord,
  heldBack,
  isDue,
  owedBy,
  resendEnvelope,
  withFailedRun,
  withLoggedAttempts,
  withLoggedDelivery,
} from '../domain/failed-delivery.ts';
import { type EndpointStore, receiverFileUnreadable } from './endpoint-store.ts';

/** An envelope a worker holds: no one else works on it until it is stored, waits or is left. */
export interface HeldEnvelope {
  readonly envelope: FailedDeliveryEnvelope;
}

/** Something the store holds that is not an envelope (an unreadable queue message). */
export interface UnreadableItem {
  messageId: string;
  receiveCount: number;
  reason: string;
}

export interface TakenBatch<H extends HeldEnvelope> {
  items: H[];
  unreadable: UnreadableItem[];
  /** Everything taken, both kinds; 0: nothing more for this run. */
  count: number;
}

export interface FailedDeliveryStore<H extends HeldEnvelope = HeldEnvelope> {
  /** The waits between automatic attempts (REDELIVERY_SCHEDULE). */
  readonly schedule: readonly number[];
  /**
   * The next envelopes for the schedule, each held for the caller for `holdSeconds` at least. `seen`: the
   * conversations this run already handled, which an adapter without visibility timeouts must not return again.
   */
  take(options: {
    holdSeconds: number;
    now: Date;
    seen: ReadonlySet<string>;
    /**
     * Whether an envelope would only be held back in this run (ScheduleGate.holdsAll): an adapter that can tell from
     * what it keeps of an envelope, without reading it, leaves such envelopes where they are (the local store, which
     * is looked through every second); the SQS queue hands them out, and they wait as fresh delayed messages.
     */
    heldBack?: (envelope: Pick<FailedDeliveryEnvelope, 'webhook_type' | 'owed'>, now: Date) => Promise<boolean>;
  }): Promise<TakenBatch<H>>;
  /** Keep the envelope's new state and let it go: settled needs nothing more, dead waits for an operator. */
  store(item: H, updated: FailedDeliveryEnvelope, now: Date): Promise<void>;
  /** A pending envelope that is not due yet (or whose receiver is held back): back until it is, or until `until`. */
  wait(item: H, now: Date, until?: Date): Promise<unknown>;
  /** Not handled now (an operator's redelivery run failed): it comes back later, unchanged. */
  leave(item: H): Promise<void>;
}

/**
 * What one redelivery run gave: the envelope updated by its result, or why the run did not succeed (without an
 * execution name when it could not be started).
 */
export type RedeliveryRun =
  | { ok: true; execution_name: string; record: ConversationRecord; updated: FailedDeliveryEnvelope }
  | {
      ok: false;
      execution_name?: string;
      status: string;
      error: string;
      /** The envelope as a run that delivered before it failed left it (owing only the export): stored as it is. */
      updated?: FailedDeliveryEnvelope;
      /**
       * The execution SUCCEEDED, but Lambda would not run its Deliver (settleRedelivery): the receiver was sent nothing.
       * A failed run of its envelope all the same; the schedule counts it as `refused_runs`, not `failed_executions`.
       */
      refused?: true;
      /**
       * Cut short, to be finished later (the local gateway's data folder refused a write: local/engine/redelivery.ts),
       * not a failed run: its envelope is left as it was, not written again.
       */
      cut?: true;
    };

/** One redelivery of one envelope through the redelivery workflow. */
export type Redeliver = (envelope: FailedDeliveryEnvelope, via: RedeliveryContext['via']) => Promise<RedeliveryRun>;

export interface RedeliveryResult {
  conversation_id: string;
  /** skipped: another worker took it meanwhile; held: the receiver held it back (paused, disabled, failing, its rate). */
  status: 'delivered' | 'failed' | 'held' | 'already_delivered' | 'not_found' | 'skipped' | 'error';
  execution_name?: string;
  envelope?: FailedDeliveryEnvelope;
  /** The record as the redelivery exported it (resend). */
  record?: ConversationRecord;
  error?: string;
  /** held: why, as its receiver reads right after (heldBackReason); absent when it could not be read. */
  held_by?: string;
  /**
   * error, but its execution ended (SUCCEEDED: Lambda would not run its Deliver, or its output could not be used):
   * nothing of it is in flight.
   */
  ended?: true;
  /** error: Lambda would not run its Deliver (RedeliveryRun's `refused`). */
  refused?: true;
}

/**
 * A held result with why its receiver held it back (`held_by`: heldBackReason of the receiver read after the run):
 * what `deliveries redrive | resend` (locally through the gateway, and with --aws) and the console's buttons say. A
 * pending delivery is the schedule's again once its receiver takes deliveries; a dead-lettered one or a resend is not,
 * which it says. Any other result, or a receiver that cannot be read, is returned as it is.
 */
export async function withHeldReason(
  result: RedeliveryResult,
  store: Pick<EndpointStore, 'get'>,
  policy: BreakerPolicy,
  now: Date,
): Promise<RedeliveryResult> {
  const type = result.envelope?.webhook_type ?? result.record?.webhook_context.webhook_type;
  if (result.status !== 'held' || !type || !WEBHOOK_TYPES.includes(type as WebhookType)) return result;
  const endpoint = await store.get(type as WebhookType).catch(() => null);
  if (!endpoint) return result;
  const reason = heldBackReason(endpointView(endpoint, null, policy, null, null, now), now);
  if (result.envelope?.state === 'pending') return { ...result, held_by: reason };
  const what = result.envelope ? 'a dead-lettered delivery' : 'a resend';
  return { ...result, held_by: `${reason}; ${what} is not tried again by itself: run this again then` };
}

/**
 * Redeliver a held envelope once and store the result (settled, dead, or pending with its next slot). A run of the
 * schedule that did not succeed, or could not be started, is stored as a failed run (withFailedRun: back in a few
 * minutes, dead after MAX_FAILED_RUNS in a row), so that the store's own redelivery limits never count it; an
 * operator's run that did not succeed changes nothing: the envelope is left to come back, and an error starting it
 * is thrown to the operator. A run cut short (`cut`) leaves the envelope as it was, unwritten, whoever ran it.
 */
export async function redeliverHeld<H extends HeldEnvelope>(
  store: Pick<FailedDeliveryStore<H>, 'store' | 'leave'>,
  item: H,
  redeliver: Redeliver,
  via: RedeliveryContext['via'],
  now: () => Date,
): Promise<RedeliveryResult> {
  const id = item.envelope.conversation_id;
  const run =
    via === 'schedule'
      ? await redeliver(item.envelope, via).catch(
          (error: Error): RedeliveryRun => ({
            ok: false,
            status: 'NOT_STARTED',
            error: `${error.name}: ${error.message}`,
          }),
        )
      : await redeliver(item.envelope, via);
  if (!run.ok && run.cut) {
    await store.leave(item);
    return {
      conversation_id: id,
      status: 'error',
      execution_name: run.execution_name,
      error: run.error,
      envelope: item.envelope,
    };
  }
  const ended = !run.ok && run.status === 'SUCCEEDED' ? { ended: true as const } : {};
  const refused = !run.ok && run.refused ? { refused: true as const } : {};
  if (!run.ok && (run.updated || via === 'schedule')) {
    const updated = run.updated ?? withFailedRun(item.envelope, run.error, now());
    await store.store(item, updated, now());
    return {
      conversation_id: id,
      status: 'error',
      execution_name: run.execution_name,
      error: run.error,
      envelope: updated,
      ...ended,
      ...refused,
    };
  }
  if (!run.ok) {
    await store.leave(item);
    return {
      conversation_id: id,
      status: 'error',
      execution_name: run.execution_name,
      error: run.error,
      ...ended,
      ...refused,
    };
  }
  await store.store(item, run.updated, now());
  return {
    conversation_id: id,
    status: run.updated.state === 'settled' ? 'delivered' : heldBack(item.envelope, run.record) ? 'held' : 'failed',
    execution_name: run.execution_name,
    envelope: run.updated,
  };
}

/** Whether a due envelope's receiver may be tried now; a held one waits until `until` without using a slot. */
export type ScheduleGate = ((
  envelope: FailedDeliveryEnvelope,
  now: Date,
) => Promise<{ hold: false } | { hold: true; until: Date; reason: HoldReason }>) & {
  /**
   * True when every envelope of this type and debt is held in this run whatever else the run meets (its receiver is
   * paused, disabled, or failing while another delivery holds the probe), told from those two fields alone.
   */
  holdsAll?: (envelope: Pick<FailedDeliveryEnvelope, 'webhook_type' | 'owed'>, now: Date) => Promise<boolean>;
};

/**
 * The schedule's gate over the endpoint store: a paused or disabled receiver (or one whose local file is damaged)
 * holds every envelope of its type; a failing one lets one envelope per run through as its probe (Deliver then takes
 * the probe lease, so there is one at a time across runs and workflows) and holds the others until the probe may run
 * again. Each type is read once per run.
 */
export function endpointGate(store: EndpointStore, policy: BreakerPolicy): ScheduleGate {
  const endpoints = new Map<WebhookType, Promise<Endpoint | 'unreadable' | null>>();
  const probing = new Set<WebhookType>();
  /** The receiver that decides, read once per run: none for an export only, an unknown type or a store that cannot be
   * read; `unreadable` for a damaged local receiver file. */
  const receiverOf = (
    envelope: Pick<FailedDeliveryEnvelope, 'webhook_type' | 'owed'>,
  ): Promise<Endpoint | 'unreadable' | null> => {
    const type = envelope.webhook_type as WebhookType;
    if (owedBy(envelope) === 'export' || !WEBHOOK_TYPES.includes(type)) return Promise.resolve(null);
    let read = endpoints.get(type);
    if (!read) {
      // A store that cannot be read holds nothing back (Deliver, which reads it too, says so in its log); a damaged
      // local file of the receiver holds its deliveries, as Deliver does (receiverFileUnreadable).
      read = store.get(type).catch((error: unknown) => (receiverFileUnreadable(error) === null ? null : 'unreadable'));
      endpoints.set(type, read);
    }
    return read;
  };
  const gate: ScheduleGate = async (envelope, now) => {
    const type = envelope.webhook_type as WebhookType;
    const endpoint = await receiverOf(envelope);
    if (endpoint === 'unreadable')
      return {
        hold: true,
        reason: 'unreadable',
        until: new Date(now.getTime() + holdRecheckMs('unreadable', null, now)),
      };
    if (!endpoint) return { hold: false };
    const decision = gateDelivery(endpoint, 'schedule', policy, now);
    if (decision.action === 'attempt') return { hold: false };
    if (decision.action === 'probe' && !probing.has(type)) {
      probing.add(type);
      return { hold: false };
    }
    const reason = decision.action === 'hold' ? decision.reason : 'failing';
    return { hold: true, reason, until: new Date(now.getTime() + holdRecheckMs(reason, endpoint, now)) };
  };
  gate.holdsAll = async (envelope, now) => {
    const endpoint = await receiverOf(envelope);
    if (endpoint === 'unreadable') return true;
    return endpoint !== null && gateDelivery(endpoint, 'schedule', policy, now).action === 'hold';
  };
  return gate;
}

/**
 * Resend a delivered conversation (an operator's decision): one more attempt through the redelivery workflow, under
 * the same delivery id, appended to the record and re-exported. Nothing is stored: no delivery is owed. `logged`: the
 * conversation's attempts in the attempt log; those the record lacks (an earlier resend's or redelivery's attempt
 * whose Deliver Lambda failed after it ran) are counted into it before its run is named (withLoggedAttempts), as the
 * schedule and the redrives do, so that the name says the attempt number its Deliver records after the log's last.
 */
export async function resend(
  record: ConversationRecord,
  redeliver: Redeliver,
  now: Date,
  logged: readonly DeliveryAttempt[] = [],
): Promise<RedeliveryResult> {
  const envelope = withLoggedAttempts(resendEnvelope(record, now), logged);
  const run = await redeliver(envelope, 'resend');
  const id = record.conversation_id;
  if (!run.ok) return { conversation_id: id, status: 'error', execution_name: run.execution_name, error: run.error };
  const attempts = run.record.execution.delivery_attempts;
  const attempt =
    attempts.length > envelope.conversation.execution.delivery_attempts.length ? attempts.at(-1) : undefined;
  // No attempt recorded and Lambda would not run its Deliver (or failed it after it ran, its attempt then only in the
  // log), as the run's Export noted it: an error of the resend, not a receiver holding it back.
  const errors = run.record.execution.errors;
  const failure = errors.length > envelope.conversation.execution.errors.length ? errors.at(-1) : undefined;
  if (!attempt && failure?.stage === 'Deliver' && isLambdaRefusal(failure.error))
    return {
      conversation_id: id,
      status: 'error',
      execution_name: run.execution_name,
      record: run.record,
      error: `Lambda did not run Deliver (${failure.error}: ${failure.message}); no attempt was made, unless Lambda failed it after it ran: its attempt is then in the attempt log (conversations show ${id})`,
      ended: true,
      refused: true,
    };
  return {
    conversation_id: id,
    status: !attempt ? 'held' : attempt.outcome === 'delivered' ? 'delivered' : 'failed',
    execution_name: run.execution_name,
    record: run.record,
    ...(attempt && attempt.outcome !== 'delivered' ? { error: attempt.error ?? `HTTP ${attempt.status_code}` } : {}),
  };
}

export interface ScheduleLog {
  info(message: string, ...extra: Record<string, unknown>[]): void;
  warn(message: string, ...extra: Record<string, unknown>[]): void;
  error(message: string, ...extra: Record<string, unknown>[]): void;
}

export interface ScheduleOptions {
  /** Milliseconds left before the run must stop (a Lambda's getRemainingTimeInMillis). */
  remainingMs: () => number;
  /** Stop taking when less than this is left: one batch's redeliveries must finish in it. */
  reserveMs: number;
  /** How long a taken envelope stays held at least (SQS: its visibility timeout). */
  minHoldSeconds: number;
  log: ScheduleLog;
  now?: () => Date;
  /** Told of every redelivery this run made. */
  onResult?: (result: RedeliveryResult) => void;
  /** Holds back the envelopes whose receiver may not be tried now (endpointGate); none: every due one is tried. */
  gate?: ScheduleGate;
  /**
   * The conversation's attempts in the attempt log: read once for each envelope about to be redelivered (a DynamoDB
   * Query on AWS, where the queue may hold several copies of one envelope; the conversation's file locally). Those its
   * envelope lacks are merged into it before its run is named (withLoggedAttempts: the tries before Lambda refused a
   * retry of Deliver, or one whose Deliver Lambda failed after it ran), so the run's name and the envelope it leaves
   * count them. A copy whose conversation was delivered meanwhile is not sent again: its run only exports the record
   * delivered. None: every due envelope is redelivered as it is.
   */
  logged?: (envelope: FailedDeliveryEnvelope) => Promise<readonly DeliveryAttempt[]>;
  /**
   * Claim the conversation's redelivery before anything is read or sent (on AWS, functions/shared/redelivery-claim.ts):
   * refused while another run's claim holds, and that copy then waits until it ends. Released once the redelivery
   * run has ended; a claim whose run may still be under way (an error starting it, a FAILED or TIMED_OUT execution)
   * ends by itself. An error claiming leaves the envelope as it was taken. None: no claims (one local schedule).
   */
  claim?: (
    envelope: FailedDeliveryEnvelope,
    now: Date,
  ) => Promise<{ held: true; release(): Promise<void> } | { held: false; until: Date }>;
  /**
   * Whether the run must stop now (the local gateway stopping): no more envelopes are taken, and one taken but not
   * sent yet is left as it was (counted `waiting`: back at the next run). The redeliveries under way finish.
   */
  stopped?: () => boolean;
  /**
   * Write the record of a delivery given up after its runs kept failing where users read it (publishGivenUp,
   * functions/shared/given-up.ts), before its dead envelope is stored; one that fails is logged, the envelope stored.
   * None: the Redeliver port does it (the local one, before it stores the envelope: local/engine/redelivery.ts).
   */
  publishGivenUp?: (envelope: FailedDeliveryEnvelope, now: Date) => Promise<void>;
}

export interface ScheduleSummary {
  received: number;
  redelivered: number;
  delivered: number;
  dead_lettered: number;
  rescheduled: number;
  waiting: number;
  /** Due, but their receiver is paused, disabled or failing: they wait without using a slot of the schedule. */
  held: number;
  /**
   * Redelivery runs whose execution failed or timed out, could not be started, or SUCCEEDED with an output it could not
   * use: each back in a few minutes, or dead after MAX_FAILED_RUNS.
   */
  failed_executions: number;
  /**
   * Redelivery runs whose execution SUCCEEDED but whose Deliver Lambda would not run (throttled,
   * Lambda.ServiceException: LAMBDA_REFUSALS): nothing was sent; failed runs of their envelopes all the same (back in a
   * few minutes, dead after MAX_FAILED_RUNS), counted apart since no execution failed (the RedeliveryExecutionsFailed
   * alarm counts those).
   */
  refused_runs: number;
  /** Envelopes the store could not act on (an SQS error): left as they were taken. */
  errors: number;
  unreadable: number;
  duplicates: number;
  /**
   * Envelopes whose conversation the attempt log shows delivered meanwhile (by another copy, or a Deliver whose result
   * was lost): nothing sent again, the record exported delivered (an export-only run, not counted in `redelivered`).
   */
  already_delivered: number;
  /** Copies of an envelope another run is redelivering now (it holds the claim): each waits until that claim ends. */
  in_flight_elsewhere: number;
  stopped_by_time_budget: boolean;
}

type Outcome =
  | 'delivered'
  | 'dead_lettered'
  | 'rescheduled'
  | 'waiting'
  | 'held'
  | 'failed_executions'
  | 'refused_runs'
  | 'errors'
  | 'duplicates'
  | 'already_delivered'
  | 'in_flight_elsewhere';

/**
 * One run of the automatic schedule: take batches from the store until it has nothing more or the time budget is
 * spent; redeliver each due envelope once and store the result (settled, dead, or pending with its next wait); let
 * the others wait until they are due. A taken envelope is held, so two overlapping runs never redeliver the same
 * envelope at once. A redelivery run that fails is stored as a failed run (redeliverHeld); only an error of the store
 * itself leaves an envelope as it was taken, to come back when its hold ends.
 */
export async function runSchedule<H extends HeldEnvelope>(
  store: FailedDeliveryStore<H>,
  redeliver: Redeliver,
  options: ScheduleOptions,
): Promise<ScheduleSummary> {
  const { log } = options;
  const now = options.now ?? (() => new Date());
  const summary: ScheduleSummary = {
    received: 0,
    redelivered: 0,
    delivered: 0,
    dead_lettered: 0,
    rescheduled: 0,
    waiting: 0,
    held: 0,
    failed_executions: 0,
    refused_runs: 0,
    errors: 0,
    unreadable: 0,
    duplicates: 0,
    already_delivered: 0,
    in_flight_elsewhere: 0,
    stopped_by_time_budget: false,
  };
  const seen = new Set<string>();

  /**
   * The attempt log's attempts of this envelope's conversation; none when it cannot be read (the envelope is then
   * redelivered with its own attempts, as before), with a warning.
   */
  async function loggedAttempts(
    envelope: FailedDeliveryEnvelope,
    logged: NonNullable<ScheduleOptions['logged']>,
  ): Promise<readonly DeliveryAttempt[]> {
    try {
      return await logged(envelope);
    } catch (error) {
      log.warn('Could not read whether the conversation was delivered meanwhile; redelivered', {
        conversation_id: envelope.conversation_id,
        error: `${(error as Error).name}: ${(error as Error).message}`,
      });
      return [];
    }
  }

  /** The store, but a delivery given up is first written where users read it (its export and status). */
  const storing: Pick<FailedDeliveryStore<H>, 'store' | 'leave'> = {
    store: async (item, updated, at) => {
      if (options.publishGivenUp && givenUpRecord(updated))
        await options.publishGivenUp(updated, at).catch((error: Error) =>
          log.error('A delivery given up could not be written to its export or status; they may still say retrying', {
            conversation_id: updated.conversation_id,
            error: `${error.name}: ${error.message}`,
          }),
        );
      await store.store(item, updated, at);
    },
    leave: (item) => store.leave(item),
  };

  async function handle(item: H): Promise<Outcome> {
    const { envelope } = item;
    const id = envelope.conversation_id;
    // A second message for a conversation handled in this run (an at-least-once duplicate, or one re-sent due at
    // once) waits for the next run.
    if (seen.has(id)) return 'duplicates';
    seen.add(id);
    if (envelope.state === 'settled') {
      await store.store(item, envelope, now());
      return 'delivered';
    }
    if (envelope.state === 'dead') {
      await store.store(item, envelope, now());
      log.info('Failed delivery dead-lettered', {
        conversation_id: id,
        dead_reason: envelope.dead_reason,
        attempts: envelope.attempts.length,
      });
      return 'dead_lettered';
    }
    if (!isDue(envelope, now())) {
      await store.wait(item, now());
      return 'waiting';
    }
    const gate = (await options.gate?.(envelope, now())) ?? { hold: false };
    if (gate.hold) {
      await store.wait(item, now(), gate.until);
      return 'held';
    }
    // Claimed before the attempt log is read: a run that delivered ends its claim only after Deliver logged.
    const claim = options.claim ? await options.claim(envelope, now()) : null;
    if (claim && !claim.held) {
      await store.wait(item, now(), claim.until);
      log.info('Being redelivered by another run; this copy waits until that run has surely ended', {
        conversation_id: id,
        until: claim.until.toISOString(),
      });
      return 'in_flight_elsewhere';
    }
    const release = async () => {
      if (!claim?.held) return;
      await claim.release().catch((error: Error) =>
        log.warn('Could not end the redelivery claim; it ends by itself', {
          conversation_id: id,
          error: `${error.name}: ${error.message}`,
        }),
      );
    };
    const logged =
      options.logged && owedBy(envelope) === 'delivery' ? await loggedAttempts(envelope, options.logged) : [];
    // The attempt that delivered this envelope's conversation meanwhile, if any: another copy delivered it (SQS delivers
    // a message at least once, and a copy outlives a run that delivered but could not delete it), or a Deliver whose
    // result never reached its workflow did. The receiver is then not sent the delivery again. A log that cannot be
    // read, or that lacks the attempt (Deliver stopped between the POST and its write), redelivers it: at least once,
    // under the same webhook-id the receiver dedupes on (docs/operations.md, "Failed deliveries").
    const took = logged.find((a) => a.outcome === 'delivered') ?? null;
    // The tries only the log has are counted before the run is named after the attempt it makes (the one its Deliver
    // numbers after the log's last): the delivered one is added by withLoggedDelivery.
    const counted = withLoggedAttempts(
      envelope,
      logged.filter((a) => a.attempt !== took?.attempt),
    );
    // Delivered meanwhile: nothing is sent again, but the export may still say retrying, so this copy's run only
    // exports the record with the delivered attempt (withLoggedDelivery).
    const owing =
      took || counted !== envelope
        ? { ...item, envelope: took ? withLoggedDelivery(counted, took, now()) : counted }
        : item;
    if (took)
      log.info('Already delivered (the attempt log has it); nothing sent again, the record is exported delivered', {
        conversation_id: id,
        delivered_attempt: took.attempt,
        delivered_at: took.at,
      });
    // Checked right before the redelivery begins (nothing awaited in between): one not begun is not sent.
    if (options.stopped?.()) {
      await store.leave(item);
      await release();
      return 'waiting';
    }
    if (!took) summary.redelivered += 1;
    const result = await redeliverHeld(storing, owing, redeliver, 'schedule', now);
    // The run ended (SUCCEEDED, a refused Deliver's too: ended): nothing of it is in flight. Otherwise its Deliver may
    // still be: the claim ends by itself.
    if (result.status !== 'error' || result.ended) await release();
    options.onResult?.(result);
    if (result.status === 'error') {
      const failed = result.envelope!;
      const fields = {
        conversation_id: id,
        execution_name: result.execution_name,
        error: result.error,
        failed_runs: failed.failed_runs,
      };
      if (failed.state === 'dead')
        log.warn('Redelivery run did not succeed, again; no more automatic attempts', {
          ...fields,
          dead_reason: failed.dead_reason,
        });
      else
        log.warn('Redelivery run did not succeed; the envelope comes back later', {
          ...fields,
          next_due_at: failed.next_due_at,
        });
      return result.refused ? 'refused_runs' : 'failed_executions';
    }
    const updated = result.envelope!;
    const fields = {
      conversation_id: id,
      execution_name: result.execution_name,
      state: updated.state,
      attempts: updated.attempts.length,
    };
    if (updated.state === 'settled') {
      if (took) return 'already_delivered';
      log.info('Redelivered', fields);
      return 'delivered';
    }
    if (updated.state === 'dead') {
      log.info('Redelivery failed; no more automatic attempts', {
        ...fields,
        dead_reason: updated.dead_reason,
        last_error: updated.last_error,
      });
      return 'dead_lettered';
    }
    log.info('Redelivery failed; rescheduled', {
      ...fields,
      next_due_at: updated.next_due_at,
      last_error: updated.last_error,
    });
    return 'rescheduled';
  }

  for (;;) {
    if (options.stopped?.()) break;
    const remainingMs = options.remainingMs();
    if (remainingMs < options.reserveMs) {
      summary.stopped_by_time_budget = true;
      break;
    }
    // Held until this run is over, whatever happens to it: an envelope is never worked on twice in one run.
    const holdSeconds = Math.max(options.minHoldSeconds, Math.ceil(remainingMs / 1000) + 30);
    const batch = await store.take({
      holdSeconds,
      now: now(),
      seen,
      ...(options.gate?.holdsAll ? { heldBack: options.gate.holdsAll } : {}),
    });
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
      batch.items.map((item) =>
        handle(item).catch((error: Error): Outcome => {
          log.error('Failed-delivery envelope not processed; it comes back later', {
            conversation_id: item.envelope.conversation_id,
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
