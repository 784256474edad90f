import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../../local/paths.ts';
import { resolveOptions } from '../../../local/server/config.ts';

/** README, "Running the CLI from anywhere": the command works from another directory, by path or npm exec. */
let elsewhere: string;
beforeAll(async () => {
  elsewhere = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-elsewhere-'));
});
afterAll(async () => {
  await rm(elsewhere, { recursive: true, force: true });
});

function run(command: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: elsewhere, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

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
