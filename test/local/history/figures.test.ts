import { describe, expect, it } from 'vitest';
import type { ConversationRecord } from '../../../functions/domain/conversation.ts';
import type { ExecutionRecord, HistoryEvent } from '../../../local/engine/engine.ts';
import { conversationFigures, formatFigures } from '../../../local/history/figures.ts';
import { startedRecord } from '../../support/fixtures.ts';

const T0 = Date.parse('2026-12-01T10:00:00.000Z');
const at = (ms: number) => new Date(T0 + ms).toISOString();

function execution(events: [number, string, string?][], stoppedMs: number): ExecutionRecord {
  return {
    execution_name: 'req-1',
    state_machine: 'conversation',
    status: 'SUCCEEDED',
    started_at: at(0),
    stopped_at: at(stoppedMs),
    input: {},
    events: events.map(([ms, type, state]): HistoryEvent => ({ type, timestamp: T0 + ms, state })),
  };
}

/** A record as Export closes it: one attempt kept (the last try), total measured before the export's writes. */
function closedRecord(): ConversationRecord {
  const record = startedRecord();
  return {
    ...record,
    execution: {
      ...record.execution,
      delivery_attempts: [
        {
          attempt: 1,
          at: at(3_000),
          outcome: 'delivered',
          status_code: 200,
          duration_ms: 39,
          via: 'workflow',
        } as never,
      ],
      timings: { agent_ms: 20, delivery_ms: 39, total_ms: 3_087 },
    },
  };
}

describe('a conversation’s figures, the same in show and the console', () => {
  it('counts every try of Deliver (its retries included) and the time spent in it, not only the last attempt', () => {
    const history = execution(
      [
        [0, 'StateEntered', 'Validate'],
        [5, 'StateExited', 'Validate'],
        [10, 'StateEntered', 'Deliver'],
        [1_000, 'StateRetried', 'Deliver'],
        [2_000, 'StateRetried', 'Deliver'],
        [2_900, 'StateRetried', 'Deliver'],
        [3_040, 'StateExited', 'Deliver'],
        [3_050, 'StateEntered', 'Export'],
        [3_147, 'StateExited', 'Export'],
      ],
      3_147,
    );
    const figures = conversationFigures(closedRecord(), [history]);
    expect(figures).toEqual({
      agent_ms: 20,
      delivery_ms: 3_030,
      tries: 4,
      run_tries: 4,
      retries: 3,
      total_ms: 3_087,
      run_ms: 3_147,
      later: [],
    });
    expect(formatFigures(figures)).toBe(
      'agent 20 ms · delivery 3030 ms (4 tries, 3 retries in the workflow) · total 3087 ms · run 3147 ms',
    );
  });

  it('without a history (aged out) falls back to the record; a conversation never delivered says so', () => {
    expect(formatFigures(conversationFigures(closedRecord(), []))).toBe(
      'agent 20 ms · delivery 39 ms (1 try) · total 3087 ms · run -',
    );
    const record = startedRecord();
    expect(formatFigures(conversationFigures(record, []))).toBe(
      'agent - · delivery - (not attempted) · total - · run -',
    );
  });

  it('does not count a Deliver that sent nothing (a held receiver, no time left) as a try or as delivery time', () => {
    const held = JSON.stringify({ message: 'general is paused', target: 'http://r', hold: 'paused', status: 'queued' });
    const afterAttempt = JSON.stringify({
      message: 'HTTP 503; no time left',
      attempt: { attempt: 1, outcome: 'retryable', status_code: 503 },
      target: 'http://r',
    });
    const run = (name: string, deliver: HistoryEvent[], stoppedMs: number): ExecutionRecord => ({
      ...execution([], stoppedMs),
      execution_name: name,
      events: [
        { type: 'StateEntered', timestamp: T0 + 10, state: 'Deliver' },
        ...deliver,
        { type: 'StateExited', timestamp: T0 + 13, state: 'Deliver' },
      ],
    });
    const queued = run(
      'req-1',
      [
        { type: 'StateFailed', timestamp: T0 + 12, state: 'Deliver', error: 'DeliveryDeferredError', cause: held },
        { type: 'StateCaught', timestamp: T0 + 12, state: 'Deliver' },
      ],
      20,
    );
    const record = startedRecord();
    // Queued by a paused receiver: nothing was sent.
    expect(formatFigures(conversationFigures(record, [queued]))).toBe(
      'agent - · delivery - (not attempted) · total - · run 20 ms',
    );
    // Then the schedule delivered it: one try, its time only, not the run's.
    const scheduled = {
      ...run('req-1-redelivery-1', [], 20),
      state_machine: 'redelivery',
      started_at: at(3_600_000),
      input: { redelivery: { via: 'schedule' } },
    };
    expect(conversationFigures(closedRecord(), [queued, scheduled])).toMatchObject({
      tries: 1,
      run_tries: 0,
      delivery_ms: null,
      later: [{ at: at(3_600_000), via: 'schedule', delivery_ms: 3, tries: 1, result: 'delivered' }],
    });
    // A try that failed, retried, then ran out of time: two POSTs (the deferral carries the second's attempt).
    const retried = run(
      'req-2',
      [
        { type: 'StateFailed', timestamp: T0 + 11, state: 'Deliver', error: 'DeliveryRetryableError', cause: '{}' },
        { type: 'StateRetried', timestamp: T0 + 11, state: 'Deliver' },
        {
          type: 'StateFailed',
          timestamp: T0 + 12,
          state: 'Deliver',
          error: 'DeliveryDeferredError',
          cause: afterAttempt,
        },
        { type: 'StateCaught', timestamp: T0 + 12, state: 'Deliver' },
      ],
      20,
    );
    expect(conversationFigures(record, [retried])).toMatchObject({ tries: 2, retries: 1, delivery_ms: 2 });
  });

  it('does not count a redelivery whose Deliver Lambda would not run as a try: it sent nothing', () => {
    // Before: `· then schedule at …: delivery 0 ms (1 try)` for each refused run, a POST the receiver never got.
    const refused = {
      ...execution([], 20),
      execution_name: 'req-1-redelivery-2-abc',
      state_machine: 'redelivery',
      started_at: at(3_600_000),
      input: { redelivery: { via: 'schedule' } },
      events: [
        { type: 'StateEntered', timestamp: T0 + 10, state: 'Deliver' },
        {
          type: 'StateFailed',
          timestamp: T0 + 10,
          state: 'Deliver',
          error: 'Lambda.TooManyRequestsException',
          cause: 'Rate Exceeded.',
        },
        { type: 'StateCaught', timestamp: T0 + 10, state: 'Deliver' },
        { type: 'StateExited', timestamp: T0 + 10, state: 'Deliver' },
      ],
    };
    const own = execution(
      [
        [10, 'StateEntered', 'Deliver'],
        [3_040, 'StateExited', 'Deliver'],
      ],
      3_147,
    );
    const figures = conversationFigures(closedRecord(), [own, refused]);
    expect(figures).toMatchObject({
      tries: 1,
      later: [
        {
          at: at(3_600_000),
          via: 'schedule',
          delivery_ms: null,
          tries: 0,
          result: 'refused by Lambda (Lambda.TooManyRequestsException)',
        },
      ],
    });
    expect(formatFigures(figures)).toBe(
      `agent 20 ms · delivery 3030 ms (1 try) · total 3087 ms · run 3147 ms · then schedule at ${at(3_600_000)}: refused by Lambda (Lambda.TooManyRequestsException), nothing sent`,
    );
  });

  it('keeps a redrive hours later apart: its own time and when, never added to the run’s delivery (a part of total)', () => {
    const history = execution(
      [
        [10, 'StateEntered', 'Deliver'],
        [1_000, 'StateRetried', 'Deliver'],
        [2_000, 'StateExited', 'Deliver'],
      ],
      2_100,
    );
    const redrive: ExecutionRecord = {
      ...execution([], 0),
      execution_name: 'req-1-redelivery-1-abc',
      state_machine: 'redelivery',
      started_at: at(3 * 3_600_000),
      stopped_at: at(3 * 3_600_000 + 1_500),
      input: { redelivery: { via: 'redrive' } },
      events: [
        { type: 'StateEntered', timestamp: T0 + 3 * 3_600_000 + 1, state: 'Deliver' },
        { type: 'StateExited', timestamp: T0 + 3 * 3_600_000 + 1_201, state: 'Deliver' },
      ],
    };
    const figures = conversationFigures(closedRecord(), [history, redrive]);
    expect(figures).toMatchObject({ delivery_ms: 1_990, tries: 3, run_tries: 2, retries: 1, total_ms: 3_087 });
    expect(figures.delivery_ms!).toBeLessThanOrEqual(figures.total_ms!);
    expect(formatFigures(figures)).toBe(
      `agent 20 ms · delivery 1990 ms (2 tries, 1 retry in the workflow) · total 3087 ms · run 2100 ms · then redrive at ${at(3 * 3_600_000)}: delivered, delivery 1200 ms (1 try)`,
    );
    // Its history aged out: the record's attempts say which were the run's and which a redelivery's, and when.
    const record = closedRecord();
    const attempts = [
      { ...record.execution.delivery_attempts[0]!, outcome: 'retryable' as const, duration_ms: 900 },
      { ...record.execution.delivery_attempts[0]!, attempt: 2, at: at(3 * 3_600_000), via: 'redrive' as const },
    ];
    const kept = { ...record, execution: { ...record.execution, delivery_attempts: attempts } };
    expect(formatFigures(conversationFigures(kept, []))).toBe(
      `agent 20 ms · delivery 900 ms (1 try) · total 3087 ms · run - · then redrive at ${at(3 * 3_600_000)}: delivered, delivery 39 ms (1 try)`,
    );
  });

  // Before, each was "redrive at …: delivery 40 ms (1 try)" (the console headed them "redelivered"), a failed one too.
  it('says what each redelivery did: delivered, failed with its status, refused by Lambda, still running', () => {
    const own = execution(
      [
        [10, 'StateEntered', 'Deliver'],
        [3_040, 'StateExited', 'Deliver'],
      ],
      3_147,
    );
    const redelivery = (name: string, via: string, events: HistoryEvent[], status = 'SUCCEEDED'): ExecutionRecord => ({
      ...execution([], 0),
      execution_name: name,
      state_machine: 'redelivery',
      status: status as ExecutionRecord['status'],
      started_at: at(3_600_000),
      stopped_at: at(3_600_100),
      input: { redelivery: { via } },
      events,
    });
    const entered = { type: 'StateEntered', timestamp: T0 + 3_600_001, state: 'Deliver' };
    const failedWith = (error: string, cause: string) => [
      entered,
      { type: 'StateFailed', timestamp: T0 + 3_600_041, state: 'Deliver', error, cause },
      { type: 'StateCaught', timestamp: T0 + 3_600_041, state: 'Deliver' },
    ];
    const failed = redelivery('req-1-redelivery-1-a', 'schedule', failedWith('DeliveryRetryableError', 'HTTP 503'));
    const refusedOnRetry = redelivery('req-1-redelivery-2-b', 'redrive', [
      entered,
      { type: 'StateRetried', timestamp: T0 + 3_600_021, state: 'Deliver' },
      ...failedWith('Lambda.TooManyRequestsException', 'Rate Exceeded.').slice(1),
    ]);
    const running = redelivery('req-1-redelivery-3-c', 'resend', [entered], 'RUNNING');
    // Lambda would not run its Deliver at all: it sent nothing, and before it was left out of these lines (only the
    // errors line said it), so the conversation read as if no redelivery had run since the one before.
    const refused = redelivery(
      'req-1-redelivery-4-d',
      'schedule',
      failedWith('Lambda.TooManyRequestsException', 'Rate Exceeded.'),
    );
    const record = closedRecord();
    const kept = {
      ...record,
      execution: {
        ...record.execution,
        delivery_attempts: [
          ...record.execution.delivery_attempts,
          {
            attempt: 2,
            at: at(3_600_002),
            outcome: 'retryable',
            status_code: 503,
            duration_ms: 40,
            via: 'schedule',
            execution_name: 'req-1-redelivery-1-a',
          } as never,
        ],
      },
    };
    const figures = conversationFigures(kept, [own, failed, refusedOnRetry, running, refused]);
    expect(figures.later.map((l) => l.result)).toEqual([
      'failed: HTTP 503',
      'refused by Lambda (Lambda.TooManyRequestsException)',
      'still running',
      'refused by Lambda (Lambda.TooManyRequestsException)',
    ]);
    expect(figures.later.at(-1)).toMatchObject({ via: 'schedule', tries: 0, delivery_ms: null });
    expect(formatFigures(figures)).toBe(
      `agent 20 ms · delivery 3030 ms (1 try) · total 3087 ms · run 3147 ms · then schedule at ${at(3_600_000)}: failed: HTTP 503, delivery 40 ms (1 try) · then redrive at ${at(3_600_000)}: refused by Lambda (Lambda.TooManyRequestsException), delivery 40 ms (1 try) · then resend at ${at(3_600_000)}: still running · then schedule at ${at(3_600_000)}: refused by Lambda (Lambda.TooManyRequestsException), nothing sent`,
    );
  });

  it('run is the conversation workflow’s execution, not the accept execution of an asynchronous start', () => {
    const accept = { ...execution([[0, 'StateEntered', 'Validate']], 15), state_machine: 'accept' };
    const run = { ...execution([[20, 'StateEntered', 'Validate']], 5_100), started_at: at(13) };
    expect(conversationFigures(closedRecord(), [accept, run]).run_ms).toBe(5_087);
  });
});
