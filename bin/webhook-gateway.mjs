#!/usr/bin/env node
// The `webhook-gateway` command. Runs the TypeScript sources directly through tsx: no build step after `npm ci`.
import { register } from 'tsx/esm/api';

const argv = process.argv.slice(2);
// A reader that stops early (`| head`, `| grep -q`) closes the pipe: a command then ends quietly, as Unix tools do,
// instead of dying on an unhandled EPIPE with a stack trace. `start` is left alone: a gateway must not end silently.
if (argv[0] !== 'start')
  process.stdout.on('error', (error) => {
    if (error.code === 'EPIPE') process.exit(0);
    throw error;
  });
register();
await import('../local/node-warnings.ts');
const { main } = await import('../local/cli/main.ts');
process.exitCode = await main(argv);
