import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tryRequest } from '../../../local/cli/try-request.ts';
import { PROJECT_ROOT } from '../../../local/paths.ts';
import { startWorld, type TestWorld } from '../../support/gateway.ts';

/** The start banner's `Try:` request, run as printed against a gateway configured the same way. */
const SECRET = `whsec_${Buffer.from('try-request-secret'.padEnd(32, '-')).toString('base64')}`;
const BIN = path.join(PROJECT_ROOT, 'bin', 'webhook-gateway.mjs');

const secrets = { testing_system: [SECRET] };
let world: TestWorld;
beforeAll(async () => {
  world = await startWorld({ INBOUND_WEBHOOK_SECRETS: JSON.stringify(secrets) });
});
afterAll(async () => {
  delete process.env.REQUIRE_SIGNED_WEBHOOKS;
  await world?.close();
});

async function runPrinted(lines: string[]): Promise<{ success?: boolean; tracking?: unknown }> {
  const script = lines
    .join('\n')
    .replace(/^Try:/, '')
    .replaceAll('SECRET=whsec_…', `SECRET=${SECRET}`)
    .replaceAll('npx webhook-gateway', `"${process.execPath}" "${BIN}"`);
  const { stdout } = await promisify(execFile)('bash', ['-c', script]);
  return JSON.parse(stdout);
}

describe("the banner's Try: request", () => {
  it('names a source without an inbound secret, so the unsigned curl gets 200', async () => {
    const lines = tryRequest(world.gateway.url, secrets, false);
    expect(lines.join('\n')).not.toContain('"source_system":"testing_system"');
    expect(await runPrinted(lines)).toMatchObject({ success: true, tracking: { delivery_status: 'delivered' } });
  });

  it('when every request must be signed, signs it with webhook-gateway sign', async () => {
    process.env.REQUIRE_SIGNED_WEBHOOKS = 'true'; // read per request, as on AWS per invocation
    const lines = tryRequest(world.gateway.url, secrets, true);
    expect(lines.join('\n')).toContain('webhook-gateway sign --secret "$SECRET"');
    expect(await runPrinted(lines)).toMatchObject({ success: true, tracking: { delivery_status: 'delivered' } });
  });

  it('says so when nothing can be accepted', () => {
    expect(tryRequest('http://127.0.0.1:1', {}, true)).toEqual([
      'Try:  nothing: REQUIRE_SIGNED_WEBHOOKS is true and INBOUND_WEBHOOK_SECRETS names no source to sign for',
    ]);
  });
});
