import type { ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startCli } from './cli.ts';

const KILL_AT = path.join(import.meta.dirname, 'kill-at.cjs');

/** Where test/support/kill-at.cjs kills: the KILL_AT_ settings, `path` under the data folder. */
export interface KillAt {
  op: 'rename' | 'link' | 'append' | 'write' | 'chmod';
  path: string;
  n: number;
  when: 'before' | 'after';
  /** The signal sent there: SIGKILL unless said (SIGINT: a Ctrl-C at that point). */
  signal?: 'SIGKILL' | 'SIGINT';
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
    KILL_AT_SIGNAL: at.signal ?? 'SIGKILL',
  };
}

/**
 * A start whose kill-at hook kills it (during its recovery, or once it listens): its output, its exit signal. The
 * gateway killed before it printed its URL rejects startCli's promise, whose error carries the output; one that
 * started is pushed to `gateways` (for the test to kill if it still runs).
 */
export async function startUntilKilled(
  env: Record<string, string | undefined>,
  startMs: number,
  gateways: Awaited<ReturnType<typeof startCli>>[],
) {
  let child: ChildProcess | undefined;
  const started = startCli(env, startMs, (c) => {
    child = c;
  }).then(
    (gateway) => {
      gateways.push(gateway);
      return gateway;
    },
    (error: Error) => error,
  );
  const signal = await new Promise<NodeJS.Signals | null>((resolve) => child!.once('exit', (_c, s) => resolve(s)));
  const result = await started;
  return { signal, output: result instanceof Error ? result.message : result.output() };
}
