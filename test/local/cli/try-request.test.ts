import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tryRequest } from '../../../local/cli/try-request.ts';
import { startWorld, type TestWorld } from '../../support/gateway.ts';
import { runPrinted } from '../../support/printed-curl.ts';

/**
 * The start banner's `Try:` request, run as printed (the placeholders filled in as its comments say) against a
 * gateway configured the same way. API_KEYS is read once at start: those cases run on a gateway of their own
 * (try-request-api-keys.test.ts).
 */
const SECRET = `whsec_${Buffer.from('try-request-secret'.padEnd(32, '-')).toString('base64')}`;
const secrets = { testing_system: [SECRET] };
const policy = { inboundSecrets: secrets, requireSigned: false, apiKeySources: [] };
const answered = { success: true, tracking: { delivery_status: 'delivered' } };
let world: TestWorld;
beforeAll(async () => {
  world = await startWorld({ INBOUND_WEBHOOK_SECRETS: JSON.stringify(secrets) });
});
afterAll(async () => {
  delete process.env.REQUIRE_SIGNED_WEBHOOKS;
  await world?.close();
});

describe("the banner's Try: request", () => {
  it('names a source without an inbound secret, so the unsigned curl gets 200', async () => {
    const lines = tryRequest(world.gateway.url, policy);
    expect(lines.join('\n')).not.toContain('"source_system":"testing_system"');
    expect(await runPrinted(lines, { secret: SECRET })).toMatchObject(answered);
  });

  it('when every request must be signed, signs it with webhook-gateway sign', async () => {
    process.env.REQUIRE_SIGNED_WEBHOOKS = 'true'; // read per request, as on AWS per invocation
    const lines = tryRequest(world.gateway.url, { ...policy, requireSigned: true });
    expect(lines.join('\n')).toContain('webhook-gateway sign --secret "$SECRET"');
    expect(await runPrinted(lines, { secret: SECRET })).toMatchObject(answered);
  });

  it('says so when nothing can be accepted', () => {
    expect(tryRequest('http://127.0.0.1:1', { inboundSecrets: {}, requireSigned: true, apiKeySources: [] })).toEqual([
      'Try:  nothing: REQUIRE_SIGNED_WEBHOOKS is true and no source has a secret in INBOUND_WEBHOOK_SECRETS',
    ]);
  });
});
