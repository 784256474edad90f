import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../local/paths.ts';

/**
 * What the README, docs/ and the product's own text (a named query's description, an error, a comment) send a reader
 * to is in the repository: the earlier system's deployment guide is not, so they cite docs/ (deploy.md#monitoring for
 * the saved queries) and keep its names and formats without pointing at it.
 */
const SOURCES = [
  'README.md',
  ...['docs', 'functions', 'infra', 'local', 'statemachine', 'bin', 'scripts', 'bench', 'test'].flatMap((dir) =>
    readdirSync(path.join(PROJECT_ROOT, dir), { recursive: true, encoding: 'utf8' })
      .filter((file) => /\.(md|ts|mjs|json|html|js)$/.test(file) && !file.endsWith('self-contained.test.ts'))
      .map((file) => path.join(dir, file)),
  ),
];

const CITES_THE_GUIDE = /deployment guide|\bthe guide's\b|\boriginal guide\b/i;

describe('self-contained text', () => {
  it('no doc or source file cites the original deployment guide', () => {
    const citing = SOURCES.filter((file) => CITES_THE_GUIDE.test(readFileSync(path.join(PROJECT_ROOT, file), 'utf8')));
    expect(citing).toEqual([]);
  });
});
