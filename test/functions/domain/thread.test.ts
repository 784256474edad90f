import { describe, expect, it } from 'vitest';
import { withAgentAnswer } from '../../../functions/domain/lifecycle.ts';
import {
  agentThread,
  MAX_THREAD_HISTORY_BYTES,
  MAX_THREAD_HISTORY_TURNS,
  type ThreadTurn,
  threadSessionId,
  threadTurnOf,
} from '../../../functions/domain/thread.ts';
import { SEED_REQUEST, startedRecord } from '../../support/fixtures.ts';

const turn = (n: number, answer = `answer ${n}`, query = `question ${n}`): ThreadTurn => ({
  turn: n,
  conversation_id: `webhook_20260101_000000_a_b_${n}`,
  query,
  answer,
  asked_at: '2026-01-01T00:00:00.000Z',
  answered_at: '2026-01-01T00:00:01.000Z',
});
const ref = (n: number) => ({ thread_id: 't', session_id: 's', turn: n });
const size = (value: unknown) => Buffer.byteLength(JSON.stringify(value));

describe('agentThread: the earlier turns the agent is given', () => {
  it('newest first, only turns before this one', () => {
    const thread = agentThread(ref(3), [turn(1), turn(3), turn(2)]);
    expect(thread.earlier_turns.map((t) => t.turn)).toEqual([2, 1]);
    expect(thread.omitted_turns).toBe(0);
    expect(thread).toMatchObject(ref(3));
  });

  it(`at most ${MAX_THREAD_HISTORY_TURNS} turns; the rest are counted as omitted`, () => {
    const many = Array.from({ length: 15 }, (_, i) => turn(i + 1));
    const thread = agentThread(ref(16), many);
    expect(thread.earlier_turns.map((t) => t.turn)).toEqual([15, 14, 13, 12, 11, 10, 9, 8, 7, 6]);
    expect(thread.omitted_turns).toBe(5);
  });

  it('older turns beyond the byte bound are left out, not failed', () => {
    const big = 'x'.repeat(12_000);
    const thread = agentThread(ref(5), [turn(1, big), turn(2, big), turn(3, big), turn(4, big)]);
    expect(thread.earlier_turns.map((t) => t.turn)).toEqual([4, 3]);
    expect(thread.omitted_turns).toBe(2);
    expect(size(thread.earlier_turns)).toBeLessThanOrEqual(MAX_THREAD_HISTORY_BYTES);
  });

  it('a newest turn larger than the bound alone is shrunk (marked truncated), multi-byte text and JSON escapes included', () => {
    for (const text of ['y'.repeat(100_000), 'é€😀'.repeat(20_000), '"\\\n\u0001'.repeat(20_000)]) {
      const thread = agentThread(ref(2), [turn(1, text, text)]);
      expect(thread.earlier_turns).toHaveLength(1);
      const [kept] = thread.earlier_turns;
      expect(kept!.truncated).toBe(true);
      expect(kept!.answer.length).toBeGreaterThan(0);
      expect(text.startsWith(kept!.answer)).toBe(true);
      expect(text.startsWith(kept!.query)).toBe(true);
      expect(kept!.answer).not.toContain('\uFFFD');
      expect(size(thread.earlier_turns)).toBeLessThanOrEqual(MAX_THREAD_HISTORY_BYTES);
      expect(thread.omitted_turns).toBe(0);
    }
  });

  it('a shrunk newest turn with a short question keeps nearly the whole bound for its answer', () => {
    // Before: the answer was cut to half the bound (about 16 KB) whatever the question's size.
    const thread = agentThread(ref(3), [turn(1), turn(2, 'z'.repeat(40_000), 'short question')]);
    const [kept] = thread.earlier_turns;
    expect(kept!.truncated).toBe(true);
    expect(kept!.query).toBe('short question');
    expect(size(thread.earlier_turns)).toBeLessThanOrEqual(MAX_THREAD_HISTORY_BYTES);
    expect(size(thread.earlier_turns)).toBeGreaterThan(MAX_THREAD_HISTORY_BYTES - 16);
    expect(thread.omitted_turns).toBe(1);
  });

  it('a shrunk newest turn with a long question and a long answer gives each about half', () => {
    const thread = agentThread(ref(2), [turn(1, 'a'.repeat(40_000), 'q'.repeat(40_000))]);
    const [kept] = thread.earlier_turns;
    expect(Math.abs(kept!.answer.length - kept!.query.length)).toBeLessThanOrEqual(1);
    expect(size(thread.earlier_turns)).toBeLessThanOrEqual(MAX_THREAD_HISTORY_BYTES);
  });

  it('smaller limits are honoured', () => {
    const thread = agentThread(ref(4), [turn(1), turn(2), turn(3)], { turns: 1, bytes: 10_000 });
    expect(thread.earlier_turns.map((t) => t.turn)).toEqual([3]);
    expect(thread.omitted_turns).toBe(2);
  });
});

describe('threadSessionId', () => {
  it('is stable per source and thread, differs across sources, and fits Bedrock Agents sessionId', () => {
    const a = threadSessionId('crm', 'q3');
    expect(threadSessionId('crm', 'q3')).toBe(a);
    expect(threadSessionId('erp', 'q3')).not.toBe(a);
    expect(threadSessionId('crm', 'q4')).not.toBe(a);
    expect(a).toMatch(/^[0-9a-zA-Z._:-]{2,100}$/);
  });
});

describe('threadTurnOf: what a closed conversation adds to its thread', () => {
  it('the question and the answer text of an answered conversation of a thread', () => {
    const base = startedRecord({ ...SEED_REQUEST, thread_id: 'q3' });
    expect(base.metadata).toMatchObject({ thread_id: 'q3', thread_turn: null });
    const record = withAgentAnswer(
      { ...base, metadata: { ...base.metadata, thread_turn: 2 } },
      { response: 'the answer', data: [1] },
      10,
      new Date('2026-01-01T00:00:05Z'),
    );
    expect(threadTurnOf(record)).toEqual({
      turn: 2,
      conversation_id: record.conversation_id,
      query: record.conversation.turns[0]!.content,
      answer: 'the answer',
      asked_at: record.conversation.turns[0]!.timestamp,
      answered_at: '2026-01-01T00:00:05.000Z',
    });
  });

  it('nothing outside a thread, or without an answer', () => {
    const base = startedRecord();
    expect(threadTurnOf(withAgentAnswer(base, 'x', 1, new Date()))).toBeNull();
    expect(threadTurnOf({ ...base, metadata: { ...base.metadata, thread_id: 'q3', thread_turn: 1 } })).toBeNull();
  });
});
