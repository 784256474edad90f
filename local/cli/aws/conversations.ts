/**
 * `conversations list | show | search --aws`: the same commands against a deployed stack. Records come from the
 * export bucket (the system of record); a conversation's history comes from the Express workflows' log groups
 * (level ALL, execution data included) through Logs Insights, folded into the same timeline as locally.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type CloudWatchLogsClient,
  GetQueryResultsCommand,
  type GetQueryResultsCommandOutput,
  StartQueryCommand,
  StopQueryCommand,
} from '@aws-sdk/client-cloudwatch-logs';
import { GetItemCommand } from '@aws-sdk/client-dynamodb';
import { exportFolder } from '../../../functions/domain/export-formats.ts';
import { idempotencyPk } from '../../../functions/domain/idempotency.ts';
import type { ExecutionRecord, ExecutionStatus, HistoryEvent } from '../../engine/engine.ts';
import type { ExportBucket } from '../../store/export-bucket.ts';
import { CliError, note } from '../shared.ts';
import { withAftermath } from './errors.ts';
import { type AwsClients, type AwsTarget, readStack, requireOutput, withAws } from './stack.ts';

export interface ConversationStack {
  name: string;
  bucket: string;
  logGroups: string[];
}

export async function readConversationStack(clients: AwsClients, name: string): Promise<ConversationStack> {
  // SDK errors are explained by withAws, with the region the clients used.
  const stack = await readStack(clients, name);
  // The accept workflow's too: a `Prefer: respond-async` conversation's first execution (docs/operations.md).
  const { executionLogGroup, redeliveryLogGroup, acceptLogGroup } = stack.outputs;
  const logGroups = [executionLogGroup, redeliveryLogGroup, acceptLogGroup].filter((g): g is string => g !== null);
  return { name, bucket: requireOutput(stack, 'exportBucket'), logGroups };
}

/**
 * The conversation a source's key started, from the stack's idempotency table (docs/operations.md, "Find a
 * conversation by the source's message id"), or null when the table has no such key. Its items are keyed by a hash of
 * the source system and the key (functions/domain/idempotency.ts), so the source is needed; a key is kept 24 hours
 * after its conversation completed (7 minutes while it runs, and a key freed after an agent failure is gone).
 */
export async function conversationOfKeyOnAws(
  target: AwsTarget,
  sourceSystem: string,
  key: string,
): Promise<string | null> {
  return withAws(target, async (clients, stackName) => {
    const table = requireOutput(await readStack(clients, stackName), 'idempotencyTable');
    const { Item } = await clients.dynamodb.send(
      new GetItemCommand({
        TableName: table,
        Key: { pk: { S: idempotencyPk(sourceSystem, key) } },
        ProjectionExpression: 'conversation_id',
      }),
    );
    return Item?.conversation_id?.S ?? null;
  });
}

/** The deployed export bucket, read like the local one (search and list reuse the same code). */
export function awsExportBucket(clients: AwsClients, stack: ConversationStack): ExportBucket {
  return {
    client: clients.s3,
    bucket: stack.bucket,
    endpoint: `s3://${stack.bucket}`,
    via: 'running',
    close: async () => {},
  };
}

/**
 * An Express execution's page in the Step Functions console: the console reads Express histories from the execution
 * log group, around `startDate` (epoch ms), so the link carries the execution's start.
 */
function executionConsoleUrl(arn: string, startedAtMs: number): string {
  const region = arn.split(':')[3] || 'us-east-1';
  const host = arn.startsWith('arn:aws-cn:') ? `${region}.console.amazonaws.cn` : `${region}.console.aws.amazon.com`;
  return `https://${host}/states/home?region=${region}#/express-executions/details/${arn}?startDate=${startedAtMs}`;
}

/** Fold the Express log group's events of one execution into the local history shape. */
export function executionFromLogEvents(arn: string, events: Record<string, unknown>[]): ExecutionRecord {
  const parts = arn.split(':');
  const history: HistoryEvent[] = [];
  let status: ExecutionStatus = 'ABORTED';
  let error: string | undefined;
  let cause: string | undefined;
  let scheduledInState = 0;
  const sorted = [...events].sort(
    (a, b) => Number(a.event_timestamp ?? 0) - Number(b.event_timestamp ?? 0) || Number(a.id ?? 0) - Number(b.id ?? 0),
  );
  for (const event of sorted) {
    const type = String(event.type ?? '');
    const details = (event.details ?? {}) as Record<string, unknown>;
    const timestamp = Number(event.event_timestamp ?? 0);
    if (type.endsWith('StateEntered')) {
      scheduledInState = 0;
      history.push({ type: 'StateEntered', timestamp, state: String(details.name ?? '?') });
    } else if (type.endsWith('StateExited')) {
      history.push({ type: 'StateExited', timestamp, state: String(details.name ?? '?') });
    } else if (type === 'LambdaFunctionScheduled' || type === 'TaskScheduled') {
      if (++scheduledInState > 1) history.push({ type: 'StateRetried', timestamp });
    } else if (/^(LambdaFunction|Task)(Failed|TimedOut|StartFailed|SubmitFailed)$/.test(type)) {
      history.push({ type: 'StateFailed', timestamp, error: String(details.error ?? type), cause: details.cause });
    } else if (type === 'ExecutionSucceeded') {
      status = 'SUCCEEDED';
    } else if (type === 'ExecutionFailed') {
      status = 'FAILED';
      error = String(details.error ?? '');
      cause = typeof details.cause === 'string' ? details.cause : undefined;
    } else if (type === 'ExecutionTimedOut') {
      status = 'TIMED_OUT';
    }
  }
  const started = Number(sorted[0]?.event_timestamp ?? 0);
  const stopped = Number(sorted.at(-1)?.event_timestamp ?? started);
  return {
    execution_name: parts[7] ?? arn,
    state_machine: parts[6] ?? 'unknown',
    status,
    started_at: new Date(started).toISOString(),
    stopped_at: new Date(stopped).toISOString(),
    input: null,
    events: history,
    execution_arn: arn,
    console_url: executionConsoleUrl(arn, started),
    ...(error ? { error } : {}),
    ...(cause ? { cause } : {}),
  };
}

/** How long the command waits for one Logs Insights query before it gives up (and stops it). */
const INSIGHTS_TIMEOUT_MS = 10 * 60_000;
/** The most rows one Logs Insights query answers (its `limit`); it has no further pages. */
export const INSIGHTS_MAX_ROWS = 10_000;

/** How the command waits for Logs Insights: its poll interval, its patience, its clock, and Ctrl-C (the signal). */
export interface InsightsWait {
  pollMs?: number;
  timeoutMs?: number;
  now?: () => number;
  signal?: AbortSignal;
}

/** A Logs Insights query the command stopped: Ctrl-C (the signal) or its time ran out. */
export class InsightsStoppedError extends CliError {
  constructor(
    message: string,
    readonly interrupted: boolean,
  ) {
    super(message);
  }
}

/**
 * Stop a query the command no longer waits for: left running, it would count against the account's concurrent
 * Logs Insights queries (30) until it ends on its own, up to 60 minutes later.
 */
async function stopInsights(logs: CloudWatchLogsClient, queryId: string | undefined): Promise<string> {
  try {
    await logs.send(new StopQueryCommand({ queryId }));
    return `its Logs Insights query ${queryId} was stopped`;
  } catch (error) {
    return `its Logs Insights query ${queryId} could not be stopped (${(error as Error).name}): it ends on its own within 60 minutes`;
  }
}

async function insights(
  logs: CloudWatchLogsClient,
  logGroupNames: string[],
  queryString: string,
  fromMs: number,
  wait: InsightsWait,
): Promise<Record<string, string>[]> {
  const now = wait.now ?? Date.now;
  const timeoutMs = wait.timeoutMs ?? INSIGHTS_TIMEOUT_MS;
  const { queryId } = await logs.send(
    new StartQueryCommand({
      logGroupNames,
      startTime: Math.floor(fromMs / 1000),
      endTime: Math.ceil(now() / 1000),
      queryString,
      limit: INSIGHTS_MAX_ROWS,
    }),
  );
  const started = now();
  for (;;) {
    if (wait.signal?.aborted)
      throw new InsightsStoppedError(`interrupted (Ctrl-C): ${await stopInsights(logs, queryId)}`, true);
    let result: GetQueryResultsCommandOutput;
    try {
      result = await logs.send(new GetQueryResultsCommand({ queryId }));
    } catch (error) {
      // Throttled past the SDK's retries, access denied, the network: the query would run on unwatched.
      throw withAftermath(error, await stopInsights(logs, queryId));
    }
    if (result.status === 'Complete') {
      return (result.results ?? []).map((row) => Object.fromEntries(row.map((f) => [f.field ?? '', f.value ?? ''])));
    }
    if (result.status && !['Running', 'Scheduled'].includes(result.status))
      throw new CliError(`the Logs Insights query ended ${result.status}`);
    if (now() - started >= timeoutMs)
      throw new InsightsStoppedError(
        `the Logs Insights query did not finish within ${Math.round(timeoutMs / 60_000)} minutes, so the command gave up: ${await stopInsights(logs, queryId)}`,
        false,
      );
    await sleep(wait.pollMs ?? 1000, undefined, wait.signal ? { signal: wait.signal } : {}).catch(() => undefined);
  }
}

/** Every execution (original and redeliveries) whose logged data mentions the conversation, oldest first. */
export async function executionsFromLogs(
  logs: CloudWatchLogsClient,
  logGroups: string[],
  conversationId: string,
  fromMs: number,
  wait: InsightsWait = {},
): Promise<ExecutionRecord[]> {
  if (logGroups.length === 0) return [];
  const found = await insights(
    logs,
    logGroups,
    `filter @message like "${conversationId}" | stats count() by execution_arn`,
    fromMs,
    wait,
  );
  const arns = found.map((r) => r.execution_arn).filter((a): a is string => !!a && /^arn:aws[\w-]*:states:/.test(a));
  if (arns.length === 0) return [];
  const list = arns.map((a) => `"${a}"`).join(', ');
  const rows = await insights(
    logs,
    logGroups,
    `fields @message | filter execution_arn in [${list}] | sort @timestamp asc | limit ${INSIGHTS_MAX_ROWS}`,
    fromMs,
    wait,
  );
  // Logs Insights has no next page: a history cut at the limit is said, never shown as if whole.
  if (rows.length >= INSIGHTS_MAX_ROWS)
    note(
      `the executions of ${conversationId} logged more than ${INSIGHTS_MAX_ROWS} events: only the first ${INSIGHTS_MAX_ROWS} are shown (Logs Insights answers no more); the last states and the ends of the later executions are missing`,
    );
  const byArn = new Map<string, Record<string, unknown>[]>();
  for (const row of rows) {
    try {
      const event = JSON.parse(row['@message'] ?? '') as Record<string, unknown>;
      const arn = String(event.execution_arn ?? '');
      byArn.set(arn, [...(byArn.get(arn) ?? []), event]);
    } catch {
      // not an execution event
    }
  }
  return [...byArn.entries()]
    .map(([arn, events]) => executionFromLogEvents(arn, events))
    .sort((a, b) => a.started_at.localeCompare(b.started_at));
}

/** Where a conversation's exports live in the deployed bucket. */
export function awsExportLocation(stack: ConversationStack, conversationId: string): string {
  return `s3://${stack.bucket}/${exportFolder(conversationId)}`;
}
