import { request as httpRequest } from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayErrorResult } from '../../functions/domain/gateway-contract.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';

let world: TestWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});

async function bucketSize() {
  return (await world.listKeys()).length;
}

describe('HTTP contract of the local gateway (docs/contract.md)', () => {
  it('GET /health → 200 {status: ok} without running a conversation', async () => {
    const before = world.agent.invocations.length;
    const res = await fetch(`${world.gateway.url}/health`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ status: 'ok' });
    expect(world.agent.invocations.length).toBe(before);
  });

  it('unknown route → 404 NOT_FOUND; wrong method → 405 with Allow', async () => {
    const missing = await fetch(`${world.gateway.url}/nope`);
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ success: false, error: { code: 'NOT_FOUND' } });
    const wrong = await fetch(`${world.gateway.url}/webhook`);
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST');
    expect(await wrong.json()).toMatchObject({ success: false, error: { code: 'METHOD_NOT_ALLOWED' } });
    const del = await fetch(`${world.gateway.url}/health`, { method: 'DELETE' });
    expect(del.status).toBe(405);
    // As on AWS (infra/constructs/webhook-api.ts): the read routes take GET and HEAD, and say so.
    expect(del.headers.get('allow')).toBe('GET, HEAD');
    const put = await fetch(`${world.gateway.url}/conversations/webhook_20261201_100000_crm_p_head1`, {
      method: 'PUT',
    });
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')).toBe('GET, HEAD');
  });

  it('HEAD /health and HEAD /conversations/{id} answer as GET does, without the body (as on AWS)', async () => {
    const health = await fetch(`${world.gateway.url}/health`, { method: 'HEAD' });
    expect(health.status).toBe(200);
    expect(health.headers.get('content-type')).toBe('application/json; charset=utf-8');
    expect(await health.text()).toBe('');
    const url = `${world.gateway.url}/conversations/webhook_20261201_100000_crm_p_head1?source_system=crm`;
    const [get, head] = await Promise.all([fetch(url), fetch(url, { method: 'HEAD' })]);
    expect(head.status).toBe(get.status);
    expect(head.headers.get('cache-control')).toBe(get.headers.get('cache-control'));
    expect(await head.text()).toBe('');
  });

  it('malformed JSON → 400 INVALID_JSON, nothing written, agent not called', async () => {
    const objects = await bucketSize();
    const calls = world.agent.invocations.length;
    const res = await world.post('{"query": "deals", "source_system": ');
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ success: false, error: { code: 'INVALID_JSON' } });
    expect(res.body.error.message).toMatch(/not valid JSON/);
    expect(await bucketSize()).toBe(objects);
    expect(world.agent.invocations.length).toBe(calls);
  });

  const INVALID: [string, unknown, string[]][] = [
    ['missing query', { source_system: 'a', source_process: 'b' }, ['query']],
    ['blank query', { ...SEED_REQUEST, query: '   ' }, ['query']],
    ['query not a string', { ...SEED_REQUEST, query: 42 }, ['query']],
    ['missing source_system', { query: 'q', source_process: 'b' }, ['source_system']],
    ['missing source_process', { query: 'q', source_system: 'a' }, ['source_process']],
    ['path in source_system', { ...SEED_REQUEST, source_system: '../../etc' }, ['source_system']],
    ['bad timestamp', { ...SEED_REQUEST, timestamp: 'yesterday' }, ['timestamp']],
    ['unknown webhook_type', { ...SEED_REQUEST, webhook_type: 'sales' }, ['webhook_type']],
    ['metadata not an object', { ...SEED_REQUEST, metadata: 'x' }, ['metadata']],
    ['unknown field', { ...SEED_REQUEST, execution_name: 'x' }, ['execution_name']],
    ['array body', [SEED_REQUEST], ['(body)']],
    ['null body', null, ['(body)']],
    ['several errors at once', { query: '', source_system: 1 }, ['query', 'source_system', 'source_process']],
  ];
  it.each(INVALID)('%s → 400 VALIDATION_ERROR with field details, nothing written', async (_name, body, fields) => {
    const objects = await bucketSize();
    const res = await world.post(JSON.stringify(body));
    expect(res.status).toBe(400);
    expect(res.body.success).toBe(false);
    expect(res.body.error.code).toBe('VALIDATION_ERROR');
    expect(res.body.error.details.map((d: { field: string }) => d.field).sort()).toEqual([...fields].sort());
    for (const d of res.body.error.details) expect(d.message).toEqual(expect.any(String));
    expect(await bucketSize()).toBe(objects);
  });

  it('body over 256 KB → 413 PAYLOAD_TOO_LARGE, nothing written', async () => {
    const objects = await bucketSize();
    const res = await world.post({ ...SEED_REQUEST, metadata: { blob: 'x'.repeat(300_000) } });
    expect(res.status).toBe(413);
    expect(res.body).toMatchObject({ success: false, error: { code: 'PAYLOAD_TOO_LARGE' } });
    expect(await bucketSize()).toBe(objects);
  });

  it('a body that fits but whose execution input would not → 413 too', async () => {
    const quotes = '"'.repeat(140_000);
    const res = await world.post(JSON.stringify({ ...SEED_REQUEST, query: quotes }));
    expect(res.status).toBe(413);
    // The answer API Gateway gives: it names the execution input's limit, never says a 140 KB body was over 256 KB.
    expect(res.body).toEqual(gatewayErrorResult('PAYLOAD_TOO_LARGE').body);
    expect(res.body.error.message).not.toMatch(/body must be at most/);
  });

  it('a 413 is answered even when the client sends the body without Content-Length (chunked)', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(
        `${world.gateway.url}/webhook`,
        { method: 'POST', headers: { 'content-type': 'application/json' } },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      for (let i = 0; i < 40; i++) req.write('x'.repeat(10_000));
      req.end();
    });
    expect(status).toBe(413);
  });

  it('wrong content type → 415 UNSUPPORTED_MEDIA_TYPE', async () => {
    const res = await fetch(`${world.gateway.url}/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: JSON.stringify(SEED_REQUEST),
    });
    expect(res.status).toBe(415);
    expect(await res.json()).toMatchObject({ success: false, error: { code: 'UNSUPPORTED_MEDIA_TYPE' } });
  });

  it('no Content-Type at all is read as JSON, as API Gateway reads it (its default media type)', async () => {
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = httpRequest(`${world.gateway.url}/webhook`, { method: 'POST' }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (chunk) => (body += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      });
      req.on('error', reject);
      req.end(JSON.stringify(SEED_REQUEST));
    });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.body)).toMatchObject({ success: true });
  });

  it('application/json with a charset parameter is accepted', async () => {
    const res = await world.post(SEED_REQUEST, { 'content-type': 'application/json; charset=utf-8' });
    expect(res.status).toBe(200);
  });

  it('every response carries x-request-id, and the gateway keeps serving after bad requests', async () => {
    await world.post('{{{{');
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(200);
    expect(res.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('the Authorization header never reaches the workflow input', async () => {
    const res = await world.post(SEED_REQUEST, { authorization: 'Bearer secret-token', 'user-agent': 'crm/1.0' });
    const [execution] = await world.gateway.executions.executions(res.body.conversation_id);
    const input = execution!.input as { headers: Record<string, string> };
    expect(input.headers['user-agent']).toBe('crm/1.0');
    expect(JSON.stringify(execution)).not.toContain('secret-token');
  });
});
