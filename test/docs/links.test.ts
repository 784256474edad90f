import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../local/paths.ts';

/**
 * The README and docs/ are read on GitHub and in an editor: a link to a file that moved, a heading renamed under an
 * anchor, or a source path named in backticks that no longer exists sends the reader nowhere.
 */
const DOCS = [
  'README.md',
  ...readdirSync(path.join(PROJECT_ROOT, 'docs'), { recursive: true, encoding: 'utf8' })
    .filter((file) => file.endsWith('.md'))
    .map((file) => path.join('docs', file)),
];

/** The text outside fenced code blocks (a `# comment` in a bash block is no heading, `a](b)` in JSON no link). */
const prose = (text: string) => text.replace(/^```[\s\S]*?^```/gm, '');

/** The anchors GitHub gives a file's headings: lowercased, punctuation dropped, spaces as hyphens, repeats numbered. */
function anchors(file: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  for (const [, heading] of prose(readFileSync(file, 'utf8')).matchAll(/^#{1,6}\s+(.+?)\s*#*$/gm)) {
    const slug = heading!
      .toLowerCase()
      .replace(/[^\p{L}\p{N}\p{M}_\- ]/gu, '')
      .replace(/ /g, '-');
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    out.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return out;
}

/** `a/{b,c}.ts` → `a/b.ts`, `a/c.ts` (nested braces too), as the code map writes groups of files. */
function expand(pattern: string): string[] {
  const match = /\{([^{}]*)\}/.exec(pattern);
  if (!match) return [pattern];
  const [head, tail] = [pattern.slice(0, match.index), pattern.slice(match.index + match[0].length)];
  return match[1]!.split(',').flatMap((part) => expand(`${head}${part}${tail}`));
}

/** Names the docs give that belong to other tools (npm, Node, API Gateway, the AWS SDK), not to this code. */
const OUTSIDE_NAMES = new Set(['allowScripts', 'appendFileSync', 'cloudwatchRoleArn', 'endpointProvider']);

/** Every source file of the repository, as one text to search names in. */
const CODE = ['functions', 'local', 'infra', 'bin', 'scripts', 'bench', 'statemachine', 'test']
  .flatMap((dir) =>
    readdirSync(path.join(PROJECT_ROOT, dir), { recursive: true, encoding: 'utf8' })
      .filter((file) => /\.(ts|mjs|js|json)$/.test(file) && !file.includes('results'))
      .map((file) => readFileSync(path.join(PROJECT_ROOT, dir, file), 'utf8')),
  )
  .join('\n');

describe('the README and docs/ point at what exists', () => {
  it.each(DOCS)('%s: every relative link resolves, to a heading that exists when it names one', (doc) => {
    const broken: string[] = [];
    for (const [, target] of prose(readFileSync(path.join(PROJECT_ROOT, doc), 'utf8')).matchAll(/\]\(([^)\s]+)\)/g)) {
      if (/^[a-z]+:/i.test(target!)) continue;
      const [file, anchor] = target!.split('#') as [string, string | undefined];
      const resolved = file ? path.resolve(PROJECT_ROOT, path.dirname(doc), file) : path.join(PROJECT_ROOT, doc);
      if (!existsSync(resolved)) broken.push(`${target}: no such file`);
      else if (anchor && resolved.endsWith('.md') && !anchors(resolved).has(anchor))
        broken.push(`${target}: no heading with that anchor`);
    }
    expect(broken).toEqual([]);
  });

  it.each(DOCS)('%s: every repository path it names in backticks exists', (doc) => {
    const missing: string[] = [];
    const text = prose(readFileSync(path.join(PROJECT_ROOT, doc), 'utf8'));
    for (const [, named] of text.matchAll(
      /`((?:functions|local|infra|statemachine|test|bench|scripts|docs|bin)\/[^`\s]*)`/g,
    )) {
      // Placeholders (<stage>, X.ts, a glob, …) name no one file; bench/results/ is written by npm run bench.
      if (/[<*…]|\bX\b/.test(named!) || named!.startsWith('bench/results/')) continue;
      for (const file of expand(named!)) if (!existsSync(path.join(PROJECT_ROOT, file))) missing.push(file);
    }
    expect(missing).toEqual([]);
  });

  it.each(DOCS)('%s: every code name it gives in backticks (camelCase, UPPER_SNAKE) is one the code has', (doc) => {
    const unknown = [
      ...prose(readFileSync(path.join(PROJECT_ROOT, doc), 'utf8')).matchAll(
        /`([a-z]+[A-Z][A-Za-z]+|[A-Z][A-Z0-9]+_[A-Z0-9_]+)`/g,
      ),
    ]
      .map(([, name]) => name!)
      .filter((name) => !OUTSIDE_NAMES.has(name) && !new RegExp(`\\b${name}\\b`).test(CODE));
    expect([...new Set(unknown)]).toEqual([]);
  });
});
