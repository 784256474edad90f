import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { EXPORT_FILES } from '../../functions/domain/export-formats.ts';
import { folderOf, SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';
import { captureJsonLines } from '../support/log-capture.ts';

/**
 * An agent whose JSON holds an unpaired surrogate escape (`\ud800`), which no UTF-8 text can hold: the gateway writes
 * U+FFFD in its place, in the caller's answer, the delivery and every export alike, and every export stays JSON
 * that jq (docs/operations.md's reader of conversation.json) takes (docs/contract.md#the-manager-agent).
 */
let world: TestWorld;

/**
 * jq is Debian's (`apt-get install -y jq`); CI installs it (.ci/run). On a developer machine without it, and without
 * CI set, only the jq read is skipped, with a note: the exports are still checked for unpaired escapes.
 */
const JQ = (process.env.PATH ?? '')
  .split(path.delimiter)
  .map((d) => path.join(d, 'jq'))
  .find((p) => existsSync(p));
if (!JQ && !process.env.CI) {
  console.warn('unpaired-surrogate test: jq read SKIPPED: no `jq` command (apt-get install -y jq). CI installs it.');
}
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});
beforeEach(() => {
  world.agent.reset();
  world.receiver.reset();
});

const LONE_ESCAPE = /(?<!\\)(?:\\\\)*\\ud[89a-f][0-9a-f]{2}/i;

/** Each export as written: JSON that jq reads, with no unpaired surrogate escape in it. */
async function expectExportsReadable(id: string): Promise<Record<string, string>> {
  const bodies: Record<string, string> = {};
  for (const file of EXPORT_FILES) {
    const body = await world.getText(`${folderOf(id)}${file}`);
    expect(body, file).not.toMatch(LONE_ESCAPE);
    if (JQ || process.env.CI) {
      const jq = spawnSync(JQ ?? 'jq', ['-c', '.'], { input: body, encoding: 'utf8' });
      expect(jq.error, `${file}: jq must be installed in CI (.ci/run)`).toBeUndefined();
      expect(jq.stderr, file).toBe('');
      expect(jq.status, file).toBe(0);
    }
    bodies[file] = body;
  }
  return bodies;
}

describe('an agent answer holding an unpaired surrogate', () => {
  it('is answered, delivered and exported with U+FFFD in its place, and the log line counts them', async () => {
    world.agent.behave(() => ({
      payload: null,
      raw: '{"response":"Top deals: Acme \\ud800 renewal \\udc00","details":{"owner\\udbff":"Jo \\ud83d\\ude00"}}',
    }));
    const capture = captureJsonLines();
    let res: Awaited<ReturnType<TestWorld['post']>>;
    try {
      res = await world.post(SEED_REQUEST);
    } finally {
      capture.restore();
    }
    expect(res.status).toBe(200);
    const expected = {
      response: 'Top deals: Acme \uFFFD renewal \uFFFD',
      details: { 'owner\uFFFD': 'Jo 😀' },
    };
    expect(res.body.response).toEqual(expected);
    const id = res.body.conversation_id as string;

    expect(world.receiver.received).toHaveLength(1);
    expect(world.receiver.received[0]!.body).toMatchObject({ response: expected });

    const bodies = await expectExportsReadable(id);
    const record = JSON.parse(bodies['conversation.json']!).conversation;
    expect(record.conversation.turns[1]).toMatchObject({ content: expected.response, data: expected });
    expect(JSON.parse(bodies['analysis.json']!).response).toBe(expected.response);

    const line = capture.events(id).find((l) => l.event_type === 'WEBHOOK_MANAGER_AGENT_RESPONSE');
    expect(line).toMatchObject({ unpaired_surrogates_replaced: 3 });
  });

  it("in the agent's error message: the 502 and the failed export carry U+FFFD", async () => {
    world.agent.behave(() => ({
      functionError: 'Unhandled',
      payload: null,
      raw: '{"errorType":"ValueError","errorMessage":"bad text \\ud800"}',
    }));
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(502);
    expect(res.body.error.message).toBe('The manager agent failed: ValueError: bad text \uFFFD');
    const bodies = await expectExportsReadable(res.body.error.conversation_id);
    expect(JSON.parse(bodies['analysis.json']!).last_error).toMatch(/bad text \uFFFD$/);
  });
});

/**
 * Numbers JavaScript reads as doubles (docs/contract.md#the-manager-agent, "Numbers"): an integer past 2^53 - 1 is
 * answered, delivered and exported rounded, one past a double's range as null. The docs called U+FFFD the one change
 * the gateway makes to an answer; an agent returning a 64-bit id as a number lost its last digits without a word.
 */
describe('an agent answer with numbers a double cannot hold', () => {
  it('is answered, delivered and exported with them rounded (past 2^53 - 1) or null (past a double)', async () => {
    world.agent.behave(() => ({
      payload: null,
      raw: '{"response":"Top deals","deal_id":9007199254740993,"as_text":"9007199254740993","huge":1e400,"ok":1.5e300}',
    }));
    const res = await world.post(SEED_REQUEST);
    expect(res.status).toBe(200);
    const expected = {
      response: 'Top deals',
      deal_id: 9007199254740992,
      as_text: '9007199254740993',
      huge: null,
      ok: 1.5e300,
    };
    expect(res.body.response).toEqual(expected);
    expect(world.receiver.received).toHaveLength(1);
    expect(world.receiver.received[0]!.body).toMatchObject({ response: expected });
    const id = res.body.conversation_id as string;
    const record = JSON.parse(await world.getText(`${folderOf(id)}conversation.json`)).conversation;
    expect(record.conversation.turns[1]).toMatchObject({ data: expected });
  });
});
