import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { DynamoDBClient, QueryCommand } from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { type DeliverDeps, deliver } from '../../../functions/deliver/handler.ts';
import type { ConversationState, DeliveryAttempt } from '../../../functions/domain/conversation.ts';
import { timedOutReason } from '../../../functions/domain/delivery.ts';
import { withAgentAnswer, withClassification } from '../../../functions/domain/lifecycle.ts';
import { FileAttemptLog } from '../../../functions/shared/attempt-log.ts';
import { FileEndpointStore } from '../../../functions/shared/endpoint-store.ts';
import type { PostResult } from '../../../functions/shared/http-delivery.ts';
import { startedRecord } from '../../support/fixtures.ts';
import { captureJsonLines } from '../../support/log-capture.ts';

/**
 * Deliver between the receiver's gate and its POST (docs/deploy.md "Timeouts", docs/operations.md#receivers): no
 * attempt ends after the caller's deliver_by, even after waiting for the receiver's rate; and a timeout of an
 * attempt the deadline cut short does not count against the receiver. The clock is injected (the rate's wait moves
 * it on, nobody sleeps) and the receiver is a fake POST that takes its time on that clock.
 */
const T0 = Date.parse('2026-11-29T12:00:00.000Z');
const TARGET = 'https://hooks.example.com/deals';
const DELIVERY_TIMEOUT_MS = 3_000;

/** A clock that never waits: sleep moves it forward. */
function fakeClock(start = T0) {
  let now = start;
  return {
    now: () => now,
    sleep: async (ms: number) => {
      now += ms;
    },
    advance: (ms: number) => {
      now += ms;
    },
  };
}

/** A healthy receiver that answers 200 after `takesMs` on the clock; an attempt given less times out. */
function slowReceiver(clock: ReturnType<typeof fakeClock>, takesMs: number) {
  const posts: { startedAt: number; timeoutMs: number; endedAt: number }[] = [];
  const post = async (
    _url: string,
    _body: string,
    _headers: Record<string, string>,
    attemptNumber: number,
    timeoutMs: number,
  ): Promise<PostResult> => {
    const startedAt = clock.now();
    const timedOut = timeoutMs < takesMs;
    clock.advance(timedOut ? timeoutMs : takesMs);
    posts.push({ startedAt, timeoutMs, endedAt: clock.now() });
    const attempt: DeliveryAttempt = {
      attempt: attemptNumber,
      at: new Date(startedAt).toISOString(),
      duration_ms: clock.now() - startedAt,
      outcome: timedOut ? 'retryable' : 'delivered',
      ...(timedOut ? { error: timedOutReason(timeoutMs) } : { status_code: 200 }),
    };
    return { attempt, response: timedOut ? null : { status: 200, headers: {}, body: '', body_truncated: false } };
  };
  return { post, posts };
}

/** The attempt log's table when DELIVERIES_TABLE_NAME is set (one mock for the file: a second would not take). */
const dynamo = mockClient(DynamoDBClient);
let dir: string;
let n = 0;
let deliveriesDir: string;
let logs: ReturnType<typeof captureJsonLines>;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'deliver-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => {
  deliveriesDir = path.join(dir, String(++n));
  process.env.DEAL_ANALYSIS_WEBHOOK_URL = TARGET;
  process.env.DELIVERY_TIMEOUT_MS = String(DELIVERY_TIMEOUT_MS);
  process.env.DELIVERIES_DIR = deliveriesDir; // the attempt log (the receivers' store is passed in)
  vi.spyOn(Math, 'random').mockReturnValue(0.5); // the rate wait's jitter: a tenth of the window
  logs = captureJsonLines();
});
afterEach(() => {
  logs.restore();
  vi.restoreAllMocks();
  delete process.env.DEAL_ANALYSIS_WEBHOOK_URL;
  delete process.env.DELIVERY_TIMEOUT_MS;
  delete process.env.DELIVERIES_DIR;
});

const record = () =>
  withClassification(withAgentAnswer(startedRecord(), { response: 'top deals' }, 40, new Date(T0)), new Date(T0));
/** The conversation workflow's state, its caller to be answered with deliveries ending by `deliverBy` (null: none waits). */
const stateDueAt = (deliverBy: number | null): ConversationState => ({
  conversation: record(),
  budget: {
    agent_seconds: 20,
    deliver_by: deliverBy === null ? null : new Date(deliverBy).toISOString(),
    answer_by: deliverBy === null ? null : new Date(deliverBy + 3_000).toISOString(),
  },
});

/**
 * The receivers' file store, its outbound rate answering "wait" (`retryInMs`) the first time, then granting the token
 * after `secondAskMs` (a slow store).
 */
async function storeWithSpentRate(clock: ReturnType<typeof fakeClock>, retryInMs: number, secondAskMs = 0) {
  const store = new FileEndpointStore(deliveriesDir);
  await store.configure('deal_analysis', { rate_per_second: 1 }, new Date(clock.now()));
  let asked = 0;
  store.takeToken = async () => {
    if (++asked === 1) return { ok: false, retryInMs };
    clock.advance(secondAskMs);
    return { ok: true };
  };
  return store;
}

/** What Deliver threw, parsed as the state machine's Catch sees it. */
async function thrown(run: Promise<unknown>): Promise<{ name: string; payload: Record<string, any> }> {
  const error = (await run.then(
    () => null,
    (e: unknown) => e,
  )) as Error | null;
  if (!error) throw new Error('Deliver did not throw');
  return { name: error.name, payload: JSON.parse(error.message) };
}

describe("Deliver after waiting for the receiver's rate", () => {
  it('gives the attempt what is left of deliver_by after the wait, so it ends in time (then the schedule takes it)', async () => {
    const clock = fakeClock();
    const deliverBy = T0 + 3_000;
    const store = await storeWithSpentRate(clock, 1_900);
    const receiver = slowReceiver(clock, 2_500);
    const deps: DeliverDeps = { clock, store, post: receiver.post };

    const failed = await thrown(deliver({ state: stateDueAt(deliverBy), execution_name: 'e1' }, deps));

    // It waited 1.9 s for the next window and a tenth of it more, then had 1 s left: the attempt got exactly that.
    expect(receiver.posts).toEqual([{ startedAt: T0 + 2_000, timeoutMs: 1_000, endedAt: deliverBy }]);
    expect(clock.now()).toBeLessThanOrEqual(deliverBy);
    // No time for another: handed to the schedule now, carrying the attempt.
    expect(failed.name).toBe('DeliveryDeferredError');
    expect(failed.payload.attempt).toMatchObject({ outcome: 'retryable', error: 'timed out after 1000 ms' });
  });

  it('too little left after the wait: no attempt, queued for the schedule (deadline)', async () => {
    const clock = fakeClock();
    const deliverBy = T0 + 3_000;
    // The wait ends 1 s before deliver_by, but the ask for the token then takes 0.6 s (a slow store): 0.4 s are left,
    // less than an attempt needs.
    const store = await storeWithSpentRate(clock, 1_900, 600);
    const receiver = slowReceiver(clock, 100);

    const failed = await thrown(deliver({ state: stateDueAt(deliverBy) }, { clock, store, post: receiver.post }));

    expect(receiver.posts).toEqual([]);
    expect(failed.name).toBe('DeliveryDeferredError');
    expect(failed.payload).toMatchObject({ hold: 'deadline', status: 'queued', target: 'https://hooks.example.com/…' });
    expect(failed.payload.message).toMatch(/^no time left for a delivery attempt before /);
    expect(logs.events().filter((e) => e.event_type === 'WEBHOOK_DELIVERY_DEFERRED')).toEqual([
      expect.objectContaining({ hold: 'deadline', webhook_type: 'deal_analysis' }),
    ]);
  });
});

describe("a timeout and the receiver's failure streak", () => {
  it("an attempt the caller's deadline cut short times out: logged and recorded, the streak unchanged", async () => {
    const clock = fakeClock();
    const store = new FileEndpointStore(deliveriesDir);
    const receiver = slowReceiver(clock, 2_500); // healthy, but slower than the 0.8 s left
    const state = stateDueAt(T0 + 800);

    const failed = await thrown(deliver({ state, execution_name: 'e1' }, { clock, store, post: receiver.post }));

    expect(receiver.posts).toEqual([{ startedAt: T0, timeoutMs: 800, endedAt: T0 + 800 }]);
    expect(failed.payload.attempt).toMatchObject({ error: 'timed out after 800 ms' });
    expect((await store.get('deal_analysis')).health).toMatchObject({ consecutive_failures: 0, last_error: null });
    const logged = await new FileAttemptLog(deliveriesDir).list(state.conversation.conversation_id);
    expect(logged).toMatchObject([{ attempt: 1, outcome: 'retryable', error: 'timed out after 800 ms' }]);
  });

  it('a timeout with the whole DELIVERY_TIMEOUT_MS still counts', async () => {
    const clock = fakeClock();
    const store = new FileEndpointStore(deliveriesDir);
    const receiver = slowReceiver(clock, 3_500);

    await thrown(deliver({ state: stateDueAt(null) }, { clock, store, post: receiver.post }));

    expect(receiver.posts).toEqual([{ startedAt: T0, timeoutMs: DELIVERY_TIMEOUT_MS, endedAt: T0 + 3_000 }]);
    expect((await store.get('deal_analysis')).health).toMatchObject({
      consecutive_failures: 1,
      last_error: 'timed out after 3000 ms',
    });
  });
});

describe('Deliver held on a retry of its state (the attempt log on DynamoDB)', () => {
  afterEach(() => {
    dynamo.reset();
    delete process.env.DELIVERIES_TABLE_NAME;
  });

  it("the caller's deadline after two failed tries: queued carrying those two attempts, as the log has them", async () => {
    delete process.env.DELIVERIES_DIR;
    process.env.DELIVERIES_TABLE_NAME = 'deliveries';
    const clock = fakeClock();
    const state = stateDueAt(T0 + 300); // too little left for a third attempt
    const id = state.conversation.conversation_id;
    const tried = (attempt: number) => ({
      entry: {
        S: JSON.stringify({
          attempt,
          at: new Date(T0 - 3_000 + attempt * 1_000).toISOString(),
          duration_ms: 40,
          outcome: 'retryable',
          status_code: 503,
          error: 'HTTP 503',
          via: 'workflow',
          conversation_id: id,
          delivery_id: state.conversation.webhook_context.delivery_id,
          webhook_type: 'deal_analysis',
          execution_name: 'e1',
          request: { url: TARGET, headers: {} },
          response: { status: 503, headers: {}, body: 'nope', body_truncated: false },
        }),
      },
    });
    dynamo.on(QueryCommand).resolves({ Items: [tried(1), tried(2)] });

    const input = { state, retry_count: 2, execution_name: 'e1' };
    const failed = await thrown(deliver(input, { clock, store: null, post: slowReceiver(clock, 100).post }));

    expect(failed.name).toBe('DeliveryDeferredError');
    expect(failed.payload).toMatchObject({
      hold: 'deadline',
      status: 'retrying',
      target: 'https://hooks.example.com/…',
    });
    // Before: no attempts, so the envelope said `0 attempts` and the redelivery was numbered 1 again.
    expect(failed.payload.attempts).toEqual([1, 2].map((n) => ({ ...JSON.parse(tried(n).entry.S), ...SHORT })));
    expect(dynamo.commandCalls(QueryCommand)[0]!.args[0].input).toMatchObject({ TableName: 'deliveries' });
  });
});

describe("a redelivery's attempt number (the attempt log on DynamoDB)", () => {
  beforeEach(() => {
    delete process.env.DELIVERIES_DIR;
    process.env.DELIVERIES_TABLE_NAME = 'deliveries';
  });
  afterEach(() => {
    dynamo.reset();
    delete process.env.DELIVERIES_TABLE_NAME;
  });
  /** An attempt of the conversation as the log keeps it (a 503). */
  const logged = (state: ConversationState, attempt: number) => ({
    entry: {
      S: JSON.stringify({
        attempt,
        at: new Date(T0 - 60_000 + attempt * 1_000).toISOString(),
        duration_ms: 40,
        outcome: 'retryable',
        status_code: 503,
        error: 'HTTP 503',
        via: 'workflow',
        conversation_id: state.conversation.conversation_id,
        delivery_id: state.conversation.webhook_context.delivery_id,
        webhook_type: 'deal_analysis',
        execution_name: 'e1',
        request: { url: TARGET, headers: {} },
        response: { status: 503, headers: {}, body: 'nope', body_truncated: false },
      }),
    },
  });
  /** The number Deliver gave the attempt it made, and the state it returned. */
  async function numbered(state: ConversationState) {
    const clock = fakeClock();
    const numbers: number[] = [];
    const receiver = slowReceiver(clock, 100);
    const post: DeliverDeps['post'] = (url, body, headers, attemptNumber, timeoutMs) => {
      numbers.push(attemptNumber);
      return receiver.post(url, body, headers, attemptNumber, timeoutMs);
    };
    const out = await deliver({ state, retry_count: 0, execution_name: 'r1' }, { clock, store: null, post });
    return { numbers, attempts: out.conversation?.execution.delivery_attempts };
  }
  const redelivery = (): ConversationState => ({
    conversation: record(),
    redelivery: { via: 'schedule', status_if_failed: 'retrying' },
  });

  it("after tries the record does not know (Lambda refused the workflow's retry): numbered after the log's last", async () => {
    // The refusal's envelope carries no attempt; the log has the conversation's two tries.
    const state = redelivery();
    dynamo.on(QueryCommand).resolves({ Items: [logged(state, 1), logged(state, 2)] });
    const { numbers, attempts } = await numbered(state);
    // Before: attempt 1 again, beside the log's attempt 1.
    expect(numbers).toEqual([3]);
    expect(attempts?.map((a) => a.attempt)).toEqual([3]);
    expect(dynamo.commandCalls(QueryCommand)[0]!.args[0].input).toMatchObject({ TableName: 'deliveries' });
  });

  it('the record knowing more than the log (a log write that failed): numbered after the record', async () => {
    const base = redelivery();
    const tried: DeliveryAttempt = {
      attempt: 4,
      at: new Date(T0 - 1_000).toISOString(),
      duration_ms: 40,
      outcome: 'retryable',
      status_code: 503,
    };
    const state = {
      ...base,
      conversation: { ...base.conversation, execution: { ...base.conversation.execution, delivery_attempts: [tried] } },
    };
    dynamo.on(QueryCommand).resolves({ Items: [logged(state, 1)] });
    expect((await numbered(state)).numbers).toEqual([5]);
  });

  it('a log that cannot be read: numbered from the record, as before, and the delivery still made', async () => {
    const state = redelivery();
    dynamo.on(QueryCommand).rejects(Object.assign(new Error('Rate exceeded'), { name: 'ThrottlingException' }));
    expect((await numbered(state)).numbers).toEqual([1]);
  });

  it("the conversation workflow's first try reads no log (the happy path): attempt 1", async () => {
    const { numbers } = await numbered(stateDueAt(null));
    expect(numbers).toEqual([1]);
    expect(dynamo.commandCalls(QueryCommand)).toHaveLength(0);
  });
});

/** What a carried attempt leaves out of its logged entry: the log's detail and identity. */
const SHORT = {
  conversation_id: undefined,
  delivery_id: undefined,
  webhook_type: undefined,
  execution_name: undefined,
  request: undefined,
  response: undefined,
};
