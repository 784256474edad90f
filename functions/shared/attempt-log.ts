/**
 * The delivery attempt log (functions/domain/attempt-log.ts): one port, two adapters chosen by configuration.
 * - DELIVERIES_TABLE_NAME: DynamoDB (AWS). One item per attempt under `conversation#<id>`, sorted by its start, with
 *   a TTL (ATTEMPT_LOG_RETENTION_DAYS): a PutItem per attempt (Deliver), one consistent Query per export (Export)
 *   and per redelivery's Deliver (its attempt numbered after the log's last; none on the conversation's first try).
 * - DELIVERIES_DIR: one JSON Lines file per conversation under `attempts/` (local; swept with the local history).
 * - neither: no log (the record keeps its short attempts, as before).
 */
import type { BigIntStats } from 'node:fs';
import { stat } from 'node:fs/promises';
import path from 'node:path';
import type { DynamoDBClient } from '@aws-sdk/client-dynamodb';
import type { LoggedAttempt } from '../domain/attempt-log.ts';
import { isConversationId } from '../domain/conversation-id.ts';
import { dynamoDb } from './clients/dynamodb.ts';
import { appendLine, readDataText } from './local-files.ts';
import { settings } from './settings.ts';

/**
 * `signal`: the caller's budget (functions/shared/clients/request-limits.ts, budgetSignal) ends the DynamoDB calls
 * with an AbortError; the files are local and ignore it.
 */
export interface AttemptLog {
  append(entry: LoggedAttempt, signal?: AbortSignal): Promise<void>;
  /** Every logged attempt of one conversation, oldest first. */
  list(conversationId: string, signal?: AbortSignal): Promise<LoggedAttempt[]>;
}

const DAY_S = 86_400;

const attemptPartition = (conversationId: string) => `conversation#${conversationId}`;
/** Sorts by start time; the number tells apart two attempts started in the same millisecond. */
const attemptSortKey = (entry: Pick<LoggedAttempt, 'at' | 'attempt'>) =>
  `attempt#${entry.at}#${String(entry.attempt).padStart(6, '0')}`;

export class DynamoAttemptLog implements AttemptLog {
  constructor(
    private readonly table: string,
    private readonly retentionDays: number,
    private readonly client?: DynamoDBClient,
  ) {}

  async append(entry: LoggedAttempt, signal?: AbortSignal): Promise<void> {
    const { sdk, db } = await dynamoDb(this.client);
    await db.send(
      new sdk.PutItemCommand({
        TableName: this.table,
        Item: {
          pk: { S: attemptPartition(entry.conversation_id) },
          sk: { S: attemptSortKey(entry) },
          entry: { S: JSON.stringify(entry) },
          expires_at: { N: String(Math.floor(Date.parse(entry.at) / 1000) + this.retentionDays * DAY_S) },
        },
      }),
      { abortSignal: signal },
    );
  }

  async list(conversationId: string, signal?: AbortSignal): Promise<LoggedAttempt[]> {
    const { sdk, db } = await dynamoDb(this.client);
    const entries: LoggedAttempt[] = [];
    let start: Record<string, import('@aws-sdk/client-dynamodb').AttributeValue> | undefined;
    do {
      const page = await db.send(
        new sdk.QueryCommand({
          TableName: this.table,
          KeyConditionExpression: 'pk = :pk AND begins_with(sk, :attempt)',
          ExpressionAttributeValues: { ':pk': { S: attemptPartition(conversationId) }, ':attempt': { S: 'attempt#' } },
          // Deliver wrote the last one a moment ago, in the state before Export.
          ConsistentRead: true,
          ExclusiveStartKey: start,
        }),
        { abortSignal: signal },
      );
      for (const item of page.Items ?? []) {
        const entry = parseEntry(item.entry?.S);
        if (entry) entries.push(entry);
      }
      start = page.LastEvaluatedKey;
    } while (start);
    return entries;
  }
}

function parseEntry(text: string | undefined): LoggedAttempt | null {
  // No text (a file's last line, after its newline): none, without JSON.parse's SyntaxError built and caught (its stack
  // captured: each Export's read of the log, docs/performance.md §2, perf24).
  if (!text) return null;
  try {
    const entry = JSON.parse(text) as LoggedAttempt;
    return typeof entry?.at === 'string' && typeof entry.attempt === 'number' ? entry : null;
  } catch {
    return null;
  }
}

/**
 * One line of an attempt file: its entry, or, for a line that is not one, the entry it ends with. An append a full
 * disk cut (ENOSPC) left part of a line that a later append (by an earlier version, or after a restart) continued:
 * that later attempt is whole at its end, and is read from the `{"` where it begins (a cut entry's inner objects do
 * not parse to the line's end, nor does a string that ends in `{`).
 */
function parseLine(line: string): LoggedAttempt | null {
  const entry = parseEntry(line);
  if (entry || line === '') return entry;
  for (let at = line.indexOf('{"', 1); at > 0; at = line.indexOf('{"', at + 1)) {
    const tail = parseEntry(line.slice(at));
    if (tail) return tail;
  }
  return null;
}

/**
 * The attempt files this process appended to last (at most KEPT_FILES), with what each held then and its stamp (inode,
 * size, modification and change times in ns): Export reads the file Deliver appended to a moment before, and gets
 * that text for one stat while the stamp is unchanged, where it cost open, fstat, read and close (docs/performance.md,
 * perf23). Another process's append changes its size; one whose size after this process's append is not what it
 * knew plus its line is not kept.
 */
const appended = new Map<string, { ino: bigint; stamp: string; text: string }>();
const KEPT_FILES = 256;
const stampOf = (s: BigIntStats) => `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`;

export class FileAttemptLog implements AttemptLog {
  readonly dir: string;
  constructor(deliveriesDir: string) {
    this.dir = path.join(deliveriesDir, 'attempts');
  }

  file(conversationId: string): string {
    if (!isConversationId(conversationId)) throw new Error(`not a conversation id: ${conversationId}`);
    return path.join(this.dir, `${conversationId}.jsonl`);
  }

  async append(entry: LoggedAttempt): Promise<void> {
    const file = this.file(entry.conversation_id);
    const line = `${JSON.stringify(entry)}\n`;
    const before = appended.get(file);
    appended.delete(file);
    await appendLine(file, line, 0o600, 0o700);
    // The file now holds what this process knew it held, and this line, when its size says nothing else came between.
    const s = await stat(file, { bigint: true }).catch(() => null);
    const text = `${before?.text ?? ''}${line}`;
    if (!s?.isFile() || s.size !== BigInt(Buffer.byteLength(text)) || (before && before.ino !== s.ino)) return;
    if (appended.size >= KEPT_FILES) appended.delete(appended.keys().next().value!);
    appended.set(file, { ino: s.ino, stamp: stampOf(s), text });
  }

  async list(conversationId: string): Promise<LoggedAttempt[]> {
    const file = this.file(conversationId);
    const kept = appended.get(file);
    const now = kept && (await stat(file, { bigint: true }).catch(() => null));
    // Capped, a regular file only (a link to /dev/zero was read until the process died): local-files.ts.
    const text = now && stampOf(now) === kept.stamp ? kept.text : await readDataText(file);
    if (text === null) return [];
    // A line cut by a crash is skipped; the record still has that attempt in short.
    return text
      .split('\n')
      .map((line) => parseLine(line))
      .filter((e): e is LoggedAttempt => e !== null)
      .sort((a, b) => a.at.localeCompare(b.at) || a.attempt - b.attempt);
  }
}

/** The configured attempt log, or null when none is (the handlers then keep only the record's short attempts). */
export function attemptLog(): AttemptLog | null {
  const { deliveriesTableName, deliveriesDir, attemptLogRetentionDays } = settings();
  if (deliveriesTableName) return new DynamoAttemptLog(deliveriesTableName, attemptLogRetentionDays);
  if (deliveriesDir) return new FileAttemptLog(deliveriesDir);
  return null;
}
