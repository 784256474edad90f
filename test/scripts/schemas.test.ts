import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import addFormats from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EXPORT_FILES, exportKey } from '../../functions/domain/export-formats.ts';
import { PROJECT_ROOT } from '../../local/paths.ts';
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

describe('the gateway answers, delivers and exports what the schemas say', () => {
  let world: TestWorld;
  beforeAll(async () => {
    world = await startWorld();
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
});
