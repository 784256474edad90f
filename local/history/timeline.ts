import { printable } from '../../functions/domain/unicode.ts';
import type { ExecutionRecord, HistoryEvent, RunRestart } from '../engine/engine.ts';

/** One row of a conversation's timeline: a state as the execution history shows it. */
export interface TimelineRow {
  state: string;
  started_at: string;
  duration_ms: number | null;
  retries: number;
  status: 'succeeded' | 'failed' | 'caught' | 'running';
  error: string | null;
}

function causeText(cause: unknown): string {
  const text = typeof cause === 'string' ? cause : JSON.stringify(cause ?? '');
  try {
    const parsed = JSON.parse(text) as { message?: unknown; errorMessage?: unknown; error?: { message?: unknown } };
    const m = parsed.message ?? parsed.error?.message ?? parsed.errorMessage;
    if (typeof m === 'string') return causeText(m);
  } catch {
    // plain text
  }
  return text;
}

/** Fold an execution's events into one row per state entered, in order. */
export function timeline(record: ExecutionRecord): TimelineRow[] {
  const rows: (TimelineRow & { enteredAt: number })[] = [];
  let current: (TimelineRow & { enteredAt: number }) | null = null;
  const close = (event: HistoryEvent, status: TimelineRow['status']) => {
    if (!current) return;
    current.duration_ms = event.timestamp - current.enteredAt;
    current.status = status;
  };
  for (const event of record.events) {
    switch (event.type) {
      case 'StateEntered':
        current = {
          state: event.state ?? '?',
          started_at: new Date(event.timestamp).toISOString(),
          duration_ms: null,
          retries: 0,
          status: 'running',
          error: null,
          enteredAt: event.timestamp,
        };
        rows.push(current);
        break;
      case 'StateRetried':
        if (current) current.retries += 1;
        break;
      case 'StateFailed':
        if (current) current.error = `${event.error}: ${causeText(event.cause)}`;
        close(event, 'failed');
        break;
      case 'StateCaught':
        close(event, 'caught');
        break;
      case 'StateExited':
        if (current && current.status !== 'caught') close(event, 'succeeded');
        break;
      default:
        break;
    }
  }
  return rows.map(({ enteredAt: _enteredAt, ...row }) => row);
}

/** What a run started again says of itself (`conversations show`, the console's conversation page). */
export function restartLine(restart: RunRestart): string {
  return `restart ${restart.restart} of ${restart.of}: the run before it (started ${restart.earlier_started_at}) was cut at ${restart.earlier_cut_at}: ${restart.earlier_cut_by}`;
}

/**
 * An execution as `conversations show` prints it. Its errors are printable: a Deliver's carries the receiver's answer
 * (`HTTP 410: <its body>`), an agent failure the agent's message, either of which could hold escape sequences.
 */
export function formatTimeline(record: ExecutionRecord): string {
  const rows = timeline(record);
  const lines = [
    `execution ${record.execution_name} (${record.state_machine}) ${record.status} at ${record.started_at}` +
      (record.error ? ` — ${printable(record.error)}` : ''),
    `  ${'state'.padEnd(26)} ${'start'.padEnd(12)} ${'duration'.padStart(9)} ${'retries'.padStart(7)}  result`,
  ];
  if (record.restart) lines.push(`  ${restartLine(record.restart)}`);
  const t0 = Date.parse(record.started_at);
  for (const row of rows) {
    const offset = `+${Date.parse(row.started_at) - t0} ms`;
    const duration = row.duration_ms === null ? '-' : `${row.duration_ms} ms`;
    const result = row.error ? `${row.status}: ${printable(row.error.slice(0, 160))}` : row.status;
    lines.push(
      `  ${row.state.padEnd(26)} ${offset.padEnd(12)} ${duration.padStart(9)} ${String(row.retries).padStart(7)}  ${result}`,
    );
  }
  lines.push(`  path: ${rows.map((r) => r.state).join(' → ')}`);
  return lines.join('\n');
}
