import { asyncRunEndsBy, type Budget } from '../../functions/domain/budget.ts';
import type { ExecutionRecord, HistoryEvent } from './engine.ts';

/**
 * How many conversations have an execution under way (each once, however many of its executions: an asynchronous
 * one's accept run and its conversation run, a redelivery), and the latest time they all end by (null: none).
 */
export interface InFlight {
  count: number;
  endsBy: Date | null;
}

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
        if (this.runs.get(executionName) !== record) return;
        this.runs.delete(executionName);
        this.changes++;
      },
    };
  }

  /** Copies of the executions under way (their events as seen so far), oldest first. */
  list(): ExecutionRecord[] {
    return [...this.runs.values()].map((r) => ({ ...r, events: [...r.events] }));
  }

  /**
   * The executions under way and when the last of them ends at the latest (what a graceful stop waits for): a
   * conversation by its budget once Validate decided it (functions/domain/budget.ts: a synchronous one by its
   * `answer_by`, an asynchronous one by its agent's seconds and the reserves after them), any other execution, or one
   * not budgeted yet, by its workflow's TimeoutSeconds (`limitMs`, where the engine ends it).
   */
  inFlight(limitMs: (stateMachine: string) => number | null, deliveryTimeoutMs: number): InFlight {
    let latest: number | null = null;
    // Before: each execution counted, so an asynchronous conversation counted twice while its accept run's history
    // was saved after its conversation run had begun. One conversation is one, by the latest of its executions' ends.
    const conversations = new Set<string>();
    for (const run of this.runs.values()) {
      conversations.add(conversationOf(run) ?? run.execution_name);
      const started = Date.parse(run.started_at);
      const limit = limitMs(run.state_machine);
      const backstop = limit === null ? Number.POSITIVE_INFINITY : started + limit;
      const budget = run.state_machine === 'conversation' ? budgetOf(run.events) : null;
      const byBudget = !budget
        ? backstop
        : budget.answer_by
          ? Date.parse(budget.answer_by)
          : asyncRunEndsBy(started, budget.agent_seconds, deliveryTimeoutMs);
      const end = Math.min(backstop, Number.isNaN(byBudget) ? backstop : byBudget);
      latest = latest === null ? end : Math.max(latest, end);
    }
    return {
      count: conversations.size,
      endsBy: latest === null || !Number.isFinite(latest) ? null : new Date(latest),
    };
  }

  /** A number that changes whenever what `list` gives does. */
  version(): number {
    return this.changes;
  }
}

/** The budget Validate decided for a conversation (its output's `budget`), once it has. */
function budgetOf(events: HistoryEvent[]): Budget | null {
  for (const event of events) {
    const output = event.output as { budget?: Budget } | null | undefined;
    if (event.state === 'Validate' && output && typeof output === 'object' && output.budget) return output.budget;
  }
  return null;
}

/**
 * The conversation an execution works on: its input's (a redelivery's), the accepted one it was started with (an
 * asynchronous conversation run), or the one a state gave out (Validate's); null before any is known.
 */
function conversationOf(run: ExecutionRecord): string | null {
  const input = run.input as { conversation?: Conversation; accepted?: { conversation?: Conversation } } | null;
  const given = input?.conversation?.conversation_id ?? input?.accepted?.conversation?.conversation_id;
  if (typeof given === 'string') return given;
  for (const event of run.events) {
    const id = (event.output as { conversation?: Conversation } | null | undefined)?.conversation?.conversation_id;
    if (typeof id === 'string') return id;
  }
  return null;
}

type Conversation = { conversation_id?: unknown };
