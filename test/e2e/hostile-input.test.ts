import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isConversationId } from '../../functions/domain/conversation-id.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';

/**
 * Bad requests, each with its documented answer (README "Send a conversation"): the gateway answers with the
 * contract's error body, keeps serving, calls no agent, and writes nothing outside
 * conversation-history/<date>/<valid id>/.
 */
let world: TestWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});

const seed = JSON.stringify(SEED_REQUEST);
const nest = (depth: number) => `${'['.repeat(depth)}${']'.repeat(depth)}`;
const withField = (field: string, value: unknown) => JSON.stringify({ ...SEED_REQUEST, [field]: value });
const JSON_CT = { 'content-type': 'application/json' };

interface Case {
  name: string;
  body: string | Buffer;
  headers?: Record<string, string>;
  status: number;
  code: string;
  field?: string;
}

const CASES: Case[] = [
  { name: 'malformed JSON', body: '{"query": ', status: 400, code: 'INVALID_JSON' },
  { name: 'truncated JSON', body: seed.slice(0, seed.length / 2), status: 400, code: 'INVALID_JSON' },
  { name: 'empty body', body: '', status: 400, code: 'INVALID_JSON' },
  { name: 'trailing garbage', body: `${seed}}`, status: 400, code: 'INVALID_JSON' },
  { name: 'JSON with comments', body: `{/* hi */"query":"q"}`, status: 400, code: 'INVALID_JSON' },
  { name: 'null body', body: 'null', status: 400, code: 'VALIDATION_ERROR', field: '(body)' },
  { name: 'array body', body: `[${seed}]`, status: 400, code: 'VALIDATION_ERROR', field: '(body)' },
  { name: 'string body', body: '"What are the top deals?"', status: 400, code: 'VALIDATION_ERROR', field: '(body)' },
  { name: 'number body', body: '42', status: 400, code: 'VALIDATION_ERROR', field: '(body)' },
  {
    name: 'text/plain content type',
    body: seed,
    headers: { 'content-type': 'text/plain' },
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
  },
  {
    name: 'form content type',
    body: 'query=x',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
  },
  {
    name: 'no content type (read as JSON, as API Gateway does): the body is still checked',
    body: withField('query', 5),
    headers: { 'content-type': '' },
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'query',
  },
  {
    name: 'application/jsonp (not JSON)',
    body: seed,
    headers: { 'content-type': 'application/jsonp' },
    status: 415,
    code: 'UNSUPPORTED_MEDIA_TYPE',
  },
  { name: 'query null', body: withField('query', null), status: 400, code: 'VALIDATION_ERROR', field: 'query' },
  { name: 'query number', body: withField('query', 5), status: 400, code: 'VALIDATION_ERROR', field: 'query' },
  {
    name: 'query object',
    body: withField('query', { text: 'q' }),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'query',
  },
  { name: 'query array', body: withField('query', ['q']), status: 400, code: 'VALIDATION_ERROR', field: 'query' },
  { name: 'query empty', body: withField('query', ''), status: 400, code: 'VALIDATION_ERROR', field: 'query' },
  {
    name: 'query only whitespace and control characters',
    body: withField('query', ' \t\n\r '),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'query',
  },
  {
    name: 'query longer than 20,000 characters',
    body: withField('query', 'q'.repeat(20_001)),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'query',
  },
  { name: 'query of 1 MB', body: withField('query', 'q'.repeat(1_048_576)), status: 413, code: 'PAYLOAD_TOO_LARGE' },
  {
    name: 'source_system null',
    body: withField('source_system', null),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'source_system',
  },
  {
    name: 'source_system array',
    body: withField('source_system', ['a']),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'source_system',
  },
  {
    name: 'source_system ../',
    body: withField('source_system', '../../etc'),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'source_system',
  },
  {
    name: 'source_system with /',
    body: withField('source_system', 'crm/../../x'),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'source_system',
  },
  {
    name: 'source_system with %2F',
    body: withField('source_system', 'crm%2F..%2Fx'),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'source_system',
  },
  {
    name: 'source_process ..',
    body: withField('source_process', '..'),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'source_process',
  },
  {
    name: 'source_process with a backslash',
    body: withField('source_process', 'a\\b'),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'source_process',
  },
  {
    name: 'source_system with unicode',
    body: withField('source_system', 'système'),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'source_system',
  },
  {
    name: 'source_system with a NUL',
    body: withField('source_system', 'crm\u0000x'),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'source_system',
  },
  {
    name: 'source_system of 1,000 characters',
    body: withField('source_system', 'a'.repeat(1000)),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'source_system',
  },
  {
    name: 'timestamp not a date',
    body: withField('timestamp', '2025-13-45T99:99:99Z'),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'timestamp',
  },
  {
    name: 'webhook_type with a path',
    body: withField('webhook_type', '../general'),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'webhook_type',
  },
  {
    name: 'metadata array',
    body: withField('metadata', [1, 2]),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'metadata',
  },
  {
    name: 'metadata null',
    body: withField('metadata', null),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'metadata',
  },
  {
    name: 'metadata with __proto__',
    body: seed.replace(/}$/, ',"metadata":{"__proto__":{"polluted":true}}}'),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'metadata',
  },
  {
    name: 'metadata nested constructor.prototype',
    body: withField('metadata', { a: { constructor: { prototype: { x: 1 } } } }),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'metadata',
  },
  {
    name: 'metadata nested 10,000 deep',
    body: seed.replace(/}$/, `,"metadata":{"a":${nest(10_000)}}}`),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'metadata',
  },
  {
    name: 'metadata over 16 KB',
    body: withField('metadata', { blob: 'x'.repeat(17_000) }),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'metadata',
  },
  {
    name: 'top-level __proto__',
    body: seed.replace(/}$/, ',"__proto__":{"isAdmin":true}}'),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: '__proto__',
  },
  {
    name: 'extra field conversation_id (reaching internal input)',
    body: withField('conversation_id', '../../x'),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'conversation_id',
  },
  {
    name: 'extra field valid (reaching the Choice state)',
    body: withField('valid', false),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'valid',
  },
  {
    name: 'extra field redelivery (reaching the redelivery workflow)',
    body: withField('redelivery', { via: 'redrive' }),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'redelivery',
  },
  {
    name: 'an Idempotency-Key with control characters',
    body: seed,
    headers: { ...JSON_CT, 'idempotency-key': 'a\tb' },
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'Idempotency-Key',
  },
  {
    name: 'a Latin-1 body declared charset=iso-8859-1 (its é would be lost as U+FFFD)',
    body: Buffer.from(withField('query', 'Café pipeline'), 'latin1'),
    headers: { 'content-type': 'application/json; charset=ISO-8859-1' },
    status: 400,
    code: 'INVALID_JSON',
  },
  {
    name: 'a UTF-16 body declared charset=utf-16',
    body: Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(seed, 'utf16le')]),
    headers: { 'content-type': 'application/json; charset=utf-16' },
    status: 400,
    code: 'INVALID_JSON',
  },
  {
    name: 'an unpaired surrogate escape in the query (no UTF-8 export could hold it)',
    body: seed.replace('"query":"', '"query":"\\ud800 '),
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'query',
  },
  {
    name: 'a metadata integer beyond 2^53 - 1 (JSON.parse would round it: 9007199254740993 read as …992)',
    body: `${seed.slice(0, -1)},"metadata":{"crm_id":9007199254740993}}`,
    status: 400,
    code: 'VALIDATION_ERROR',
    field: 'metadata',
  },
];

describe('hostile input: every bad request gets its documented 4xx', () => {
  it.each(CASES)('$name → $status $code', async ({ body, headers, status, code, field }) => {
    const res = await fetch(`${world.gateway.url}/webhook`, { method: 'POST', headers: headers ?? JSON_CT, body });
    const answer = (await res.json()) as {
      success: boolean;
      error: { code: string; message: string; details?: { field: string }[] };
    };
    expect(res.status).toBe(status);
    expect(answer.success).toBe(false);
    expect(answer.error.code).toBe(code);
    expect(answer.error.message.length).toBeGreaterThan(10);
    if (field) expect(answer.error.details?.map((d) => d.field)).toContain(field);
  });

  it('a huge header → 431 from the HTTP layer, and the connection is closed cleanly', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        `${world.gateway.url}/webhook`,
        { method: 'POST', headers: { ...JSON_CT, 'x-filler': 'x'.repeat(64 * 1024) } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end(seed);
    });
    expect(status).toBe(431);
  });

  it('unicode, emoji and control characters inside the query are accepted as text and exported safely', async () => {
    const res = await world.post({ ...SEED_REQUEST, query: 'Deals 🚀 für "Q3"\u0007\u202e ../../etc/passwd <script>' });
    expect(res.status).toBe(200);
    expect(isConversationId(res.body.conversation_id)).toBe(true);
  });

  it('after all of that: no agent call for the rejected ones, the gateway still serves, and every S3 key is a valid export path', async () => {
    const calls = world.agent.invocations.length;
    expect(calls).toBe(1); // only the accepted unicode query above
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(200);
    const keys = await world.listKeys();
    expect(keys.length).toBe(8);
    for (const key of keys) {
      const m =
        /^conversation-history\/\d{4}\/\d{2}\/\d{2}\/([^/]+)\/(conversation|metadata|summary|analysis)\.json$/.exec(
          key,
        );
      expect(m, key).not.toBeNull();
      expect(isConversationId(m![1]!)).toBe(true);
    }
    expect(({} as Record<string, unknown>).polluted ?? ({} as Record<string, unknown>).isAdmin).toBeUndefined();
  });
});
