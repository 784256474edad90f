import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ANALYSIS_COLUMNS, CONVERSATIONS_COLUMNS } from '../../../functions/domain/analytics-table.ts';
import { type ConversationRecord, turnText, withTurnTexts } from '../../../functions/domain/conversation.ts';
import {
  analysisFormat,
  compactSummary,
  EXPORT_FILES,
  EXPORT_PREFIX,
  EXPORT_VERSION,
  exportDocuments,
  exportFolder,
  exportKey,
  metadataOnly,
  structuredJson,
} from '../../../functions/domain/export-formats.ts';
import {
  completeConversation,
  withAgentAnswer,
  withClassification,
  withDeliveryAttempt,
  withFailure,
} from '../../../functions/domain/lifecycle.ts';
import { EVENT_TYPES } from '../../../functions/domain/observability.ts';
import { PROJECT_ROOT } from '../../../local/paths.ts';
import { DELIVERY_ID, RECEIVED_AT, SEED_REQUEST, startedRecord } from '../../support/fixtures.ts';

const ID = 'webhook_20250813_103045_testing_phase3valid_abc123';
const EXPORTED_AT = '2025-08-13T10:30:50.000Z';
const FOLDER = `conversation-history/2025/08/13/${ID}/`;

function finishedRecord(): ConversationRecord {
  let r = startedRecord({ ...SEED_REQUEST, metadata: { crm_id: 'opp-1' } });
  r = withAgentAnswer(r, { response: 'Three deals close this quarter.' }, 1800, new Date('2025-08-13T10:30:47Z'));
  r = withClassification(r);
  r = withDeliveryAttempt(
    r,
    {
      attempt: 1,
      at: '2025-08-13T10:30:47.100Z',
      duration_ms: 230,
      status_code: 200,
      outcome: 'delivered',
      via: 'workflow',
    },
    'https://hooks.example.com/deals',
    'delivered',
  );
  return completeConversation(r, false, 'exec-1', new Date('2025-08-13T10:30:47.500Z'));
}

function documentsByName(record: ConversationRecord) {
  const docs = exportDocuments(record, EXPORTED_AT);
  return Object.fromEntries(docs.map((d) => [d.key.slice(d.key.lastIndexOf('/') + 1), d])) as Record<
    (typeof EXPORT_FILES)[number],
    { key: string; body: string }
  >;
}

describe('export keys', () => {
  it('are conversation-history/YYYY/MM/DD/<id>/<file> for the four files', () => {
    expect(EXPORT_PREFIX).toBe('conversation-history');
    expect(exportFolder(ID)).toBe(FOLDER);
    expect(EXPORT_FILES).toEqual(['conversation.json', 'metadata.json', 'summary.json', 'analysis.json']);
    for (const file of EXPORT_FILES) expect(exportKey(ID, file)).toBe(`${FOLDER}${file}`);
  });

  it('exportDocuments writes exactly those four keys, in order', () => {
    expect(exportDocuments(finishedRecord(), EXPORTED_AT).map((d) => d.key)).toEqual([
      `${FOLDER}conversation.json`,
      `${FOLDER}metadata.json`,
      `${FOLDER}summary.json`,
      `${FOLDER}analysis.json`,
    ]);
  });

  it('takes the date folder from the id (UTC), not from the export time', () => {
    const r = startedRecord(undefined, { input: { received_at: '2025-01-01T01:00:00+03:00' } });
    expect(r.conversation_id.startsWith('webhook_20241231_220000_')).toBe(true);
    expect(exportFolder(r.conversation_id)).toBe(`conversation-history/2024/12/31/${r.conversation_id}/`);
  });

  it('are deterministic: a re-run overwrites the same keys with the same bodies', () => {
    const record = finishedRecord();
    expect(exportDocuments(record, EXPORTED_AT)).toEqual(exportDocuments(structuredClone(record), EXPORTED_AT));
  });

  it.each([
    '',
    '../',
    `${ID}/../../secrets`,
    `../${ID}`,
    'webhook_20250813_103045_testing_phase3valid_../',
    'webhook_20250813_103045_testing_phase3valid_abc123/',
    'WEBHOOK_20250813_103045_testing_phase3valid_abc123',
    'conversation',
  ])('exportFolder refuses the invalid id %j', (bad) => {
    expect(() => exportFolder(bad)).toThrow(/invalid conversation id/);
    expect(() => exportKey(bad, 'conversation.json')).toThrow(/invalid conversation id/);
  });

  it('exportDocuments refuses a record whose id was tampered with', () => {
    const r = finishedRecord();
    expect(() => exportDocuments({ ...r, conversation_id: `${r.conversation_id}/../../x` }, EXPORTED_AT)).toThrow(
      /invalid conversation id/,
    );
  });
});

describe('conversation.json (webhook_structured_json)', () => {
  it('has the contract’s export_metadata and the four record sections', () => {
    const record = finishedRecord();
    const doc = JSON.parse(documentsByName(record)['conversation.json'].body);
    expect(doc.export_metadata).toEqual({
      format: 'webhook_structured_json',
      version: '1.0',
      channel: 'webhook',
      exported_at: EXPORTED_AT,
    });
    expect(EXPORT_VERSION).toBe('1.0');
    expect(Object.keys(doc.conversation)).toEqual(['metadata', 'webhook_context', 'conversation', 'execution']);
    expect(doc.conversation.metadata).toEqual(record.metadata);
    // The state carries the answer once (the assistant turn's data); the export writes its text out as `content`.
    expect(record.conversation.turns[1]).not.toHaveProperty('content');
    expect(doc.conversation.conversation).toEqual(withTurnTexts(record).conversation);
    expect(doc.conversation.conversation.turns[1]).toEqual({
      role: 'assistant',
      content: turnText(record.conversation.turns[1]),
      timestamp: record.conversation.turns[1]!.timestamp,
      data: record.conversation.turns[1]!.data,
    });
    expect(doc.conversation.conversation.turns[1].content).not.toBe('');
    const { events, ...execution } = doc.conversation.execution;
    expect(execution).toEqual(record.execution);
    expect(events.length).toBeGreaterThan(0);
  });

  it('carries the webhook_context the contract names', () => {
    const doc = structuredJson(finishedRecord(), EXPORTED_AT);
    expect(doc.conversation.webhook_context).toMatchObject({
      source_system: 'testing_system',
      source_process: 'phase3_validation',
      webhook_type: 'deal_analysis',
      delivery_status: 'delivered',
      delivery_id: DELIVERY_ID,
    });
  });

  it('lists the lifecycle events in execution.events, ending with the export that wrote it', () => {
    const doc = structuredJson(finishedRecord(), EXPORTED_AT, { state: 'Export', executionName: 'exec-1' });
    // The contract's event types in their own order, less the failure this conversation did not have.
    expect(doc.conversation.execution.events.map((e) => e.type)).toEqual(
      EVENT_TYPES.filter((t) => t !== 'WEBHOOK_DELIVERY_FAILED'),
    );
    expect(doc.conversation.execution.events.at(-1)).toEqual({
      type: 'WEBHOOK_CONVERSATION_EXPORTED',
      at: EXPORTED_AT,
      state: 'Export',
      execution: 'exec-1',
    });
  });

  it('has the turns, timings, attempts and errors of the record', () => {
    const doc = structuredJson(finishedRecord(), EXPORTED_AT);
    expect(doc.conversation.conversation.turns.map((t) => t.role)).toEqual(['user', 'assistant']);
    expect(doc.conversation.execution.timings).toEqual({ agent_ms: 1800, delivery_ms: 230, total_ms: 2500 });
    expect(doc.conversation.execution.delivery_attempts).toHaveLength(1);
    expect(doc.conversation.execution.executions).toEqual(['exec-1']);
  });
});

describe('metadata.json', () => {
  it('is metadata only, with the outcome fields', () => {
    const record = finishedRecord();
    const doc = JSON.parse(documentsByName(record)['metadata.json'].body);
    expect(doc.export_metadata).toEqual({
      format: 'metadata_only',
      version: '1.0',
      channel: 'webhook',
      exported_at: EXPORTED_AT,
    });
    expect(Object.keys(doc)).toEqual(['export_metadata', 'metadata']);
    expect(doc.metadata).toEqual({
      ...record.metadata,
      webhook_type: 'deal_analysis',
      delivery_status: 'delivered',
      delivery_id: DELIVERY_ID,
      status: 'completed',
      turn_count: 2,
      total_time_ms: 2500,
    });
    expect(JSON.stringify(doc)).not.toContain('Three deals close this quarter.');
    expect(metadataOnly(record, EXPORTED_AT)).toEqual(doc);
  });
});

describe('summary.json', () => {
  it('is a single compact line', () => {
    const body = documentsByName(finishedRecord())['summary.json'].body;
    expect(body.endsWith('\n')).toBe(true);
    expect(body.trimEnd().split('\n')).toHaveLength(1);
    expect(body).not.toMatch(/": /); // no pretty-printing
    expect(JSON.parse(body)).toEqual({
      conversation_id: ID,
      received_at: RECEIVED_AT,
      source_system: 'testing_system',
      source_process: 'phase3_validation',
      webhook_type: 'deal_analysis',
      status: 'completed',
      delivery_status: 'delivered',
      delivery_attempts: 1,
      total_time_ms: 2500,
      query_preview: SEED_REQUEST.query,
    });
  });

  it('stays on one line when the query has newlines, and previews 120 characters', () => {
    const query = `line one\nline two\r\n${'x'.repeat(300)}`;
    const record = startedRecord({ ...SEED_REQUEST, query });
    const body = documentsByName(record)['summary.json'].body;
    expect(body.trimEnd().split('\n')).toHaveLength(1);
    expect(compactSummary(record).query_preview).toBe(query.slice(0, 120));
  });

  it('never cuts an emoji in half: a preview ending on its first half stops before it', () => {
    const query = `${'a'.repeat(119)}😀 and more`;
    const record = startedRecord({ ...SEED_REQUEST, query });
    expect(compactSummary(record).query_preview).toBe('a'.repeat(119));
    expect(compactSummary(startedRecord({ ...SEED_REQUEST, query: `${'a'.repeat(118)}😀 more` })).query_preview).toBe(
      `${'a'.repeat(118)}😀`,
    );
  });
});

describe('analysis.json', () => {
  it("is one JSON object on one line (what Athena's JSON reader takes), even when the texts have newlines", () => {
    let r = startedRecord({ ...SEED_REQUEST, query: 'line one\nline two\r\n\u2028end' });
    r = withAgentAnswer(r, 'answer\nwith\nlines', 5, new Date('2025-08-13T10:30:47Z'));
    const body = documentsByName(completeConversation(r, false, 'x', new Date('2025-08-13T10:30:48Z')))['analysis.json']
      .body;
    expect(body.endsWith('\n')).toBe(true);
    expect(body.slice(0, -1)).not.toMatch(/[\n\r]/);
    expect(JSON.parse(body)).toMatchObject({
      query: 'line one\nline two\r\n\u2028end',
      response: 'answer\nwith\nlines',
    });
  });

  it('has exactly the documented columns of the conversations table, in their order', () => {
    expect(Object.keys(analysisFormat(finishedRecord(), EXPORTED_AT))).toEqual(ANALYSIS_COLUMNS.map((c) => c.name));
    const doc = analysisFormat(finishedRecord(), EXPORTED_AT);
    for (const column of ANALYSIS_COLUMNS) {
      const value = doc[column.name];
      if (value !== null) expect(typeof value, column.name).toBe(column.type === 'bigint' ? 'number' : 'string');
    }
  });

  it('is documented column by column in docs/contract.md, in order, with its types and meanings', () => {
    // The meanings are also the Glue columns' comments (what Athena shows) and the CLI's column listing.
    const doc = readFileSync(path.join(PROJECT_ROOT, 'docs', 'contract.md'), 'utf8');
    const section = doc.slice(doc.indexOf('### The `conversations` table'));
    const documented = [...section.matchAll(/^\|\s*`([a-z_]+)`\s*\|\s*(string|bigint)\s*\|\s*(.*?)\s*\|$/gm)].map(
      (m) => [m[1], m[2], m[3]],
    );
    expect(documented).toEqual(CONVERSATIONS_COLUMNS.map((c) => [c.name, c.type, c.description]));
  });

  it('dates the delivery: delivered_at is when the successful attempt ended, null until then', () => {
    expect(analysisFormat(finishedRecord(), EXPORTED_AT).delivered_at).toBe('2025-08-13T10:30:47.330Z');
    expect(analysisFormat(startedRecord(), EXPORTED_AT).delivered_at).toBeNull();
  });

  it('is flat: every value is a scalar or null', () => {
    const doc = JSON.parse(documentsByName(finishedRecord())['analysis.json'].body) as Record<string, unknown>;
    for (const [key, value] of Object.entries(doc)) {
      expect(value === null || ['string', 'number', 'boolean'].includes(typeof value), key).toBe(true);
    }
  });

  it('has analysis-ready columns', () => {
    const doc = analysisFormat(finishedRecord(), EXPORTED_AT);
    expect(doc).toMatchObject({
      format: 'analysis',
      version: '1.0',
      channel: 'webhook',
      exported_at: EXPORTED_AT,
      conversation_id: ID,
      request_id: 'req-123',
      status: 'completed',
      webhook_type: 'deal_analysis',
      delivery_status: 'delivered',
      delivery_id: DELIVERY_ID,
      delivery_attempt_count: 1,
      last_delivery_status_code: 200,
      agent_processing_time_ms: 1800,
      delivery_response_time_ms: 230,
      total_time_ms: 2500,
      query: SEED_REQUEST.query,
      query_length: SEED_REQUEST.query.length,
      response: 'Three deals close this quarter.',
      response_length: 'Three deals close this quarter.'.length,
      error_count: 0,
      last_error: null,
    });
  });

  it("counts query_length and response_length in UTF-16 code units, as their meanings (Athena's column comments) say", () => {
    // SQL's length() counts the emoji once, in DuckDB and in Athena alike: the column's meaning must not say "characters".
    const query = 'Top 😀 deals?';
    const record = withAgentAnswer(startedRecord({ ...SEED_REQUEST, query }), { response: '😀😀' }, 5, new Date());
    const row = analysisFormat(record, EXPORTED_AT);
    expect([row.query_length, [...query].length]).toEqual([13, 12]);
    expect([row.response_length, [...'😀😀'].length]).toEqual([4, 2]);
    for (const name of ['query_length', 'response_length'])
      expect(ANALYSIS_COLUMNS.find((c) => c.name === name)!.description).toMatch(
        /UTF-16 code units \(an emoji counts 2/,
      );
  });

  it('summarises the last error of a failed conversation', () => {
    let r = startedRecord();
    r = withFailure(
      r,
      'InvokeManagerAgent',
      { error: 'AgentTimeoutError', message: 'no answer in 20000 ms', payload: null },
      new Date('2025-08-13T10:31:05Z'),
    );
    r = completeConversation(r, true, 'exec-1', new Date('2025-08-13T10:31:05Z'));
    const doc = analysisFormat(r, EXPORTED_AT);
    expect(doc).toMatchObject({
      status: 'failed',
      error_count: 1,
      last_error: 'InvokeManagerAgent: AgentTimeoutError: no answer in 20000 ms',
      response: '',
      response_length: 0,
      webhook_type: null,
      delivery_attempt_count: 0,
      last_delivery_status_code: null,
    });
  });
});
