import { afterEach, describe, expect, it } from 'vitest';
import { statusSigningPayload } from '../../functions/domain/conversation-status.ts';
import { signOutbound } from '../../functions/domain/signatures.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';

/**
 * What a status read costs of its source's rate limit and quota (docs/contract.md#get-conversationsid): on AWS the
 * API key's usage plan counts every request of the key, GET or HEAD, whatever the function answers; the local
 * gateway, with API_KEYS, counts them the same way. Without API keys (local only: on AWS a limit comes with a key) the
 * named source is charged, and a read refused for its signature gives its token back, so a sender that cannot sign
 * for a source cannot use up that source's budget.
 */
const secret = (seed: string) => `whsec_${Buffer.from(seed.padEnd(32, seed)).toString('base64')}`;
const KEYED_SECRET = secret('keyed-source');
const OPEN_SECRET = secret('open-source');
const KEY = 'key-of-keyed-source-00001';
/** Five requests a day each: the test counts them. */
const LIMIT = { rateLimit: 100, burstLimit: 100, quotaPerDay: 5 };

let world: TestWorld;
afterEach(async () => {
  await world?.close();
});

const signedRead = (key: string, id: string) =>
  signOutbound(
    key,
    `get_${Math.random().toString(36).slice(2)}`,
    new Date(),
    statusSigningPayload(id),
  ) as unknown as Record<string, string>;

/** An asynchronous conversation of `source`, signed with `key` (one request of its quota), finished. */
async function started(world: TestWorld, source: string, key: string, headers: Record<string, string> = {}) {
  const body = JSON.stringify({ ...SEED_REQUEST, source_system: source });
  const signed = signOutbound(key, `msg_${Math.random().toString(36).slice(2)}`, new Date(), body);
  const accepted = await world.post(body, {
    prefer: 'respond-async',
    ...headers,
    ...(signed as unknown as Record<string, string>),
  });
  expect(accepted.status).toBe(202);
  await world.gateway.idle();
  const id = accepted.body.conversation_id as string;
  return { id, url: `${world.gateway.url}/conversations/${id}?source_system=${source}` };
}

describe('GET and HEAD /conversations/{id} with API keys: every request of the key counts, as a usage plan counts', () => {
  it('HEAD answers as GET (signed the same way, no body) and spends a request; a 401 spends one too', async () => {
    // One gateway at a time: the status function reads the process's environment.
    world = await startWorld({
      API_KEYS: JSON.stringify({ keyed_source: KEY }),
      INBOUND_WEBHOOK_SECRETS: JSON.stringify({ keyed_source: KEYED_SECRET }),
      RATE_LIMITS: JSON.stringify({ keyed_source: LIMIT }),
    });
    const apiKey = { 'x-api-key': KEY };
    const { id, url } = await started(world, 'keyed_source', KEYED_SECRET, apiKey); // 1 of 5
    const get = await fetch(url, { headers: { ...apiKey, ...signedRead(KEYED_SECRET, id) } }); // 2
    expect(get.status).toBe(200);
    const head = await fetch(url, { method: 'HEAD', headers: { ...apiKey, ...signedRead(KEYED_SECRET, id) } }); // 3
    expect(head.status).toBe(200);
    for (const name of ['content-type', 'cache-control', 'content-length'])
      expect(head.headers.get(name)).toBe(get.headers.get(name));
    expect(await head.text()).toBe('');
    // The signature a GET takes (over `GET /conversations/<id>`) is the one a HEAD takes: unsigned, 401.
    const unsignedHead = await fetch(url, { method: 'HEAD', headers: apiKey }); // 4
    expect(unsignedHead.status).toBe(401);
    const unsigned = await fetch(url, { headers: apiKey }); // 5
    expect(unsigned.status).toBe(401);
    // Before, the two 401s gave their requests back (locally only): this read got 200 where AWS answers 429.
    const over = await fetch(url, { headers: { ...apiKey, ...signedRead(KEYED_SECRET, id) } });
    expect(over.status).toBe(429);
    expect(((await over.json()) as any).error.code).toBe('RATE_LIMITED');
  });
});

describe('POST /webhook with API keys: a request refused for its signature spends its request too', () => {
  it('two 401s and three accepted posts use up a quota of five, as the usage plan counts them', async () => {
    world = await startWorld({
      API_KEYS: JSON.stringify({ keyed_source: KEY }),
      INBOUND_WEBHOOK_SECRETS: JSON.stringify({ keyed_source: KEYED_SECRET }),
      RATE_LIMITS: JSON.stringify({ keyed_source: LIMIT }),
    });
    const apiKey = { 'x-api-key': KEY };
    const body = JSON.stringify({ ...SEED_REQUEST, source_system: 'keyed_source' });
    for (let i = 0; i < 2; i++) expect((await world.post(body, apiKey)).status).toBe(401); // unsigned: 1, 2
    for (let i = 0; i < 3; i++) await started(world, 'keyed_source', KEYED_SECRET, apiKey); // 3, 4, 5
    // Before, the 401s gave their requests back (locally only): this post was accepted where AWS answers 429.
    const signed = signOutbound(KEYED_SECRET, 'msg_over', new Date(), body) as unknown as Record<string, string>;
    const over = await world.post(body, { ...apiKey, ...signed });
    expect(over.status).toBe(429);
    expect(over.body.error.code).toBe('RATE_LIMITED');
  });
});

describe('GET /conversations/{id} without API keys (local only): the named source is charged', () => {
  it('a read refused for its signature gives its request back: forged reads cannot use up its quota', async () => {
    world = await startWorld({
      INBOUND_WEBHOOK_SECRETS: JSON.stringify({ open_source: OPEN_SECRET }),
      RATE_LIMITS: JSON.stringify({ open_source: LIMIT }),
    });
    const { id, url } = await started(world, 'open_source', OPEN_SECRET); // 1 of 5
    for (let i = 0; i < 6; i++) expect((await fetch(url)).status).toBe(401);
    for (let i = 0; i < 4; i++) expect((await fetch(url, { headers: signedRead(OPEN_SECRET, id) })).status).toBe(200);
    expect((await fetch(url, { headers: signedRead(OPEN_SECRET, id) })).status).toBe(429);
  });

  it('source_system given twice charges the source that is read (the last, as API Gateway passes it), not the first', async () => {
    // Before, the first was charged and the last read: reads "as" an unsigned source (404, no refund) used up a
    // signed source's quota without its secret.
    world = await startWorld({
      INBOUND_WEBHOOK_SECRETS: JSON.stringify({ open_source: OPEN_SECRET }),
      RATE_LIMITS: JSON.stringify({ open_source: LIMIT }),
    });
    const { id, url } = await started(world, 'open_source', OPEN_SECRET); // 1 of 5
    const twice = `${world.gateway.url}/conversations/${id}?source_system=open_source&source_system=unsigned_source`;
    for (let i = 0; i < 6; i++) expect((await fetch(twice)).status).toBe(404);
    for (let i = 0; i < 4; i++) expect((await fetch(url, { headers: signedRead(OPEN_SECRET, id) })).status).toBe(200);
  });
});
