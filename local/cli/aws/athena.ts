import {
  type AthenaClient,
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  type QueryExecution,
  StartQueryExecutionCommand,
  StopQueryExecutionCommand,
} from '@aws-sdk/client-athena';
import { decimalValue, uniqueColumnNames } from '../../../functions/domain/analytics-table.ts';
import type { QueryResult } from '../../analytics/engine.ts';
import { CliError } from '../shared.ts';
import { printable } from '../table.ts';
import { withAftermath } from './errors.ts';

/**
 * `conversations query --aws` and `conversations search --aws`: the same SQL on Athena, in the stack's workgroup
 * (results bucket, encryption and scan limit enforced there) and database. Waits for the query, reporting its state
 * and the bytes scanned, then reads every page of the result; values come back typed as the DuckDB engine's do.
 */
export interface AthenaTarget {
  workGroup: string;
  database: string;
}

export interface AthenaProgress {
  state: string;
  elapsedMs: number;
  scannedBytes: number;
}

export interface AthenaRun extends QueryResult {
  queryExecutionId: string;
  scannedBytes: number;
  elapsedMs: number;
}

/** A query Athena refused, failed or cancelled; the message is Athena's reason. */
export class AthenaQueryError extends CliError {}

/** `?` values as Athena's ExecutionParameters want them: SQL literals, strings quoted. */
export function athenaLiteral(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

const NUMERIC = new Set(['tinyint', 'smallint', 'integer', 'int', 'bigint', 'double', 'real', 'float']);

function typed(value: string | undefined, type: string): unknown {
  if (value === undefined) return null;
  const base = type.toLowerCase().replace(/\(.*$/, '');
  if (base === 'decimal') return decimalValue(value);
  if (NUMERIC.has(base)) {
    const n = Number(value);
    return Number.isFinite(n) && (base !== 'bigint' || Number.isSafeInteger(n)) ? n : value;
  }
  if (base === 'boolean') return value === 'true';
  return value;
}

async function results(client: AthenaClient, id: string, statementType: string | undefined): Promise<QueryResult> {
  const rows: Record<string, unknown>[] = [];
  let columns: QueryResult['columns'] = [];
  let token: string | undefined;
  let first = true;
  do {
    const page = await client.send(
      new GetQueryResultsCommand({ QueryExecutionId: id, NextToken: token, MaxResults: 1000 }),
    );
    if (first) {
      const info = page.ResultSet?.ResultSetMetadata?.ColumnInfo ?? [];
      const names = uniqueColumnNames(info.map((c) => c.Name ?? ''));
      columns = info.map((c, i) => ({ name: names[i]!, type: c.Type ?? 'varchar' }));
    }
    let pageRows = page.ResultSet?.Rows ?? [];
    // A SELECT's first row repeats the column names.
    if (first && statementType === 'DML') pageRows = pageRows.slice(1);
    for (const row of pageRows) {
      const data = row.Data ?? [];
      rows.push(Object.fromEntries(columns.map((c, i) => [c.name, typed(data[i]?.VarCharValue, c.type)])));
    }
    first = false;
    token = page.NextToken;
  } while (token);
  return { columns, rows };
}

const TERMINAL = new Set(['SUCCEEDED', 'FAILED', 'CANCELLED']);

/** Stop a query the command no longer watches; what happened, in words. */
async function stopAthena(client: AthenaClient, id: string): Promise<string> {
  try {
    await client.send(new StopQueryExecutionCommand({ QueryExecutionId: id }));
    return `its Athena query ${id} was stopped`;
  } catch (error) {
    return `its Athena query ${id} could not be stopped (${(error as Error).name}): see it in the workgroup's history`;
  }
}

export async function runAthenaQuery(
  client: AthenaClient,
  target: AthenaTarget,
  query: { sql: string; params?: readonly string[] },
  options: { onProgress?: (p: AthenaProgress) => void; pollMs?: number; signal?: AbortSignal; now?: () => number } = {},
): Promise<AthenaRun> {
  const now = options.now ?? Date.now;
  const started = now();
  const { QueryExecutionId: id } = await client.send(
    new StartQueryExecutionCommand({
      QueryString: query.sql,
      WorkGroup: target.workGroup,
      QueryExecutionContext: { Catalog: 'AwsDataCatalog', Database: target.database },
      ...(query.params && query.params.length > 0 ? { ExecutionParameters: query.params.map(athenaLiteral) } : {}),
    }),
  );
  if (!id) throw new AthenaQueryError('Athena started no query (no QueryExecutionId)');
  const stop = () => void client.send(new StopQueryExecutionCommand({ QueryExecutionId: id })).catch(() => {});
  options.signal?.addEventListener('abort', stop, { once: true });
  try {
    let execution: QueryExecution | undefined;
    for (;;) {
      try {
        execution = (await client.send(new GetQueryExecutionCommand({ QueryExecutionId: id }))).QueryExecution;
      } catch (error) {
        // Throttled past the SDK's retries, access denied, the network: the query would run on (and be paid for).
        throw withAftermath(error, await stopAthena(client, id));
      }
      const state = execution?.Status?.State ?? 'UNKNOWN';
      const scannedBytes = execution?.Statistics?.DataScannedInBytes ?? 0;
      options.onProgress?.({ state, elapsedMs: now() - started, scannedBytes });
      if (TERMINAL.has(state)) break;
      if (options.signal?.aborted) throw new AthenaQueryError(`stopped query ${id}`);
      await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 1000));
    }
    const state = execution?.Status?.State;
    if (state !== 'SUCCEEDED') {
      const reason =
        execution?.Status?.StateChangeReason ?? execution?.Status?.AthenaError?.ErrorMessage ?? 'no reason given';
      // One line (the command's error line): Athena's reasons may span several (a parser's caret, a stack of causes),
      // and may quote a value of the table (the sender's text): its control characters written out.
      // A query refused for what the role may not read or write (Glue's table, the exports, the results) fails so:
      // AWS's words, then which policy of the stack grants it (docs/deploy.md), as an access denied of a call is told.
      const denied = /not authorized|permission denied|access denied|insufficient permissions/i.test(reason)
        ? `: these credentials need the stack's AnalyticsQueryPolicyArn policy (docs/deploy.md#after-the-first-deploy), and kms:Decrypt on the key of an export bucket of your own encrypted with one`
        : '';
      throw new AthenaQueryError(
        `Athena query ${id} ${state}: ${printable(reason.replace(/\s+/g, ' ').trim())}${denied}`,
      );
    }
    const result = await results(client, id, execution?.StatementType);
    return {
      ...result,
      queryExecutionId: id,
      scannedBytes: execution?.Statistics?.DataScannedInBytes ?? 0,
      elapsedMs: now() - started,
    };
  } finally {
    options.signal?.removeEventListener('abort', stop);
  }
}
