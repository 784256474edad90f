#!/usr/bin/env node
// The `webhook-gateway` command. Runs the TypeScript sources directly through tsx: no build step after `npm ci`.
import { closeSync, openSync, readFileSync } from 'node:fs';

const argv = process.argv.slice(2);
// A reader that stops early (`| head`, `| grep -q`) closes the pipe: a command then ends quietly, as Unix tools do,
// instead of dying on an unhandled EPIPE with a stack trace. A gateway keeps serving instead (`npm start | head`, a log
// collector that went away): only its request lines stop, said once on stderr while stderr is still open; the
// handlers' log is a file of its own (docs/operations.md).
if (argv[0] === 'start') {
  let said = false;
  for (const stream of [process.stdout, process.stderr])
    stream.on('error', (error) => {
      if (error.code !== 'EPIPE') throw error;
      if (stream !== process.stdout || said) return;
      said = true;
      process.stderr.write(
        'webhook-gateway: the reader of its output has gone: request lines are no longer printed; the gateway keeps serving (SIGINT or SIGTERM stops it)\n',
      );
    });
} else
  process.stdout.on('error', (error) => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  });
// Too few file descriptors to load the modules (`ulimit -n 40`): they are read many at once, and a failed read, or the
// TypeScript compiler's process not started, ended in the loader's stack trace. Said before any is loaded, exit 1.
const freeNeeded = 48;
const free = freeDescriptors(freeNeeded);
if (free.error) {
  const few = `too few file descriptors to load its modules: it could open ${free.opened} more files, it needs ${freeNeeded}`;
  process.stderr.write(`webhook-gateway: ${few}${outOfFiles(free.error)}\n`);
  process.exit(1);
}
const { register } = await import('tsx/esm/api'); // after that check: at `ulimit -n 20` it could not be read
register();
await import('../local/node-warnings.ts');
const { main } = await import('../local/cli/main.ts');
process.exitCode = await main(argv);

/**
 * Whether `needed` more files can be opened: opened (the node binary, read-only, always there) and closed at once;
 * else the error that refused one (EMFILE: the process's limit; ENFILE: the system's) and how many were opened.
 */
function freeDescriptors(needed) {
  const fds = [];
  try {
    while (fds.length < needed) fds.push(openSync(process.execPath, 'r'));
    return { opened: fds.length };
  } catch (error) {
    if (error?.code !== 'EMFILE' && error?.code !== 'ENFILE') return { opened: fds.length };
    return { opened: fds.length, error };
  } finally {
    for (const fd of fds) closeSync(fd);
  }
}

/** Whose limit it is and what to do (as the commands say a refused open: local/cli/main.ts), with the limit. */
function outOfFiles(error) {
  let limit = '';
  try {
    const line = /^Max open files\s+(\d+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (line) limit = ` (its limit, ulimit -n, is ${line[1]})`;
  } catch {
    // No /proc (macOS), or not even that file could be opened: said without the limit.
  }
  const who =
    error.code === 'EMFILE'
      ? `the process is out of file descriptors${limit}`
      : 'the system is out of file descriptors';
  return `: ${who}: raise the limit (ulimit -n 1024) or close what holds them, then run the command again`;
}
