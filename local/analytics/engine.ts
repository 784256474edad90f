import { existsSync, rmSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readdir, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { DuckDBConnection, DuckDBInstance, DuckDBValue } from '@duckdb/node-api';
import {
  ANALYSIS_COLUMNS,
  CONVERSATIONS_COLUMNS,
  CONVERSATIONS_TABLE,
  decimalValue,
  ENGINE_TYPES,
  PARTITION_COLUMN,
  uniqueColumnNames,
} from '../../functions/domain/analytics-table.ts';
import { OWNER_DIR, OWNER_FILE } from '../../functions/shared/local-files.ts';
import { asideName, asideWriter, writerStamp, writerState } from '../../functions/shared/writers.ts';
import { type AnalysisObject, type AnalysisSource, openAnalysisSource } from './sources.ts';

/**
 * The `conversations` table on this machine: DuckDB, in memory, filled from the exported analysis.json documents,
 * with the same columns as the Athena view (functions/domain/analytics-table.ts). The rows are kept between runs in
 * `<LOCAL_DATA_DIR>/analytics/conversations.parquet` with each object's version, so a run reads only the exports that
 * are new or changed since the last one. Once loaded, the database is locked down: the SQL it runs cannot read or
 * write files, load extensions or reach the network.
 */
export interface QueryColumn {
  name: string;
  type: string;
}

export interface QueryResult {
  columns: QueryColumn[];
  rows: Record<string, unknown>[];
}

export interface RefreshReport {
  /** Rows in the table. */
  rows: number;
  /** Documents read in this run (new or changed). */
  read: number;
  /** Documents that could not be used, and why (a document being written is retried on the next run). */
  skipped: { key: string; reason: string }[];
  /** Why the cache could not be written, if it could not (the run still works, from memory). */
  cacheError?: string;
}

export interface AnalyticsEngine {
  readonly report: RefreshReport;
  query(sql: string, params?: readonly string[]): Promise<QueryResult>;
  close(): void;
}

/** A query the engine refused or that failed (bad SQL, a locked-down operation); the CLI prints the message. */
export class QueryError extends Error {}

const CACHE_TABLE = '_conversation_cache';
const KEY = '_key';
const VERSION = '_version';
export const CACHE_FILE = 'conversations.parquet';

const ddlColumns = () =>
  [
    ...CONVERSATIONS_COLUMNS.map((c) => `${c.name} ${ENGINE_TYPES[c.type].duckdb}`),
    `${KEY} VARCHAR`,
    `${VERSION} VARCHAR`,
  ].join(', ');

/** `conversation-history/2026/11/29/<id>/analysis.json` → `2026/11/29` (the Athena partition value). */
export function dayOfKey(key: string): string | null {
  return /^conversation-history\/(\d{4}\/\d{2}\/\d{2})\//.exec(key)?.[1] ?? null;
}

type Row = (string | number | null)[];

/**
 * A document written this recently may still be being written (an S3 client's upload, a copy by hand): one older
 * that is not JSON was cut for good (a crash as it was written, a full disk) or edited, as the other listings of the
 * data folder tell a file being written from a damaged one by its age (local/store/failed-delivery-store.ts).
 */
const BEING_WRITTEN_MS = 5_000;

/** Why a document that is not JSON is no row: being written (recent, or its time unknown), else damaged. */
function notJson(object: AnalysisObject, now: number): string {
  if (object.modified === undefined || now - object.modified < BEING_WRITTEN_MS) return 'not JSON (being written?)';
  const where = object.file ? `${object.file} ` : '';
  return `damaged: ${where}is cut short or not JSON, unchanged since ${new Date(object.modified).toISOString()} (a crash or a full disk as it was written, or an edit), not being written: put it back from a copy, or delete it (the conversation is then not in the table; \`conversations show <id>\` still has it; docs/operations.md, "SQL over every conversation")`;
}

/** One analysis.json document as a row of the cache table, or why it cannot be one. */
function rowOfDocument(text: string, object: AnalysisObject, now: number): Row | string {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return notJson(object, now);
  }
  if (!doc || typeof doc !== 'object' || Array.isArray(doc)) return 'not a JSON object';
  const values = doc as Record<string, unknown>;
  if (values.format !== 'analysis') return 'not an analysis document (format is not "analysis")';
  const day = dayOfKey(object.key);
  if (!day) return 'not under conversation-history/YYYY/MM/DD/';
  const cells: Row = ANALYSIS_COLUMNS.map((column) => {
    const value = values[column.name];
    if (value === null || value === undefined) return null;
    if (column.type === 'bigint') return typeof value === 'number' && Number.isInteger(value) ? value : null;
    return typeof value === 'string' ? value : JSON.stringify(value);
  });
  return [...cells, day, object.key, object.version];
}

const sqlText = (text: string) => `'${text.replaceAll("'", "''")}'`;

/**
 * The cache file, when it is one this version wrote (same columns, in order): a Parquet file the queries read in
 * place (only the columns they name). Anything else is dropped: the documents are the system of record.
 */
async function usableCache(connection: DuckDBConnection, file: string | null): Promise<string | null> {
  if (!file || !existsSync(file)) return null;
  const expected = [...CONVERSATIONS_COLUMNS.map((c) => c.name), KEY, VERSION];
  try {
    const reader = await connection.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet(${sqlText(file)})`);
    const names = reader.getRows().map((r) => String(r[0]));
    return names.join(',') === expected.join(',') ? file : null;
  } catch {
    return null;
  }
}

async function appendRows(
  connection: DuckDBConnection,
  table: string,
  rows: Row[],
  types: ('string' | 'bigint')[],
): Promise<void> {
  if (rows.length === 0) return;
  const appender = await connection.createAppender(table);
  for (const row of rows) {
    row.forEach((cell, i) => {
      if (cell === null) appender.appendNull();
      else if (types[i] === 'bigint') appender.appendBigInt(BigInt(cell));
      else appender.appendVarchar(String(cell));
    });
    appender.endRow();
  }
  appender.closeSync();
}

/** Documents read (and their rows appended) at a time when the table is brought up to date. */
export const READ_BATCH = 500;

const CACHE_TYPES = [...CONVERSATIONS_COLUMNS.map((c) => c.type), 'string', 'string'] as ('string' | 'bigint')[];

/** Rows of about this many characters are written to a Parquet file at a time (DuckDB holds them a few times over). */
const PART_BYTES = 8 * 1024 * 1024;

/** `rows` in runs of about `size` characters (a row longer than that is a run of its own). */
function chunksOf(rows: Row[], size: number): Row[][] {
  const chunks: Row[][] = [];
  let chars = 0;
  for (const row of rows) {
    const rowChars = row.reduce<number>((n, cell) => n + (typeof cell === 'string' ? cell.length : 8), 0);
    if (chunks.length === 0 || (chars > 0 && chars + rowChars > size)) {
      chunks.push([]);
      chars = 0;
    }
    chunks.at(-1)!.push(row);
    chars += rowChars;
  }
  return chunks;
}

/**
 * Bring the rows up to date with the source: list it, compare each object's version with the cached one, read only
 * what is new or rewritten. The result is CACHE_TABLE (kept rows of the cache file plus the fresh ones): a view of
 * the Parquet files written to `partsDir`, or a table in memory without one; nothing when the cache file is current.
 */
async function refresh(
  connection: DuckDBConnection,
  source: AnalysisSource,
  cache: string | null,
  fromDay: string | null,
  partsDir: string | null,
): Promise<{ read: number; changed: boolean; built: boolean; skipped: RefreshReport['skipped'] }> {
  // From a day, only that day's folder and the later ones are listed and brought up to date: the cached rows of the
  // earlier days are kept as they are (an export stays in its day folder; the next run without a day looks at them).
  const listed = await source.list(fromDay);
  const inScope = fromDay === null ? 'true' : `${PARTITION_COLUMN.name} >= ${sqlText(fromDay)}`;
  // The comparison runs in DuckDB: the listing goes in as a table, what is new, changed or gone comes out.
  await connection.run('CREATE TEMP TABLE _listed (k VARCHAR, v VARCHAR)');
  await appendRows(
    connection,
    '_listed',
    listed.map((o) => [o.key, o.version]),
    ['string', 'string'],
  );
  const cached = cache
    ? `(SELECT ${KEY}, ${VERSION} FROM read_parquet(${sqlText(cache)}) WHERE ${inScope})`
    : `(SELECT NULL::VARCHAR AS ${KEY}, NULL::VARCHAR AS ${VERSION} WHERE false)`;
  const stale = await connection.runAndReadAll(
    `SELECT l.k, l.v FROM _listed l LEFT JOIN ${cached} c ON c.${KEY} = l.k WHERE c.${VERSION} IS DISTINCT FROM l.v`,
  );
  // As listed: with when each was written and its file, for the note on one that is no row.
  const listedByKey = new Map(listed.map((o) => [o.key, o]));
  const staleObjects: AnalysisObject[] = stale
    .getRows()
    .map((r) => listedByKey.get(String(r[0])) ?? { key: String(r[0]), version: String(r[1]) });
  const gone = await connection.runAndReadAll(
    `SELECT count(*) FROM ${cached} c WHERE c.${KEY} NOT IN (SELECT k FROM _listed)`,
  );
  const changed = staleObjects.length > 0 || Number(gone.getRows()[0]?.[0] ?? 0) > 0;
  if (!changed && cache) {
    await connection.run('DROP TABLE _listed');
    return { read: 0, changed: false, built: false, skipped: [] };
  }

  const skipped: RefreshReport['skipped'] = [];
  const kept = cache
    ? `SELECT * FROM read_parquet(${sqlText(cache)}) c WHERE NOT (${inScope}) OR c.${KEY} IN (SELECT k FROM _listed l WHERE l.v = c.${VERSION})`
    : null;
  // With a folder for them, each batch of rows (and the kept rows of the cache) goes to a Parquet file of its own
  // and leaves memory: DuckDB holds one batch, whatever the size of the bucket. Without one, to a table in memory.
  const parts: string[] = [];
  const target = partsDir ? '_batch' : CACHE_TABLE;
  await connection.run(`CREATE ${partsDir ? 'TEMP ' : ''}TABLE ${target} (${ddlColumns()})`);
  const flush = async (select: string) => {
    if (!partsDir) return;
    const part = path.join(partsDir, `part-${parts.length}.parquet`);
    await connection.run(`COPY (${select}) TO ${sqlText(part)} (FORMAT parquet, ${ROW_GROUPS})`);
    parts.push(part);
    await chmod(part, OWNER_FILE); // DuckDB makes it as the umask says
  };
  if (kept && partsDir) await flush(kept);
  else if (kept) await connection.run(`INSERT INTO ${CACHE_TABLE} ${kept}`);
  // A batch at a time, each appended before the next is read: the documents of a whole bucket (a first run, every
  // answer up to 64 KB) are never all in memory at once.
  for (let start = 0; start < staleObjects.length; start += READ_BATCH) {
    const batch = staleObjects.slice(start, start + READ_BATCH);
    const texts = await source.read(batch);
    const rows: Row[] = [];
    const now = Date.now();
    batch.forEach((object, i) => {
      const text = texts[i];
      if (text === null || text === undefined) return; // deleted since the listing
      const row = rowOfDocument(text, object, now);
      if (typeof row === 'string') skipped.push({ key: object.key, reason: row });
      else rows.push(row);
    });
    if (!partsDir) await appendRows(connection, target, rows, CACHE_TYPES);
    else
      for (const chunk of chunksOf(rows, PART_BYTES)) {
        await appendRows(connection, target, chunk, CACHE_TYPES);
        await flush(`SELECT * FROM ${target}`);
        // A new table, not TRUNCATE: DuckDB keeps a table's deleted rows in memory.
        await connection.run(`DROP TABLE ${target}`);
        await connection.run(`CREATE TEMP TABLE ${target} (${ddlColumns()})`);
      }
    await nextTurn(); // the reads, parses and appends are synchronous: in the gateway, requests are served between batches
  }
  if (partsDir) {
    if (parts.length === 0) await flush(`SELECT * FROM ${target}`); // no rows: the table's columns
    await connection.run(`DROP TABLE ${target}`);
    await connection.run(
      `CREATE VIEW ${CACHE_TABLE} AS SELECT * FROM read_parquet([${parts.map(sqlText).join(', ')}])`,
    );
  }
  await connection.run('DROP TABLE _listed');
  return { read: staleObjects.length, changed, built: true, skipped };
}

/** The cache file written aside by saveCache (`conversations.parquet.<pid>.<hex>.tmp`), with the writer's pid and hex. */
const SAVED_ASIDE = /^conversations\.parquet\.(\d+)\.([0-9a-f]+)\.tmp$/;
/** A run folder (`build-<pid>@<host>-*`, `spill-…`; `build-<pid>-*` of an earlier version), with its pid and host. */
const RUN_FOLDER = /^(?:build|spill)-(\d+)(?:@([0-9a-f]{8}))?-/;
/** What a run of another pid namespace left is its own until this old (a container sharing the data folder). */
const FOREIGN_RUN_KEPT_MS = 86_400_000;

/**
 * The cache written aside, then renamed into place: in `aside`, a run folder of this engine (owner-only, runFolders),
 * since DuckDB makes the file as the umask says: one written beside the cache by a process killed before the chmod
 * was every conversation's row readable by others until the next run removed it. Without one, beside the cache.
 */
async function saveCache(connection: DuckDBConnection, file: string, aside: string | null): Promise<void> {
  await mkdir(path.dirname(file), { recursive: true, mode: OWNER_DIR });
  const temporary = aside ? path.join(aside, `${path.basename(file)}.tmp`) : asideName(file);
  try {
    await connection.run(`COPY ${CACHE_TABLE} TO ${sqlText(temporary)} (FORMAT parquet, ${ROW_GROUPS})`);
    await chmod(temporary, OWNER_FILE); // DuckDB makes it as the umask says; renamed, it keeps its mode
    await rename(temporary, file);
  } finally {
    await rm(temporary, { force: true });
  }
}

/**
 * Parquet row groups of at most this many bytes: the writer holds one in memory (by default 122,880 rows, the whole
 * cache of a bucket of 60 KB answers). DuckDB applies the byte bound only with insertion order not kept.
 */
const ROW_GROUPS = "ROW_GROUP_SIZE_BYTES '8MB'";

/** The run folders of this process's open engines (a gateway's console may have several open at once). */
const openFolders = new Set<string>();

/**
 * The folders of this run in the cache folder, the owner's only (OWNER_DIR): `build-<pid>@<host>-*` for the batches
 * of a cache being built, `spill-<pid>@<host>-*` for what DuckDB writes of a query that does not fit in its memory
 * (else `./.tmp` in the working directory, with the umask's modes). Each goes with the engine; a dead process's are
 * removed here, and so is the cache file a dead process was saving (SAVED_ASIDE: the size of the whole cache). Those
 * of another pid namespace (a container sharing the data folder, or this container before its restart: its host tag
 * not this process's, its pid saying nothing here) go once a day old (functions/shared/writers.ts).
 */
async function runFolders(cacheDir: string): Promise<{ parts: string; spill: string } | null> {
  try {
    await mkdir(cacheDir, { recursive: true, mode: OWNER_DIR });
    for (const name of await readdir(cacheDir)) {
      const run = RUN_FOLDER.exec(name);
      const saved = run ? null : SAVED_ASIDE.exec(name);
      const writer = run ? { pid: Number(run[1]), host: run[2] ?? null } : saved && asideWriter(saved[1]!, saved[2]!);
      if (!writer || !(writer.pid > 0)) continue;
      const entry = path.join(cacheDir, name);
      // One rule for every writer's pid (functions/shared/writers.ts): another pid namespace's by its age alone.
      let state = writerState(writer);
      if (state === 'fresh') {
        const written = await stat(entry).catch(() => null);
        state = writerState(
          writer,
          written ? { ms: Date.now() - written.mtimeMs, staleMs: FOREIGN_RUN_KEPT_MS } : undefined,
        );
      }
      // Of this process's own, only a folder no open engine made: a cache being saved may be another engine's.
      const left =
        state === 'this process' ? run !== null && !openFolders.has(entry) : state === 'gone' || state === 'stale';
      if (left) await rm(entry, { recursive: true, force: true });
    }
    const parts = await mkdtemp(path.join(cacheDir, `build-${writerStamp()}-`));
    const spill = await mkdtemp(path.join(cacheDir, `spill-${writerStamp()}-`));
    openFolders.add(parts).add(spill);
    return { parts, spill };
  } catch {
    return null; // a folder that cannot be written: the table is built in memory (and the cache not kept)
  }
}

/** Remove a run folder of this process (the engine is closed, or no longer needs it). */
function removeRunFolder(folder: string): void {
  openFolders.delete(folder);
  rmSync(folder, { recursive: true, force: true });
}

/** DuckDB spellings of the Athena (Trino) functions the named queries use. */
const MACROS = ['CREATE MACRO approx_percentile(x, p) AS quantile_disc(x, p)'];

function jsValue(value: DuckDBValue | unknown): unknown {
  if (typeof value === 'bigint') return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
  // NaN and the infinities as text (`NaN`, `Infinity`), as Athena's results give them: JSON has no such number, and
  // JSON.stringify would write null, a value the query did not answer.
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(jsValue);
  if (value && typeof value === 'object' && value.constructor === Object) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, jsValue(v)]));
  }
  return value;
}

/**
 * Types whose JavaScript value reads wrong (a DATE as a midnight timestamp, a TIME as microseconds, an INTERVAL or
 * BLOB as an object), alone or inside a list or struct: shown as DuckDB writes them (`2026-12-03`, `10:00:00.5`).
 */
const isShownAsText = (type: string) =>
  /\b(DATE|TIME|INTERVAL|BLOB|BIT)\b/.test(type.replaceAll('TIMESTAMP WITH TIME ZONE', 'TIMESTAMP'));

const text = (value: DuckDBValue | undefined) => (value === null || value === undefined ? null : String(value));

/**
 * Open the engine: load the cache, read what is new from `source`, save the cache, lock the database down.
 * `cacheDir` null keeps nothing between runs.
 */
export async function openAnalytics(options: {
  source: AnalysisSource;
  cacheDir: string | null;
  /** `YYYY/MM/DD`: bring only that day's exports and the later ones up to date (a page that shows no earlier day). */
  fromDay?: string | null;
  /** DuckDB's memory_limit (its default is 80 % of the machine's memory). */
  memoryLimit?: string;
}): Promise<AnalyticsEngine> {
  const { DuckDBInstance, StatementType } = await import('@duckdb/node-api');
  const folders = options.cacheDir ? await runFolders(options.cacheDir) : null;
  let partsDir = folders?.parts ?? null;
  // Insertion order is not kept (no query relies on it: they sort): DuckDB then bounds a Parquet row group by bytes.
  // Without a folder of its own, nothing is spilled (a query past the memory limit fails with DuckDB's message).
  const instance: DuckDBInstance = await DuckDBInstance.create(':memory:', {
    threads: '2',
    preserve_insertion_order: 'false',
    temp_directory: folders?.spill ?? '',
    ...(options.memoryLimit ? { memory_limit: options.memoryLimit } : {}),
  });
  const connection = await instance.connect();
  const close = () => {
    connection.closeSync();
    instance.closeSync();
    for (const folder of [partsDir, folders?.spill]) if (folder) removeRunFolder(folder);
  };
  try {
    const file = options.cacheDir ? path.join(options.cacheDir, CACHE_FILE) : null;
    const cache = await usableCache(connection, file);
    const { read, changed, built, skipped } = await refresh(
      connection,
      options.source,
      cache,
      options.fromDay ?? null,
      partsDir,
    );
    const report: RefreshReport = { rows: 0, read, skipped };
    // Queries read the cache file in place when it is current; otherwise the table just built (and saved for next time).
    let rowsFrom = built ? CACHE_TABLE : `read_parquet(${sqlText(cache!)})`;
    let readable: string | null = built ? null : cache;
    if (changed && file) {
      try {
        await saveCache(connection, file, folders?.spill ?? null);
        await connection.run(`DROP ${partsDir ? 'VIEW' : 'TABLE'} ${CACHE_TABLE}`);
        rowsFrom = `read_parquet(${sqlText(file)})`;
        readable = file;
      } catch (error) {
        report.cacheError = `could not write ${file}: ${(error as Error).message}`;
      }
    }
    if (partsDir && rowsFrom !== CACHE_TABLE) {
      openFolders.delete(partsDir);
      await rm(partsDir, { recursive: true, force: true }); // saved, or not needed (the cache was current)
      partsDir = null;
    }
    const count = await connection.runAndReadAll(`SELECT count(*) FROM ${rowsFrom}`);
    report.rows = Number(count.getRows()[0]?.[0] ?? 0);
    await connection.run(
      `CREATE VIEW ${CONVERSATIONS_TABLE} AS SELECT ${CONVERSATIONS_COLUMNS.map((c) => c.name).join(', ')} FROM ${rowsFrom}`,
    );
    if (readable) await connection.run(`SET allowed_paths = [${sqlText(readable)}]`);
    else if (partsDir && built) await connection.run(`SET allowed_directories = [${sqlText(partsDir)}]`);
    for (const macro of MACROS) await connection.run(macro);
    await connection.run("SET TimeZone = 'UTC'");
    await connection.run('SET autoinstall_known_extensions = false');
    await connection.run('SET autoload_known_extensions = false');
    await connection.run('SET enable_external_access = false');
    await connection.run('SET lock_configuration = true');
    return {
      report,
      async query(sql, params = []) {
        try {
          const prepared = await connection.prepare(sql);
          // Only reads: a CREATE, INSERT or DROP would change this run's tables (never the exports or the cache).
          if (prepared.statementType !== StatementType.SELECT && prepared.statementType !== StatementType.EXPLAIN)
            throw new QueryError(`only a statement that reads can run here (SELECT, WITH …, EXPLAIN)`);
          // Only a named query gives values: a `?` of one's own SQL has none to take, and --param is refused there.
          if (prepared.parameterCount !== params.length) {
            throw new QueryError(
              params.length === 0
                ? `the query has ${prepared.parameterCount} ? placeholder(s), and only a named query gives them values (--named NAME --param name=value): write each value into the SQL instead, e.g. WHERE source_system = 'crm'`
                : `the query has ${prepared.parameterCount} parameter(s) (?) but ${params.length} value(s) were given`,
            );
          }
          for (const [i, value] of params.entries()) prepared.bindVarchar(i + 1, value);
          const reader = await prepared.runAndReadAll();
          const names = uniqueColumnNames(reader.columnNames());
          const types = reader.columnTypes().map(String);
          const asText = types.map(isShownAsText);
          // A DECIMAL from its exact text: the JavaScript value is a double, which rounds one of more than 15 digits.
          const decimal = types.map((type) => /^DECIMAL\b/.test(type));
          const values = asText.includes(true) || decimal.includes(true) ? reader.getRows() : null;
          const cellOf = (row: unknown[], r: number, i: number) => {
            if (asText[i]) return text(values![r]![i]);
            if (decimal[i]) return values![r]![i] === null ? null : decimalValue(String(values![r]![i]));
            return jsValue(row[i]);
          };
          return {
            columns: names.map((name, i) => ({ name, type: types[i]! })),
            rows: reader
              .getRowsJS()
              .map((row, r) => Object.fromEntries(names.map((name, i) => [name, cellOf(row, r, i)]))),
          };
        } catch (error) {
          if (error instanceof QueryError) throw error;
          // DuckDB's message spans lines (the reason, candidates, the SQL and a caret under the spot): one line here.
          const lines = (error as Error).message.split('\n').filter((l) => l.trim() && !/^\s*\^\s*$/.test(l));
          throw new QueryError(lines.map((l) => l.trim()).join(' · '));
        }
      },
      close,
    };
  } catch (error) {
    close();
    throw error;
  }
}

/**
 * The engine over this machine's exports (LOCAL_DATA_DIR), its cache in `<LOCAL_DATA_DIR>/analytics/`; the source
 * is the one the environment names (openAnalysisSource) unless given.
 */
export async function openLocalAnalytics(
  dataDir: string,
  env: NodeJS.ProcessEnv = process.env,
  given?: AnalysisSource,
  fromDay: string | null = null,
): Promise<AnalyticsEngine & { location: string }> {
  const source = given ?? (await openAnalysisSource(dataDir, env));
  try {
    const engine = await openAnalytics({ source, cacheDir: path.join(dataDir, 'analytics'), fromDay });
    return Object.assign(engine, { location: source.location });
  } finally {
    await source.close();
  }
}
