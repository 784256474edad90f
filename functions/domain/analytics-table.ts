/**
 * The SQL table over every exported conversation: one row per `analysis.json`, the same name, columns and types on
 * AWS (a Glue table and Athena view over `conversation-history/`) and on a laptop (DuckDB over the local exports),
 * so a query written against one runs unchanged on the other. docs/contract.md documents each column.
 *
 * The column set is a contract: columns are only ever added (at the end), never renamed, retyped or removed.
 */
export type ColumnType = 'string' | 'bigint';

export interface AnalysisColumn {
  name: string;
  type: ColumnType;
  description: string;
}

export const ANALYSIS_COLUMNS = [
  { name: 'format', type: 'string', description: 'always "analysis"' },
  { name: 'version', type: 'string', description: 'export format version ("1.0")' },
  { name: 'channel', type: 'string', description: 'always "webhook"' },
  { name: 'exported_at', type: 'string', description: 'when this document was written (ISO 8601 UTC)' },
  { name: 'conversation_id', type: 'string', description: 'webhook_<YYYYMMDD>_<HHMMSS>_<source>_<process>_<suffix>' },
  { name: 'source_system', type: 'string', description: "the request's source_system" },
  { name: 'source_process', type: 'string', description: "the request's source_process" },
  { name: 'request_id', type: 'string', description: 'API request id (the execution name on AWS)' },
  {
    name: 'received_at',
    type: 'string',
    description: 'when the gateway received the request (ISO 8601 UTC, milliseconds)',
  },
  { name: 'completed_at', type: 'string', description: 'when the conversation was closed (ISO 8601 UTC)' },
  {
    name: 'status',
    type: 'string',
    description: 'completed, failed (the agent failed) or interrupted (locally: a crash cut it)',
  },
  {
    name: 'webhook_type',
    type: 'string',
    description: 'deal_analysis, data_analysis, lead_analysis, general; null when the agent failed',
  },
  { name: 'classification_reason', type: 'string', description: 'why the type was chosen' },
  {
    name: 'delivery_status',
    type: 'string',
    description: 'delivered, queued, retrying, failed or not_attempted (at the time of this export)',
  },
  { name: 'delivery_id', type: 'string', description: 'the webhook-id every delivery attempt carried' },
  { name: 'delivery_attempt_count', type: 'bigint', description: 'delivery attempts recorded, redeliveries included' },
  {
    name: 'last_delivery_status_code',
    type: 'bigint',
    description: 'HTTP status of the last attempt; null when none answered',
  },
  { name: 'delivered_at', type: 'string', description: 'when the successful attempt ended; null when not delivered' },
  { name: 'agent_processing_time_ms', type: 'bigint', description: "the manager agent's time; null when it failed" },
  { name: 'delivery_response_time_ms', type: 'bigint', description: "the last delivery attempt's time" },
  { name: 'total_time_ms', type: 'bigint', description: 'received to closed' },
  { name: 'request_size_bytes', type: 'bigint', description: 'size of the request body' },
  { name: 'query', type: 'string', description: 'the question, in full' },
  {
    name: 'query_length',
    type: 'bigint',
    description: "query's length in UTF-16 code units (an emoji counts 2; SQL's length() counts 1)",
  },
  { name: 'response', type: 'string', description: "the agent's answer text, in full (not its structured data)" },
  {
    name: 'response_length',
    type: 'bigint',
    description: "response's length in UTF-16 code units (an emoji counts 2; SQL's length() counts 1)",
  },
  {
    name: 'error_count',
    type: 'bigint',
    description: 'execution.errors entries: one per failed state run, not per delivery attempt',
  },
  { name: 'last_error', type: 'string', description: '"<state>: <error>: <message>" of the last error, or null' },
  { name: 'thread_id', type: 'string', description: "the request's thread_id; null outside a thread" },
  {
    name: 'thread_turn',
    type: 'bigint',
    description: "the conversation's turn in its thread (1 for the first); null outside a thread",
  },
] as const satisfies readonly AnalysisColumn[];

export type AnalysisColumnName = (typeof ANALYSIS_COLUMNS)[number]['name'];

/**
 * The partition column: the date folder of the export, `YYYY/MM/DD` (UTC receive date, as in the conversation id).
 * A `WHERE day >= '2026/11/28'` limits what Athena reads to those days' folders; every named query has one.
 */
export const PARTITION_COLUMN = {
  name: 'day',
  type: 'string',
  description: 'export folder date, YYYY/MM/DD (UTC)',
} as const;

/** What queries name: one row per exported conversation (the Athena view; the DuckDB table locally). */
export const CONVERSATIONS_TABLE = 'conversations';

/**
 * On AWS, the Glue table under the view: every line of every export file of the day folders (the four files share a
 * folder, and Athena reads whole folders). Only analysis.json's line has `format = 'analysis'`; the view keeps those.
 */
export const EXPORT_LINES_TABLE = 'conversation_export_lines';

/** Column types as each engine spells them. */
export const ENGINE_TYPES: Record<ColumnType, { glue: string; trino: string; duckdb: string }> = {
  string: { glue: 'string', trino: 'varchar', duckdb: 'VARCHAR' },
  bigint: { glue: 'bigint', trino: 'bigint', duckdb: 'BIGINT' },
};

/** Every column of the `conversations` table, partition column last. */
export const CONVERSATIONS_COLUMNS: readonly AnalysisColumn[] = [...ANALYSIS_COLUMNS, PARTITION_COLUMN];

/** The view's SQL on Athena (the same columns, in the same order, as the DuckDB table). */
export function conversationsViewSql(): string {
  return `SELECT ${CONVERSATIONS_COLUMNS.map((c) => c.name).join(', ')} FROM ${EXPORT_LINES_TABLE} WHERE format = 'analysis'`;
}

/**
 * A query's column names, each its own: a name given twice (a self-join's `a.status, b.status`, the same aggregate
 * twice), which both engines answer with, is `<name>_<n>` the second time, with the first n no column has, so that
 * each row, an object by column name, keeps every value.
 */
export function uniqueColumnNames(names: readonly string[]): string[] {
  const taken = new Set(names);
  const seen = new Set<string>();
  return names.map((name) => {
    if (!seen.has(name)) {
      seen.add(name);
      return name;
    }
    let n = 1;
    while (taken.has(`${name}_${n}`)) n += 1;
    taken.add(`${name}_${n}`);
    return `${name}_${n}`;
  });
}

/**
 * A DECIMAL's text (`12.50`, `-0.001`, as either engine writes it) as a number when a double holds every digit it
 * has, else the text itself: `12345678901234567890.123` read as a number would be 12345678901234567000, as a BIGINT
 * past 2^53 would be rounded (which both engines' results give as text too).
 */
export function decimalValue(text: string): number | string {
  const parts = /^[-+]?(\d*)(?:\.(\d*))?$/.exec(text);
  const n = Number(text);
  if (!parts || !Number.isFinite(n)) return text;
  const significant = (digits: string) => digits.replace(/^0+/, '').replace(/0+$/, '');
  const digits = significant(`${parts[1]}${parts[2] ?? ''}`);
  if (digits.length <= 15) return n; // every decimal of 15 digits or fewer survives a double
  const kept = significant(Math.abs(n).toPrecision(digits.length).replace(/e.*$/, '').replace('.', ''));
  return kept === digits ? n : text;
}
