import { AthenaClient } from '@aws-sdk/client-athena';
import { note } from '../shared.ts';
import { type AthenaProgress, type AthenaRun, runAthenaQuery } from './athena.ts';
import { type AwsTarget, awsClientConfig, readStack, requireOutput, withAws } from './stack.ts';

/**
 * Run one query on the deployed stack's Athena workgroup and database (its AnalyticsWorkGroupName and
 * AnalyticsDatabaseName outputs), showing its progress on stderr. Ctrl-C stops the query in Athena too.
 */
export async function queryOnAthena(
  options: AwsTarget,
  query: { sql: string; params?: readonly string[] },
  pollMs = 1000,
): Promise<AthenaRun> {
  return withAws(options, async (clients, stackName) => {
    const stack = await readStack(clients, stackName);
    const target = {
      workGroup: requireOutput(stack, 'analyticsWorkGroup'),
      database: requireOutput(stack, 'analyticsDatabase'),
    };
    const athena = new AthenaClient(awsClientConfig(options.region, options.profile));
    const abort = new AbortController();
    const stop = () => abort.abort();
    process.once('SIGINT', stop);
    try {
      return await runAthenaQuery(athena, target, query, { onProgress: progressLine(), pollMs, signal: abort.signal });
    } finally {
      process.off('SIGINT', stop);
      athena.destroy();
    }
  });
}

export function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(bytes < 1e7 ? 2 : 0)} MB`;
}

/** On a terminal one line rewritten in place; otherwise a line per change of state. */
function progressLine(): (p: AthenaProgress) => void {
  const tty = process.stderr.isTTY;
  let last = '';
  return (p) => {
    const text = `athena: ${p.state} ${(p.elapsedMs / 1000).toFixed(1)} s, ${megabytes(p.scannedBytes)} scanned`;
    const done = ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(p.state);
    if (tty) process.stderr.write(`\r${text}${done ? '\n' : ''}`);
    else if (p.state !== last) note(text);
    last = p.state;
  };
}
