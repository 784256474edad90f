import { describe, expect, it } from 'vitest';
import { parseBenchArgs, parseCount, UsageError } from '../../bench/support/args.ts';

/** `npm run bench -- …`: checked before anything runs, so a typo never starts the 4-minute run. */
describe('the bench arguments', () => {
  it('takes --quick and the sections; none runs every section', () => {
    expect(parseBenchArgs([])).toEqual({ help: false, quick: false, sections: [] });
    expect(parseBenchArgs(['--quick', 'cost', 'gateway'])).toEqual({
      help: false,
      quick: true,
      sections: ['cost', 'gateway'],
    });
  });

  it('--help and -h ask for the usage, whatever else is given', () => {
    expect(parseBenchArgs(['--help'])).toEqual({ help: true });
    expect(parseBenchArgs(['cost', '-h'])).toEqual({ help: true });
  });

  it('refuses an unknown option or section instead of running the whole bench', () => {
    expect(() => parseBenchArgs(['--quik'])).toThrow(new UsageError('unknown option --quik'));
    expect(() => parseBenchArgs(['--quick=1'])).toThrow(UsageError);
    expect(() => parseBenchArgs(['bogus'])).toThrow(
      new UsageError('unknown bench section bogus: choose from cost, bundles, gateway (or none for all)'),
    );
  });
});

/** `npx tsx bench/chaos-kill9.ts [kills=30]`: NaN kills ran no kill at all, then "passed". */
describe('a script count', () => {
  it('is a positive whole number, the default without one, or help', () => {
    expect(parseCount([], 30, 'kills')).toBe(30);
    expect(parseCount(['5'], 30, 'kills')).toBe(5);
    expect(parseCount(['--help'], 30, 'kills')).toBe('help');
    expect(parseCount(['-h'], 30, 'kills')).toBe('help');
  });

  it('refuses anything else with the name of what it counts', () => {
    for (const bad of ['0', '-3', '1.5', 'ten', '--kills=3'])
      expect(() => parseCount([bad], 30, 'kills'), bad).toThrow(
        new UsageError(`kills must be a positive whole number; got "${bad}"`),
      );
    expect(() => parseCount(['3', '4'], 30, 'kills')).toThrow(/at most one argument, kills/);
  });
});
