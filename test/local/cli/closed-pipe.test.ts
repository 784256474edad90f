import { spawn } from 'node:child_process';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../../local/paths.ts';

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
