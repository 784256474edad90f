/**
 * Per-source rate limits, the local counterpart of the API Gateway usage plans (rate, burst, daily quota).
 * Configuration, shared with the CDK context `sourceRateLimits`, in RATE_LIMITS:
 *   {"testing_system": {"rateLimit": 10, "burstLimit": 20, "quotaPerDay": 10000}}
 * A source without an entry is not limited. Token bucket: `burstLimit` tokens, refilled at `rateLimit` per second.
 * Sources are counted by their canonical name (functions/domain/source-identity.ts): `TESTING_SYSTEM` and
 * `Testing.System` spend `testing_system`'s budget.
 */
import { bySource } from '../../functions/domain/source-identity.ts';

/** "1 request", "10 requests": a limit of 1 read "more than 1 requests/s" in the 429's message. */
function requests(n: number): string {
  return `${n} request${n === 1 ? '' : 's'}`;
}

export interface SourceLimit {
  rateLimit: number;
  burstLimit: number;
  quotaPerDay?: number;
}

export type LimitDecision = { allowed: true } | { allowed: false; retryAfterSeconds: number; reason: string };

export function parseRateLimits(json: string | undefined): Record<string, SourceLimit> {
  if (!json || json.trim() === '') return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(json);
  } catch {
    throw new Error(
      'RATE_LIMITS must be JSON: {"source_system": {"rateLimit": 10, "burstLimit": 20, "quotaPerDay": 10000}}',
    );
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed))
    throw new Error('RATE_LIMITS must be a JSON object');
  const out: Record<string, SourceLimit> = {};
  for (const [source, value] of Object.entries(parsed as Record<string, Partial<SourceLimit>>)) {
    const { rateLimit, burstLimit, quotaPerDay } = value ?? {};
    const positive = (n: unknown) => typeof n === 'number' && Number.isFinite(n) && n > 0;
    if (!positive(rateLimit) || !positive(burstLimit) || (quotaPerDay !== undefined && !positive(quotaPerDay))) {
      throw new Error(
        `RATE_LIMITS.${source}: rateLimit and burstLimit must be positive numbers, quotaPerDay a positive number if given`,
      );
    }
    out[source] = { rateLimit: rateLimit!, burstLimit: burstLimit!, ...(quotaPerDay ? { quotaPerDay } : {}) };
  }
  return bySource(out, 'RATE_LIMITS');
}

interface Bucket {
  tokens: number;
  at: number;
  day: string;
  usedToday: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();

  constructor(
    private readonly limits: Record<string, SourceLimit>,
    private readonly now: () => number = Date.now,
  ) {}

  /** The configured limit of a source (own keys only: "constructor" and the like are not limits). */
  private limitFor(source: string): SourceLimit | undefined {
    return Object.hasOwn(this.limits, source) ? this.limits[source] : undefined;
  }

  /** `source`: the canonical name the body claims (claimedSource). */
  take(source: string): LimitDecision {
    const limit = this.limitFor(source);
    if (!limit) return { allowed: true };
    const now = this.now();
    const day = new Date(now).toISOString().slice(0, 10);
    const bucket = this.buckets.get(source) ?? { tokens: limit.burstLimit, at: now, day, usedToday: 0 };
    bucket.tokens = Math.min(limit.burstLimit, bucket.tokens + ((now - bucket.at) / 1000) * limit.rateLimit);
    bucket.at = now;
    if (bucket.day !== day) {
      bucket.day = day;
      bucket.usedToday = 0;
    }
    this.buckets.set(source, bucket);
    if (limit.quotaPerDay !== undefined && bucket.usedToday >= limit.quotaPerDay) {
      const midnight = Date.parse(`${day}T00:00:00Z`) + 86_400_000;
      return {
        allowed: false,
        retryAfterSeconds: Math.ceil((midnight - now) / 1000),
        reason: `daily quota of ${requests(limit.quotaPerDay)} used`,
      };
    }
    if (bucket.tokens < 1) {
      return {
        allowed: false,
        retryAfterSeconds: Math.max(1, Math.ceil((1 - bucket.tokens) / limit.rateLimit)),
        reason: `more than ${requests(limit.rateLimit)}/s (burst ${limit.burstLimit})`,
      };
    }
    bucket.tokens -= 1;
    bucket.usedToday += 1;
    return { allowed: true };
  }

  /**
   * Give back what an allowed request took: a request refused for its signature did not come from the source it
   * names, so it must not spend that source's rate or quota (a sender that cannot sign cannot throttle it).
   */
  refund(source: string): void {
    const limit = this.limitFor(source);
    const bucket = this.buckets.get(source);
    if (!limit || !bucket) return;
    bucket.tokens = Math.min(limit.burstLimit, bucket.tokens + 1);
    bucket.usedToday = Math.max(0, bucket.usedToday - 1);
  }
}
