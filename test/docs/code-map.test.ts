import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../local/paths.ts';

/**
 * docs/development.md's Layout table is the map a new maintainer finds a file by (folder → what lives there → its
 * tests → its doc): a folder added without a row sends them searching, and a row for a folder gone sends them nowhere.
 */
const MAPPED_ROOTS = ['functions', 'local', 'infra', 'test'];

/** The folders the Layout table names in backticks (`local/cli/aws/`), in any of its columns. */
function mappedFolders(): Set<string> {
  const text = readFileSync(path.join(PROJECT_ROOT, 'docs', 'development.md'), 'utf8');
  const layout = text.slice(text.indexOf('\n## Layout\n'), text.indexOf('\n## ', text.indexOf('\n## Layout\n') + 1));
  const rows = layout.split('\n').filter((line) => line.startsWith('| `'));
  return new Set(rows.flatMap((row) => [...row.matchAll(/`([a-z][\w./-]*\/)`/g)].map((m) => m[1]!)));
}

/** Folders .gitignore keeps out of the repository, wherever a run leaves them. */
const NOT_CODE = new Set(['node_modules', 'cdk.out', 'coverage']);

/** Every folder under the mapped roots, as `local/cli/aws/` (hidden and ignored ones aside). */
function folders(): string[] {
  return MAPPED_ROOTS.flatMap((root) =>
    readdirSync(path.join(PROJECT_ROOT, root), { recursive: true, encoding: 'utf8' })
      .filter((entry) => !entry.split(path.sep).some((part) => part.startsWith('.') || NOT_CODE.has(part)))
      .filter((entry) => statSync(path.join(PROJECT_ROOT, root, entry)).isDirectory())
      .map((entry) => `${root}/${entry.split(path.sep).join('/')}/`),
  );
}

describe("docs/development.md's map of the code", () => {
  it('names every folder of functions/, local/, infra/ and test/', () => {
    const mapped = mappedFolders();
    expect(folders().filter((folder) => !mapped.has(folder))).toEqual([]);
  });

  it('names no folder that does not exist', () => {
    const missing = [...mappedFolders()].filter((folder) => {
      try {
        return !statSync(path.join(PROJECT_ROOT, folder)).isDirectory();
      } catch {
        return true;
      }
    });
    expect(missing).toEqual([]);
  });

  it('gives each source folder its tests and its doc', () => {
    const text = readFileSync(path.join(PROJECT_ROOT, 'docs', 'development.md'), 'utf8');
    const rows = text
      .split('\n')
      .filter((line) => /^\| `(functions|local|infra|statemachine)\//.test(line))
      .map((line) => line.split(' | ').map((cell) => cell.trim()));
    expect(rows.length).toBeGreaterThan(10);
    for (const [folder, , tests, doc] of rows) {
      expect(tests, folder).toMatch(/`test\//);
      expect(doc?.replace(/\|$/, '').trim(), folder).toMatch(/\]\(/);
    }
  });
});
