import { CONVERSATIONS_TABLE } from '../../functions/domain/analytics-table.ts';
import { isConversationId } from '../../functions/domain/conversation-id.ts';
import { exportKey } from '../../functions/domain/export-formats.ts';
import type { ConversationFilter, FilterableConversation } from './conversation-filters.ts';

/**
 * `conversations search` (and `conversations list --aws`) as one SQL query over the `conversations` table: the text,
 * case-insensitively, in the question, the answer, the conversation id or `source_system/source_process`, with the
 * list filters. The same SQL runs on DuckDB locally and on Athena with --aws (only `?` values in WHERE, shared
 * functions), so both answer alike; the matched fields and the snippet are worked out here from the returned row.
 */
export interface SearchHit extends FilterableConversation {
  /** Where the exported conversation.json is. */
  key: string;
  total_time_ms: number | null;
  /** Which fields contained the text: query, answer, conversation_id, source. */
  matched_in: string[];
  /** The text around the first match, on one line. */
  snippet: string;
  query: string;
}

export interface SearchRequest {
  /** Empty: every conversation that passes the filters (a listing). */
  text: string;
  filter: ConversationFilter;
  /** Rows to return; null: all. */
  limit: number | null;
}

const oneLine = (text: string) => text.replace(/\s+/g, ' ');

export function snippetAround(text: string, index: number, length: number, width = 70): string {
  const start = Math.max(0, index - Math.floor((width - length) / 2));
  const end = Math.min(text.length, start + Math.max(width, length));
  return `${start > 0 ? '…' : ''}${oneLine(text.slice(start, end))}${end < text.length ? '…' : ''}`;
}

const marks = (values: string[]) => values.map(() => '?').join(', ');

/** The search as SQL with `?` values, newest first, with the number of all matches on every row (`matches`). */
export function searchSql(request: SearchRequest): { sql: string; params: string[] } {
  const conditions: string[] = [];
  const params: string[] = [];
  const { filter } = request;
  if (filter.since !== null) {
    const since = new Date(filter.since).toISOString();
    conditions.push(`day >= replace(substr(?, 1, 10), '-', '/') AND received_at >= ?`);
    params.push(since, since);
  }
  if (filter.until !== null) {
    const until = new Date(filter.until).toISOString();
    conditions.push(`day <= replace(substr(?, 1, 10), '-', '/') AND received_at < ?`);
    params.push(until, until);
  }
  if (filter.id !== null) {
    conditions.push('strpos(conversation_id, ?) > 0');
    params.push(filter.id);
  }
  if (request.text) {
    const needle = request.text.toLowerCase();
    conditions.push(
      "(strpos(lower(query), ?) > 0 OR strpos(lower(response), ?) > 0 OR strpos(lower(conversation_id), ?) > 0 OR strpos(lower(concat(source_system, '/', source_process)), ?) > 0)",
    );
    params.push(needle, needle, needle, needle);
  }
  if (filter.sources.length > 0) {
    conditions.push(
      `(lower(source_system) IN (${marks(filter.sources)}) OR lower(concat(source_system, '/', source_process)) IN (${marks(filter.sources)}))`,
    );
    params.push(...filter.sources, ...filter.sources);
  }
  if (filter.types.length > 0) {
    conditions.push(`coalesce(webhook_type, 'none') IN (${marks(filter.types)})`);
    params.push(...filter.types);
  }
  if (filter.statuses.length > 0) {
    conditions.push(`(status IN (${marks(filter.statuses)}) OR delivery_status IN (${marks(filter.statuses)}))`);
    params.push(...filter.statuses, ...filter.statuses);
  }
  if (filter.thread !== null) {
    conditions.push('thread_id = ?');
    params.push(filter.thread);
  }
  const sql = [
    'SELECT conversation_id, received_at, source_system, source_process, webhook_type, status, delivery_status,',
    '  total_time_ms, query, response, thread_id, thread_turn, count(*) OVER () AS matches',
    `FROM ${CONVERSATIONS_TABLE}`,
    ...(conditions.length > 0 ? [`WHERE ${conditions.join('\n  AND ')}`] : []),
    // A thread reads in turn order (compareRows); otherwise the newest first.
    filter.thread !== null
      ? 'ORDER BY source_system, thread_turn, conversation_id'
      : 'ORDER BY received_at DESC, conversation_id DESC',
    ...(request.limit !== null ? [`LIMIT ${Math.floor(request.limit)}`] : []),
  ].join('\n');
  return { sql, params };
}

const text = (value: unknown) => (typeof value === 'string' ? value : '');

/** A row of searchSql's result as a hit: where the text is, and the words around its first place. */
export function hitOfRow(row: Record<string, unknown>, searched: string): SearchHit {
  const id = text(row.conversation_id);
  const source = `${text(row.source_system)}/${text(row.source_process)}`;
  const fields: [string, string][] = [
    ['query', text(row.query)],
    ['answer', text(row.response)],
    ['conversation_id', id],
    ['source', source],
  ];
  const needle = searched.toLowerCase();
  const matched_in: string[] = [];
  let snippet = '';
  if (needle) {
    for (const [name, value] of fields) {
      const at = value.toLowerCase().indexOf(needle);
      if (at < 0) continue;
      matched_in.push(name);
      if (!snippet) snippet = snippetAround(value, at, needle.length);
    }
  }
  return {
    key: isConversationId(id) ? exportKey(id, 'conversation.json') : '',
    conversation_id: id,
    received_at: text(row.received_at),
    source_system: text(row.source_system),
    source_process: text(row.source_process),
    webhook_type: typeof row.webhook_type === 'string' ? row.webhook_type : null,
    status: text(row.status),
    delivery_status: text(row.delivery_status),
    total_time_ms: typeof row.total_time_ms === 'number' ? row.total_time_ms : null,
    query: text(row.query),
    thread_id: typeof row.thread_id === 'string' ? row.thread_id : null,
    thread_turn: row.thread_turn === null || row.thread_turn === undefined ? null : Number(row.thread_turn),
    matched_in,
    snippet,
  };
}
