import { isDeepStrictEqual } from 'node:util';
import {
  type ConversationRecord,
  type ConversationState,
  type DeliveryAttempt,
  fullRecord,
  type RedeliveryContext,
} from '../../functions/domain/conversation.ts';
import { conversationIdPrefix } from '../../functions/domain/conversation-id.ts';
import { failedAttemptFromCaught, interruptedDelivery, isDeferral } from '../../functions/domain/delivery.ts';
import {
  type FailedDeliveryEnvelope,
  givenUpRecord,
  settleRedelivery,
  withFailedRun,
  withUnexportedDelivery,
} from '../../functions/domain/failed-delivery.ts';
import type { ExecutionInput } from '../../functions/domain/gateway-contract.ts';
import { idempotencyKeyOf, idempotencyPk, requestIdentity } from '../../functions/domain/idempotency.ts';
import type { ValidateResult } from '../../functions/domain/intake.ts';
import {
  INTERRUPTED_ERROR,
  pendingAnswerProblem,
  settleAnswer,
  withClassification,
  withDeliveryAttempt,
  withFailure,
  withInterruption,
} from '../../functions/domain/lifecycle.ts';
import { claimedSource, parseWebhookRequest } from '../../functions/domain/request.ts';
import { canonicalSource } from '../../functions/domain/source-identity.ts';
import { type CaughtError, parseTaskError } from '../../functions/domain/task-error.ts';
import type { AttemptLog } from '../../functions/shared/attempt-log.ts';
import type { FileStatusStore } from '../../functions/shared/conversation-status-store.ts';
import type { IdempotencyStore } from '../../functions/shared/idempotency-store.ts';
import { recordOf } from '../history/conversations.ts';
import type { ExecutionStore } from '../store/execution-store.ts';
import type { LocalFailedDeliveryStore } from '../store/failed-delivery-store.ts';
import { mapConcurrently } from '../store/json-files.ts';
import type { ExecutionRecord, HistoryEvent, LocalWorkflow, RunRestart } from './engine.ts';
import type { ExecutionJournal, JournalEntry, JournaledRun } from './journal.ts';
import { deliveredBy, deliveredIn, publishGivenUpLocally } from './redelivery.ts';

/**
 * Crash recovery of the local conversation workflow (docs/operations.md, "After a crash"). Every execution the
 * journal shows begun and not ended is finished when the gateway starts, before it takes requests:
 *
 * - cut before Validate answered: nothing was accepted (no conversation id, no agent call); a claim it may have made
 *   on its Idempotency-Key is freed, so the client's retry runs at once;
 * - past its last side effect (delivered, or queued to the failed-delivery store, or the agent failed), or in the
 *   middle of the export: the workflow resumes there — the same ASL, from that state — and the conversation ends as
 *   it would have (the export and its steps are idempotent: same keys, same envelope);
 * - an asynchronous conversation's run (its caller has its 202) cut before the agent's answer (or failure) was
 *   journaled: started again from its start (RecoveryContext.restart), at most MAX_RESTARTS times;
 * - cut while the agent or the receiver was being called (or between them): the conversation is closed as
 *   `interrupted` with what is known — the agent's answer, the delivery attempts made — and exported; its key
 *   settles at once (the answer kept for a retry when there is one, freed otherwise); an answer not known to be
 *   delivered goes to the failed-delivery store under the same delivery id, for the redelivery schedule (one the
 *   attempt log shows the receiver took, before the crash cut its Deliver, is exported delivered instead).
 *
 * An asynchronous conversation is two executions: the accept workflow's (ended once it started the run; cut
 * before, it ends as a conversation cut before its agent: exported as interrupted, its status `failed`, its key
 * freed; cut in its Validate, it was not accepted, and the `running` status Validate wrote is removed) and the run's,
 * named after the conversation, whose input carries what Validate accepted (recovered as above).
 *
 * A redelivery run (statemachine/redelivery.asl.json: the schedule, a redrive, a resend) is journaled too. Cut
 * after its delivery attempt ended, it resumes there (the export) and its envelope is settled by the result, as the
 * run would have settled it; cut before or during the attempt, its history is saved with the cut state marked
 * GatewayInterrupted and nothing else changes: its envelope is as it was, so the schedule tries it again (under the
 * same webhook-id), and a cut resend is not repeated; unless the attempt log shows the receiver took the cut attempt,
 * then it resumes at its export as if cut after it.
 *
 * The resumed part is journaled too, so a crash during recovery is recovered at the next start.
 */
export type RecoveryPlan =
  | { kind: 'ended' }
  | { kind: 'unaccepted'; input: ExecutionInput | null }
  | {
      kind: 'resume';
      startAt: string;
      state: unknown;
      interrupted: boolean;
      conversationId: string;
      stage: string;
      /** Closed as interrupted because its run had been started again MAX_RESTARTS times: that many. */
      restarts?: number;
    }
  | { kind: 'restart'; input: unknown; restarts: number; conversationId: string };

/**
 * How many times the run of an asynchronous conversation is started again after a cut before its agent's answer was
 * journaled: then it is closed as interrupted, so that a conversation whose run stops the gateway (kills it, fills
 * its disk) does not stop it at every start.
 */
export const MAX_RESTARTS = 3;

const TASK_KINDS = new Set(['in', 'out', 'err']);

function lastOf(entries: JournalEntry[], kind: JournalEntry['k'], state: string): JournalEntry | undefined {
  return entries.findLast((e) => e.k === kind && e.s === state);
}

const CRASH = 'the local gateway stopped (crash or kill)';

/**
 * The data folder's refusal that cut the execution (its `refused` line, journal.ts: a full disk, a read-only mount),
 * or null when nothing says so: then a crash or a kill cut it.
 */
function storageRefusal(entries: JournalEntry[]): { state: string; code: string; message: string } | null {
  const refused = entries.find((e) => e.k === 'refused');
  const d = refused?.d as { code?: unknown; message?: unknown } | undefined;
  if (!refused || typeof d?.code !== 'string') return null;
  return { state: refused.s ?? '', code: d.code, message: typeof d.message === 'string' ? d.message : d.code };
}

/** What cut the execution, as the sentences about it begin. */
function cutBy(entries: JournalEntry[]): string {
  const refusal = storageRefusal(entries);
  return refusal ? `the local gateway's data folder refused a write (${refusal.message})` : CRASH;
}

/** The Deliver attempts an execution made: each failed one, and the one the crash cut (its outcome unknown). */
function deliveryAttempts(entries: JournalEntry[]): {
  attempts: DeliveryAttempt[];
  target: string | null;
  cut: number | null;
} {
  const attempts: DeliveryAttempt[] = [];
  let target: string | null = null;
  let cut: number | null = null;
  let n = 0;
  for (const entry of entries) {
    // Deliver's steps (not the data folder's `refused` note, which names the state whose line it refused).
    if (entry.s !== 'Deliver' || !TASK_KINDS.has(entry.k)) continue;
    if (entry.k === 'in') {
      n += 1;
      cut = n;
    } else {
      cut = null;
      if (entry.k === 'err' && !isDeferral(entry.d as CaughtError)) {
        const failed = failedAttemptFromCaught(entry.d as CaughtError, n, new Date(entry.t));
        attempts.push(failed.attempt);
        target = failed.target ?? target;
      }
    }
  }
  if (cut !== null) {
    const at = entries.findLast((e) => e.s === 'Deliver' && e.k === 'in')!.t;
    attempts.push({
      attempt: cut,
      at: new Date(at).toISOString(),
      duration_ms: 0,
      outcome: 'retryable',
      error: 'interrupted: the local gateway stopped during this attempt (its outcome is unknown)',
      via: 'workflow',
    });
  }
  return { attempts, target, cut };
}

function withoutBudget(state: unknown): unknown {
  if (!state || typeof state !== 'object' || !('budget' in state)) return state;
  const { budget: _, ...rest } = state as Record<string, unknown>;
  return rest;
}

/**
 * An execution of the accept workflow (statemachine/accept.asl.json: its Validate is given `{accept: …}`) that was
 * cut while it started the accepted conversation's run: the run's name (the conversation id) when it is unknown
 * whether the run began, else null.
 */
function uncertainStart(entries: JournalEntry[]): string | null {
  if (!lastOf(entries, 'in', ACCEPT_START_STATE) || lastOf(entries, 'out', ACCEPT_START_STATE)) return null;
  return (
    (lastOf(entries, 'out', 'Validate')?.d as { conversation?: { conversation_id?: string } } | undefined)?.conversation
      ?.conversation_id ?? null
  );
}

const ACCEPT_START_STATE = 'StartConversation';

/**
 * What to do with one interrupted execution, from its journal entries alone. Pure. `runBegun`: for an accept
 * execution cut while it started its run (uncertainStart), whether that run's journal shows it begun.
 */
export function planRecovery(
  entries: JournalEntry[],
  now: Date,
  runBegun = false,
  /** This execution's delivery attempts as the attempt log kept them (Deliver logs each before it returns). */
  logged: readonly DeliveryAttempt[] = [],
): RecoveryPlan {
  if (entries.some((e) => e.k === 'end')) return { kind: 'ended' };
  // The run of an accepted conversation was validated when it was accepted: its input carries that result.
  const accepted = (entries.find((e) => e.k === 'begin')?.d as { accepted?: ValidateResult } | undefined)?.accepted;
  const validated = (lastOf(entries, 'out', 'Validate')?.d as ValidateResult | undefined) ?? accepted;
  // An accept execution that started its run has nothing more to do: the run is journaled (and recovered) itself.
  // One cut before it did ends as a conversation cut before its agent (below): exported as interrupted.
  if (lastOf(entries, 'out', ACCEPT_START_STATE) || (uncertainStart(entries) && runBegun)) return { kind: 'ended' };
  if (!validated) {
    const begin = entries.find((e) => e.k === 'begin');
    return { kind: 'unaccepted', input: (begin?.d as ExecutionInput | undefined) ?? null };
  }
  // Validate's own answer (a rejection, a replayed duplicate) has nothing after it but Choice, Succeed or Fail.
  if (!validated.valid || validated.duplicate) return { kind: 'ended' };
  // Journaled as the workflow's state carries it (leanRecord): whole again for the steps below.
  const validatedRecord = fullRecord(validated.conversation);
  const conversationId = validatedRecord.conversation_id;
  const begin = entries.find((e) => e.k === 'begin');
  const stage = entries.findLast((e) => TASK_KINDS.has(e.k))?.s ?? 'Validate';
  // A resumed run has no caller waiting: its state keeps no budget (the deadlines have passed).
  const resume = (startAt: string, state: unknown, interrupted = false, restarts?: number): RecoveryPlan => ({
    kind: 'resume',
    startAt,
    state: withoutBudget(state),
    interrupted,
    conversationId,
    stage,
    ...(restarts ? { restarts } : {}),
  });
  const taskState = (state: string) => (lastOf(entries, 'in', state)?.d as { state?: unknown } | undefined)?.state;

  // From the end of the workflow backwards: the furthest step reached decides.
  const closed = lastOf(entries, 'out', 'CloseWithoutExport');
  if (closed) {
    if (lastOf(entries, 'out', 'QueueFailedExport')) return resume('AnswerWithoutExport', closed.d);
    return resume(lastOf(entries, 'in', 'QueueFailedExport') ? 'QueueFailedExport' : 'IsRedeliveryQueued', closed.d);
  }
  if (lastOf(entries, 'in', 'CloseWithoutExport')) return resume('CloseWithoutExport', taskState('CloseWithoutExport'));
  for (const [task, next] of [
    ['ExportFailedConversation', 'AgentFailed'],
    ['Export', 'Completed'],
  ] as const) {
    const out = lastOf(entries, 'out', task);
    if (out) return resume(next, out.d);
    if (lastOf(entries, 'in', task)) return resume(task, taskState(task));
  }
  const queueing = lastOf(entries, 'in', 'QueueFailedDelivery');
  const queued = (queueing?.d as { MessageBody?: Partial<ConversationState> & { closed_at?: string } })?.MessageBody;
  if (queued?.conversation) {
    // Closed when its delivery failed (DeliveryFailed), as the envelope it queued was (a journal of an earlier
    // version has no closed_at: when it queued).
    const state = {
      conversation: queued.conversation,
      delivery_error: queued.delivery_error,
      delivery_failed: { at: queued.closed_at ?? new Date(queueing!.t).toISOString() },
    };
    return resume(lastOf(entries, 'out', 'QueueFailedDelivery') ? 'Export' : 'QueueFailedDelivery', state);
  }
  const delivered = lastOf(entries, 'out', 'Deliver');
  if (delivered) return resume('Export', delivered.d);

  // Cut while the agent or the receiver was called, or between them: close it as interrupted.
  const answered = lastOf(entries, 'out', 'Classify')?.d as ConversationState | undefined;
  // InvokeManagerAgent's own result is the Lambda integration's output: its answer, not yet on the record.
  const agentOut = lastOf(entries, 'out', 'InvokeManagerAgent');
  const pending: ConversationRecord | undefined =
    agentOut && !answered
      ? {
          ...validatedRecord,
          pending_answer: {
            answer: (agentOut.d as { Payload?: unknown } | undefined)?.Payload ?? null,
            invoked_at: new Date(lastOf(entries, 'in', 'InvokeManagerAgent')?.t ?? agentOut.t).toISOString(),
          },
        }
      : undefined;
  // Cut before Classify checked the answer: one it would have refused is refused here, as Classify would have
  // (AgentAnswerRejected: exported as failed), never recorded, queued nor delivered unchecked.
  const refused = pending ? pendingAnswerProblem({ conversation: pending }, new Date(agentOut!.t)) : null;
  if (refused)
    return resume('ExportFailedConversation', {
      conversation: validatedRecord,
      agent_error: { Error: 'AgentAnswerRejected', Cause: refused },
    });
  const answeredRecord = answered
    ? fullRecord(answered.conversation)
    : pending
      ? settleAnswer(pending, new Date(agentOut!.t))
      : undefined;
  if (answeredRecord) {
    const classified = answeredRecord.webhook_context.webhook_type
      ? answeredRecord
      : withClassification(answeredRecord, now);
    const { attempts, target, cut } = deliveryAttempts(entries);
    const why = cutBy(entries);
    // The receiver took the attempt the crash cut (the attempt log kept its answer before Deliver returned): the
    // conversation was delivered, so it is exported so, and nothing is queued to deliver it again.
    const took = cut === null ? undefined : logged.findLast((a) => a.attempt === cut && a.outcome === 'delivered');
    if (took) {
      const known = attempts.filter((a) => a.attempt !== cut);
      const { request: _q, response: _r, execution_name: _e, ...attempt } = took;
      const delivered = withDeliveryAttempt(
        withInterruption(classified, stage, now, known, why),
        attempt,
        target ?? took.request?.url ?? null,
        'delivered',
      );
      return resume('Export', { conversation: delivered }, true);
    }
    const record = withInterruption(classified, stage, now, attempts, why);
    const reason =
      cut === null
        ? `${why} before the delivery was made`
        : `${why} during delivery attempt ${cut}: the receiver may have it already, under the same webhook-id`;
    return resume(
      'QueueFailedDelivery',
      {
        conversation: record,
        delivery_error: interruptedDelivery(target, reason),
        delivery_failed: { at: now.toISOString() },
      },
      true,
    );
  }
  let record: ConversationRecord = validatedRecord;
  const agentError = entries.findLast((e) => e.s === 'InvokeManagerAgent');
  let why = cutBy(entries);
  let gaveUp: number | undefined;
  // Asynchronous, cut before its agent's answer or failure was journaled: its caller was told `accepted` and waits
  // for the delivery; the run starts again (its budget has no deadlines: its agent_seconds still hold).
  if (accepted && entries.findLast((e) => e.s === 'InvokeManagerAgent' && TASK_KINDS.has(e.k))?.k !== 'err') {
    const restarts = begin?.r ?? 0;
    if (restarts < MAX_RESTARTS) return { kind: 'restart', input: begin!.d, restarts: restarts + 1, conversationId };
    why = `${why}; its run had been started again ${restarts} times, each cut before the agent's answer was recorded, and is not started again (a conversation whose run stops the gateway must not stop it at every start),`;
    gaveUp = restarts;
  }
  if (agentError?.k === 'err')
    record = withFailure(
      record,
      'InvokeManagerAgent',
      parseTaskError(agentError.d as CaughtError),
      new Date(agentError.t),
    );
  const state = { conversation: withInterruption(record, stage, now, [], why) };
  return resume('ExportFailedConversation', state, true, gaveUp);
}

/** The conversation a journaled execution worked on, once its Validate answered (or its redelivery's), else null. */
function journaledConversationId(entries: JournalEntry[]): string | null {
  const validated = lastOf(entries, 'out', 'Validate')?.d as
    | { conversation?: { conversation_id?: unknown } }
    | undefined;
  const id = redeliveryInput(entries)?.conversation.conversation_id ?? validated?.conversation?.conversation_id;
  return typeof id === 'string' ? id : null;
}

/** What a redelivery run is started with (local/engine/redelivery.ts). */
interface RedeliveryInput {
  conversation: ConversationRecord;
  redelivery: RedeliveryContext;
}

/** The input of a journaled redelivery run, or null for an execution of another workflow. */
function redeliveryInput(entries: JournalEntry[]): RedeliveryInput | null {
  const input = entries.find((e) => e.k === 'begin')?.d as Partial<RedeliveryInput> | undefined;
  return input?.redelivery && input.conversation?.conversation_id ? (input as RedeliveryInput) : null;
}

export type RedeliveryPlan = { kind: 'resume'; startAt: string; state: unknown } | { kind: 'interrupted' };

/**
 * What to do with an interrupted redelivery run, from its journal entries (pure): resume it past its delivery
 * attempt, or, cut before that attempt ended, leave it interrupted; unless the attempt log kept that the receiver
 * took the attempt the crash cut (`logged`: this run's attempts): then it resumes at its export, delivered.
 */
export function planRedeliveryRecovery(
  entries: JournalEntry[],
  logged: readonly DeliveryAttempt[] = [],
): RedeliveryPlan {
  const taskState = (state: string) => (lastOf(entries, 'in', state)?.d as { state?: unknown } | undefined)?.state;
  const closed = lastOf(entries, 'out', 'CloseWithoutExport');
  if (closed) return { kind: 'resume', startAt: 'RedeliveredWithoutExport', state: closed.d };
  if (lastOf(entries, 'in', 'CloseWithoutExport'))
    return { kind: 'resume', startAt: 'CloseWithoutExport', state: taskState('CloseWithoutExport') };
  const exported = lastOf(entries, 'out', 'Export');
  if (exported) return { kind: 'resume', startAt: 'Redelivered', state: exported.d };
  if (lastOf(entries, 'in', 'Export')) return { kind: 'resume', startAt: 'Export', state: taskState('Export') };
  const last = entries.findLast((e) => TASK_KINDS.has(e.k));
  if (last?.s === 'Deliver' && last.k === 'out') return { kind: 'resume', startAt: 'Export', state: last.d };
  const took = last?.s === 'Deliver' && last.k === 'in' ? logged.findLast((a) => a.outcome === 'delivered') : undefined;
  const given = taskState('Deliver') as ConversationState | undefined;
  if (took && given?.conversation) {
    const { request, response: _r, execution_name: _e, ...attempt } = took;
    // A resend leaves the conversation as it was (delivered); any other run delivered it now.
    const delivered = withDeliveryAttempt(fullRecord(given.conversation), attempt, request?.url ?? null, 'delivered');
    return { kind: 'resume', startAt: 'Export', state: { ...given, conversation: delivered } };
  }
  return { kind: 'interrupted' };
}

/** The events the journal saw of an interrupted execution, the state the crash cut marked failed. */
function journaledEvents(entries: JournalEntry[]): HistoryEvent[] {
  const begin = entries.find((e) => e.k === 'begin');
  const events: HistoryEvent[] = [];
  if (begin) events.push({ type: 'ExecutionStarted', timestamp: begin.t, input: begin.d });
  let previous: JournalEntry | undefined;
  for (const entry of entries) {
    if (!TASK_KINDS.has(entry.k)) continue;
    if (entry.k === 'in' && previous?.k === 'err' && previous.s === entry.s)
      events.push({ type: 'StateRetried', timestamp: entry.t, state: entry.s });
    else if (entry.k === 'in')
      events.push({ type: 'StateEntered', timestamp: entry.t, state: entry.s, input: entry.d });
    else if (entry.k === 'out')
      events.push({ type: 'StateExited', timestamp: entry.t, state: entry.s, output: entry.d });
    else {
      const error = entry.d as CaughtError;
      events.push({ type: 'StateFailed', timestamp: entry.t, state: entry.s, error: error.Error, cause: error.Cause });
    }
    previous = entry;
  }
  if (previous?.k === 'in') {
    events.push({
      type: 'StateFailed',
      timestamp: previous.t,
      state: previous.s,
      error: INTERRUPTED_ERROR,
      cause: `${cutBy(entries)} during this state`,
    });
  }
  return events;
}

/**
 * The interrupted execution's history, as `conversations show` reads it: what the journal saw, the state the crash
 * cut marked failed, then the resumed run.
 */
function recoveredHistory(
  name: string,
  entries: JournalEntry[],
  resumed: ExecutionRecord,
  startAt: string,
  now: Date,
): ExecutionRecord {
  const begin = entries.find((e) => e.k === 'begin');
  const events = journaledEvents(entries);
  events.push({ type: 'ExecutionResumed', timestamp: now.getTime(), state: startAt });
  events.push(...resumed.events.filter((e) => e.type !== 'ExecutionStarted'));
  // Cut by the data folder, the execution failed (its caller was answered so) before the gateway restarted and
  // finished the conversation: its history says that, not SUCCEEDED as if nothing had failed.
  const refusal = storageRefusal(entries);
  const failed = refusal
    ? {
        status: 'FAILED' as const,
        error: STORAGE_UNAVAILABLE_ERROR,
        cause: `${cutBy(entries)} in ${refusal.state}; the conversation was finished when the gateway restarted`,
      }
    : {};
  return {
    ...resumed,
    execution_name: name,
    started_at: new Date(begin?.t ?? now.getTime()).toISOString(),
    input: begin?.d ?? resumed.input,
    events,
    ...failed,
    // A run started again, cut again: its history says so as the run's own does when it ends.
    ...(begin?.c ? { restart: begin.c } : {}),
  };
}

/** The error of an execution the data folder cut (a full disk), as its history shows it. */
const STORAGE_UNAVAILABLE_ERROR = 'StorageUnavailable';

export interface RecoveredExecution {
  execution_name: string;
  conversation_id: string | null;
  /**
   * resumed: ended as it would have; interrupted: closed with what was known; not_accepted: cut before Validate;
   * failed: a redelivery run that had ended failed before the crash, or failed once finished here
   * (`failed_when_finished`); a scheduled one's failed run counted; restarted: an asynchronous conversation's run,
   * cut before its agent's answer was journaled, started again.
   */
  outcome: 'resumed' | 'interrupted' | 'not_accepted' | 'failed' | 'restarted' | 'set_aside';
  /** set_aside: why its replay failed, and the file its journal lines were moved to (RecoveryContext.setAside). */
  set_aside?: { why: string; file: string };
  /** restarted: which restart this is (1 to MAX_RESTARTS); interrupted: MAX_RESTARTS, when they were used up. */
  restarts?: number;
  failed_when_finished?: true;
  /** The conversation's status and delivery status once recovered (none when not accepted). */
  status: string | null;
  delivery_status: string | null;
  /** not_accepted: whether an in-progress claim on its Idempotency-Key was freed. */
  key_freed?: boolean;
  /**
   * restarted: the run left no journal line (its segment cut by a power cut or a disk fault), though its accept's
   * saved history shows it started and its status still says running (restartLostRuns).
   */
  journal_lost?: true;
  /**
   * not_accepted, asynchronous: the conversation id its Validate had written a `running` status for before the crash
   * (its caller never got it); that status was removed.
   */
  status_removed?: string;
  /** A redelivery run (who started it): resumed past its attempt, or interrupted with its envelope as it was. */
  redelivery?: RedeliveryContext['via'];
  /**
   * A redelivery run of the schedule or a redrive: its conversation's envelope as recovery left it, what is owed next
   * (null: there is none; absent: a resend, which has none, or an envelope that could not be read).
   */
  envelope?: RecoveredEnvelope | null;
  /** Cut by the data folder refusing a write (the system's message), not by a crash or a kill. */
  storage_refused?: string;
}

type RecoveredEnvelope = Pick<FailedDeliveryEnvelope, 'state' | 'owed' | 'next_due_at' | 'dead_reason' | 'failed_runs'>;

/** The envelope of a recovered redelivery run as recovery left it; undefined when it cannot be read (a damaged file). */
async function envelopeAfter(
  store: LocalFailedDeliveryStore | undefined,
  conversationId: string,
): Promise<RecoveredEnvelope | null | undefined> {
  try {
    const envelope = await store?.get(conversationId);
    if (envelope === undefined) return undefined;
    if (envelope === null) return null;
    const { state, owed, next_due_at, dead_reason, failed_runs } = envelope;
    return { state, owed, next_due_at, dead_reason, failed_runs };
  } catch {
    return undefined;
  }
}

export interface RecoveryContext {
  journal: ExecutionJournal;
  workflow: LocalWorkflow;
  /** The redelivery workflow and the failed-delivery store, for the redelivery runs a crash cut. */
  redeliveryWorkflow?: LocalWorkflow;
  /** The accept workflow: the history of an accept execution that started its run, unsaved, is rebuilt with it. */
  acceptWorkflow?: LocalWorkflow;
  failedDeliveries?: LocalFailedDeliveryStore;
  executions: ExecutionStore;
  idempotency: IdempotencyStore | null;
  /** The local status files (none when the statuses are in DynamoDB): an accept cut in Validate may have left one. */
  statuses?: FileStatusStore | null;
  /**
   * The delivery attempt log (functions/shared/attempt-log.ts): whether the receiver took an attempt the crash cut.
   * None (or unreadable): such an attempt's outcome is unknown, and the delivery is queued again.
   */
  attempts?: AttemptLog | null;
  /**
   * The previous gateway did not stop cleanly (it left its `gateway.pid`: killed, or the machine lost power), whatever
   * its journal kept: the cut history writes of every conversation are looked for.
   */
  uncleanStop?: boolean;
  now?: () => Date;
  /**
   * Whether the operator asked the gateway to stop (Ctrl-C, SIGTERM) while it recovers: no execution is taken up after
   * that, those under way finish, and the rest stay in the journal for the next start (RecoveryStopped).
   */
  stopped?: () => boolean;
  /**
   * An execution whose recovery threw (its journal lines damaged, a workflow it names removed: a replay that throws
   * at every start) set aside: its lines kept in a file of their own, out of the journal, for the operator to retry or
   * drop (docs/operations.md, "After a crash"). Returns that file, or null when the failure may pass (a data folder
   * refusing writes): then recovery fails, and the next start tries it again. Before, one such execution failed every
   * start, and the gateway never served again.
   */
  setAside?: (name: string, entries: JournalEntry[], error: unknown) => Promise<string | null>;
  /**
   * Run the conversation workflow, as a new request's run, with `input` under `name`, journaled by `run` (its `begin`
   * written), not waited for: an asynchronous conversation's run started again (recovery plan `restart`).
   */
  restart: (name: string, input: unknown, run: JournaledRun, restart: RunRestart) => void;
}

/**
 * Finish (or show) one redelivery run a crash cut (planRedeliveryRecovery). Resumed, its envelope is settled by the
 * result, as localRedeliver's caller would have; interrupted, its history alone is saved. One whose history was saved
 * ran to its end: its envelope is settled by that history (unless the run stored it before the crash, as
 * localRedeliver does before the journal's end), and it is not run again.
 */
async function recoverRedelivery(
  ctx: RecoveryContext,
  name: string,
  entries: JournalEntry[],
  input: RedeliveryInput,
  now: Date,
): Promise<RecoveredExecution> {
  const conversationId = input.conversation.conversation_id;
  const refusal = storageRefusal(entries);
  const plan = planRedeliveryRecovery(entries, await loggedAttempts(ctx, name, entries));
  // Killed after its history was saved (and perhaps its envelope stored), before the journal's end: it ran to its
  // end; its envelope is settled by that history, not by a second run.
  const saved = (await ctx.executions.has(conversationId, name))
    ? (await ctx.executions.executions(conversationId)).find((e) => e.execution_name === name)
    : undefined;
  let history = saved;
  let ended = saved;
  const workflow = ctx.redeliveryWorkflow;
  const resumed = !saved && plan.kind === 'resume' && workflow !== undefined;
  if (resumed) {
    const journaled = ctx.journal.resume(name, plan.startAt);
    ended = await workflow.run(plan.state, name, { startAt: plan.startAt, observer: journaled });
    history = recoveredHistory(name, entries, ended, plan.startAt, now);
    await ctx.executions.save(conversationId, history);
    journaled.end();
  }
  if (ended) {
    const store = ctx.failedDeliveries;
    const via = input.redelivery.via;
    if (store && via !== 'resend' && ended.status === 'SUCCEEDED') {
      const item = await store.hold(conversationId);
      const settled =
        item?.envelope.state === 'pending' || item?.envelope.state === 'dead'
          ? settleRedelivery(item.envelope, ended.output, via, now, store.schedule)
          : null;
      // The run stored its envelope before the crash (local/engine/redelivery.ts): it holds this run's record already.
      if (item && settled?.ok && !isDeepStrictEqual(item.envelope.conversation, settled.record))
        await store.store(item, settled.updated);
      else if (item) await store.leave(item);
    }
  }
  // A run that failed (not cut: its history says how) is stored as localRedeliver stores it before the journal's
  // end, unless it did so before the crash (the envelope was stored after the run began): one that delivered first
  // owes only its export now, or the schedule would deliver it again; a scheduled one counts as a failed run.
  const store = ctx.failedDeliveries;
  const via = input.redelivery.via;
  if (ended && ended.status !== 'SUCCEEDED' && ended.error !== INTERRUPTED_ERROR && store && via !== 'resend') {
    const item = await store.hold(conversationId);
    const error = `${ended.error}: ${ended.cause ?? ''}`;
    // Resumed past Deliver, its history has no Deliver that exited when the cut came during Deliver after the
    // receiver took the attempt (planRedeliveryRecovery): the state it was resumed with has that delivery.
    const delivered =
      (history ? deliveredBy(history) : null) ?? (resumed && plan.kind === 'resume' ? deliveredIn(plan.state) : null);
    const before =
      item && item.envelope.state !== 'settled' && Date.parse(item.envelope.updated_at) < Date.parse(ended.started_at);
    if (item && before && delivered)
      await store.store(item, withUnexportedDelivery(item.envelope, delivered, error, now));
    else if (item && before && via === 'schedule' && item.envelope.state === 'pending') {
      const failed = withFailedRun(item.envelope, error, now);
      // The fifth failed run in a row: the delivery is given up, and its export and status say so.
      if (givenUpRecord(failed)) await publishGivenUpLocally(failed);
      await store.store(item, failed);
    } else if (item) await store.leave(item);
  }
  if (!history) {
    const events = journaledEvents(entries);
    const last = events.at(-1);
    if (last?.error !== INTERRUPTED_ERROR) {
      events.push({
        type: 'StateFailed',
        timestamp: last?.timestamp ?? now.getTime(),
        state: last?.state ?? 'Deliver',
        error: INTERRUPTED_ERROR,
        cause: `${cutBy(entries)} during this state`,
      });
    }
    // Cut by the data folder (a full disk), it says so, not a crash: the state whose line was refused did not run, or
    // its result was not kept.
    const error = refusal ? STORAGE_UNAVAILABLE_ERROR : INTERRUPTED_ERROR;
    const cause = refusal
      ? `${cutBy(entries)} in ${refusal.state}; the envelope is as it was before the run`
      : `${CRASH} during this redelivery: its attempt may have reached the receiver, under the same webhook-id; the envelope is as it was before the run`;
    events.push({ type: 'ExecutionFailed', timestamp: now.getTime(), error, cause });
    const begin = entries.find((e) => e.k === 'begin');
    history = {
      execution_name: name,
      state_machine: ctx.redeliveryWorkflow?.name ?? 'redelivery',
      status: 'FAILED',
      started_at: new Date(begin?.t ?? now.getTime()).toISOString(),
      stopped_at: now.toISOString(),
      input,
      error,
      cause,
      events,
    };
    await ctx.executions.save(conversationId, history);
  }
  const record = recordOf(history);
  const envelope = via === 'resend' ? undefined : await envelopeAfter(store, conversationId);
  // Finished here; finished here and failed (counted as the failed-run block above stored it); shown as interrupted
  // (its history FAILED with StorageUnavailable when the data folder cut it); or a run that had failed before the cut.
  const outcome =
    (resumed && ended?.status === 'SUCCEEDED') || history.status === 'SUCCEEDED'
      ? 'resumed'
      : !resumed && (history.error === INTERRUPTED_ERROR || (!saved && refusal))
        ? 'interrupted'
        : 'failed';
  return {
    execution_name: name,
    conversation_id: conversationId,
    outcome,
    ...(outcome === 'failed' && resumed ? { failed_when_finished: true } : {}),
    status: record?.execution.status ?? null,
    delivery_status: record?.webhook_context.delivery_status ?? null,
    redelivery: via,
    ...(envelope !== undefined ? { envelope } : {}),
    ...(refusal ? { storage_refused: refusal.message } : {}),
  };
}

/**
 * An accept execution cut in Validate after it wrote the conversation's `running` status, before Validate answered:
 * the journal knows the request but not the id Validate gave it, and the caller never got one (no 202). Its status
 * is the one `running` record of that request's source, process and second (the id's prefix) written after that
 * Validate began, of a conversation with no execution history (every accepted conversation has its run's, saved or
 * rebuilt above). Removed: the id answers 404, as for any id never accepted (docs/operations.md, "After a crash").
 * Returns the conversation id whose status was removed, or null.
 */
async function removeUnstartedStatus(
  ctx: RecoveryContext,
  input: ExecutionInput,
  entries: JournalEntry[],
): Promise<string | null> {
  const validateBegan = lastOf(entries, 'in', 'Validate')?.t;
  const parsed = parseWebhookRequest(input.body);
  const receivedAt = new Date(input.received_at);
  if (!ctx.statuses || validateBegan === undefined || !parsed.ok || Number.isNaN(receivedAt.getTime())) return null;
  const prefix = conversationIdPrefix({
    at: receivedAt,
    sourceSystem: canonicalSource(parsed.request.source_system),
    sourceProcess: canonicalSource(parsed.request.source_process),
  });
  for (const id of await ctx.statuses.idsStartingWith(prefix)) {
    const status = await ctx.statuses.get(id).catch(() => null); // a damaged one is the operator's (docs)
    if (status?.status !== 'running' || Date.parse(status.accepted_at) < validateBegan) continue;
    if (await ctx.executions.hasAny(id)) continue; // a damaged history is a conversation's all the same
    await ctx.statuses.remove(id);
    return id;
  }
  return null;
}

/**
 * An accept execution that started its run and was killed before its history was saved (or whose history the data
 * folder refused): nothing is left to do but what its Accepted state does, so it is run from there, to save the
 * history `conversations show` lists beside the run's (docs/operations.md, "Asynchronous conversations").
 */
async function saveAcceptHistory(ctx: RecoveryContext, name: string, entries: JournalEntry[], now: Date) {
  // StartConversation's result is discarded (ResultPath null): the state it was given, its run's input, goes on.
  const given = lastOf(entries, 'in', ACCEPT_START_STATE)?.d as { Input?: { accepted?: ValidateResult } } | undefined;
  const state = given?.Input?.accepted;
  const conversationId = state?.valid && !state.duplicate ? state.conversation.conversation_id : null;
  if (!lastOf(entries, 'out', ACCEPT_START_STATE) || !ctx.acceptWorkflow || !conversationId) return;
  if (await ctx.executions.has(conversationId, name)) return;
  const journaled = ctx.journal.resume(name, ACCEPTED_STATE);
  const resumed = await ctx.acceptWorkflow.run(state, name, { startAt: ACCEPTED_STATE, observer: journaled });
  await ctx.executions.save(conversationId, recoveredHistory(name, entries, resumed, ACCEPTED_STATE, now));
  journaled.end();
}

const ACCEPTED_STATE = 'Accepted';

/**
 * The attempts this execution's Deliver logged, when the crash cut one (the attempt log is read only then); none when
 * the log cannot be read (the cut attempt's outcome stays unknown).
 */
async function loggedAttempts(ctx: RecoveryContext, name: string, entries: JournalEntry[]): Promise<DeliveryAttempt[]> {
  const id = journaledConversationId(entries);
  // Its last step (not the data folder's `refused` note, which names the state whose line it refused).
  const cutInDeliver = entries.findLast((e) => e.s === 'Deliver' && TASK_KINDS.has(e.k))?.k === 'in';
  if (!ctx.attempts || !id || !cutInDeliver) return [];
  try {
    return (await ctx.attempts.list(id)).filter((a) => a.execution_name === name);
  } catch {
    return [];
  }
}

/**
 * Crash recovery stopped at one execution (`cause`: why, a data folder refusing writes for one): the executions it had
 * not finished stay in the journal, found again at the next start.
 */
export class RecoveryFailed extends Error {
  override name = 'RecoveryFailed';
  constructor(
    readonly execution: string,
    override readonly cause: unknown,
  ) {
    super(`crash recovery could not finish execution ${execution}: ${(cause as Error)?.message ?? String(cause)}`);
  }
}

/**
 * Crash recovery stopped by the operator (Ctrl-C) before it took up every interrupted execution: those it took up
 * finished, and the `left` others stay in the journal, recovered at the next start.
 */
export class RecoveryStopped extends Error {
  override name = 'RecoveryStopped';
  constructor(
    readonly left: number,
    readonly recovered: RecoveredExecution[],
  ) {
    super(`crash recovery stopped with ${left} interrupted execution(s) left for the next start`);
  }
}

/** How many interrupted conversations are finished at once. */
const PARALLEL = 8;

/**
 * One conversation (or accept) execution that a crash or the data folder cut, as planned: resumed where its journal
 * stops (its history saved, its key settled by the resumed run), or, an accept execution that started its run, its
 * own history saved. Null when nothing was left to do (or, unaccepted, what is left is freeUnaccepted's).
 */
async function finishPlanned(
  ctx: RecoveryContext,
  name: string,
  entries: JournalEntry[],
  plan: RecoveryPlan,
  now: Date,
): Promise<RecoveredExecution | null> {
  if (plan.kind === 'ended') await saveAcceptHistory(ctx, name, entries, now);
  if (plan.kind !== 'resume' && plan.kind !== 'restart') return null;
  // Killed between saving its history and journaling its end: it ended (answered, delivered, exported), so
  // there is nothing to recover, and a second history of it would show it twice, as if recovered.
  if (await ctx.executions.has(plan.conversationId, name)) return null;
  const refused = storageRefusal(entries);
  const cause = refused ? { storage_refused: refused.message } : {};
  if (plan.kind === 'restart') {
    // Its `begin` journaled again before this returns (and before its earlier lines go): cut again, it is found.
    // Its history says which restart it is and what cut the run before (which leaves none: they share a name).
    const restart: RunRestart = {
      restart: plan.restarts,
      of: MAX_RESTARTS,
      earlier_started_at: new Date(entries[0]!.t).toISOString(),
      earlier_cut_at: new Date(entries.findLast((e) => e.k !== 'refused')!.t).toISOString(),
      earlier_cut_by: cutBy(entries),
    };
    await startAgain(ctx, name, plan.input, restart, now);
    const restarted = { status: 'running', delivery_status: null, restarts: plan.restarts, ...cause };
    return { execution_name: name, conversation_id: plan.conversationId, outcome: 'restarted', ...restarted };
  }
  const journaled = ctx.journal.resume(name, plan.startAt);
  const resumed = await ctx.workflow.run(plan.state, name, { startAt: plan.startAt, observer: journaled });
  const history = recoveredHistory(name, entries, resumed, plan.startAt, now);
  await ctx.executions.save(plan.conversationId, history);
  journaled.end();
  const record = recordOf(history);
  return {
    execution_name: name,
    conversation_id: plan.conversationId,
    outcome: plan.interrupted ? 'interrupted' : 'resumed',
    status: record?.execution.status ?? null,
    delivery_status: record?.webhook_context.delivery_status ?? null,
    ...(plan.restarts ? { restarts: plan.restarts } : {}),
    ...cause,
  };
}

/** An execution cut before Validate answered: the claim it may have made on its key freed, a `running` status removed. */
async function freeUnaccepted(
  ctx: RecoveryContext,
  name: string,
  input: ExecutionInput | null,
  entries: JournalEntry[],
  onlyItsOwn = false,
): Promise<RecoveredExecution> {
  const source = input ? claimedSource(input.body) : null;
  const key = input ? idempotencyKeyOf(input.headers) : null;
  const freed =
    ctx.idempotency && source && key && 'key' in key && key.key
      ? await ctx.idempotency.releaseInProgress(
          idempotencyPk(source, key.key),
          onlyItsOwn && input ? requestIdentity(input) : undefined,
        )
      : false;
  const removed = ctx.statuses && input ? await removeUnstartedStatus(ctx, input, entries) : null;
  return {
    execution_name: name,
    conversation_id: null,
    outcome: 'not_accepted',
    status: null,
    delivery_status: null,
    key_freed: freed,
    ...(removed ? { status_removed: removed } : {}),
  };
}

/**
 * Start an asynchronous conversation's run again (RecoveryContext.restart), its `begin` journaled before this returns.
 * Its key's claim is made fresh first: it lapsed (7 minutes) if the gateway was down longer, and then the start's sweep
 * removed it while the run went on, so the run's answer was not kept (WEBHOOK_IDEMPOTENCY_KEY_LOST) and a retry with
 * the key ran a second conversation, or was not refused as IDEMPOTENCY_KEY_REUSED for another body. Its status says
 * when it was started again: read 7 minutes after acceptance, it said `failed` (INTERNAL_ERROR, its run taken for
 * lost) while the run went on, then `completed`.
 */
async function startAgain(ctx: RecoveryContext, name: string, input: unknown, restart: RunRestart, now: Date) {
  const accepted = (input as { accepted?: { conversation?: ConversationRecord } } | null)?.accepted?.conversation;
  const key = accepted?.metadata?.idempotency_key;
  if (key && ctx.idempotency?.renewInProgress)
    await ctx.idempotency.renewInProgress(idempotencyPk(accepted.metadata.source_system, key), name, now);
  if (accepted?.conversation_id && ctx.statuses) await ctx.statuses.restarted(accepted.conversation_id, now);
  ctx.restart(name, input, ctx.journal.begin(name, input, restart), restart);
}

/**
 * The asynchronous runs the journal lost, started again: after an unclean stop, a conversation whose status still
 * says running, whose accept's saved history shows it started the run, and whose run left no journal line and no
 * history — its lines lost with the segment (a power cut, a disk fault, a file system without ordered writes). Its
 * caller had its 202. Before, nothing looked for it: no `recovered` line, the agent never called, nothing delivered
 * or exported, its status `running` (then INTERNAL_ERROR), and `conversations show` said it was still running.
 * Started from what the accept started it with, as a run cut before its agent's answer is.
 */
async function restartLostRuns(
  ctx: RecoveryContext,
  journaled: ReadonlySet<string>,
  now: Date,
): Promise<RecoveredExecution[]> {
  if (!ctx.statuses) return [];
  const restarted: RecoveredExecution[] = [];
  const statuses = ctx.statuses;
  // Read 32 at a time: one at a time, 20,000 statuses (a week of asynchronous conversations) took 4 to 7 s more at
  // an unclean start on a busy machine.
  const ids = (await statuses.idsStartingWith('')).filter((id) => !journaled.has(id)); // journaled: recovered above
  const running = await mapConcurrently(ids, 32, async (id) =>
    // A damaged one is the operator's (docs/operations.md, "After a crash").
    (await statuses.get(id).catch(() => null))?.status === 'running' ? id : null,
  );
  for (const id of running) {
    if (id === null) continue;
    const histories = await ctx.executions.executions(id);
    if (histories.some((h) => h.execution_name === id)) continue; // its run ended (saved)
    const accept = histories.find((h) => h.state_machine === 'accept' && h.status === 'SUCCEEDED');
    const started = accept?.events.find((e) => e.type === 'StateEntered' && e.state === 'StartConversation');
    if (!accept || !started) continue;
    const restart: RunRestart = {
      restart: 1,
      of: MAX_RESTARTS,
      earlier_started_at: accept.stopped_at ?? accept.started_at,
      earlier_cut_at: accept.stopped_at ?? accept.started_at,
      earlier_cut_by: 'its journal lines were lost (the journal cut by a power cut or a disk fault)',
    };
    await startAgain(ctx, id, { accepted: started.input }, restart, now);
    restarted.push({
      execution_name: id,
      conversation_id: id,
      outcome: 'restarted',
      status: 'running',
      delivery_status: null,
      restarts: 1,
      journal_lost: true,
    });
  }
  return restarted;
}

/** Finish every execution the journal shows interrupted; then forget the old journal. */
export async function recoverInterrupted(ctx: RecoveryContext): Promise<RecoveredExecution[]> {
  const now = ctx.now ?? (() => new Date());
  const interrupted = await ctx.journal.interrupted();
  // A history whose write the crash cut (its copy aside never renamed into place) is one of a journaled execution:
  // its leftovers go now, before it is rebuilt (they were removed only with the conversation's folder).
  const journaled = new Set<string>();
  for (const [, entries] of interrupted) {
    const id = journaledConversationId(entries);
    if (id) journaled.add(id);
    if (id) await ctx.executions.removeCutWrites(id);
  }
  // After a crash, the cut writes the journal does not point at go too (its lines lost with a power cut, the journal
  // removed by hand): before, they stayed until the retention sweep removed their conversation.
  const unclean = ctx.journal.leftoverFiles.length > 0 || ctx.uncleanStop;
  if (unclean) await ctx.executions.removeOrphanedCutWrites(journaled);
  const recovered: RecoveredExecution[] = [];
  // The runs the journal lost, before the journaled ones are taken up (a run the journal still has, the execution
  // named after its conversation, is recovered below): looking through every status after them gave the runs started
  // again time to go on before the start said what it recovered (a crash then left no line saying so).
  if (unclean) recovered.push(...(await restartLostRuns(ctx, new Set(interrupted.keys()), now())));
  const queue = [...interrupted];
  const unaccepted: [string, ExecutionInput | null, JournalEntry[]][] = [];
  const recoverOne = async (name: string, entries: JournalEntry[]) => {
    const redelivery = redeliveryInput(entries);
    if (redelivery) {
      recovered.push(await recoverRedelivery(ctx, name, entries, redelivery, now()));
      return;
    }
    const run = uncertainStart(entries);
    // The run is named after its conversation: cut too (then recovered on its own), or ended and saved.
    const runBegun =
      run !== null &&
      (interrupted.has(run) || (await ctx.executions.executions(run)).some((e) => e.execution_name === run));
    const plan = planRecovery(entries, now(), runBegun, await loggedAttempts(ctx, name, entries));
    if (plan.kind === 'unaccepted') unaccepted.push([name, plan.input, entries]);
    const finished = await finishPlanned(ctx, name, entries, plan, now());
    if (finished) recovered.push(finished);
  };
  // One execution that cannot be recovered stops the others from being taken up, but every one already under way
  // finishes first: none is left half done while the gateway stops (the journal keeps the rest for the next start).
  let failed: RecoveryFailed | undefined;
  // A stop asked (Ctrl-C) is looked at before each is taken up: before, the signal's default ended the process in the
  // middle of every one under way, a crash the next start recovered again.
  const worker = async () => {
    for (let next = queue.shift(); next && !failed; next = queue.shift()) {
      if (ctx.stopped?.()) {
        queue.unshift(next);
        return;
      }
      try {
        await recoverOne(...next);
      } catch (error) {
        const [name, entries] = next;
        const file = await ctx.setAside?.(name, entries, error).catch(() => null);
        if (!file) {
          failed ??= new RecoveryFailed(name, error);
          continue;
        }
        // Ended in the journal: the lines its failed replay wrote there are not found again at the next start.
        ctx.journal.resume(name, 'SetAside').end();
        recovered.push({
          execution_name: name,
          conversation_id: journaledConversationId(entries),
          outcome: 'set_aside',
          status: null,
          delivery_status: null,
          set_aside: { why: (error as Error)?.message ?? String(error), file },
        });
      }
    }
  };
  await Promise.all(Array.from({ length: PARALLEL }, worker));
  if (failed) throw failed;
  // The unaccepted ones taken up are freed at the next start with the rest (their journal lines are kept).
  if (queue.length > 0) throw new RecoveryStopped(queue.length + unaccepted.length, recovered);
  // After every resumed conversation settled its own key: a claim still in progress belongs to no live execution, or
  // to a run started again (which settles it when it ends): then only a claim the cut request made itself is freed.
  const running = recovered.some((r) => r.outcome === 'restarted');
  for (const [name, input, entries] of unaccepted)
    recovered.push(await freeUnaccepted(ctx, name, input, entries, running));
  await ctx.journal.forgetLeftovers();
  return recovered;
}

/**
 * Finish one execution of this process that the data folder cut (a line of its journal refused, so its caller had 503
 * STORAGE_UNAVAILABLE), once the folder takes writes again, exactly as the next start would have: before, it waited
 * for that start, its Idempotency-Key claimed meanwhile (409 to every retry), then free after 7 minutes for a second
 * conversation. A redelivery run too (recoverRedelivery): before, it was a failed run, and the schedule sent again an
 * attempt the receiver had taken. Throws while the folder still refuses (the journal's resume line, the history): try
 * again later.
 * `begun`: whether an execution of this process began, by its name (an accept execution's run: running, or cut too).
 */
export async function recoverCut(
  ctx: RecoveryContext,
  name: string,
  entries: JournalEntry[],
  begun: (name: string) => boolean,
): Promise<RecoveredExecution | null> {
  const now = ctx.now?.() ?? new Date();
  const redelivery = redeliveryInput(entries);
  if (redelivery) return recoverRedelivery(ctx, name, entries, redelivery, now);
  const run = uncertainStart(entries);
  const runBegun =
    run !== null && (begun(run) || (await ctx.executions.executions(run)).some((e) => e.execution_name === run));
  const plan = planRecovery(entries, now, runBegun, await loggedAttempts(ctx, name, entries));
  // Other executions run meanwhile: a claim of its key that is not its own may be one of theirs.
  if (plan.kind === 'unaccepted') return freeUnaccepted(ctx, name, plan.input, entries, true);
  return finishPlanned(ctx, name, entries, plan, now);
}
