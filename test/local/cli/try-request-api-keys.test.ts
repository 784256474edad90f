import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tryRequest } from '../../../local/cli/try-request.ts';
import { startWorld, type TestWorld } from '../../support/gateway.ts';
import { runPrinted } from '../../support/printed-curl.ts';

/** The banner's `Try:` request on a gateway with API keys (API_KEYS): it sends a key, of a source it may act as. */
const SECRET = `whsec_${Buffer.from('try-request-keyed-secret'.padEnd(32, '-')).toString('base64')}`;
const keys = { crm_system: 'crm-system-local-key-0001', billing_system: 'billing-system-local-key-02' };
const inboundSecrets = { billing_system: [SECRET] };
const answered = { success: true, tracking: { delivery_status: 'delivered' } };
let world: TestWorld;
beforeAll(async () => {
  world = await startWorld({ API_KEYS: JSON.stringify(keys), INBOUND_WEBHOOK_SECRETS: JSON.stringify(inboundSecrets) });
});
afterAll(async () => {
  delete process.env.REQUIRE_SIGNED_WEBHOOKS;
  delete process.env.API_KEYS;
  await world?.close();
});

describe("the banner's Try: request with API keys", () => {
  const policy = { inboundSecrets, requireSigned: false, apiKeySources: Object.keys(keys) };

  it('sends the key of a source that need not sign', async () => {
    const lines = tryRequest(world.gateway.url, policy);
    expect(lines[0]).toBe("Try:  API_KEY=…   # crm_system's key in API_KEYS");
    expect(await runPrinted(lines, { keys })).toMatchObject(answered);
  });

  it('when every request must be signed: the key and the signature of a source with both', async () => {
    process.env.REQUIRE_SIGNED_WEBHOOKS = 'true';
    const lines = tryRequest(world.gateway.url, { ...policy, requireSigned: true });
    expect(lines.join('\n')).toContain('"source_system":"billing_system"');
    expect(await runPrinted(lines, { keys, secret: SECRET })).toMatchObject(answered);
  });
});
