import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import {
  BatchGetItemCommand,
  ConditionalCheckFailedException,
  DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { LoggedAttempt } from '../../../functions/domain/attempt-log.ts';
import { type BreakerPolicy, NEW_HEALTH } from '../../../functions/domain/endpoints.ts';
import { attemptLog, DynamoAttemptLog, FileAttemptLog } from '../../../functions/shared/attempt-log.ts';
import {
  DynamoEndpointStore,
  ENDPOINT_CACHE_TTL_MS,
  endpointStore,
  FileEndpointStore,
} from '../../../functions/shared/endpoint-store.ts';
import { publishEndpointStates } from '../../../functions/shared/events.ts';
import { UnreadableFileError } from '../../../functions/shared/local-files.ts';
import { captureJsonLines } from '../../support/log-capture.ts';

/** The attempt log and the endpoint store: their DynamoDB adapters against a mocked DynamoDB, their file adapters on disk. */
const dynamo = mockClient(DynamoDBClient);
const NOW = new Date('2026-11-29T12:00:00.000Z');
const POLICY: BreakerPolicy = { failureThreshold: 2, disableAfterMs: 86_400_000 };
const ID = 'webhook_20261129_120000_testing_phase3valid_abc123';
const conditionFailed = () => new ConditionalCheckFailedException({ message: 'condition', $metadata: {} });

const entry = (attempt: number, at: string): LoggedAttempt => ({
  conversation_id: ID,
  delivery_id: 'd-1',
  webhook_type: 'deal_analysis',
  attempt,
  at,
  duration_ms: 40,
  status_code: 500,
  outcome: 'retryable',
  error: 'HTTP 500',
  via: 'workflow',
  request: { url: 'https://crm.example/hook', headers: { 'webhook-id': 'd-1' } },
  response: { status: 500, headers: { 'content-type': 'text/plain' }, body: 'database down', body_truncated: false },
});

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'delivery-stores-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
beforeEach(() => dynamo.reset());

describe('attempt log', () => {
  it('DynamoDB: one item per attempt, sorted by start, kept for the retention; read back consistently, every page', async () => {
    dynamo.on(PutItemCommand).resolves({});
    const log = new DynamoAttemptLog('deliveries', 90);
    await log.append(entry(1, NOW.toISOString()));
    const put = dynamo.commandCalls(PutItemCommand)[0]!.args[0].input;
    expect(put.Item).toMatchObject({
      pk: { S: `conversation#${ID}` },
      sk: { S: `attempt#${NOW.toISOString()}#000001` },
      expires_at: { N: String(NOW.getTime() / 1000 + 90 * 86_400) },
    });
    expect(JSON.parse(put.Item!.entry!.S!).response.body).toBe('database down');

    dynamo
      .on(QueryCommand)
      .resolvesOnce({
        Items: [{ entry: { S: JSON.stringify(entry(1, NOW.toISOString())) } }],
        LastEvaluatedKey: { pk: { S: 'x' } },
      })
      .resolvesOnce({
        Items: [{ entry: { S: JSON.stringify(entry(2, '2026-11-29T12:00:01.000Z')) } }, { entry: { S: 'not json' } }],
      });
    expect((await log.list(ID)).map((e) => e.attempt)).toEqual([1, 2]);
    const query = dynamo.commandCalls(QueryCommand)[0]!.args[0].input;
    expect(query).toMatchObject({
      ConsistentRead: true,
      ExpressionAttributeValues: { ':pk': { S: `conversation#${ID}` } },
    });
  });

  it('files: one JSON line per attempt, a cut line skipped, owner-only', async () => {
    const log = new FileAttemptLog(dir);
    await Promise.all([log.append(entry(2, '2026-11-29T12:00:01.000Z')), log.append(entry(1, NOW.toISOString()))]);
    await writeFile(log.file(ID), '{"cut', { flag: 'a' });
    expect((await log.list(ID)).map((e) => e.attempt)).toEqual([1, 2]);
    expect(await log.list('webhook_20261129_120000_testing_phase3valid_zzz999')).toEqual([]);
  });

  it('files: a line a full disk cut, then continued by the next append, costs only the cut attempt', async () => {
    const log = new FileAttemptLog(dir);
    const id = 'webhook_20261129_120000_testing_phase3valid_cut001';
    const of = (attempt: number, at: string) => ({ ...entry(attempt, at), conversation_id: id });
    await log.append(of(1, NOW.toISOString()));
    // ENOSPC in the middle of attempt 2's line (a gateway since restarted: nothing remembers the cut), then attempt 3
    // appended once the disk had room again.
    const second = JSON.stringify(of(2, '2026-11-29T12:00:01.000Z'));
    await writeFile(log.file(id), second.slice(0, second.indexOf('"response"') + 20), { flag: 'a' });
    await log.append(of(3, '2026-11-29T12:00:02.000Z'));
    // Before: attempt 3 was read as part of attempt 2's line, and both were left out of the export.
    expect((await log.list(id)).map((e) => [e.attempt, e.response?.body])).toEqual([
      [1, 'database down'],
      [3, 'database down'],
    ]);
  });

  it('is chosen by configuration: the table on AWS, the folder locally, none otherwise', () => {
    const saved = { ...process.env };
    try {
      delete process.env.DELIVERIES_DIR;
      delete process.env.DELIVERIES_TABLE_NAME;
      expect(attemptLog()).toBeNull();
      process.env.DELIVERIES_DIR = dir;
      expect(attemptLog()).toBeInstanceOf(FileAttemptLog);
      process.env.DELIVERIES_TABLE_NAME = 'deliveries';
      expect(attemptLog()).toBeInstanceOf(DynamoAttemptLog);
      expect(endpointStore()).toBeInstanceOf(DynamoEndpointStore);
      // One per table and process: its cached reads serve every Deliver of a warm Lambda.
      expect(endpointStore()).toBe(endpointStore());
    } finally {
      process.env = saved;
    }
  });
});

describe('endpoint store on DynamoDB', () => {
  const store = new DynamoEndpointStore('deliveries');

  it('reads a type’s configuration and health from one item (an absent item is a healthy receiver as deployed)', async () => {
    dynamo.on(GetItemCommand).resolves({
      Item: {
        url: { S: 'https://new.example/hook' },
        rate_per_second: { N: '5' },
        consecutive_failures: { N: '3' },
        failing_since: { S: NOW.toISOString() },
      },
    });
    expect(await store.get('deal_analysis')).toMatchObject({
      webhook_type: 'deal_analysis',
      config: { url: 'https://new.example/hook', rate_per_second: 5 },
      health: { consecutive_failures: 3, failing_since: NOW.toISOString(), disabled_at: null },
    });
    dynamo.on(BatchGetItemCommand).resolves({ Responses: {} });
    expect((await store.list()).map((e) => [e.webhook_type, e.health.consecutive_failures])).toEqual([
      ['deal_analysis', 0],
      ['data_analysis', 0],
      ['lead_analysis', 0],
      ['general', 0],
    ]);
  });

  describe('list: one BatchGetItem, and again for the keys DynamoDB leaves unprocessed', () => {
    const key = (type: string) => ({ pk: { S: `endpoint#${type}` }, sk: { S: 'endpoint' } });
    /** A store whose waits between reads are recorded, not slept. */
    const listing = (waits: number[]) =>
      new DynamoEndpointStore('deliveries', undefined, { wait: async (ms) => waits.push(ms) });

    it('a receiver left unprocessed by the first read is read again: the paused receiver reads as paused', async () => {
      const waits: number[] = [];
      dynamo
        .on(BatchGetItemCommand)
        .resolvesOnce({
          Responses: { deliveries: [{ ...key('general'), consecutive_failures: { N: '1' } }] },
          UnprocessedKeys: { deliveries: { Keys: [key('deal_analysis')], ConsistentRead: true } },
        })
        .resolvesOnce({
          Responses: {
            deliveries: [{ ...key('deal_analysis'), paused: { BOOL: true }, paused_at: { S: NOW.toISOString() } }],
          },
        });
      const endpoints = await listing(waits).list();
      expect(endpoints.map((e) => [e.webhook_type, e.config.paused ?? false, e.health.consecutive_failures])).toEqual([
        ['deal_analysis', true, 0],
        ['data_analysis', false, 0],
        ['lead_analysis', false, 0],
        ['general', false, 1],
      ]);
      const reads = dynamo.commandCalls(BatchGetItemCommand).map((c) => c.args[0].input.RequestItems);
      expect(reads).toHaveLength(2);
      // The second read asks for the unprocessed key alone, consistently like the first.
      expect(reads[1]).toEqual({ deliveries: { Keys: [key('deal_analysis')], ConsistentRead: true } });
      expect(waits).toHaveLength(1);
    });

    it('keys still unprocessed after a few reads: an error, not receivers read as unconfigured; the schedule publishes no endpoint metric', async () => {
      const waits: number[] = [];
      const store = listing(waits);
      dynamo.on(BatchGetItemCommand).resolves({
        Responses: { deliveries: [] },
        UnprocessedKeys: { deliveries: { Keys: [key('deal_analysis')], ConsistentRead: true } },
      });
      await expect(store.list()).rejects.toMatchObject({
        name: 'EndpointsUnreadable',
        message: expect.stringMatching(/1 of 4 receivers still unprocessed/),
      });
      const reads = dynamo.commandCalls(BatchGetItemCommand).length;
      expect(reads).toBeGreaterThan(1);
      expect(reads).toBeLessThanOrEqual(5);
      // A short backoff between reads (injected here: nothing slept), growing, a fraction of a second in all.
      expect(waits).toHaveLength(reads - 1);
      expect(waits).toEqual([...waits].sort((a, b) => a - b));
      expect(waits.reduce((a, b) => a + b, 0)).toBeLessThan(1_000);

      const capture = captureJsonLines();
      try {
        await publishEndpointStates(store, POLICY);
      } finally {
        capture.restore();
      }
      expect(capture.metrics()).toEqual([]);
      expect(capture.lines.filter((l) => l.level === 'WARN').map((l) => l.error)).toEqual([
        expect.stringMatching(/^EndpointsUnreadable: /),
      ]);
    });
  });

  it('keeps a read for ENDPOINT_CACHE_TTL_MS: the next reads make no call, a change is read after it; writes always go to the table', async () => {
    let now = NOW.getTime();
    const cached = new DynamoEndpointStore('deliveries', undefined, { clock: () => now });
    dynamo
      .on(GetItemCommand)
      .resolvesOnce({ Item: { url: { S: 'https://old.example/hook' } } })
      .resolves({ Item: { url: { S: 'https://new.example/hook' }, paused: { BOOL: true } } });
    expect((await cached.get('deal_analysis')).config.url).toBe('https://old.example/hook');
    now += ENDPOINT_CACHE_TTL_MS - 1;
    expect((await cached.get('deal_analysis')).config.url).toBe('https://old.example/hook');
    expect(dynamo.commandCalls(GetItemCommand)).toHaveLength(1);
    // Each type is its own item: another type is read.
    await cached.get('general');
    expect(dynamo.commandCalls(GetItemCommand)).toHaveLength(2);
    // The operator's change (another process wrote the table) is seen once the time is up.
    now += 1;
    expect((await cached.get('deal_analysis')).config).toMatchObject({ url: 'https://new.example/hook', paused: true });
    expect(dynamo.commandCalls(GetItemCommand)).toHaveLength(3);
    // A consistent read always asks the table.
    await cached.get('deal_analysis', { consistent: true });
    expect(dynamo.commandCalls(GetItemCommand)).toHaveLength(4);

    // Counting a failure is never served from the cache: every one is an atomic UpdateItem, and what it returns
    // (ALL_NEW) is what the next read sees, so this Lambda holds its next delivery without waiting for the TTL.
    dynamo.on(UpdateItemCommand).resolves({
      Attributes: {
        consecutive_failures: { N: '5' },
        failing_since: { S: NOW.toISOString() },
        probe_until: { S: new Date(now + 15_000).toISOString() },
      },
    });
    await cached.recordFailure('deal_analysis', 'HTTP 503', new Date(now), POLICY);
    await cached.recordFailure('deal_analysis', 'HTTP 503', new Date(now), POLICY);
    expect(dynamo.commandCalls(UpdateItemCommand)).toHaveLength(2);
    expect((await cached.get('deal_analysis')).health.consecutive_failures).toBe(5);
    expect(dynamo.commandCalls(GetItemCommand)).toHaveLength(4);

    // cacheTtlMs 0: every read asks.
    const uncached = new DynamoEndpointStore('deliveries', undefined, { cacheTtlMs: 0, clock: () => now });
    await uncached.get('lead_analysis');
    await uncached.get('lead_analysis');
    expect(dynamo.commandCalls(GetItemCommand)).toHaveLength(6);
  });

  it('counts a failure atomically (concurrent Delivers all count) and disables once, by a conditional write', async () => {
    dynamo
      .on(UpdateItemCommand)
      .resolvesOnce({
        Attributes: {
          consecutive_failures: { N: '7' },
          failing_since: { S: '2026-11-27T00:00:00.000Z' },
          last_error: { S: 'HTTP 503' },
        },
      })
      .resolvesOnce({ Attributes: { consecutive_failures: { N: '7' }, disabled_at: { S: NOW.toISOString() } } });
    const result = await store.recordFailure('deal_analysis', 'HTTP 503', NOW, POLICY);
    expect(result.disabledNow).toBe(true);
    const [count, disable] = dynamo.commandCalls(UpdateItemCommand).map((c) => c.args[0].input);
    expect(count!.UpdateExpression).toContain(
      'consecutive_failures = if_not_exists(consecutive_failures, :zero) + :one',
    );
    expect(count!.UpdateExpression).toContain('failing_since = if_not_exists(failing_since, :now)');
    expect(disable!.ConditionExpression).toBe('attribute_not_exists(disabled_at)');

    // Another Deliver disabled it first: this one is not told to report it.
    dynamo.reset();
    dynamo
      .on(UpdateItemCommand)
      .resolvesOnce({
        Attributes: { consecutive_failures: { N: '8' }, failing_since: { S: '2026-11-27T00:00:00.000Z' } },
      })
      .rejectsOnce(conditionFailed());
    expect((await store.recordFailure('deal_analysis', 'HTTP 503', NOW, POLICY)).disabledNow).toBe(false);
  });

  it("a failure's Retry-After is set on the item with the count (every Lambda holds the type), read back, forgotten by resume", async () => {
    const until = new Date(NOW.getTime() + 30_000).toISOString();
    dynamo.on(UpdateItemCommand).resolves({
      Attributes: { consecutive_failures: { N: '1' }, retry_after_until: { S: until } },
    });
    const result = await store.recordFailure('deal_analysis', 'HTTP 429', NOW, POLICY, undefined, 30_000);
    expect(result.health.retry_after_until).toBe(until);
    await store.recordFailure('deal_analysis', 'HTTP 503', NOW, POLICY);
    await store.resume('deal_analysis', NOW);
    const [slowDown, plain, resume] = dynamo.commandCalls(UpdateItemCommand).map((c) => c.args[0].input);
    expect(slowDown!.UpdateExpression).toContain('retry_after_until = :wait');
    expect(slowDown!.ExpressionAttributeValues![':wait']).toEqual({ S: until });
    // A failure without one leaves the time the last one asked for.
    expect(plain!.UpdateExpression).not.toContain('retry_after_until');
    expect(Object.values(resume!.ExpressionAttributeNames!)).toContain('retry_after_until');
    // A later answer's time replaces it whatever it is, a shorter one too (no condition, no max): the last one wins.
    expect(slowDown!.ConditionExpression).toBeUndefined();
  });

  it('a success leaves a Retry-After in place (only the streak and the probe are cleared), as the files do', async () => {
    dynamo.on(UpdateItemCommand).resolves({ Attributes: {} });
    await store.recordSuccess('deal_analysis', NOW);
    const [success] = dynamo.commandCalls(UpdateItemCommand).map((c) => c.args[0].input);
    expect(JSON.stringify(success)).not.toContain('retry_after_until');
  });

  it('a probe lease is a conditional write: only one Deliver gets it', async () => {
    dynamo.on(UpdateItemCommand).resolvesOnce({ Attributes: {} }).rejectsOnce(conditionFailed());
    const until = new Date(NOW.getTime() + 8_000);
    expect(await store.acquireProbe('deal_analysis', NOW, until)).toBe(true);
    expect(await store.acquireProbe('deal_analysis', NOW, until)).toBe(false);
    expect(dynamo.commandCalls(UpdateItemCommand)[0]!.args[0].input.ConditionExpression).toBe(
      'attribute_not_exists(probe_until) OR probe_until <= :now',
    );
  });

  it('the rate is one conditional counter per window, shared by every Lambda', async () => {
    dynamo.on(UpdateItemCommand).resolvesOnce({}).rejectsOnce(conditionFailed());
    const at = new Date(NOW.getTime() + 250);
    expect(await store.takeToken('deal_analysis', 5, at)).toEqual({ ok: true });
    expect(await store.takeToken('deal_analysis', 5, at)).toEqual({ ok: false, retryInMs: 750 });
    const input = dynamo.commandCalls(UpdateItemCommand)[0]!.args[0].input;
    expect(input).toMatchObject({
      Key: { pk: { S: 'rate#deal_analysis' }, sk: { S: String(NOW.getTime()) } },
      ConditionExpression: 'attribute_not_exists(n) OR n < :limit',
      ExpressionAttributeValues: { ':limit': { N: '5' } },
    });
  });

  it('configure sets what is given and removes what is cleared; resume forgets the disable and the streak', async () => {
    dynamo.on(UpdateItemCommand).resolves({ Attributes: { url: { S: 'https://new.example/hook' } } });
    await store.configure(
      'deal_analysis',
      { url: 'https://new.example/hook', rate_per_second: null, paused: true },
      NOW,
    );
    await store.resume('deal_analysis', NOW);
    const [configure, resume] = dynamo.commandCalls(UpdateItemCommand).map((c) => c.args[0].input);
    expect(Object.values(configure!.ExpressionAttributeNames!)).toEqual(
      expect.arrayContaining(['url', 'paused', 'paused_at', 'rate_per_second', 'updated_at']),
    );
    expect(configure!.UpdateExpression).toMatch(/^SET .* REMOVE #r0/);
    expect(Object.values(resume!.ExpressionAttributeNames!)).toEqual(
      expect.arrayContaining(['paused', 'disabled_at', 'failing_since', 'probe_until', 'consecutive_failures']),
    );
  });

  it('a new URL is a new receiver: one conditional UpdateItem forgets the old URL’s health and keeps the pause', async () => {
    dynamo.on(UpdateItemCommand).resolves({
      Attributes: { url: { S: 'https://new.example/hook' }, paused: { BOOL: true }, consecutive_failures: { N: '0' } },
    });
    const configured = await store.configure('deal_analysis', { url: 'https://new.example/hook' }, NOW);
    expect(configured).toMatchObject({ new_url: true, config: { paused: true }, health: { consecutive_failures: 0 } });
    const calls = dynamo.commandCalls(UpdateItemCommand).map((c) => c.args[0].input);
    expect(calls).toHaveLength(1);
    const [input] = calls;
    // One placeholder names `url` and one holds the new URL, in the SET and the condition alike: DynamoDB takes one
    // ExpressionAttributeNames and ExpressionAttributeValues per request for both expressions. Before, the condition
    // had its own two (#url, :url) beside the SET's, holding the same name and value.
    const nameOf = (attribute: string) =>
      Object.entries(input!.ExpressionAttributeNames!).filter(([, n]) => n === attribute);
    const urlValues = Object.entries(input!.ExpressionAttributeValues!).filter(
      ([, v]) => v.S === 'https://new.example/hook',
    );
    expect(nameOf('url')).toHaveLength(1);
    expect(urlValues).toHaveLength(1);
    const [[name]] = nameOf('url') as [[string, string]];
    const [[value]] = urlValues as [[string, unknown]];
    expect(input!.ConditionExpression).toBe(`attribute_not_exists(${name}) OR ${name} <> ${value}`);
    expect(input!.UpdateExpression).toContain(`${name} = ${value}`);
    const removed = /REMOVE (.*)$/
      .exec(input!.UpdateExpression!)![1]!
      .split(', ')
      .map((name) => input!.ExpressionAttributeNames![name]);
    expect(removed).toEqual(
      expect.arrayContaining([
        'failing_since',
        'probe_until',
        'disabled_at',
        'retry_after_until',
        'last_error',
        'last_success_at',
        'last_failure_at',
      ]),
    );
    // The operator's pause is not the URL's: kept.
    expect(removed).not.toContain('paused');
    expect(removed).not.toContain('paused_at');
    expect(Object.values(input!.ExpressionAttributeNames!)).toContain('consecutive_failures');
  });

  it('the same URL again fails the condition: written without touching the health; the deployed URL where none is set too', async () => {
    dynamo
      .on(UpdateItemCommand)
      .rejectsOnce(conditionFailed())
      .resolves({ Attributes: { url: { S: 'https://same.example/hook' }, consecutive_failures: { N: '7' } } });
    const configured = await store.configure('deal_analysis', { url: 'https://same.example/hook' }, NOW);
    expect(configured.new_url).toBeUndefined();
    expect(configured.health.consecutive_failures).toBe(7);
    const [tried, written] = dynamo.commandCalls(UpdateItemCommand).map((c) => c.args[0].input);
    expect(tried!.ConditionExpression).toBeDefined();
    expect(written!.ConditionExpression).toBeUndefined();
    expect(Object.values(written!.ExpressionAttributeNames!)).not.toContain('failing_since');
    expect(Object.values(written!.ExpressionAttributeNames!)).not.toContain('consecutive_failures');
    // The deployed URL set where none is configured, or a configured one cleared back to a deployed one that is the
    // same: the receiver changes only if the item's URL is another.
    dynamo.reset();
    dynamo.on(UpdateItemCommand).resolves({ Attributes: {} });
    const deployed = 'https://deployed.example/hook';
    await store.configure('deal_analysis', { url: deployed }, NOW, deployed);
    await store.configure('deal_analysis', { url: null }, NOW, deployed);
    await store.configure('deal_analysis', { url: null }, NOW);
    const inputs = dynamo.commandCalls(UpdateItemCommand).map((c) => c.args[0].input);
    // Each in the update's own placeholders: `url` SET (#sN = :sN) or REMOVEd (#rN); the deployed URL its own value.
    const conditions = inputs.map((input) =>
      input
        .ConditionExpression!.replace(/#[sr]\d+/g, (p) => `#${input.ExpressionAttributeNames![p]}`)
        .replace(/:s\d+/g, (p) => `:${input.ExpressionAttributeValues![p]!.S === deployed ? 'deployed-url' : 'other'}`),
    );
    expect(conditions).toEqual([
      'attribute_exists(#url) AND #url <> :deployed-url',
      'attribute_exists(#url) AND #url <> :deployed',
      'attribute_exists(#url)',
    ]);
    expect(inputs[1]!.ExpressionAttributeValues![':deployed']).toEqual({ S: deployed });
    for (const input of inputs)
      expect(Object.values(input.ExpressionAttributeNames!).filter((n) => n === 'url')).toHaveLength(1);
  });

  it('a pause of a paused receiver keeps since when it is paused (endpoints pause --aws twice, two tabs)', async () => {
    dynamo.on(UpdateItemCommand).resolves({ Attributes: {} });
    await store.configure('deal_analysis', { paused: true }, NOW);
    const { UpdateExpression, ExpressionAttributeNames, ExpressionAttributeValues } =
      dynamo.commandCalls(UpdateItemCommand)[0]!.args[0].input;
    const at = /(#k\d+) = if_not_exists\(\1, (:k\d+)\)/.exec(UpdateExpression!);
    expect(ExpressionAttributeNames![at![1]!]).toBe('paused_at');
    expect(ExpressionAttributeValues![at![2]!]).toEqual({ S: NOW.toISOString() });
  });

  it('the same secrets marked again keep since when they sign (endpoints set --secret --aws given twice)', async () => {
    dynamo.reset();
    // The item already names these secrets: the condition fails, and only updated_at is written.
    dynamo.on(UpdateItemCommand).rejectsOnce(conditionFailed()).resolves({ Attributes: {} });
    await store.markSecrets('general', 'fp-rotation', NOW);
    const [marked, touched] = dynamo.commandCalls(UpdateItemCommand).map((c) => c.args[0].input);
    const named = (input: typeof marked, text: string) =>
      text.replace(/#[a-z]\d+/g, (p) => `#${input!.ExpressionAttributeNames![p]}`);
    expect(named(marked, marked!.ConditionExpression!)).toMatch(
      /^attribute_not_exists\(#secrets_changed_at\) OR attribute_not_exists\(#secrets_fingerprint\) OR #secrets_fingerprint <> :/,
    );
    expect(Object.values(touched!.ExpressionAttributeNames!)).toEqual(['updated_at']);
  });
});

describe('endpoint store on files', () => {
  it.each([
    ['an array', '[]'],
    ['an object without config and health', '{"paused":"yes"}'],
    ['config that is not an object', '{"config":"paused","health":{}}'],
  ])('a receiver file holding %s is damaged, named, never read as a fresh receiver', async (_what, text) => {
    const store = new FileEndpointStore(path.join(dir, 'damaged-endpoint'));
    await mkdir(path.dirname(store.file('lead_analysis')), { recursive: true });
    await writeFile(store.file('lead_analysis'), text);
    const error = await store.get('lead_analysis').catch((e: Error) => e);
    expect(error).toBeInstanceOf(UnreadableFileError);
    expect((error as UnreadableFileError).file).toBe(store.file('lead_analysis'));
    await expect(store.list()).rejects.toThrow(/lead_analysis\.json is not a receiver's state/);
  });

  it('the same secrets marked again keep the time they began to sign; other secrets take the new time', async () => {
    // The same `endpoints set --secret` given twice changes no secret: "two secrets since <time>" stays the rotation's.
    const store = new FileEndpointStore(path.join(dir, 'secrets-marked'));
    const at = (s: number) => new Date(NOW.getTime() + s * 1000);
    await store.markSecrets('general', 'fp-rotation', NOW);
    await store.markSecrets('general', 'fp-rotation', at(3600));
    expect((await store.get('general')).config.secrets_changed_at).toBe(NOW.toISOString());
    await store.markSecrets('general', 'fp-dropped', at(7200));
    expect((await store.get('general')).config.secrets_changed_at).toBe(at(7200).toISOString());
  });

  it('its last Retry-After sets the time, a shorter one too, as on DynamoDB; a failure without one and a success keep it', async () => {
    // docs/operations.md, Receivers: "Its last such answer sets the time". The DynamoDB adapter SETs the answer's time
    // unconditionally and a success REMOVEs only failing_since and probe_until (above, and recordSuccess).
    const store = new FileEndpointStore(path.join(dir, 'retry-after-last'));
    const at = (s: number) => new Date(NOW.getTime() + s * 1000);
    await store.recordFailure('general', 'HTTP 503', NOW, POLICY, undefined, 3_600_000);
    expect((await store.get('general')).health.retry_after_until).toBe(at(3600).toISOString());
    await store.recordFailure('general', 'HTTP 429', at(10), POLICY, undefined, 5_000);
    expect((await store.get('general')).health.retry_after_until).toBe(at(15).toISOString());
    await store.recordFailure('general', 'HTTP 500', at(11), POLICY);
    await store.recordSuccess('general', at(12));
    expect((await store.get('general')).health.retry_after_until).toBe(at(15).toISOString());
  });

  it('concurrent failures from two processes’ worth of stores all count; the breaker disables once', async () => {
    const gateway = new FileEndpointStore(dir);
    const cli = new FileEndpointStore(dir);
    const results = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? gateway : cli).recordFailure(
          'data_analysis',
          `HTTP 503 #${i}`,
          new Date(NOW.getTime() + 2 * 86_400_000),
          {
            ...POLICY,
            disableAfterMs: 0,
          },
        ),
      ),
    );
    expect(results.filter((r) => r.disabledNow)).toHaveLength(0);
    expect((await cli.get('data_analysis')).health.consecutive_failures).toBe(20);
    await gateway.recordSuccess('data_analysis', NOW);
    expect((await cli.get('data_analysis')).health).toMatchObject({
      consecutive_failures: 0,
      last_success_at: NOW.toISOString(),
    });
  });

  it('pause, a URL, a rate and resume, as the command line writes them and the gateway reads them', async () => {
    const cli = new FileEndpointStore(dir);
    await cli.configure('lead_analysis', { url: 'https://leads.example/hook', rate_per_second: 2, paused: true }, NOW);
    const gateway = new FileEndpointStore(dir);
    expect((await gateway.get('lead_analysis')).config).toMatchObject({
      url: 'https://leads.example/hook',
      rate_per_second: 2,
      paused: true,
      paused_at: NOW.toISOString(),
    });
    await cli.configure('lead_analysis', { url: null }, NOW);
    const resumed = await cli.resume('lead_analysis', NOW);
    expect(resumed.config).toEqual({ rate_per_second: 2, updated_at: NOW.toISOString() });
  });

  it('a new URL forgets the old URL’s streak, breaker and Retry-After, keeps the pause; the same URL, or the deployed one where none is set, keeps them', async () => {
    const store = new FileEndpointStore(path.join(dir, 'new-url'));
    const deployed = 'https://deployed.example/hook';
    const failing = async () => {
      for (let i = 0; i < 3; i++)
        await store.recordFailure('general', 'HTTP 503', new Date(NOW.getTime() + i * 1000), POLICY, undefined, 60_000);
      return (await store.get('general')).health;
    };
    const old = await failing();
    expect(old).toMatchObject({ consecutive_failures: 3, failing_since: NOW.toISOString() });
    expect(old.retry_after_until).not.toBeNull();
    // The deployed URL where none is configured: where it delivered already.
    const same = await store.configure('general', { url: deployed }, NOW, deployed);
    expect(same.new_url).toBeUndefined();
    expect(same.health).toEqual(old);
    expect((await store.configure('general', { url: deployed }, NOW, deployed)).health).toEqual(old);
    await store.configure('general', { paused: true }, NOW);
    const moved = await store.configure('general', { url: 'https://new.example/hook' }, NOW, deployed);
    expect(moved).toMatchObject({ new_url: true, config: { url: 'https://new.example/hook', paused: true } });
    expect((await store.get('general')).health).toEqual(NEW_HEALTH);
    // Cleared back to the deployed URL: another receiver again.
    await failing();
    expect((await store.configure('general', { url: null }, NOW, deployed)).new_url).toBe(true);
    expect((await store.get('general')).health.consecutive_failures).toBe(0);
  });

  it('one probe at a time; the rate counted per window in the gateway process', async () => {
    const store = new FileEndpointStore(dir);
    const until = new Date(NOW.getTime() + 8_000);
    // Two at once: exactly one gets it, whichever the file lock lets in first.
    const both = await Promise.all([
      store.acquireProbe('general', NOW, until),
      store.acquireProbe('general', NOW, until),
    ]);
    expect(both.sort()).toEqual([false, true]);
    expect(await store.acquireProbe('general', until, new Date(until.getTime() + 8_000))).toBe(true);
    expect(await store.takeToken('general', 1, NOW)).toEqual({ ok: true });
    expect(await store.takeToken('general', 1, new Date(NOW.getTime() + 400))).toEqual({ ok: false, retryInMs: 600 });
    expect(await store.takeToken('general', 1, new Date(NOW.getTime() + 1_000))).toEqual({ ok: true });
  });
});
