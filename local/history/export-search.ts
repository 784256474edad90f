import type { ConversationRecord } from '../../functions/domain/conversation.ts';
import type { FilterableConversation } from './conversation-filters.ts';

/** One exported conversation that matched `conversations search`. */
export interface SearchHit extends FilterableConversation {
  key: string;
  total_time_ms: number | null;
  /** Which fields contained the text: query, answer, conversation_id, source. */
  matched_in: string[];
  /** The text around the first match, on one line. */
  snippet: string;
  query: string;
}

type StructuredExport = {
  export_metadata?: { format?: string };
  conversation?: Pick<ConversationRecord, 'metadata' | 'webhook_context' | 'conversation' | 'execution'>;
};

const oneLine = (text: string) => text.replace(/\s+/g, ' ');

export function snippetAround(text: string, index: number, length: number, width = 70): string {
  const start = Math.max(0, index - Math.floor((width - length) / 2));
  const end = Math.min(text.length, start + Math.max(width, length));
  return `${start > 0 ? '…' : ''}${oneLine(text.slice(start, end))}${end < text.length ? '…' : ''}`;
}

/** The row fields of an exported conversation.json, or null when the document is not one. */
export function rowOfExport(
  doc: unknown,
  key: string,
): (Omit<SearchHit, 'matched_in' | 'snippet'> & { answer: string }) | null {
  const c = (doc as StructuredExport | null)?.conversation;
  if (!c?.metadata?.conversation_id || !c.webhook_context || !c.execution) return null;
  const turns = c.conversation?.turns ?? [];
  const answerTurn = [...turns].reverse().find((t) => t.role === 'assistant');
  let answer = answerTurn?.content ?? '';
  if (answerTurn?.data !== undefined) answer += `\n${JSON.stringify(answerTurn.data)}`;
  return {
    key,
    conversation_id: c.metadata.conversation_id,
    received_at: c.metadata.received_at,
    source_system: c.metadata.source_system,
    source_process: c.metadata.source_process,
    webhook_type: c.webhook_context.webhook_type,
    status: c.execution.status,
    delivery_status: c.webhook_context.delivery_status,
    total_time_ms: c.execution.timings?.total_ms ?? null,
    query: turns.find((t) => t.role === 'user')?.content ?? '',
    answer,
  };
}

/**
 * Case-insensitive match of `text` in the query, the answer, the conversation id and `source_system/source_process`
 * of one exported conversation.json. Null when it does not match (or is not a conversation export).
 */
export function searchExport(doc: unknown, key: string, text: string): SearchHit | null {
  const row = rowOfExport(doc, key);
  if (!row) return null;
  const needle = text.toLowerCase();
  const fields: [string, string][] = [
    ['query', row.query],
    ['answer', row.answer],
    ['conversation_id', row.conversation_id],
    ['source', `${row.source_system}/${row.source_process}`],
  ];
  const matched_in: string[] = [];
  let snippet = '';
  for (const [name, value] of fields) {
    const at = value.toLowerCase().indexOf(needle);
    if (at < 0) continue;
    matched_in.push(name);
    if (!snippet) snippet = snippetAround(value, at, needle.length);
  }
  if (matched_in.length === 0) return null;
  const { answer: _answer, ...hit } = row;
  return { ...hit, matched_in, snippet };
}
