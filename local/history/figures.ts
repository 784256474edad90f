/**
 * A conversation's time and delivery figures, the same in `conversations show` and the console. The record keeps one
 * attempt per Deliver run that returned (a try the workflow's Retry repeated threw, so its record was not kept) and
 * the last attempt's duration; the execution histories have every try. So: tries counts every POST (each Deliver
 * entry and each of its retries, in every execution; a Deliver that ended in a deferral without an attempt of its own,
 * a held receiver or the caller's deadline, or that Lambda would not run, sent nothing that time), delivery is the
 * time spent in Deliver by the conversation's own run (retry waits included; not in a Deliver that sent nothing at
 * all), a part of total, and each redelivery after it (the schedule's, a redrive, a resend: minutes or days later,
 * outside total) is one of `later`, with when it ran and its own delivery time,
 * total is the record's (received → closed, what the caller gets as processing_time_ms) and run the span of the
 * conversation workflow's execution (not an asynchronous start's accept execution), the end of its timeline (the
 * export's own writes come after total).
 */
import type { ConversationRecord } from '../../functions/domain/conversation.ts';
import { isDeferral, isLambdaRefusal } from '../../functions/domain/delivery.ts';
import { printable } from '../../functions/domain/unicode.ts';
import type { ExecutionRecord } from '../engine/engine.ts';
import { timeline } from './timeline.ts';

/**
 * A redelivery that sent something, is still running, or that Lambda refused to run (it sent nothing, 0 tries: its
 * conversation still waits, and an operator reading the conversation sees that run and why): when its run started,
 * what ran it, its time in Deliver, its tries, and what it did: `delivered`, `failed: HTTP 503`, `refused by Lambda
 * (…)`, `still running`.
 */
export interface LaterDelivery {
  at: string;
  via: string;
  delivery_ms: number | null;
  tries: number;
  result: string;
}

export interface ConversationFigures {
  agent_ms: number | null;
  /** The time the conversation's own run spent delivering (a part of total_ms), or null when it sent nothing. */
  delivery_ms: number | null;
  /** Every try, the redeliveries' included. */
  tries: number;
  /** The tries of the conversation's own run (its retries included), and its retries in the workflow. */
  run_tries: number;
  retries: number;
  total_ms: number | null;
  run_ms: number | null;
  /**
   * The redeliveries after the run that sent something, still run or that Lambda refused, oldest first (their times
   * are not part of total_ms).
   */
  later: LaterDelivery[];
}

/**
 * Whether each Deliver entry of an execution, in order, ended in a deferral without an attempt of its own (its last
 * failure is a DeliveryDeferredError that carries no attempt: functions/domain/delivery.ts isDeferral) or in Lambda's
 * refusal to run it (isLambdaRefusal): that pass sent nothing; only its retries, if any, did.
 */
function deliverDeferrals(record: ExecutionRecord): boolean[] {
  const deferred: boolean[] = [];
  for (const event of record.events) {
    if (event.state !== 'Deliver') continue;
    if (event.type === 'StateEntered') deferred.push(false);
    else if (event.type === 'StateFailed' && deferred.length > 0) {
      const cause = typeof event.cause === 'string' ? event.cause : JSON.stringify(event.cause ?? '');
      deferred[deferred.length - 1] =
        isDeferral({ Error: event.error ?? '', Cause: cause }) || isLambdaRefusal(event.error);
    }
  }
  return deferred;
}

/** What each execution's Deliver entries sent: the entries that sent something, and how many POSTs in all. */
function deliverSent(execution: ExecutionRecord) {
  const deferred = deliverDeferrals(execution);
  const rows = timeline(execution)
    .filter((row) => row.state === 'Deliver')
    .map((row, i) => ({ row, sent: row.retries + (deferred[i] ? 0 : 1) }));
  // A Deliver that sent nothing (held, or no time left) is neither a try nor delivery time.
  const sending = rows.filter((r) => r.sent > 0).map((r) => r.row);
  return {
    ms: sending.length > 0 ? sending.reduce((n, row) => n + (row.duration_ms ?? 0), 0) : null,
    retries: sending.reduce((n, row) => n + row.retries, 0),
    tries: rows.reduce((n, r) => n + r.sent, 0),
  };
}

/** What ran a redelivery execution (its input says: schedule, redrive or resend). */
function viaOf(execution: ExecutionRecord): string {
  const via = (execution.input as { redelivery?: { via?: unknown } } | null)?.redelivery?.via;
  return typeof via === 'string' ? via : 'redelivery';
}

type Attempt = ConversationRecord['execution']['delivery_attempts'][number];

/** How an attempt the record keeps ended: `delivered`, or `failed: HTTP 503` (its error when no answer came). */
function attemptResult(a: Attempt | undefined): string | null {
  if (a === undefined) return null;
  if (a.outcome === 'delivered') return 'delivered';
  return `failed: ${a.status_code !== undefined ? `HTTP ${a.status_code}` : printable((a.error ?? a.outcome).slice(0, 100))}`;
}

const REFUSED = 'refused by Lambda ';

/**
 * What a redelivery run did, by its last Deliver (and the attempt it made, named by its execution): before, the
 * console called each one "redelivered", a failed one too.
 */
function laterResult(execution: ExecutionRecord, attempts: Attempt[]): string {
  const deliver = timeline(execution)
    .filter((row) => row.state === 'Deliver')
    .at(-1);
  if (execution.status === 'RUNNING' || deliver?.status === 'running') return 'still running';
  if (deliver?.status === 'succeeded') return 'delivered';
  const errorName = deliver?.error?.split(':')[0];
  if (isLambdaRefusal(errorName)) return `${REFUSED}(${errorName})`;
  const attempt = attemptResult(attempts.filter((a) => a.execution_name === execution.execution_name).at(-1));
  if (attempt !== null) return attempt;
  const error = deliver?.error ?? execution.error;
  return `failed${error ? `: ${printable(error.slice(0, 100))}` : ''}`;
}

const sum = (values: (number | null)[]) =>
  values.some((v) => v !== null) ? values.reduce<number>((n, v) => n + (v ?? 0), 0) : null;

export function conversationFigures(record: ConversationRecord, executions: ExecutionRecord[]): ConversationFigures {
  const own = executions.filter((e) => e.state_machine !== 'redelivery').map(deliverSent);
  const attempts = record.execution.delivery_attempts;
  const later = executions
    .filter((e) => e.state_machine === 'redelivery')
    .map((e) => ({ at: e.started_at, via: viaOf(e), ...deliverSent(e), result: laterResult(e, attempts) }))
    .filter((e) => e.tries > 0 || e.result === 'still running' || e.result.startsWith(REFUSED));
  // Without a history (aged out, or run elsewhere): the record's attempts, each redelivery's its own.
  const keptLater = attempts.filter((a) => a.via !== undefined && a.via !== 'workflow');
  const runTries = own.reduce((n, e) => n + e.tries, 0);
  const sent = runTries + later.reduce((n, e) => n + e.tries, 0);
  // The conversation workflow's run: an asynchronous conversation's accept execution comes first and lasts milliseconds.
  const first = executions.find((e) => e.state_machine === 'conversation') ?? executions[0];
  const stopped = first ? Date.parse(first.stopped_at) : Number.NaN;
  return {
    agent_ms: record.execution.timings.agent_ms,
    delivery_ms:
      executions.length > 0
        ? sum(own.map((e) => e.ms))
        : (attempts.filter((a) => !keptLater.includes(a)).at(-1)?.duration_ms ?? null),
    tries: Math.max(attempts.length, sent),
    run_tries: executions.length > 0 ? runTries : attempts.length - keptLater.length,
    retries: own.reduce((n, e) => n + e.retries, 0),
    total_ms: record.execution.timings.total_ms,
    run_ms: first && Number.isFinite(stopped) ? stopped - Date.parse(first.started_at) : null,
    later:
      executions.length > 0
        ? later.map(({ at, via, ms, tries, result }) => ({ at, via, delivery_ms: ms, tries, result }))
        : keptLater.map((a) => ({
            at: a.at,
            via: a.via!,
            delivery_ms: a.duration_ms,
            tries: 1,
            result: attemptResult(a)!,
          })),
  };
}

const ms = (value: number | null) => (value === null ? '-' : `${value} ms`);

const tries = (n: number) => `${n} ${n === 1 ? 'try' : 'tries'}`;

/**
 * How each redelivery went: `redrive at <time>: delivered, delivery 43 ms (1 try)`, `schedule at <time>: failed: HTTP
 * 503, delivery 40 ms (1 try)`, `resend at <time>: still running`, `schedule at <time>: refused by Lambda (…), nothing
 * sent`.
 */
export const formatLater = (l: LaterDelivery) =>
  l.result === 'still running'
    ? `${l.via} at ${l.at}: still running`
    : l.tries === 0
      ? `${l.via} at ${l.at}: ${l.result}, nothing sent`
      : `${l.via} at ${l.at}: ${l.result}, delivery ${ms(l.delivery_ms)} (${tries(l.tries)})`;

/** The run's own figures: `agent 12 ms · delivery 3012 ms (4 tries, 3 retries) · total 87 ms · run 147 ms`. */
export function formatRunFigures(f: ConversationFigures): string {
  const run =
    f.run_tries === 0
      ? f.later.length > 0
        ? ' (none in its run)'
        : ' (not attempted)'
      : ` (${tries(f.run_tries)}${f.retries > 0 ? `, ${f.retries} ${f.retries === 1 ? 'retry' : 'retries'} in the workflow` : ''})`;
  return `agent ${ms(f.agent_ms)} · delivery ${ms(f.delivery_ms)}${run} · total ${ms(f.total_ms)} · run ${ms(f.run_ms)}`;
}

/**
 * One line: the run's figures (formatRunFigures), then each redelivery (`· then redrive at <time>: delivery 43 ms (1
 * try)`): a redelivery's time is its own, never added to the run's.
 */
export function formatFigures(f: ConversationFigures): string {
  return `${formatRunFigures(f)}${f.later.map((l) => ` · then ${formatLater(l)}`).join('')}`;
}
