import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../local/paths.ts';

/**
 * docs/contract.md names the servers of docs/openapi.json, which an API tool offers as they are written: the page spells
 * each URL template as the file does (before, the deployed stage's read `….amazonaws.com/…` where the file has
 * `{urlSuffix}`).
 */
const read = (file: string) => readFileSync(path.join(PROJECT_ROOT, 'docs', file), 'utf8');

describe("docs/contract.md and openapi.json's servers", () => {
  it('the page names each server URL template as openapi.json writes it', () => {
    const prose = read('contract.md').replace(/\s+/g, ' ');
    const servers = (JSON.parse(read('openapi.json')) as { servers: { url: string }[] }).servers;
    expect(servers.length).toBeGreaterThan(0);
    for (const { url } of servers) expect(prose).toContain(`\`${url}\``);
  });
});
