/**
 * A conversation's time and delivery figures, the same in `conversations show` and the console. The record keeps one
 * attempt per Deliver run that returned (a try the workflow's Retry repeated threw, so its record was not kept) and
 * the last attempt's duration; the execution histories have every try. So: tries counts every POST (each Deliver
 * entry and each of its retries, in every execution), delivery is the time spent in Deliver (retry waits included),
 * total is the record's (received → closed, what the caller gets as processing_time_ms) and run the first execution's
 * span, the end of its timeline (the export's own writes come after total).
 */
import type { ConversationRecord } from '../../functions/domain/conversation.ts';
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

export function conversationFigures(record: ConversationRecord, executions: ExecutionRecord[]): ConversationFigures {
  const deliver = executions.flatMap(timeline).filter((row) => row.state === 'Deliver');
  const retries = deliver.reduce((n, row) => n + row.retries, 0);
  const first = executions[0];
  const stopped = first ? Date.parse(first.stopped_at) : Number.NaN;
  return {
    agent_ms: record.execution.timings.agent_ms,
    delivery_ms:
      deliver.length > 0
        ? deliver.reduce((n, row) => n + (row.duration_ms ?? 0), 0)
        : record.execution.timings.delivery_ms,
    tries: Math.max(record.execution.delivery_attempts.length, deliver.length + retries),
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
