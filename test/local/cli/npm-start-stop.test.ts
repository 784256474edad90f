import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../../local/paths.ts';

/**
 * `npm start` stopped with SIGTERM (a service manager, `timeout`, a script's `kill` of the npm process): npm passes it
 * to its shell, which does not pass it on; the gateway notices it lost its parent and stops as on SIGTERM, instead of
 * running on orphaned, holding its port and data folder (local/cli/main.ts, whenOrphanedByNpm).
 */
let root: string;
let dataDir: string;
let npm: ChildProcess;
let output = '';

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function until<T>(what: string, probe: () => T | Promise<T>, timeoutMs: number): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms:\n${output}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  root = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-npm-'));
  dataDir = path.join(root, '.data');
  npm = spawn('npm', ['start', '--silent'], {
    cwd: PROJECT_ROOT,
    env: { ...process.env, PORT: '0', LOCAL_S3_PORT: '0', LOCAL_DATA_DIR: dataDir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  npm.stdout!.on('data', (d: Buffer) => {
    output += d.toString();
  });
  npm.stderr!.on('data', (d: Buffer) => {
    output += d.toString();
  });
  await until('the start', () => output.includes('Ctrl-C stops everything'), 60_000);
}, 90_000);
afterAll(async () => {
  const pid = Number.parseInt(await readFile(path.join(dataDir, 'gateway.pid'), 'utf8').catch(() => ''), 10);
  if (pid && alive(pid)) process.kill(pid, 'SIGKILL');
  await rm(root, { recursive: true, force: true });
});

describe('npm start, its npm process stopped with SIGTERM', () => {
  it('stops the gateway too: it leaves its port and data folder, as it does on SIGTERM', async () => {
    const gatewayPid = Number.parseInt(await readFile(path.join(dataDir, 'gateway.pid'), 'utf8'), 10);
    expect(alive(gatewayPid)).toBe(true);
    expect(gatewayPid).not.toBe(npm.pid);
    npm.kill('SIGTERM');
    await until('the gateway stopping', () => !alive(gatewayPid), 20_000);
    expect(existsSync(path.join(dataDir, 'gateway.pid'))).toBe(false);
  });
});
