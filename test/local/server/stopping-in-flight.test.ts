import { afterAll, describe, expect, it } from 'vitest';
import { asyncRunEndsBy } from '../../../functions/domain/budget.ts';
import { WEBHOOK_TYPES } from '../../../functions/domain/conversation.ts';
import { DELIVERY_URL_VARIABLES } from '../../../functions/domain/delivery.ts';
import { stoppingLine } from '../../../local/cli/main.ts';
import type { HistoryEvent } from '../../../local/engine/engine.ts';
import { RunningExecutions } from '../../../local/engine/running.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

let world: TestWorld | undefined;
afterAll(async () => {
  await world?.close();
});

/**
 * Ctrl-C said only "the conversations in flight finish first": not how many, nor for how long (an asynchronous one's
 * agent may be given minutes), so the wait looked like a hang. It now says both, from the conversations' budgets.
 */
describe('what a stop waits for', () => {
  it('counts the conversations in flight and the latest their budgets let them end by', async () => {
    const { handler: classify } = await import('../../../functions/classify/handler.ts');
    let held = 0;
    let bothHeld!: () => void;
    const reached = new Promise<void>((resolve) => {
      bothHeld = resolve;
    });
    let letGo!: () => void;
    const gate = new Promise<void>((resolve) => {
      letGo = resolve;
    });
    const builtIn = Object.fromEntries(WEBHOOK_TYPES.map((t) => [DELIVERY_URL_VARIABLES[t], '']));
    world = await startWorld(
      { ...builtIn, RESPONSE_TIMEOUT_MS: '20000', ASYNC_AGENT_TIMEOUT_MS: '200000', DELIVERY_TIMEOUT_MS: '3000' },
      {
        stageOverrides: {
          classify: async (input) => {
            if (++held === 2) bothHeld();
            await gate;
            return classify(input as never);
          },
        },
      },
    );
    const { gateway } = world;
    expect(gateway.inFlight()).toEqual({ count: 0, endsBy: null });

    const syncSent = Date.now();
    const answer = world.post(SEED_REQUEST);
    const asyncSent = Date.now();
    const accepted = await world.post({ ...SEED_REQUEST, query: 'later, please' }, { prefer: 'respond-async' });
    expect(accepted.status).toBe(202);
    await reached;
    const reachedAt = Date.now();

    const inFlight = gateway.inFlight();
    expect(inFlight.count).toBe(2);
    // The synchronous one ends by its answer_by (20 s less 1 s of margin after it arrived); the asynchronous one
    // (a 200 s agent) by its start, its agent's 200 s and the reserves after it: that one is the latest.
    const ends = inFlight.endsBy!.getTime();
    expect(ends).toBeGreaterThanOrEqual(asyncRunEndsBy(asyncSent, 200, 3000));
    expect(ends).toBeLessThanOrEqual(asyncRunEndsBy(reachedAt, 200, 3000));
    expect(ends - syncSent).toBeGreaterThan(19_000 + 200_000);

    const line = stoppingLine(inFlight, new Date(reachedAt));
    expect(line).toContain('the 2 conversations in flight finish first');
    expect(line).toContain(`by ${inFlight.endsBy!.toTimeString().slice(0, 8)} at the latest`);
    // Minutes: the asynchronous one ends 4 min after its run began, less the time it took to reach Classify (under a
    // second on an idle machine, more on a loaded one); the words for a given wait: the last test.
    expect(line).toMatch(/\(in [34] min \d+ s\)/);
    expect(line).toContain('Ctrl-C again stops at once');

    letGo();
    expect((await answer).status).toBe(200);
    await gateway.idle();
    expect(gateway.inFlight()).toEqual({ count: 0, endsBy: null });
  });

  it('counts an asynchronous conversation once while its accept run and its conversation run are both under way', () => {
    const running = new RunningExecutions();
    const conversation = { conversation_id: 'webhook_20261203_100000_testing_async_abc' };
    const accept = running.begin('request-1', 'accept', { accept: { query: 'later, please' } });
    accept.onEvent({
      type: 'TaskStateExited',
      timestamp: Date.now(),
      state: 'Validate',
      output: { valid: true, duplicate: false, conversation },
    } satisfies HistoryEvent);
    // StartConversation began the conversation run; the accept run is under way until its history is saved.
    running.begin(conversation.conversation_id, 'conversation', { accepted: { valid: true, conversation } });
    const limits: Record<string, number> = { accept: 60_000, conversation: 300_000 };
    const inFlight = running.inFlight((machine) => limits[machine] ?? null, 3000);
    // Before: 2 for one conversation.
    expect(inFlight.count).toBe(1);
    expect(running.list()).toHaveLength(2); // the console still shows both executions
    accept.end();
    expect(running.inFlight((machine) => limits[machine] ?? null, 3000).count).toBe(1);
  });

  it('says the wait in words: one conversation, seconds; none', () => {
    const now = new Date('2026-12-03T10:00:00.000Z');
    const endsBy = new Date('2026-12-03T10:00:27.400Z');
    expect(stoppingLine({ count: 1, endsBy }, now)).toBe(
      `stopping: the conversation in flight finishes first, by ${endsBy.toTimeString().slice(0, 8)} at the latest (in 28 s); Ctrl-C again stops at once (the next start recovers them)…`,
    );
    expect(stoppingLine({ count: 0, endsBy: null }, now)).toBe('stopping: no conversation in flight…');
  });
});
