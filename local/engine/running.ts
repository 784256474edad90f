import type { ExecutionRecord, HistoryEvent } from './engine.ts';

/**
 * The executions the running gateway has under way, each as its history so far (status RUNNING), until its history
 * is saved: a synchronous conversation (its caller waiting for the answer) has no saved history before its end, and
 * the console shows it running from its first state on (docs/operations.md), as it shows an asynchronous one.
 */
export class RunningExecutions {
  private readonly runs = new Map<string, ExecutionRecord>();
  /** Changes with every execution begun, event seen and execution ended: the console's pages poll it. */
  private changes = 0;

  /** One execution begun: `onEvent` for its engine run, `end` once its history is saved (or given up). */
  begin(
    executionName: string,
    stateMachine: string,
    input: unknown,
  ): { onEvent: (event: HistoryEvent) => void; end: () => void } {
    const record: ExecutionRecord = {
      execution_name: executionName,
      state_machine: stateMachine,
      status: 'RUNNING',
      started_at: new Date().toISOString(),
      stopped_at: '',
      input,
      events: [],
    };
    this.runs.set(executionName, record);
    this.changes++;
    return {
      onEvent: (event) => {
        record.events.push(event);
        this.changes++;
      },
      end: () => {
        if (this.runs.delete(executionName)) this.changes++;
      },
    };
  }

  /** Copies of the executions under way (their events as seen so far), oldest first. */
  list(): ExecutionRecord[] {
    return [...this.runs.values()].map((r) => ({ ...r, events: [...r.events] }));
  }

  /** A number that changes whenever what `list` gives does. */
  version(): number {
    return this.changes;
  }
}
