import { describe, expect, it } from 'vitest';
import { seedsFrom } from './seeds.ts';

/**
 * CRASH_SWEEP_SEEDS with a value the sweep cannot read (a word, a range written backwards, a stray comma) used to give
 * no seed at all, and vitest ended the file with "No test found", which says nothing of the variable. Such a value now
 * stops the file with a message naming the variable and what it takes.
 */
describe('seedsFrom (CRASH_SWEEP_SEEDS)', () => {
  it('reads a seed, a range and a comma list of both; unset or empty gives the defaults', () => {
    expect(seedsFrom('SEEDS', '7', [1, 2])).toEqual([7]);
    expect(seedsFrom('SEEDS', '1-4', [1, 2])).toEqual([1, 2, 3, 4]);
    expect(seedsFrom('SEEDS', '0, 3,5-7', [1, 2])).toEqual([0, 3, 5, 6, 7]);
    expect(seedsFrom('SEEDS', undefined, [1, 2])).toEqual([1, 2]);
    expect(seedsFrom('SEEDS', ' ', [1, 2])).toEqual([1, 2]);
  });

  it.each([
    ['abc', '"abc" is not a seed or a range'],
    ['40-1', 'the range "40-1" ends before it starts'],
    ['1,,3', 'an empty item in the list'],
    ['1-', '"1-" is not a seed or a range'],
    ['-3', '"-3" is not a seed or a range'],
    ['1.5', '"1.5" is not a seed or a range'],
  ])('%s: throws, naming the variable, the value and what it takes', (text, why) => {
    expect(() => seedsFrom('CRASH_SWEEP_SEEDS', text, [1, 2])).toThrow(
      `CRASH_SWEEP_SEEDS="${text}": ${why}; it takes a seed (7), a range (1-40) or a comma list of both (1,3,5-9), ` +
        'each a whole number from 0',
    );
  });
});
