import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ListObjectsV2Command } from '@aws-sdk/client-s3';
import { App, Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { Bucket } from 'aws-cdk-lib/aws-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONVERSATIONS_TABLE, EXPORT_LINES_TABLE } from '../../../functions/domain/analytics-table.ts';
import { ConversationAnalytics } from '../../../infra/constructs/conversation-analytics.ts';
import { runMain } from '../../support/cli.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * What Athena would read from the files the real pipeline exports, against what the local table (DuckDB) holds: the
 * Glue table of infra/constructs/conversation-analytics.ts reads every line of every file of a day folder
 * (TextInputFormat: lines end at LF, CR or CRLF) through the OpenX JSON SerDe (keys matched case-insensitively, a
 * line that is not a JSON object read as nulls with `ignore.malformed.json`, a bigint column refusing a value that is
 * not an integer: HIVE_BAD_DATA fails the whole query), and the view keeps the lines whose `format` is 'analysis'.
 * No AWS here: that model of the reader, applied to the exports of conversations with awkward texts, a 64 KB answer,
 * an agent failure (nulls), a thread and a failed delivery, must give the rows `conversations query` gives.
 */
type Cell = string | number | null;

let world: TestWorld;
let table: { columns: { name: string; type: string }[]; serde: Record<string, unknown>; location: unknown };
let viewSql: string;

let outdir: string;

beforeAll(async () => {
  // The App's assembly goes here, removed after (by default CDK leaves a cdk.out folder in the temp folder).
  outdir = await mkdtemp(path.join(tmpdir(), 'cdk.out-athena-'));
  const stack = new Stack(new App({ outdir }), 'AthenaModel');
  new ConversationAnalytics(stack, 'Analytics', {
    exportBucket: new Bucket(stack, 'Exports'),
    databaseName: 'model',
    workGroupName: 'model-analytics',
    bytesScannedCutoffPerQuery: 10 * 1024 ** 3,
    resultsExpirationDays: 30,
    firstDay: '2025/01/01',
  });
  const resources = Object.values(Template.fromStack(stack).toJSON().Resources) as {
    Type: string;
    Properties: { TableInput?: any };
  }[];
  const input = (name: string) =>
    resources.find((r) => r.Type === 'AWS::Glue::Table' && r.Properties.TableInput.Name === name)!.Properties
      .TableInput;
  const lines = input(EXPORT_LINES_TABLE);
  table = {
    columns: lines.StorageDescriptor.Columns.map((c: { Name: string; Type: string }) => ({
      name: c.Name,
      type: c.Type,
    })),
    serde: lines.StorageDescriptor.SerdeInfo,
    location: lines.Parameters['storage.location.template'],
  };
  const encoded = /^\/\* Presto View: ([A-Za-z0-9+/=]+) \*\/$/.exec(input(CONVERSATIONS_TABLE).ViewOriginalText)![1]!;
  viewSql = JSON.parse(Buffer.from(encoded, 'base64').toString('utf8')).originalSql;

  world = await startWorld();
}); // the hook limit of vitest.config.ts (120 s): synthesizing the stack took over 60 s at load 24
afterAll(async () => {
  await world?.close();
  await rm(outdir, { recursive: true, force: true });
});

/** Every key under a prefix, page by page (as Athena lists a partition). */
async function allKeys(prefix: string): Promise<string[]> {
  const keys: string[] = [];
  let token: string | undefined;
  do {
    const page = await world.s3.send(
      new ListObjectsV2Command({ Bucket: world.gateway.bucket, Prefix: prefix, ContinuationToken: token }),
    );
    keys.push(...(page.Contents ?? []).map((o) => o.Key!));
    token = page.IsTruncated ? page.NextContinuationToken : undefined;
  } while (token);
  return keys;
}

/** One line as the OpenX JSON SerDe reads it into the table's columns; null for a line it reads as nulls. */
function serdeRow(line: string, where: string): Record<string, Cell> | null {
  if (!line.trimStart().startsWith('{')) return null;
  let parsed: unknown;
  try {
    parsed = JSON.parse(line);
  } catch {
    return null; // ignore.malformed.json: a row of nulls, which the view's filter drops
  }
  const byName = new Map<string, unknown>();
  for (const [key, value] of Object.entries(parsed as object)) {
    // Keys are matched case-insensitively; two that fold together are a duplicate key, which fails the line.
    expect(byName.has(key.toLowerCase()), `${where}: duplicate key ${key}`).toBe(false);
    byName.set(key.toLowerCase(), value);
  }
  return Object.fromEntries(
    table.columns.map(({ name, type }) => {
      const value = byName.get(name) ?? null;
      if (value === null) return [name, null];
      if (type === 'bigint') {
        expect(Number.isSafeInteger(value), `${where}: ${name} = ${JSON.stringify(value)} is no bigint`).toBe(true);
        return [name, value as number];
      }
      expect(type).toBe('string');
      expect(typeof value, `${where}: ${name} is a JSON ${typeof value}, not text`).toBe('string');
      return [name, value as string];
    }),
  );
}

describe('Athena reads the exports as the local table does', () => {
  it('the same rows, column for column, from every line of every file of the day folders', async () => {
    expect(table.serde).toEqual({
      SerializationLibrary: 'org.openx.data.jsonserde.JsonSerDe',
      Parameters: { 'ignore.malformed.json': 'true' },
    });
    expect(JSON.stringify(table.location)).toContain('/conversation-history/${day}/');
    expect(viewSql).toMatch(/ FROM conversation_export_lines WHERE format = 'analysis'$/);

    const awkward = `Deals 😀 ünï 中文 עברית \u2028 line\u2029sep \u0085 nel \r\n crlf \r cr "quotes" \\ back \u0000 nul \t tab`;
    const sent = [
      await world.post({ ...SEED_REQUEST, query: awkward }),
      await world.post({ ...SEED_REQUEST, query: 'top deals in one thread', thread_id: 'q3-review' }),
    ];
    // The longest answer a conversation carries (64 KB), with the texts that split lines elsewhere.
    world.agent.behave(() => ({ payload: { response: `${'ä'.repeat(32_000)}\r\n\u2028 deals`, format: 'other' } }));
    sent.push(await world.post({ ...SEED_REQUEST, query: 'a very long answer about deals' }));
    // Keys that fold together in the agent's structured data (conversation.json keeps them).
    world.agent.behave(() => ({ payload: { response: 'a', Response: 'b', FORMAT: 'analysis', Format: 'x' } }));
    sent.push(await world.post({ ...SEED_REQUEST, query: 'Hello' }));
    world.agent.behave(() => ({ payload: 'no', functionError: 'Unhandled' }));
    sent.push(await world.post({ ...SEED_REQUEST, query: 'the agent fails here' }));
    world.agent.reset();
    world.receiver.reply(400);
    sent.push(await world.post({ ...SEED_REQUEST, query: 'a delivery the receiver refuses' }));
    world.receiver.reply(200);
    expect(sent.map((r) => r.status)).toEqual([200, 200, 200, 200, 502, 200]);

    const keys = await allKeys('conversation-history/');
    expect(keys).toHaveLength(sent.length * 4);
    const athena: Record<string, Cell>[] = [];
    for (const key of keys) {
      const day = /^conversation-history\/(\d{4}\/\d{2}\/\d{2})\//.exec(key)![1]!;
      const text = await world.getText(key);
      text.split(/\r\n|\r|\n/).forEach((line, i) => {
        const row = serdeRow(line, `${key}:${i + 1}`);
        if (row?.format === 'analysis') athena.push({ ...row, day });
      });
      // analysis.json and summary.json are one line each: what the reader splits them into is what was written.
      if (/\/(analysis|summary)\.json$/.test(key)) expect(text.split(/\r\n|\r|\n/)).toEqual([text.slice(0, -1), '']);
    }
    // Exactly one row per conversation, from its analysis.json.
    expect(athena.map((r) => r.conversation_id).sort()).toEqual(
      sent.map((r) => r.body.conversation_id ?? r.body.error.conversation_id).sort(),
    );

    const local = await runMain(
      ['conversations', 'query', 'SELECT * FROM conversations ORDER BY conversation_id', '--json'],
      {
        LOCAL_DATA_DIR: world.dataDir,
        AWS_ENDPOINT_URL_S3: undefined,
      },
    );
    expect(local.code, local.stderr).toBe(0);
    const byId = (a: Record<string, Cell>, b: Record<string, Cell>) =>
      String(a.conversation_id) < String(b.conversation_id) ? -1 : 1;
    expect(JSON.parse(local.stdout)).toEqual(athena.sort(byId));
    const rows = athena.sort(byId);
    expect(rows.find((r) => r.query === awkward.trim())).toBeDefined();
    expect(rows.find((r) => String(r.response).endsWith('\r\n\u2028 deals'))?.response_length).toBe(32_009);
    expect(rows.find((r) => r.status === 'failed')).toMatchObject({
      webhook_type: null,
      agent_processing_time_ms: null,
    });
    expect(rows.find((r) => r.thread_id === 'q3-review')?.thread_turn).toBe(1);
  }, 60_000);
});
