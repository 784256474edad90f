#!/usr/bin/env node
// The `webhook-gateway` command. Runs the TypeScript sources directly through tsx: no build step after `npm ci`.
import { register } from 'tsx/esm/api';

register();
await import('../local/node-warnings.ts');
const { main } = await import('../local/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
