import { describe, expect, it } from 'vitest';
import {
  ASYNC_RESERVES,
  asyncBudget,
  EXPRESS_LIMIT_MS,
  maxAsyncAgentTimeoutMs,
  maxSyncAgentTimeoutMs,
  msLeft,
  SYNC_RESERVES,
  syncBudget,
} from '../../../functions/domain/budget.ts';
import { rateWaitLimitMs } from '../../../functions/domain/endpoints.ts';

const RECEIVED = '2026-11-29T12:00:00.000Z';
const at = (ms: number) => new Date(Date.parse(RECEIVED) + ms);
const iso = (ms: number) => at(ms).toISOString();

describe("the synchronous budget (Validate decides it; every later timeout fits inside the caller's wait)", () => {
  it('with the defaults (29 s integration timeout, 20 s agent): agent 20 s, deliveries end at 25 s, answer by 28 s', () => {
    expect(syncBudget({ responseTimeoutMs: 29_000, agentTimeoutMs: 20_000 }, RECEIVED, at(300))).toEqual({
      agent_seconds: 20,
      deliver_by: iso(25_000),
      answer_by: iso(28_000),
    });
  });

  it("adds up below the integration timeout: margin, the tail after deliveries, Classify and the agent's retries", () => {
    const r = SYNC_RESERVES;
    // Worst case of the agent phase: Validate's time, agent_seconds, and the throttling retry waits.
    const validated = 900;
    const budget = syncBudget({ responseTimeoutMs: 29_000, agentTimeoutMs: 20_000 }, RECEIVED, at(validated));
    const agentEndsBy = validated + budget.agent_seconds * 1000 + r.agentRetryWaits;
    expect(agentEndsBy + r.classify).toBeLessThanOrEqual(Date.parse(budget.deliver_by!) - Date.parse(RECEIVED));
    expect(Date.parse(budget.answer_by!) - Date.parse(budget.deliver_by!)).toBe(r.tail);
    expect(Date.parse(budget.answer_by!) - Date.parse(RECEIVED)).toBe(29_000 - r.margin);
    expect(r.fallback).toBeLessThan(r.tail);
  });

  it("gives a slow Validate's time back from the agent, never less than 1 s", () => {
    const settings = { responseTimeoutMs: 29_000, agentTimeoutMs: 20_000 };
    expect(syncBudget(settings, RECEIVED, at(4_200)).agent_seconds).toBe(16);
    expect(syncBudget(settings, RECEIVED, at(40_000)).agent_seconds).toBe(1);
  });

  it('never gives the agent more than its own timeout, in whole seconds (Step Functions TimeoutSeconds)', () => {
    expect(syncBudget({ responseTimeoutMs: 60_000, agentTimeoutMs: 45_500 }, RECEIVED, at(0)).agent_seconds).toBe(45);
    expect(syncBudget({ responseTimeoutMs: 60_000, agentTimeoutMs: 300 }, RECEIVED, at(0)).agent_seconds).toBe(1);
  });

  it('counts from now when the receive time is unreadable', () => {
    const now = at(0);
    expect(syncBudget({ responseTimeoutMs: 29_000, agentTimeoutMs: 20_000 }, 'garbage', now).answer_by).toBe(
      iso(28_000),
    );
  });

  it('maxSyncAgentTimeoutMs: the longest agent timeout a synchronous call honours (config refuses more)', () => {
    expect(maxSyncAgentTimeoutMs(29_000)).toBe(21_000);
    expect(maxSyncAgentTimeoutMs(60_000)).toBe(52_000);
  });

  it('msLeft: time to a deadline; none (null or unreadable) is Infinity', () => {
    expect(msLeft(iso(5_000), at(1_000))).toBe(4_000);
    expect(msLeft(null, at(0))).toBe(Number.POSITIVE_INFINITY);
    expect(msLeft('soon', at(0))).toBe(Number.POSITIVE_INFINITY);
  });
});

describe('the asynchronous budget (no caller waits: only the Express limit bounds the run)', () => {
  it('gives the agent ASYNC_AGENT_TIMEOUT_MS and sets no deadlines', () => {
    expect(asyncBudget({ asyncAgentTimeoutMs: 120_000, deliveryTimeoutMs: 3_000 })).toEqual({
      agent_seconds: 120,
      deliver_by: null,
      answer_by: null,
    });
  });

  it('keeps the agent, Classify, every delivery retry and its rate wait, and the export inside the 300 s Express limit', () => {
    const r = ASYNC_RESERVES;
    const max = maxAsyncAgentTimeoutMs(3_000);
    expect(max).toBe(260_000);
    // The worst case at that maximum: 4 attempts of DELIVERY_TIMEOUT_MS, each after the longest wait for the
    // receiver's rate (functions/domain/endpoints.ts: 2 s with no caller waiting), and the 3 Retry waits.
    const rateWait = rateWaitLimitMs(null, 0);
    expect(r.deliveryRateWait).toBe(rateWait);
    const deliveries = 4 * (rateWait + 3_000) + 7_000;
    const worstCase = r.margin + max + r.agentRetryWaits + r.classify + deliveries + r.tail;
    // Some of the limit is left for what no reserve names (Lambda invocations, cold starts, store calls).
    expect(EXPRESS_LIMIT_MS - worstCase).toBeGreaterThanOrEqual(2_000);
    // A longer setting is cut to what fits; slower receivers leave the agent less.
    expect(asyncBudget({ asyncAgentTimeoutMs: 600_000, deliveryTimeoutMs: 3_000 }).agent_seconds).toBe(260);
    expect(maxAsyncAgentTimeoutMs(10_000)).toBe(232_000);
  });
});
