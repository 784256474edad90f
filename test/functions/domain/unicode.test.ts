import { describe, expect, it } from 'vitest';
import { wellFormedJson, wellFormedText, wellFormedValue } from '../../../functions/domain/unicode.ts';

describe('unicode: unpaired surrogates as U+FFFD', () => {
  it('replaces each unpaired surrogate of a text and keeps pairs', () => {
    expect(wellFormedText('a\ud800b\udc00c 😀 \ud83d')).toBe('a\uFFFDb\uFFFDc 😀 \uFFFD');
  });

  it('replaces them in the strings and keys of a value, counting them, and returns a clean value as it is', () => {
    const clean = { a: ['x', 1, null, { b: '😀' }] };
    expect(wellFormedValue(clean)).toEqual({ value: clean, replaced: 0 });
    expect(wellFormedValue(clean).value).toBe(clean);
    expect(wellFormedValue({ 'k\udfff': ['\ud800', 2], n: { m: 'ok\udc00' } })).toEqual({
      value: { 'k\uFFFD': ['\uFFFD', 2], n: { m: 'ok\uFFFD' } },
      replaced: 3,
    });
  });

  it("writes JSON.stringify's escapes of unpaired surrogates as U+FFFD, and leaves a backslash of the data alone", () => {
    const value = { 'key\ud800': 'v\udc00', text: '\\ud800 is how you write it', both: '\\\ud800', emoji: '😀' };
    const json = wellFormedJson(JSON.stringify(value));
    expect(json).not.toMatch(/(?<!\\)(?:\\\\)*\\ud[89a-f]/);
    expect(JSON.parse(json)).toEqual({
      'key\uFFFD': 'v\uFFFD',
      text: '\\ud800 is how you write it',
      both: '\\\uFFFD',
      emoji: '😀',
    });
  });
});
