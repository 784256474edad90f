/**
 * A conversation's time and delivery figures, the same in `conversations show` and the console. The record keeps one
 * attempt per Deliver run that returned (a try the workflow's Retry repeated threw, so its record was not kept) and
 * the last attempt's duration; the execution histories have every try. So: tries counts every POST (each Deliver
 * entry and each of its retries, in every execution; a Deliver that ended in a deferral without an attempt of its own,
 * a held receiver or the caller's deadline, sent nothing that time), delivery is the time spent in Deliver (retry
 * waits included; not in a Deliver that sent nothing at all),
 * total is the record's (received → closed, what the caller gets as processing_time_ms) and run the span of the
 * conversation workflow's execution (not an asynchronous start's accept execution), the end of its timeline (the
 * export's own writes come after total).
 */
import type { ConversationRecord } from '../../functions/domain/conversation.ts';
import { isDeferral } from '../../functions/domain/delivery.ts';
import type { ExecutionRecord } from '../engine/engine.ts';
import { timeline } from './timeline.ts';

export interface ConversationFigures {
  agent_ms: number | null;
  delivery_ms: number | null;
  tries: number;
  retries: number;
  total_ms: number | null;
  run_ms: number | null;
}

/**
 * Whether each Deliver entry of an execution, in order, ended in a deferral without an attempt of its own (its last
 * failure is a DeliveryDeferredError that carries no attempt: functions/domain/delivery.ts isDeferral): that pass
 * sent nothing; only its retries, if any, did.
 */
function deliverDeferrals(record: ExecutionRecord): boolean[] {
  const deferred: boolean[] = [];
  for (const event of record.events) {
    if (event.state !== 'Deliver') continue;
    if (event.type === 'StateEntered') deferred.push(false);
    else if (event.type === 'StateFailed' && deferred.length > 0) {
      const cause = typeof event.cause === 'string' ? event.cause : JSON.stringify(event.cause ?? '');
      deferred[deferred.length - 1] = isDeferral({ Error: event.error ?? '', Cause: cause });
    }
  }
  return deferred;
}

export function conversationFigures(record: ConversationRecord, executions: ExecutionRecord[]): ConversationFigures {
  const rows = executions.flatMap((e) => {
    const deferred = deliverDeferrals(e);
    return timeline(e)
      .filter((row) => row.state === 'Deliver')
      .map((row, i) => ({ row, sent: row.retries + (deferred[i] ? 0 : 1) }));
  });
  // A Deliver that sent nothing (held, or no time left) is neither a try nor delivery time.
  const deliver = rows.filter((r) => r.sent > 0).map((r) => r.row);
  const retries = deliver.reduce((n, row) => n + row.retries, 0);
  const sent = rows.reduce((n, r) => n + r.sent, 0);
  // The conversation workflow's run: an asynchronous conversation's accept execution comes first and lasts milliseconds.
  const first = executions.find((e) => e.state_machine === 'conversation') ?? executions[0];
  const stopped = first ? Date.parse(first.stopped_at) : Number.NaN;
  return {
    agent_ms: record.execution.timings.agent_ms,
    delivery_ms:
      deliver.length > 0
        ? deliver.reduce((n, row) => n + (row.duration_ms ?? 0), 0)
        : record.execution.timings.delivery_ms,
    tries: Math.max(record.execution.delivery_attempts.length, sent),
    retries,
    total_ms: record.execution.timings.total_ms,
    run_ms: first && Number.isFinite(stopped) ? stopped - Date.parse(first.started_at) : null,
  };
}

const ms = (value: number | null) => (value === null ? '-' : `${value} ms`);

/** One line: `agent 12 ms · delivery 3012 ms (4 tries, 3 retries) · total 87 ms · run 147 ms`. */
export function formatFigures(f: ConversationFigures): string {
  const tries =
    f.tries === 0
      ? ' (not attempted)'
      : ` (${f.tries} ${f.tries === 1 ? 'try' : 'tries'}${f.retries > 0 ? `, ${f.retries} ${f.retries === 1 ? 'retry' : 'retries'} in the workflow` : ''})`;
  return `agent ${ms(f.agent_ms)} · delivery ${ms(f.delivery_ms)}${tries} · total ${ms(f.total_ms)} · run ${ms(f.run_ms)}`;
}
