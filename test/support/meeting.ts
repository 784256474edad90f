import { spawn } from 'node:child_process';
import { killOnExit } from './children.ts';

/** One of the processes meetInProcesses started. */
export interface MetProcess {
  /** Its first line of output after the meeting ('' when it closed without one). */
  line: Promise<string>;
  /** All its output after the meeting, trimmed, once it closed. */
  closed: Promise<string>;
  kill(): void;
}

/**
 * `count` processes (node with tsx, as the gateway's own modules are loaded) that each run `setup` (its imports: on a
 * loaded machine a few seconds, more for some than for others), say so, and run `act` only once every one of them has
 * said so: then all at once, so that they really contend for what `act` takes (a lock, a folder to migrate). The
 * meeting is a handshake, not an instant on the wall clock: a wall-clock `go` that a loaded machine had reached before
 * some process was ready let that one act alone, after the others were done, and the test then passed without any
 * contention. A process that ends before it is ready fails the call with its output.
 */
export async function meetInProcesses(count: number, setup: string, act: string): Promise<MetProcess[]> {
  // Each waits for the end of its standard input, which the test gives every one of them at the same moment.
  const code = `${setup}
    process.stdout.write('ready\\n');
    await new Promise((resolve) => process.stdin.once('end', resolve).resume());
    ${act}`;
  const started = Array.from({ length: count }, () => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    killOnExit(child, false);
    child.stdin.on('error', () => undefined); // one gone already: its close says so
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    /** The output after 'ready' (null before it). */
    const after = () => (out.includes('ready\n') ? out.slice(out.indexOf('ready\n') + 'ready\n'.length) : null);
    const ready = new Promise<void>((resolve, reject) => {
      child.stdout.on('data', () => after() !== null && resolve());
      child.on('close', (exit, signal) =>
        reject(new Error(`a process ended (${exit ?? signal}) before it was ready:\n${out}\n${err}`)),
      );
    });
    ready.catch(() => undefined); // Promise.all below says the first failure; the others are not unhandled
    const line = new Promise<string>((resolve) => {
      const look = () => {
        const rest = after();
        if (rest?.includes('\n')) resolve(rest.slice(0, rest.indexOf('\n')).trim());
      };
      child.stdout.on('data', look);
      child.on('close', () => resolve((after() ?? '').trim().split('\n')[0] ?? ''));
    });
    const closed = new Promise<string>((resolve) => child.on('close', () => resolve((after() ?? '').trim())));
    return { child, ready, met: { line, closed, kill: () => void child.kill() } };
  });
  try {
    await Promise.all(started.map((s) => s.ready));
  } catch (error) {
    for (const { child } of started) child.kill();
    throw error;
  }
  for (const { child } of started) child.stdin.end();
  return started.map((s) => s.met);
}
