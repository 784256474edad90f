/**
 * Deliver's side of the receivers (docs/operations.md#receivers): read the type's receiver, admit a delivery (the
 * circuit breaker's gate, the probe lease, the outbound rate) and count an attempt for its health, reporting each
 * change of state once. The decisions are functions/domain/endpoints.ts's; this module does the store calls and the
 * logging around them, so the handler stays parse → decide → deliver. A store that fails never costs a delivery.
 */
import type { DeliveryAttempt, WebhookType } from '../domain/conversation.ts';
import { failureCountsForReceiver } from '../domain/delivery.ts';
import {
  type BreakerPolicy,
  type Endpoint,
  endpointStatus,
  type Gate,
  gateDelivery,
  healthReport,
  PROBE_LEASE_MARGIN_MS,
  rateWaitLimitMs,
  rateWaitMs,
  successNeedsWrite,
} from '../domain/endpoints.ts';
import { ENDPOINT_DISABLED_EVENT, ENDPOINT_FAILING_EVENT, ENDPOINT_RECOVERED_EVENT } from '../domain/observability.ts';
import { type EndpointStore, receiverFileUnreadable } from './endpoint-store.ts';
import { logger } from './powertools.ts';

/** The clock and the wait of the outbound rate (tests inject both: nobody sleeps). */
export interface RateClock {
  now: () => number;
  sleep: (ms: number) => Promise<void>;
}

export const REAL_CLOCK: RateClock = {
  now: Date.now,
  sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
};

const described = (error: unknown) => `${(error as Error).name}: ${(error as Error).message}`;

/**
 * The receiver's state; a store that cannot be read is logged and the receiver used as deployed (never a lost
 * delivery). A local file of the receiver that is damaged is not (it may hold a pause): its deliveries are held, with
 * the message naming the file (receiverFileUnreadable). `signal`, here and below: the caller's deadline (Deliver's
 * budgetSignal) ends the store's calls.
 */
export async function readEndpoint(
  store: EndpointStore,
  type: WebhookType,
  signal?: AbortSignal,
): Promise<Endpoint | { unreadable: string } | null> {
  try {
    return await store.get(type, { signal });
  } catch (error) {
    const damaged = receiverFileUnreadable(error);
    if (damaged !== null) return { unreadable: unreadableHold(type, damaged) };
    logger.warn('The receivers could not be read: delivering as deployed (no pause, breaker or rate applied)', {
      webhook_type: type,
      error: described(error),
    });
    return null;
  }
}

/** Why a receiver whose local file is damaged (`damaged`: the error's message, naming it) gets no delivery. */
function unreadableHold(type: WebhookType, damaged: string): string {
  return `the receiver of ${type} cannot be read (${damaged}): nothing is delivered to it until that file is mended or deleted (docs/operations.md, "After a crash"); held for the redelivery schedule`;
}

/**
 * Whether this delivery may be attempted now: the breaker's gate, then (failing) the single probe lease, then the
 * receiver's outbound rate. `attempt` or `probe` (its failure is not retried), else why it is held.
 */
export async function admitDelivery(
  store: EndpointStore,
  endpoint: Endpoint,
  options: {
    via: NonNullable<DeliveryAttempt['via']>;
    policy: BreakerPolicy;
    timeoutMs: number;
    deliverBy: string | null;
    clock?: RateClock;
    signal?: AbortSignal | undefined;
  },
): Promise<Gate> {
  const type = endpoint.webhook_type;
  const clock = options.clock ?? REAL_CLOCK;
  const gate = gateDelivery(endpoint, options.via, options.policy, new Date(clock.now()));
  if (gate.action === 'hold') return gate;
  if (gate.action === 'probe') {
    const now = clock.now();
    const until = new Date(now + options.timeoutMs + PROBE_LEASE_MARGIN_MS);
    if (!(await store.acquireProbe(type, new Date(now), until, options.signal)))
      return {
        action: 'hold',
        reason: 'failing',
        message: `${type} is failing and another delivery is probing it: queued for the redelivery schedule`,
      };
  }
  const rate = endpoint.config.rate_per_second;
  if (rate && !(await takeRate(store, type, rate, options.deliverBy, clock, options.signal)))
    return {
      action: 'hold',
      reason: 'rate_limited',
      message: `${type} is at its outbound rate (${rate}/s): queued for the redelivery schedule`,
    };
  return gate;
}

/** One attempt's worth of the receiver's outbound rate, waiting for the next window when the caller can afford it. */
export async function takeRate(
  store: EndpointStore,
  type: WebhookType,
  rate: number,
  deliverBy: string | null,
  clock: RateClock = REAL_CLOCK,
  signal?: AbortSignal,
): Promise<boolean> {
  const started = clock.now();
  const limit = rateWaitLimitMs(deliverBy, started);
  for (;;) {
    const token = await store.takeToken(type, rate, new Date(clock.now()), signal);
    if (token.ok) return true;
    const wait = rateWaitMs(token.retryInMs, clock.now() - started, limit, rate, Math.random());
    if (wait === null) return false;
    await clock.sleep(wait);
  }
}

/**
 * Count the attempt for the receiver's health; returns whether the receiver is failing after it (the breaker is
 * open, or it was disabled). Logged once each: the failure that opened it, the one that disabled it, the success
 * that closed it. A timeout of an attempt cut short by the caller's deadline (`timeoutMs` below the configured
 * `deliveryTimeoutMs`) leaves the failure streak as it was (failureCountsForReceiver). A store that refuses the write
 * is logged; the delivery's outcome stands.
 */
export async function recordHealth(
  store: EndpointStore,
  before: Endpoint,
  attempt: DeliveryAttempt,
  policy: BreakerPolicy,
  timeouts: { timeoutMs: number; deliveryTimeoutMs: number },
  signal?: AbortSignal,
): Promise<boolean> {
  const type = before.webhook_type;
  const now = new Date(Date.parse(attempt.at) + attempt.duration_ms);
  try {
    if (attempt.outcome === 'delivered') {
      if (!successNeedsWrite(before.health, now)) return false;
      await store.recordSuccess(type, now, signal);
      if (endpointStatus(before, policy) !== 'healthy')
        logger.info('Receiver answered again: its circuit is closed', {
          event_type: ENDPOINT_RECOVERED_EVENT,
          webhook_type: type,
          failing_since: before.health.failing_since,
        });
      return false;
    }
    if (!failureCountsForReceiver(attempt, timeouts.timeoutMs, timeouts.deliveryTimeoutMs)) {
      logger.info("A delivery attempt cut short by the caller's deadline timed out: not counted against the receiver", {
        webhook_type: type,
        timeout_ms: timeouts.timeoutMs,
        delivery_timeout_ms: timeouts.deliveryTimeoutMs,
        consecutive_failures: before.health.consecutive_failures,
      });
      return endpointStatus(before, policy) !== 'healthy';
    }
    const { health, disabledNow } = await store.recordFailure(
      type,
      attempt.error ?? `HTTP ${attempt.status_code}`,
      now,
      policy,
      signal,
      attempt.retry_after_ms,
    );
    const { failing, report } = healthReport(before, health, disabledNow, policy);
    if (report === 'disabled')
      logger.error('Receiver disabled: it failed for too long; its deliveries are kept until it is resumed', {
        event_type: ENDPOINT_DISABLED_EVENT,
        webhook_type: type,
        failing_since: health.failing_since,
        consecutive_failures: health.consecutive_failures,
        last_error: health.last_error,
      });
    else if (report === 'failing')
      logger.warn('Receiver failing: its circuit is open (no in-workflow retries, one probe at a time)', {
        event_type: ENDPOINT_FAILING_EVENT,
        webhook_type: type,
        consecutive_failures: health.consecutive_failures,
        last_error: health.last_error,
      });
    return failing;
  } catch (error) {
    logger.warn("The receiver's health could not be recorded", { webhook_type: type, error: described(error) });
    return false;
  }
}
