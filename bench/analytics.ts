/**
 * SQL over the exports at 10,000 conversations: the four export files of each written as Export writes them
 * (exportDocuments of records built by the domain functions, with the sample agent's answers) into an embedded S3
 * through the in-process transport; then `conversations search` and every named query on the local engine, the first
 * time (the cache is built from every analysis.json) and afterwards (the cache is up to date: one listing); and one
 * run of the real command as a user starts it. From the measured file sizes, the bytes Athena scans per named query
 * for 1 M conversations. Standalone: `node --import tsx bench/analytics.ts [conversations]`.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { EXPORT_FILES, exportDocuments } from '../functions/domain/export-formats.ts';
import { startConversation } from '../functions/domain/intake.ts';
import {
  completeConversation,
  withAgentAnswer,
  withClassification,
  withDeliveryAttempt,
} from '../functions/domain/lifecycle.ts';
import { bindNamedQuery, NAMED_QUERIES } from '../functions/domain/named-queries.ts';
import { CACHE_FILE, openLocalAnalytics } from '../local/analytics/engine.ts';
import { parseFilter } from '../local/history/conversation-filters.ts';
import { searchSql } from '../local/history/export-search.ts';
import { sampleAgentAnswer } from '../local/server/sample-agent.ts';
import { startEmbeddedS3 } from '../local/store/embedded-s3.ts';
import { inProcessS3 } from '../local/store/in-process-s3-transport.ts';
import { argsOrExit, parseCount } from './support/args.ts';
import { PROJECT_ROOT } from './support/processes.ts';
import { summarize } from './support/stats.ts';

export const ANALYTICS_TARGET_MS = 1000;
/** Athena's list price (us-east-1), and its minimum billed per query. */
const USD_PER_TB_SCANNED = 5;
const MIN_BILLED_BYTES = 10 * 1024 ** 2;
const BUCKET = 'analytics-bench';
const DAYS = 30;

const QUESTIONS = [
  'What are the top 5 deals closing this quarter?',
  'Which opportunities in the pipeline slipped this month?',
  'How many new leads came in from the webinar?',
  'Which prospects should sales call first?',
  'Show the churn metrics report for last week',
  'What is the MRR trend this quarter?',
  'Hello, can you summarize the account notes?',
];

export interface TimedQuery {
  name: string;
  rows: number;
  /** Open (refresh the cache from the exports) + run the query, in this process: milliseconds. */
  first_ms: number;
  warm: ReturnType<typeof summarize>;
  target_met: boolean;
}

export interface AnalyticsBenchResult {
  conversations: number;
  days: number;
  write_ms: number;
  bytes_per_conversation: Record<string, number> & { total: number };
  cache_file_bytes: number;
  queries: TimedQuery[];
  /** The real command, and `webhook-gateway help` (node and the CLI's own start) for comparison. */
  cli_wall_ms: { command: string; ms: number; help_ms: number };
  athena_estimate: {
    method: string;
    conversations: number;
    per_query: { name: string; window: string; days_read: number; gb_scanned: number; usd: number }[];
  };
}

/** The export documents of conversation `n` of `count`: received evenly over DAYS days up to `end`; every 7th delivery failed. */
function documentsOf(n: number, count: number, end: number) {
  const at = new Date(end - DAYS * 86_400_000 + Math.floor((n / count) * DAYS * 86_400_000));
  const query = `${QUESTIONS[n % QUESTIONS.length]} (#${n})`;
  const started = startConversation(
    {
      body: JSON.stringify({ query, source_system: n % 3 === 0 ? 'scheduler' : 'crm', source_process: 'sync' }),
      headers: { 'content-type': 'application/json' },
      request_id: `bench-${n}`,
      source_ip: '127.0.0.1',
      received_at: at.toISOString(),
    },
    { suffix: n.toString(36).padStart(8, '0') },
  );
  if (!started.valid || started.duplicate) throw new Error('bench request refused');
  const answer = sampleAgentAnswer({ query, conversation_id: started.conversation.conversation_id }).payload;
  const t = (ms: number) => new Date(at.getTime() + ms);
  let record = withClassification(
    withAgentAnswer(started.conversation, answer, 40 + (n % 400), t(60 + (n % 400))),
    t(470),
  );
  const delivered = n % 7 !== 0;
  record = withDeliveryAttempt(
    record,
    {
      attempt: 1,
      at: t(480).toISOString(),
      duration_ms: 20 + (n % 50),
      status_code: delivered ? 200 : 503,
      outcome: delivered ? 'delivered' : 'retryable',
      via: 'workflow',
    },
    'https://receiver.example/hook',
    delivered ? 'delivered' : 'retrying',
  );
  record = completeConversation(record, false, `exec-${n}`, t(600));
  return exportDocuments(record, t(610).toISOString(), { state: 'Export', executionName: `exec-${n}` });
}

async function time<T>(fn: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const t = performance.now();
  const value = await fn();
  return { ms: performance.now() - t, value };
}

export async function measureAnalytics(
  conversations: number,
  log: (line: string) => void,
): Promise<AnalyticsBenchResult> {
  const dataDir =
    process.env.BENCH_ANALYTICS_DIR ?? (await mkdtemp(path.join(tmpdir(), 'webhook-gateway-bench-analytics-')));
  const s3 = await startEmbeddedS3({ directory: path.join(dataDir, 's3'), port: 0, bucket: BUCKET });
  const client = new S3Client({
    region: 'us-east-1',
    endpoint: s3.endpoint,
    forcePathStyle: true,
    credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' },
    requestHandler: inProcessS3,
  });
  const env = { ...process.env, CONVERSATION_EXPORT_S3_BUCKET: BUCKET, AWS_ENDPOINT_URL_S3: undefined };
  try {
    const end = Date.now();
    const bytes: Record<string, number> = Object.fromEntries(EXPORT_FILES.map((f) => [f, 0]));
    const write = await time(async () => {
      for (let n = 0; n < conversations; n += 16) {
        const docs = Array.from({ length: Math.min(16, conversations - n) }, (_, i) =>
          documentsOf(n + i, conversations, end),
        ).flat();
        for (const d of docs) bytes[d.key.slice(d.key.lastIndexOf('/') + 1)]! += Buffer.byteLength(d.body);
        await Promise.all(
          docs.map((d) => client.send(new PutObjectCommand({ Bucket: BUCKET, Key: d.key, Body: d.body }))),
        );
      }
    });
    const perConversation = Object.fromEntries(
      Object.entries(bytes).map(([f, b]) => [f, Math.round(b / conversations)]),
    );
    const total = Object.values(perConversation).reduce((a, b) => a + b, 0);
    log(
      `  wrote ${conversations.toLocaleString('en')} conversations (${(conversations * 4).toLocaleString('en')} objects) in ${Math.round(write.ms / 1000)} s; ${total} bytes each (${EXPORT_FILES.map((f) => `${f} ${perConversation[f]}`).join(', ')})`,
    );

    const since = new Date(end - 7 * 86_400_000);
    const runs: { name: string; sql: string; params: string[] }[] = [
      {
        name: 'conversations search "renewal"',
        ...searchSql({ text: 'renewal', filter: parseFilter({}), limit: null }),
      },
      ...NAMED_QUERIES.map((q) => ({
        name: `--named ${q.id}`,
        sql: q.sql,
        params: bindNamedQuery(
          q,
          q.params.some((p) => p.name === 'text')
            ? { text: 'renewal' }
            : q.params.some((p) => p.name === 'source_system')
              ? { source_system: 'crm' }
              : {},
          since,
        ),
      })),
    ];
    const queries: TimedQuery[] = [];
    for (const [i, run] of runs.entries()) {
      // The first query of the run builds the cache from every analysis.json; the rest find it up to date.
      const once = async () => {
        const engine = await openLocalAnalytics(dataDir, env);
        try {
          return (await engine.query(run.sql, run.params)).rows.length;
        } finally {
          engine.close();
        }
      };
      const first = await time(once);
      const warm: number[] = [];
      for (let k = 0; k < 5; k++) warm.push((await time(once)).ms);
      const summary = summarize(warm);
      queries.push({
        name: run.name,
        rows: first.value,
        first_ms: Math.round(first.ms),
        warm: summary,
        target_met: summary.median < ANALYTICS_TARGET_MS,
      });
      log(
        `  ${run.name.padEnd(38)} ${String(first.value).padStart(6)} rows  ${i === 0 ? 'first (builds the cache)' : 'first'} ${Math.round(first.ms)} ms, then median ${Math.round(summary.median)} ms (max ${Math.round(summary.max)})`,
      );
    }
    const cacheBytes = (await stat(path.join(dataDir, 'analytics', CACHE_FILE))).size;

    const command = ['conversations', 'query', '--named', 'delivery-success', '--json'];
    const bin = (args: string[]) =>
      time(() =>
        promisify(execFile)(process.execPath, [path.join(PROJECT_ROOT, 'bin', 'webhook-gateway.mjs'), ...args], {
          env: { ...env, LOCAL_DATA_DIR: dataDir } as NodeJS.ProcessEnv,
        }),
      );
    const help = await bin(['help']);
    const cli = await bin(command);
    log(
      `  the command as a user runs it (node start, DuckDB load, cache check, query): webhook-gateway ${command.join(' ')}: ${Math.round(cli.ms)} ms; webhook-gateway help: ${Math.round(help.ms)} ms`,
    );

    // Athena reads every file of the day folders a query selects (the table is partitioned by day, not by file).
    const million = 1_000_000;
    const perDay = million / DAYS;
    const windows: Record<string, { label: string; days: number }> = {
      week: { label: 'since = 7 days (the CLI default)', days: 7 },
      day: { label: 'since = 24 h (the console)', days: 2 },
      all: { label: 'every day (since the first)', days: DAYS },
    };
    const estimate = (name: string, w: { label: string; days: number }) => {
      const scanned = Math.max(MIN_BILLED_BYTES, w.days * perDay * total);
      return {
        name,
        window: w.label,
        days_read: w.days,
        gb_scanned: Math.round((scanned / 1e9) * 100) / 100,
        usd: Math.round((scanned / 1e12) * USD_PER_TB_SCANNED * 10_000) / 10_000,
      };
    };
    const perQuery = [
      ...NAMED_QUERIES.map((q) =>
        estimate(q.id, ['hourly-by-type', 'latency-percentiles'].includes(q.id) ? windows.day! : windows.week!),
      ),
      estimate('any query, all days', windows.all!),
    ];
    return {
      conversations,
      days: DAYS,
      write_ms: Math.round(write.ms),
      bytes_per_conversation: { ...perConversation, total },
      cache_file_bytes: cacheBytes,
      queries,
      cli_wall_ms: {
        command: `webhook-gateway ${command.join(' ')}`,
        ms: Math.round(cli.ms),
        help_ms: Math.round(help.ms),
      },
      athena_estimate: {
        method: `1 M conversations spread evenly over ${DAYS} days (${Math.round(perDay).toLocaleString('en')} a day), each with the four files measured here (${total} bytes with the sample agent's answers). Athena reads every file of each day folder the query selects — the partition is the day, and the JSON text is read whole — so bytes scanned = days read × conversations a day × ${total} bytes, at least 10 MB a query, at $${USD_PER_TB_SCANNED} per TB. A day folder is read whole when the window starts inside it, so a 24-hour window reads two days.`,
        conversations: million,
        per_query: perQuery,
      },
    };
  } finally {
    client.destroy();
    await s3.close();
    await rm(dataDir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const n = argsOrExit(
    () => parseCount(process.argv.slice(2), 10_000, 'conversations'),
    'usage: node --import tsx bench/analytics.ts [conversations=10000]   (docs/performance.md §6)',
  );
  measureAnalytics(n, (line) => process.stdout.write(`${line}\n`)).then(
    (r) =>
      process.stdout.write(
        `${JSON.stringify({ queries: r.queries.map((q) => [q.name, q.first_ms, Math.round(q.warm.median)]), athena: r.athena_estimate.per_query }, null, 1)}\n`,
      ),
    (error) => {
      console.error(error);
      process.exit(1);
    },
  );
}
