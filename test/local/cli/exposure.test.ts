import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { exposureLines } from '../../../local/cli/exposure.ts';
import { shownPath } from '../../../local/cli/shared.ts';
import { NEW_USER_START_ENV, startCli } from '../../support/cli.ts';

let dataDir: string;
beforeEach(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-exposure-'));
});
afterEach(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('the start banner says who can reach the gateway', () => {
  it('names a path under the current folder relative to it, any other absolute', () => {
    expect(shownPath(path.join(process.cwd(), '.data', 's3'))).toBe(path.join('.data', 's3'));
    expect(shownPath(process.cwd())).toBe('.');
    expect(shownPath(path.join(path.dirname(process.cwd()), 'elsewhere'))).toBe(
      path.join(path.dirname(process.cwd()), 'elsewhere'),
    );
  });

  it('on loopback (the default) it adds nothing', () => {
    for (const host of ['127.0.0.1', 'localhost', '::1'])
      expect(exposureLines(host, { requireSigned: false, apiKeys: false })).toEqual([]);
  });

  it('on every interface it says so, and warns while nothing proves a caller', () => {
    const open = exposureLines('0.0.0.0', { requireSigned: false, apiKeys: false });
    expect(open[0]).toMatch(/and on every interface \(HOST=0\.0\.0\.0\): other machines can call POST \/webhook/);
    expect(open[1]).toMatch(/warning: no request needs a signature or an API key.*REQUIRE_SIGNED_WEBHOOKS=true/);
    expect(exposureLines('::', { requireSigned: true, apiKeys: false })).toHaveLength(1);
    expect(exposureLines('0.0.0.0', { requireSigned: false, apiKeys: true })).toHaveLength(1);
  });

  it('behind a reverse proxy (PUBLIC_URL) it names the public base, and the Host the public routes take on loopback', () => {
    const publicUrl = { base: 'https://example.com/gw', host: 'example.com' };
    expect(exposureLines('127.0.0.1', { requireSigned: true, apiKeys: false }, publicUrl)).toEqual([
      '  public https://example.com/gw (PUBLIC_URL): every status URL is under it; POST /webhook, GET /conversations/{id} and GET /health answer Host example.com too',
    ]);
    const open = exposureLines('0.0.0.0', { requireSigned: true, apiKeys: false }, publicUrl);
    expect(open[0]).toBe('  public https://example.com/gw (PUBLIC_URL): every status URL is under it');
    expect(open[1]).toMatch(/and on every interface/);
  });

  it('`webhook-gateway start` with HOST=0.0.0.0 prints it under the loopback URL', async () => {
    const gateway = await startCli({ ...NEW_USER_START_ENV, HOST: '0.0.0.0', LOCAL_DATA_DIR: dataDir });
    try {
      const lines = gateway.output().split('\n');
      const at = lines.findIndex((l) => l.startsWith('webhook-gateway (local) listening on http://127.0.0.1:'));
      expect(lines[at + 1]).toMatch(/^ {2}and on every interface \(HOST=0\.0\.0\.0\)/);
      expect(lines[at + 2]).toMatch(/^ {2}warning: no request needs a signature or an API key/);
      // A data folder outside the current one is named as it is, not as `../../tmp/…`.
      expect(gateway.output()).toContain(`(files under ${path.join(dataDir, 's3')})`);
    } finally {
      const exited = new Promise((r) => gateway.child.once('exit', r));
      gateway.child.kill('SIGINT');
      await exited;
    }
  });
});
