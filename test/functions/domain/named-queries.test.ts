import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ANALYSIS_COLUMNS, type AnalysisColumnName } from '../../../functions/domain/analytics-table.ts';
import {
  athenaDescription,
  bindNamedQuery,
  NAMED_QUERIES,
  namedQuery,
  nonReadingStatement,
  normalizeSince,
  QueryParamError,
  SHARED_FUNCTIONS,
} from '../../../functions/domain/named-queries.ts';
import { type AnalyticsEngine, openAnalytics } from '../../../local/analytics/engine.ts';
import type { AnalysisSource } from '../../../local/analytics/sources.ts';

/**
 * The named queries run on DuckDB over known rows and give the answers worked out by hand; their text keeps to the
 * SQL Athena (Trino) also runs, which is what the infra test saves as the workgroup's named queries.
 */
type Row = Record<AnalysisColumnName, string | number | null>;

function row(n: number, values: Partial<Row>): Row {
  const base = Object.fromEntries(ANALYSIS_COLUMNS.map((c) => [c.name, null])) as Row;
  const received = String(values.received_at);
  const id = `webhook_${received.slice(0, 10).replaceAll('-', '')}_${received.slice(11, 19).replaceAll(':', '')}_crm_sync_${String(n).padStart(6, '0')}`;
  return {
    ...base,
    format: 'analysis',
    version: '1.0',
    channel: 'webhook',
    conversation_id: id,
    source_system: 'crm',
    source_process: 'sync',
    status: 'completed',
    delivery_status: 'delivered',
    query: 'a question',
    response: 'an answer',
    completed_at: received,
    ...values,
  };
}

const ROWS: Row[] = [
  row(1, {
    received_at: '2026-11-28T23:58:00.000Z',
    completed_at: '2026-11-28T23:58:00.400Z',
    webhook_type: 'deal_analysis',
    total_time_ms: 400,
    agent_processing_time_ms: 300,
  }),
  row(2, {
    received_at: '2026-11-29T10:01:00.000Z',
    completed_at: '2026-11-29T10:01:00.100Z',
    webhook_type: 'deal_analysis',
    total_time_ms: 100,
    agent_processing_time_ms: 50,
    query: 'Top DEALS this quarter?',
  }),
  row(3, {
    received_at: '2026-11-29T10:03:10.000Z',
    completed_at: '2026-11-29T10:04:59.300Z',
    webhook_type: 'lead_analysis',
    total_time_ms: 300,
    agent_processing_time_ms: 200,
    delivery_status: 'retrying',
    source_system: 'scheduler',
  }),
  row(4, {
    received_at: '2026-11-29T10:05:00.000Z',
    completed_at: '2026-11-29T10:05:00.500Z',
    webhook_type: 'deal_analysis',
    total_time_ms: 500,
    agent_processing_time_ms: 400,
    response: 'Acme renewal, 50% off',
  }),
  row(5, {
    received_at: '2026-11-29T11:20:00.000Z',
    completed_at: '2026-11-29T11:20:00.900Z',
    webhook_type: null,
    status: 'failed',
    delivery_status: 'not_attempted',
    total_time_ms: 900,
  }),
  row(6, {
    received_at: '2026-11-29T11:21:00.000Z',
    completed_at: '2026-11-29T11:21:00.200Z',
    webhook_type: 'general',
    total_time_ms: 200,
    agent_processing_time_ms: 100,
    delivery_status: 'failed',
  }),
];

function memorySource(rows: Row[]): AnalysisSource {
  const objects = rows.map((r) => ({
    key: `conversation-history/${String(r.received_at).slice(0, 10).replaceAll('-', '/')}/${r.conversation_id}/analysis.json`,
    version: '1',
    text: `${JSON.stringify(r)}\n`,
  }));
  return {
    location: 'memory',
    list: async () => objects.map(({ key, version }) => ({ key, version })),
    read: async (asked) => asked.map((a) => objects.find((o) => o.key === a.key)?.text ?? null),
    close: async () => {},
  };
}

let engine: AnalyticsEngine;
beforeAll(async () => {
  engine = await openAnalytics({ source: memorySource(ROWS), cacheDir: null });
});
afterAll(() => engine?.close());

const NOW = new Date('2026-11-29T12:00:00Z');
async function run(id: string, values: Record<string, string> = {}) {
  const query = namedQuery(id)!;
  return (await engine.query(query.sql, bindNamedQuery(query, values, new Date('2026-11-28T00:00:00Z')))).rows;
}

describe('the named queries on DuckDB', () => {
  it('conversations-by-source: one source system, newest first (the first saved Logs Insights question)', async () => {
    const rows = await run('conversations-by-source', { source_system: 'crm' });
    expect(rows.map((r) => r.conversation_id)).toEqual([6, 5, 4, 2, 1].map((n) => ROWS[n - 1]!.conversation_id));
    expect(rows[0]).toEqual({
      received_at: '2026-11-29T11:21:00.000Z',
      conversation_id: ROWS[5]!.conversation_id,
      source_system: 'crm',
      source_process: 'sync',
      webhook_type: 'general',
      status: 'completed',
      delivery_status: 'failed',
      total_time_ms: 200,
    });
  });

  it('processing-time-5m: count, avg, max and min per 5 minutes of completion (the second question)', async () => {
    expect(await run('processing-time-5m', { since: '2026-11-29' })).toEqual([
      {
        bin_5m: '2026-11-29T10:00:00Z',
        conversations: 2,
        avg_total_time_ms: 200,
        max_total_time_ms: 300,
        min_total_time_ms: 100,
      },
      {
        bin_5m: '2026-11-29T10:05:00Z',
        conversations: 1,
        avg_total_time_ms: 500,
        max_total_time_ms: 500,
        min_total_time_ms: 500,
      },
      {
        bin_5m: '2026-11-29T11:20:00Z',
        conversations: 2,
        avg_total_time_ms: 550,
        max_total_time_ms: 900,
        min_total_time_ms: 200,
      },
    ]);
  });

  it('delivery-success: conversations per delivery status and type (the third question)', async () => {
    expect(await run('delivery-success')).toEqual([
      { delivery_status: 'delivered', webhook_type: 'deal_analysis', conversations: 3 },
      { delivery_status: 'failed', webhook_type: 'general', conversations: 1 },
      { delivery_status: 'not_attempted', webhook_type: 'none', conversations: 1 },
      { delivery_status: 'retrying', webhook_type: 'lead_analysis', conversations: 1 },
    ]);
  });

  it('search: the text in the question or the answer, case-insensitively, taken literally', async () => {
    expect((await run('search', { text: 'deals' })).map((r) => r.conversation_id)).toEqual([ROWS[1]!.conversation_id]);
    expect((await run('search', { text: 'ACME' })).map((r) => r.conversation_id)).toEqual([ROWS[3]!.conversation_id]);
    // % and _ are text here, not patterns.
    expect((await run('search', { text: '50%' })).map((r) => r.conversation_id)).toEqual([ROWS[3]!.conversation_id]);
    expect(await run('search', { text: '_' })).toEqual([]);
  });

  it("hourly-by-type: conversations per hour and type since a time (the console's first chart)", async () => {
    expect(await run('hourly-by-type', { since: '2026-11-29T10:02:00Z' })).toEqual([
      { hour: '2026-11-29T10:00:00Z', webhook_type: 'deal_analysis', conversations: 1 },
      { hour: '2026-11-29T10:00:00Z', webhook_type: 'lead_analysis', conversations: 1 },
      { hour: '2026-11-29T11:00:00Z', webhook_type: 'general', conversations: 1 },
      { hour: '2026-11-29T11:00:00Z', webhook_type: 'none', conversations: 1 },
    ]);
  });

  it('latency-percentiles: p50/p90/p99 of the agent and of the whole, of the same rows (both times); nulls when empty', async () => {
    // Conversation 5 (the agent failed) has a total time and no agent time: it is counted, not in the percentiles.
    expect(await run('latency-percentiles')).toEqual([
      {
        conversations: 6,
        conversations_with_both_times: 5,
        agent_p50_ms: 200,
        agent_p90_ms: 400,
        agent_p99_ms: 400,
        total_p50_ms: 300,
        total_p90_ms: 500,
        total_p99_ms: 500,
      },
    ]);
    const empty = await run('latency-percentiles', { since: '2027-01-01' });
    expect(empty).toEqual([
      {
        conversations: 0,
        conversations_with_both_times: 0,
        agent_p50_ms: null,
        agent_p90_ms: null,
        agent_p99_ms: null,
        total_p50_ms: null,
        total_p90_ms: null,
        total_p99_ms: null,
      },
    ]);
  });

  it('latency-percentiles: no agent percentile exceeds the total one when fast failures have only a total time', async () => {
    // Two answered conversations, and three the agent refused at once (a total time of 20 ms, no agent time): over
    // different rows the total p50 would be 20 ms, below the agent's 300.
    const rows = [
      row(1, { received_at: '2026-11-29T10:00:00.000Z', total_time_ms: 500, agent_processing_time_ms: 400 }),
      row(2, { received_at: '2026-11-29T10:01:00.000Z', total_time_ms: 350, agent_processing_time_ms: 300 }),
      ...[3, 4, 5].map((n) =>
        row(n, {
          received_at: `2026-11-29T10:0${n}:00.000Z`,
          total_time_ms: 20,
          status: 'failed',
          delivery_status: 'not_attempted',
        }),
      ),
    ];
    const own = await openAnalytics({ source: memorySource(rows), cacheDir: null });
    try {
      const query = namedQuery('latency-percentiles')!;
      const [result] = (await own.query(query.sql, bindNamedQuery(query, {}, new Date('2026-11-29T00:00:00Z')))).rows;
      expect(result).toEqual({
        conversations: 5,
        conversations_with_both_times: 2,
        agent_p50_ms: 300,
        agent_p90_ms: 400,
        agent_p99_ms: 400,
        total_p50_ms: 350,
        total_p90_ms: 500,
        total_p99_ms: 500,
      });
      for (const p of [50, 90, 99])
        expect(Number(result![`agent_p${p}_ms`])).toBeLessThanOrEqual(Number(result![`total_p${p}_ms`]));
    } finally {
      await own.close();
    }
  });

  it('since: a date or a date-time with its zone; the folder date and the time both bound the rows', async () => {
    expect((await run('conversations-by-source', { source_system: 'crm', since: '2026-11-29T10:05:00Z' })).length).toBe(
      3,
    );
    expect(
      (await run('conversations-by-source', { source_system: 'crm', since: '2026-11-29T12:00:00+02:00' })).length,
    ).toBe(4);
    expect(normalizeSince('2026-11-29')).toBe('2026-11-29T00:00:00.000Z');
    expect(() => normalizeSince('yesterday')).toThrow(QueryParamError);
    expect(() => normalizeSince('2026-11-29T10:00:00')).toThrow(/with a zone/);
    expect(() => normalizeSince('2026-02-31')).toThrow(QueryParamError); // not 2026-03-03
    expect(() => normalizeSince('2026-00-10')).toThrow(QueryParamError);
  });
});

describe("Athena's editor", () => {
  // Athena's editor asks for a saved query's ? values one after the other and takes each as SQL (a string must be in
  // single quotes: `2026-11-28` would be the number 1987, `your_system` a column). The description of each saved query
  // says what to type; typed as it says, in its order, the query answers as the command line's own values make it.
  it.each(NAMED_QUERIES.map((q) => [q.id, q]))(
    '%s: its description says what to type for each ?',
    async (_id, query) => {
      const description = athenaDescription(query);
      expect(description.length).toBeLessThanOrEqual(1024); // CreateNamedQuery's limit
      const typed = /in this order, each in single quotes: (.*?)\.(?: |$)/.exec(description)?.[1] ?? '';
      const literals = [...typed.matchAll(/(\w+) ('(?:[^']|'')*')/g)].map((m) => ({ name: m[1]!, literal: m[2]! }));
      expect(literals.map((l) => l.name)).toEqual(query.params.map((p) => p.name));
      let i = 0;
      const asTyped = query.sql.replaceAll('?', () => literals[i++]!.literal);
      const values = Object.fromEntries(literals.map((l) => [l.name, l.literal.slice(1, -1).replaceAll("''", "'")]));
      const rows = (await engine.query(asTyped)).rows;
      expect(rows).toEqual(await run(query.id, values));
      // Rows to compare, but for the example source, which none of ROWS has.
      if (query.id !== 'conversations-by-source') expect(rows.length).toBeGreaterThan(0);
    },
  );
});

describe('binding parameters', () => {
  it('fills since with the default, requires the others, refuses unknown ones', () => {
    const search = namedQuery('search')!;
    expect(bindNamedQuery(search, { text: 'x' }, NOW)).toEqual([NOW.toISOString(), NOW.toISOString(), 'x', 'x']);
    expect(() => bindNamedQuery(search, {}, NOW)).toThrow(/search needs text/);
    expect(() => bindNamedQuery(search, { text: 'x', source_system: 'crm' }, NOW)).toThrow(
      /unknown parameter "source_system"/,
    );
    expect(() => bindNamedQuery(search, { text: '  ' }, NOW)).toThrow(QueryParamError);
  });

  it('takes source_system in its canonical form, as the exports hold it: Your.System finds your_system', () => {
    const bySource = namedQuery('conversations-by-source')!;
    for (const spelled of ['Your.System', 'YOUR-SYSTEM', 'your__system', ' your_system '])
      expect(bindNamedQuery(bySource, { source_system: spelled }, NOW).at(-1)).toBe('your_system');
    expect(() => bindNamedQuery(bySource, { source_system: '' }, NOW)).toThrow(/needs source_system/);
  });

  it('refuses a source_system no request could have sent, rather than answer no rows', () => {
    const bySource = namedQuery('conversations-by-source')!;
    for (const bad of ['your system', 'crm/sync', '_crm', 'x'.repeat(65)])
      expect(() => bindNamedQuery(bySource, { source_system: bad }, NOW), bad).toThrow(
        /^conversations-by-source: source_system takes a source_system name \(ASCII letters/,
      );
    expect(() => bindNamedQuery(bySource, { source_system: 'x'.repeat(65) }, NOW)).toThrow(/: it has 65 characters$/);
  });
});

describe('the SQL both engines share', () => {
  it.each(NAMED_QUERIES.map((q) => [q.id, q]))('%s calls only shared functions, and one value per ?', (_id, query) => {
    const called = [...query.sql.matchAll(/\b([a-z_]+)\s*\(/gi)]
      .map((m) => m[1]!.toLowerCase())
      .filter((f) => !['and', 'or', 'not', 'in', 'over'].includes(f));
    for (const f of called) expect(SHARED_FUNCTIONS, `${query.id} calls ${f}`).toContain(f);
    expect(query.sql.split('?').length - 1).toBe(query.params.length);
    // No DuckDB- or Trino-only syntax: casts with ::, double-quoted identifiers, ILIKE, backticks.
    expect(query.sql).not.toMatch(/::|"|`|\bilike\b|\bqualify\b/i);
  });

  it.each(NAMED_QUERIES.map((q) => [q.id, q]))(
    "%s has its ? only in the WHERE clause (Athena's rule for execution parameters)",
    (_id, query) => {
      const where = query.sql.indexOf('WHERE');
      const after = Math.min(
        ...['GROUP BY', 'ORDER BY', 'LIMIT'].map((k) => query.sql.indexOf(k, where)).filter((i) => i > 0),
        query.sql.length,
      );
      const marks = [...query.sql.matchAll(/\?/g)].map((m) => m.index!);
      for (const at of marks) {
        expect(at).toBeGreaterThan(where);
        expect(at).toBeLessThan(after);
      }
    },
  );

  it.each(NAMED_QUERIES.map((q) => [q.id, q]))(
    '%s limits the day folders it reads (the partition column)',
    (_id, query) => {
      expect(query.sql).toContain("day >= replace(substr(?, 1, 10), '-', '/')");
      expect(query.params[0]!.name).toBe('since');
    },
  );
});

describe('only statements that read reach an engine', () => {
  it('names the first word of one that would change something, looking through comments, parentheses and EXPLAIN', () => {
    for (const sql of [
      'SELECT 1',
      '  with x as (select 1) select * from x',
      '-- a note\n/* another */ (SELECT count(*) FROM conversations)',
      'EXPLAIN SELECT 1',
      'EXPLAIN ANALYZE VERBOSE SELECT 1',
      'VALUES (1)',
      'SHOW TABLES',
      'DESCRIBE conversations',
      ...NAMED_QUERIES.map((q) => q.sql),
    ])
      expect(nonReadingStatement(sql), sql).toBeNull();
    expect(nonReadingStatement('DROP VIEW conversations')).toBe('DROP');
    expect(nonReadingStatement('create table x as select * from conversations')).toBe('CREATE');
    expect(nonReadingStatement('/* x */ INSERT INTO t SELECT 1')).toBe('INSERT');
    expect(nonReadingStatement('EXPLAIN ANALYZE DROP VIEW conversations')).toBe('DROP');
    expect(nonReadingStatement('EXPLAIN (TYPE DISTRIBUTED) DELETE FROM t')).toBe('DELETE');
    expect(nonReadingStatement('MSCK REPAIR TABLE t')).toBe('MSCK');
  });
});
