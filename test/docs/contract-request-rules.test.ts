import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { idempotencyKeyOf } from '../../functions/domain/idempotency.ts';
import { parseWebhookRequest } from '../../functions/domain/request.ts';
import { PROJECT_ROOT } from '../../local/paths.ts';

/**
 * The request rules docs/contract.md#post-webhook states beside its field table, checked against the code that
 * enforces them: a sender who reads the page knows every rule a request can be refused by.
 */
const CONTRACT = readFileSync(path.join(PROJECT_ROOT, 'docs', 'contract.md'), 'utf8');
const POST_WEBHOOK = CONTRACT.slice(CONTRACT.indexOf('### `POST /webhook`'), CONTRACT.indexOf('A request that ran'));
const prose = POST_WEBHOOK.replace(/\s+/g, ' ');

const withMetadata = (metadata: unknown) =>
  parseWebhookRequest(JSON.stringify({ query: 'q', source_system: 's', source_process: 'p', metadata })).ok;
const nested = (levels: number): unknown => (levels === 0 ? 1 : { a: nested(levels - 1) });

describe('docs/contract.md: the rules beside the field table', () => {
  it('metadata nests at most the levels the page says', () => {
    const [, levels] = /`metadata` nests at most (\d+) levels deep/.exec(prose) ?? [];
    expect(levels).toBeDefined();
    expect(withMetadata(nested(Number(levels)))).toBe(true);
    expect(withMetadata(nested(Number(levels) + 1))).toBe(false);
    expect(prose).toContain('(`{"a": 1}` is one level, `{"a": [1]}` two)');
    expect(withMetadata({ a: [1] })).toBe(true);
  });

  it.each(['__proto__', 'constructor', 'prototype'])('metadata with the key %s is refused, as the page says', (key) => {
    expect(prose).toContain(`\`${key}\``);
    expect(
      parseWebhookRequest(
        `{"query":"q","source_system":"s","source_process":"p","metadata":{"deep":{"${key}":{"x":1}}}}`,
      ).ok,
    ).toBe(false);
  });

  it('an Idempotency-Key is as long and made of what the page says', () => {
    const [, min, max] = /`Idempotency-Key` \((\d+) to (\d+) visible ASCII characters once trimmed/.exec(prose) ?? [];
    expect(max).toBeDefined();
    const ok = (key: string) => !('error' in idempotencyKeyOf({ 'idempotency-key': key }));
    expect(ok('k'.repeat(Number(min)))).toBe(true);
    expect(ok('k'.repeat(Number(max)))).toBe(true);
    expect(ok(` ${'k'.repeat(Number(max))} `)).toBe(true);
    expect(ok('k'.repeat(Number(max) + 1))).toBe(false);
    expect(ok('two words')).toBe(false);
    expect(ok('clé')).toBe(false);
  });
});
