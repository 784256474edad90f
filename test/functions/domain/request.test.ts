import { deflateSync, gzipSync } from 'node:zlib';
import { describe, expect, it } from 'vitest';
import { WEBHOOK_TYPES } from '../../../functions/domain/conversation.ts';
import {
  foreignCharsetError,
  MAX_METADATA_BYTES,
  MAX_QUERY_LENGTH,
  parseWebhookRequest,
  type RequestParseResult,
} from '../../../functions/domain/request.ts';
import { SEED_REQUEST } from '../../support/fixtures.ts';

const MINIMAL = { query: 'How many deals?', source_system: 'crm', source_process: 'sync' };

function ok(result: RequestParseResult) {
  if (!result.ok) throw new Error(`expected ok, got ${result.code}: ${result.message}`);
  return result.request;
}

function failed(result: RequestParseResult) {
  if (result.ok) throw new Error(`expected a failure, got ${JSON.stringify(result.request)}`);
  return result;
}

function parse(body: unknown) {
  return parseWebhookRequest(JSON.stringify(body));
}

/** The details of a VALIDATION_ERROR, checked to carry a field and a message each. */
function details(body: unknown) {
  const result = failed(typeof body === 'string' ? parseWebhookRequest(body) : parse(body));
  expect(result.code).toBe('VALIDATION_ERROR');
  expect(result.details.length).toBeGreaterThan(0);
  for (const d of result.details) {
    expect(typeof d.field).toBe('string');
    expect(d.field).not.toBe('');
    expect(typeof d.message).toBe('string');
    expect(d.message).not.toBe('');
  }
  return result.details;
}

function fields(body: unknown): string[] {
  return details(body).map((d) => d.field);
}

describe('parseWebhookRequest: valid requests', () => {
  it('accepts the minimal request', () => {
    expect(ok(parse(MINIMAL))).toEqual(MINIMAL);
  });

  it('accepts the documented request with every optional field', () => {
    const full = {
      ...SEED_REQUEST,
      webhook_type: 'deal_analysis',
      metadata: { crm_id: 42, tags: ['a', 'b'], nested: { ok: true } },
    };
    expect(ok(parse(full))).toEqual(full);
  });

  it.each(WEBHOOK_TYPES)('accepts webhook_type %s', (type) => {
    expect(ok(parse({ ...MINIMAL, webhook_type: type })).webhook_type).toBe(type);
  });

  it.each([
    '2025-08-13T10:30:45Z',
    '2025-08-13T10:30:45.123Z',
    '2025-08-13T12:30:45+02:00',
    '2025-08-13T10:30:45-0700',
    '2024-02-29T10:30:45Z',
    '2000-02-29T10:30:45Z',
    '2025-04-30T23:59:59Z',
    '2025-12-31T23:59:59Z',
  ])('accepts timestamp %s', (timestamp) => {
    expect(ok(parse({ ...MINIMAL, timestamp })).timestamp).toBe(timestamp);
  });

  it.each([
    ['2025-08-13t10:30:45z', '2025-08-13T10:30:45Z'],
    ['2025-08-13t12:30:45.5+02:00', '2025-08-13T12:30:45.5+02:00'],
    ['2016-12-31T23:59:60Z', '2016-12-31T23:59:59.999Z'],
    ['2016-12-31t23:59:60.25z', '2016-12-31T23:59:59.999Z'],
    ['2015-06-30T23:59:60Z', '2015-06-30T23:59:59.999Z'],
    ['2017-01-01T01:59:60+02:00', '2017-01-01T01:59:59.999+02:00'],
  ])('accepts RFC 3339 timestamp %s, kept as %s', (timestamp, kept) => {
    expect(ok(parse({ ...MINIMAL, timestamp })).timestamp).toBe(kept);
  });

  it.each(['2025-08-13T10:30:60Z', '2016-12-30T23:59:60Z', '2016-12-31T23:59:60+02:00', '2016-12-31T23:59:61Z'])(
    'rejects %s: second 60 only at a leap second, the last second of a month in UTC',
    (timestamp) => {
      expect(details({ ...MINIMAL, timestamp })).toEqual([
        { field: 'timestamp', message: expect.stringMatching(/ISO 8601/) },
      ]);
    },
  );

  it('accepts names with letters, digits, underscore, dash and dot', () => {
    const r = ok(parse({ ...MINIMAL, source_system: 'CRM_v2.prod-eu', source_process: '3rd.party_sync' }));
    expect(r.source_system).toBe('CRM_v2.prod-eu');
    expect(r.source_process).toBe('3rd.party_sync');
  });

  it('accepts an empty metadata object', () => {
    expect(ok(parse({ ...MINIMAL, metadata: {} })).metadata).toEqual({});
  });

  it('does not add absent optional fields', () => {
    const r = ok(parse(MINIMAL));
    expect(Object.keys(r).sort()).toEqual(['query', 'source_process', 'source_system']);
  });
});

describe('parseWebhookRequest: query', () => {
  it('trims the query', () => {
    expect(ok(parse({ ...MINIMAL, query: '  \n\t What are my deals?  \n' })).query).toBe('What are my deals?');
  });

  it.each(['', '   ', '\n\t  \r\n'])('rejects a blank query %j', (query) => {
    expect(details({ ...MINIMAL, query })).toEqual([
      { field: 'query', message: 'query is required and must not be blank' },
    ]);
  });

  // Before, each ran a whole conversation: JavaScript's trim keeps U+0085 (Unicode whitespace), control characters and
  // the characters that show nothing, and the agent was asked an empty question.
  it.each(['\u0085', '\u200b', '\u200b\u200c\u200d\u2060\ufeff', '\u0001\u0002', '\u180e', ' \u200e\u00ad\u0000 '])(
    'rejects a query of only invisible characters %j',
    (query) => {
      expect(details({ ...MINIMAL, query })).toEqual([
        {
          field: 'query',
          message:
            'query is blank: it holds only whitespace, control or invisible characters (such as U+0085, U+200B, U+FEFF)',
        },
      ]);
    },
  );

  it.each(['a\u200b', '\u200b📈', '\u0085¿?', 'עסקאות\u200f', '\u00a0x'])(
    'takes a query with a visible character %j',
    (query) => {
      expect(ok(parse({ ...MINIMAL, query })).query).toBe(query.trim());
    },
  );

  it('rejects a missing query with a per-field detail that says it is required', () => {
    const { query: _omitted, ...rest } = MINIMAL;
    const d = details(rest);
    expect(d).toHaveLength(1);
    expect(d[0]!.field).toBe('query');
    expect(d[0]!.message).toMatch(/required/);
    expect(d[0]!.message).not.toMatch(/unknown field/);
  });

  it.each([42, null, true, ['q'], { text: 'q' }])('rejects a non-string query %j', (query) => {
    expect(details({ ...MINIMAL, query })).toEqual([{ field: 'query', message: 'query must be a string' }]);
  });

  it('counts a query in UTF-16 code units, and says so: half the limit in emoji fits, one more does not', () => {
    const half = MAX_QUERY_LENGTH / 2;
    expect(ok(parse({ ...MINIMAL, query: '😀'.repeat(half) })).query).toHaveLength(MAX_QUERY_LENGTH);
    expect(details({ ...MINIMAL, query: '😀'.repeat(half + 1) })).toEqual([
      { field: 'query', message: expect.stringContaining('UTF-16 code units: an emoji counts as 2') },
    ]);
  });

  it(`accepts a query of exactly ${MAX_QUERY_LENGTH} characters and rejects one more`, () => {
    expect(ok(parse({ ...MINIMAL, query: 'q'.repeat(MAX_QUERY_LENGTH) })).query).toHaveLength(MAX_QUERY_LENGTH);
    expect(details({ ...MINIMAL, query: 'q'.repeat(MAX_QUERY_LENGTH + 1) })).toEqual([
      {
        field: 'query',
        message: `query must be at most ${MAX_QUERY_LENGTH} characters (UTF-16 code units: an emoji counts as 2)`,
      },
    ]);
  });

  it('measures the length after trimming', () => {
    const query = `   ${'q'.repeat(MAX_QUERY_LENGTH)}   `;
    expect(ok(parse({ ...MINIMAL, query })).query).toHaveLength(MAX_QUERY_LENGTH);
  });
});

describe.each(['source_system', 'source_process'] as const)('parseWebhookRequest: %s', (field) => {
  it('is required', () => {
    const body: Record<string, unknown> = { ...MINIMAL };
    delete body[field];
    const d = details(body);
    expect(d).toHaveLength(1);
    expect(d[0]!.field).toBe(field);
    expect(d[0]!.message).toMatch(new RegExp(`${field} is required`));
  });

  it('rejects an empty string', () => {
    expect(details({ ...MINIMAL, [field]: '' })).toEqual([{ field, message: `${field} is required` }]);
  });

  it('rejects a non-string', () => {
    expect(details({ ...MINIMAL, [field]: 7 })).toEqual([{ field, message: `${field} must be a string` }]);
  });

  it('accepts 64 characters and rejects 65', () => {
    expect(ok(parse({ ...MINIMAL, [field]: 'a'.repeat(64) }))[field]).toHaveLength(64);
    expect(details({ ...MINIMAL, [field]: 'a'.repeat(65) })).toEqual([
      { field, message: `${field} must be at most 64 characters` },
    ]);
  });

  it.each(['../etc', 'a/b', '%2F', '_leading', '.hidden', 'has space', 'ünïcode', 'semi;colon', 'a\nb'])(
    'rejects %j',
    (value) => {
      const d = details({ ...MINIMAL, [field]: value });
      expect(d).toHaveLength(1);
      expect(d[0]!.field).toBe(field);
      expect(d[0]!.message).toMatch(/may contain only ASCII letters \(A-Z, a-z\), digits/);
    },
  );

  // Before: "may contain only letters, digits, …", and `büro` (whose ü is a letter) was refused without saying why.
  it.each([
    ['büro', "character 2 is 'ü' (U+00FC)"],
    ['café', "character 4 is 'é' (U+00E9)"],
    ['has space', 'character 4 is U+0020'],
    ['_leading', "it starts with '_'"],
    ['a/b', "character 2 is '/'"],
    ['crm\u200bsync', 'character 4 is U+200B'],
    ['😀crm', "it starts with '😀' (U+1F600)"],
  ])('says which character of %j breaks the rule', (value, says) => {
    expect(details({ ...MINIMAL, [field]: value })).toEqual([
      {
        field,
        message: `${field} may contain only ASCII letters (A-Z, a-z), digits, '_', '-' and '.', starting with a letter or digit: ${says}`,
      },
    ]);
  });
});

describe('parseWebhookRequest: thread_id', () => {
  it('takes a thread id of ASCII letters, digits, _ - .', () => {
    expect(ok(parse({ ...MINIMAL, thread_id: 'Q3-review_2026.a' })).thread_id).toBe('Q3-review_2026.a');
  });

  it.each([
    ['q3 review', 'character 3 is U+0020'],
    ['revisión', "character 7 is 'ó' (U+00F3)"],
    ['-q3', "it starts with '-'"],
  ])('refuses %j, saying which character breaks the rule', (thread_id, says) => {
    expect(details({ ...MINIMAL, thread_id })).toEqual([
      {
        field: 'thread_id',
        message: `thread_id may contain only ASCII letters (A-Z, a-z), digits, '_', '-' and '.', starting with a letter or digit: ${says}`,
      },
    ]);
  });
});

describe('parseWebhookRequest: timestamp and webhook_type', () => {
  it.each([
    'yesterday',
    '2025-08-13',
    '2025-08-13T10:30:45',
    '13/08/2025 10:30',
    '2025-13-01T00:00:00Z',
    '2025-08-13T25:00:00Z',
    '',
  ])('rejects timestamp %j', (timestamp) => {
    const d = details({ ...MINIMAL, timestamp });
    expect(d).toEqual([{ field: 'timestamp', message: expect.stringMatching(/ISO 8601/) }]);
  });

  it.each(['2025-02-29T10:30:45Z', '2025-02-31T10:30:45Z', '2025-04-31T10:30:45Z', '1900-02-29T10:30:45Z'])(
    'rejects timestamp %j: a day its month does not have',
    (timestamp) => {
      expect(details({ ...MINIMAL, timestamp })).toEqual([
        { field: 'timestamp', message: 'timestamp must be a date that exists: its day is past the end of its month' },
      ]);
    },
  );

  it('rejects a numeric timestamp', () => {
    expect(details({ ...MINIMAL, timestamp: 1723545045 })).toEqual([
      { field: 'timestamp', message: 'timestamp must be a string' },
    ]);
  });

  it.each(['DEAL_ANALYSIS', 'deal', 'unknown', '', 3, null])('rejects webhook_type %j', (webhook_type) => {
    const d = details({ ...MINIMAL, webhook_type });
    expect(d).toHaveLength(1);
    expect(d[0]!.field).toBe('webhook_type');
    for (const type of WEBHOOK_TYPES) expect(d[0]!.message).toContain(type);
  });
});

describe('parseWebhookRequest: metadata', () => {
  it.each([
    ['a string', 'x'],
    ['a number', 1],
    ['null', null],
    ['an array', []],
    ['a non-empty array', ['a', 'b']],
  ])('rejects metadata that is %s', (_label, metadata) => {
    expect(details({ ...MINIMAL, metadata })).toEqual([{ field: 'metadata', message: 'metadata must be an object' }]);
  });

  it('keeps metadata values as sent', () => {
    const metadata = { n: 1, s: 'x', list: [1, { a: null }], deep: { deeper: { deepest: 'ok' } } };
    expect(ok(parse({ ...MINIMAL, metadata })).metadata).toEqual(metadata);
  });

  it(`accepts metadata of exactly ${MAX_METADATA_BYTES} bytes as JSON and rejects one byte more`, () => {
    const overhead = Buffer.byteLength(JSON.stringify({ k: '' }));
    const exact = { k: 'v'.repeat(MAX_METADATA_BYTES - overhead) };
    expect(Buffer.byteLength(JSON.stringify(exact))).toBe(MAX_METADATA_BYTES);
    expect(ok(parse({ ...MINIMAL, metadata: exact })).metadata).toEqual(exact);
    const over = { k: 'v'.repeat(MAX_METADATA_BYTES - overhead + 1) };
    expect(details({ ...MINIMAL, metadata: over })).toEqual([
      { field: 'metadata', message: `metadata must be at most ${MAX_METADATA_BYTES} bytes as JSON` },
    ]);
  });

  it('counts bytes, not characters', () => {
    const overhead = Buffer.byteLength(JSON.stringify({ k: '' }));
    const chars = Math.floor((MAX_METADATA_BYTES - overhead) / 2) + 1; // 'é' is two bytes in UTF-8
    expect(fields({ ...MINIMAL, metadata: { k: 'é'.repeat(chars) } })).toEqual(['metadata']);
  });

  it('rejects nesting deeper than 20 levels', () => {
    let deep: Record<string, unknown> = { leaf: 1 };
    for (let i = 0; i < 25; i++) deep = { d: deep };
    const d = details({ ...MINIMAL, metadata: deep });
    // Before, the message named the keys __proto__, constructor and prototype too, which this metadata has none of.
    expect(d).toEqual([
      {
        field: 'metadata',
        message: 'metadata must not nest deeper than 20 levels ({"a": 1} is one level, {"a": [1]} two)',
      },
    ]);
  });

  // JSON.parse makes "__proto__" an own key; object literals would not, so these bodies are raw JSON text.
  it.each([
    ['__proto__ at the top of metadata', '{"__proto__":{"polluted":true}}', 'metadata.__proto__'],
    ['constructor at the top of metadata', '{"constructor":{"prototype":{"polluted":true}}}', 'metadata.constructor'],
    ['prototype at the top of metadata', '{"prototype":1}', 'metadata.prototype'],
    ['__proto__ nested in metadata', '{"a":{"b":{"__proto__":{"polluted":true}}}}', 'metadata.a.b.__proto__'],
    ['constructor nested in metadata', '{"a":{"constructor":"x"}}', 'metadata.a.constructor'],
    [
      '__proto__ inside an array in metadata',
      '{"list":[1,{"__proto__":{"polluted":true}}]}',
      'metadata.list[1].__proto__',
    ],
  ])('rejects %s, naming where it is', (_label, metadataJson, where) => {
    const body = `{"query":"q","source_system":"a","source_process":"b","metadata":${metadataJson}}`;
    const d = details(body);
    expect(d).toEqual([
      {
        field: 'metadata',
        message: `metadata must not contain the keys __proto__, constructor or prototype: ${where} is one`,
      },
    ]);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });
});

describe('parseWebhookRequest: body shape', () => {
  it.each([
    ['an array', '[]', 'an array'],
    ['an array of requests', JSON.stringify([MINIMAL]), 'an array'],
    ['null', 'null', 'null'],
    ['a string', '"hello"', 'string'],
    ['a number', '42', 'number'],
    ['a boolean', 'true', 'boolean'],
  ])('rejects %s as the body', (_label, raw, got) => {
    const result = failed(parseWebhookRequest(raw));
    expect(result.code).toBe('VALIDATION_ERROR');
    expect(result.message).toBe('Request body must be a JSON object');
    expect(result.details).toEqual([{ field: '(body)', message: `expected an object, got ${got}` }]);
  });

  it.each([
    ['empty', ''],
    ['whitespace', '   '],
    ['truncated object', '{"query": "What are the top deals'],
    ['truncated after a comma', '{"query":"q",'],
    ['single quotes', "{'query': 'q'}"],
    ['trailing comma', '{"query":"q","source_system":"a","source_process":"b",}'],
    ['bare word', 'undefined'],
    ['form encoding', 'query=q&source_system=a'],
    ['two documents', '{}{}'],
  ])('returns INVALID_JSON for %s', (_label, raw) => {
    const result = failed(parseWebhookRequest(raw));
    expect(result.code).toBe('INVALID_JSON');
    expect(result.message).toMatch(/^Request body is not valid JSON: /);
    expect(result.details).toEqual([]);
  });

  // Before: "Unexpected end of JSON input" (V8's words), which named no fix for `curl -X POST …/webhook` without -d.
  it.each([
    ['', 'it is empty'],
    [' \r\n\t', 'it is empty (only whitespace)'],
  ])('says an empty body %j is empty and what to send', (raw, says) => {
    const result = failed(parseWebhookRequest(raw));
    expect(result.code).toBe('INVALID_JSON');
    expect(result.message).toBe(
      `Request body is not valid JSON: ${says}; send a JSON object: {"query": "…", "source_system": "…", "source_process": "…"}`,
    );
  });

  it('says a gzip-compressed body is one (as it reaches the gateway: decoded as UTF-8, no Content-Encoding undone)', () => {
    const raw = gzipSync(JSON.stringify(SEED_REQUEST)).toString('utf8');
    const result = failed(parseWebhookRequest(raw));
    expect(result.code).toBe('INVALID_JSON');
    expect(result.message).toBe(
      'Request body is not valid JSON: it is gzip-compressed; send it uncompressed (no Content-Encoding is decoded)',
    );
  });

  it.each([1, 4, 6, 9])(
    'says a deflate-compressed body (zlib, level %i: each level has its own header byte) is one',
    (level) => {
      const raw = deflateSync(JSON.stringify(SEED_REQUEST), { level }).toString('utf8');
      expect(failed(parseWebhookRequest(raw)).message).toBe(
        'Request body is not valid JSON: it is deflate-compressed; send it uncompressed (no Content-Encoding is decoded)',
      );
    },
  );

  it('says a zstd-compressed body is one (its magic bytes 28 B5 2F FD)', () => {
    const raw = Buffer.concat([Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x24, 0x05]), Buffer.from('{"q')]).toString('utf8');
    expect(failed(parseWebhookRequest(raw)).message).toBe(
      'Request body is not valid JSON: it is zstd-compressed; send it uncompressed (no Content-Encoding is decoded)',
    );
  });

  // Before: "Expected property name or '}' in JSON at position 1", which did not say the body was UTF-16.
  it.each([
    ['UTF-16LE', Buffer.from(JSON.stringify(SEED_REQUEST), 'utf16le')],
    ['UTF-16BE', Buffer.from(JSON.stringify(SEED_REQUEST), 'utf16le').swap16()],
    ['UTF-16LE with its byte order mark', Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(' {}', 'utf16le')])],
    [
      'UTF-16BE with its byte order mark',
      Buffer.concat([Buffer.from([0xfe, 0xff]), Buffer.from('{}', 'utf16le').swap16()]),
    ],
  ])('says a %s body is UTF-16 (as it reaches the gateway: decoded as UTF-8)', (_label, bytes) => {
    expect(failed(parseWebhookRequest(bytes.toString('utf8'))).message).toBe(
      'Request body is not valid JSON: it is UTF-16 (a NUL byte beside each ASCII character); send it as UTF-8 (JSON is UTF-8, RFC 8259)',
    );
  });

  it('refuses a body declared in another charset only when bytes of it were lost (read as U+FFFD)', () => {
    const latin1 = Buffer.from('{"query":"Café"}', 'latin1').toString('utf8');
    expect(foreignCharsetError('application/json; charset=ISO-8859-1', latin1)).toBe(
      'Request body is not valid JSON: it is not UTF-8 (Content-Type says charset=iso-8859-1); a body is read as UTF-8 (JSON is UTF-8, RFC 8259) and its other bytes would be lost: send it as UTF-8',
    );
    expect(foreignCharsetError('application/json;charset="windows-1252"', latin1)).toMatch(/charset=windows-1252\)/);
    expect(foreignCharsetError('application/json; charset=iso-8859-1', '{"query":"plain ASCII"}')).toBeNull();
    expect(foreignCharsetError('application/json; charset=UTF-8', latin1)).toBeNull(); // as documented: read as U+FFFD
    expect(foreignCharsetError('application/json', latin1)).toBeNull();
    expect(foreignCharsetError(undefined, latin1)).toBeNull();
  });

  it('refuses an unpaired surrogate (a \\uD800 escape without its pair) in the query or metadata; a pair is an emoji', () => {
    const body = (query: string, metadata = '{}') =>
      `{"query":"${query}","source_system":"s","source_process":"p","metadata":${metadata}}`;
    for (const [raw, field] of [
      [body('lone \\ud800 deals'), 'query'],
      [body('ends high \\udbff'), 'query'],
      [body('low first \\udc00\\ud83d'), 'query'],
      [body('q', '{"note":"\\udfff"}'), 'metadata'],
      [body('q', '{"deep":[{"\\ud800key":1}]}'), 'metadata'],
    ] as const) {
      const result = failed(parseWebhookRequest(raw));
      expect(result.code).toBe('VALIDATION_ERROR');
      expect(result.details).toEqual([{ field, message: expect.stringContaining('unpaired surrogate') }]);
    }
    expect(parseWebhookRequest(body('rocket \\ud83d\\ude80 deals')).ok).toBe(true);
    expect(parseWebhookRequest(body('q', '{"note":"\\\\ud800 is text here"}')).ok).toBe(true);
  });

  it('refuses a metadata integer beyond 2^53 - 1, which JSON.parse would round, naming it', () => {
    const body = (metadata: string) =>
      `{"query":"q \\" 9007199254740993","source_system":"s","source_process":"p","metadata":${metadata}}`;
    for (const [metadata, literal] of [
      ['{"crm_id":9007199254740993}', '9007199254740993'],
      ['{"deep":[{"n":-12345678901234567891}]}', '-12345678901234567891'],
      ['{"n": 9007199254740992, "big": 1e300}', '9007199254740992'],
    ] as const) {
      const result = failed(parseWebhookRequest(body(metadata)));
      expect(result.code).toBe('VALIDATION_ERROR');
      expect(result.details).toEqual([
        {
          field: 'metadata',
          message: `metadata must not hold an integer beyond ±9007199254740991 (2^53 − 1), as ${literal} is: past it a JSON number is read as the nearest double, so 9007199254740993 would be delivered and exported as 9007199254740992; send it as a string`,
        },
      ]);
      expect(result.message).toBe(`Request validation failed: metadata: ${result.details[0]!.message}`);
    }
    // Exact integers, floats written as floats, and digits inside strings (keys too) are taken.
    for (const metadata of [
      '{"n":9007199254740991,"m":-9007199254740991}',
      '{"f":1.5e300,"g":12345678901234567890.5,"e":1e20}',
      '{"id":"12345678901234567890","12345678901234567890":true}',
    ])
      expect(parseWebhookRequest(body(metadata)).ok, metadata).toBe(true);
  });

  it('refuses a metadata number JSON.parse reads as Infinity (it would be delivered and exported as null)', () => {
    for (const metadata of ['{"n":1e400}', '{"deep":[{"n":-1e309}]}']) {
      const result = failed(
        parseWebhookRequest(`{"query":"q","source_system":"s","source_process":"p","metadata":${metadata}}`),
      );
      expect(result.details).toEqual([
        { field: 'metadata', message: expect.stringContaining('delivered and exported as null') },
      ]);
    }
    expect(
      parseWebhookRequest('{"query":"q","source_system":"s","source_process":"p","metadata":{"n":1.7e308,"z":-0}}').ok,
    ).toBe(true);
  });

  it('rejects unknown fields by name', () => {
    const d = details({ ...MINIMAL, priority: 'high' });
    expect(d).toEqual([{ field: 'priority', message: expect.stringMatching(/^unknown field/) }]);
    expect(d[0]!.message).toContain(
      'query, source_system, source_process, timestamp, thread_id, webhook_type, metadata',
    );
  });

  it('names an unknown field of any length in at most 100 characters: the answer stays small', () => {
    const key = 'k'.repeat(200_000);
    const result = failed(parseWebhookRequest(JSON.stringify({ ...MINIMAL, [key]: 1 })));
    expect(result.details).toEqual([
      { field: `${'k'.repeat(100)}… (200000 characters)`, message: expect.stringMatching(/^unknown field/) },
    ]);
    expect(JSON.stringify(result).length).toBeLessThan(1_000);
  });

  it('rejects a misspelled field rather than dropping it', () => {
    expect(fields({ ...MINIMAL, webhooktype: 'deal_analysis' })).toEqual(['webhooktype']);
  });

  it.each(['__proto__', 'constructor', 'prototype'])('rejects a top-level %s key', (key) => {
    const raw = `{"query":"q","source_system":"a","source_process":"b","${key}":{"polluted":true}}`;
    const result = failed(parseWebhookRequest(raw));
    expect(result.code).toBe('VALIDATION_ERROR');
    expect(result.details).toContainEqual({ field: key, message: `field '${key}' is not allowed` });
    expect(result.details.every((d) => d.field === key)).toBe(true);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('reports every bad field at once, each with its own detail', () => {
    const result = failed(
      parse({
        query: 5,
        source_system: '',
        source_process: 'x/y',
        timestamp: 'yesterday',
        webhook_type: 'foo',
        metadata: [],
      }),
    );
    expect(result.code).toBe('VALIDATION_ERROR');
    expect(result.details.map((d) => d.field).sort()).toEqual(
      ['metadata', 'query', 'source_process', 'source_system', 'timestamp', 'webhook_type'].sort(),
    );
    for (const d of result.details) expect(result.message).toContain(`${d.field}: ${d.message}`);
  });

  it('reports each missing required field for an empty object', () => {
    const d = details({});
    expect(d.map((x) => x.field)).toEqual(['query', 'source_system', 'source_process']);
    for (const x of d) {
      expect(x.message).toMatch(/required/);
      expect(x.message).not.toMatch(/unknown field/);
    }
  });
});
