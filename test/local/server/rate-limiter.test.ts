import { describe, expect, it } from 'vitest';
import { parseRateLimits, RateLimiter } from '../../../local/server/rate-limiter.ts';

describe('RateLimiter (token bucket + daily quota)', () => {
  it('allows the burst, then refills at the rate', () => {
    let now = Date.parse('2025-08-13T10:00:00Z');
    const limiter = new RateLimiter({ a: { rateLimit: 2, burstLimit: 3 } }, () => now);
    expect([1, 2, 3].map(() => limiter.take('a').allowed)).toEqual([true, true, true]);
    expect(limiter.take('a')).toMatchObject({ allowed: false, retryAfterSeconds: 1 });
    now += 500;
    expect(limiter.take('a').allowed).toBe(true);
    expect(limiter.take('a').allowed).toBe(false);
  });

  it('stops at the daily quota until midnight UTC', () => {
    let now = Date.parse('2025-08-13T23:59:00Z');
    const limiter = new RateLimiter({ a: { rateLimit: 100, burstLimit: 100, quotaPerDay: 2 } }, () => now);
    limiter.take('a');
    limiter.take('a');
    expect(limiter.take('a')).toMatchObject({
      allowed: false,
      retryAfterSeconds: 60,
      reason: 'daily quota of 2 requests used',
    });
    now += 61_000;
    expect(limiter.take('a').allowed).toBe(true);
  });

  it('a refund gives back the token and the quota an allowed request took, never beyond the burst', () => {
    const now = Date.parse('2025-08-13T10:00:00Z');
    const limiter = new RateLimiter({ a: { rateLimit: 1, burstLimit: 2, quotaPerDay: 2 } }, () => now);
    limiter.take('a');
    limiter.take('a');
    expect(limiter.take('a').allowed).toBe(false);
    limiter.refund('a');
    expect(limiter.take('a').allowed).toBe(true);
    for (let i = 0; i < 5; i++) limiter.refund('a');
    expect([1, 2, 3].map(() => limiter.take('a').allowed)).toEqual([true, true, false]);
    limiter.refund('unknown');
  });

  it('does not limit sources without a configured limit, including prototype names', () => {
    const limiter = new RateLimiter({ a: { rateLimit: 1, burstLimit: 1 } });
    for (let i = 0; i < 10; i++) expect(limiter.take('b').allowed).toBe(true);
    expect(limiter.take('constructor').allowed).toBe(true);
  });

  it('parses and checks the configuration', () => {
    expect(parseRateLimits(undefined)).toEqual({});
    expect(parseRateLimits('{"a":{"rateLimit":1,"burstLimit":2,"quotaPerDay":3}}')).toEqual({
      a: { rateLimit: 1, burstLimit: 2, quotaPerDay: 3 },
    });
    expect(() => parseRateLimits('{"a":{"rateLimit":0,"burstLimit":2}}')).toThrow(/RATE_LIMITS.a/);
    expect(() => parseRateLimits('nope')).toThrow(/must be JSON/);
  });
});

describe('RateLimiter: the refusal names a limit of 1 in the singular', () => {
  it('"more than 1 request/s", "daily quota of 1 request used" (they read "1 requests")', () => {
    const now = Date.parse('2026-12-05T10:00:00Z');
    const limiter = new RateLimiter(
      { a: { rateLimit: 1, burstLimit: 1 }, b: { rateLimit: 5, burstLimit: 5, quotaPerDay: 1 } },
      () => now,
    );
    expect(limiter.take('a').allowed).toBe(true);
    expect(limiter.take('a')).toMatchObject({ allowed: false, reason: 'more than 1 request/s (burst 1)' });
    expect(limiter.take('b').allowed).toBe(true);
    expect(limiter.take('b')).toMatchObject({ allowed: false, reason: 'daily quota of 1 request used' });
  });
});
