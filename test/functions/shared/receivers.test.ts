import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DeliveryAttempt } from '../../../functions/domain/conversation.ts';
import {
  type BreakerPolicy,
  type Endpoint,
  endpointView,
  healthReport,
  heldBackReason,
  holdRecheckMs,
  NEW_HEALTH,
  rateWaitLimitMs,
  rateWaitMs,
  successNeedsWrite,
} from '../../../functions/domain/endpoints.ts';
import { FileEndpointStore } from '../../../functions/shared/endpoint-store.ts';
import { admitDelivery, type RateClock, recordHealth, takeRate } from '../../../functions/shared/receivers.ts';
import { captureJsonLines } from '../../support/log-capture.ts';

/**
 * Deliver's side of the receivers: the gate, the probe lease and the outbound rate in front of an attempt, and the
 * health an attempt leaves behind, against a real file store, with an injected clock that "sleeps" by moving on.
 */
const POLICY: BreakerPolicy = { failureThreshold: 2, disableAfterMs: 5 * 86_400_000 };
const T0 = Date.parse('2026-11-29T12:00:00.000Z');

/** A clock that never waits: sleep moves it forward and records the wait. */
function fakeClock(start = T0): RateClock & { waits: number[]; at: () => number } {
  let now = start;
  const waits: number[] = [];
  return {
    now: () => now,
    at: () => now,
    waits,
    sleep: async (ms) => {
      waits.push(ms);
      now += ms;
    },
  };
}

let dir: string;
let n = 0;
/** A fresh store per test (its own folder: the rate windows and the files start empty). */
const freshStore = () => new FileEndpointStore(path.join(dir, String(++n)));
beforeAll(async () => {
  dir = await mkdtemp(path.join(tmpdir(), 'receivers-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const attempt = (outcome: DeliveryAttempt['outcome'], at = T0): DeliveryAttempt => ({
  attempt: 1,
  at: new Date(at).toISOString(),
  duration_ms: 20,
  outcome,
  ...(outcome === 'delivered' ? { status_code: 200 } : { status_code: 503, error: 'HTTP 503' }),
});

describe('the decisions (pure)', () => {
  it('the rate wait: until the next window plus jitter, never past 2 s nor the caller’s deliver_by less 1 s', () => {
    expect(rateWaitLimitMs(null, T0)).toBe(2_000);
    expect(rateWaitLimitMs(new Date(T0 + 2_500).toISOString(), T0)).toBe(1_500);
    expect(rateWaitMs(600, 0, 2_000, 5, 0)).toBe(600);
    expect(rateWaitMs(600, 0, 2_000, 5, 0.5)).toBe(700); // a tenth of the 1 s window
    expect(rateWaitMs(600, 1_500, 2_000, 5, 0)).toBeNull();
  });

  it('a success is written when it ends a streak or the last one written is 10 s old', () => {
    const recent = { ...NEW_HEALTH, last_success_at: new Date(T0 - 5_000).toISOString() };
    expect(successNeedsWrite(recent, new Date(T0))).toBe(false);
    expect(successNeedsWrite({ ...recent, consecutive_failures: 1 }, new Date(T0))).toBe(true);
    expect(successNeedsWrite(recent, new Date(T0 + 5_000))).toBe(true);
    expect(successNeedsWrite(NEW_HEALTH, new Date(T0))).toBe(true);
  });

  it('reports the failure that opened the circuit and the one that disabled it, each once', () => {
    const before: Endpoint = {
      webhook_type: 'general',
      config: {},
      health: { ...NEW_HEALTH, consecutive_failures: 1 },
    };
    const two = { ...before.health, consecutive_failures: 2 };
    expect(healthReport(before, two, false, POLICY)).toEqual({ failing: true, report: 'failing' });
    expect(healthReport({ ...before, health: two }, { ...two, consecutive_failures: 3 }, false, POLICY)).toEqual({
      failing: true,
      report: null,
    });
    expect(healthReport({ ...before, health: two }, two, true, POLICY)).toEqual({ failing: true, report: 'disabled' });
    expect(healthReport(before, NEW_HEALTH, false, POLICY)).toEqual({ failing: false, report: null });
  });
});

describe('admitDelivery and takeRate (a file store, an injected clock)', () => {
  const options = (clock: RateClock, deliverBy: string | null = null) => ({
    via: 'workflow' as const,
    policy: POLICY,
    timeoutMs: 1_000,
    deliverBy,
    clock,
  });

  it('a rate of 2/s: two attempts per window, the third waits for the next one; one whose caller cannot wait is held', async () => {
    const store = freshStore();
    await store.configure('deal_analysis', { rate_per_second: 2 }, new Date(T0));
    const endpoint = await store.get('deal_analysis');
    const clock = fakeClock(T0 + 200);
    expect(await admitDelivery(store, endpoint, options(clock))).toEqual({ action: 'attempt' });
    expect(await admitDelivery(store, endpoint, options(clock))).toEqual({ action: 'attempt' });
    expect(clock.waits).toEqual([]);
    expect(await admitDelivery(store, endpoint, options(clock))).toEqual({ action: 'attempt' });
    // It waited for the next window (800 ms) and up to a fifth of a window more.
    expect(clock.waits).toHaveLength(1);
    expect(clock.waits[0]).toBeGreaterThanOrEqual(800);
    expect(clock.waits[0]).toBeLessThan(1_000);
    // The second of that window; then the window is spent again.
    expect(await admitDelivery(store, endpoint, options(clock))).toEqual({ action: 'attempt' });
    expect(clock.waits).toHaveLength(1);
    // A caller to be answered within 1.5 s cannot wait for the next window: held at once.
    const hurried = await admitDelivery(store, endpoint, options(clock, new Date(clock.at() + 1_500).toISOString()));
    expect(hurried).toEqual({
      action: 'hold',
      reason: 'rate_limited',
      message: 'deal_analysis is at its outbound rate (2/s): queued for the redelivery schedule',
    });
  });

  it('takeRate gives up when the next window is further than the wait allows', async () => {
    const store = freshStore();
    const clock = fakeClock(T0);
    // 0.25/s: one attempt per 4 s window.
    expect(await takeRate(store, 'general', 0.25, null, clock)).toBe(true);
    expect(await takeRate(store, 'general', 0.25, null, clock)).toBe(false);
    expect(clock.waits).toEqual([]);
  });

  it('a failing receiver: one delivery takes the probe lease, the next is held while it runs', async () => {
    const store = freshStore();
    const clock = fakeClock(T0);
    for (let i = 0; i < 2; i++) await store.recordFailure('lead_analysis', 'HTTP 503', new Date(T0 - 60_000), POLICY);
    const endpoint = await store.get('lead_analysis');
    expect(await admitDelivery(store, endpoint, options(clock))).toEqual({ action: 'probe' });
    expect((await store.get('lead_analysis')).health.probe_until).toBe(new Date(T0 + 1_000 + 5_000).toISOString());
    expect(await admitDelivery(store, endpoint, options(clock))).toMatchObject({
      action: 'hold',
      reason: 'failing',
      message: 'lead_analysis is failing and another delivery is probing it: queued for the redelivery schedule',
    });
  });
});

describe("a receiver's Retry-After holds its type", () => {
  it('a 429 asking for 30 s holds every delivery of the type (new, scheduled, redriven) until then; a resume forgets it', async () => {
    // Before, it held only the delivery it answered: the schedule sent three others a second later.
    const store = freshStore();
    const slowDown: DeliveryAttempt = {
      ...attempt('retryable'),
      status_code: 429,
      error: 'HTTP 429',
      retry_after_ms: 30_000,
    };
    const FULL = { timeoutMs: 3_000, deliveryTimeoutMs: 3_000 };
    await recordHealth(store, await store.get('deal_analysis'), slowDown, POLICY, FULL);
    const until = new Date(T0 + 20 + 30_000).toISOString();
    const endpoint = await store.get('deal_analysis');
    expect(endpoint.health.retry_after_until).toBe(until);
    const admit = (via: 'workflow' | 'schedule' | 'redrive', at: number, e = endpoint) =>
      admitDelivery(store, e, { via, policy: POLICY, timeoutMs: 1_000, deliverBy: null, clock: fakeClock(at) });
    for (const via of ['workflow', 'schedule', 'redrive'] as const)
      expect(await admit(via, T0 + 1_000)).toEqual({
        action: 'hold',
        reason: 'retry_after',
        message: `deal_analysis asked for nothing before ${until} (Retry-After on its last answer): queued for the redelivery schedule`,
      });
    expect(holdRecheckMs('retry_after', endpoint, new Date(T0 + 1_000))).toBe(29_020);
    // Another type is not held; the type is not held once the time passed.
    expect(await admit('workflow', T0 + 1_000, await store.get('general'))).toEqual({ action: 'attempt' });
    expect(await admit('workflow', T0 + 30_020)).toEqual({ action: 'attempt' });
    // What a held redrive says, and the receiver as the command line shows it.
    const view = endpointView(endpoint, null, POLICY, null, null, new Date(T0 + 1_000));
    expect(view.retry_after_until).toBe(until);
    expect(heldBackReason(view, new Date(T0 + 1_000))).toBe(
      `deal_analysis asked for nothing before ${until} (in 29s; its Retry-After): the next send is allowed then`,
    );
    expect(endpointView(endpoint, null, POLICY, null, null, new Date(T0 + 40_000)).retry_after_until).toBeNull();
    // A failure without one leaves it; a resume forgets it.
    await recordHealth(store, endpoint, attempt('retryable', T0 + 2_000), POLICY, FULL);
    expect((await store.get('deal_analysis')).health.retry_after_until).toBe(until);
    expect((await store.resume('deal_analysis', new Date(T0 + 3_000))).health.retry_after_until).toBeNull();
  });
});

describe('recordHealth', () => {
  /** An attempt given the whole DELIVERY_TIMEOUT_MS. */
  const FULL = { timeoutMs: 3_000, deliveryTimeoutMs: 3_000 };

  it('opens the circuit at the threshold (WEBHOOK_ENDPOINT_FAILING once), closes it on success (RECOVERED)', async () => {
    const store = freshStore();
    const capture = captureJsonLines();
    const failing: boolean[] = [];
    try {
      for (let i = 0; i < 3; i++)
        failing.push(await recordHealth(store, await store.get('data_analysis'), attempt('retryable'), POLICY, FULL));
      failing.push(await recordHealth(store, await store.get('data_analysis'), attempt('delivered'), POLICY, FULL));
    } finally {
      capture.restore();
    }
    expect(failing).toEqual([false, true, true, false]);
    expect(capture.events().map((e) => e.event_type)).toEqual([
      'WEBHOOK_ENDPOINT_FAILING',
      'WEBHOOK_ENDPOINT_RECOVERED',
    ]);
    expect((await store.get('data_analysis')).health).toMatchObject({ consecutive_failures: 0, failing_since: null });
  });

  it('a store that refuses the write costs nothing but a warning', async () => {
    const store = freshStore();
    const before = await store.get('general');
    store.recordFailure = async () => {
      throw Object.assign(new Error('disk full'), { name: 'ENOSPC' });
    };
    const capture = captureJsonLines();
    try {
      expect(await recordHealth(store, before, attempt('retryable'), POLICY, FULL)).toBe(false);
    } finally {
      capture.restore();
    }
    expect(capture.lines.some((l) => l.message === "The receiver's health could not be recorded")).toBe(true);
  });

  it("a timeout of an attempt the caller's deadline cut short leaves the streak as it was; a full-length one counts", async () => {
    const store = freshStore();
    const timedOut = (ms: number): DeliveryAttempt => ({
      attempt: 1,
      at: new Date(T0).toISOString(),
      duration_ms: ms,
      outcome: 'retryable',
      error: `timed out after ${ms} ms`,
    });
    await recordHealth(store, await store.get('lead_analysis'), attempt('retryable'), POLICY, FULL);
    const capture = captureJsonLines();
    try {
      const cut = { timeoutMs: 800, deliveryTimeoutMs: 3_000 };
      expect(await recordHealth(store, await store.get('lead_analysis'), timedOut(800), POLICY, cut)).toBe(false);
      expect((await store.get('lead_analysis')).health.consecutive_failures).toBe(1);
      // The streak reaches the threshold (2) only with a timeout that had the whole DELIVERY_TIMEOUT_MS.
      expect(await recordHealth(store, await store.get('lead_analysis'), timedOut(3_000), POLICY, FULL)).toBe(true);
    } finally {
      capture.restore();
    }
    expect((await store.get('lead_analysis')).health.consecutive_failures).toBe(2);
    expect(capture.events().map((e) => e.event_type)).toEqual(['WEBHOOK_ENDPOINT_FAILING']);
  });
});
