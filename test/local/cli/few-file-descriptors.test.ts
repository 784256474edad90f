import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * The command run with few file descriptors (`ulimit -n 40` in its shell): before, it failed while loading its
 * modules with Node's loader's stack trace (EMFILE on a module's file, or the TypeScript compiler's process not
 * started). Now it says so before loading any, with the limit and what to do, and exits 1; with enough it runs.
 */
const BIN = path.resolve('bin/webhook-gateway.mjs');
let dataDir: string;
beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'few-fds-'));
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

function runWithLimit(limit: number, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn('bash', ['-c', `ulimit -n ${limit} && exec "$0" "$@"`, process.execPath, BIN, ...args], {
      env: { ...process.env, LOCAL_DATA_DIR: dataDir, NODE_OPTIONS: '' },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

describe.runIf(existsSync('/proc/self/limits'))('the command with few file descriptors', () => {
  it.each([40, 20])(
    'ulimit -n %i: one line saying so, the limit and what to do, exit 1; no stack trace',
    async (limit) => {
      const result = await runWithLimit(limit, ['conversations', 'list']);
      expect(result.stdout).toBe('');
      expect(result.stderr).toMatch(
        new RegExp(
          `^webhook-gateway: too few file descriptors to load its modules: it could open \\d+ more files, it needs 48: the process is out of file descriptors \\(its limit, ulimit -n, is ${limit}\\): raise the limit \\(ulimit -n 1024\\) or close what holds them, then run the command again\n$`,
        ),
      );
      expect(result.code).toBe(1);
    },
  );

  it('ulimit -n 256: the command runs', async () => {
    const result = await runWithLimit(256, ['conversations', 'list']);
    expect(result.stderr).toBe('');
    expect(result.stdout).toContain('No conversations yet');
    expect(result.code).toBe(0);
  });
});
