import { describe, expect, it } from 'vitest';
import { FilterError, matchesFilter, mayBeSince, parseFilter } from '../../../local/history/conversation-filters.ts';
import { searchExport, snippetAround } from '../../../local/history/export-search.ts';

/** The pure parts behind `conversations list/search` filters and matching (the CLI tests run the real bin). */
const row = {
  conversation_id: 'webhook_20250813_103045_crmsyst_nightlysync_abc123',
  received_at: '2025-08-13T10:30:45.120Z',
  source_system: 'crm_system',
  source_process: 'nightly_sync',
  webhook_type: 'deal_analysis',
  status: 'completed',
  delivery_status: 'retrying',
};

describe('conversation filters', () => {
  it('parses comma lists case-insensitively and matches conversation or delivery status', () => {
    const f = parseFilter({ source: 'CRM_System, other/x', type: 'deal_analysis,general', status: 'retrying' });
    expect(f).toEqual({
      sources: ['crm_system', 'other/x'],
      types: ['deal_analysis', 'general'],
      statuses: ['retrying'],
      since: null,
    });
    expect(matchesFilter(row, f)).toBe(true);
    expect(matchesFilter(row, parseFilter({ status: 'completed' }))).toBe(true);
    expect(matchesFilter(row, parseFilter({ status: 'failed' }))).toBe(false);
    expect(matchesFilter(row, parseFilter({ source: 'crm_system/nightly_sync' }))).toBe(true);
    expect(matchesFilter(row, parseFilter({ source: 'crm_system/other' }))).toBe(false);
    expect(matchesFilter({ ...row, webhook_type: null }, parseFilter({ type: 'none' }))).toBe(true);
  });

  it('--since: a date or a zoned date-time; ids prune before anything is read', () => {
    expect(parseFilter({ since: '2025-08-13' }).since).toBe(Date.parse('2025-08-13T00:00:00Z'));
    const f = parseFilter({ since: '2025-08-13T10:30:45.500+00:00' });
    expect(matchesFilter(row, f)).toBe(false);
    expect(mayBeSince(row.conversation_id, f)).toBe(true); // same second: only the record can tell
    expect(mayBeSince(row.conversation_id, parseFilter({ since: '2025-08-13T10:30:46Z' }))).toBe(false);
    expect(matchesFilter(row, parseFilter({ since: '2025-08-13T10:30:45Z' }))).toBe(true);
    expect(matchesFilter(row, parseFilter({ since: '2999-01-01' }))).toBe(false);
  });

  it('rejects bad values with one clear message', () => {
    expect(() => parseFilter({ type: 'deals' })).toThrow(FilterError);
    expect(() => parseFilter({ status: 'weird' })).toThrow(/--status takes completed, failed, .*got "weird"/);
    expect(() => parseFilter({ since: 'yesterday' })).toThrow(/--since must be an ISO 8601/);
    expect(() => parseFilter({ since: '2025-08-13T10:00' })).toThrow(/with a zone/);
    expect(() => parseFilter({ since: '2025-13-45' })).toThrow(/--since/);
    expect(() => parseFilter({ source: ' , ' })).toThrow(/--source needs/);
  });
});

describe('search matching', () => {
  const doc = {
    export_metadata: { format: 'webhook_structured_json' },
    conversation: {
      metadata: {
        conversation_id: row.conversation_id,
        received_at: row.received_at,
        source_system: 'crm_system',
        source_process: 'nightly_sync',
      },
      webhook_context: { webhook_type: 'deal_analysis', delivery_status: 'delivered' },
      conversation: {
        turns: [
          { role: 'user', content: 'Which deals close this quarter?' },
          { role: 'assistant', content: 'Acme renewal and Globex.', data: { deals: [{ name: 'Initech new logo' }] } },
        ],
      },
      execution: { status: 'completed', timings: { total_ms: 42 } },
    },
  };

  it('looks in the query, the answer (text and structured data), the id and the source', () => {
    expect(searchExport(doc, 'k', 'DEALS')).toMatchObject({
      matched_in: ['query', 'answer'],
      snippet: 'Which deals close this quarter?',
      total_time_ms: 42,
    });
    expect(searchExport(doc, 'k', 'initech')?.matched_in).toEqual(['answer']);
    expect(searchExport(doc, 'k', 'ABC123')?.matched_in).toEqual(['conversation_id']);
    expect(searchExport(doc, 'k', 'crm_system/nightly')?.matched_in).toEqual(['source']);
    expect(searchExport(doc, 'k', 'zebra')).toBeNull();
    expect(searchExport({ format: 'analysis' }, 'k', 'deals')).toBeNull();
  });

  it('snippets are one line around the match', () => {
    const text = `${'x'.repeat(100)} the\nneedle here ${'y'.repeat(100)}`;
    const s = snippetAround(text, text.indexOf('needle'), 6, 30);
    expect(s).toMatch(/^….*needle.*…$/);
    expect(s).not.toContain('\n');
  });
});
