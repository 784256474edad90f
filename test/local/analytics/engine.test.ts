import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analysisFormat } from '../../../functions/domain/export-formats.ts';
import { completeConversation, withAgentAnswer, withClassification } from '../../../functions/domain/lifecycle.ts';
import { writerHost } from '../../../functions/shared/writers.ts';
import { CACHE_FILE, dayOfKey, openAnalytics, QueryError, READ_BATCH } from '../../../local/analytics/engine.ts';
import { type AnalysisSource, s3Source, storeDirectorySource } from '../../../local/analytics/sources.ts';
import { type EmbeddedS3, startEmbeddedS3 } from '../../../local/store/embedded-s3.ts';
import { s3Client } from '../../../local/store/export-bucket.ts';
import { startedRecord } from '../../support/fixtures.ts';
import { anotherHost } from '../../support/pid-namespaces.ts';

/** An analysis.json document as Export writes it, for a conversation received at `at`. */
function document(at: string, suffix: string, query = 'What are the top 5 deals closing this quarter?') {
  let r = startedRecord(
    { query, source_system: 'crm', source_process: 'sync' },
    { input: { received_at: at }, ids: { suffix } },
  );
  r = withClassification(withAgentAnswer(r, 'Acme renewal', 20, new Date(Date.parse(at) + 20)));
  r = completeConversation(r, false, 'x', new Date(Date.parse(at) + 50));
  const key = `conversation-history/${at.slice(0, 10).replaceAll('-', '/')}/${r.conversation_id}/analysis.json`;
  return { key, text: `${JSON.stringify(analysisFormat(r, at))}\n` };
}

/** A source whose objects a test changes between runs; it counts what the engine reads. */
function memorySource() {
  const objects = new Map<string, { text: string; version: number }>();
  let reads = 0;
  let largest = 0;
  const source: AnalysisSource = {
    location: 'memory',
    list: async (fromDay?: string | null) =>
      [...objects]
        .filter(([key]) => !fromDay || dayOfKey(key)! >= fromDay)
        .map(([key, o]) => ({ key, version: String(o.version) })),
    read: async (asked) => {
      reads += asked.length;
      largest = Math.max(largest, asked.length);
      return asked.map((a) => objects.get(a.key)?.text ?? null);
    },
    close: async () => {},
  };
  return {
    source,
    put(key: string, text: string) {
      objects.set(key, { text, version: (objects.get(key)?.version ?? 0) + 1 });
    },
    delete: (key: string) => objects.delete(key),
    reads: () => reads,
    /** The most documents one read asked for. */
    largest: () => largest,
  };
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'analytics-engine-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function count(source: AnalysisSource, cacheDir: string | null) {
  const engine = await openAnalytics({ source, cacheDir });
  try {
    const { rows } = await engine.query('SELECT count(*) AS n FROM conversations');
    return { n: rows[0]!.n, report: engine.report };
  } finally {
    engine.close();
  }
}

describe('the local conversations table and its cache', () => {
  it('reads each export once: later runs read only what is new or rewritten, and drop what is gone', async () => {
    const cacheDir = path.join(dir, 'cache-1');
    const m = memorySource();
    const a = document('2026-11-29T10:00:00.000Z', 'aaa');
    const b = document('2026-11-29T11:00:00.000Z', 'bbb');
    m.put(a.key, a.text);
    m.put(b.key, b.text);
    expect(await count(m.source, cacheDir)).toMatchObject({ n: 2, report: { rows: 2, read: 2, skipped: [] } });
    expect(await count(m.source, cacheDir)).toMatchObject({ n: 2, report: { read: 0 } });
    expect(m.reads()).toBe(2);

    const c = document('2026-11-30T09:00:00.000Z', 'ccc');
    m.put(c.key, c.text);
    m.put(a.key, a.text.replace('"delivery_status":"pending"', '"delivery_status":"delivered"'));
    m.delete(b.key);
    expect(await count(m.source, cacheDir)).toMatchObject({ n: 2, report: { read: 2 } });
    const engine = await openAnalytics({ source: m.source, cacheDir });
    const { rows } = await engine.query('SELECT conversation_id, day FROM conversations ORDER BY 1');
    engine.close();
    expect(rows).toEqual([
      { conversation_id: expect.stringContaining('_aaa'), day: '2026/11/29' },
      { conversation_id: expect.stringContaining('_ccc'), day: '2026/11/30' },
    ]);
  });

  it('reads a bucket of exports a batch at a time, never every document at once', async () => {
    // A first run over a big bucket (every answer up to 64 KB) held every analysis.json's text and row in memory
    // together: 3,000 conversations with 60 KB answers needed more than 160 MB of heap, 30,000 ran out of it.
    const m = memorySource();
    const total = READ_BATCH * 2 + 1;
    for (let i = 0; i < total; i++) {
      const d = document(`2026-11-29T10:${String(i % 60).padStart(2, '0')}:00.000Z`, `b${String(i).padStart(5, '0')}`);
      m.put(d.key, d.text);
    }
    expect(await count(m.source, path.join(dir, 'cache-batches'))).toMatchObject({
      n: total,
      report: { rows: total, read: total, skipped: [] },
    });
    expect(m.reads()).toBe(total);
    expect(m.largest()).toBe(READ_BATCH);
  });

  it('skips a document that is not an analysis row (and reads it again next time, in case it was being written)', async () => {
    const m = memorySource();
    const good = document('2026-11-29T10:00:00.000Z', 'ok1');
    m.put(good.key, good.text);
    m.put('conversation-history/2026/11/29/webhook_x/analysis.json', '{"format":"analy');
    m.put('conversation-history/2026/11/29/webhook_y/analysis.json', '{"format":"summary"}');
    m.put('conversation-history/2026/11/29/webhook_z/analysis.json', '[1,2]');
    const first = await count(m.source, path.join(dir, 'cache-2'));
    expect(first.n).toBe(1);
    expect(first.report.skipped.map((s) => s.reason).sort()).toEqual([
      'not JSON (being written?)',
      'not a JSON object',
      'not an analysis document (format is not "analysis")',
    ]);
    expect((await count(m.source, path.join(dir, 'cache-2'))).report.read).toBe(3);
  });

  it('types every column as the Athena table does: text as text, counts and times as integers, wrong types as null', async () => {
    const m = memorySource();
    const d = document('2026-11-29T10:00:00.000Z', 'typ');
    const doc = JSON.parse(d.text);
    m.put(d.key, JSON.stringify({ ...doc, total_time_ms: '50', query_length: 1.5, last_error: { nested: true } }));
    const engine = await openAnalytics({ source: m.source, cacheDir: null });
    const { rows, columns } = await engine.query(
      'SELECT total_time_ms, query_length, last_error, agent_processing_time_ms FROM conversations',
    );
    engine.close();
    expect(rows).toEqual([
      { total_time_ms: null, query_length: null, last_error: '{"nested":true}', agent_processing_time_ms: 20 },
    ]);
    expect(columns.map((c) => c.type)).toEqual(['BIGINT', 'BIGINT', 'VARCHAR', 'BIGINT']);
  });

  it('starts over from the documents when the cache file is not a cache it can read', async () => {
    const cacheDir = path.join(dir, 'cache-3');
    await mkdir(cacheDir, { recursive: true });
    await writeFile(path.join(cacheDir, CACHE_FILE), 'not parquet');
    const m = memorySource();
    const d = document('2026-11-29T10:00:00.000Z', 'cor');
    m.put(d.key, d.text);
    expect(await count(m.source, cacheDir)).toMatchObject({ n: 1, report: { read: 1 } });
    expect(await count(m.source, cacheDir)).toMatchObject({ n: 1, report: { read: 0 } });
  });

  it('still answers when the cache cannot be written, and says why', async () => {
    // A cache directory under a file: no one, not even root, can create it.
    const file = path.join(dir, 'a-file');
    await writeFile(file, '');
    const cacheDir = path.join(file, 'cache');
    const m = memorySource();
    const d = document('2026-11-29T10:00:00.000Z', 'ro1');
    m.put(d.key, d.text);
    const result = await count(m.source, cacheDir);
    expect(result.n).toBe(1);
    expect(result.report.cacheError).toMatch(/could not write/);
  });

  it('still answers from the batches it wrote when the cache file cannot be replaced, and removes them on close', async () => {
    const cacheDir = path.join(dir, 'cache-blocked');
    await mkdir(path.join(cacheDir, CACHE_FILE, 'in-the-way'), { recursive: true }); // a folder where the file goes
    const m = memorySource();
    for (const suffix of ['bl1', 'bl2']) {
      const d = document('2026-11-29T10:00:00.000Z', suffix);
      m.put(d.key, d.text);
    }
    const umask = process.umask(0o022); // the usual one, which leaves files readable by others
    const engine = await openAnalytics({ source: m.source, cacheDir }).finally(() => process.umask(umask));
    try {
      expect(engine.report.cacheError).toMatch(/could not write/);
      expect((await engine.query('SELECT count(*) AS n FROM conversations')).rows).toEqual([{ n: 2 }]);
      await expect(engine.query("SELECT * FROM read_text('/etc/hostname')")).rejects.toThrow(QueryError);
      // The batches' Parquet files hold the conversations' text: the owner's only, as every file of the data folder.
      const build = (await readdir(cacheDir)).find((name) => name.startsWith('build-'))!;
      const parts = await readdir(path.join(cacheDir, build));
      expect(parts.length).toBeGreaterThan(0);
      for (const part of parts) expect((await stat(path.join(cacheDir, build, part))).mode & 0o777).toBe(0o600);
    } finally {
      engine.close();
    }
    expect(await readdir(cacheDir)).toEqual([CACHE_FILE]);
  });

  it('builds the cache of a bucket larger than its memory: 3,000 answers of 60 KB (180 MB) within 128 MB', async () => {
    // One document's text serves every key (the source holds 60 KB); the engine parses and keeps each row anew.
    const base = JSON.parse(document('2026-11-29T10:00:00.000Z', 'big').text);
    const text = JSON.stringify({ ...base, response: 'renewal '.repeat(7_680) });
    const keys = Array.from({ length: 3_000 }, (_, i) => `conversation-history/2026/11/29/c${i}/analysis.json`);
    const source: AnalysisSource = {
      location: 'memory',
      list: async () => keys.map((key) => ({ key, version: '1' })),
      read: async (asked) => asked.map(() => text),
      close: async () => {},
    };
    const cacheDir = path.join(dir, 'big');
    const engine = await openAnalytics({ source, cacheDir, memoryLimit: '128MB' });
    try {
      expect(engine.report).toMatchObject({ rows: 3_000, read: 3_000, skipped: [] });
      expect(engine.report.cacheError).toBeUndefined();
      const { rows } = await engine.query('SELECT count(*) AS n, sum(length(response)) AS chars FROM conversations');
      expect(rows).toEqual([{ n: 3_000, chars: 3_000 * 61_440 }]);
    } finally {
      engine.close();
    }
    expect(await readdir(cacheDir)).toEqual([CACHE_FILE]); // the batches' files are gone
  });

  it("spills what does not fit in memory to a private folder of the cache's, never to the working directory", async () => {
    const cacheDir = path.join(dir, 'spill');
    const m = memorySource();
    const d = document('2026-11-29T10:00:00.000Z', 'sp1');
    m.put(d.key, d.text);
    const engine = await openAnalytics({ source: m.source, cacheDir, memoryLimit: '32MB' });
    try {
      // A join of 2 × 60 MB within 32 MB: DuckDB writes what does not fit to temporary files (by default in ./.tmp,
      // with the umask's modes, left behind by a crash), here in a folder of the cache's, the owner's only.
      const texts = "SELECT repeat('x', 200) || i AS s FROM range(300000) r(i)";
      const joined = await engine.query(`SELECT count(*) AS n FROM (${texts}) a JOIN (${texts}) b USING (s)`);
      expect(joined.rows).toEqual([{ n: 300_000 }]);
      expect(existsSync(path.join(process.cwd(), '.tmp'))).toBe(false);
      const spill = (await readdir(cacheDir)).filter((name) =>
        name.startsWith(`spill-${process.pid}@${writerHost()}-`),
      );
      expect(spill).toHaveLength(1);
      expect((await stat(path.join(cacheDir, spill[0]!))).mode & 0o777).toBe(0o700);
    } finally {
      engine.close();
    }
    expect(await readdir(cacheDir)).toEqual([CACHE_FILE]); // the spill folder is gone with the engine
  });

  it("removes what a crashed run left (its batches, its spill, the cache it was saving), not an open engine's", async () => {
    const cacheDir = path.join(dir, 'crashed');
    const dead = spawnSync(process.execPath, ['-e', '']).pid!; // exited: no process has its id
    // A folder of this process's pid that no open engine of it made: a crashed process had the same pid (a gateway
    // restarted as pid 1 in a container), whose folder would otherwise stay for good.
    const live = await openAnalytics({ source: memorySource().source, cacheDir });
    try {
      const liveFolders = await readdir(cacheDir);
      const left = [`build-${dead}-a1`, `spill-${dead}-b2`, `build-${process.pid}-crashed`];
      for (const name of left) await mkdir(path.join(cacheDir, name), { recursive: true });
      // The cache a killed `conversations query` was saving: as large as the cache, kept until a gateway's sweep.
      await writeFile(path.join(cacheDir, `${CACHE_FILE}.${dead}.0a1b2c3d.tmp`), 'half a cache');
      await writeFile(path.join(cacheDir, left[1]!, 'duckdb_temp_storage_DEFAULT-0.tmp'), 'rows of a query');
      const m = memorySource();
      const d = document('2026-11-29T10:00:00.000Z', 'cr1');
      m.put(d.key, d.text);
      expect((await count(m.source, cacheDir)).n).toBe(1);
      expect((await readdir(cacheDir)).sort()).toEqual([CACHE_FILE, ...liveFolders].sort()); // the open engine's stay
    } finally {
      live.close();
    }
    expect(await readdir(cacheDir)).toEqual([CACHE_FILE]);
  });

  it('keeps what a run of another pid namespace (a container sharing the folder) left until a day old', async () => {
    const cacheDir = path.join(dir, 'container');
    const dead = spawnSync(process.execPath, ['-e', '']).pid!;
    const other = anotherHost();
    // A container's run under way: its pid is free here, or is this process's (pids from 1 there).
    const theirs = [`build-${dead}@${other}-a1`, `spill-${process.pid}@${other}-b2`];
    const saving = `${CACHE_FILE}.${dead}.${other}0a1b2c3d4e5f.tmp`;
    const old = `build-${dead}@${other}-c3`; // a container's, two days old: its run ended long ago
    const goneHere = `build-${dead}@${writerHost()}-d4`; // this namespace's, its process gone
    for (const name of [...theirs, old, goneHere]) await mkdir(path.join(cacheDir, name), { recursive: true });
    await writeFile(path.join(cacheDir, saving), 'half a cache');
    const twoDaysAgo = new Date(Date.now() - 2 * 86_400_000);
    await utimes(path.join(cacheDir, old), twoDaysAgo, twoDaysAgo);
    const m = memorySource();
    const d = document('2026-11-29T10:00:00.000Z', 'ns1');
    m.put(d.key, d.text);
    // Before: removed as a dead process's (its pid not alive here), or as this process's own crashed one.
    expect((await count(m.source, cacheDir)).n).toBe(1);
    expect((await readdir(cacheDir)).sort()).toEqual([CACHE_FILE, ...theirs, saving].sort());
  });

  it("from a day, lists and reads only that day's exports and the later ones, and keeps the earlier days' rows", async () => {
    const m = memorySource();
    const cacheDir = path.join(dir, 'from-day');
    const old = document('2026-11-01T10:00:00.000Z', 'day1');
    const recent = document('2026-11-29T10:00:00.000Z', 'day2');
    m.put(old.key, old.text);
    m.put(recent.key, recent.text);
    const scoped = await openAnalytics({ source: m.source, cacheDir, fromDay: '2026/11/29' });
    expect(scoped.report).toMatchObject({ read: 1, rows: 1 });
    scoped.close();
    expect(m.reads()).toBe(1);
    // A run over every day reads the earlier day's export; the next scoped run reads nothing and keeps its row.
    expect((await count(m.source, cacheDir)).n).toBe(2);
    expect(m.reads()).toBe(2);
    const older = document('2026-11-02T10:00:00.000Z', 'day3');
    m.put(older.key, older.text);
    const again = await openAnalytics({ source: m.source, cacheDir, fromDay: '2026/11/29' });
    expect(again.report).toMatchObject({ read: 0, rows: 2 });
    again.close();
    expect(m.reads()).toBe(2);
    expect((await count(m.source, cacheDir)).n).toBe(3);
  });

  it('takes the partition from the key', () => {
    expect(dayOfKey('conversation-history/2026/11/29/webhook_x/analysis.json')).toBe('2026/11/29');
    expect(dayOfKey('other/2026/11/29/analysis.json')).toBeNull();
  });
});

describe('what the SQL may do', () => {
  it('reads the table, and nothing else: no files, no extensions, no settings, one statement at a time', async () => {
    const engine = await openAnalytics({ source: memorySource().source, cacheDir: null });
    try {
      expect((await engine.query('SELECT count(*) AS n FROM conversations')).rows).toEqual([{ n: 0 }]);
      for (const sql of [
        "COPY (SELECT 1) TO '/tmp/x.csv'",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_text('/etc/hostname')",
        'SET enable_external_access = true',
        'INSTALL httpfs',
        "ATTACH '/tmp/other.db'",
      ]) {
        await expect(engine.query(sql), sql).rejects.toThrow(QueryError);
      }
      // Nor does it change this run's tables: the view stays, and a CTE in front of an INSERT does not hide it.
      for (const sql of [
        'DROP VIEW conversations',
        'CREATE TABLE x AS SELECT 1 AS a',
        "WITH x AS (SELECT 'fake' AS id) INSERT INTO _conversation_cache (conversation_id) SELECT id FROM x",
      ]) {
        await expect(engine.query(sql), sql).rejects.toThrow(/only a statement that reads/);
      }
      expect((await engine.query('SELECT count(*) AS n FROM conversations')).rows).toEqual([{ n: 0 }]);
      await expect(engine.query('SELECT 1; SELECT 2')).rejects.toThrow(/multiple statements/);
      await expect(engine.query('SELECT nonsense FROM conversations')).rejects.toThrow(/nonsense/);
      await expect(engine.query('SELECT ? AS x', [])).rejects.toThrow(
        /has 1 \? placeholder\(s\), and only a named query gives them values/,
      );
      await expect(engine.query('SELECT ? AS x', ['a', 'b'])).rejects.toThrow(/1 parameter\(s\) \(\?\) but 2 value/);
    } finally {
      engine.close();
    }
  });
});

describe('what a query answers', () => {
  it('every column, however it is named', async () => {
    const engine = await openAnalytics({ source: memorySource().source, cacheDir: null });
    try {
      // Two columns of one name (a self-join, the same aggregate twice): each keeps its value, under a name of its own.
      const same = await engine.query('SELECT 1 AS a, 2 AS a, 3 AS a_1, 4 AS a');
      expect(same.columns.map((c) => c.name)).toEqual(['a', 'a_2', 'a_1', 'a_3']);
      expect(same.rows).toEqual([{ a: 1, a_2: 2, a_1: 3, a_3: 4 }]);
    } finally {
      engine.close();
    }
  });

  it('dates, times and intervals as DuckDB writes them, timestamps as ISO 8601 UTC', async () => {
    const engine = await openAnalytics({ source: memorySource().source, cacheDir: null });
    try {
      // `CAST(received_at AS DATE)`, a day to group by, was `2026-12-03T00:00:00.000Z`; a TIME was microseconds.
      const times = await engine.query(
        "SELECT DATE '2026-12-03' AS d, TIME '10:00:00.5' AS t, INTERVAL 36 HOUR AS i, TIMESTAMP '2026-12-03 10:00:00' AS ts, [DATE '2026-12-03'] AS l",
      );
      expect(times.rows).toEqual([
        { d: '2026-12-03', t: '10:00:00.5', i: '36:00:00', ts: '2026-12-03T10:00:00.000Z', l: '[2026-12-03]' },
      ]);
    } finally {
      engine.close();
    }
  });
});

describe('the two sources agree', () => {
  let s3: EmbeddedS3;
  let client: S3Client;
  const dataDir = () => path.join(dir, 'data');
  beforeAll(async () => {
    s3 = await startEmbeddedS3({ directory: path.join(dataDir(), 's3'), port: 0, bucket: 'analytics-test' });
    client = s3Client(s3.endpoint, {});
  });
  afterAll(async () => {
    client?.destroy();
    await s3?.close();
  });

  it("the embedded store's directory and the S3 protocol give the same rows", async () => {
    for (const [i, at] of [
      '2026-11-29T10:00:00.000Z',
      '2026-11-29T10:00:01.000Z',
      '2026-11-30T00:00:00.000Z',
    ].entries()) {
      const d = document(at, `src${i}`);
      await client.send(new PutObjectCommand({ Bucket: 'analytics-test', Key: d.key, Body: d.text }));
      await client.send(
        new PutObjectCommand({
          Bucket: 'analytics-test',
          Key: d.key.replace('analysis.json', 'summary.json'),
          Body: '{}',
        }),
      );
    }
    const bucket = {
      client,
      bucket: 'analytics-test',
      endpoint: s3.endpoint,
      via: 'running' as const,
      close: async () => {},
    };
    const sql = 'SELECT conversation_id, day, received_at, total_time_ms FROM conversations ORDER BY 1';
    const results = [];
    for (const source of [storeDirectorySource(dataDir(), 'analytics-test'), s3Source(bucket)]) {
      const engine = await openAnalytics({ source, cacheDir: null });
      results.push((await engine.query(sql)).rows);
      engine.close();
    }
    expect(results[0]).toHaveLength(3);
    expect(results[1]).toEqual(results[0]);
    // From a day, each lists only that day's folder and the later ones.
    for (const source of [storeDirectorySource(dataDir(), 'analytics-test'), s3Source(bucket)])
      expect((await source.list('2026/11/30')).map((o) => dayOfKey(o.key))).toEqual(['2026/11/30']);
  });

  it('over S3, from a day long ago, is one listing that starts after the earlier days, not one per day', async () => {
    for (const [at, suffix] of [
      ['2019-12-31T23:00:00.000Z', 'old0'],
      ['2020-01-02T08:00:00.000Z', 'old1'],
      ['2026-11-28T08:00:00.000Z', 'new1'],
    ]) {
      const d = document(at!, suffix!);
      await client.send(new PutObjectCommand({ Bucket: 'analytics-test', Key: d.key, Body: d.text }));
    }
    const listings: (string | undefined)[] = [];
    const counting = Object.create(client) as S3Client;
    counting.send = ((command: { input: { StartAfter?: string } }) => {
      if (command instanceof ListObjectsV2Command) listings.push(command.input.StartAfter);
      return client.send(command as never);
    }) as S3Client['send'];
    const source = s3Source({
      client: counting,
      bucket: 'analytics-test',
      endpoint: s3.endpoint,
      via: 'running',
      close: async () => {},
    });
    const every = (await source.list(null)).map((o) => o.key);
    expect(listings).toEqual([undefined]);
    listings.length = 0;
    // Every day since 2020: a listing per day was 2,500 requests and more, each a round trip.
    const fromDay = (await source.list('2020/01/01')).map((o) => o.key);
    expect(fromDay).toEqual(every.filter((key) => dayOfKey(key)! >= '2020/01/01'));
    expect(fromDay.map(dayOfKey)).toEqual(expect.arrayContaining(['2020/01/02', '2026/11/28']));
    expect(fromDay.map(dayOfKey)).not.toContain('2019/12/31');
    expect(listings).toEqual(['conversation-history/2020/01/01/']);
  });

  it('an analysis.json cut for good (days old) is said to be damaged, naming its file; only a fresh one may be being written', async () => {
    const old = 'conversation-history/2026/12/01/webhook_cut_old/analysis.json';
    const fresh = 'conversation-history/2026/12/01/webhook_cut_new/analysis.json';
    for (const key of [old, fresh])
      await client.send(new PutObjectCommand({ Bucket: 'analytics-test', Key: key, Body: '{"format":"analy' }));
    const source = storeDirectorySource(dataDir(), 'analytics-test');
    const oldFile = (await source.list('2026/12/01')).find((o) => o.key === old)!.file!;
    // A crash cut it three days ago: nothing has written it since.
    const threeDaysAgo = new Date(Math.floor(Date.now() / 1000 - 3 * 24 * 3600) * 1000);
    await utimes(oldFile, threeDaysAgo, threeDaysAgo);
    const engine = await openAnalytics({ source, cacheDir: null });
    const skipped = new Map(engine.report.skipped.map((s) => [s.key, s.reason]));
    engine.close();
    // Before: both 'not JSON (being written?)', the one cut for good read again and again as if it would be complete.
    expect(skipped.get(fresh)).toBe('not JSON (being written?)');
    expect(skipped.get(old)).toBe(
      `damaged: ${oldFile} is cut short or not JSON, unchanged since ${threeDaysAgo.toISOString()} (a crash or a full disk as it was written, or an edit), not being written: put it back from a copy, or delete it (the conversation is then not in the table; \`conversations show <id>\` still has it; docs/operations.md, "SQL over every conversation")`,
    );
  });
});
