import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { runMain } from '../../support/cli.ts';

const SECRET = 'whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=';

/** `webhook-gateway sign` refuses what would only sign a request the gateway then refuses (docs/security.md). */
describe('sign arguments', () => {
  it('--id takes only a webhook-id the gateway takes: 1 to 255 visible ASCII characters', async () => {
    for (const id of ['', 'has space', 'x'.repeat(256), 'caf\u00e9']) {
      const res = await runMain(['sign', '--secret', SECRET, '--data', '{}', '--id', id]);
      expect(res.code, id).toBe(1);
      expect(res.stdout, id).toBe('');
      expect(res.stderr, id).toMatch(/^webhook-gateway: --id must be 1 to 255 visible ASCII characters/);
    }
    const ok = await runMain(['sign', '--secret', SECRET, '--data', '{}', '--id', 'msg_retry-1', '--json']);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)['webhook-id']).toBe('msg_retry-1');
  });

  it('a body that is not JSON is signed, and said to be answered 400 INVALID_JSON', async () => {
    // Before, it was signed without a word, and the 400 that followed read as a signature problem.
    const res = await runMain(['sign', '--secret', SECRET, '--data', '{"query": "q",}']);
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/^-H webhook-id:msg_\S+ -H webhook-timestamp:\d+ -H webhook-signature:v1,\S+\n$/);
    expect(res.stderr).toBe(
      '--data is not JSON: the gateway answers it 400 INVALID_JSON whatever its signature (signed as given)\n',
    );
    expect((await runMain(['sign', '--secret', SECRET, '--data', '{}'])).stderr).toBe('');
  });

  it('--secret (or WEBHOOK_SECRET) takes only a secret the gateway takes, said in its words', async () => {
    // Before: "could not sign: Base64Coder: incorrect padding" for whsec_abc, and whsec_YWJj (too short for the
    // gateway's INBOUND_WEBHOOK_SECRETS) signed.
    for (const secret of ['whsec_abc', 'whsec_YWJj', 'nope']) {
      const res = await runMain(['sign', '--secret', secret, '--data', '{}']);
      expect(res.code, secret).toBe(1);
      expect(res.stdout, secret).toBe('');
      expect(res.stderr, secret).toBe(
        'webhook-gateway: --secret: secrets must be "whsec_" followed by base64 (at least 16 characters)\n',
      );
    }
    const fromEnv = await runMain(['sign', '--data', '{}'], { WEBHOOK_SECRET: 'whsec_abc' });
    expect(fromEnv.stderr).toMatch(/^webhook-gateway: WEBHOOK_SECRET: secrets must be "whsec_"/);
  });

  it('--status takes only a conversation id, which the status route needs', async () => {
    for (const id of ['nope', 'webhook_20261129_123213_testing_phase3valid_a0ci3ntgci/../x']) {
      const res = await runMain(['sign', '--secret', SECRET, '--status', id]);
      expect(res.code, id).toBe(1);
      expect(res.stdout, id).toBe('');
      expect(res.stderr, id).toMatch(/^webhook-gateway: --status takes a conversation id/);
    }
    const ok = await runMain([
      'sign',
      '--secret',
      SECRET,
      '--status',
      'webhook_20261129_123213_testing_phase3valid_a0ci3ntgci',
    ]);
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/^-H webhook-id:msg_\S+ -H webhook-timestamp:\d+ -H webhook-signature:v1,\S+\n$/);
  });

  it('--file that cannot be read is named with the reason, not as a bare system error', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'sign-file-'));
    const missing = await runMain(['sign', '--secret', SECRET, '--file', path.join(dir, 'body.json')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(
      `webhook-gateway: --file ${path.join(dir, 'body.json')} cannot be read (no such file): give the file holding the exact body you will send\n`,
    );
    const folder = await runMain(['sign', '--secret', SECRET, '--file', dir]);
    expect(folder.stderr).toMatch(/cannot be read \(it is a folder\)/);
    expect(folder.stderr).not.toMatch(/EISDIR|ENOENT/);
    await rm(dir, { recursive: true });
  });
});
