import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  type AttributeValue,
  ConditionalCheckFailedException,
  DynamoDBClient,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { ThreadTurn } from '../../../functions/domain/thread.ts';
import {
  DynamoThreadStore,
  FileThreadStore,
  ThreadStoreUnconfigured,
  threadStore,
} from '../../../functions/shared/thread-store.ts';
import { captureJsonLines } from '../../support/log-capture.ts';

const NOW = new Date('2026-12-01T10:00:00Z');
const day = (n: number) => new Date(NOW.getTime() + n * 86_400_000);
const turn = (n: number): ThreadTurn => ({
  turn: n,
  conversation_id: `webhook_20261201_100000_crm_p_${n}`,
  query: `q${n}`,
  answer: `a${n}`,
  asked_at: NOW.toISOString(),
  answered_at: NOW.toISOString(),
});

/** The turn as answered at `at`. */
const answered = (t: ThreadTurn, at: Date): ThreadTurn => ({ ...t, answered_at: at.toISOString() });

describe('FileThreadStore (local)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'threads-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('numbers turns 1, 2, 3 … and never gives one number twice, even to concurrent claims', async () => {
    const store = new FileThreadStore(dir, 30);
    const turns = await Promise.all(
      Array.from({ length: 8 }, (_, i) => store.claimTurn('crm', 'concurrent', `req-${i}`, NOW)),
    );
    expect([...turns].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(await store.claimTurn('crm', 'concurrent', 'req-8', NOW)).toBe(9);
  });

  it('gives a retried claim of the same request (its Validate retried) the turn it already has; the next request the next turn', async () => {
    const store = new FileThreadStore(dir, 30);
    expect(await store.claimTurn('crm', 'retried', 'req-a@t1', NOW)).toBe(1);
    expect(await store.claimTurn('crm', 'retried', 'req-a@t1', NOW)).toBe(1);
    expect(await store.claimTurn('crm', 'retried', 'req-b@t2', NOW)).toBe(2);
    expect(await store.claimTurn('crm', 'retried', 'req-b@t2', day(1))).toBe(2);
    expect(await store.claimTurn('crm', 'retried', 'req-c@t3', day(1))).toBe(3);
    // Only the last claim is remembered, as item 0 on AWS: a retry after another request claimed takes a new turn.
    expect(await store.claimTurn('crm', 'retried', 'req-b@t2', day(1))).toBe(4);
    const folder = path.join(dir, 'crm', 'retried');
    expect((await readdir(folder)).sort()).toEqual(['1.claim', '2.claim', '3.claim', '4.claim']);
    expect(await readFile(path.join(folder, '2.claim'), 'utf8')).toBe('req-b@t2');
    // The same request id received at another time is another request (requestIdentity).
    expect(await store.claimTurn('crm', 'retried', 'req-b@t9', day(1))).toBe(5);
  });

  it('gives concurrent claims, retries among them, each request one turn with neither a number twice nor a gap', async () => {
    const store = new FileThreadStore(dir, 30);
    const requests = ['req-a', 'req-a', 'req-b', 'req-b', 'req-c', 'req-d', 'req-d'];
    const turns = await Promise.all(requests.map((request) => store.claimTurn('crm', 'racing-retries', request, NOW)));
    const byRequest = new Map<string, Set<number>>();
    for (const [i, request] of requests.entries())
      byRequest.set(request, (byRequest.get(request) ?? new Set()).add(turns[i]!));
    expect([...byRequest.values()].map((set) => set.size)).toEqual([1, 1, 1, 1]);
    expect([...new Set(turns)].sort((a, b) => a - b)).toEqual([1, 2, 3, 4]);
  });

  it('claims again the number of the newest claim a crash left empty: no gap in the turns', async () => {
    // Before: the empty 2.claim (made, killed before its request was written) was passed over: the next request got
    // turn 3, and the thread had no turn 2 for good.
    const store = new FileThreadStore(dir, 30);
    expect(await store.claimTurn('crm', 'crashed', 'req-a', NOW)).toBe(1);
    const folder = path.join(dir, 'crm', 'crashed');
    await writeFile(path.join(folder, '2.claim'), '');
    await writeFile(path.join(folder, '3.claim'), '');
    expect(await store.claimTurn('crm', 'crashed', 'req-b', NOW)).toBe(2);
    expect(await readFile(path.join(folder, '2.claim'), 'utf8')).toBe('req-b');
    expect(await store.claimTurn('crm', 'crashed', 'req-b', NOW)).toBe(2); // its retry: its own turn
    expect(await store.claimTurn('crm', 'crashed', 'req-c', NOW)).toBe(3);
    expect((await readdir(folder)).sort()).toEqual(['1.claim', '2.claim', '3.claim']);
    expect(await readFile(path.join(folder, '3.claim'), 'utf8')).toBe('req-c');
  });

  it('starts a thread unused for THREAD_TTL_DAYS again at turn 1 at its next claim, without waiting for the sweep', async () => {
    const store = new FileThreadStore(dir, 30);
    expect(await store.claimTurn('crm', 'unused', 'req-1', day(0))).toBe(1);
    expect(await store.claimTurn('crm', 'unused', 'req-2', day(29))).toBe(2);
    // Each claim pushes the expiry: 30 days after day 29.
    expect(await store.claimTurn('crm', 'unused', 'req-3', day(58))).toBe(3);
    expect(await store.claimTurn('crm', 'unused', 'req-4', day(88))).toBe(1);
    expect(await store.claimTurn('crm', 'unused', 'req-4', day(88))).toBe(1);
    expect(await store.claimTurn('crm', 'unused', 'req-5', day(88))).toBe(2);
    expect((await readdir(path.join(dir, 'crm', 'unused'))).sort()).toEqual(['1.claim', '2.claim']);
    // Two first turns at once of a thread starting again: distinct numbers, no gap.
    const turns = await Promise.all(
      ['x', 'y', 'z'].map((request) => store.claimTurn('crm', 'unused', request, day(200))),
    );
    expect([...turns].sort((a, b) => a - b)).toEqual([1, 2, 3]);
  });

  it('gives the answered turns before a turn, newest first, within the limit; unanswered turns are gaps', async () => {
    const store = new FileThreadStore(dir, 30);
    for (const n of [1, 2, 4, 5]) await store.recordTurn('crm', 'history', turn(n), NOW);
    expect((await store.earlierTurns('crm', 'history', 5, NOW)).turns.map((t) => t.turn)).toEqual([4, 2, 1]);
    expect((await store.earlierTurns('crm', 'history', 6, NOW, 2)).turns.map((t) => t.turn)).toEqual([5, 4]);
    expect((await store.earlierTurns('crm', 'history', 1, NOW)).turns).toEqual([]);
    expect((await store.earlierTurns('crm', 'never-used', 3, NOW)).turns).toEqual([]);
    // Recording a turn again (a re-export) overwrites it.
    await store.recordTurn('crm', 'history', { ...turn(4), answer: 'again' }, NOW);
    expect((await store.earlierTurns('crm', 'history', 5, NOW, 1)).turns[0]!.answer).toBe('again');
  });

  it('a damaged turn file (cut short, a bare null, another shape, another turn) is left out, never a crash, and an ERROR line names it', async () => {
    const store = new FileThreadStore(dir, 30);
    for (const n of [1, 2, 3, 4, 5]) await store.recordTurn('crm', 'damaged', turn(n), NOW);
    const folder = path.join(dir, 'crm', 'damaged');
    const damaged = { 1: '{"turn":1,"conv', 2: 'null', 3: '[1,2]', 4: JSON.stringify(turn(7)) };
    for (const [n, text] of Object.entries(damaged)) {
      await writeFile(path.join(folder, `${n}.json`), text);
      await utimes(path.join(folder, `${n}.json`), NOW, NOW);
    }
    const logs = captureJsonLines();
    try {
      const earlier = await store.earlierTurns('crm', 'damaged', 6, NOW);
      expect(earlier.turns.map((t) => t.turn)).toEqual([5]);
      expect(earlier.unreadable).toBe(4); // the agent is told they were left out (omitted_turns)
    } finally {
      logs.restore();
    }
    const lines = logs.events().filter((l) => l.event_type === 'WEBHOOK_THREAD_TURN_UNREADABLE');
    expect(lines.map((l) => [l.level, l.thread_turn, l.file])).toEqual(
      [4, 3, 2, 1].map((n) => ['ERROR', n, path.join(folder, `${n}.json`)]),
    );
  });

  it('records one turn written twice at once (a re-export racing the first) whole, with no file left aside', async () => {
    const store = new FileThreadStore(dir, 30);
    const writes = Array.from({ length: 12 }, (_, i) =>
      store.recordTurn('crm', 'racing', { ...turn(1), answer: `answer ${i}` }, NOW),
    );
    await expect(Promise.all(writes)).resolves.toBeDefined();
    const [recorded] = (await store.earlierTurns('crm', 'racing', 2, NOW)).turns;
    expect(recorded!.answer).toMatch(/^answer \d+$/);
    expect(await readdir(path.join(dir, 'crm', 'racing'))).toEqual(['1.json']);
  });

  it('remembers an answered turn THREAD_TTL_DAYS after it was answered, whatever the thread did since', async () => {
    const store = new FileThreadStore(dir, 30);
    await store.recordTurn('crm', 'aging', answered(turn(1), day(0)), day(0));
    await store.recordTurn('crm', 'aging', answered(turn(2), day(20)), day(20));
    await store.claimTurn('crm', 'aging', 'req-1', day(29));
    expect((await store.earlierTurns('crm', 'aging', 3, day(29))).turns.map((t) => t.turn)).toEqual([2, 1]);
    // Day 30: turn 1 is 30 days old, turn 2 ten; the thread was used the day before.
    expect((await store.earlierTurns('crm', 'aging', 3, day(30))).turns.map((t) => t.turn)).toEqual([2]);
    expect((await store.earlierTurns('crm', 'aging', 3, day(51))).turns).toEqual([]);
  });

  it("counts a turn re-recorded later (a redelivery's re-export) from when it was answered, not from the re-export", async () => {
    const store = new FileThreadStore(dir, 30);
    await store.recordTurn('crm', 're-export', answered(turn(1), day(0)), day(0));
    // Day 25: a redrive delivers and exports the conversation again.
    await store.recordTurn('crm', 're-export', answered(turn(1), day(0)), day(25));
    expect((await stat(path.join(dir, 'crm', 're-export', '1.json'))).mtimeMs).toBe(day(0).getTime());
    expect((await store.earlierTurns('crm', 're-export', 2, day(29))).turns.map((t) => t.turn)).toEqual([1]);
    // Day 30: thirty days after it was answered, whatever the re-export did.
    expect((await store.earlierTurns('crm', 're-export', 2, day(30))).turns).toEqual([]);
  });

  it('a re-export of a turn answered THREAD_TTL_DAYS ago (a resend) leaves the turn of the thread started again since', async () => {
    const store = new FileThreadStore(dir, 30);
    const old = { ...answered(turn(1), day(0)), conversation_id: 'webhook_20261201_100000_crm_p_old', answer: 'old' };
    await store.claimTurn('crm', 'again', 'req-old', day(0));
    await store.recordTurn('crm', 'again', old, day(0));
    // Unused for 31 days: started again at turn 1, answered.
    expect(await store.claimTurn('crm', 'again', 'req-new', day(31))).toBe(1);
    await store.recordTurn('crm', 'again', answered(turn(1), day(31)), day(31));
    // Day 32: the old conversation is resent, and re-exported.
    await store.recordTurn('crm', 'again', old, day(32));
    // Before: its old turn replaced the new one, then skipped as expired: the new thread had no turn 1.
    expect((await store.earlierTurns('crm', 'again', 2, day(32))).turns).toEqual([answered(turn(1), day(31))]);
  });

  it("keeps each source's thread apart (by canonical source name) and refuses a thread id that is not one", async () => {
    const store = new FileThreadStore(dir, 30);
    await store.recordTurn('Sales-CRM', 'shared', turn(1), NOW);
    expect((await store.earlierTurns('other', 'shared', 2, NOW)).turns).toEqual([]);
    expect((await store.earlierTurns('sales_crm', 'shared', 2, NOW)).turns).toHaveLength(1);
    await expect(store.earlierTurns('crm', '../sales_crm/shared', 2, NOW)).rejects.toThrow(/not a thread id/);
    expect((await readdir(dir)).sort()).toEqual(['crm', 'sales_crm']);
  });
});

describe('DynamoThreadStore (AWS)', () => {
  const dynamo = mockClient(DynamoDBClient);
  beforeEach(() => dynamo.reset());
  afterEach(() => dynamo.reset());
  const store = new DynamoThreadStore('threads-table', 30);
  const expires = String(Math.floor(NOW.getTime() / 1000) + 30 * 86_400);
  const CLAIM_CONDITION =
    '(attribute_not_exists(expires_at) OR expires_at > :now) AND (attribute_not_exists(last_request) OR last_request <> :request)';
  const RESTART_CONDITION = 'attribute_not_exists(expires_at) OR expires_at <= :now';
  const refused = (item?: Record<string, AttributeValue>) =>
    new ConditionalCheckFailedException({
      message: 'The conditional request failed',
      $metadata: {},
      ...(item ? { Item: item } : {}),
    });

  /**
   * Item 0 of one thread as DynamoDB keeps it, for the writes a claim sends: each evaluates its ConditionExpression
   * (those of claimTurn; any other fails the test), changes the item at once, as the table does, and, refused,
   * returns the item as it was when ReturnValuesOnConditionCheckFailure is ALL_OLD. TTL never deletes it here: an
   * expired item stays readable, as it may for about two days. `lostResponses` writes are applied and then sent
   * again, as the SDK retries a try whose response was lost: the claim only sees the second try's answer.
   */
  function counterTable(initial?: { last_turn: number; expires_at: number; last_request?: string }, lostResponses = 0) {
    let item: Record<string, AttributeValue> | undefined = initial && {
      last_turn: { N: String(initial.last_turn) },
      expires_at: { N: String(initial.expires_at) },
      ...(initial.last_request ? { last_request: { S: initial.last_request } } : {}),
    };
    const unexpired = (v: Record<string, AttributeValue>) =>
      !item?.expires_at || Number(item.expires_at.N) > Number(v[':now']!.N);
    const conditions: Record<string, (values: Record<string, AttributeValue>) => boolean> = {
      [CLAIM_CONDITION]: (v) => unexpired(v) && (!item?.last_request || item.last_request.S !== v[':request']!.S),
      [RESTART_CONDITION]: (v) => !item?.expires_at || Number(item.expires_at.N) <= Number(v[':now']!.N),
    };
    const check = (input: {
      ConditionExpression?: string;
      ExpressionAttributeValues?: Record<string, AttributeValue>;
      ReturnValuesOnConditionCheckFailure?: string;
    }) => {
      const condition = conditions[input.ConditionExpression ?? ''];
      if (!condition) throw new Error(`unexpected condition: ${input.ConditionExpression}`);
      if (!condition(input.ExpressionAttributeValues ?? {}))
        throw refused(input.ReturnValuesOnConditionCheckFailure === 'ALL_OLD' && item ? { ...item } : undefined);
    };
    const update = (input: any) => {
      expect(input.UpdateExpression).toBe('ADD last_turn :one SET expires_at = :expires, last_request = :request');
      check(input);
      const last = Number(item?.last_turn?.N ?? 0) + Number(input.ExpressionAttributeValues[':one'].N);
      item = {
        last_turn: { N: String(last) },
        expires_at: input.ExpressionAttributeValues[':expires'],
        last_request: input.ExpressionAttributeValues[':request'],
      };
      return {
        Attributes: { last_turn: item.last_turn, expires_at: item.expires_at, last_request: item.last_request },
      };
    };
    const put = (input: any) => {
      check(input);
      const { thread: _t, turn: _n, ...attributes } = input.Item;
      item = attributes;
      return {};
    };
    let lost = lostResponses;
    const sdkRetrying =
      <T>(write: (input: any) => T) =>
      async (input: any): Promise<T> => {
        if (lost <= 0) return write(input);
        write(input); // applied, but its response never reached the client: the SDK sends the command again
        lost -= 1;
        return write(input);
      };
    dynamo.on(UpdateItemCommand).callsFake(sdkRetrying(update));
    dynamo.on(PutItemCommand).callsFake(sdkRetrying(put));
    return { item: () => item };
  }
  const epoch = (at: Date) => Math.floor(at.getTime() / 1000);

  it('claims a turn with one atomic ADD on the thread item 0, unexpired and claimed last by another request, pushing its expiry forward and naming the request', async () => {
    dynamo.on(UpdateItemCommand).resolves({ Attributes: { last_turn: { N: '3' } } });
    expect(await store.claimTurn('Sales-CRM', 'q3', 'req-1@2026-12-01T10:00:00.000Z', NOW)).toBe(3);
    expect(dynamo.commandCalls(UpdateItemCommand)[0]!.args[0].input).toEqual({
      TableName: 'threads-table',
      Key: { thread: { S: 'sales_crm/q3' }, turn: { N: '0' } },
      UpdateExpression: 'ADD last_turn :one SET expires_at = :expires, last_request = :request',
      ConditionExpression: CLAIM_CONDITION,
      ExpressionAttributeValues: {
        ':one': { N: '1' },
        ':expires': { N: expires },
        ':request': { S: 'req-1@2026-12-01T10:00:00.000Z' },
        ':now': { N: String(epoch(NOW)) },
      },
      ReturnValues: 'UPDATED_NEW',
      ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
    });
  });

  it('a claim refused because item 0 is its own unexpired last claim (ALL_OLD) gets that turn and writes nothing', async () => {
    dynamo
      .on(UpdateItemCommand)
      .rejects(refused({ last_turn: { N: '4' }, expires_at: { N: expires }, last_request: { S: 'req-a' } }));
    expect(await store.claimTurn('crm', 'q3', 'req-a', NOW)).toBe(4);
    expect(dynamo.commandCalls(UpdateItemCommand)).toHaveLength(1);
    expect(dynamo.commandCalls(PutItemCommand)).toHaveLength(0);
  });

  it('a claim refused over an expired item 0 (ALL_OLD), even its own, or without an item, puts turn 1 conditionally', async () => {
    const stale = { last_turn: { N: '4' }, expires_at: { N: String(epoch(NOW)) } };
    for (const item of [{ ...stale, last_request: { S: 'req-b' } }, { ...stale, last_request: { S: 'req-a' } }, null]) {
      dynamo.reset();
      dynamo.on(UpdateItemCommand).rejects(refused(item ?? undefined));
      dynamo.on(PutItemCommand).resolves({});
      expect(await store.claimTurn('crm', 'q3', 'req-a', NOW)).toBe(1);
      expect(dynamo.commandCalls(PutItemCommand)[0]!.args[0].input).toEqual({
        TableName: 'threads-table',
        Item: {
          thread: { S: 'crm/q3' },
          turn: { N: '0' },
          last_turn: { N: '1' },
          expires_at: { N: expires },
          last_request: { S: 'req-a' },
        },
        ConditionExpression: RESTART_CONDITION,
        ExpressionAttributeValues: { ':now': { N: String(epoch(NOW)) } },
        ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
      });
    }
  });

  it('numbers the turns of a thread in use 1, 2, 3 …, each claim pushing the expiry THREAD_TTL_DAYS past it', async () => {
    const table = counterTable();
    expect(await store.claimTurn('crm', 'in-use', 'req-1', day(0))).toBe(1);
    expect(await store.claimTurn('crm', 'in-use', 'req-2', day(20))).toBe(2);
    expect(await store.claimTurn('crm', 'in-use', 'req-3', day(49))).toBe(3);
    expect(table.item()).toEqual({
      last_turn: { N: '3' },
      expires_at: { N: String(epoch(day(79))) },
      last_request: { S: 'req-3' },
    });
  });

  it('gives a retried claim of the same request (its Validate retried) the turn it already has; the next request the next turn', async () => {
    const table = counterTable({ last_turn: 6, expires_at: epoch(day(30)), last_request: 'req-z' });
    expect(await store.claimTurn('crm', 'retried', 'req-a', NOW)).toBe(7);
    expect(await store.claimTurn('crm', 'retried', 'req-a', NOW)).toBe(7);
    expect(await store.claimTurn('crm', 'retried', 'req-b', NOW)).toBe(8);
    expect(await store.claimTurn('crm', 'retried', 'req-b', day(1))).toBe(8);
    expect(table.item()).toEqual({
      last_turn: { N: '8' },
      expires_at: { N: expires },
      last_request: { S: 'req-b' },
    });
    // Only the last claim is remembered: a retry after another request claimed takes a new turn.
    expect(await store.claimTurn('crm', 'retried', 'req-a', day(1))).toBe(9);
  });

  it('gets its own turn when the SDK retried a write whose first try succeeded (the retry refused on its own claim)', async () => {
    counterTable({ last_turn: 2, expires_at: epoch(day(30)), last_request: 'req-z' }, 1);
    expect(await store.claimTurn('crm', 'sdk-retry', 'req-a', NOW)).toBe(3);
    expect(await store.claimTurn('crm', 'sdk-retry', 'req-b', NOW)).toBe(4);
    // The same over an expired counter: turn 1's put applied, its response lost, the retried put refused.
    counterTable({ last_turn: 7, expires_at: epoch(day(30)), last_request: 'req-z' }, 1);
    expect(await store.claimTurn('crm', 'sdk-retry', 'req-a', day(31))).toBe(1);
    expect(await store.claimTurn('crm', 'sdk-retry', 'req-b', day(31))).toBe(2);
  });

  it('starts a thread unused for THREAD_TTL_DAYS again at turn 1, though TTL has not deleted its counter yet', async () => {
    // Turn 7 was claimed on day 0: the counter expired on day 30 and is still in the table on day 31.
    const table = counterTable({ last_turn: 7, expires_at: epoch(day(30)), last_request: 'req-0' });
    expect(await store.claimTurn('crm', 'unused', 'req-1', day(31))).toBe(1);
    expect(table.item()).toEqual({
      last_turn: { N: '1' },
      expires_at: { N: String(epoch(day(61))) },
      last_request: { S: 'req-1' },
    });
    expect(await store.claimTurn('crm', 'unused', 'req-1', day(31))).toBe(1);
    expect(await store.claimTurn('crm', 'unused', 'req-2', day(31))).toBe(2);
    // The turn 1 is a conditional put: it replaces only a counter still expired (or absent).
    expect(dynamo.commandCalls(PutItemCommand)[0]!.args[0].input).toMatchObject({
      TableName: 'threads-table',
      Item: { thread: { S: 'crm/unused' }, turn: { N: '0' }, last_turn: { N: '1' } },
      ConditionExpression: RESTART_CONDITION,
    });
    expect(dynamo.commandCalls(PutItemCommand)).toHaveLength(1);
  });

  it('gives two first turns at once of a thread starting again distinct numbers', async () => {
    counterTable({ last_turn: 7, expires_at: epoch(day(30)) });
    const turns = await Promise.all([1, 2, 3].map((n) => store.claimTurn('crm', 'restarting', `req-${n}`, day(31))));
    expect([...turns].sort((a, b) => a - b)).toEqual([1, 2, 3]);
  });

  it('a claim that fails otherwise than on its condition fails (no turn 1 over a counter it could not read)', async () => {
    dynamo.on(UpdateItemCommand).rejects(new Error('throttled'));
    await expect(store.claimTurn('crm', 'q3', 'req-1', NOW)).rejects.toThrow('throttled');
    expect(dynamo.commandCalls(PutItemCommand)).toHaveLength(0);
  });

  it('records a turn as item n with its TTL', async () => {
    dynamo.on(PutItemCommand).resolves({});
    await store.recordTurn('crm', 'q3', turn(2), NOW);
    expect(dynamo.commandCalls(PutItemCommand)[0]!.args[0].input.Item).toEqual({
      thread: { S: 'crm/q3' },
      turn: { N: '2' },
      body: { S: JSON.stringify(turn(2)) },
      expires_at: { N: expires },
    });
  });

  it('keeps a turn THREAD_TTL_DAYS after it was answered, also when it is recorded again later (a re-export)', async () => {
    dynamo.on(PutItemCommand).resolves({});
    const answeredTurn = answered(turn(2), NOW);
    await store.recordTurn('crm', 'q3', answeredTurn, day(25));
    expect(dynamo.commandCalls(PutItemCommand)[0]!.args[0].input.Item).toMatchObject({
      turn: { N: '2' },
      body: { S: JSON.stringify(answeredTurn) },
      expires_at: { N: String(epoch(day(30))) },
    });
  });

  it('writes nothing for a turn answered THREAD_TTL_DAYS or longer ago (a resend re-exporting it): it is no history', async () => {
    dynamo.on(PutItemCommand).resolves({});
    await store.recordTurn('crm', 'q3', answered(turn(2), NOW), day(30));
    expect(dynamo.commandCalls(PutItemCommand)).toHaveLength(0);
    await store.recordTurn('crm', 'q3', answered(turn(2), NOW), day(29));
    expect(dynamo.commandCalls(PutItemCommand)).toHaveLength(1);
  });

  it('reads the earlier turns newest first with one consistent Query bounded by turn and limit, expired ones left out', async () => {
    dynamo.on(QueryCommand).resolves({ Items: [turn(4), turn(3)].map((t) => ({ body: { S: JSON.stringify(t) } })) });
    expect((await store.earlierTurns('crm', 'q3', 5, NOW, 2)).turns.map((t) => t.turn)).toEqual([4, 3]);
    expect(dynamo.commandCalls(QueryCommand)[0]!.args[0].input).toMatchObject({
      KeyConditionExpression: '#thread = :thread AND #turn BETWEEN :first AND :last',
      // TTL deletes an expired turn within about two days: until then the read skips it.
      FilterExpression: '#expires > :now',
      ExpressionAttributeNames: { '#thread': 'thread', '#turn': 'turn', '#expires': 'expires_at' },
      ExpressionAttributeValues: {
        ':thread': { S: 'crm/q3' },
        ':first': { N: '1' },
        ':last': { N: '4' },
        ':now': { N: String(NOW.getTime() / 1000) },
      },
      ScanIndexForward: false,
      Limit: 2,
      ConsistentRead: true,
    });
    // The first turn has nothing before it: no read at all.
    expect((await store.earlierTurns('crm', 'q3', 1, NOW)).turns).toEqual([]);
    expect(dynamo.commandCalls(QueryCommand)).toHaveLength(1);
  });

  it('reads on past a page DynamoDB ended early (1 MB of large answers, or expired turns taking places of the Limit)', async () => {
    const items = (...turns: number[]) => turns.map((n) => ({ body: { S: JSON.stringify(turn(n)) } }));
    dynamo
      .on(QueryCommand)
      .resolvesOnce({ Items: items(9, 8), LastEvaluatedKey: { thread: { S: 'crm/q3' }, turn: { N: '8' } } })
      .resolvesOnce({ Items: [], LastEvaluatedKey: { thread: { S: 'crm/q3' }, turn: { N: '6' } } })
      .resolvesOnce({ Items: items(5, 4, 3), LastEvaluatedKey: { thread: { S: 'crm/q3' }, turn: { N: '3' } } });
    expect((await store.earlierTurns('crm', 'q3', 10, NOW, 5)).turns.map((t) => t.turn)).toEqual([9, 8, 5, 4, 3]);
    const calls = dynamo.commandCalls(QueryCommand).map((c) => c.args[0].input);
    expect(calls.map((c) => [c.Limit, c.ExclusiveStartKey?.turn?.N])).toEqual([
      [5, undefined],
      [3, '8'],
      [3, '6'],
    ]);
  });
});

describe('threadStore(): the adapter the configuration names', () => {
  const saved = { ...process.env };
  afterEach(() => {
    process.env = { ...saved };
  });
  it('the table on AWS, the folder locally, and a clear error with neither', () => {
    delete process.env.THREAD_TABLE_NAME;
    delete process.env.THREAD_DIR;
    expect(() => threadStore()).toThrow(ThreadStoreUnconfigured);
    process.env.THREAD_DIR = '/tmp/x';
    expect(threadStore()).toBeInstanceOf(FileThreadStore);
    process.env.THREAD_TABLE_NAME = 'table';
    expect(threadStore()).toBeInstanceOf(DynamoThreadStore);
  });
});
