import { describe, expect, it } from 'vitest';
import { answerProblem, nestedDeeperThan } from '../../../functions/domain/agent-contract.ts';
import type { ConversationState } from '../../../functions/domain/conversation.ts';
import { withAgentAnswer } from '../../../functions/domain/lifecycle.ts';
import { startedRecord } from '../../support/fixtures.ts';

const AT = new Date('2026-12-01T12:00:01.000Z');

function check(answer: unknown, extra: Partial<ConversationState> = {}) {
  const record = startedRecord();
  const state = { conversation: record, ...extra } as ConversationState;
  return answerProblem(answer, withAgentAnswer(record, answer, 1, AT), state);
}

describe('answerProblem (the agent contract: what a conversation can carry)', () => {
  it('accepts an answer up to 64 KB, refuses an empty one or a larger one', () => {
    expect(check({ response: 'Three deals.' })).toBeNull();
    expect(check({ response: 'y'.repeat(65_000) })).toBeNull();
    expect(check('')).toMatch(/empty answer/);
    expect(check(null)).toMatch(/empty answer/);
  });

  it('refuses an answer that says nothing: white space, {} or fields that are all empty; 0 and false are answers', () => {
    for (const blank of ['  \n\t', {}, [], { response: ' ' }, { response: '', data: null, items: [] }, [null, '']])
      expect(check(blank), JSON.stringify(blank)).toMatch(/empty answer/);
    for (const answer of [0, false, { response: '', score: 0 }, { ok: false }, ' a '])
      expect(check(answer), JSON.stringify(answer)).toBeNull();
    expect(check({ response: 'y'.repeat(66_000) })).toMatch(/answered 66015 bytes, more than the 65536/);
  });

  it('refuses an answer the workflow state could not carry beside what it already holds', () => {
    const answer = { response: 'y'.repeat(60_000) };
    // Counted: the state (here a large earlier thread) with the answer in the record once, and the caller's response.
    const heavy = { thread: { earlier_turns: [{ query: 'q'.repeat(130_000) }] } } as unknown as ConversationState;
    expect(check(answer, heavy)).toMatch(/which makes this conversation \d+ bytes, more than the 245760/);
    const light = { thread: { earlier_turns: [{ query: 'q'.repeat(100_000) }] } } as unknown as ConversationState;
    expect(check(answer, light)).toBeNull();
  });

  it('refuses an answer nested more than 64 levels deep, however deep, without overflowing the stack', () => {
    const nested = (levels: number) => JSON.parse(`${'['.repeat(levels)}"deep"${']'.repeat(levels)}`);
    expect(check(nested(64))).toBeNull();
    expect(check(nested(65))).toBe(
      'the manager agent answered JSON nested more than 64 levels deep, more than a conversation can carry',
    );
    expect(check({ response: 'x', data: nested(100_000) })).toMatch(/nested more than 64 levels deep/);
  });
});

describe('nestedDeeperThan', () => {
  it('counts the levels of arrays and objects, not of scalars', () => {
    expect(nestedDeeperThan('text', 0)).toBe(false);
    expect(nestedDeeperThan({}, 0)).toBe(true);
    expect(nestedDeeperThan({ a: [1, { b: 2 }] }, 3)).toBe(false);
    expect(nestedDeeperThan({ a: [1, { b: 2 }] }, 2)).toBe(true);
    expect(nestedDeeperThan([[], [[[]]], []], 3)).toBe(true);
  });
});
