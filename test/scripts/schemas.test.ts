import { readFile } from 'node:fs/promises';
import { request as httpRequest } from 'node:http';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXPORT_FILES, exportKey } from '../../functions/domain/export-formats.ts';
import { PROJECT_ROOT } from '../../local/paths.ts';
import { resolveOptions } from '../../local/server/config.ts';
import { contractFiles } from '../../scripts/schemas.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';

const committed = (file: string) => readFile(path.join(PROJECT_ROOT, file), 'utf8');
const read = async (file: string) => JSON.parse(await committed(file)) as Record<string, unknown>;

const ajv = new Ajv2020({ allErrors: true, strict: false });
addFormats.default(ajv);

/** A validator of a committed schema file, or of one component of the committed OpenAPI document. */
async function validator(file: string, component?: string) {
  const doc = await read(file);
  const schema = component
    ? ((doc.components as { schemas: Record<string, object> }).schemas[component] as object)
    : doc;
  const validate = ajv.compile(schema);
  return (value: unknown) => {
    const ok = validate(value);
    return ok ? 'valid' : ajv.errorsText(validate.errors);
  };
}

describe('the published schemas (docs/openapi.json, docs/schemas/)', () => {
  it('are what `npm run schemas` writes from the valibot schemas (run it after changing them)', async () => {
    for (const [file, text] of Object.entries(contractFiles())) expect(await committed(file), file).toBe(text);
  });

  it("name the local gateway's default address as a server", async () => {
    const { servers } = (await read('docs/openapi.json')) as {
      servers: { url: string; variables?: Record<string, { default: string }> }[];
    };
    const local = servers.find((s) => s.url.startsWith('http://'))!;
    expect(local.url.replace('{port}', local.variables!.port!.default)).toBe(
      `http://127.0.0.1:${resolveOptions({}, {}).port}`,
    );
  });

  it('describe the request the gateway accepts, and refuse what it refuses', async () => {
    const request = await validator('docs/schemas/webhook-request.schema.json');
    expect(request(SEED_REQUEST)).toBe('valid');
    expect(request({ ...SEED_REQUEST, webhook_type: 'deal_analysis', metadata: { crm: 'x' } })).toBe('valid');
    expect(request({ ...SEED_REQUEST, extra: 1 })).not.toBe('valid');
    expect(request({ ...SEED_REQUEST, source_system: 'a b' })).not.toBe('valid');
    expect(request({ query: 'q' })).not.toBe('valid');
    const openapi = await validator('docs/openapi.json', 'WebhookRequest');
    expect(openapi(SEED_REQUEST)).toBe('valid');
  });
});

/** Headers every answer may carry that the OpenAPI document leaves out (transport, and the local request id). */
const UNDECLARED_HEADERS = new Set([
  'content-type',
  'content-length',
  'date',
  'connection',
  'keep-alive',
  'transfer-encoding',
  'x-request-id',
]);

interface Answer {
  status: number;
  headers: Headers | Record<string, string | string[] | undefined>;
  body: unknown;
}

/**
 * The answer `res` to `method path` (the OpenAPI path template) is one the document declares: its status, each of its
 * headers, and a body valid against the schema declared for it. Returns what is wrong, or 'declared'.
 */
async function declared(method: string, pathTemplate: string, res: Answer): Promise<string> {
  const doc = (await read('docs/openapi.json')) as {
    paths: Record<string, Record<string, { responses: Record<string, Record<string, any>> }>>;
  };
  const response = doc.paths[pathTemplate]?.[method]?.responses[String(res.status)];
  if (!response) return `${method} ${pathTemplate} does not declare ${res.status}`;
  const names =
    res.headers instanceof Headers ? [...res.headers.keys()] : Object.keys(res.headers).map((h) => h.toLowerCase());
  const declaredHeaders = Object.keys(response.headers ?? {}).map((h) => h.toLowerCase());
  const missing = names.filter((name) => !UNDECLARED_HEADERS.has(name) && !declaredHeaders.includes(name));
  if (missing.length > 0) return `${res.status} does not declare the headers ${missing.join(', ')}`;
  const ref = response.content?.['application/json']?.schema?.$ref as string | undefined;
  if (!ref) return `${res.status} declares no body`;
  return (await validator('docs/openapi.json', ref.split('/').at(-1)))(res.body) === 'valid'
    ? 'declared'
    : `${res.status}: ${(await validator('docs/openapi.json', ref.split('/').at(-1)))(res.body)}`;
}

/** A POST /webhook addressed to another host name (a rebound DNS name): fetch cannot set Host. */
function postWithHost(url: string, host: string, body: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      `${url}/webhook`,
      { method: 'POST', headers: { host, 'content-type': 'application/json' } },
      (res) => {
        let text = '';
        res.on('data', (chunk) => {
          text += chunk;
        });
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: JSON.parse(text) }));
      },
    );
    req.on('error', reject);
    req.end(body);
  });
}

describe('the gateway answers, delivers and exports what the schemas say', () => {
  let world: TestWorld;
  beforeAll(async () => {
    // One source with a rate limit of its own, for the 429s (no other test here sends as it).
    world = await startWorld(
      { RATE_LIMITS: JSON.stringify({ limited_source: { rateLimit: 1, burstLimit: 1 } }) },
      { rateLimitClock: () => 0 },
    );
  });
  afterAll(async () => {
    await world?.close();
  });

  it('200, its delivery and its four export files', async () => {
    const res = await world.post({ ...SEED_REQUEST, metadata: { crm_id: 'D-1' } });
    expect(res.status).toBe(200);
    expect((await validator('docs/openapi.json', 'ConversationAnswer'))(res.body)).toBe('valid');
    const delivered = world.receiver.received.at(-1)!.body;
    expect((await validator('docs/schemas/delivery.schema.json'))(delivered)).toBe('valid');
    expect((await validator('docs/openapi.json', 'Delivery'))(delivered)).toBe('valid');
    for (const file of EXPORT_FILES) {
      const schema = await validator(`docs/schemas/${file.replace(/\.json$/, '.schema.json')}`);
      expect(schema(await world.getJson(exportKey(res.body.conversation_id, file))), file).toBe('valid');
    }
  });

  it('the error bodies and the health answer', async () => {
    const error = await validator('docs/openapi.json', 'Error');
    const invalid = await world.post({ ...SEED_REQUEST, extra: true });
    expect(invalid.status).toBe(400);
    expect(error(invalid.body)).toBe('valid');
    const notJson = await fetch(`${world.gateway.url}/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{',
    });
    expect(error(await notJson.json())).toBe('valid');
    const wrongMethod = await fetch(`${world.gateway.url}/webhook`);
    expect(error(await wrongMethod.json())).toBe('valid');
    const health = await fetch(`${world.gateway.url}/health`);
    expect((await validator('docs/openapi.json', 'Health'))(await health.json())).toBe('valid');
  });

  it('every status, header and body of POST /webhook, GET /conversations/{id} and their refusals is declared', async () => {
    const post = async (body: unknown, headers: Record<string, string> = {}) => {
      const res = await world.post(body as object, headers);
      return { ...res, body: res.body as any };
    };
    expect(await declared('post', '/webhook', await post(SEED_REQUEST))).toBe('declared');
    expect(await declared('post', '/webhook', await post({ ...SEED_REQUEST, extra: 1 }))).toBe('declared');
    world.agent.behave(() => ({ held: true, payload: { response: 'held' } }));
    const accepted = await post(SEED_REQUEST, { prefer: 'respond-async' });
    expect(accepted.status).toBe(202);
    expect(await declared('post', '/webhook', accepted)).toBe('declared');
    const status = async (url: string) => {
      const res = await fetch(url);
      return { status: res.status, headers: res.headers, body: (await res.json()) as any };
    };
    const running = await status(accepted.body.status_url);
    expect(running.body.status).toBe('running');
    expect(await declared('get', '/conversations/{conversationId}', running)).toBe('declared');
    world.agent.letGo();
    await world.gateway.idle();
    const completed = await status(accepted.body.status_url);
    expect(completed.body.status).toBe('completed');
    expect(await declared('get', '/conversations/{conversationId}', completed)).toBe('declared');
    world.agent.behave(() => ({ functionError: 'Unhandled', payload: { errorType: 'Boom', errorMessage: 'no' } }));
    const failing = await post(SEED_REQUEST, { prefer: 'respond-async' });
    await world.gateway.idle();
    world.agent.reset();
    const failed = await status(failing.body.status_url);
    expect(failed.body.status).toBe('failed');
    expect(await declared('get', '/conversations/{conversationId}', failed)).toBe('declared');
    const statusBase = `${world.gateway.url}/conversations/${accepted.body.conversation_id}`;
    expect(await declared('get', '/conversations/{conversationId}', await status(statusBase))).toBe('declared');
    expect(
      await declared('get', '/conversations/{conversationId}', await status(`${statusBase}?source_system=other`)),
    ).toBe('declared');
    const limited = { ...SEED_REQUEST, source_system: 'limited_source' };
    expect((await post(limited)).status).toBe(200);
    const refused = await post(limited);
    expect(refused.status).toBe(429);
    expect(await declared('post', '/webhook', refused)).toBe('declared');
    const rebound = await postWithHost(world.gateway.url, 'rebound.example', JSON.stringify(SEED_REQUEST));
    expect(rebound.status).toBe(403);
    expect(await declared('post', '/webhook', rebound)).toBe('declared');
  });
});
