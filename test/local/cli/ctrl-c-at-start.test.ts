import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../../local/paths.ts';
import { killOnExit } from '../../support/children.ts';
import { NEW_USER_START_ENV } from '../../support/cli.ts';

const BIN = path.join(PROJECT_ROOT, 'bin', 'webhook-gateway.mjs');
const SIGINT_AT_LINE = path.join(PROJECT_ROOT, 'test', 'support', 'sigint-at-line.cjs');

let root: string | undefined;
afterAll(async () => {
  if (root) await rm(root, { recursive: true, force: true });
});

/**
 * A Ctrl-C while `webhook-gateway start` prints its banner (the gateway already serving; the banner reads the delivery
 * secrets) ended the process by the signal's default, a crash the next start had to recover: its handler was taken
 * only after the banner. Now it is taken before, and that Ctrl-C stops the gateway as any other does.
 */
describe('Ctrl-C as the start prints its banner', () => {
  it('stops the gateway gracefully: the stopping line, exit 0, not killed by SIGINT', async () => {
    root = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-ctrl-c-'));
    const child = spawn(process.execPath, [BIN, 'start'], {
      env: {
        ...process.env,
        ...NEW_USER_START_ENV,
        LOCAL_DATA_DIR: path.join(root, '.data'),
        NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${SIGINT_AT_LINE}`,
        SIGINT_AT_LINE: '^webhook-gateway \\(local\\) listening on ',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    killOnExit(child, false);
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d.toString()));
    child.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const [code, signal] = await once(child, 'close');
    expect({ code, signal }, output).toEqual({ code: 0, signal: null });
    expect(output).toContain('stopping: no conversation in flight…');
  });
});
