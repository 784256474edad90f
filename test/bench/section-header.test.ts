import { describe, expect, it } from 'vitest';
import { sectionHeader } from '../../bench/support/table.ts';

/**
 * `npm run bench` ended each section's header with the seconds since the run started, so the first one always read
 * "[1/6] engine overhead (…) … 0 s" (and `npm run bench -- cost` "[cost] … 0 s"): a figure that measured nothing,
 * read as the section's duration. A section starting with the run now has none; the others say what the figure is.
 */
describe('a bench section header', () => {
  const started = 1_000_000;

  it('has no figure when the section starts with the run', () => {
    expect(sectionHeader('[1/6] engine overhead', started, started)).toBe('\n[1/6] engine overhead');
    expect(sectionHeader('[cost] handler times', started, started + 400)).toBe('\n[cost] handler times');
  });

  it('says how far into the run a later section starts', () => {
    expect(sectionHeader('[2/6] gateway under load', started, started + 19_200)).toBe(
      '\n[2/6] gateway under load … 19 s into the run',
    );
  });
});
