import { describe, expect, it } from 'vitest';
import { SHARED_FUNCTIONS } from '../../../functions/domain/named-queries.ts';
import {
  FilterError,
  matchesFilter,
  mayMatch,
  parseFilter,
  sortRows,
  statusLabel,
} from '../../../local/history/conversation-filters.ts';
import { recoveredAfterStop } from '../../../local/history/conversations.ts';
import { hitOfRow, searchSql, snippetAround } from '../../../local/history/export-search.ts';

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
  it('--status interrupted: a conversation a stop cut, closed interrupted or finished by recovery (interrupted → …)', () => {
    const interrupted = parseFilter({ status: 'interrupted' });
    expect(matchesFilter({ ...row, recovered: true }, interrupted)).toBe(true);
    expect(matchesFilter({ ...row, recovered: false }, interrupted)).toBe(false);
    expect(matchesFilter({ ...row, status: 'interrupted', recovered: true }, interrupted)).toBe(true);
    // Its final status still matches as before.
    expect(matchesFilter({ ...row, recovered: true }, parseFilter({ status: 'completed' }))).toBe(true);
    expect(statusLabel({ status: 'completed', recovered: true })).toBe('interrupted → completed');
    expect(statusLabel({ status: 'interrupted', recovered: true })).toBe('interrupted');
    expect(statusLabel({ status: 'completed', recovered: false })).toBe('completed');
  });

  it("recovered: an execution recovery resumed, started again, or closed with the cut state's GatewayInterrupted", () => {
    const execution = {
      execution_name: 'x',
      state_machine: 'conversation',
      status: 'SUCCEEDED' as const,
      started_at: '2026-12-03T10:00:00.000Z',
      stopped_at: '2026-12-03T10:00:01.000Z',
      input: {},
      events: [{ type: 'ExecutionStarted', timestamp: 0 }],
    };
    const restart = { restart: 1, of: 3, earlier_started_at: '', earlier_cut_at: '', earlier_cut_by: '' };
    expect(recoveredAfterStop([execution])).toBe(false);
    expect(recoveredAfterStop([execution, { ...execution, restart }])).toBe(true);
    expect(
      recoveredAfterStop([{ ...execution, events: [...execution.events, { type: 'ExecutionResumed', timestamp: 1 }] }]),
    ).toBe(true);
    expect(
      recoveredAfterStop([
        {
          ...execution,
          events: [...execution.events, { type: 'StateFailed', timestamp: 1, error: 'GatewayInterrupted' }],
        },
      ]),
    ).toBe(true);
  });

  it('parses comma lists case-insensitively and matches conversation or delivery status', () => {
    const f = parseFilter({ source: 'CRM_System, other/x', type: 'deal_analysis,general', status: 'retrying' });
    expect(f).toEqual({
      sources: ['crm_system', 'other/x'],
      types: ['deal_analysis', 'general'],
      statuses: ['retrying'],
      since: null,
      until: null,
      thread: null,
      id: null,
      key: null,
    });
    expect(matchesFilter(row, f)).toBe(true);
    expect(matchesFilter(row, parseFilter({ status: 'completed' }))).toBe(true);
    expect(matchesFilter(row, parseFilter({ status: 'failed' }))).toBe(false);
    expect(matchesFilter(row, parseFilter({ source: 'crm_system/nightly_sync' }))).toBe(true);
    expect(matchesFilter(row, parseFilter({ source: 'crm_system/other' }))).toBe(false);
    expect(matchesFilter({ ...row, webhook_type: null }, parseFilter({ type: 'none' }))).toBe(true);
  });

  it('--status queued finds the deliveries held unattempted (a paused, failing or rate-limited receiver)', () => {
    const queued = { ...row, delivery_status: 'queued' };
    expect(parseFilter({ status: 'queued,retrying,failed' }).statuses).toEqual(['queued', 'retrying', 'failed']);
    expect(matchesFilter(queued, parseFilter({ status: 'queued' }))).toBe(true);
    expect(matchesFilter(row, parseFilter({ status: 'queued' }))).toBe(false);
  });

  it('--since: a date or a zoned date-time; ids prune before anything is read', () => {
    expect(parseFilter({ since: '2025-08-13' }).since).toBe(Date.parse('2025-08-13T00:00:00Z'));
    const f = parseFilter({ since: '2025-08-13T10:30:45.500+00:00' });
    expect(matchesFilter(row, f)).toBe(false);
    expect(mayMatch(row.conversation_id, f)).toBe(true); // same second: only the record can tell
    expect(mayMatch(row.conversation_id, parseFilter({ since: '2025-08-13T10:30:46Z' }))).toBe(false);
    expect(matchesFilter(row, parseFilter({ since: '2025-08-13T10:30:45Z' }))).toBe(true);
    expect(matchesFilter(row, parseFilter({ since: '2999-01-01' }))).toBe(false);
  });

  it('--until: received before it (since ≤ received < until); ids prune before anything is read', () => {
    expect(parseFilter({ until: '2025-08-14' }).until).toBe(Date.parse('2025-08-14T00:00:00Z'));
    expect(matchesFilter(row, parseFilter({ until: '2025-08-13T10:30:45.121Z' }))).toBe(true);
    expect(matchesFilter(row, parseFilter({ until: '2025-08-13T10:30:45.120Z' }))).toBe(false);
    expect(mayMatch(row.conversation_id, parseFilter({ until: '2025-08-13T10:30:45Z' }))).toBe(false);
    expect(mayMatch(row.conversation_id, parseFilter({ until: '2025-08-13T10:30:45.500Z' }))).toBe(true);
    const day = parseFilter({ since: '2025-08-13', until: '2025-08-14' });
    expect(matchesFilter(row, day)).toBe(true);
    expect(() => parseFilter({ until: 'tomorrow' })).toThrow(/--until must be an ISO 8601/);
    expect(() => parseFilter({ since: '2025-08-14', until: '2025-08-13' })).toThrow(
      /--until must be later than --since/,
    );
  });

  it('--id: the conversation id or any part of it, in any case; other ids prune before anything is read', () => {
    expect(parseFilter({ id: ' AbC123 ' }).id).toBe('abc123');
    expect(matchesFilter(row, parseFilter({ id: row.conversation_id.toUpperCase() }))).toBe(true);
    expect(matchesFilter(row, parseFilter({ id: row.conversation_id.slice(-6) }))).toBe(true);
    expect(mayMatch(row.conversation_id, parseFilter({ id: 'zzzz' }))).toBe(false);
    expect(() => parseFilter({ id: 'a b' })).toThrow(/--id takes a conversation id or a part of one/);
    expect(() => parseFilter({ id: '' })).toThrow(/--id/);
  });

  it('--source: ids of another source (or process) prune before anything is read', () => {
    const id = row.conversation_id; // crmsyst, nightlysync: each name cut to its letters and digits
    expect(mayMatch(id, parseFilter({ source: 'nosuch' }))).toBe(false);
    expect(mayMatch(id, parseFilter({ source: 'crm_system' }))).toBe(true);
    expect(mayMatch(id, parseFilter({ source: 'CRM.System/Nightly-Sync' }))).toBe(true);
    expect(mayMatch(id, parseFilter({ source: 'crm_system/weekly' }))).toBe(false);
    expect(mayMatch(id, parseFilter({ source: 'nosuch,crm_system' }))).toBe(true);
    // Another source with the same cut may be it: only the record can tell.
    expect(mayMatch(id, parseFilter({ source: 'crmsystem_two' }))).toBe(true);
    expect(matchesFilter(row, parseFilter({ source: 'crmsystem_two' }))).toBe(false);
    expect(mayMatch(id, parseFilter({ source: 'crm_system', since: '2025-08-14' }))).toBe(false);
  });

  it("--key: the request's Idempotency-Key or inbound webhook-id, exact; a row whose keys are unknown may match", () => {
    const keyed = { ...row, idempotency_key: 'order-1001', webhook_id: 'msg_1' };
    expect(parseFilter({ key: ' order-1001 ' }).key).toBe('order-1001');
    expect(matchesFilter(keyed, parseFilter({ key: 'order-1001' }))).toBe(true);
    expect(matchesFilter(keyed, parseFilter({ key: 'msg_1' }))).toBe(true);
    expect(matchesFilter(keyed, parseFilter({ key: 'ORDER-1001' }))).toBe(false);
    expect(matchesFilter(keyed, parseFilter({ key: 'order' }))).toBe(false);
    expect(matchesFilter({ ...row, idempotency_key: null, webhook_id: null }, parseFilter({ key: 'msg_1' }))).toBe(
      false,
    );
    // An index entry of an earlier version has no keys: its histories decide (listing.ts reads them).
    expect(matchesFilter(row, parseFilter({ key: 'msg_1' }))).toBe(true);
    expect(mayMatch(row.conversation_id, parseFilter({ key: 'msg_1' }))).toBe(true);
    expect(() => parseFilter({ key: 'two words' })).toThrow(/--key takes the Idempotency-Key or webhook-id/);
    expect(() => parseFilter({ key: 'x'.repeat(256) })).toThrow(/1 to 255 visible ASCII/);
  });

  it('rejects bad values with one clear message', () => {
    expect(() => parseFilter({ type: 'deals' })).toThrow(FilterError);
    expect(() => parseFilter({ status: 'weird' })).toThrow(/--status takes completed, failed, .*got "weird"/);
    expect(() => parseFilter({ since: 'yesterday' })).toThrow(/--since must be an ISO 8601/);
    expect(() => parseFilter({ since: '2025-08-13T10:00' })).toThrow(/with a zone/);
    expect(() => parseFilter({ since: '2025-13-45' })).toThrow(/--since/);
    // A day that does not exist is refused, not rolled over into March.
    expect(() => parseFilter({ since: '2026-02-31' })).toThrow(/--since must be an ISO 8601/);
    expect(() => parseFilter({ since: '2026-04-31T10:00:00Z' })).toThrow(/--since must be an ISO 8601/);
    expect(parseFilter({ since: '2024-02-29' }).since).toBe(Date.parse('2024-02-29'));
    expect(() => parseFilter({ source: ' , ' })).toThrow(/--source needs/);
    // An empty --type or --status (`--status=`, a list of commas). Before: no filter, so everything was listed.
    expect(() => parseFilter({ status: '' })).toThrow(/^--status takes completed, .*got ""$/);
    expect(() => parseFilter({ status: ',,' })).toThrow(/^--status takes .*got ",,"$/);
    expect(() => parseFilter({ type: ' , ' })).toThrow(/^--type takes deal_analysis, .*got " , "$/);
    // A source no request could have sent matches nothing: refused, not listed as "No conversations match".
    expect(() => parseFilter({ source: 'testing system' })).toThrow(
      /--source takes a source_system .*got "testing system"/,
    );
    expect(() => parseFilter({ source: 'crm/sync/extra' })).toThrow(/--source takes/);
    expect(() => parseFilter({ source: 'crm_system,/sync' })).toThrow(/got "\/sync"/);
    expect(() => parseFilter({ source: 'x'.repeat(65) })).toThrow(/at most 64/);
    // As the API says it (functions/domain/source-identity.ts): ASCII letters, and which character breaks the rule.
    // Before: "(letters, digits, …)", and `büro` (whose ü is a letter) was refused without saying why.
    const rule = "ASCII letters (A-Z, a-z), digits, '_', '-' and '.', starting with a letter or digit";
    expect(() => parseFilter({ source: 'büro' })).toThrow(
      `--source takes a source_system or source_system/source_process (or a comma-separated list), each of ${rule}, at most 64 characters; got "büro": character 2 is 'ü' (U+00FC)`,
    );
    expect(() => parseFilter({ source: 'crm/caf_é' })).toThrow(
      /got "crm\/caf_é": its source_process: character 5 is 'é' \(U\+00E9\)$/,
    );
    expect(() => parseFilter({ source: 'a/b/c' })).toThrow(/got "a\/b\/c": it has more than one '\/'$/);
    expect(() => parseFilter({ source: '_crm' })).toThrow(/got "_crm": it starts with '_'$/);
    expect(() => parseFilter({ thread: 't€' })).toThrow(
      `--thread takes a thread_id of ${rule}, at most 128 characters; got "t€": character 2 is '€' (U+20AC)`,
    );
    // A page of pasted text is quoted by its start and its length (before: whole, thousands of characters on the
    // console's page and in the terminal); a short value whole, as typed.
    for (const flag of ['source', 'id', 'key', 'status', 'type', 'since', 'thread'] as const) {
      const error = (() => {
        try {
          parseFilter({ [flag]: `${'ü'.repeat(60)}${'s'.repeat(9_000)}` });
        } catch (e) {
          return e as Error;
        }
      })();
      // --source and --thread then say which character breaks their rule.
      expect(error?.message, flag).toMatch(new RegExp(`got "${'ü'.repeat(60)}…" \\(9060 characters\\)(: [^"]*)?$`));
      expect(error?.message.length, flag).toBeLessThan(400);
    }
    expect(() => parseFilter({ id: 'ü'.repeat(80) })).toThrow(`got "${'ü'.repeat(80)}"`);
    expect(parseFilter({ source: 'CRM.System/Nightly-Sync, other' }).sources).toEqual([
      'crm_system/nightly_sync',
      'other',
    ]);
  });
});

describe('search as SQL', () => {
  const hitRow = {
    ...row,
    total_time_ms: 42,
    query: 'Which deals close this quarter?',
    response: 'Acme renewal and Globex.',
    matches: 1,
  };

  it('says where the text was: the query, the answer, the id, the source, with the words around the first', () => {
    expect(hitOfRow(hitRow, 'DEALS')).toMatchObject({
      key: `conversation-history/2025/08/13/${row.conversation_id}/conversation.json`,
      matched_in: ['query'],
      snippet: 'Which deals close this quarter?',
      total_time_ms: 42,
    });
    expect(hitOfRow(hitRow, 'globex').matched_in).toEqual(['answer']);
    expect(hitOfRow(hitRow, 'ABC123').matched_in).toEqual(['conversation_id']);
    expect(hitOfRow(hitRow, 'crm_system/nightly').matched_in).toEqual(['source']);
    expect(hitOfRow(hitRow, '')).toMatchObject({ matched_in: [], snippet: '' });
  });

  it('puts every value in a ? of the WHERE clause, lowercased where it is compared with lower(...)', () => {
    const filter = parseFilter({ source: 'CRM,crm/sync', type: 'none,general', status: 'failed', since: '2025-08-13' });
    const { sql, params } = searchSql({ text: 'Deals', filter, limit: 5 });
    expect(sql.split('?').length - 1).toBe(params.length);
    expect(params).toEqual([
      '2025-08-13T00:00:00.000Z',
      '2025-08-13T00:00:00.000Z',
      'deals',
      'deals',
      'deals',
      'deals',
      'crm',
      'crm/sync',
      'crm',
      'crm/sync',
      'none',
      'general',
      'failed',
      'failed',
    ]);
    expect(sql.slice(0, sql.indexOf('WHERE'))).not.toContain('?');
    expect(sql.slice(sql.indexOf('ORDER BY'))).toBe('ORDER BY received_at DESC, conversation_id DESC\nLIMIT 5');
    const called = [...sql.matchAll(/\b([a-z_]+)\s*\(/gi)].map((m) => m[1]!.toLowerCase());
    for (const f of called.filter((f) => !['and', 'or', 'in', 'over'].includes(f)))
      expect(SHARED_FUNCTIONS).toContain(f);
    expect(searchSql({ text: '', filter: parseFilter({}), limit: null }).sql).not.toMatch(/WHERE|LIMIT/);
  });

  it('snippets are one line around the match', () => {
    const text = `${'x'.repeat(100)} the\nneedle here ${'y'.repeat(100)}`;
    const s = snippetAround(text, text.indexOf('needle'), 6, 30);
    expect(s).toMatch(/^….*needle.*…$/);
    expect(s).not.toContain('\n');
  });
});

describe('--thread', () => {
  const turn = (source: string, n: number, received: string) => ({
    ...row,
    conversation_id: `${source}-${n}`,
    source_system: source,
    received_at: received,
    thread_id: 'q3',
    thread_turn: n,
  });

  it("keeps one thread (exact id) and orders each source's thread by turn; without it, newest first", () => {
    const f = parseFilter({ thread: 'q3' });
    expect(matchesFilter(turn('crm', 1, '2025-01-01'), f)).toBe(true);
    expect(matchesFilter({ ...row, thread_id: 'Q3' }, f)).toBe(false);
    expect(matchesFilter(row, f)).toBe(false);
    // crm's turn 2 received a moment before its turn 1 (turns are claimed as Validate runs, not as received).
    const rows = [
      turn('erp', 1, '2025-01-05T00:00:00.000Z'),
      turn('crm', 2, '2025-01-03T00:00:00.000Z'),
      turn('crm', 1, '2025-01-03T00:00:00.040Z'),
    ];
    expect(sortRows([...rows], f).map((r) => r.conversation_id)).toEqual(['crm-1', 'crm-2', 'erp-1']);
    expect(sortRows([...rows], parseFilter({})).map((r) => r.conversation_id)).toEqual(['erp-1', 'crm-1', 'crm-2']);
  });

  it('a thread forgotten and started again at turn 1 lists its earlier life first, not interleaved with it', () => {
    const f = parseFilter({ thread: 'q3' });
    const life = (n: number, received: string, name: string) => ({
      ...turn('crm', n, received),
      conversation_id: name,
    });
    const rows = [
      life(1, '2025-03-10T09:00:00.000Z', 'again-1'),
      life(2, '2025-01-01T09:00:05.000Z', 'first-2'),
      life(1, '2025-01-01T09:00:00.000Z', 'first-1'),
      life(3, '2025-01-01T09:00:04.999Z', 'first-3'), // claimed after turn 2, received a moment before it
      life(2, '2025-03-10T09:01:00.000Z', 'again-2'),
      turn('erp', 1, '2025-03-10T09:00:30.000Z'),
    ];
    // Before: by turn alone, first-1, again-1, first-2, again-2, first-3.
    expect(sortRows(rows, f).map((r) => r.conversation_id)).toEqual([
      'first-1',
      'first-2',
      'first-3',
      'again-1',
      'again-2',
      'erp-1',
    ]);
  });

  it('refuses what cannot be a thread id, and searches by it in SQL in turn order', () => {
    for (const bad of ['', '../x', 'a b', 'x'.repeat(129)])
      expect(() => parseFilter({ thread: bad })).toThrow(FilterError);
    const { sql, params } = searchSql({ text: '', filter: parseFilter({ thread: 'q3' }), limit: 10 });
    expect(sql).toContain('thread_id = ?');
    expect(sql).toContain('ORDER BY source_system, thread_turn');
    expect(params).toEqual(['q3']);
  });
});
