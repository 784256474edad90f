import { readFileSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MAX_EXECUTION_INPUT_BYTES } from '../../functions/domain/gateway-contract.ts';
import { PROJECT_ROOT } from '../../local/paths.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';

/**
 * The body sizes docs/contract.md#post-webhook promises, sent to the running gateway: the limit is the execution
 * input's, so a body of exactly the Step Functions limit is refused, and the smaller size the page names is taken.
 */
const CONTRACT = readFileSync(path.join(PROJECT_ROOT, 'docs', 'contract.md'), 'utf8');
const POST_WEBHOOK = CONTRACT.slice(CONTRACT.indexOf('### `POST /webhook`'), CONTRACT.indexOf('| field '));
const prose = POST_WEBHOOK.replace(/\s+/g, ' ');
const DEPLOY = readFileSync(path.join(PROJECT_ROOT, 'docs', 'deploy.md'), 'utf8').replace(/\s+/g, ' ');

let world: TestWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});

/** SEED_REQUEST padded with spaces after its opening brace to exactly `bytes` bytes. */
function bodyOf(bytes: number): string {
  const json = JSON.stringify(SEED_REQUEST);
  return `{${' '.repeat(bytes - json.length)}${json.slice(1)}`;
}

describe('docs/contract.md: the body size limit', () => {
  it('names the Step Functions input limit in bytes', () => {
    const [, limit] = /input limit of 256 KB \(([\d,]+) bytes\)/.exec(prose) ?? [];
    expect(Number(limit?.replaceAll(',', ''))).toBe(MAX_EXECUTION_INPUT_BYTES);
  });

  it('a body of exactly 256 KB is refused with 413, as the page says', async () => {
    expect(prose).toContain('a body of exactly 256 KB is refused (413)');
    const res = await world.post(bodyOf(256 * 1024));
    expect(res.status).toBe(413);
    expect(res.body).toMatchObject({ success: false, error: { code: 'PAYLOAD_TOO_LARGE' } });
  });

  // Before, "the body and headers must fit in 262144 bytes" for a body of 140 KB, with nothing saying why it did not.
  it('a body under 256 KB that escaping grows over it is refused, the message saying the body counts escaped', async () => {
    expect(CONTRACT).toContain('so 140 KB of newlines is over');
    const json = JSON.stringify(SEED_REQUEST);
    const res = await world.post(`{${'\n'.repeat(140 * 1024)}${json.slice(1)}`);
    expect(res.status).toBe(413);
    expect(res.body.error.message).toBe(
      `Request too large: the body and headers must fit in ${MAX_EXECUTION_INPUT_BYTES} bytes, the Step Functions input limit, counted as the escaped JSON string the body becomes there (each newline, tab, quote or backslash takes 2 bytes)`,
    );
  });

  it('a body of the size the page says is taken runs', async () => {
    const [, kb] = /one of (\d+) KB with the usual headers is taken/.exec(prose) ?? [];
    expect(kb).toBeDefined();
    const res = await world.post(bodyOf(Number(kb) * 1024));
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ success: true });
  });

  it('deploy.md states the same limit as contract.md (no "bodies over 256 KB": a body of 256 KB is refused too)', () => {
    expect(DEPLOY).not.toMatch(/Bodies over 256 KB/i);
    expect(DEPLOY).toContain('execution input exceeds 256 KB (262,144 bytes, the Step Functions input limit)');
    expect(DEPLOY).toContain('a body of exactly 256 KB is refused and one of 255 KB with the usual headers is taken');
    expect(prose).toContain('one of 255 KB with the usual headers is taken');
  });
});
