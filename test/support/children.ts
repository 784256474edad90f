import { type ChildProcess, spawn } from 'node:child_process';

/**
 * The processes the tests start that must not outlive the test process: with what they started (a process group:
 * `group`), or alone. Killed (SIGKILL) when this process exits, or is stopped by SIGINT (Ctrl-C in its terminal, which
 * does not reach a group of its own) or SIGTERM (a run cancelled); this module imports nothing of vitest, so that a
 * plain node script can show it (test/support/children.test.ts). A SIGKILL of this process leaves them running.
 */
const owned = new Map<ChildProcess, { group: boolean }>();

function killOwned(): void {
  for (const [child, { group }] of owned) {
    try {
      process.kill(group ? -child.pid! : child.pid!, 'SIGKILL');
    } catch {
      // gone already
    }
  }
  owned.clear();
}

let watching = false;

/** Kills `child` (its group too when `group`: it was spawned detached) if it still runs when this process ends. */
export function killOnExit(child: ChildProcess, group: boolean): void {
  if (child.pid === undefined) return; // not started: its 'error' says why
  owned.set(child, { group });
  // A group may live on after its leader (what it started in the background): it is owned until its output closes.
  child.once(group ? 'close' : 'exit', () => owned.delete(child));
  if (watching) return;
  watching = true;
  process.on('exit', killOwned);
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    const onSignal = () => {
      killOwned();
      process.off(signal, onSignal);
      // Then the signal does what it would have done (ends this process), unless something else here listens for it.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    };
    process.on(signal, onSignal);
  }
}

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * How long a command may run before runCommand kills it: under the test timeout (vitest.config.ts), so that the test
 * fails with the command's output rather than by timing out.
 */
const COMMAND_LIMIT_MS = 25_000;

/**
 * Run a command to its end and collect its output (in `cwd` when given, with `env` or this process's). One still
 * running after `limitMs` is killed (SIGKILL, with every process it started) and the call fails with its output: a
 * command that should have exited and serves instead (a gateway) cannot outlive the test, nor the test process
 * (killOnExit).
 */
export function runCommand(
  command: string,
  args: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; limitMs?: number } = {},
): Promise<CliResult> {
  const { limitMs = COMMAND_LIMIT_MS, ...spawnOptions } = options;
  return new Promise((resolve, reject) => {
    // In its own process group, so that the kill reaches what it started too (bash's commands, npm's node).
    const child = spawn(command, args, { ...spawnOptions, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    killOnExit(child, true);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // the group is gone already
      }
      const ran = [command, ...args].join(' ');
      reject(new Error(`${ran} did not exit within ${limitMs} ms (killed)\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, limitMs);
    child.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}
