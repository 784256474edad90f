import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FAILURE_HEADERS, STORAGE_UNAVAILABLE_ERROR } from '../../functions/domain/gateway-contract.ts';
import { RETRY_AFTER_SECONDS } from '../../infra/api-templates.ts';
import { PROJECT_ROOT } from '../../local/paths.ts';
import { RateLimiter } from '../../local/server/rate-limiter.ts';
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

/**
 * 429 RATE_LIMITED over a daily quota: the stack's gateway response says `Retry-After: 3600` (a constant: gateway
 * responses compute none), while the local gateway says the seconds until 00:00 UTC, when both quotas reset. The row
 * said only "`Retry-After` says when to come back", so a caller who met 17,569 locally and 3600 on AWS (or the other way
 * round) took one for a bug. It now gives both, and why.
 */
const RATE_ROW = CONTRACT.split('\n').find((line) => /^\| 429 +\| `RATE_LIMITED`/.test(line)) ?? '';

describe('docs/contract.md: Retry-After of 429 RATE_LIMITED', () => {
  it("names the AWS values, the stack's gateway responses' constants", () => {
    expect(RATE_ROW).toContain(`\`Retry-After: ${RETRY_AFTER_SECONDS.throttled}\` over the rate or burst`);
    expect(RATE_ROW).toContain(`\`Retry-After: ${RETRY_AFTER_SECONDS.quotaExceeded}\` over the daily quota`);
  });

  it('names the local value over the daily quota, the seconds until 00:00 UTC, as the local gateway answers', () => {
    expect(RATE_ROW).toContain('over the daily quota the seconds until 00:00 UTC');
    const now = Date.parse('2026-12-04T19:07:11Z');
    const limiter = new RateLimiter({ a: { rateLimit: 10, burstLimit: 20, quotaPerDay: 1 } }, () => now);
    expect(limiter.take('a').allowed).toBe(true);
    expect(limiter.take('a')).toMatchObject({ allowed: false, retryAfterSeconds: 17_569 });
  });
});
