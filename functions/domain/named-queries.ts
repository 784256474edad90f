import { CONVERSATIONS_TABLE } from './analytics-table.ts';
import { isCalendarDate } from './iso-date.ts';
import { canonicalSource, SOURCE_NAME_RULE, sourceNameProblem } from './source-identity.ts';

/**
 * The saved SQL queries over the `conversations` table: the three Logs Insights questions of docs/deploy.md,
 * full-text search, and the console's charts. The same text is an Athena named query in the deployed
 * workgroup and runs locally on DuckDB (`webhook-gateway conversations query --named <id>`), so it keeps to the SQL
 * both engines share: plain SELECT / WHERE / GROUP BY / ORDER BY / LIMIT, string literals, `?` parameters, and the
 * functions in SHARED_FUNCTIONS (DuckDB gets `approx_percentile` as a macro).
 *
 * Every query takes `since` first: its date limits the day folders Athena reads (the partition column `day`), and the
 * full timestamp limits the rows. Times are ISO 8601 UTC strings, so they compare and bin as text in both engines.
 */
export interface QueryParam {
  name: 'since' | 'source_system' | 'text';
  description: string;
  /** A value as Athena's editor takes it (a SQL string literal): what its named query's description shows. */
  example: string;
}

export interface NamedQuery {
  /** The name on the command line (`--named`). */
  id: string;
  /** The Athena named query's name. */
  title: string;
  description: string;
  /** One entry per `?` in `sql`, in order (a parameter may appear more than once). */
  params: QueryParam[];
  sql: string;
}

/** Functions the named queries may call: each exists, with the same meaning, in Athena (Trino) and DuckDB. */
export const SHARED_FUNCTIONS = [
  'count',
  'avg',
  'min',
  'max',
  'sum',
  'round',
  'coalesce',
  'lower',
  'strpos',
  'substr',
  'concat',
  'replace',
  'approx_percentile',
] as const;

const SINCE: QueryParam = {
  name: 'since',
  description: 'ISO 8601 date or date-time (UTC); rows received at or after it',
  example: "'2026-11-28'",
};
const SOURCE: QueryParam = {
  name: 'source_system',
  description: 'the source_system to list',
  example: "'your_system'",
};
const TEXT: QueryParam = {
  name: 'text',
  description: 'text to find, case-insensitively, in the question or the answer',
  example: "'renewal'",
};

/** The date-range condition every query starts with: the folders to read, then the rows (`since` bound twice). */
export const SINCE_CONDITION = `day >= replace(substr(?, 1, 10), '-', '/') AND received_at >= ?`;

/** `2026-11-29T12:37:13.503Z` → `2026-11-29T12:35:00Z`: the 5-minute bin (Logs Insights' `bin(5m)`), as text. */
const BIN_5M = `concat(substr(completed_at, 1, 15), CASE WHEN substr(completed_at, 16, 1) < '5' THEN '0' ELSE '5' END, ':00Z')`;

/** The start of a CASE that keeps a value only of a conversation with both an agent time and a total time. */
const BOTH_TIMES = 'CASE WHEN agent_processing_time_ms IS NOT NULL AND total_time_ms IS NOT NULL';

export const NAMED_QUERIES: readonly NamedQuery[] = [
  {
    id: 'conversations-by-source',
    title: 'Find All Conversations for a Source System',
    description:
      'Every conversation of one source system, newest first (the first saved Logs Insights query, docs/deploy.md#monitoring).',
    params: [SINCE, SINCE, SOURCE],
    sql: `SELECT received_at, conversation_id, source_system, source_process, webhook_type, status, delivery_status, total_time_ms
FROM ${CONVERSATIONS_TABLE}
WHERE ${SINCE_CONDITION}
  AND source_system = ?
ORDER BY received_at DESC, conversation_id DESC`,
  },
  {
    id: 'processing-time-5m',
    title: 'Track Processing Performance',
    description:
      'Count, average, maximum and minimum end-to-end time per 5 minutes of completion (the second saved Logs Insights query, docs/deploy.md#monitoring).',
    params: [SINCE, SINCE],
    sql: `SELECT ${BIN_5M} AS bin_5m,
  count(*) AS conversations,
  round(avg(total_time_ms)) AS avg_total_time_ms,
  max(total_time_ms) AS max_total_time_ms,
  min(total_time_ms) AS min_total_time_ms
FROM ${CONVERSATIONS_TABLE}
WHERE ${SINCE_CONDITION}
GROUP BY 1
ORDER BY 1`,
  },
  {
    id: 'delivery-success',
    title: 'Monitor Delivery Success Rates',
    description:
      'Conversations per delivery status and webhook type (the third saved Logs Insights query, docs/deploy.md#monitoring).',
    params: [SINCE, SINCE],
    sql: `SELECT delivery_status, coalesce(webhook_type, 'none') AS webhook_type, count(*) AS conversations
FROM ${CONVERSATIONS_TABLE}
WHERE ${SINCE_CONDITION}
GROUP BY 1, 2
ORDER BY 1, 2`,
  },
  {
    id: 'search',
    title: 'Search Questions and Answers',
    description: 'Conversations whose question or answer contains the text (case-insensitive), newest first.',
    params: [SINCE, SINCE, TEXT, TEXT],
    sql: `SELECT received_at, conversation_id, source_system, source_process, webhook_type, status, delivery_status, query, response
FROM ${CONVERSATIONS_TABLE}
WHERE ${SINCE_CONDITION}
  AND (strpos(lower(query), lower(?)) > 0 OR strpos(lower(response), lower(?)) > 0)
ORDER BY received_at DESC, conversation_id DESC
LIMIT 200`,
  },
  {
    id: 'hourly-by-type',
    title: 'Conversations per Hour by Type',
    description: "Conversations received per hour and webhook type (the console's first chart).",
    params: [SINCE, SINCE],
    sql: `SELECT concat(substr(received_at, 1, 13), ':00:00Z') AS hour, coalesce(webhook_type, 'none') AS webhook_type, count(*) AS conversations
FROM ${CONVERSATIONS_TABLE}
WHERE ${SINCE_CONDITION}
GROUP BY 1, 2
ORDER BY 1, 2`,
  },
  {
    id: 'latency-percentiles',
    title: 'Agent and Total Time Percentiles',
    description:
      "p50, p90 and p99 of the agent's time and of the end-to-end time, all of the same rows: the conversations that have both times (conversations_with_both_times of conversations; the console's latency chart).",
    params: [SINCE, SINCE],
    // Every percentile is of the rows with both times (the others are null in the CASE, and aggregates skip nulls in
    // both engines): an agent p99 over more rows than the total p99 could exceed it (docs/operations.md).
    sql: `SELECT count(*) AS conversations,
  count(${BOTH_TIMES} THEN 1 END) AS conversations_with_both_times,
  approx_percentile(${BOTH_TIMES} THEN agent_processing_time_ms END, 0.5) AS agent_p50_ms,
  approx_percentile(${BOTH_TIMES} THEN agent_processing_time_ms END, 0.9) AS agent_p90_ms,
  approx_percentile(${BOTH_TIMES} THEN agent_processing_time_ms END, 0.99) AS agent_p99_ms,
  approx_percentile(${BOTH_TIMES} THEN total_time_ms END, 0.5) AS total_p50_ms,
  approx_percentile(${BOTH_TIMES} THEN total_time_ms END, 0.9) AS total_p90_ms,
  approx_percentile(${BOTH_TIMES} THEN total_time_ms END, 0.99) AS total_p99_ms
FROM ${CONVERSATIONS_TABLE}
WHERE ${SINCE_CONDITION}`,
  },
];

/**
 * The description of a query saved as an Athena named query: what it answers, then how to fill its `?` values in
 * Athena's editor, which asks for each in order and reads it as SQL: a value not in single quotes is an expression
 * there (`2026-11-28` is the number 1987, `your_system` a column), and `since` comes twice (SINCE_CONDITION). The
 * command line fills them itself (docs/operations.md, "SQL over every conversation").
 */
export function athenaDescription(query: NamedQuery): string {
  const values = query.params.map((p) => `${p.name} ${p.example}`).join(', ');
  const since = query.params.some((p) => p.name === 'since')
    ? " since is a UTC date, or a date-time as the exports write it ('2026-11-28T12:00:00.000Z')."
    : '';
  const source = query.params.some((p) => p.name === 'source_system')
    ? ' source_system as exported: lowercase, with _ for . and -.'
    : '';
  return `${query.description} Athena's editor asks for ${query.params.length} values, in this order, each in single quotes: ${values}.${since}${source}`;
}

export function namedQuery(id: string): NamedQuery | undefined {
  return NAMED_QUERIES.find((q) => q.id === id);
}

/** The first word of a statement that only reads, in Athena (Trino) or DuckDB. */
const READING_STATEMENTS = new Set(['SELECT', 'WITH', 'VALUES', 'TABLE', 'FROM', 'SHOW', 'DESCRIBE', 'DESC']);

/**
 * Why `sql` is not a statement that only reads (its first word, e.g. "DROP"), or null when it reads. Checked before
 * the SQL reaches either engine: on Athena a CREATE TABLE AS, INSERT or DROP VIEW would change the stack's Glue
 * catalog or write to S3 with the caller's rights. Comments, opening parentheses and EXPLAIN [ANALYZE] in front are
 * looked through (Trino's EXPLAIN ANALYZE runs what it explains).
 */
export function nonReadingStatement(sql: string): string | null {
  let rest = sql;
  for (;;) {
    const before = rest;
    rest = rest
      .replace(/^\s+/, '')
      .replace(/^--[^\n]*(\n|$)/, '')
      .replace(/^\/\*[\s\S]*?\*\//, '')
      .replace(/^\(/, '');
    const explain = /^explain\b(\s+analyze\b)?(\s+verbose\b)?(\s*\([^)]*\))?/i.exec(rest);
    if (explain) rest = rest.slice(explain[0].length);
    if (rest === before) break;
  }
  const word = /^[a-z_]+/i.exec(rest)?.[0]?.toUpperCase() ?? '';
  return READING_STATEMENTS.has(word) ? null : word || rest.slice(0, 20);
}

/** A parameter value that cannot be used; the CLI prints the message. */
export class QueryParamError extends Error {}

/**
 * An ISO 8601 date or date-time with its zone, as a pattern that reads the same as a JavaScript RegExp (flag u) and as
 * an HTML `pattern` attribute (flag v: `-` escaped in its class, the T and Z of either case written out): the console's
 * recover form checks its since with it before it asks the gateway, which checks it again.
 */
export const ISO_DATE_OR_TIME_PATTERN = String.raw`\d{4}-\d{2}-\d{2}([Tt]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+\-]\d{2}:?\d{2}))?`;
const ISO_DATE_OR_TIME = new RegExp(`^(?:${ISO_DATE_OR_TIME_PATTERN})$`, 'u');

/**
 * An ISO 8601 date (midnight UTC) or date-time with its zone as epoch milliseconds; NaN for anything else. A date-time
 * without a zone is refused rather than read in the zone of whatever machine parses it, and a day that does not exist
 * (2026-02-31) rather than rolled over into the next month.
 */
export function isoInstant(value: string): number {
  return ISO_DATE_OR_TIME.test(value) && isCalendarDate(value) ? Date.parse(value) : Number.NaN;
}

/**
 * `since` as the exported timestamps spell it (`2026-11-28T00:00:00.000Z`), so that text comparison is time order:
 * an ISO date (midnight UTC) or a date-time with its zone.
 */
export function normalizeSince(value: string): string {
  const ms = isoInstant(value);
  if (Number.isNaN(ms))
    throw new QueryParamError(
      `since must be an ISO 8601 date or date-time with a zone, e.g. 2026-11-28 or 2026-11-28T12:00:00Z; got "${value}"`,
    );
  return new Date(ms).toISOString();
}

/**
 * The positional values of a named query from named ones. `since` defaults to `defaultSince`; the others are required.
 */
export function bindNamedQuery(
  query: NamedQuery,
  values: Partial<Record<QueryParam['name'], string>>,
  defaultSince: Date,
): string[] {
  const known = new Set(query.params.map((p) => p.name));
  for (const name of Object.keys(values)) {
    if (!known.has(name as QueryParam['name'])) {
      throw new QueryParamError(`${query.id} takes ${[...known].join(', ')}; got an unknown parameter "${name}"`);
    }
  }
  return query.params.map((param) => {
    const value = values[param.name];
    if (param.name === 'since') return normalizeSince(value ?? defaultSince.toISOString());
    if (value === undefined || value.trim() === '')
      throw new QueryParamError(`${query.id} needs ${param.name} (${param.description}): --param ${param.name}=…`);
    // Exports hold a source in its one canonical form (docs/security.md, "One identity per source"), whatever its
    // sender's spelling: `Your.System` is `your_system`, as the CLI's --source filters read it.
    if (param.name !== 'source_system') return value;
    // A name no request could have sent would only find nothing: refused, as the --source filters refuse it.
    const source = value.trim();
    const problem = sourceNameProblem(source);
    if (problem !== null)
      throw new QueryParamError(
        `${query.id}: source_system takes a source_system name (${SOURCE_NAME_RULE}); got "${value}": ${problem}`,
      );
    return canonicalSource(source);
  });
}
