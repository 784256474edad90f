import { describe, expect, it } from 'vitest';
import { claimedSource } from '../../../functions/domain/request.ts';
import { parseInboundSecrets, verifyInbound } from '../../../functions/domain/signatures.ts';
import { apiKeyMismatch, bySource, canonicalSource } from '../../../functions/domain/source-identity.ts';
import { parseRateLimits } from '../../../local/server/rate-limiter.ts';

const SECRET = `whsec_${Buffer.from('s'.repeat(32)).toString('base64')}`;

describe('canonicalSource: one identity per source name', () => {
  it('ignores case and reads every run of . - _ as one _', () => {
    for (const spelling of ['testing_system', 'TESTING_SYSTEM', 'Testing.System', 'testing-system', 'Testing.-_System'])
      expect(canonicalSource(spelling)).toBe('testing_system');
    expect(canonicalSource('crm2')).toBe('crm2');
    expect(canonicalSource('testingsystem')).not.toBe('testing_system');
  });

  it('is what a body claims before validation', () => {
    expect(claimedSource('{"source_system":"SIGNED.Sys"}')).toBe('signed_sys');
    expect(claimedSource('{"source_system":1}')).toBeNull();
    expect(claimedSource('not json')).toBeNull();
  });
});

describe('configuration keyed by source is read in canonical form', () => {
  it('keys are normalised; two spellings of one source are refused, naming both', () => {
    expect(bySource({ 'Signed.Sys': 1, other: 2 }, 'X')).toEqual({ signed_sys: 1, other: 2 });
    expect(() => bySource({ crm_sync: 1, 'CRM.Sync': 2 }, 'RATE_LIMITS')).toThrow(
      /RATE_LIMITS: "crm_sync" and "CRM.Sync" name the same source \(crm_sync\)/,
    );
    expect(() => bySource({ 'has space': 1 }, 'X')).toThrow(/"has space" is not a source_system name/);
    expect(() => bySource({ café: 1 }, 'RATE_LIMITS')).toThrow(
      /^RATE_LIMITS: "café" is not a source_system name \(ASCII letters .*\): character 4 is 'é' \(U\+00E9\)$/,
    );
  });

  it('INBOUND_WEBHOOK_SECRETS and RATE_LIMITS go through it', () => {
    expect(parseInboundSecrets(JSON.stringify({ 'Signed.Sys': SECRET }))).toEqual({ signed_sys: [SECRET] });
    expect(() => parseInboundSecrets(JSON.stringify({ a_b: SECRET, 'A-B': SECRET }))).toThrow(/same source/);
    expect(Object.keys(parseRateLimits(JSON.stringify({ Testing_System: { rateLimit: 1, burstLimit: 1 } })))).toEqual([
      'testing_system',
    ]);
    expect(() =>
      parseRateLimits(JSON.stringify({ a_b: { rateLimit: 1, burstLimit: 1 }, 'A.B': { rateLimit: 1, burstLimit: 1 } })),
    ).toThrow(/same source/);
  });

  it('a secret configured under any spelling must be used by every spelling of the source', () => {
    const policy = { secrets: parseInboundSecrets(JSON.stringify({ SIGNED_SYS: SECRET })), requireSignature: false };
    const body = '{"source_system":"Signed.Sys"}';
    const claimed = claimedSource(body)!;
    expect(verifyInbound(body, {}, claimed, policy)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/missing/),
    });
  });
});

describe('apiKeyMismatch: an API key acts only as its own source (POST /webhook and GET /conversations/{id})', () => {
  const keys = { abc123: 'testing_system', def456: 'crm_sync' };

  it('allows the key of the named source, in any spelling of it', () => {
    expect(apiKeyMismatch('abc123', 'testing_system', keys)).toBeNull();
    expect(apiKeyMismatch('def456', 'CRM.Sync', keys)).toBeNull();
  });

  it("refuses another source's key, naming the key's source", () => {
    expect(apiKeyMismatch('def456', 'testing_system', keys)).toBe(
      'This API key belongs to source system crm_sync: it may only act as that source',
    );
  });

  it('refuses a key no configured source owns (e.g. one added to the usage plan by hand)', () => {
    expect(apiKeyMismatch('zzz999', 'testing_system', keys)).toMatch(/belongs to no configured source_system/);
    expect(apiKeyMismatch('constructor', 'testing_system', keys)).toMatch(/no configured source_system/);
  });

  it('checks nothing without a key or without configured keys', () => {
    for (const id of [null, undefined, '']) expect(apiKeyMismatch(id, 'testing_system', keys)).toBeNull();
    expect(apiKeyMismatch('abc123', 'crm_sync', {})).toBeNull();
  });
});
