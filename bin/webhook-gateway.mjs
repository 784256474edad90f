#!/usr/bin/env node
// The `webhook-gateway` command. Runs the TypeScript sources directly through tsx: no build step after `npm ci`.
import { register } from 'tsx/esm/api';

// The AWS SDK announces its future Node 22 requirement on every start; it is not actionable here.
const emitWarning = process.emitWarning.bind(process);
process.emitWarning = (warning, ...rest) => {
  const type = typeof rest[0] === 'string' ? rest[0] : rest[0]?.type;
  if (type === 'NodeVersionSupportWarning' || String(warning).startsWith('NodeVersionSupportWarning')) return;
  return emitWarning(warning, ...rest);
};

register();
const { main } = await import('../local/cli.ts');
process.exitCode = await main(process.argv.slice(2));
