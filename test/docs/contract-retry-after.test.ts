import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FAILURE_HEADERS, STORAGE_UNAVAILABLE_ERROR } from '../../functions/domain/gateway-contract.ts';
import { PROJECT_ROOT } from '../../local/paths.ts';
import { STORAGE_RETRY_AFTER_SECONDS } from '../../local/server/storage-failure.ts';

/**
 * 503 STORAGE_UNAVAILABLE asks for a retry after 2 s on AWS and 30 s locally, on purpose (a throttled or stalled AWS
 * call passes in seconds; a local data folder that refuses waits for its operator): docs/contract.md#errors says both,
 * with why, so that a caller who reads one does not take the other for a bug.
 */
const CONTRACT = readFileSync(path.join(PROJECT_ROOT, 'docs', 'contract.md'), 'utf8');
const row = CONTRACT.split('\n').find((line) => /^\| 503 +\| `STORAGE_UNAVAILABLE`/.test(line)) ?? '';

describe('docs/contract.md: Retry-After of 503 STORAGE_UNAVAILABLE', () => {
  it('names the local Retry-After and why it is longer', () => {
    expect(row).toContain(`locally, the gateway could not write its data folder`);
    expect(row).toContain(`(\`Retry-After: ${STORAGE_RETRY_AFTER_SECONDS}\`, its operator's to mend;`);
  });

  it('names the AWS Retry-After, the one the response templates set', () => {
    const aws = FAILURE_HEADERS[STORAGE_UNAVAILABLE_ERROR]?.['retry-after'];
    expect(aws).toBeDefined();
    expect(row).toContain(`the key freed, \`Retry-After: ${aws}\` (such a refusal passes in seconds)`);
    expect(Number(aws)).toBeLessThan(STORAGE_RETRY_AFTER_SECONDS);
  });
});
