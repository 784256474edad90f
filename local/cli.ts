import path from 'node:path';
import { parseArgs } from 'node:util';
import { isConversationId } from '../functions/domain/conversation-id.ts';
import { exportFolder, EXPORT_FILES } from '../functions/domain/export-formats.ts';
import { DELIVERY_URL_VARIABLES } from '../functions/domain/delivery.ts';
import { WEBHOOK_TYPES } from '../functions/domain/conversation.ts';
import { resolveOptions } from './config.ts';
import { recordOf, summarize, type ConversationSummary } from './conversations.ts';
import { ExecutionStore } from './execution-store.ts';
import { formatTimeline } from './timeline.ts';
import { formatTable } from './table.ts';

export const USAGE = `Usage: webhook-gateway <command>

  start                                 run the gateway locally (PORT, default 3000)
  conversations list [--limit N] [--json]
  conversations show <conversation_id> [--json]
  deliveries list [--state pending|dead|delivered|all] [--json]
  deliveries redrive <conversation_id> [--url URL]
  deliveries redrive --all [--since ISO] [--type T] [--dry-run] [--url URL]
  help

Local state lives in LOCAL_DATA_DIR (default .data).`;

import { CliError, deliveriesList, deliveriesRedrive } from './cli-deliveries.ts';

function out(text: string): void {
  process.stdout.write(`${text}\n`);
}

async function start(): Promise<number> {
  const { startGateway } = await import('./gateway.ts');
  const { divertHandlerLogs } = await import('./log-sink.ts');
  const options = resolveOptions();
  const logFile = divertHandlerLogs(options.dataDir);
  let gateway;
  try {
    gateway = await startGateway({
      ...options,
      onRedelivery: (r) => {
        if (r.status !== 'not_due') out(`${new Date().toISOString()}  redelivery  ${r.conversation_id}  ${r.status}${r.envelope?.state === 'pending' ? ` (next ${r.envelope.next_due_at})` : ''}`);
      },
      onExecution: (summary) =>
        out(`${new Date().toISOString()}  ${summary.http_status}  ${summary.conversation_id ?? '(rejected)'}  ${summary.detail}  ${summary.duration_ms} ms`),
    });
  } catch (error) {
    const e = error as NodeJS.ErrnoException & { port?: number };
    if (e.code === 'EADDRINUSE') throw new CliError(`port ${e.port ?? ''} is already in use: stop the other process or set PORT / LOCAL_S3_PORT`);
    throw error;
  }
  const rel = (p: string) => path.relative(process.cwd(), p) || '.';
  out(`webhook-gateway (local) listening on ${gateway.url}`);
  out(`  POST ${gateway.url}/webhook   one conversation = one run of statemachine/conversation.asl.json (aws-local-stepfunctions)`);
  out(`  GET  ${gateway.url}/health`);
  out(`  S3      ${gateway.s3Endpoint}  bucket ${gateway.bucket}  (files under ${rel(path.join(options.dataDir, 's3'))})`);
  out(`  agent   ${process.env.AWS_ENDPOINT_URL_LAMBDA} function ${gateway.agentFunctionName}` +
    (process.env.AWS_ENDPOINT_URL_LAMBDA === gateway.url ? '  (SAMPLE agent built into this server)' : ''));
  for (const type of WEBHOOK_TYPES) out(`  deliver ${type.padEnd(14)} → ${process.env[DELIVERY_URL_VARIABLES[type]]}`);
  out(`  history ${rel(gateway.executions.dir)}   failed deliveries ${rel(gateway.failedDeliveries.dir)}   handler logs ${logFile.startsWith('(') ? logFile : rel(logFile)}`);
  out('');
  out(`Try:  curl -s -X POST ${gateway.url}/webhook -H 'Content-Type: application/json' \\`);
  out(`        -d '{"query":"What are the top 5 deals closing this quarter?","source_system":"testing_system","source_process":"phase3_validation"}'`);
  out('Then: npx webhook-gateway conversations list   ·   Ctrl-C stops everything.');
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  out('stopping…');
  await gateway.close();
  return 0;
}

async function conversationsList(args: string[]): Promise<number> {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean' }, limit: { type: 'string' } } });
  const limit = values.limit === undefined ? 50 : Number(values.limit);
  if (!Number.isInteger(limit) || limit < 1) throw new CliError(`--limit must be a positive whole number, got "${values.limit}"`);
  const store = new ExecutionStore(resolveOptions().dataDir);
  const summaries: ConversationSummary[] = [];
  for (const id of await store.conversationIds()) {
    const summary = summarize(id, await store.executions(id));
    if (summary) summaries.push(summary);
  }
  summaries.sort((a, b) => b.received_at.localeCompare(a.received_at));
  const shown = summaries.slice(0, limit);
  if (values.json) {
    out(JSON.stringify(shown, null, 2));
    return 0;
  }
  if (shown.length === 0) {
    out(`No conversations yet in ${store.dir}. Start the gateway (npm start) and POST to /webhook.`);
    return 0;
  }
  out(formatTable(
    ['conversation_id', 'received_at', 'source', 'type', 'status', 'delivery', 'total_ms'],
    shown.map((s) => [s.conversation_id, s.received_at, `${s.source_system}/${s.source_process}`, s.webhook_type, s.status, s.delivery_status, s.total_time_ms]),
  ));
  if (summaries.length > shown.length) out(`(${summaries.length - shown.length} older not shown; use --limit)`);
  return 0;
}

async function conversationsShow(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, allowPositionals: true, options: { json: { type: 'boolean' } } });
  const id = positionals[0];
  if (!id) throw new CliError('conversations show needs a conversation id, e.g. webhook_20250813_103045_testing_phase3valid_abc123');
  if (!isConversationId(id)) throw new CliError(`"${id}" is not a conversation id (expected webhook_<YYYYMMDD>_<HHMMSS>_<source>_<process>_<suffix>)`);
  const options = resolveOptions();
  const store = new ExecutionStore(options.dataDir);
  const executions = await store.executions(id);
  if (executions.length === 0) throw new CliError(`no conversation ${id} in ${store.dir} (run "webhook-gateway conversations list" to see the known ones)`);
  const record = [...executions].reverse().map(recordOf).find((r) => r !== null) ?? null;
  if (values.json) {
    out(JSON.stringify({ conversation: record, executions }, null, 2));
    return 0;
  }
  if (record) {
    const ctx = record.webhook_context;
    out(`conversation ${id}`);
    out(`  source     ${record.metadata.source_system} / ${record.metadata.source_process}   received ${record.metadata.received_at}`);
    out(`  query      ${record.conversation.turns[0]?.content.slice(0, 160) ?? ''}`);
    out(`  type       ${ctx.webhook_type ?? '-'}   (${ctx.classification_reason ?? 'not classified'})`);
    out(`  status     ${record.execution.status}   delivery ${ctx.delivery_status}   delivery_id ${ctx.delivery_id}   total ${record.execution.timings.total_ms ?? '-'} ms`);
    for (const a of record.execution.delivery_attempts) {
      out(`  attempt ${a.attempt}  ${a.at}  ${a.outcome}${a.status_code ? ` HTTP ${a.status_code}` : ''}${a.error ? `  ${a.error.slice(0, 120)}` : ''}  ${a.duration_ms} ms`);
    }
    out(`  exports    s3://${process.env.CONVERSATION_EXPORT_S3_BUCKET ?? 'revops-conversations'}/${exportFolder(id)}{${EXPORT_FILES.join(',')}}`);
  }
  for (const execution of executions) {
    out('');
    out(formatTimeline(execution));
  }
  return 0;
}

export async function main(argv: string[]): Promise<number> {
  const [command, sub, ...rest] = argv;
  try {
    if (command === 'start') return await start();
    if (command === 'conversations' && sub === 'list') return await conversationsList(rest);
    if (command === 'conversations' && sub === 'show') return await conversationsShow(rest);
    if (command === 'deliveries' && sub === 'list') return await deliveriesList(rest);
    if (command === 'deliveries' && sub === 'redrive') return await deliveriesRedrive(rest);
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
      out(USAGE);
      return 0;
    }
    process.stderr.write(`webhook-gateway: unknown command "${argv.join(' ')}"\n\n${USAGE}\n`);
    return 2;
  } catch (error) {
    const e = error as Error & { code?: string };
    const message = error instanceof CliError || e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' || e.code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL'
      ? e.message
      : `${e.name}: ${e.message}`;
    process.stderr.write(`webhook-gateway: ${message}\n`);
    return 1;
  }
}
