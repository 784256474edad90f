import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../../local/paths.ts';
import { NEW_USER_START_ENV, startCli } from '../../support/cli.ts';
import { SEED_REQUEST } from '../../support/gateway.ts';

/**
 * `webhook-gateway conversations show <id> | head`: the reader closes the pipe before the command has written all.
 * The command ends quietly (exit 0, nothing on stderr), as Unix tools do, not on an unhandled EPIPE with a stack.
 */
describe('webhook-gateway into a pipe closed early', () => {
  it('ends quietly when its reader has gone', async () => {
    const child = spawn(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'webhook-gateway.mjs'), 'help'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.destroy(); // `| head -0`: the read end is closed before the first line is written
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(stderr).toBe('');
    expect(code).toBe(0);
  });
});

/**
 * `npm start | head`: the reader of the operator log goes away while the gateway serves. The gateway says so once
 * on stderr and goes on answering (before, the next request line killed it with an unhandled EPIPE).
 */
describe('webhook-gateway start into a pipe closed early', () => {
  let root: string;
  let gateway: Awaited<ReturnType<typeof startCli>> | undefined;
  afterEach(async () => {
    if (gateway && gateway.child.exitCode === null) {
      const exited = new Promise((r) => gateway!.child.once('exit', r));
      gateway.child.kill('SIGKILL');
      await exited;
    }
    await rm(root, { recursive: true, force: true });
  });

  it('keeps serving, and stops on SIGTERM as usual', async () => {
    root = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-pipe-'));
    gateway = await startCli({ ...NEW_USER_START_ENV, LOCAL_DATA_DIR: path.join(root, '.data') });

    const { child, url } = gateway;
    let stderr = '';
    child.stderr!.on('data', (d) => (stderr += d));
    child.stdout!.destroy(); // the reader has gone: the next request line meets a closed pipe
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${url}/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(SEED_REQUEST),
      });
      expect(res.status).toBe(200);
      expect(((await res.json()) as { tracking: { delivery_status: string } }).tracking.delivery_status).toBe(
        'delivered',
      );
    }
    const exited = new Promise<[number | null, string | null]>((r) =>
      child.once('exit', (code, signal) => r([code, signal])),
    );
    child.kill('SIGTERM');
    expect(await exited).toEqual([0, null]);
    expect(stderr.match(/the reader of its output has gone/g)).toHaveLength(1);
    expect(stderr).not.toMatch(/EPIPE|at .*\.ts:\d+/);
  });
});
