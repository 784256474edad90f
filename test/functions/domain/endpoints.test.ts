import { describe, expect, it } from 'vitest';
import {
  afterFailure,
  afterSuccess,
  type BreakerPolicy,
  type Endpoint,
  endpointStatus,
  endpointView,
  gateDelivery,
  heldBackReason,
  NEW_HEALTH,
  PROBE_INTERVAL_MS,
  parseRate,
  rateWindow,
  resumedHealth,
  windowStart,
} from '../../../functions/domain/endpoints.ts';

const POLICY: BreakerPolicy = { failureThreshold: 3, disableAfterMs: 5 * 86_400_000 };
const T0 = new Date('2026-11-29T12:00:00.000Z');
const at = (ms: number) => new Date(T0.getTime() + ms);
const endpoint = (patch: Partial<Endpoint> = {}): Endpoint => ({
  webhook_type: 'deal_analysis',
  config: {},
  health: NEW_HEALTH,
  ...patch,
});

function failTimes(n: number, from = T0, stepMs = 1_000) {
  let health = NEW_HEALTH;
  let disabledNow = false;
  for (let i = 0; i < n; i++)
    ({ health, disabledNow } = afterFailure(
      health,
      `HTTP 503 #${i + 1}`,
      at(from.getTime() - T0.getTime() + i * stepMs),
      POLICY,
    ));
  return { health, disabledNow };
}

describe('the circuit breaker', () => {
  it('is healthy until the threshold of consecutive failures, then failing; a success closes it', () => {
    expect(endpointStatus(endpoint({ health: failTimes(2).health }), POLICY)).toBe('healthy');
    const failing = failTimes(3).health;
    expect(failing).toMatchObject({
      consecutive_failures: 3,
      failing_since: T0.toISOString(),
      last_error: 'HTTP 503 #3',
    });
    expect(endpointStatus(endpoint({ health: failing }), POLICY)).toBe('failing');
    const healed = afterSuccess(failing, at(10_000));
    expect(healed).toMatchObject({ consecutive_failures: 0, failing_since: null, probe_until: null });
    expect(healed.last_success_at).toBe(at(10_000).toISOString());
    expect(healed.last_error).toBe('HTTP 503 #3');
  });

  it('a failing receiver: new deliveries hold while a probe is due later, one probe at a time otherwise', () => {
    const failing = endpoint({ health: failTimes(3).health });
    const justFailed = at(2_000 + 1);
    expect(gateDelivery(failing, 'workflow', POLICY, justFailed)).toMatchObject({ action: 'hold', reason: 'failing' });
    expect((gateDelivery(failing, 'workflow', POLICY, justFailed) as { message: string }).message).toMatch(
      /deal_analysis is failing \(3 consecutive failures since .*; last: HTTP 503 #3\)/,
    );
    const probeDue = at(2_000 + PROBE_INTERVAL_MS);
    expect(gateDelivery(failing, 'workflow', POLICY, probeDue)).toEqual({ action: 'probe' });
    expect(gateDelivery(failing, 'schedule', POLICY, probeDue)).toEqual({ action: 'probe' });
    // An operator's redrive or resend is an explicit decision: it goes through.
    expect(gateDelivery(failing, 'redrive', POLICY, justFailed)).toEqual({ action: 'attempt' });
    expect(gateDelivery(failing, 'resend', POLICY, justFailed)).toEqual({ action: 'attempt' });
  });

  it('disables a receiver that failed for the policy’s days, once, and a resume forgets it', () => {
    const early = failTimes(3, T0, 1_000);
    expect(early.health.disabled_at).toBeNull();
    const { health, disabledNow } = afterFailure(early.health, 'HTTP 503', at(5 * 86_400_000), POLICY);
    expect(disabledNow).toBe(true);
    expect(health.disabled_at).toBe(at(5 * 86_400_000).toISOString());
    const again = afterFailure(health, 'HTTP 503', at(5 * 86_400_000 + 1), POLICY);
    expect(again.disabledNow).toBe(false);
    const disabled = endpoint({ health: again.health });
    expect(endpointStatus(disabled, POLICY)).toBe('disabled');
    for (const via of ['workflow', 'schedule', 'redrive', 'resend'] as const)
      expect(gateDelivery(disabled, via, POLICY, at(6 * 86_400_000))).toMatchObject({
        action: 'hold',
        reason: 'disabled',
      });
    const resumed = resumedHealth(again.health);
    expect(endpointStatus(endpoint({ health: resumed }), POLICY)).toBe('healthy');
    expect(resumed.last_failure_at).toBe(again.health.last_failure_at);
    // Never disabled with disableAfterMs 0.
    expect(afterFailure(early.health, 'x', at(365 * 86_400_000), { ...POLICY, disableAfterMs: 0 }).disabledNow).toBe(
      false,
    );
  });

  it('a paused receiver holds everything, whatever its health', () => {
    const paused = endpoint({ config: { paused: true, paused_at: T0.toISOString() } });
    expect(endpointStatus(paused, POLICY)).toBe('paused');
    expect(gateDelivery(paused, 'resend', POLICY, T0)).toMatchObject({ action: 'hold', reason: 'paused' });
  });
});

describe('the outbound rate', () => {
  it('counts fixed windows of at least a second; slower rates get one attempt per 1/rate seconds', () => {
    expect(rateWindow(5)).toEqual({ windowMs: 1_000, limit: 5 });
    expect(rateWindow(0.5)).toEqual({ windowMs: 2_000, limit: 1 });
    expect(rateWindow(2.5)).toEqual({ windowMs: 1_000, limit: 2 });
    expect(windowStart(new Date(10_999), 1_000)).toBe(10_000);
  });

  it('reads "5/s", "0.5", "none" and refuses anything else', () => {
    expect(parseRate('5/s')).toBe(5);
    expect(parseRate('0.5')).toBe(0.5);
    expect(parseRate('none')).toBeNull();
    expect(() => parseRate('fast')).toThrow(/not a rate/);
    expect(() => parseRate('5000/s')).toThrow(/at most 1000/);
  });
});

describe("why a receiver held back an operator's redrive or resend", () => {
  const reason = (patch: Partial<Endpoint>, now: Date) =>
    heldBackReason(endpointView(endpoint(patch), null, POLICY, null), now);

  it('names the hold: paused or disabled since when, or its rate and when the next send is allowed', () => {
    expect(reason({ config: { paused: true, paused_at: T0.toISOString() } }, at(180_000))).toBe(
      'deal_analysis is paused since 2026-11-29T12:00:00.000Z (3m ago): nothing is attempted until it is resumed',
    );
    const disabled = { ...NEW_HEALTH, consecutive_failures: 9, disabled_at: T0.toISOString() };
    expect(reason({ health: disabled }, at(2 * 86_400_000))).toBe(
      'deal_analysis is disabled since 2026-11-29T12:00:00.000Z (2d ago): nothing is attempted until it is resumed',
    );
    // 0.5/s: one send per 2 s window; held at 12:00:01.200, the next window opens at 12:00:02.
    expect(reason({ config: { rate_per_second: 0.5 } }, at(1_200))).toBe(
      'deal_analysis is at its rate limit (0.5/s): the next send is allowed at 2026-11-29T12:00:02.000Z',
    );
    // Resumed between the run and this read: which hold it was is no longer known.
    expect(reason({}, T0)).toBe(
      'deal_analysis is healthy now (it was paused, disabled or at its rate when tried): try again',
    );
  });
});
