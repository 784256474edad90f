import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../../local/paths.ts';
import { resolveOptions } from '../../../local/server/config.ts';
import { runCommand } from '../../support/children.ts';

/** README, "Running the CLI from anywhere": the command works from another directory, by path or npm exec. */
let elsewhere: string;
beforeAll(async () => {
  elsewhere = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-elsewhere-'));
});
afterAll(async () => {
  await rm(elsewhere, { recursive: true, force: true });
});

const run = (command: string, args: string[]) => runCommand(command, args, { cwd: elsewhere });

describe('webhook-gateway from another directory', () => {
  it("reads the repository's .data wherever it runs (LOCAL_DATA_DIR, when given, is taken from the cwd)", () => {
    expect(resolveOptions({}, {}).dataDir).toBe(path.join(PROJECT_ROOT, '.data'));
    expect(resolveOptions({}, { LOCAL_DATA_DIR: 'state' }).dataDir).toBe(path.resolve('state'));
  });

  it('runs by its path', async () => {
    const result = await run(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'webhook-gateway.mjs'), 'help']);
    expect(result.stderr).toBe('');
    expect(result.stdout).toMatch(/^Usage: webhook-gateway <command>/);
  });

  it('runs through npm exec --prefix, without asking the public registry', async () => {
    const result = await run('npm', ['exec', '--offline', '--prefix', PROJECT_ROOT, '--', 'webhook-gateway', 'help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Usage: webhook-gateway <command>/m);
  });
});
