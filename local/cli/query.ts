/** `webhook-gateway conversations query`: SQL over every exported conversation, on DuckDB here or Athena (--aws). */
import { once } from 'node:events';
import { parseArgs } from 'node:util';
import { CONVERSATIONS_COLUMNS, CONVERSATIONS_TABLE } from '../../functions/domain/analytics-table.ts';
import {
  bindNamedQuery,
  NAMED_QUERIES,
  namedQuery,
  nonReadingStatement,
  type QueryParam,
  QueryParamError,
} from '../../functions/domain/named-queries.ts';
import { settings } from '../../functions/shared/settings.ts';
import type { QueryResult, RefreshReport } from '../analytics/engine.ts';
import { resolveOptions } from '../server/config.ts';
import { readGatewayRuntime } from '../store/gateway-runtime.ts';
import { AWS_OPTIONS, awsRequested, CliError, note, out } from './shared.ts';
import { cell, formatTable, printable } from './table.ts';

const OPTIONS = {
  ...AWS_OPTIONS,
  named: { type: 'string' },
  param: { type: 'string', multiple: true },
  json: { type: 'boolean' },
  csv: { type: 'boolean' },
} as const;

/** How far back a named query looks when no `--param since=` is given. */
const DEFAULT_SINCE_DAYS = 7;

const WIDE = 60;

function cellOf(value: unknown): string | number | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'number') return value;
  return cell(typeof value === 'string' ? value : JSON.stringify(value), WIDE);
}

/**
 * Column types a spreadsheet may read as they are: numbers, booleans, dates and times, in DuckDB's spelling and
 * Athena's (`DECIMAL(18,3)`, `timestamp`). A `-5` of one is a number, never a formula.
 */
const NOT_TEXT =
  /^(tinyint|smallint|integer|int|bigint|hugeint|utinyint|usmallint|uinteger|ubigint|uhugeint|float|real|double|decimal|boolean|date|time|timestamp|interval)\b/i;

/**
 * What starts a formula a spreadsheet opening the CSV would run, and a NUL, which some drop to read what follows
 * (docs/operations.md, "SQL over every conversation").
 */
const FORMULA_START = /^[=+\-@\t\r\0]/;

/**
 * One CSV field. A text cell (a column of any other type, or the header's name) that starts as a formula gets a
 * leading `'` inside its quotes, so that a spreadsheet shows the sender's `=HYPERLINK(…)` rather than running it
 * (CSV injection); `--json` keeps the text as it is. On a `terminal` (stdout not redirected) a text's control
 * characters are written out (`\u001b`), as the table writes them: a sender's ESC or OSC sequence would otherwise
 * recolour, retitle or rewrite the screen; its tabs and line breaks stay. A file or a pipe gets the text exactly.
 */
function csvField(value: unknown, type: string | null, terminal: boolean): string {
  if (value === null || value === undefined) return '';
  const raw = typeof value === 'string' ? value : typeof value === 'number' ? String(value) : JSON.stringify(value);
  const text = terminal && typeof value === 'string' ? printable(raw, true) : raw;
  if (typeof value === 'string' && !(type !== null && NOT_TEXT.test(type)) && FORMULA_START.test(raw))
    return `"'${text.replaceAll('"', '""')}"`;
  return /[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text;
}

/**
 * A result as JSON (the text of `JSON.stringify(rows, null, 2)`, one object per row) or CSV (RFC 4180: the header and
 * every row each end with CRLF, the last one too; a text cell that starts as a formula neutralised: csvField), a row at
 * a time: the whole text of a bucket of long answers is more than a JavaScript string can hold (~512 M characters:
 * 9,000 answers of 60 KB). On a `terminal`, no control character of a text reaches the screen raw (csvField).
 */
function* resultText(result: QueryResult, format: 'json' | 'csv', terminal: boolean): Generator<string> {
  const names = result.columns.map((c) => c.name);
  if (format === 'csv') {
    yield `${names.map((name) => csvField(name, null, terminal)).join(',')}\r\n`;
    for (const row of result.rows)
      yield `${result.columns.map((c) => csvField(row[c.name], c.type, terminal)).join(',')}\r\n`;
    return;
  }
  if (result.rows.length === 0) yield '[]';
  // Each row as the array's element: its lines indented once more. Only at "\n": JSON.stringify escapes every line
  // feed of a value, not U+2028 / U+2029, which a multiline regex's ^ would have indented inside the text.
  // On a terminal, what JSON.stringify leaves raw in a text (C1 controls such as U+009B, a CSI to some terminals, line
  // separators, bidirectional overrides) is written as its \uXXXX escape: the same JSON value, nothing for the screen
  // to act on.
  for (const [i, row] of result.rows.entries()) {
    const json = JSON.stringify(row, null, 2);
    yield `${i === 0 ? '[\n' : ',\n'}  ${(terminal ? printable(json, true) : json).replaceAll('\n', '\n  ')}`;
  }
  if (result.rows.length > 0) yield '\n]';
  yield '\n';
}

/** Each chunk to stdout, waiting while a slow reader (a pipe, a file on a slow disk) catches up. */
async function writeOut(chunks: Iterable<string>): Promise<void> {
  for (const chunk of chunks) if (!process.stdout.write(chunk)) await once(process.stdout, 'drain');
}

/** A result as a padded table (long texts cut to one line). */
function tableText(result: QueryResult): string {
  const names = result.columns.map((c) => c.name);
  return formatTable(
    names,
    result.rows.map((r) => names.map((n) => cellOf(r[n]))),
  );
}

function parseParams(values: string[] | undefined): Partial<Record<QueryParam['name'], string>> {
  const params: Record<string, string> = {};
  for (const entry of values ?? []) {
    const at = entry.indexOf('=');
    if (at <= 0) throw new CliError(`--param takes name=value, got "${entry}"`);
    const name = entry.slice(0, at);
    // Else the last would silently win, and the query answer for a value the user may not have meant.
    if (Object.hasOwn(params, name))
      throw new CliError(
        `--param ${name} is given twice ("${params[name]}" and "${entry.slice(at + 1)}"): give it once`,
      );
    params[name] = entry.slice(at + 1);
  }
  return params;
}

/** What `conversations query` with nothing to run prints: the table, its columns, the named queries. */
function describeTable(): string {
  const width = Math.max(...CONVERSATIONS_COLUMNS.map((c) => c.name.length));
  return [
    `Table ${CONVERSATIONS_TABLE} (one row per exported conversation; the same on DuckDB here and on Athena with --aws):`,
    ...CONVERSATIONS_COLUMNS.map((c) => `  ${c.name.padEnd(width)}  ${c.type.padEnd(6)}  ${c.description}`),
    '',
    'Named queries (--named <name> [--param name=value]…; since defaults to 7 days ago):',
    ...NAMED_QUERIES.map(
      (q) => `  ${q.id.padEnd(24)} ${q.description} [${[...new Set(q.params.map((p) => p.name))].join(', ')}]`,
    ),
    '',
    `Example: webhook-gateway conversations query "SELECT webhook_type, count(*) AS n FROM ${CONVERSATIONS_TABLE} GROUP BY 1" --json`,
  ].join('\n');
}

export async function conversationsQuery(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: OPTIONS });
  const aws = awsRequested(values);
  if (values.json && values.csv) throw new CliError('--json and --csv: choose one');
  const format = values.json ? 'json' : values.csv ? 'csv' : 'table';
  let sql = positionals.join(' ').trim();
  let params: string[] = [];
  if (values.named !== undefined) {
    if (sql) throw new CliError('give either SQL or --named <name>, not both');
    const query = namedQuery(values.named);
    if (!query)
      throw new CliError(`no named query "${values.named}"; there are: ${NAMED_QUERIES.map((q) => q.id).join(', ')}`);
    try {
      params = bindNamedQuery(query, parseParams(values.param), new Date(Date.now() - DEFAULT_SINCE_DAYS * 86_400_000));
    } catch (error) {
      if (error instanceof QueryParamError) throw new CliError(error.message);
      throw error;
    }
    sql = query.sql;
  } else if (values.param !== undefined) {
    throw new CliError('--param goes with --named');
  }
  if (!sql) {
    // An argument that is empty (`"$(cat query.sql)"` of a missing file, an unset variable) or a --json / --csv asked
    // for is a script expecting rows: the description on stdout with exit 0 would read as its result.
    if (positionals.length > 0)
      throw new CliError(
        'the SQL is empty (an argument with nothing in it: a variable or a file that gave nothing?); conversations query alone lists the columns and the named queries',
      );
    if (format !== 'table')
      throw new CliError(
        `--${format} needs SQL or --named NAME; conversations query alone lists the columns and the named queries`,
      );
    out(describeTable());
    return 0;
  }
  const changes = nonReadingStatement(sql);
  if (changes === '') throw new CliError('the SQL holds only comments: there is no statement to run');
  if (changes !== null)
    throw new CliError(
      `conversations query only reads (SELECT, WITH, VALUES, SHOW, DESCRIBE, EXPLAIN): "${changes}" is refused`,
    );
  // A named query reads only the day folders from its `since` on (SINCE_CONDITION): only those are listed and brought
  // up to date here, however many days the bucket holds.
  const fromDay = values.named !== undefined ? params[0]!.slice(0, 10).replaceAll('-', '/') : null;
  const result = aws ? await onAthena(values, sql, params) : await onDuckDb(sql, params, fromDay);
  if (format !== 'table') await writeOut(resultText(result, format, process.stdout.isTTY === true));
  else out(result.rows.length > 0 ? tableText(result) : '(no rows)');
  return 0;
}

/**
 * The engine over this machine's exports, with what reading them found said on stderr; from `fromDay` (`YYYY/MM/DD`),
 * only that day's exports and the later ones are brought up to date (the earlier days' rows are as last read).
 */
export async function openLocalEngine(fromDay: string | null = null) {
  const { openLocalAnalytics } = await import('../analytics/engine.ts');
  const { ExportBucketError } = await import('../store/export-bucket.ts');
  const { dataDir } = resolveOptions();
  const engine = await openLocalAnalytics(dataDir, process.env, undefined, fromDay).catch((error) => {
    throw error instanceof ExportBucketError ? new CliError(error.message) : error;
  });
  reportRefresh(engine.report);
  // Else a search found nothing, and a count said 0, of conversations `conversations list` shows.
  if (!settings().exportEnabled || (await readGatewayRuntime(dataDir))?.export_enabled === false)
    note(
      'exports are off (ENABLE_CONVERSATION_EXPORT=false): the conversations run meanwhile are not in this table; conversations list shows them',
    );
  return engine;
}

async function onDuckDb(sql: string, params: string[], fromDay: string | null): Promise<QueryResult> {
  const { QueryError } = await import('../analytics/engine.ts');
  const engine = await openLocalEngine(fromDay);
  try {
    const result = await engine.query(sql, params).catch((error) => {
      // DuckDB's message may quote a value of the table, the sender's text: written out, never sent to the terminal.
      throw error instanceof QueryError ? new CliError(`query failed: ${printable(error.message)}`) : error;
    });
    const read = fromDay ? `the exports from ${fromDay} on` : `${engine.report.rows} exported conversation(s)`;
    note(`${result.rows.length} row(s) · ${read} in ${engine.location}`);
    return result;
  } finally {
    engine.close();
  }
}

async function onAthena(
  options: { stack?: string; region?: string },
  sql: string,
  params: string[],
): Promise<QueryResult> {
  const { megabytes, queryOnAthena } = await import('./aws/query.ts');
  const run = await queryOnAthena(options, { sql, params });
  note(`${run.rows.length} row(s) · ${megabytes(run.scannedBytes)} scanned · Athena query ${run.queryExecutionId}`);
  return run;
}

/** What reading the exports found worth saying: documents it could not use, a cache it could not keep. */
function reportRefresh(report: RefreshReport): void {
  if (report.skipped.length > 0) {
    const first = report.skipped[0]!;
    // The key is any S3 client's: its control characters written out, never sent to the terminal.
    note(
      `skipped ${report.skipped.length} export(s) that are not analysis rows, e.g. ${printable(first.key)}: ${first.reason}`,
    );
  }
  if (report.cacheError) note(`(no cache kept: ${report.cacheError})`);
}
