import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';

const KILL_AT = path.join(import.meta.dirname, 'kill-at.cjs');

/** Where test/support/kill-at.cjs kills: the KILL_AT_ settings, `path` under the data folder. */
export interface KillAt {
  op: 'rename' | 'link' | 'append' | 'write';
  path: string;
  n: number;
  when: 'before' | 'after';
}

/**
 * The environment that has test/support/kill-at.cjs kill a process (a gateway, a command) on `dataDir` at `at`, with a
 * count of its own in a new temporary folder, pushed to `tempDirs` for the test to remove.
 */
export async function killAtEnv(dataDir: string, at: KillAt, tempDirs: string[]): Promise<Record<string, string>> {
  const counter = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-kill-count-'));
  tempDirs.push(counter);
  return {
    NODE_OPTIONS: `${process.env.NODE_OPTIONS ?? ''} --require ${KILL_AT}`.trim(),
    KILL_AT_OP: at.op,
    KILL_AT_PATH: `^${dataDir.replaceAll(/[.*+?^${}()|[\]\\]/g, '\\$&')}/${at.path}`,
    KILL_AT_N: String(at.n),
    KILL_AT_WHEN: at.when,
    KILL_AT_COUNTER: path.join(counter, 'count'),
  };
}
