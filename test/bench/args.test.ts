import { describe, expect, it } from 'vitest';
import { parseBenchArgs, UsageError } from '../../bench/support/args.ts';

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
