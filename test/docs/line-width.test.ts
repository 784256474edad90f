import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../local/paths.ts';

/**
 * The docs' prose is wrapped at 120 columns, as the code is (biome.json's lineWidth), so that it reads in an editor and
 * a diff without scrolling. Tables (biome formats them) and fenced code (a command is copied as written) are not, nor
 * is a line that is one code span or link (it cannot be cut). Every Markdown file of docs/ is, but for the one below.
 */
const NOT_YET_WRAPPED = new Set(['docs/performance.md']);
const WRAPPED = [
  'README.md',
  ...readdirSync(path.join(PROJECT_ROOT, 'docs'))
    .filter((name) => name.endsWith('.md'))
    .map((name) => `docs/${name}`)
    .filter((file) => !NOT_YET_WRAPPED.has(file)),
];

/** The prose lines over 120 columns that could be cut: a space outside a code span or a link's text. */
function longLines(text: string): string[] {
  let fenced = false;
  return text.split('\n').filter((line) => {
    if (line.trimStart().startsWith('```')) fenced = !fenced;
    if (fenced || line.trimStart().startsWith('|') || [...line].length <= 120) return false;
    return /\S \S/.test(line.replace(/`[^`]*`|\[[^\]]*\]\([^)]*\)/g, 'x'));
  });
}

describe('docs line width', () => {
  it.each(WRAPPED)('%s: no prose line over 120 columns', (file) => {
    expect(longLines(readFileSync(path.join(PROJECT_ROOT, file), 'utf8'))).toEqual([]);
  });

  it('finds a long prose line, and lets a table row, a code block or an uncuttable line be', () => {
    const long = `${'word '.repeat(30)}end`;
    expect(longLines(long)).toEqual([long]);
    expect(longLines(`| ${long} |`)).toEqual([]);
    expect(longLines(`\`\`\`bash\n${long}\n\`\`\``)).toEqual([]);
    expect(longLines(`\`${long}\`.`)).toEqual([]);
  });
});
