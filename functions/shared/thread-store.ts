import { mkdir, readdir, rm, stat, utimes } from 'node:fs/promises';
import path from 'node:path';
import type { AttributeValue } from '@aws-sdk/client-dynamodb';
import { THREAD_TURN_UNREADABLE_EVENT } from '../domain/observability.ts';
import { canonicalSource } from '../domain/source-identity.ts';
import {
  MAX_THREAD_HISTORY_TURNS,
  notThreadTurn,
  THREAD_ID_PATTERN,
  type ThreadTurn,
  turnClaimedBySameRequest,
} from '../domain/thread.ts';
import { conditionFailed, dynamoDb } from './clients/dynamodb.ts';
import {
  createExclusive,
  readDataText,
  readJsonFile,
  UnreadableFileError,
  withThreadFolder,
  writeFileAtomic,
} from './local-files.ts';
import { logger } from './powertools.ts';
import { settings } from './settings.ts';

/**
 * The turns of threads (functions/domain/thread.ts): one port, two adapters chosen by configuration.
 * - THREAD_TABLE_NAME: DynamoDB (AWS). Partition key `thread` = `<source_system>/<thread_id>`, sort key `turn`:
 *   item 0 holds the thread's last claimed turn number (an atomic counter) and the request that claimed it
 *   (`last_request`), item n the answered turn n. Every item carries `expires_at` (TTL): item 0's is pushed forward
 *   by every claim, a turn's is THREAD_TTL_DAYS after it was answered. DynamoDB deletes an expired item within about
 *   two days and reads return it until then: a claim treats an expired item 0 as absent (the thread starts again at
 *   turn 1), reads skip expired turns.
 * - THREAD_DIR: `<dir>/<source_system>/<thread_id>/` (local): `<n>.claim` made exclusively per claimed turn (two
 *   conversations never get one number), holding the request that claimed it, its time the time it was claimed;
 *   `<n>.json` per answered turn, its time the time it was answered. The same expiry: a claim after the last one
 *   expired starts the thread again at turn 1 (the retention sweep also removes expired turns, and the folder of a
 *   thread unused that long).
 * - neither: threads are off; a request with a thread_id fails (a deployment without its table is broken).
 * Either way a thread unused for THREAD_TTL_DAYS is forgotten, and an answered turn is remembered THREAD_TTL_DAYS.
 * The source is part of every key: one source can never read another's thread of the same name.
 */
export interface ThreadStore {
  /**
   * The next turn number of the thread (1 for its first conversation, and again once the thread went unused for
   * THREAD_TTL_DAYS), claimed for the request `requestId` (requestIdentity). A claim by the request that made the
   * thread's last claim (its Validate retried, or its write retried by the SDK) gets that turn again, not a new one
   * (turnClaimedBySameRequest).
   */
  claimTurn(
    sourceSystem: string,
    threadId: string,
    requestId: string,
    now: Date,
    signal?: AbortSignal,
  ): Promise<number>;
  /**
   * Keep an answered turn until THREAD_TTL_DAYS after its `answered_at` (again: the same turn overwrites itself, as
   * a re-export does, and keeps its expiry). `now` stands in for an unreadable `answered_at`. A turn already expired
   * at `now` (a redelivery, redrive or resend re-exporting a conversation answered that long ago) writes nothing: it
   * is no history any more, and its number may be a turn of the thread started again since (expiredTurn).
   */
  recordTurn(sourceSystem: string, threadId: string, turn: ThreadTurn, now: Date, signal?: AbortSignal): Promise<void>;
  /**
   * The answered turns before `beforeTurn` not yet expired at `now`, newest first, of the newest `limit`; and how many
   * of those the store holds but could not give (locally: a damaged file), which the agent is told were left out.
   * `signal`, here and in claimTurn: Validate's, which ends the DynamoDB calls before its Lambda's timeout.
   */
  earlierTurns(
    sourceSystem: string,
    threadId: string,
    beforeTurn: number,
    now: Date,
    limit?: number,
    signal?: AbortSignal,
  ): Promise<EarlierTurns>;
}

export interface EarlierTurns {
  turns: ThreadTurn[];
  unreadable: number;
}

export class ThreadStoreUnconfigured extends Error {
  override name = 'ThreadStoreUnconfigured';
}

const threadKey = (sourceSystem: string, threadId: string): string => {
  if (!THREAD_ID_PATTERN.test(threadId)) throw new Error(`not a thread id: ${threadId}`);
  return `${canonicalSource(sourceSystem)}/${threadId}`;
};

const epochSeconds = (at: Date): number => Math.floor(at.getTime() / 1000);
const expiresAt = (now: Date, ttlDays: number): number => epochSeconds(now) + ttlDays * 86_400;
const DAY_MS = 86_400_000;

/** When a turn was answered: its expiry counts from then (docs/contract.md#threads), not from when it was kept. */
function answeredAt(turn: ThreadTurn, now: Date): Date {
  const at = Date.parse(turn.answered_at);
  return Number.isFinite(at) ? new Date(at) : now;
}

/**
 * A turn answered THREAD_TTL_DAYS or longer before `now`: never read again, so never written. Written, it replaced
 * the turn of the same number of the thread started again at turn 1 since (unused for THREAD_TTL_DAYS), which reads
 * then skipped as expired: a resend of an old conversation took a turn out of the new thread's history.
 */
function expiredTurn(turn: ThreadTurn, now: Date, ttlDays: number): boolean {
  return answeredAt(turn, now).getTime() + ttlDays * DAY_MS <= now.getTime();
}

/**
 * How often a claim may find item 0 changed between its two conditional writes (another conversation of the
 * thread claiming at the same moment) before it gives up. Each retry needs another claimant to have won a write.
 */
const CLAIM_ATTEMPTS = 3;

/**
 * After a claim's write was refused on its condition: the turn of item 0 as the failed condition returned it (ALL_OLD)
 * when it is unexpired and this request's own last claim, otherwise null (the claim goes on). Any error other than
 * ConditionalCheckFailedException is thrown on.
 */
function ownClaim(error: unknown, requestId: string, now: Date): number | null {
  if (!conditionFailed(error)) throw error;
  const item = (error as { Item?: Record<string, AttributeValue> }).Item;
  if (!item || Number(item.expires_at?.N ?? 0) <= epochSeconds(now)) return null;
  const turn = Number(item.last_turn?.N);
  return Number.isInteger(turn) && turn >= 1 && turnClaimedBySameRequest(item.last_request?.S, requestId) ? turn : null;
}

export class DynamoThreadStore implements ThreadStore {
  constructor(
    private readonly table: string,
    private readonly ttlDays: number,
  ) {}

  /**
   * The counter (item 0) goes up by one while it is unexpired and its last claim is another request's, as one atomic
   * ADD that pushes its expiry forward and records the claimant (`last_request`). When the condition fails, DynamoDB
   * returns item 0 as it was then (ALL_OLD): unexpired and claimed last by this request, it is this request's claim
   * from an earlier attempt (the workflow's Retry of Validate, or the SDK's retry of a write that had succeeded), and
   * its turn is this request's — nothing is written, no number is skipped. Expired (not yet deleted by TTL), it is
   * replaced by turn 1 (the thread unused for THREAD_TTL_DAYS starts again), only if it is still expired or absent:
   * of two first turns at once, one puts 1 and the other, refused, goes back to the ADD and gets 2 (a refused put
   * whose item 0 is this request's own turn 1, its retried write, gets 1).
   */
  async claimTurn(
    sourceSystem: string,
    threadId: string,
    requestId: string,
    now: Date,
    signal?: AbortSignal,
  ): Promise<number> {
    if (!requestId) throw new Error('a turn is claimed for a request: requestId is empty');
    const { sdk, db } = await dynamoDb();
    const key = { thread: { S: threadKey(sourceSystem, threadId) }, turn: { N: '0' } };
    const at = { ':now': { N: String(epochSeconds(now)) } };
    const request = { S: requestId };
    const expires = { N: String(expiresAt(now, this.ttlDays)) };
    for (let attempt = 1; attempt <= CLAIM_ATTEMPTS; attempt++) {
      try {
        const out = await db.send(
          new sdk.UpdateItemCommand({
            TableName: this.table,
            Key: key,
            UpdateExpression: 'ADD last_turn :one SET expires_at = :expires, last_request = :request',
            ConditionExpression:
              '(attribute_not_exists(expires_at) OR expires_at > :now) AND (attribute_not_exists(last_request) OR last_request <> :request)',
            ExpressionAttributeValues: { ':one': { N: '1' }, ':expires': expires, ':request': request, ...at },
            ReturnValues: 'UPDATED_NEW',
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          }),
          { abortSignal: signal },
        );
        return Number(out.Attributes?.last_turn?.N);
      } catch (error) {
        const own = ownClaim(error, requestId, now);
        if (own !== null) return own;
      }
      try {
        await db.send(
          new sdk.PutItemCommand({
            TableName: this.table,
            Item: { ...key, last_turn: { N: '1' }, expires_at: expires, last_request: request },
            ConditionExpression: 'attribute_not_exists(expires_at) OR expires_at <= :now',
            ExpressionAttributeValues: at,
            ReturnValuesOnConditionCheckFailure: 'ALL_OLD',
          }),
          { abortSignal: signal },
        );
        return 1;
      } catch (error) {
        const own = ownClaim(error, requestId, now);
        if (own !== null) return own;
      }
    }
    throw new Error(
      `thread ${threadKey(sourceSystem, threadId)}: its turn counter changed under ${CLAIM_ATTEMPTS} claims in a row`,
    );
  }

  /** `signal`: the caller's deadline (Export's budgetSignal) ends the write with an AbortError. */
  async recordTurn(
    sourceSystem: string,
    threadId: string,
    turn: ThreadTurn,
    now: Date,
    signal?: AbortSignal,
  ): Promise<void> {
    if (expiredTurn(turn, now, this.ttlDays)) return;
    const { sdk, db } = await dynamoDb();
    await db.send(
      new sdk.PutItemCommand({
        TableName: this.table,
        Item: {
          thread: { S: threadKey(sourceSystem, threadId) },
          turn: { N: String(turn.turn) },
          body: { S: JSON.stringify(turn) },
          expires_at: { N: String(expiresAt(answeredAt(turn, now), this.ttlDays)) },
        },
      }),
      { abortSignal: signal },
    );
  }

  async earlierTurns(
    sourceSystem: string,
    threadId: string,
    beforeTurn: number,
    now: Date,
    limit = MAX_THREAD_HISTORY_TURNS,
    signal?: AbortSignal,
  ): Promise<EarlierTurns> {
    if (beforeTurn <= 1 || limit < 1) return { turns: [], unreadable: 0 };
    const { sdk, db } = await dynamoDb();
    const turns: ThreadTurn[] = [];
    let start: Record<string, import('@aws-sdk/client-dynamodb').AttributeValue> | undefined;
    // Usually one page. DynamoDB ends a page at 1 MB (ten large answers may not fit) and applies Limit before the
    // filter (an expired turn takes a place): the next page, from LastEvaluatedKey, finds the turns still missing.
    do {
      const out = await db.send(
        new sdk.QueryCommand({
          TableName: this.table,
          KeyConditionExpression: '#thread = :thread AND #turn BETWEEN :first AND :last',
          // Expired turns TTL has not deleted yet (it may take two days) are not history any more.
          FilterExpression: '#expires > :now',
          ExpressionAttributeNames: { '#thread': 'thread', '#turn': 'turn', '#expires': 'expires_at' },
          ExpressionAttributeValues: {
            ':thread': { S: threadKey(sourceSystem, threadId) },
            ':first': { N: '1' },
            ':last': { N: String(beforeTurn - 1) },
            ':now': { N: String(epochSeconds(now)) },
          },
          ScanIndexForward: false,
          Limit: limit - turns.length,
          ConsistentRead: true,
          ExclusiveStartKey: start,
        }),
        { abortSignal: signal },
      );
      turns.push(...(out.Items ?? []).map((item) => JSON.parse(item.body?.S ?? '{}') as ThreadTurn));
      start = out.LastEvaluatedKey;
    } while (start && turns.length < limit);
    return { turns: turns.slice(0, limit), unreadable: 0 };
  }
}

/** A turn's claim file: the request id that claimed it, read capped (a link to /dev/zero is refused: local-files.ts). */
const readClaim = (file: string): Promise<string | null> => readDataText(file, { maxBytes: 64 * 1024 });

export class FileThreadStore implements ThreadStore {
  constructor(
    private readonly dir: string,
    private readonly ttlDays: number,
  ) {}

  private folder(sourceSystem: string, threadId: string): string {
    return path.join(this.dir, ...threadKey(sourceSystem, threadId).split('/'));
  }

  /**
   * As the DynamoDB adapter, with the newest `<n>.claim` as item 0: its number the counter, its content the request
   * that claimed it, its time when. The claims of one thread are made one at a time in this process (the local
   * gateway is one process), and never while the retention sweep looks at its folder (withThreadFolder), so reading the newest claim and writing the next one is one step: two concurrent claims
   * never take one number nor skip one, and a retried claim of the same request finds its own. Claimed last by this
   * request and unexpired: that turn again, nothing written. Expired (claimed THREAD_TTL_DAYS or longer before
   * `now`): the old claims are removed and the thread starts again at turn 1, whether or not the retention sweep ran.
   * The next claim file is still made exclusively (createExclusive), as before: a claim file is never overwritten.
   */
  async claimTurn(sourceSystem: string, threadId: string, requestId: string, now: Date): Promise<number> {
    if (!requestId) throw new Error('a turn is claimed for a request: requestId is empty');
    const folder = this.folder(sourceSystem, threadId);
    return withThreadFolder(folder, async () => {
      await mkdir(folder, { recursive: true, mode: 0o700 });
      const names = await readdir(folder);
      const claimed = names
        .map((name) => Number(/^(\d+)\.claim$/.exec(name)?.[1] ?? 0))
        .filter((turn) => turn >= 1)
        .sort((a, b) => b - a);
      // The newest claims a crash left empty (made, not yet written: an earlier version's claim killed or refused by
      // a full disk in between) and never answered were given to no request (its Validate never answered): their
      // numbers are claimed again. Passed over, each left a gap in the thread's turns.
      while (
        claimed.length > 0 &&
        !names.includes(`${claimed[0]}.json`) &&
        (await readClaim(path.join(folder, `${claimed[0]}.claim`)).catch(() => null)) === ''
      )
        await rm(path.join(folder, `${claimed.shift()}.claim`), { force: true });
      let last = claimed[0] ?? 0;
      if (last > 0) {
        const file = path.join(folder, `${last}.claim`);
        if ((await stat(file)).mtimeMs + this.ttlDays * DAY_MS <= now.getTime()) {
          // The thread went unused for THREAD_TTL_DAYS: it starts again at turn 1, as an expired item 0 on AWS.
          for (const turn of claimed) await rm(path.join(folder, `${turn}.claim`), { force: true });
          last = 0;
        } else if (turnClaimedBySameRequest((await readClaim(file)) ?? '', requestId)) {
          return last;
        }
      }
      for (let turn = last + 1; ; turn++) {
        const file = path.join(folder, `${turn}.claim`);
        // Written aside, then linked into place: a claim is never empty, not even after a crash in the middle.
        if (!(await createExclusive(file, requestId, 0o600))) continue;
        await utimes(file, now, now);
        await utimes(folder, now, now);
        return turn;
      }
    });
  }

  async recordTurn(sourceSystem: string, threadId: string, turn: ThreadTurn, now: Date): Promise<void> {
    if (expiredTurn(turn, now, this.ttlDays)) return;
    const folder = this.folder(sourceSystem, threadId);
    await withThreadFolder(folder, async () => {
      await mkdir(folder, { recursive: true, mode: 0o700 });
      const file = path.join(folder, `${turn.turn}.json`);
      await writeFileAtomic(file, JSON.stringify(turn), 0o600);
      // The file's time is when the turn was answered (not now: a re-export keeps it): it expires THREAD_TTL_DAYS
      // later, as its item's TTL on AWS.
      const answered = answeredAt(turn, now);
      await utimes(file, answered, answered);
      await utimes(folder, now, now);
    });
  }

  async earlierTurns(
    sourceSystem: string,
    threadId: string,
    beforeTurn: number,
    now: Date,
    limit = MAX_THREAD_HISTORY_TURNS,
  ): Promise<EarlierTurns> {
    const folder = this.folder(sourceSystem, threadId);
    const expiredBefore = now.getTime() - this.ttlDays * DAY_MS;
    let names: string[];
    try {
      names = await readdir(folder);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { turns: [], unreadable: 0 };
      throw error;
    }
    const turns = names
      .map((name) => Number(/^(\d+)\.json$/.exec(name)?.[1] ?? 0))
      .filter((turn) => turn >= 1 && turn < beforeTurn)
      .sort((a, b) => b - a)
      .slice(0, Math.max(0, limit));
    const read: ThreadTurn[] = [];
    let unreadable = 0;
    for (const turn of turns) {
      const file = path.join(folder, `${turn}.json`);
      try {
        // Of the newest `limit`, those not expired: as DynamoDB applies the Query's Limit before its filter.
        if ((await stat(file)).mtimeMs <= expiredBefore) continue;
        const value = await readJsonFile<unknown>(file);
        const wrong = value === null ? null : notThreadTurn(value, turn);
        if (wrong !== null) throw new UnreadableFileError(file, wrong, 'a thread turn');
        if (value !== null) read.push(value as ThreadTurn);
      } catch (error) {
        // Removed by the retention sweep meanwhile: gone. Damaged (cut short, edited by hand): the thread goes on
        // without it, and the line names the file (docs/operations.md, "After a crash").
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
        if (!(error instanceof UnreadableFileError)) throw error;
        unreadable += 1;
        logger.error('A thread turn is damaged: the agent is given the thread without it', {
          event_type: THREAD_TURN_UNREADABLE_EVENT,
          thread_id: threadId,
          thread_turn: turn,
          file,
          error: error.message,
        });
      }
    }
    return { turns: read, unreadable };
  }
}

/** The configured thread store; throws ThreadStoreUnconfigured when there is none (only asked for a thread_id). */
export function threadStore(): ThreadStore {
  const { threadTableName, threadDir, threadTtlDays } = settings();
  if (threadTableName) return new DynamoThreadStore(threadTableName, threadTtlDays);
  if (threadDir) return new FileThreadStore(threadDir, threadTtlDays);
  throw new ThreadStoreUnconfigured('no thread store: set THREAD_TABLE_NAME or THREAD_DIR');
}
