import { AthenaClient } from '@aws-sdk/client-athena';
import { CliError, note } from '../shared.ts';
import { type AthenaProgress, type AthenaRun, runAthenaQuery } from './athena.ts';
import { AWS_STACK_OUTPUTS, type AwsTarget, awsClientConfig, readStack, requireOutput, withAws } from './stack.ts';

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
    } catch (error) {
      if (!isMissingWorkGroup(error)) throw error;
      const region = options.region ?? (await athena.config.region().catch(() => undefined));
      throw new CliError(
        `the Athena workgroup "${target.workGroup}" does not exist${region ? ` in ${region}` : ''}: it is the ${AWS_STACK_OUTPUTS.analyticsWorkGroup} output of stack "${stack.name}" (named <stackName>-analytics after the context key stackName); was it deleted outside CloudFormation? docs/deploy.md ("SQL over the exports") says how to create it again`,
      );
    } finally {
      process.off('SIGINT', stop);
      athena.destroy();
    }
  });
}

/** Athena's answer to a StartQueryExecution in a workgroup that does not exist: "WorkGroup NAME is not found". */
function isMissingWorkGroup(error: unknown): boolean {
  const e = error as { name?: string; message?: string } | null;
  return e?.name === 'InvalidRequestException' && /\bWorkGroup\b.*\bis not found\b/i.test(e.message ?? '');
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
