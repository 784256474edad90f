import { mkdir, readdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { MAX_THREAD_HISTORY_BYTES } from '../../functions/domain/thread.ts';
import { rawGet } from '../support/browser.ts';
import { runMain } from '../support/cli.ts';
import { folderOf, SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';
import { captureJsonLines } from '../support/log-capture.ts';

let world: TestWorld;
/** How many of the next Validate tasks that take a thread turn fail after taking it (as a Lambda service error). */
let validateFailuresAfterTurn = 0;
beforeAll(async () => {
  const { handler: validate } = await import('../../functions/validate/handler.ts');
  world = await startWorld(
    { ASYNC_AGENT_TIMEOUT_MS: '3000' },
    {
      stageOverrides: {
        // Validate did its work (the turn is claimed), then the invocation failed as Lambda reports its own fault:
        // the workflow's Retry runs Validate again with the same input.
        validate: async (input) => {
          const result = (await validate(input as never)) as { conversation?: { metadata?: { thread_turn?: number } } };
          const claimed = !('accepted' in (input as object)) && result.conversation?.metadata?.thread_turn;
          if (claimed && validateFailuresAfterTurn > 0) {
            validateFailuresAfterTurn -= 1;
            throw Object.assign(new Error('Service error after the function ran'), { name: 'Lambda.ServiceException' });
          }
          return result;
        },
      },
    },
  );
});
afterAll(async () => {
  await world?.close();
});
beforeEach(() => {
  world.agent.reset();
  world.receiver.reset();
});

type AgentThreadSeen = {
  thread_id: string;
  session_id: string;
  turn: number;
  earlier_turns: { turn: number; conversation_id: string; query: string; answer: string; truncated?: boolean }[];
  omitted_turns: number;
};
const threadOf = (i: number) => world.agent.invocations[i]!.request.thread as AgentThreadSeen | null;

describe('threads: conversations of one thread_id see the earlier turns', () => {
  it('a two-turn thread: the second agent call receives the first turn (question and answer), both exports record the thread and turn', async () => {
    const first = await world.post({ ...SEED_REQUEST, query: 'Top deals this quarter?', thread_id: 'q3-review' });
    expect(first.status).toBe(200);
    const second = await world.post({
      ...SEED_REQUEST,
      query: 'Which of those are at risk?',
      thread_id: 'q3-review',
    });
    expect(second.status).toBe(200);

    const one = threadOf(0)!;
    const two = threadOf(1)!;
    expect(one).toMatchObject({ thread_id: 'q3-review', turn: 1, earlier_turns: [], omitted_turns: 0 });
    expect(one.session_id).toMatch(/^thread-[0-9a-f]{40}$/);
    expect(two).toMatchObject({
      thread_id: 'q3-review',
      session_id: one.session_id,
      turn: 2,
      omitted_turns: 0,
      earlier_turns: [
        {
          turn: 1,
          conversation_id: first.body.conversation_id,
          query: 'Top deals this quarter?',
          answer: 'Answer to: Top deals this quarter?',
        },
      ],
    });

    const analysis = await world.getJson(`${folderOf(second.body.conversation_id)}analysis.json`);
    expect(analysis).toMatchObject({ thread_id: 'q3-review', thread_turn: 2 });
    const keys = Object.keys(analysis);
    expect(keys.slice(-2)).toEqual(['thread_id', 'thread_turn']);
    const exported = await world.getJson(`${folderOf(first.body.conversation_id)}conversation.json`);
    expect(exported.conversation.metadata).toMatchObject({ thread_id: 'q3-review', thread_turn: 1 });
    // The history travelled only to the agent: the later states and the delivery do not carry it.
    expect(JSON.stringify(world.receiver.received[1]!.body)).not.toContain('earlier_turns');
  });

  it('a conversation without thread_id gives the agent thread null and exports null thread columns', async () => {
    const plain = await world.post(SEED_REQUEST);
    expect(plain.status).toBe(200);
    expect(threadOf(0)).toBeNull();
    const analysis = await world.getJson(`${folderOf(plain.body.conversation_id)}analysis.json`);
    expect(analysis).toMatchObject({ thread_id: null, thread_turn: null });
  });

  it("another source's thread of the same name is another thread: its turns are never given", async () => {
    await world.post({ ...SEED_REQUEST, query: 'secret pipeline numbers', thread_id: 'shared-name' });
    const other = await world.post({
      ...SEED_REQUEST,
      source_system: 'other_system',
      query: 'what was said before?',
      thread_id: 'shared-name',
    });
    expect(other.status).toBe(200);
    expect(threadOf(1)).toMatchObject({ thread_id: 'shared-name', turn: 1, earlier_turns: [] });
    expect(threadOf(1)!.session_id).not.toBe(threadOf(0)!.session_id);
  });

  it('an oversized history is trimmed to the bound, newest first, and the conversation still answers', async () => {
    // Each answer is ~20 KB: two of them exceed the 32 KB the agent is given.
    world.agent.behave((request) => ({
      payload: { response: `${'x'.repeat(20_000)} answer to ${String(request.query)}` },
    }));
    for (const n of [1, 2, 3]) {
      const r = await world.post({ ...SEED_REQUEST, query: `question ${n}`, thread_id: 'long-one' });
      expect(r.status).toBe(200);
    }
    const third = threadOf(2)!;
    expect(third.turn).toBe(3);
    expect(third.earlier_turns.map((t) => t.turn)).toEqual([2]);
    expect(third.omitted_turns).toBe(1);
    expect(Buffer.byteLength(JSON.stringify(third.earlier_turns))).toBeLessThanOrEqual(MAX_THREAD_HISTORY_BYTES);
  });

  it('a damaged turn file is left out and counted in omitted_turns, so the agent knows the thread has a gap', async () => {
    for (const n of [1, 2]) {
      const r = await world.post({ ...SEED_REQUEST, query: `question ${n}`, thread_id: 'with-a-gap' });
      expect(r.status).toBe(200);
    }
    const folder = path.join(world.dataDir, 'threads', SEED_REQUEST.source_system, 'with-a-gap');
    await writeFile(path.join(folder, '1.json'), '{"turn":1,"conver'); // cut short
    const logs = captureJsonLines();
    try {
      expect((await world.post({ ...SEED_REQUEST, query: 'question 3', thread_id: 'with-a-gap' })).status).toBe(200);
    } finally {
      logs.restore();
    }
    const third = threadOf(2)!;
    expect(third.earlier_turns.map((t) => t.turn)).toEqual([2]);
    expect(third.omitted_turns).toBe(1);
  });

  it('an asynchronous turn of a thread reads the turns answered before it runs', async () => {
    const first = await world.post(
      { ...SEED_REQUEST, query: 'first async', thread_id: 'async-thread' },
      {
        prefer: 'respond-async',
      },
    );
    expect(first.status).toBe(202);
    await world.gateway.idle();
    const second = await world.post(
      { ...SEED_REQUEST, query: 'second async', thread_id: 'async-thread' },
      {
        prefer: 'respond-async',
      },
    );
    expect(second.status).toBe(202);
    await world.gateway.idle();
    expect(threadOf(1)).toMatchObject({
      turn: 2,
      earlier_turns: [{ turn: 1, conversation_id: first.body.conversation_id, query: 'first async' }],
    });
  });

  it.each([
    ['synchronous', {}],
    ['asynchronous', { prefer: 'respond-async' }],
  ])(
    'a %s conversation whose Validate failed after taking its turn and was retried keeps that turn: no gap',
    async (mode, headers: Record<string, string>) => {
      const threadId = `retried-validate-${mode}`;
      const ids: string[] = [];
      for (const query of ['first question', 'second question']) {
        validateFailuresAfterTurn = 1;
        const r = await world.post({ ...SEED_REQUEST, query, thread_id: threadId }, headers);
        expect(r.status).toBe(mode === 'synchronous' ? 200 : 202);
        expect(validateFailuresAfterTurn).toBe(0);
        await world.gateway.idle();
        ids.push(r.body.conversation_id as string);
      }
      const [first] = await world.gateway.executions.executions(ids[0]!);
      expect(first!.events.filter((e) => e.state === 'Validate' && e.type === 'StateRetried')).toHaveLength(1);
      expect(threadOf(0)).toMatchObject({ turn: 1, earlier_turns: [] });
      expect(threadOf(1)).toMatchObject({ turn: 2, earlier_turns: [{ turn: 1, conversation_id: ids[0] }] });
      for (const [i, id] of ids.entries()) {
        const exported = await world.getJson(`${folderOf(id)}conversation.json`);
        expect(exported.conversation.metadata).toMatchObject({ thread_id: threadId, thread_turn: i + 1 });
      }
      expect((await readdir(path.join(world.dataDir, 'threads', 'testing_system', threadId))).sort()).toEqual([
        '1.claim',
        '1.json',
        '2.claim',
        '2.json',
      ]);
    },
  );

  it('a thread_id that is not an id is refused with 400 and nothing runs', async () => {
    for (const thread_id of ['', '../etc', 'a b', 'x'.repeat(129), 42]) {
      const r = await world.post({ ...SEED_REQUEST, thread_id });
      expect(r.status).toBe(400);
      expect(r.body.error.code).toBe('VALIDATION_ERROR');
      expect(r.body.error.details[0].field).toBe('thread_id');
    }
    expect(world.agent.invocations).toHaveLength(0);
  });
});

describe('a thread shown in order: conversations list --thread and the console', () => {
  it('lists the turns of a thread in turn order (each source apart), and the console shows each question with its answer', async () => {
    const ids: string[] = [];
    for (const query of ['Top deals this quarter?', 'Which of those are at risk?', 'And the churn report?']) {
      ids.push((await world.post({ ...SEED_REQUEST, query, thread_id: 'shown-thread' })).body.conversation_id);
    }
    await world.post({ ...SEED_REQUEST, query: 'unrelated' });
    await world.post({ ...SEED_REQUEST, source_system: 'other_system', query: 'other', thread_id: 'shown-thread' });

    const env = { LOCAL_DATA_DIR: world.dataDir };
    const listed = await runMain(
      ['conversations', 'list', '--thread', 'shown-thread', '--source', 'testing_system', '--json'],
      env,
    );
    expect(listed.code, listed.stderr).toBe(0);
    const rows = JSON.parse(listed.stdout) as { conversation_id: string; thread_turn: number }[];
    expect(rows.map((r) => [r.thread_turn, r.conversation_id])).toEqual(ids.map((id, i) => [i + 1, id]));
    const table = await runMain(['conversations', 'list', '--thread', 'shown-thread'], env);
    expect(table.code, table.stderr).toBe(0);
    const lines = table.stdout.trim().split('\n');
    expect(lines[0]).toMatch(/^turn\s+conversation_id/);
    // other_system's thread of the same name, then testing_system's in turn order.
    expect(lines.slice(2).map((l) => l.split(/\s+/).slice(0, 2).join(' '))).toEqual([
      expect.stringMatching(/^1 webhook_\d{8}_\d{6}_othersy_/),
      `1 ${ids[0]}`,
      `2 ${ids[1]}`,
      `3 ${ids[2]}`,
    ]);
    const bad = await runMain(['conversations', 'list', '--thread', '../x'], env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--thread takes a thread_id/);

    const shown = await runMain(['conversations', 'show', ids[1]!], env);
    expect(shown.stdout).toMatch(/thread\s+shown-thread\s+turn 2/);

    const page = await rawGet(`${world.gateway.url}/console/threads/testing_system/shown-thread`);
    expect(page.status).toBe(200);
    const order = ids.map((id) => page.body.indexOf(`data-id="${id}"`));
    expect(order.every((at, i) => at > 0 && (i === 0 || at > order[i - 1]!))).toBe(true);
    expect(page.body).toContain('Which of those are at risk?');
    expect(page.body).toContain('Answer to: Which of those are at risk?');
    expect(page.body).not.toContain('>other<');
    const conversation = await rawGet(`${world.gateway.url}/console/conversations/${ids[2]}`);
    expect(conversation.body).toContain('href="/console/threads/testing_system/shown-thread"');
  });
});

describe('thread store failures', () => {
  it('a thread store that cannot take the turn fails the request with 500 before the agent runs; its Idempotency-Key is free for a retry', async () => {
    const threads = path.join(world.dataDir, 'threads');
    // The source's folder is a file: no turn can be claimed under it.
    await mkdir(threads, { recursive: true });
    await writeFile(path.join(threads, 'broken_source'), 'not a folder');
    const request = { ...SEED_REQUEST, source_system: 'broken_source', thread_id: 't1' };
    const r = await world.post(request, { 'idempotency-key': 'thread-store-down' });
    expect(r.status).toBe(500);
    expect(world.agent.invocations).toHaveLength(0);
    const again = await world.post({ ...request, thread_id: undefined }, { 'idempotency-key': 'thread-store-down' });
    expect(again.status).toBe(200);
  });

  it('an asynchronous run whose thread history cannot be read still runs: the agent gets the thread without it (history_unavailable), the status completes', async () => {
    // Turn 1 was claimed and its file is a folder: reading it fails (a missing file would just be skipped).
    const folder = path.join(world.dataDir, 'threads', 'testing_system', 'unreadable');
    await mkdir(path.join(folder, '1.json', 'x'), { recursive: true });
    await writeFile(path.join(folder, '1.claim'), '');
    const logs = captureJsonLines();
    let accepted: Awaited<ReturnType<TestWorld['post']>>;
    try {
      accepted = await world.post({ ...SEED_REQUEST, thread_id: 'unreadable' }, { prefer: 'respond-async' });
      await world.gateway.idle();
    } finally {
      logs.restore();
    }
    expect(accepted.status).toBe(202);
    expect(threadOf(0)).toMatchObject({ turn: 2, earlier_turns: [], history_unavailable: true });
    const id = accepted.body.conversation_id as string;
    const status = await (await fetch(accepted.body.status_url)).json();
    expect(status).toMatchObject({ conversation_id: id, status: 'completed' });
    expect(logs.events(id).find((e) => e.event_type === 'WEBHOOK_THREAD_HISTORY_UNAVAILABLE')).toMatchObject({
      thread_id: 'unreadable',
      thread_turn: 2,
      level: 'ERROR',
    });
    // A synchronous caller is told instead (500 before the agent runs).
    const sync = await world.post({ ...SEED_REQUEST, thread_id: 'unreadable' });
    expect(sync.status).toBe(500);
    expect(world.agent.invocations).toHaveLength(1);
  });

  it('a thread store that refuses the answered turn does not fail the conversation: it is delivered and exported, and WEBHOOK_THREAD_TURN_UNSAVED names the turn', async () => {
    // Turn 1's file is a non-empty folder: writing the answered turn over it fails.
    await mkdir(path.join(world.dataDir, 'threads', 'testing_system', 'unsaved', '1.json', 'x'), { recursive: true });
    const logs = captureJsonLines();
    let r: Awaited<ReturnType<TestWorld['post']>>;
    try {
      r = await world.post({ ...SEED_REQUEST, thread_id: 'unsaved' });
    } finally {
      logs.restore();
    }
    expect(r.status).toBe(200);
    expect(world.receiver.received).toHaveLength(1);
    expect(await world.listKeys(folderOf(r.body.conversation_id))).toHaveLength(4);
    expect(
      logs.events(r.body.conversation_id).find((e) => e.event_type === 'WEBHOOK_THREAD_TURN_UNSAVED'),
    ).toMatchObject({
      thread_id: 'unsaved',
      thread_turn: 1,
      level: 'ERROR',
    });
  });
});
