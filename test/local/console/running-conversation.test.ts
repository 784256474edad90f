import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * An asynchronous conversation whose run is still going (its agent has not answered): its console page showed
 * status in_progress, "(no answer)" and a timeline of the accept execution alone, with no word of the run, which
 * read as a conversation stuck after its accept. It now says the run is under way, and when that means it was lost.
 */
let world: TestWorld;

beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});

describe('console conversation page of a conversation still running', () => {
  it('says its run is under way, until the run ends', async () => {
    let answer = () => {};
    const answered = new Promise<void>((resolve) => {
      answer = resolve;
    });
    world.agent.behave(async (request) => {
      await answered;
      return { payload: { response: `Answer to: ${String(request.query)}` } };
    });
    try {
      const accepted = await world.post(SEED_REQUEST, { prefer: 'respond-async' });
      expect(accepted.status).toBe(202);
      const id = accepted.body.conversation_id as string;
      const page = async () => {
        const response = await fetch(`${world.gateway.url}/console/conversations/${id}`);
        return { status: response.status, text: await response.text() };
      };
      await expect.poll(async () => (await page()).status, { timeout: 5_000 }).toBe(200);
      const running = (await page()).text;
      expect(running).toContain('<span class="badge b-in_progress">in_progress</span>');
      expect(running).toContain(
        '<p class="note" id="run-under-way">Its run is under way: the execution working on it is shown here once it ends',
      );

      answer();
      await expect
        .poll(async () => (await page()).text, { timeout: 5_000 })
        .toContain('<span class="badge b-completed">completed</span>');
      expect((await page()).text).not.toContain('run-under-way');
    } finally {
      answer();
      world.agent.reset();
    }
  });
});
