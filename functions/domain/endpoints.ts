import type { DeliveryAttempt, WebhookType } from './conversation.ts';
import { shownDeliveryUrl } from './delivery-url.ts';
import { age, timeAgo } from './iso-date.ts';
import { secretsFingerprint } from './secrets-fingerprint.ts';
import type { SecretsBySource } from './signatures.ts';

/**
 * Receivers (one per webhook type) as run-time state (docs/operations.md#receivers): what an operator configured —
 * a URL that overrides the deployed one, an outbound rate, a pause — and how the receiver has been doing: the circuit
 * breaker's failure streak, its probe lease and whether it was disabled. Pure; the endpoint store
 * (functions/shared/endpoint-store.ts: DynamoDB on AWS, files locally) keeps it, Deliver and the schedule consult it.
 */
export interface EndpointConfig {
  /** Overrides the deploy-time URL (DEAL_ANALYSIS_WEBHOOK_URL…, CDK context dealAnalysisWebhookUrl…). */
  url?: string;
  /** Deliveries per second to this receiver, counted across every Deliver running (every Lambda, on AWS). */
  rate_per_second?: number;
  paused?: boolean;
  /** When the operator paused it. */
  paused_at?: string;
  updated_at?: string;
  /**
   * On AWS, the fingerprint of the type's delivery secrets as `endpoints set --secret --aws` last put them
   * (secretsFingerprint): a Deliver whose cached secrets differ reads them again, so a rotation signs within seconds.
   */
  secrets_fingerprint?: string;
  /**
   * When `endpoints set --secret | --drop-previous-secret` (locally or with --aws) last changed the type's delivery
   * secrets, to those of `secrets_fingerprint`: the start of a rotation while two secrets sign.
   */
  secrets_changed_at?: string;
}

export interface EndpointHealth {
  /** Failed attempts since the last success. */
  consecutive_failures: number;
  /** The first failure of the current streak; null while healthy. */
  failing_since: string | null;
  last_success_at: string | null;
  last_failure_at: string | null;
  last_error: string | null;
  /** While failing: no probe before this time (one probe at a time, and a pause after a failed one). */
  probe_until: string | null;
  /** Set when the receiver failed for the policy's disableAfterMs: nothing is attempted until it is resumed. */
  disabled_at: string | null;
  /**
   * The receiver's last Retry-After (on a 429 or 503) asked for nothing before this time: every delivery of the type
   * is held until then (an operator's redrive or resend too; a resume forgets it).
   */
  retry_after_until: string | null;
}

export interface Endpoint {
  webhook_type: WebhookType;
  config: EndpointConfig;
  health: EndpointHealth;
}

export const NEW_HEALTH: EndpointHealth = {
  consecutive_failures: 0,
  failing_since: null,
  last_success_at: null,
  last_failure_at: null,
  last_error: null,
  probe_until: null,
  disabled_at: null,
  retry_after_until: null,
};

/** The circuit breaker's settings (ENDPOINT_FAILURE_THRESHOLD, ENDPOINT_DISABLE_AFTER_DAYS). */
export interface BreakerPolicy {
  /** Consecutive failures after which the receiver is failing: no in-workflow retries, one probe at a time. */
  failureThreshold: number;
  /** How long a receiver may fail (since the first failure of its streak) before it is disabled; 0: never. */
  disableAfterMs: number;
}

export const DEFAULT_FAILURE_THRESHOLD = 5;
export const DEFAULT_DISABLE_AFTER_DAYS = 5;
/** After a failed probe, the next one waits this long. */
export const PROBE_INTERVAL_MS = 15_000;
/** A probe holds the receiver for its own timeout and this much more (a Deliver that died mid-probe frees it then). */
export const PROBE_LEASE_MARGIN_MS = 5_000;

export type EndpointStatus = 'healthy' | 'failing' | 'paused' | 'disabled';

export function endpointStatus(endpoint: Pick<Endpoint, 'config' | 'health'>, policy: BreakerPolicy): EndpointStatus {
  if (endpoint.config.paused) return 'paused';
  if (endpoint.health.disabled_at) return 'disabled';
  return endpoint.health.consecutive_failures >= policy.failureThreshold ? 'failing' : 'healthy';
}

/**
 * Why no attempt is made now; the delivery waits in the failed-delivery store until the receiver may be tried.
 * `unreadable`: the local store's file of the receiver is damaged, so whether it is paused (or where it is) is unknown.
 */
export type HoldReason = 'paused' | 'disabled' | 'failing' | 'rate_limited' | 'retry_after' | 'deadline' | 'unreadable';

/**
 * What Deliver may do with a receiver: attempt; probe it (it is failing: this attempt must first take the probe lease,
 * and a failure is not retried); or hold the delivery (paused, disabled, asked by its Retry-After to wait, or failing
 * with a probe under way or just failed). An operator's redrive or resend is an explicit decision and goes through a
 * failing receiver, not through a paused or disabled one, nor one that asked to wait (the receiver said so).
 */
export type Gate =
  | { action: 'attempt' }
  | { action: 'probe' }
  | { action: 'hold'; reason: HoldReason; message: string };

export function gateDelivery(
  endpoint: Endpoint,
  via: NonNullable<DeliveryAttempt['via']>,
  policy: BreakerPolicy,
  now: Date,
): Gate {
  const type = endpoint.webhook_type;
  const { health } = endpoint;
  const status = endpointStatus(endpoint, policy);
  const waitFor = status === 'paused' || status === 'disabled' ? null : retryAfterUntil(health, now);
  if (waitFor)
    return {
      action: 'hold',
      reason: 'retry_after',
      message: `${type} asked for nothing before ${waitFor} (Retry-After on its last answer): queued for the redelivery schedule`,
    };
  switch (status) {
    case 'paused':
      return {
        action: 'hold',
        reason: 'paused',
        message: `${type} is paused (since ${endpoint.config.paused_at ?? 'an operator paused it'}): held until it is resumed`,
      };
    case 'disabled':
      return {
        action: 'hold',
        reason: 'disabled',
        message: `${type} was disabled at ${health.disabled_at} after failing since ${health.failing_since}: held until it is resumed`,
      };
    case 'failing':
      if (via === 'redrive' || via === 'resend') return { action: 'attempt' };
      if (health.probe_until && Date.parse(health.probe_until) > now.getTime())
        return {
          action: 'hold',
          reason: 'failing',
          message: `${type} is failing (${health.consecutive_failures} consecutive failures since ${health.failing_since}; last: ${health.last_error ?? 'unknown'}): queued for the redelivery schedule while one probe at a time tests it`,
        };
      return { action: 'probe' };
    default:
      return { action: 'attempt' };
  }
}

/** Until when the receiver's last Retry-After asks for nothing, while that is after `now`; null otherwise. */
function retryAfterUntil(health: Pick<EndpointHealth, 'retry_after_until'>, now: Date): string | null {
  const until = health.retry_after_until;
  return until && Date.parse(until) > now.getTime() ? until : null;
}

/** The receiver answered 2xx: healthy again; the streak and any probe lease end. */
export function afterSuccess(health: EndpointHealth, now: Date): EndpointHealth {
  return {
    ...health,
    consecutive_failures: 0,
    failing_since: null,
    last_success_at: now.toISOString(),
    probe_until: null,
  };
}

/**
 * A failed attempt: the streak grows, the next probe waits PROBE_INTERVAL_MS, and a receiver failing for longer than
 * the policy allows is disabled (`disabledNow`: this failure disabled it, so it is reported once). An answer with a
 * Retry-After (`retryAfterMs`, capped where it is read) holds the type until then.
 */
export function afterFailure(
  health: EndpointHealth,
  error: string,
  now: Date,
  policy: BreakerPolicy,
  retryAfterMs?: number,
): { health: EndpointHealth; disabledNow: boolean } {
  const next: EndpointHealth = {
    ...health,
    consecutive_failures: health.consecutive_failures + 1,
    failing_since: health.failing_since ?? now.toISOString(),
    last_failure_at: now.toISOString(),
    last_error: error.slice(0, 300),
    probe_until: new Date(now.getTime() + PROBE_INTERVAL_MS).toISOString(),
    ...(retryAfterMs ? { retry_after_until: new Date(now.getTime() + retryAfterMs).toISOString() } : {}),
  };
  const disabledNow = shouldDisable(next, now, policy);
  return { health: disabledNow ? { ...next, disabled_at: now.toISOString() } : next, disabledNow };
}

/** A successful attempt refreshes the receiver's last success at most this often (one write, not one per delivery). */
const SUCCESS_WRITE_EVERY_MS = 10_000;

/** Whether a success must be written: it ends a streak, or the last success written is older than SUCCESS_WRITE_EVERY_MS. */
export function successNeedsWrite(health: EndpointHealth, now: Date): boolean {
  const lastSuccess = health.last_success_at ? Date.parse(health.last_success_at) : 0;
  return health.consecutive_failures > 0 || now.getTime() - lastSuccess >= SUCCESS_WRITE_EVERY_MS;
}

/**
 * After a failure was counted: whether the receiver is failing now, and what to report, once: `disabled` (this
 * failure disabled it), `failing` (this failure opened its circuit), or nothing.
 */
export function healthReport(
  before: Pick<Endpoint, 'config' | 'health'>,
  after: EndpointHealth,
  disabledNow: boolean,
  policy: BreakerPolicy,
): { failing: boolean; report: 'disabled' | 'failing' | null } {
  const wasFailing = endpointStatus(before, policy) !== 'healthy';
  const failing = endpointStatus({ config: before.config, health: after }, policy) !== 'healthy';
  return { failing, report: disabledNow ? 'disabled' : failing && !wasFailing ? 'failing' : null };
}

/** Failing for at least the policy's disableAfterMs, and not disabled yet. */
export function shouldDisable(health: EndpointHealth, now: Date, policy: BreakerPolicy): boolean {
  if (health.disabled_at || policy.disableAfterMs <= 0 || !health.failing_since) return false;
  if (health.consecutive_failures < policy.failureThreshold) return false;
  return now.getTime() - Date.parse(health.failing_since) >= policy.disableAfterMs;
}

/** An operator resumed the receiver: not disabled nor held by a Retry-After, its streak forgotten (history kept). */
export function resumedHealth(health: EndpointHealth): EndpointHealth {
  return {
    ...health,
    consecutive_failures: 0,
    failing_since: null,
    probe_until: null,
    disabled_at: null,
    retry_after_until: null,
  };
}

/**
 * Whether a change of configuration points the type at another receiver (docs/operations.md#receivers): a URL other
 * than the one it is delivered to now (the configured one, else `deployedUrl`), or clearing the configured one for a
 * deployed URL that is another. The same URL set again is no new receiver. `deployedUrl` unknown: compared with the
 * configured URL only.
 */
export function changesUrl(config: EndpointConfig, url: string | null | undefined, deployedUrl?: string): boolean {
  if (url === undefined) return false;
  const before = config.url ?? deployedUrl;
  const after = url ?? deployedUrl;
  return before === undefined || after === undefined ? config.url !== (url ?? undefined) : before !== after;
}

/**
 * What `endpoints set --url` (locally and with --aws) says when the URL changed: the health of the old URL (its
 * failure streak, breaker, Retry-After hold, last success and error) was forgotten, and an operator's pause kept.
 */
export function newUrlNote(endpoint: Pick<Endpoint, 'webhook_type' | 'config'>): string {
  const type = endpoint.webhook_type;
  const paused = endpoint.config.paused
    ? `; it stays paused, as paused (since ${endpoint.config.paused_at ?? 'an operator paused it'}): endpoints resume ${type} delivers to it`
    : '';
  return `${type}: a new URL is a new receiver: it starts healthy (the previous URL's failure streak, circuit breaker and Retry-After hold do not carry over)${paused}`;
}

/**
 * The outbound rate as fixed windows counted across every Deliver: `limit` attempts per `windowMs` (a rate under 1/s
 * gets one attempt per 1/rate seconds). A window may start right after a full one, so a burst reaches at most twice
 * the limit across a window edge.
 */
export function rateWindow(ratePerSecond: number): { windowMs: number; limit: number } {
  const windowMs = Math.max(1_000, Math.ceil(1_000 / ratePerSecond));
  return { windowMs, limit: Math.max(1, Math.floor((ratePerSecond * windowMs) / 1_000)) };
}

/** While the caller waits, an outbound rate that is spent may hold an attempt this long at most, then it is queued. */
const MAX_RATE_WAIT_MS = 2_000;

/** How long Deliver may wait for the receiver's rate: MAX_RATE_WAIT_MS, and never past the caller's deliver_by less 1 s. */
export function rateWaitLimitMs(deliverBy: string | null, startedAt: number): number {
  return deliverBy ? Math.min(MAX_RATE_WAIT_MS, Date.parse(deliverBy) - startedAt - 1_000) : MAX_RATE_WAIT_MS;
}

/**
 * After a refused token: how long to wait before asking again (until the next window, plus up to a fifth of a window
 * to spread the ones waiting for the same window over it: `jitter` in [0, 1)), or null when that would pass `limitMs`
 * (the delivery is then queued).
 */
export function rateWaitMs(
  retryInMs: number,
  waitedMs: number,
  limitMs: number,
  ratePerSecond: number,
  jitter: number,
): number | null {
  if (waitedMs + retryInMs > limitMs) return null;
  return retryInMs + jitter * rateWindow(ratePerSecond).windowMs * 0.2;
}

/** The start of the window `now` falls in (epoch ms). */
export function windowStart(now: Date, windowMs: number): number {
  return Math.floor(now.getTime() / windowMs) * windowMs;
}

/** How long a held delivery waits before the schedule looks at it again. */
export function holdRecheckMs(reason: HoldReason, endpoint: Endpoint | null, now: Date): number {
  if (reason === 'rate_limited') return 1_000;
  if (reason === 'retry_after' && endpoint?.health.retry_after_until)
    return Math.max(1_000, Date.parse(endpoint.health.retry_after_until) - now.getTime());
  if (reason === 'failing' && endpoint?.health.probe_until)
    return Math.max(1_000, Date.parse(endpoint.health.probe_until) - now.getTime());
  // Paused, disabled or unreadable: an operator's resume (or mend) may come at any time; on AWS each look costs queue
  // requests.
  return reason === 'failing' ? PROBE_INTERVAL_MS : 300_000;
}

/** "5/s", "0.5/s", "none": a rate as the CLI and the console show it and take it. */
export function parseRate(text: string): number | null {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*s)?\s*$/.exec(text);
  if (/^\s*(none|off|0)\s*$/i.test(text)) return null;
  if (!m) throw new Error(`"${text}" is not a rate: give deliveries per second, e.g. 5/s or 0.5/s (none: no limit)`);
  const rate = Number(m[1]);
  if (!(rate > 0) || rate > 1_000) throw new Error(`the rate must be more than 0 and at most 1000/s, got ${text}`);
  return rate;
}

/** One receiver as the command line and the console show it. */
export interface EndpointView {
  webhook_type: WebhookType;
  status: EndpointStatus;
  /**
   * Where its next delivery goes (the operator's URL, or the deployed one), as shownDeliveryUrl shows it: its origin,
   * never a path or query that may hold the receiver's credential.
   */
  url: string | null;
  url_source: 'configured' | 'deployed';
  rate_per_second: number | null;
  paused_at: string | null;
  last_success_at: string | null;
  last_failure_at: string | null;
  consecutive_failures: number;
  failing_since: string | null;
  disabled_at: string | null;
  last_error: string | null;
  /** Until when its last Retry-After asked for nothing (every delivery of the type held); null: none, or it passed. */
  retry_after_until: string | null;
  /** Deliveries of this type waiting in the failed-delivery store; null when the store cannot count them by type. */
  queued: number | null;
  /**
   * How many secrets sign its deliveries: 0 (unsigned), 1, or 2 during a rotation (the new and the previous one);
   * null when they could not be read here. Never the secrets themselves.
   */
  signing_secrets: number | null;
  /**
   * Locally, before the first start on the data folder: no secrets file yet, and the start makes one secret per type
   * (docs/security.md, "Signed deliveries"); signing_secrets is then null, not the 0 of a type delivered unsigned.
   */
  signing_at_first_start?: true;
  /**
   * Since when they are these secrets (`endpoints set --secret` or `--drop-previous-secret` changed them then); null
   * when not known: written by hand, or by a version that did not record it.
   */
  secrets_changed_at: string | null;
}

export function endpointView(
  endpoint: Endpoint,
  deployedUrl: string | null,
  policy: BreakerPolicy,
  queued: number | null,
  allSecrets: SecretsBySource | null = null,
  now: Date = new Date(),
): EndpointView {
  const { config, health } = endpoint;
  const type = endpoint.webhook_type;
  const secrets = allSecrets && (Object.hasOwn(allSecrets, type) ? allSecrets[type]! : []);
  // The time recorded is the one of these secrets only if they are still those the command wrote.
  const recorded = secrets !== null && config.secrets_fingerprint === secretsFingerprint(secrets);
  return {
    webhook_type: type,
    status: endpointStatus(endpoint, policy),
    url: (config.url ?? deployedUrl) === null ? null : shownDeliveryUrl((config.url ?? deployedUrl)!),
    url_source: config.url ? 'configured' : 'deployed',
    rate_per_second: config.rate_per_second ?? null,
    paused_at: config.paused_at ?? null,
    last_success_at: health.last_success_at,
    last_failure_at: health.last_failure_at,
    consecutive_failures: health.consecutive_failures,
    failing_since: health.failing_since,
    disabled_at: health.disabled_at,
    last_error: health.last_error,
    retry_after_until: retryAfterUntil(health, now),
    queued,
    signing_secrets: secrets?.length ?? null,
    secrets_changed_at: recorded ? (config.secrets_changed_at ?? null) : null,
  };
}

/** How a receiver's deliveries are signed, in a word or two (never the secrets): the CLI's column, the console's. */
export function signingLabel(v: Pick<EndpointView, 'signing_secrets' | 'signing_at_first_start'>): string {
  const n = v.signing_secrets;
  if (v.signing_at_first_start) return 'at first start';
  return n === null ? 'not known here' : n === 0 ? 'unsigned' : n === 1 ? 'one secret' : `${n} secrets`;
}

/**
 * During a rotation (two secrets sign), since when and what ends it, as `endpoints list` and the console say it:
 * `two secrets since <time> (<age> ago): endpoints set <type> --drop-previous-secret once the receiver verifies the
 * new one`; null otherwise. A time not recorded is said so, never made up (`since`: null then).
 */
export function rotationNote(
  v: Pick<EndpointView, 'webhook_type' | 'signing_secrets' | 'secrets_changed_at'>,
  now: Date,
): { since: string | null; text: string; end: string } | null {
  if ((v.signing_secrets ?? 0) < 2) return null;
  const since = v.secrets_changed_at;
  const end = `endpoints set ${v.webhook_type} --drop-previous-secret once the receiver verifies the new one`;
  const when = since
    ? `since ${timeAgo(since, now.getTime())}`
    : 'since a time not recorded (set by hand, or before this version recorded it)';
  return { since, text: `two secrets ${when}: ${end}`, end };
}

/**
 * "<type> asked for nothing before <time> (in <age>; its Retry-After): the next send is allowed then": a receiver
 * whose Retry-After holds every delivery of its type, as `endpoints list`, the console and a held redrive say it.
 */
export function retryAfterNote(type: WebhookType, until: string, now: Date): string {
  return `${type} asked for nothing before ${until} (in ${age(now.toISOString(), Date.parse(until))}; its Retry-After): the next send is allowed then`;
}

/** Since when a paused or disabled receiver is so (its pause, or the failure that disabled it); null otherwise. */
export function stateSince(v: Pick<EndpointView, 'status' | 'paused_at' | 'disabled_at'>): string | null {
  return v.status === 'paused' ? v.paused_at : v.status === 'disabled' ? v.disabled_at : null;
}

/**
 * "<type> is paused since <time> (<age> ago)" (or disabled): a held receiver as every message about it says it
 * (heldBackReason; the console's Redrive note and recover plan).
 */
export function heldState(v: Pick<EndpointView, 'webhook_type' | 'status' | 'paused_at' | 'disabled_at'>, now: Date) {
  const since = stateSince(v);
  return `${v.webhook_type} is ${v.status}${since ? ` since ${timeAgo(since, now.getTime())}` : ''}`;
}

/**
 * Why the receiver held back an operator's redrive or resend (nothing attempted), as it reads right after: paused or
 * disabled since when, or at its rate limit and when its next send is allowed (the next window of its rate). Said alike
 * by `deliveries redrive | resend` and the console's buttons. A receiver neither is now was resumed meanwhile.
 */
export function heldBackReason(v: EndpointView, now: Date): string {
  const type = v.webhook_type;
  if (v.status === 'paused' || v.status === 'disabled')
    return `${heldState(v, now)}: nothing is attempted until it is resumed`;
  const waitFor = retryAfterUntil(v, now);
  if (waitFor) return retryAfterNote(type, waitFor, now);
  if (v.rate_per_second !== null) {
    const { windowMs } = rateWindow(v.rate_per_second);
    const next = new Date(windowStart(now, windowMs) + windowMs).toISOString();
    return `${type} is at its rate limit (${v.rate_per_second}/s): the next send is allowed at ${next}`;
  }
  return `${type} is ${v.status} now (it was paused, disabled or at its rate when tried): try again`;
}
