#!/usr/bin/env node
// The `webhook-gateway` command. Runs the TypeScript sources directly through tsx: no build step after `npm ci`.
import { register } from 'tsx/esm/api';

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
register();
await import('../local/node-warnings.ts');
const { main } = await import('../local/cli/main.ts');
process.exitCode = await main(argv);
