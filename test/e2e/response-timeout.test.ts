import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { RequestSummary } from '../../local/server/config.ts';
import { runMain } from '../support/cli.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';

/**
 * The caller's wait locally ends at RESPONSE_TIMEOUT_MS as API Gateway's ends at its integration timeout (29 s):
 * the same 504, body and headers as its INTEGRATION_TIMEOUT response (docs/contract.md, "Errors"), while the
 * conversation goes on to its delivery and export. The timer is the test's (GatewayOptions.responseTimer): nothing
 * waits 29 s.
 */
let world: TestWorld;
const timers: { ms: number; fire: () => void; cancelled: boolean }[] = [];
const lines: RequestSummary[] = [];
let statusReadTooSlow = false;
beforeAll(async () => {
  world = await startWorld(
    {},
    {
      responseTimer: (ms, fire) => {
        const timer = { ms, fire, cancelled: false };
        timers.push(timer);
        // The status route's timer: its read outlasts it when the test says so.
        if (ms === 9_000 && statusReadTooSlow) fire();
        return () => {
          timer.cancelled = true;
        };
      },
      onExecution: (summary) => lines.push(summary),
    },
  );
});
afterAll(async () => {
  await world?.close();
});

describe('a synchronous answer later than RESPONSE_TIMEOUT_MS', () => {
  it("is cut with API Gateway's 504; the conversation is delivered, exported and found afterwards", async () => {
    let invoked!: () => void;
    const agentCalled = new Promise<void>((resolve) => {
      invoked = resolve;
    });
    let answer!: () => void;
    const agentAnswers = new Promise<void>((resolve) => {
      answer = resolve;
    });
    world.agent.behave(async (request) => {
      invoked();
      await agentAnswers;
      return { payload: { response: `Top deals: ${String(request.query)}`, agent: 'test-agent' } };
    });
    const key = 'response-timeout-0001';
    const posted = world.post(SEED_REQUEST, { 'idempotency-key': key });
    try {
      await agentCalled;
      // Before: no timer; the caller waited for the agent however long it took.
      expect(timers.map((t) => t.ms)).toEqual([29_000]);
      timers[0]!.fire();
      const cut = await posted;
      expect(cut.status).toBe(504);
      expect(cut.body).toEqual({
        success: false,
        error: { code: 'TIMEOUT', message: expect.stringMatching(/^POST \/webhook did not answer within /) },
      });
      expect(cut.body.error.message).toContain('its record is exported when it completes');
      // Before: no Retry-After, nor a word of how to get the answer. Now when, and how: the same key.
      expect(cut.body.error.message).toContain('sent again after Retry-After with the same Idempotency-Key');
      expect(cut.headers.get('retry-after')).toBe('2');
      expect(cut.headers.get('content-type')).toBe('application/json; charset=utf-8');
      expect(cut.headers.get('cache-control')).toBe('no-store');
      expect(lines.at(-1)).toMatchObject({ http_status: 504, conversation_id: expect.stringMatching(/^webhook_/) });
    } finally {
      answer();
    }
    await world.gateway.idle();
    world.agent.reset();

    // The conversation went on: delivered once, exported, and the operator's line names it.
    expect(world.receiver.received).toHaveLength(1);
    const conversationId = world.receiver.received[0]!.body.conversation_id as string;
    // The operator's line for the 504 named it already (the caller's answer cannot: API Gateway's has no id).
    expect(lines.at(-2)).toMatchObject({ http_status: 504, conversation_id: conversationId });
    expect(lines.at(-1)).toMatchObject({ http_status: 200, conversation_id: conversationId });
    expect(lines.at(-1)!.detail).toMatch(/after the caller's 504/);
    expect((await world.listKeys()).some((k) => k.includes(conversationId))).toBe(true);
    const shown = await runMain(['conversations', 'show', conversationId, '--json'], {
      LOCAL_DATA_DIR: world.dataDir,
    });
    expect(shown.code, shown.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toMatchObject({ conversation: { conversation_id: conversationId } });
    // The caller's retry with the same key gets the first conversation's answer, nothing run again.
    const again = await world.post(SEED_REQUEST, { 'idempotency-key': key });
    expect(again.status).toBe(200);
    expect(again.body.conversation_id).toBe(conversationId);
    expect(world.agent.invocations).toHaveLength(0);
  });

  it('an answer in time cancels the timer and is answered as usual', async () => {
    const before = timers.length;
    const res = await world.post({ ...SEED_REQUEST, query: 'How is the pipeline?' });
    expect(res.status).toBe(200);
    expect(timers).toHaveLength(before + 1);
    expect(timers.at(-1)!.cancelled).toBe(true);
  });
});

describe('GET /conversations/{id} not read in time', () => {
  it("answers the AWS route's own 504 a second before its function's 10 s timeout; in time, as usual", async () => {
    const accepted = await world.post({ ...SEED_REQUEST, query: 'Status timer?' }, { prefer: 'respond-async' });
    expect(accepted.status).toBe(202);
    await world.gateway.idle();
    const before = timers.length;
    const inTime = await fetch(accepted.body.status_url as string);
    expect(inTime.status).toBe(200);
    expect(timers.slice(before).map((t) => [t.ms, t.cancelled])).toEqual([[9_000, true]]);

    statusReadTooSlow = true;
    try {
      const late = await fetch(accepted.body.status_url as string);
      expect(late.status).toBe(504);
      expect(await late.json()).toEqual({
        success: false,
        error: {
          code: 'TIMEOUT',
          message: expect.stringMatching(/^GET \/conversations\/\{conversation_id\} did not answer in time/),
        },
      });
      expect(late.headers.get('cache-control')).toBe('no-store');
      expect(late.headers.get('retry-after')).toBe('2');
      expect(late.headers.get('content-type')).toBe('application/json; charset=utf-8');
    } finally {
      statusReadTooSlow = false;
    }
  });
});
