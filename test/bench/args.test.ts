import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseBenchArgs, parseCount, parseCounts, UsageError } from '../../bench/support/args.ts';
import { PROJECT_ROOT } from '../../local/paths.ts';
import { runCommand } from '../support/children.ts';

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

/**
 * `node --import tsx bench/s3-uploads.ts 50000 100` and `bench/s3-big-folder.ts <keys> census`
 * (docs/performance.md §2): before, a count that was no number ran the whole setup, then ended in a stack trace,
 * "listed 0 uploads of NaN".
 */
describe('the S3 listing scripts’ counts', () => {
  it('parseCounts takes each count in order, its fallback when not given', () => {
    const counts = [
      { name: 'uploads', fallback: 10_000 },
      { name: 'page', fallback: 1_000 },
    ] as const;
    expect(parseCounts([], counts)).toEqual({ uploads: 10_000, page: 1_000 });
    expect(parseCounts(['50000'], counts)).toEqual({ uploads: 50_000, page: 1_000 });
    expect(parseCounts(['50000', '100'], counts)).toEqual({ uploads: 50_000, page: 100 });
    expect(parseCounts(['50000', '-h'], counts)).toBe('help');
    expect(() => parseCounts(['50000', 'ten'], counts)).toThrow(
      new UsageError('page must be a positive whole number; got "ten"'),
    );
    expect(() => parseCounts(['1', '2', '3'], counts)).toThrow(
      new UsageError('takes at most 2 arguments, uploads and page; got 1 2 3'),
    );
  });

  const script = (name: string, args: string[]) =>
    runCommand(process.execPath, ['--import', 'tsx', path.join('bench', name), ...args], { cwd: PROJECT_ROOT });

  it('a script refuses a bad count before it writes anything: one line, the usage, exit 2', async () => {
    const uploads = await script('s3-uploads.ts', ['ten']);
    expect(uploads.code).toBe(2);
    expect(uploads.stderr).toBe(
      'uploads must be a positive whole number; got "ten"\n\n' +
        'usage: node --import tsx bench/s3-uploads.ts [uploads=10000] [page=1000]   (docs/performance.md §2)\n',
    );
    const census = await script('s3-big-folder.ts', ['0', 'census']);
    expect(census.code).toBe(2);
    expect(census.stderr).toMatch(
      /^keys must be a positive whole number; got "0"\n\nusage: .*\[keys=100000\] \[census\]/,
    );
  });

  it('--help prints the usage and runs nothing', async () => {
    const help = await script('s3-big-folder.ts', ['--help']);
    expect(help).toEqual({
      code: 0,
      stdout: 'usage: node --import tsx bench/s3-big-folder.ts [keys=100000] [census]   (docs/performance.md §2)\n',
      stderr: '',
    });
  });
});
