import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { vi } from 'vitest';
import { WEBHOOK_TYPES } from '../../functions/domain/conversation.ts';
import { DELIVERY_URL_VARIABLES } from '../../functions/domain/delivery.ts';
import { PROJECT_ROOT } from '../../local/paths.ts';
import { type CliResult, killOnExit, runCommand } from './children.ts';

const BIN = path.join(PROJECT_ROOT, 'bin', 'webhook-gateway.mjs');

/** Run the real `webhook-gateway` command (as `npx webhook-gateway` would) and collect its output. */
export function runCli(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  return runCommand(process.execPath, [BIN, ...args], { env: { ...process.env, ...env } });
}

/**
 * A new user's shell for `webhook-gateway start`: free ports, and none of the variables the test setup points at
 * local peers (the gateway's own S3, sample agent and built-in receiver are used). Add LOCAL_DATA_DIR.
 */
export const NEW_USER_START_ENV = {
  PORT: '0',
  LOCAL_S3_PORT: '0',
  AWS_ENDPOINT_URL_S3: undefined,
  AWS_ENDPOINT_URL_LAMBDA: undefined,
  MANAGER_AGENT_FUNCTION_NAME: undefined,
  CONVERSATION_EXPORT_S3_BUCKET: undefined,
  DEAL_ANALYSIS_WEBHOOK_URL: undefined,
  DATA_ANALYSIS_WEBHOOK_URL: undefined,
  LEAD_ANALYSIS_WEBHOOK_URL: undefined,
  GENERAL_WEBHOOK_URL: undefined,
  POWERTOOLS_TRACE_ENABLED: undefined, // test/setup.ts sets it; a new user's shell does not
  DELIVERY_SIGNING_SECRETS_FILE: undefined, // an in-process gateway of the same test file sets it (its own data folder's)
};

/**
 * A crash test's gateway (for startCli): its own data folder and embedded S3 on free ports, the test's agent (as the
 * Lambda endpoint) and receiver (every type's URL under it), and a redelivery schedule of 100 ms steps swept every
 * 50 ms, so that what is owed goes out within the test.
 */
export function crashTestEnv(
  dataDir: string,
  agentUrl: string,
  receiverUrl: string,
): Record<string, string | undefined> {
  return {
    PORT: '0',
    LOCAL_S3_PORT: '0',
    LOCAL_DATA_DIR: dataDir,
    AWS_ENDPOINT_URL_S3: undefined,
    CONVERSATION_EXPORT_S3_BUCKET: undefined,
    AWS_ENDPOINT_URL_LAMBDA: agentUrl,
    MANAGER_AGENT_FUNCTION_NAME: 'crash-agent',
    DELIVERY_TIMEOUT_MS: '10000',
    REDELIVERY_SCHEDULE: '100ms,100ms,100ms',
    REDELIVERY_POLL_MS: '50',
    ...Object.fromEntries(WEBHOOK_TYPES.map((t) => [DELIVERY_URL_VARIABLES[t], `${receiverUrl}/hooks/${t}`])),
  };
}

/**
 * Start `webhook-gateway start` and wait until it prints its URL (killed if it has not within `timeoutMs`: a hang,
 * not a speed check; a start took 17.5 s at load 12.5, and 20 s failed a dozen crash tests at load 20-40).
 * `onSpawn` gets the process at once (a crash test may kill it while it starts).
 */
export function startCli(
  env: Record<string, string | undefined>,
  timeoutMs = 60_000,
  onSpawn?: (child: ChildProcess) => void,
): Promise<{ child: ChildProcess; url: string; output: () => string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [BIN, 'start'], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    killOnExit(child, false);
    onSpawn?.(child);
    let output = '';
    // A gateway that did not start in time is killed: left running, it would outlive the test run.
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`gateway (pid ${child.pid}) did not start:\n${output}`));
    }, timeoutMs);
    const onData = (d: Buffer) => {
      output += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(output);
      if (m && output.includes('Ctrl-C stops everything')) {
        clearTimeout(timer);
        resolve({ child, url: m[1]!, output: () => output });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`gateway exited with ${code}:\n${output}`));
    });
  });
}

/**
 * What this process writes to stdout and stderr from now on (read `stdout` / `stderr`; set them to '' to start
 * over), until `restore()` or the test's `vi.restoreAllMocks()`.
 */
export function captureOutput(): { stdout: string; stderr: string; restore(): void } {
  const captured = {
    stdout: '',
    stderr: '',
    restore() {
      out.mockRestore();
      err.mockRestore();
    },
  };
  const out = vi.spyOn(process.stdout, 'write').mockImplementation(((chunk: unknown) => {
    captured.stdout += String(chunk);
    return true;
  }) as never);
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(((chunk: unknown) => {
    captured.stderr += String(chunk);
    return true;
  }) as never);
  return captured;
}

/**
 * `main(args)` in this process, with `env` set for the call and stdout/stderr captured: the same code as the bin
 * without the cost of a new node process (test/local/cli/start-and-inspect.test.ts covers the bin itself).
 */
export async function runMain(args: string[], env: Record<string, string | undefined> = {}): Promise<CliResult> {
  const { main } = await import('../../local/cli/main.ts');
  const output = captureOutput();
  const previous = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  for (const [k, v] of Object.entries(env)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  try {
    const code = await main(args);
    return { code, stdout: output.stdout, stderr: output.stderr };
  } finally {
    output.restore();
    for (const [k, v] of Object.entries(previous)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** Poll `check` every 25 ms until it holds; fails naming `what` after `ms`. */
export async function until(what: string, check: () => boolean | Promise<boolean>, ms = 45_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Kill -9 a gateway started by startCli, if it still runs, and wait until it is gone. */
export async function killIfRunning(gateway: Awaited<ReturnType<typeof startCli>> | null): Promise<void> {
  if (!gateway || gateway.child.exitCode !== null || gateway.child.signalCode !== null) return;
  const exited = new Promise((resolve) => gateway.child.once('exit', resolve));
  gateway.child.kill('SIGKILL');
  await exited;
}
