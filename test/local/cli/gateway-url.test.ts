import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { gatewayUrl } from '../../../local/cli/shared.ts';

/** Where `deliveries redrive`/`resend` find the running gateway: --url, GATEWAY_URL, gateway.json, or PORT. */
describe('the gateway URL of the CLI', () => {
  let dataDir: string;
  const saved = { GATEWAY_URL: process.env.GATEWAY_URL, PORT: process.env.PORT };
  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'gateway-url-'));
  });
  afterAll(async () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    await rm(dataDir, { recursive: true, force: true });
  });

  it('an empty GATEWAY_URL counts as unset, as every variable does (docs/configuration.md)', async () => {
    process.env.PORT = '41234';
    process.env.GATEWAY_URL = '';
    expect(await gatewayUrl(undefined, dataDir)).toBe('http://127.0.0.1:41234');
    process.env.GATEWAY_URL = 'http://127.0.0.1:9/';
    expect(await gatewayUrl(undefined, dataDir)).toBe('http://127.0.0.1:9');
  });
});
