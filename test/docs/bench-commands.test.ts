import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseBenchArgs } from '../../bench/support/args.ts';
import { PROJECT_ROOT } from '../../local/paths.ts';

/**
 * The bench commands the README and docs/ give (`npm run bench -- …`, `node --import tsx bench/X.ts …`,
 * `npx tsx bench/X.ts …`) are ones the bench takes: a section or option `npm run bench` knows, a script that exists
 * and states its usage, and arguments that usage names. Before, bench/s3-uploads.ts and bench/s3-big-folder.ts had no
 * usage: docs/performance.md's `bench/s3-big-folder.ts <keys> census` said what only the code knew, and a wrong count
 * ran the whole setup into a stack trace.
 */
const DOCS = [
  'README.md',
  ...readdirSync(path.join(PROJECT_ROOT, 'docs'))
    .filter((file) => file.endsWith('.md'))
    .map((file) => path.join('docs', file)),
];

/** Each inline code span and each line of a bash block: where a reader copies a command from. */
function commands(doc: string): string[] {
  const text = readFileSync(path.join(PROJECT_ROOT, doc), 'utf8');
  const blocks = [...text.matchAll(/^```bash\n([\s\S]*?)^```/gm)].flatMap((m) => m[1]!.split('\n'));
  const prose = text.replace(/^```[\s\S]*?^```/gm, '');
  const spans = [...prose.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]!);
  return [...blocks, ...spans].map((line) => line.replace(/\s+#.*$/, '').trim());
}

const ALL = DOCS.flatMap((doc) => commands(doc).map((command) => ({ doc, command })));

describe('the bench commands of the docs are ones the bench takes', () => {
  it('npm run bench -- …: known sections and options', () => {
    const given = ALL.filter(({ command }) => command.startsWith('npm run bench -- '));
    expect(given.length).toBeGreaterThanOrEqual(5);
    const refused = given.flatMap(({ doc, command }) => {
      try {
        parseBenchArgs(command.slice('npm run bench -- '.length).split(/\s+/));
        return [];
      } catch (error) {
        return [`${doc}: ${command}: ${(error as Error).message}`];
      }
    });
    expect(refused).toEqual([]);
  });

  it('a bench script: it exists, states its usage, and takes the arguments given (counts, or words it names)', () => {
    const given = ALL.flatMap(({ doc, command }) => {
      const m = /^(node --import tsx |npx tsx )?bench\/([\w-]+\.ts)((?: \S+)*)$/.exec(command);
      // A path alone (`bench/cost.ts`) names a file; a runner or arguments make it a command.
      return m && (m[1] || m[3])
        ? [{ doc, command, script: m[2]!, args: m[3]!.trim().split(/\s+/).filter(Boolean) }]
        : [];
    });
    expect(given.map((g) => g.script)).toEqual(
      expect.arrayContaining(['chaos-kill9.ts', 's3-big-folder.ts', 's3-uploads.ts', 'analytics.ts']),
    );
    const wrong = given.flatMap(({ doc, command, script, args }) => {
      const file = path.join(PROJECT_ROOT, 'bench', script);
      if (!existsSync(file)) return [`${doc}: ${command}: no bench/${script}`];
      const usage = new RegExp(
        `usage: (?:node --import tsx|npx tsx) bench/${script.replace('.', '\\.')}((?: \\[[^\\]]+\\])*)`,
      ).exec(readFileSync(file, 'utf8'));
      if (!usage) return [`${doc}: ${command}: bench/${script} states no usage`];
      // `[keys=100000]` takes a count, `[census]` the word itself.
      const takes = [...usage[1]!.matchAll(/\[([\w-]+)(=\d+)?\]/g)].map((m) => ({ name: m[1]!, count: !!m[2] }));
      if (args.length > takes.length) return [`${doc}: ${command}: bench/${script} takes ${usage[1]!.trim()}`];
      return args.flatMap((arg, i) => {
        const slot = takes[i]!;
        const ok = slot.count ? /^[1-9]\d*$/.test(arg) || arg === `<${slot.name}>` : arg === slot.name;
        return ok ? [] : [`${doc}: ${command}: "${arg}" where bench/${script} takes [${slot.name}]`];
      });
    });
    expect(wrong).toEqual([]);
  });
});
