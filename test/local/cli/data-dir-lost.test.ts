import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NEW_USER_START_ENV, startCli } from '../../support/cli.ts';
import { anotherHost } from '../../support/pid-namespaces.ts';

const dirs: string[] = [];
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

/**
 * A gateway that stood still for more than 30 s (a paused container) may find its data folder taken over by a start in
 * another container (docs/operations.md, "Processes in other containers"). Before, it printed one line and went on
 * serving: two gateways on one folder. Now it stops at once, saying why, and leaves the other's files as they are.
 */
describe('a gateway whose data folder another gateway took over while it stood still', () => {
  it('stops at once (exit 1), saying why; the other gateway’s gateway.pid is left', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-lost-'));
    dirs.push(dir);
    const dataDir = path.join(dir, '.data');
    // The clock of the child moved on: its gateway.pid is looked at every 20 ms rather than every 10 s.
    const fastClock = path.join(dir, 'fast-clock.cjs');
    await writeFile(
      fastClock,
      'const real = global.setInterval; global.setInterval = (fn, ms, ...rest) => real(fn, ms === 10000 ? 20 : ms, ...rest);\n',
    );
    const gateway = await startCli(
      {
        ...NEW_USER_START_ENV,
        LOCAL_DATA_DIR: dataDir,
        NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${fastClock}`,
      },
      60_000,
    );
    // 'close', not 'exit': its last line (stopped at once: …) may still be in the pipe at 'exit'.
    const exited = once(gateway.child, 'close');
    // It stands still (stopped), and meanwhile another container's start takes the folder over.
    gateway.child.kill('SIGSTOP');
    const theirs = `1@${anotherHost()} 4242`;
    await writeFile(path.join(dataDir, 'gateway.pid'), theirs);
    gateway.child.kill('SIGCONT');
    // Before: it went on serving (the test times out waiting for its exit).
    const [code] = await exited;
    expect(code, gateway.output()).toBe(1);
    expect(gateway.output()).toContain(
      `stopped at once: ${path.join(dataDir, 'gateway.pid')} now names another gateway (1@${anotherHost()}): it took ${dataDir} over while this one stood still for more than 30 s; what was in flight is left to the journal`,
    );
    expect(await readFile(path.join(dataDir, 'gateway.pid'), 'utf8')).toBe(theirs);
  }, 60_000);
});
