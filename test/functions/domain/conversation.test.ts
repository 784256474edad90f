import { describe, expect, it } from 'vitest';
import {
  hasQuestion,
  likeGiven,
  questionOf,
  userQuery,
  withoutQuestion,
  withQuestion,
} from '../../../functions/domain/conversation.ts';
import { startConversation } from '../../../functions/domain/intake.ts';
import { executionInput, SEED_REQUEST, startedRecord } from '../../support/fixtures.ts';

describe('the question out of the state after Classify, and back from the execution input', () => {
  it('withoutQuestion leaves out only the user turn’s text; withQuestion puts it back from a raw request', () => {
    const record = startedRecord();
    const lean = withoutQuestion(record);
    expect(hasQuestion(lean)).toBe(false);
    expect(lean.conversation.turns[0]).toEqual({ role: 'user', timestamp: record.conversation.turns[0]!.timestamp });
    expect({ ...lean, conversation: record.conversation }).toEqual(record);
    expect(hasQuestion(record)).toBe(true);
    expect(withQuestion(lean, executionInput(SEED_REQUEST))).toEqual(record);
    // A record that has it is returned as it is, whatever the input says.
    expect(withQuestion(record, executionInput({ ...SEED_REQUEST, query: 'another' }))).toBe(record);
  });

  it('restores exactly the question Validate kept: the query trimmed as the request schema trims it', () => {
    for (const query of [
      ' padded ',
      '\n\ttabs and lines\r\n',
      '\u00a0\u2003wide spaces\u3000',
      '\ufeffbom',
      'é ✓ 日本',
    ]) {
      const input = executionInput({ ...SEED_REQUEST, query });
      const started = startConversation(input, { suffix: 'abc123' });
      if (!started.valid || started.duplicate) throw new Error(`rejected: ${JSON.stringify(query)}`);
      expect(questionOf(input), JSON.stringify(query)).toBe(userQuery(started.conversation));
      expect(withQuestion(withoutQuestion(started.conversation), input)).toEqual(started.conversation);
    }
  });

  it('reads the question from every execution input a conversation’s states are given', () => {
    const record = startedRecord();
    // The run of an asynchronously accepted conversation, and a redelivery, carry the whole record.
    expect(questionOf({ accepted: { valid: true, conversation: record } })).toBe(SEED_REQUEST.query);
    expect(questionOf({ conversation: record, redelivery: { via: 'schedule' } })).toBe(SEED_REQUEST.query);
    for (const input of [undefined, null, 'text', {}, { body: 'not json' }, { body: '{"query": 7}' }, { body: 'null' }])
      expect(questionOf(input), JSON.stringify(input)).toBeNull();
    // Nothing to restore it from: the record stays as it was (and says so: hasQuestion).
    expect(withQuestion(withoutQuestion(record), { body: 'not json' })).toEqual(withoutQuestion(record));
  });

  it('likeGiven hands the state on in the shape it came in', () => {
    const record = startedRecord();
    const later = { ...record, execution: { ...record.execution, status: 'completed' as const } };
    expect(likeGiven(record, later)).toBe(later);
    expect(likeGiven(withoutQuestion(record), later)).toEqual(withoutQuestion(later));
  });
});
