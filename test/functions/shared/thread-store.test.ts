import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
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
    const turns = await Promise.all(Array.from({ length: 8 }, () => store.claimTurn('crm', 'concurrent', NOW)));
    expect([...turns].sort((a, b) => a - b)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(await store.claimTurn('crm', 'concurrent', NOW)).toBe(9);
  });

  it('gives the answered turns before a turn, newest first, within the limit; unanswered turns are gaps', async () => {
    const store = new FileThreadStore(dir, 30);
    for (const n of [1, 2, 4, 5]) await store.recordTurn('crm', 'history', turn(n), NOW);
    expect((await store.earlierTurns('crm', 'history', 5, NOW)).map((t) => t.turn)).toEqual([4, 2, 1]);
    expect((await store.earlierTurns('crm', 'history', 6, NOW, 2)).map((t) => t.turn)).toEqual([5, 4]);
    expect(await store.earlierTurns('crm', 'history', 1, NOW)).toEqual([]);
    expect(await store.earlierTurns('crm', 'never-used', 3, NOW)).toEqual([]);
    // Recording a turn again (a re-export) overwrites it.
    await store.recordTurn('crm', 'history', { ...turn(4), answer: 'again' }, NOW);
    expect((await store.earlierTurns('crm', 'history', 5, NOW, 1))[0]!.answer).toBe('again');
  });

  it('records one turn written twice at once (a re-export racing the first) whole, with no file left aside', async () => {
    const store = new FileThreadStore(dir, 30);
    const writes = Array.from({ length: 12 }, (_, i) =>
      store.recordTurn('crm', 'racing', { ...turn(1), answer: `answer ${i}` }, NOW),
    );
    await expect(Promise.all(writes)).resolves.toBeDefined();
    const [recorded] = await store.earlierTurns('crm', 'racing', 2, NOW);
    expect(recorded!.answer).toMatch(/^answer \d+$/);
    expect(await readdir(path.join(dir, 'crm', 'racing'))).toEqual(['1.json']);
  });

  it('remembers an answered turn THREAD_TTL_DAYS after it was answered, whatever the thread did since', async () => {
    const store = new FileThreadStore(dir, 30);
    await store.recordTurn('crm', 'aging', answered(turn(1), day(0)), day(0));
    await store.recordTurn('crm', 'aging', answered(turn(2), day(20)), day(20));
    await store.claimTurn('crm', 'aging', day(29));
    expect((await store.earlierTurns('crm', 'aging', 3, day(29))).map((t) => t.turn)).toEqual([2, 1]);
    // Day 30: turn 1 is 30 days old, turn 2 ten; the thread was used the day before.
    expect((await store.earlierTurns('crm', 'aging', 3, day(30))).map((t) => t.turn)).toEqual([2]);
    expect(await store.earlierTurns('crm', 'aging', 3, day(51))).toEqual([]);
  });

  it("counts a turn re-recorded later (a redelivery's re-export) from when it was answered, not from the re-export", async () => {
    const store = new FileThreadStore(dir, 30);
    await store.recordTurn('crm', 're-export', answered(turn(1), day(0)), day(0));
    // Day 25: a redrive delivers and exports the conversation again.
    await store.recordTurn('crm', 're-export', answered(turn(1), day(0)), day(25));
    expect((await stat(path.join(dir, 'crm', 're-export', '1.json'))).mtimeMs).toBe(day(0).getTime());
    expect((await store.earlierTurns('crm', 're-export', 2, day(29))).map((t) => t.turn)).toEqual([1]);
    // Day 30: thirty days after it was answered, whatever the re-export did.
    expect(await store.earlierTurns('crm', 're-export', 2, day(30))).toEqual([]);
  });

  it("keeps each source's thread apart (by canonical source name) and refuses a thread id that is not one", async () => {
    const store = new FileThreadStore(dir, 30);
    await store.recordTurn('Sales-CRM', 'shared', turn(1), NOW);
    expect(await store.earlierTurns('other', 'shared', 2, NOW)).toEqual([]);
    expect(await store.earlierTurns('sales_crm', 'shared', 2, NOW)).toHaveLength(1);
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

  /**
   * Item 0 of one thread as DynamoDB keeps it, for the writes a claim sends: each evaluates its ConditionExpression
   * (those of claimTurn; any other fails the test) and changes the item at once, as the table does. TTL never
   * deletes it here: an expired item stays readable, as it may for about two days.
   */
  function counterTable(initial?: { last_turn: number; expires_at: number }) {
    let item: Record<string, AttributeValue> | undefined = initial && {
      last_turn: { N: String(initial.last_turn) },
      expires_at: { N: String(initial.expires_at) },
    };
    const conditions: Record<string, (values: Record<string, AttributeValue>) => boolean> = {
      'attribute_not_exists(expires_at) OR expires_at > :now': (v) =>
        !item?.expires_at || Number(item.expires_at.N) > Number(v[':now']!.N),
      'attribute_not_exists(expires_at) OR expires_at <= :now': (v) =>
        !item?.expires_at || Number(item.expires_at.N) <= Number(v[':now']!.N),
    };
    const holds = (expression: string | undefined, values: Record<string, AttributeValue> = {}) => {
      if (expression === undefined) return true;
      const condition = conditions[expression];
      if (!condition) throw new Error(`unexpected condition: ${expression}`);
      return condition(values);
    };
    const refused = () =>
      new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} });
    dynamo.on(UpdateItemCommand).callsFake(async (input) => {
      expect(input.UpdateExpression).toBe('ADD last_turn :one SET expires_at = :expires');
      if (!holds(input.ConditionExpression, input.ExpressionAttributeValues)) throw refused();
      const last = Number(item?.last_turn?.N ?? 0) + Number(input.ExpressionAttributeValues[':one'].N);
      item = { ...item, last_turn: { N: String(last) }, expires_at: input.ExpressionAttributeValues[':expires'] };
      return { Attributes: { last_turn: item.last_turn, expires_at: item.expires_at } };
    });
    dynamo.on(PutItemCommand).callsFake(async (input) => {
      if (!holds(input.ConditionExpression, input.ExpressionAttributeValues)) throw refused();
      const { thread: _t, turn: _n, ...attributes } = input.Item;
      item = attributes;
      return {};
    });
    return { item: () => item };
  }
  const epoch = (at: Date) => Math.floor(at.getTime() / 1000);

  it('claims a turn with one atomic ADD on the thread item 0 while it is unexpired, pushing its expiry forward', async () => {
    dynamo.on(UpdateItemCommand).resolves({ Attributes: { last_turn: { N: '3' } } });
    expect(await store.claimTurn('Sales-CRM', 'q3', NOW)).toBe(3);
    expect(dynamo.commandCalls(UpdateItemCommand)[0]!.args[0].input).toMatchObject({
      TableName: 'threads-table',
      Key: { thread: { S: 'sales_crm/q3' }, turn: { N: '0' } },
      UpdateExpression: 'ADD last_turn :one SET expires_at = :expires',
      ConditionExpression: 'attribute_not_exists(expires_at) OR expires_at > :now',
      ExpressionAttributeValues: { ':one': { N: '1' }, ':expires': { N: expires }, ':now': { N: String(epoch(NOW)) } },
      ReturnValues: 'UPDATED_NEW',
    });
  });

  it('numbers the turns of a thread in use 1, 2, 3 …, each claim pushing the expiry THREAD_TTL_DAYS past it', async () => {
    const table = counterTable();
    expect(await store.claimTurn('crm', 'in-use', day(0))).toBe(1);
    expect(await store.claimTurn('crm', 'in-use', day(20))).toBe(2);
    expect(await store.claimTurn('crm', 'in-use', day(49))).toBe(3);
    expect(table.item()).toEqual({ last_turn: { N: '3' }, expires_at: { N: String(epoch(day(79))) } });
  });

  it('starts a thread unused for THREAD_TTL_DAYS again at turn 1, though TTL has not deleted its counter yet', async () => {
    // Turn 7 was claimed on day 0: the counter expired on day 30 and is still in the table on day 31.
    const table = counterTable({ last_turn: 7, expires_at: epoch(day(30)) });
    expect(await store.claimTurn('crm', 'unused', day(31))).toBe(1);
    expect(table.item()).toEqual({ last_turn: { N: '1' }, expires_at: { N: String(epoch(day(61))) } });
    expect(await store.claimTurn('crm', 'unused', day(31))).toBe(2);
    // The turn 1 is a conditional put: it replaces only a counter still expired (or absent).
    expect(dynamo.commandCalls(PutItemCommand)[0]!.args[0].input).toMatchObject({
      TableName: 'threads-table',
      Item: { thread: { S: 'crm/unused' }, turn: { N: '0' }, last_turn: { N: '1' } },
      ConditionExpression: 'attribute_not_exists(expires_at) OR expires_at <= :now',
    });
  });

  it('gives two first turns at once of a thread starting again distinct numbers', async () => {
    counterTable({ last_turn: 7, expires_at: epoch(day(30)) });
    const turns = await Promise.all([1, 2, 3].map(() => store.claimTurn('crm', 'restarting', day(31))));
    expect([...turns].sort((a, b) => a - b)).toEqual([1, 2, 3]);
  });

  it('a claim that fails otherwise than on its condition fails (no turn 1 over a counter it could not read)', async () => {
    dynamo.on(UpdateItemCommand).rejects(new Error('throttled'));
    await expect(store.claimTurn('crm', 'q3', NOW)).rejects.toThrow('throttled');
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

  it('reads the earlier turns newest first with one consistent Query bounded by turn and limit, expired ones left out', async () => {
    dynamo.on(QueryCommand).resolves({ Items: [turn(4), turn(3)].map((t) => ({ body: { S: JSON.stringify(t) } })) });
    expect((await store.earlierTurns('crm', 'q3', 5, NOW, 2)).map((t) => t.turn)).toEqual([4, 3]);
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
    expect(await store.earlierTurns('crm', 'q3', 1, NOW)).toEqual([]);
    expect(dynamo.commandCalls(QueryCommand)).toHaveLength(1);
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
