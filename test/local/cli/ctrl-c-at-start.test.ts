import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../../local/paths.ts';
import { killOnExit } from '../../support/children.ts';
import { NEW_USER_START_ENV, runCli, startCli } from '../../support/cli.ts';
import { killAtEnv } from '../../support/kill-at.ts';

const BIN = path.join(PROJECT_ROOT, 'bin', 'webhook-gateway.mjs');
const SIGINT_AT_LINE = path.join(PROJECT_ROOT, 'test', 'support', 'sigint-at-line.cjs');

let root: string | undefined;
const tempDirs: string[] = [];
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
});

/** `webhook-gateway start` with `env` run to its end: its exit code and signal, and all it printed. */
async function startToTheEnd(env: Record<string, string | undefined>) {
  const child = spawn(process.execPath, [BIN, 'start'], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  killOnExit(child, false);
  let output = '';
  child.stdout.on('data', (d: Buffer) => (output += d.toString()));
  child.stderr.on('data', (d: Buffer) => (output += d.toString()));
  const [code, signal] = await once(child, 'close');
  return { code, signal, output };
}

/**
 * A Ctrl-C while `webhook-gateway start` prints its banner (the gateway already serving; the banner reads the delivery
 * secrets) ended the process by the signal's default, a crash the next start had to recover: its handler was taken
 * only after the banner. Now it is taken before, and that Ctrl-C stops the gateway as any other does.
 */
describe('Ctrl-C as the start prints its banner', () => {
  it('stops the gateway gracefully: the stopping line, exit 0, not killed by SIGINT', async () => {
    root = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-ctrl-c-'));
    const { code, signal, output } = await startToTheEnd({
      ...NEW_USER_START_ENV,
      LOCAL_DATA_DIR: path.join(root, '.data'),
      NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${SIGINT_AT_LINE}`,
      SIGINT_AT_LINE: '^webhook-gateway \\(local\\) listening on ',
    });
    expect({ code, signal }, output).toEqual({ code: 0, signal: null });
    // Ended by a line that says it stopped (before: the "stopping: …" line was the last, its "Ctrl-C again stops at
    // once…" left standing as if the stop were still under way).
    expect(output).toMatch(/stopping: no conversation in flight…\nstopped\n$/);
  });
});

/**
 * A Ctrl-C while the start recovers what a kill -9 cut (recovery runs before the gateway serves) ended the process by
 * the signal's default: a crash again, which the next start recovered again. Now it stops as any Ctrl-C does: the
 * execution under way finishes (or, asked before recovery took one up, every one is left in the journal), exit 0, and
 * the next start serves with nothing left to recover, the conversation listed once.
 */
describe('Ctrl-C while the start recovers what a crash cut', () => {
  it('stops gracefully (exit 0, not killed by SIGINT); the next start has it finished, nothing recovered twice', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-ctrl-c-recovery-'));
    const dataDir = path.join(dir, '.data');
    tempDirs.push(dir);
    const env = { ...NEW_USER_START_ENV, LOCAL_DATA_DIR: dataDir };
    // kill -9 as the conversation's history is renamed into place: delivered and exported, its history not saved.
    const killed = await startCli(
      {
        ...env,
        ...(await killAtEnv(dataDir, { op: 'rename', path: 'executions/.+\\.json$', n: 1, when: 'before' }, tempDirs)),
      },
      60_000,
    );
    const exited = once(killed.child, 'exit');
    await fetch(`${killed.url}/webhook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: 'top deals?', source_system: 'ctrl_c', source_process: 'recovery' }),
    }).catch(() => undefined);
    expect((await exited)[1]).toBe('SIGKILL');
    expect((await readdir(path.join(dataDir, 'journal'))).length).toBeGreaterThan(0);

    // Ctrl-C at the restart's first journal line: recovery's, before the gateway serves.
    const { code, signal, output } = await startToTheEnd({
      ...env,
      ...(await killAtEnv(
        dataDir,
        { op: 'write', path: 'journal/', n: 1, when: 'before', signal: 'SIGINT' },
        tempDirs,
      )),
    });
    expect({ code, signal }, output).toEqual({ code: 0, signal: null });
    expect(output).toContain('stopping: the start first finishes what it has under way');
    expect(output).not.toContain('listening on');

    const again = await startCli(env, 60_000);
    const list = await runCli(['conversations', 'list', '--json'], { LOCAL_DATA_DIR: dataDir });
    again.child.kill('SIGINT');
    await once(again.child, 'exit');
    const rows = JSON.parse(list.stdout) as { status: string; delivery_status: string }[];
    expect(rows, again.output()).toHaveLength(1);
    expect(rows[0]).toMatchObject({ delivery_status: 'delivered' });
    expect(await readdir(path.join(dataDir, 'journal'))).toEqual([]);
  }, 120_000);
});
