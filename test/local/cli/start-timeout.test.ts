import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NEW_USER_START_ENV, startCli, until } from '../../support/cli.ts';

/**
 * The tests' own helper: a gateway that has not started within startCli's time (a loaded machine) is killed, not
 * left running after the test run (seen: seven such gateways an hour after a run at load 20).
 */
let dataDir: string;
afterAll(async () => {
  if (dataDir) await rm(dataDir, { recursive: true, force: true });
});

describe('startCli', () => {
  it('kills a gateway that did not start in time', async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'start-timeout-'));
    const error = (await startCli({ ...NEW_USER_START_ENV, LOCAL_DATA_DIR: dataDir }, 1).catch((e) => e)) as Error;
    expect(error.message).toMatch(/^gateway \(pid \d+\) did not start/);
    const pid = Number(/pid (\d+)/.exec(error.message)![1]);
    const running = () => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    await until(`pid ${pid} to end`, () => !running(), 10_000);
  });
});
