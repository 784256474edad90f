import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { PROJECT_ROOT } from '../../local/paths.ts';

const BIN = path.join(PROJECT_ROOT, 'bin', 'webhook-gateway.mjs');

/**
 * Run the start banner's `Try:` lines in bash as a user would: the `SECRET=whsec_…` and `API_KEY=…` placeholders
 * filled in as their comments say, `npx webhook-gateway` as this checkout's command. The parsed JSON answer.
 */
export async function runPrinted(
  lines: string[],
  fill: { secret?: string; keys?: Record<string, string> } = {},
): Promise<unknown> {
  const script = lines
    .join('\n')
    .replace(/^Try:/, '')
    .replaceAll('SECRET=whsec_…', `SECRET=${fill.secret}`)
    .replace(/API_KEY=… {3}# (\w+)'s key[^\n]*/, (_, source: string) => `API_KEY=${fill.keys?.[source]}`)
    .replaceAll('npx webhook-gateway', `"${process.execPath}" "${BIN}"`);
  const { stdout } = await promisify(execFile)('bash', ['-c', script]);
  return JSON.parse(stdout);
}
