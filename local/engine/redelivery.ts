/**
 * Local redelivery: the automatic schedule (a poller inside the running gateway) and operator redrives, both over
 * the failed-delivery port (functions/shared/redelivery.ts) with the local file store, each redelivery a run of
 * statemachine/redelivery.asl.json on the local engine. The store holds one conversation for one worker at a time,
 * so two redrives of one conversation deliver once. A scheduled run that fails is counted in its envelope as on AWS:
 * tried again 1, 2, 4, 8 minutes later, dead after the fifth failure in a row (docs/operations.md, "Failed deliveries").
 */
import { randomBytes } from 'node:crypto';
import type { LoggedAttempt } from '../../functions/domain/attempt-log.ts';
import { type ConversationRecord, fullRecord, type StateRecord } from '../../functions/domain/conversation.ts';
import {
  type FailedDeliveryEnvelope,
  givenUpRecord,
  owedBy,
  redeliveryContext,
  redeliveryExecutionName,
  settleRedelivery,
  withFailedRun,
  withLoggedAttempts,
  withUnexportedDelivery,
} from '../../functions/domain/failed-delivery.ts';
import {
  type Redeliver,
  type RedeliveryResult,
  type RedeliveryRun,
  redeliverHeld,
  resend,
  runSchedule,
  type ScheduleGate,
  type ScheduleLog,
} from '../../functions/shared/redelivery.ts';
import { wrongKindMessage } from '../store/damaged-files.ts';
import type { ExecutionStore } from '../store/execution-store.ts';
import type { LocalFailedDeliveryStore } from '../store/failed-delivery-store.ts';
import type { ExecutionRecord, HistoryEvent, LocalWorkflow } from './engine.ts';
import type { ExecutionJournal, JournaledRun } from './journal.ts';
import type { RunningExecutions } from './running.ts';

/**
 * The event a redelivery run's history ends with when its failure made the schedule give the delivery up: its output
 * is the record given up (delivery `failed`, why and when in its errors), which the local views read as the latest.
 */
const GIVEN_UP_EVENT = 'RedeliveryGivenUp';

/** The schedule's lines are for AWS's log groups; locally each result is reported (onResult), errors printed. */
const LOCAL_LOG: ScheduleLog = {
  info: () => {},
  warn: () => {},
  error: (message, ...extra) =>
    console.error(`webhook-gateway: ${message} ${JSON.stringify(Object.assign({}, ...extra))}`),
};

/**
 * The Redeliver port on the local engine; every run's history is saved beside the conversation's. Each run is
 * journaled as a conversation is, so that one a crash cuts is shown, and finished when it can be, at the next start
 * (recovery.ts; docs/operations.md, "After a crash").
 */
function localRedeliver(
  store: LocalFailedDeliveryStore,
  workflow: LocalWorkflow,
  executions: ExecutionStore,
  journal: ExecutionJournal,
  running: RunningExecutions | undefined,
  cut: CutRuns | undefined,
): Redeliver {
  return async (envelope, via) => {
    const schedule = store.schedule;
    const name = redeliveryExecutionName(envelope, randomBytes(3).toString('hex'));
    const input = { conversation: envelope.conversation, redelivery: redeliveryContext(envelope, via, schedule) };
    // In flight (what a graceful stop waits for: the gateway's inFlight) until its envelope is stored, and shown by
    // the console as far as it went meanwhile (docs/operations.md).
    const shown = running?.begin(name, workflow.name, input);
    try {
      return await redeliverOnce(store, workflow, executions, journal, envelope, via, name, input, shown?.onEvent, cut);
    } finally {
      shown?.end();
    }
  };
}

async function redeliverOnce(
  store: LocalFailedDeliveryStore,
  workflow: LocalWorkflow,
  executions: ExecutionStore,
  journal: ExecutionJournal,
  envelope: FailedDeliveryEnvelope,
  via: Parameters<Redeliver>[1],
  name: string,
  input: unknown,
  onEvent: ((event: HistoryEvent) => void) | undefined,
  cut: CutRuns | undefined,
): Promise<RedeliveryRun> {
  const schedule = store.schedule;
  const journaled = journal.begin(name, input);
  const execution = await workflow.run(input, name, { observer: journaled, onEvent });
  // Cut by the data folder (a step it could not journal did not run, or its result was not kept): not a failed run.
  // Its envelope stays as it was, and the gateway finishes the run once the folder takes writes again, before any
  // other redelivery (CutRuns), as the next start would: an attempt the receiver took is exported delivered and
  // settled, not sent again (docs/operations.md, "After a crash").
  if (cut && journaled.refused && execution.status !== 'SUCCEEDED') {
    cut.add(name, journaled);
    return {
      ok: false,
      execution_name: name,
      status: execution.status,
      error: `${execution.error}: ${execution.cause ?? ''}`,
      cut: true,
    };
  }
  const settled =
    execution.status === 'SUCCEEDED' ? settleRedelivery(envelope, execution.output, via, new Date(), schedule) : null;
  const ran: RedeliveryRun = !settled
    ? {
        ok: false,
        execution_name: name,
        status: execution.status,
        error: `${execution.error}: ${execution.cause ?? ''}`,
      }
    : !settled.ok
      ? {
          ok: false,
          execution_name: name,
          status: execution.status,
          error: settled.error,
          ...(settled.updated ? { updated: settled.updated } : {}),
          ...(settled.refused ? { refused: true as const } : {}),
        }
      : { ok: true, execution_name: name, record: settled.record, updated: settled.updated };
  // A run that delivered and then failed (in Export: its time ran out, the Lambda failed past CloseWithoutExport)
  // owes only the export now, or the next run would deliver it again. A scheduled run that did not succeed is a
  // failed run of its envelope (one whose Deliver Lambda would not run comes so, settleRedelivery). Either is the run's
  // `updated`, which redeliverHeld stores as it is.
  const delivered = !ran.ok && via !== 'resend' ? deliveredBy(execution) : null;
  const failed = delivered
    ? withUnexportedDelivery(envelope, delivered, ran.ok ? '' : ran.error, new Date())
    : !ran.ok && via === 'schedule'
      ? (ran.updated ?? withFailedRun(envelope, ran.error, new Date()))
      : null;
  const givenUp = failed && givenUpRecord(failed);
  try {
    await executions.save(envelope.conversation_id, failed ? withGivenUp(execution, failed) : execution);
  } catch (error) {
    // The run delivered (or not) all the same: settle the envelope by what it did, or the schedule would deliver it
    // again at each retry of the run. Only this run's history is missing.
    console.error(
      `webhook-gateway: the history of redelivery ${name} (conversation ${envelope.conversation_id}) could not be saved: ${(error as Error).message}`,
    );
  }
  // The envelope is kept as the run left it before the journal says the run ended (its caller stores it again and
  // lets it go): ended first, a crash in between left it as before the run, and the schedule delivered it again, or
  // never counted the failed run. A crash after this write and before the end is recovered, and recovery finds the
  // envelope settled (or the failed run counted) already.
  const updated = ran.ok ? (via !== 'resend' ? ran.updated : null) : failed;
  // Written before its dead envelope: a crash in between leaves the run open, and recovery gives it up again.
  if (givenUp) await publishGivenUpLocally(failed);
  const stored = updated ? await kept(store, updated, name) : true;
  if (stored) journaled.end();
  return !ran.ok && failed ? { ...ran, updated: failed } : ran;
}

/**
 * The history of the run that made the schedule give its delivery up (givenUpRecord of the envelope it left) ends with
 * the record given up: what `conversations list | show` and the console read (the export says the same:
 * publishGivenUp). Any other run's history is returned as it is.
 */
function withGivenUp<E extends ExecutionRecord>(execution: E, left: FailedDeliveryEnvelope): E {
  const record = givenUpRecord(left);
  if (!record) return execution;
  const event = { type: GIVEN_UP_EVENT, timestamp: Date.parse(left.updated_at), output: { conversation: record } };
  return { ...execution, events: [...execution.events, event] };
}

/**
 * A delivery the schedule gave up on (givenUpRecord), written to its export and status as on AWS (publishGivenUp);
 * one that fails is printed, and the envelope is stored all the same.
 */
export async function publishGivenUpLocally(envelope: FailedDeliveryEnvelope): Promise<void> {
  try {
    // Imported when first needed: its S3 client reads the endpoint the gateway sets at its start.
    await (await import('../../functions/shared/given-up.ts')).publishGivenUp(envelope, new Date());
  } catch (error) {
    console.error(
      `webhook-gateway: the delivery of ${envelope.conversation_id} was given up, but its export or status could not be written (they may still say retrying): ${(error as Error).message}`,
    );
  }
}

/**
 * The record a redelivery run's Deliver left delivered (its last StateExited), or null when the run delivered
 * nothing: a run that then failed owes only its export (withUnexportedDelivery).
 */
export function deliveredBy(execution: Pick<ExecutionRecord, 'events'>): ConversationRecord | null {
  const exited = execution.events.findLast((e) => e.type === 'StateExited' && e.state === 'Deliver');
  return deliveredIn(exited?.output);
}

/** The record a redelivery state holds delivered (Deliver's output, Export's input), or null. */
export function deliveredIn(state: unknown): ConversationRecord | null {
  const given = (state as { conversation?: StateRecord } | undefined)?.conversation;
  if (given?.webhook_context?.delivery_status !== 'delivered' || !given.execution) return null;
  const record = fullRecord(given);
  return record.execution.delivery_attempts.at(-1)?.outcome === 'delivered' ? record : null;
}

/**
 * Whether the envelope could be written. Not (a full disk): the run stays open in the journal, so the next start
 * settles the envelope by it, should its caller's store fail too.
 */
async function kept(store: LocalFailedDeliveryStore, updated: FailedDeliveryEnvelope, name: string): Promise<boolean> {
  try {
    await store.put(updated);
    return true;
  } catch (error) {
    console.error(
      `webhook-gateway: the envelope of redelivery ${name} could not be stored; the next start settles it from the journal: ${(error as Error).message}`,
    );
    return false;
  }
}

/**
 * The gateway's runs that the data folder cut (local/server/gateway.ts): `add` one, `finish` them all (each as the
 * next start would) before the next redelivery runs.
 */
export interface CutRuns {
  add(name: string, run: JournaledRun): void;
  /** Whether none is left (false: the folder still refuses them). */
  finish(): Promise<boolean>;
}

/** An operator's redrive or resend while a run the data folder cut is unfinished: nothing is done for it. */
export const cutUnfinished = (conversationId: string): RedeliveryResult => ({
  conversation_id: conversationId,
  status: 'skipped',
  error:
    'a redelivery run the data folder cut is not finished yet (the folder refused a write): try again in a few seconds',
});

export class LocalRedelivery {
  private readonly redeliver: Redeliver;
  private timer: NodeJS.Timeout | null = null;
  private sweeping: Promise<RedeliveryResult[]> | null = null;
  /** The last failure of the schedule that was printed (null once a run succeeds). */
  private lastFailure: string | null = null;
  private readonly redrives = new Set<Promise<unknown>>();
  /** Set by stop() for the sweep under way: it sends no other envelope. */
  private sweepStopped = false;

  /**
   * `gate`: made for each run of the schedule (endpointGate: it reads each receiver once per run); none: every due
   * envelope is redelivered. `logged`: a conversation's attempts in the attempt log (local/server/gateway.ts: its file
   * under deliveries/attempts/), read once before each redelivery of an owed delivery, of the schedule or a redrive:
   * the tries its envelope lacks are counted before its run is named (withLoggedAttempts); none: as the envelope has them.
   */
  constructor(
    private readonly store: LocalFailedDeliveryStore,
    workflow: LocalWorkflow,
    executions: ExecutionStore,
    journal: ExecutionJournal,
    private readonly gate?: () => ScheduleGate | undefined,
    running?: RunningExecutions,
    private readonly cut?: CutRuns,
    private readonly logged?: (conversationId: string) => Promise<readonly LoggedAttempt[]>,
  ) {
    this.redeliver = localRedeliver(store, workflow, executions, journal, running, cut);
  }

  /**
   * An operator's resend of a delivered conversation (the caller checked resendRefusal, after cutFinished: a resend
   * the data folder cut is in the record then). Skipped while a run the folder cut is unfinished (as redrive).
   */
  resend(record: ConversationRecord): Promise<RedeliveryResult> {
    const run = (async (): Promise<RedeliveryResult> =>
      (await this.cutFinished())
        ? // The tries only the attempt log has, counted before the run is named (a log that cannot be read: none).
          resend(
            record,
            this.redeliver,
            new Date(),
            this.logged ? await this.logged(record.conversation_id).catch(() => []) : [],
          )
        : cutUnfinished(record.conversation_id))();
    this.redrives.add(run);
    return run.finally(() => this.redrives.delete(run));
  }

  /** An operator's redrive of one conversation, due or not, pending or dead. */
  redrive(conversationId: string): Promise<RedeliveryResult> {
    const run = (async (): Promise<RedeliveryResult> => {
      // A run the data folder cut may have delivered it: nothing is sent until that run is finished (as runDue).
      if (!(await this.cutFinished())) return cutUnfinished(conversationId);
      const item = await this.store.hold(conversationId);
      if (!item)
        return {
          conversation_id: conversationId,
          status: 'not_found',
          error: `no failed delivery of ${conversationId} is stored (none was owed, or its file was deleted): nothing was attempted`,
        };
      if (item.envelope.state === 'settled') {
        await this.store.leave(item);
        return { conversation_id: conversationId, status: 'already_delivered', envelope: item.envelope };
      }
      // The tries only the attempt log has, counted before the run is named after its attempt (as the schedule does). A
      // log that cannot be read: the envelope as it is (its Deliver still numbers the attempt after the log's last).
      const logged =
        this.logged && owedBy(item.envelope) === 'delivery' ? await this.logged(conversationId).catch(() => []) : [];
      const counted = withLoggedAttempts(item.envelope, logged);
      return redeliverHeld(
        this.store,
        counted === item.envelope ? item : { ...item, envelope: counted },
        this.redeliver,
        'redrive',
        () => new Date(),
      );
    })();
    this.redrives.add(run);
    return run.finally(() => this.redrives.delete(run));
  }

  /** One run of the schedule: every pending envelope that is due, redelivered once. Runs never overlap. */
  runDue(): Promise<RedeliveryResult[]> {
    if (this.sweeping) return this.sweeping;
    this.sweepStopped = false;
    this.sweeping = (async () => {
      const results: RedeliveryResult[] = [];
      // A run the data folder cut may have delivered: finished first (its envelope settled by it), or, while the folder
      // still refuses it, no envelope is sent.
      if (!(await this.cutFinished())) return results;
      await runSchedule(this.store, this.redeliver, {
        remainingMs: () => Number.POSITIVE_INFINITY,
        reserveMs: 0,
        minHoldSeconds: 0,
        log: LOCAL_LOG,
        onResult: (result) => results.push(result),
        gate: this.gate?.(),
        ...(this.logged
          ? { logged: (envelope: FailedDeliveryEnvelope) => this.logged!(envelope.conversation_id) }
          : {}),
        stopped: () => this.sweepStopped,
      });
      return results;
    })().finally(() => {
      this.sweeping = null;
    });
    return this.sweeping;
  }

  /** The runs the data folder cut, finished before the next redelivery (true: none is left). */
  cutFinished(): Promise<boolean> {
    return this.cut?.finish() ?? Promise.resolve(true);
  }

  start(pollMs: number, onResult?: (result: RedeliveryResult) => void): void {
    if (pollMs <= 0 || this.timer) return;
    this.timer = setInterval(() => {
      // A sweep still running reports its results once, when it ends: a tick does not wait on it again.
      if (this.sweeping) return;
      this.runDue().then(
        (results) => {
          this.lastFailure = null;
          for (const r of results) onResult?.(r);
        },
        (error: Error) => {
          // Said once, not at every tick, until it changes or a run succeeds.
          const line = `webhook-gateway: redelivery sweep failed: ${wrongKindMessage(error) ?? error.message}`;
          if (line !== this.lastFailure) console.error(line);
          this.lastFailure = line;
        },
      );
    }, pollMs);
    this.timer.unref();
  }

  /**
   * Stops the schedule between envelopes: a sweep under way sends no other (those not sent stay pending, as they were,
   * for the next start), and this waits for the redeliveries already begun, which are what the gateway counts in
   * flight (RunningExecutions), and for the operators' redrives and resends.
   */
  async stop(): Promise<void> {
    this.sweepStopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    await this.sweeping?.catch(() => undefined); // a run that failed said so (start)
    await Promise.allSettled([...this.redrives]);
  }
}
